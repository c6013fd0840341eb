# A Queue made and used (get) in OS thread A, which then ends.  A put from
# the main thread cannot be carried to A's closed hub: it must raise
# Error('closed') at once, with or without a timeout, not wait for ever.
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
for kw in ({"timeout": 2}, {}):
    t0 = socket2.clock()
    try:
        q.put("x", **kw)
        print("BAD: put returned")
    except socket2.Error as e:
        print("put raised %s after %.1fs" % (e.err, socket2.clock() - t0))
