# Sockets made in OS thread A (registered with A's hub) are dropped without
# close() in OS thread B: their __del__ runs in B and unregisters them from
# A's hub (its fd map, its poller's table) from B while A's hub runs.
import sys, threading, time, warnings, socket2
sys.setswitchinterval(1e-6)   # more interleavings, same program
warnings.simplefilter("ignore", ResourceWarning)
box = []
errors = []
ready = threading.Event()
def A():
    try:
        for _ in range(3000):
            box.append(socket2.udp())
        ready.set()
        end = time.monotonic() + 1.5
        while time.monotonic() < end:
            socket2.sleep(0.0001)
    except BaseException as e:
        errors.append(repr(e))
def B():
    ready.wait()
    end = time.monotonic() + 1.2
    while time.monotonic() < end and box:
        box.pop()                    # dropped here: __del__ runs in B
        time.sleep(0.0005)
ta, tb = threading.Thread(target=A), threading.Thread(target=B)
ta.start(); tb.start(); ta.join(); tb.join()
print("errors in A:", errors[:3])
