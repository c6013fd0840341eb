# A Queue made and used (get) in OS thread A, which then ends.  Its home
# thread is gone: a put from the main thread must not wait for ever on it
# (with or without a timeout); the queue moves here, and a get here finds
# the items.
import threading, socket2
box = {}
def owner():
    q = socket2.Queue()
    try:
        q.get(timeout=0.01)
    except socket2.TimeoutError:
        pass
    box['q'] = q
A = threading.Thread(target=owner); A.start(); A.join()
q = box['q']
t0 = socket2.clock()
q.put("x", timeout=2)
q.put("y")
print("puts returned after %.1fs" % (socket2.clock() - t0))
print("got", q.get(timeout=1), q.get(timeout=1))
# And a queue whose home moved to a short-lived worker stays usable here.
q2 = socket2.Queue()
def worker():
    try:
        q2.get(timeout=0.05)
    except socket2.TimeoutError:
        pass
t = threading.Thread(target=worker); t.start(); t.join()
q2.put(2)
print("home moved back:", q2.get(timeout=1))
