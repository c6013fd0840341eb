# The program ends while a signal handler that raises keeps firing (every
# 0.2 ms) and a daemon OS thread with a hub does carried puts into the main
# thread's queue.  Any exit code is fine except death by a signal other
# than SIGALRM's default action (Python restores it late in finalization).
import signal, sys, threading, time, socket2
class Alarm(Exception): pass
def handler(sig, frm): raise Alarm()
q = socket2.Queue()
try: q.get(timeout=0.001)
except socket2.TimeoutError: pass
nohub = len(sys.argv) > 1
def feeder():
    while True:
        if nohub:
            time.sleep(0.00005)
        else:
            try: q.put(1)
            except BaseException: pass
threading.Thread(target=feeder, daemon=True).start()
end = time.monotonic() + 0.3
while time.monotonic() < end:
    q.get(timeout=1) if not nohub else time.sleep(0.001)
signal.signal(signal.SIGALRM, handler)
signal.setitimer(signal.ITIMER_REAL, 0.0002, 0.0002)
