"""The hot path (socket2/_hotpath.py): compiled unless SOCKET2_PURE_PYTHON
is set, and the compiled entry points hand every unusual call to the
Python code, so errors read the same both ways.  (The whole suite runs
both ways: tools/dev.sh test.)"""
import array
import functools
import os

import greenlet
import pytest

import socket2
from socket2 import _hotpath, pollers
from socket2.sockets import TCPSocket

from conftest import tcp_pair

PURE = os.environ.get("SOCKET2_PURE_PYTHON", "").strip() not in ("", "0")


def test_the_chosen_path_is_the_one_asked_for():
    assert _hotpath.COMPILED is (not PURE)
    if PURE:
        assert _hotpath.Waiters.__module__ == "socket2._hotpath"
        assert TCPSocket.recv is TCPSocket.__dict__["recv"]
    else:
        assert _hotpath.Waiters.__module__ == "socket2._speedups"
        if not pollers.completion_based():
            assert TCPSocket.recv is _hotpath.socket_methods["recv"]
            assert TCPSocket.sendall is _hotpath.socket_methods["sendall"]
    assert "Receive into the writable" in TCPSocket.recv.__doc__


def test_recv_and_sendall_explain_bad_arguments(pair):
    c, a = pair
    with pytest.raises(TypeError, match="recv.. needs a writable buffer"):
        c.recv(b"read-only")
    with pytest.raises(TypeError, match="recv.. needs a writable buffer"):
        c.recv("text")
    with pytest.raises(ValueError, match="maxlen must be between 0 and"):
        c.recv(bytearray(4), 5)
    with pytest.raises(TypeError, match="maxlen must be an int"):
        c.recv(bytearray(4), 2.0)
    with pytest.raises(TypeError, match="sendall.. needs a bytes-like"):
        a.sendall("text")
    with pytest.raises(ValueError, match="maxlen must be between 0 and"):
        a.sendall(b"abc", -1)
    with pytest.raises(TypeError, match="argument"):
        c.recv()
    # Nothing was consumed or sent by the refused calls.
    a.sendall(b"ok")
    buf = bytearray(8)
    assert c.recv(buf, timeout=5) == 2 and buf[:2] == b"ok"


def test_every_buffer_kind_and_maxlen(pair):
    c, a = pair
    assert a.sendall(memoryview(b"0123456789")[2:6]) == 4
    assert a.sendall(array.array("b", b"xyz"), 2) == 2
    assert a.sendall(b"") == 0
    got = bytearray()
    buf = array.array("b", bytes(3))
    while len(got) < 6:
        n = c.recv(buf, 3)
        got += buf.tobytes()[:n]
    assert bytes(got) == b"2345xy"
    a.sendall(b"tail")
    m = memoryview(bytearray(10))[5:]
    assert c.recv(m, 0) == 0          # maxlen 0: nothing asked, nothing read
    assert c.recv(m, timeout=5) == 4 and bytes(m[:4]) == b"tail"


def test_sendall_rest_goes_on_after_a_full_kernel_buffer(pair):
    c, a = pair
    data = os.urandom(4 << 20)
    got = bytearray()

    def reader():
        buf = bytearray(65536)
        while len(got) < len(data):
            n = c.recv(buf)
            got.extend(buf[:n])

    t = socket2.newthread(reader)
    assert a.sendall(data) == len(data)      # many waits for writability
    t.join()
    assert got == data


def test_sendall_error_counts_what_went_out(pair):
    c, a = pair
    c.close()
    with pytest.raises(socket2.Error) as ei:
        for _ in range(1000):             # the peer's RST arrives: EPIPE
            a.sendall(bytes(65536))
    assert ei.value.err in ("broken_pipe", "connection_reset")
    assert ei.value.sent >= 0


def test_recv_wait_busy_closed_and_eof(pair):
    c, a = pair
    buf = bytearray(16)
    got = []

    def first():
        try:
            got.append(c.recv(buf))
        except socket2.Error as e:
            got.append(e.err)

    t = socket2.newthread(first)         # parked in the compiled wait
    with pytest.raises(socket2.Error) as ei:
        c.recv(bytearray(1))
    assert ei.value.err == "busy"
    a.sendall(b"hi")
    t.join()
    assert got == [2]
    t = socket2.newthread(first)
    c.close()                            # wakes the parked reader
    t.join()
    assert got == [2, "closed"]
    a.shutdown("w")


def test_eof_after_a_short_read(pair):
    c, a = pair
    a.sendall(b"abc")
    buf = bytearray(10)
    assert c.recv(buf) == 3              # short: the next recv waits
    socket2.runafter(0.01, a.shutdown, "w")
    assert c.recv(buf) == 0


def test_no_edge_is_lost_when_an_exception_stops_a_batch(pair):
    """An exception that reaches the hub in the middle of a batch (a signal
    handler running there, a raw greenlet of the hub's dying) must not drop
    the batch's later events: edge-triggered pollers report each once."""
    c, a = pair
    hub = socket2.hub.get_hub()
    c2, a2 = tcp_pair()
    with c2, a2:
        order = []

        class Boom(Exception):
            pass

        def reader(sock, name):
            sock.recv(bytearray(4))
            order.append(name)
            if len(order) == 1:
                raise Boom()     # a greenlet of the hub's: reaches the hub

        for sock, name in ((c, "c"), (c2, "c2")):
            hub.schedule(greenlet.greenlet(
                functools.partial(reader, sock, name), parent=hub.greenlet))
        socket2.sleep(0)         # both park in their recv
        # Both readable before the hub polls again: one batch.
        a.sendall(b"1")
        a2.sendall(b"2")
        with pytest.raises(Boom):
            socket2.sleep(0.5)   # the hub hands the error to main
        assert len(order) == 1
        for _ in range(100):     # the other edge was kept: it comes
            if len(order) == 2:
                break
            socket2.sleep(0.01)
        assert sorted(order) == ["c", "c2"]


def test_thread_records_and_socket_lifecycle_are_the_chosen_ones():
    """One record per connection thread, and the socket's accept/close:
    made and run in C when compiled, with the Python twins otherwise."""
    from socket2 import hub
    from socket2.sockets import _Socket
    if PURE:
        assert hub.Thread.__mro__[1] is _hotpath.ThreadBase
        assert _hotpath.ThreadBase.__module__ == "socket2._hotpath"
        assert TCPSocket.accept is TCPSocket.__dict__["accept"]
        assert _Socket.close is _Socket.__dict__["close"]
    else:
        assert _hotpath.ThreadBase.__module__ == "socket2._speedups"
        if not pollers.completion_based():
            assert TCPSocket.accept is _hotpath.socket_methods["accept"]
            assert _Socket.close is _hotpath.socket_methods["close"]
    assert "next connection" in TCPSocket.accept.__doc__
    assert "idempotent" in _Socket.close.__doc__


def test_thread_names_arguments_and_failures():
    """What a thread's record does with what it is given, the same in C
    and in Python: its name, its arguments, its function's exception."""
    from socket2 import hub

    def add(a, b, c=0):
        return a + b + c

    class Nameless:
        def __call__(self, x):
            return x * 2

    class BadName:
        @property
        def __name__(self):
            raise ValueError("no name here")

        def __call__(self):
            return None

    def fails():
        raise KeyError("the function's own")

    h = hub.get_hub()
    assert socket2.newthread(add, 1, 2).join() == 3
    assert socket2.newthread(add, 1, 2, c=3).join() == 6
    assert socket2.newthread(add, 1, 2).name == "add"
    assert socket2.newthread(functools.partial(add, 1), 2).name == "thread"
    t = socket2.newthread(Nameless(), 21)
    assert (t.name, t.join()) == ("thread", 42)
    with pytest.raises(ValueError, match="no name here"):
        socket2.newthread(BadName())
    # Arguments as any sequence, as f(*args) takes them; a given name wins.
    t = hub.Thread(h, add, [1, 2], {}, "mine")
    assert t.name == "mine"
    assert hub.start_thread(h, t).join() == 3
    # The exception, with its traceback from the function, for join();
    # the thread's fields are dropped at its end.
    t = socket2.newthread(fails)
    with pytest.raises(KeyError) as info:
        t.join()
    assert info.traceback[-1].name == "fails"
    assert t.finished and t.dead
    assert (t._func, t._args, t._kwargs, t._joiners) == (None,) * 4
    assert t._g.gr_context is None and not t._g.__dict__
    # Bad construction is an error, never a crash.
    with pytest.raises(TypeError):
        hub.Thread(h, add)
    with pytest.raises(AttributeError):
        hub.Thread(object(), add, (), {})


def test_accept_keeps_the_peer_address():
    """The compiled accept() keeps the address accept() returned: what an
    HTTP server's REMOTE_ADDR is made of, without getpeername()."""
    from socket2.http import wsgi
    with socket2.tcp() as lst:
        lst.listen("127.0.0.1", 0)
        with socket2.tcp() as c:
            c.connect("127.0.0.1", lst.local_port)
            s = lst.accept()
            with s:
                assert (s.remote_addr, s.remote_port) == \
                    ("127.0.0.1", c.local_port)
                assert wsgi._peer_address(s) == ("127.0.0.1",
                                                 str(c.local_port))
                kept = getattr(s, "_peer_sockaddr", None)
                if not PURE and not pollers.completion_based():
                    raw = kept()
                    assert isinstance(raw, bytes) and len(raw) >= 16
                    from socket2 import _http_speedups
                    assert _http_speedups.peer_address(raw) == \
                        _http_speedups.peer_address(s.fileno())
            assert s.closed
            if kept is not None:
                assert kept() is None        # nothing kept past close()


@pytest.mark.parametrize("field", ["_func", "_args", "_kwargs",
                                   "_parked_in", "_cancelled"])
def test_a_thread_whose_field_was_deleted_fails_cleanly(field):
    """A record's fields can be deleted (they are slots): the thread then
    fails with the AttributeError a slot gives, never a crash."""
    from socket2 import hub
    h = hub.get_hub()
    t = hub.Thread(h, lambda: 1, (), {})
    delattr(t, field)
    with pytest.raises(AttributeError):
        getattr(t, field)
    h.schedule(t._g)
    if field == "_parked_in":
        # (read before the thread's try, as the twin does: the error ends
        # the greenlet and reaches the hub, which raises it in the main
        # greenlet; the thread never finishes)
        with pytest.raises(AttributeError, match=field):
            socket2.sleep(0.01)
        assert t._g.dead and not t.finished
        socket2.sleep(0.001)        # the hub goes on
        return
    with pytest.raises(AttributeError, match=field):
        t.join(timeout=5)


@pytest.mark.parametrize("field", ["_g", "_hub", "_joiners"])
def test_a_running_thread_whose_field_was_deleted_fails_cleanly(field):
    from socket2 import hub

    def victim():
        delattr(hub.current(), field)

    # The end of the thread's bookkeeping meets the missing field: the
    # error ends its greenlet and reaches the caller it returns to.
    with pytest.raises(AttributeError, match=field):
        socket2.newthread(victim)
    socket2.sleep(0.001)            # the hub goes on


@pytest.mark.parametrize("field", ["_hub", "_core"])
def test_accept_when_the_listener_changed_during_its_wait(field):
    """Other threads run while accept() waits: what they change in the
    listener is looked at again after the wait (no crash)."""
    with socket2.tcp() as lst:
        lst.listen("127.0.0.1", 0)
        port = lst.local_port
        hub_, core = lst._hub, lst._core

        def acc():
            try:
                return lst.accept()
            except AttributeError as e:
                return e

        t = socket2.newthread(acc)
        socket2.sleep(0.01)
        delattr(lst, field)
        with socket2.tcp() as c:
            c.connect("127.0.0.1", port)
            got = t.join(timeout=5)
            if isinstance(got, AttributeError):
                pass                    # (the Python accept's answer)
            else:
                got.close()
        lst._hub, lst._core = hub_, core


def test_a_kill_before_the_start_that_on_cancel_swallows():
    """_start_cancelled is the twin's hook: if it returns (a subclass
    that lets the thread run after all), the function runs."""
    from socket2 import hub

    class Stubborn(hub.Thread):
        __slots__ = ()

        def _start_cancelled(self):
            self._cancelled = None

    h = hub.get_hub()
    t = Stubborn(h, lambda: "ran", (), {})
    h.schedule(t._g)
    t.kill()
    assert t.join(timeout=5) == "ran"


def test_a_registration_the_backend_refuses(tmp_path):
    """register() of a descriptor the poller cannot watch (a regular
    file: epoll says EPERM) raises the backend's error and leaves the
    hub's maps as they were, whether the compiled core called the
    backend's native register first or not."""
    from socket2 import hub as hubmod
    h = hubmod.get_hub()
    path = tmp_path / "f"
    path.write_bytes(b"x")
    fd = os.open(str(path), os.O_RDONLY)
    try:
        before = (dict(h._fdmap), dict(hubmod._OWNERS))
        try:
            h.register(fd)
        except socket2.Error as e:     # (epoll: EPERM; IOCP: not a handle)
            refused = e
        else:
            refused = None              # (poll watches any descriptor)
            h.unregister(fd)
        if h.poller.name == "epoll":
            assert "epoll_ctl(ADD" in str(refused)
        assert (dict(h._fdmap), dict(hubmod._OWNERS)) == before
    finally:
        os.close(fd)


def test_start_when_readable_on_a_closed_socket():
    """No event would ever start the thread: an error, not a thread
    parked for good (nor a count of parked greenlets that never drops)."""
    from socket2 import hub
    h = hub.get_hub()
    s = socket2.tcp()
    s.close()
    nio = h._core.nio
    with pytest.raises(socket2.Error) as info:
        h.start_when_readable(s, lambda c: None, (), {})
    assert info.value.err == "closed"
    assert h._core.nio == nio and s._w.rg is None
