# A put carried from OS thread B into queue owned by A completes, B's timeout
# scope fires in the same hub turn; put() returns, then the scope's
# TimeoutError is raised later, outside the scope, in an unrelated sleep().
import threading, time, socket2

q_ready = threading.Event()
box = {}

def owner():
    q = socket2.Queue()
    box['q'] = q
    def consumer():
        for _ in range(1):
            print("A got", q.get(timeout=5))
    t = socket2.newthread(consumer)  # consumer's get() sets q._hub
    q_ready.set()
    t.join()

A = threading.Thread(target=owner); A.start()
q_ready.wait()
q = box['q']

def blocker():
    socket2.sleep(0)
    time.sleep(0.3)   # blocks B's OS thread past the scope's deadline

socket2.newthread(blocker)
with socket2.timeout(0.05, raise_=False) as sc:
    q.put("x")                       # carried to A
print("put returned; scope expired:", sc.expired)
try:
    socket2.sleep(0.2)               # unrelated wait, outside any scope
    print("OK: no stray exception")
except BaseException as e:
    print("BUG: stray", type(e).__name__, e)
A.join()
