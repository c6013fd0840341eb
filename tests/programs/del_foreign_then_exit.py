# A socket made in worker thread T is collected (unclosed) / closed in the
# main thread while T is alive but busy; T then ends without another hub
# turn.  Is the descriptor ever closed?
import threading, socket2, time, os, gc, sys, warnings
warnings.simplefilter("ignore", ResourceWarning)
mode = sys.argv[1]            # "del" or "close"
box = []; ready = threading.Event(); go = threading.Event()
def worker():
    s = socket2.tcp(); s.listen("127.0.0.1", 0)   # registered with T's hub? 
    box.append(s); del s
    ready.set(); go.wait(5)     # busy (no hub turn) while main drops it
    time.sleep(0.1)
t = threading.Thread(target=worker); t.start(); ready.wait(5)
s = box.pop(); fd = s.fileno()
if mode == "close": s.close()
del s; gc.collect()
go.set(); t.join(5)
time.sleep(0.2); gc.collect()
try:
    os.fstat(fd); print(mode, ": fd", fd, "still OPEN after owner thread ended -> leaked; ls:", os.readlink("/proc/self/fd/%d" % fd))
except OSError:
    print(mode, ": fd closed (ok)")
