# A green select() watches one socket2 socket for reading and writing (so it
# sits in both of its slots); another thread closes the socket.  The close
# wakes the select once; the second wake must not reach the select()'s
# thread later, in an unrelated wait.
import socket2
from socket2.green import select as gsel
srv = socket2.tcp(); srv.listen("127.0.0.1", 0)
c = socket2.tcp(); c.setopt("so_sndbuf", 4096); c.connect("127.0.0.1", srv.local_port)
peer = srv.accept()
try:                                  # fill the send buffer: not writable
    while True:
        c.send(b"x" * 65536, timeout=0.05)
except socket2.TimeoutError:
    pass
log = []
def selector():
    try:
        log.append(("select", gsel.select([c], [c], [], 5)))
    except BaseException as e:
        log.append(("select raised", repr(e)))
    try:
        socket2.sleep(0.3)
        log.append(("sleep", "ok"))
    except BaseException as e:
        log.append(("sleep raised (stray)", repr(e)))
t = socket2.newthread(selector)
socket2.sleep(0.05)
c.close()
t.join()
print(log)
