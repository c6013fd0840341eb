# A socket2.Queue made in the main thread (say, at module level) but used
# only inside one worker OS thread: a consumer and a producer there.
import threading, socket2
q = socket2.Queue()                  # made here, in the main thread
res = []
def worker():
    def consumer():
        for _ in range(3):
            res.append(q.get(timeout=2))
    t = socket2.newthread(consumer)  # its get() binds the queue to this hub
    try:
        for i in range(3):
            q.put(i)                 # put() from the same OS thread
            socket2.sleep(0)
        t.join(timeout=3)
        res.append("done")
    except BaseException as e:
        import traceback; traceback.print_exc(); res.append("put/join raised %s: %s" % (type(e).__name__, e))
w = threading.Thread(target=worker); w.start(); w.join(10)
print("alive after 10 s (hung):" , w.is_alive(), res)
