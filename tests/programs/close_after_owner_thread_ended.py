# OS thread T starts a socket2 thread that parks in recv() on a connection,
# then T ends (its hub is closed).  The main thread closes the connection.
import threading, gc, socket2
srv = socket2.tcp(); srv.listen("127.0.0.1", 0)
box = {}
def T():
    c = socket2.tcp(); c.connect("127.0.0.1", srv.local_port)
    box['c'] = c
    box['t'] = socket2.newthread(lambda: c.recv(bytearray(10)))
    # T's function returns: the OS thread ends with a socket2 thread parked
t = threading.Thread(target=T); t.start(); t.join()
peer = srv.accept()
gc.collect()
try:
    box['c'].close()
    print("close: ok")
except BaseException as e:
    print("close raised", type(e).__module__, type(e).__name__, e)
buf = bytearray(10)
print("peer sees EOF:", peer.recv(buf, timeout=1) == 0)
