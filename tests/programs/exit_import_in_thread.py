# socket2 imported first in a daemon worker thread (a plugin, a lazily
# imported module); the worker sits in greenlets; the main thread exits.
import threading, sys, time
if sys.argv[1:] == ["main-import"]:
    import socket2
def worker():
    import socket2
    def spin():
        while True: socket2.sleep(0.001)
    for _ in range(4): socket2.newthread(spin)
    socket2.sleep(100)
t = threading.Thread(target=worker, daemon=True); t.start()
time.sleep(0.3)
import socket2.hub as h
print("parking prepared:", h._parking[0], flush=True)
