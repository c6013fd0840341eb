# A signal handler that wakes something in another OS thread (here: sets a
# socket2.Event a thread of that OS thread waits on; closing a socket that
# thread serves is the same) while the main thread is itself handing
# something to that OS thread (Event.set of another Event).  Both go through
# hub.call_threadsafe of the worker's hub.  Expected: no hang.
import os, signal, threading, time, socket2
box = {}
ready = threading.Event()
def worker():
    def waiter(key):
        while True:
            ev = socket2.Event(); box[key] = ev
            try: ev.wait(timeout=0.5)
            except socket2.TimeoutError: pass
    socket2.newthread(waiter, "main_sets")
    socket2.newthread(waiter, "handler_sets")
    ready.set()
    socket2.sleep(100)
threading.Thread(target=worker, daemon=True).start(); ready.wait()
def handler(sig, frm):
    box["handler_sets"].set()        # a different Event than the main thread's
signal.signal(signal.SIGALRM, handler)
last, n = [time.monotonic()], [0]
def watchdog():
    while True:
        time.sleep(0.5)
        if time.monotonic() - last[0] > 2:
            os.write(2, b"HANG: the main thread is stuck after %d sets\n" % n[0])
            import faulthandler; faulthandler.dump_traceback(all_threads=True)
            os._exit(3)
threading.Thread(target=watchdog, daemon=True).start()
signal.setitimer(signal.ITIMER_REAL, 0.0005, 0.0005)
end = time.monotonic() + 1.5
while time.monotonic() < end:
    box["main_sets"].set()
    n[0] += 1; last[0] = time.monotonic()
signal.setitimer(signal.ITIMER_REAL, 0, 0)
print("ok: %d sets, no hang" % n[0])
