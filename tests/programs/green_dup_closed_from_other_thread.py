# A green socket c has waited once in the main thread (so its registration
# is in the main hub's epoll set) and has a dup d.  Another OS thread closes
# c.  The open file description lives on (d), so the epoll registration must
# be deleted explicitly; it is not, and the next socket on c's old number
# that shares the description (d.dup()) cannot wait: epoll_ctl(ADD) EEXIST.
import re, threading, socket2
from socket2.green import socket as gs
from socket2.hub import get_hub
l = gs.socket(); l.bind(("127.0.0.1", 0)); l.listen(5)
c = gs.socket(); c.connect(l.getsockname()); s, _ = l.accept()
c.settimeout(0.05)
try: c.recv(10)                       # waits once: registered in the main hub
except gs.timeout: pass
d = c.dup()
fd = c.fileno()
epfd = get_hub().poller.fileno()   # epoll only (the test skips others)
regs = lambda: sorted(int(x) for x in re.findall(
    r"tfd:\s+(\d+)", open("/proc/self/fdinfo/%d" % epfd).read()))
t = threading.Thread(target=c.close); t.start(); t.join()
socket2.sleep(0.05)                   # the main hub runs the handed-over close
print("fd %d closed; main epoll set still holds:" % fd, regs())
e = d.dup(); e.settimeout(0.05)
print("d.dup() got fd", e.fileno())
try:
    e.recv(10)
except gs.timeout:
    print("OK: recv timed out as expected")
except BaseException as ex:
    print("BAD: recv raised", type(ex).__module__, type(ex).__name__, ex)
