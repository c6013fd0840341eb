"""The bookkeeping of a client's keep-alive connections in one OS thread.

Connections belong to the hub of the OS thread that opened them, so a
:class:`Pool` serves one OS thread (the client keeps one per thread).
The pool does bookkeeping only: it never opens a connection itself and
closes the ones it drops after its books are straight, so that no wait
happens in the middle of an update (httpcore's rule).

A request asks :meth:`Pool.acquire` for a connection to its *key*
(scheme, host, port, proxy): it gets an idle one that is still alive,
or ``None`` and a reserved slot to open one in (then :meth:`opened` or
:meth:`unreserve`), or waits, cooperatively and first come first served,
until another request gives one back -- at most until the request's
deadline (``socket2.TimeoutError``).  Slots count against
``max_per_host`` for the key and ``max_connections`` in all; an idle
connection to another origin is closed to make room when only the
total is exhausted.
"""
from ..errors import Error, TimeoutError
from ..hub import clock
from ..sync import Condition
from ._connection import ACTIVE, CLOSED, IDLE
from ._parser import HeadParser

__all__ = ["Pool"]

#: An idle connection older than this is closed instead of reused (most
#: servers close theirs after 5 to 75 seconds).
IDLE_MAX = 30.0


class Pool:
    """Connections of one client in one OS thread."""

    def __init__(self, max_connections, max_per_host):
        self.max_connections = max_connections
        self.max_per_host = max_per_host
        self.idle = {}          # key -> [Connection], most recent last
        self.count = {}         # key -> connections open or opening
        self.total = 0
        self.waiting = 0
        self.cond = Condition()
        self.closed = False
        self.parser = HeadParser()   # heads are parsed without a wait

    def acquire(self, key, deadline):
        """An idle live connection to *key* (marked active), or ``None``
        with a slot reserved for a new one."""
        while True:
            if self.closed:
                raise Error("closed", "the client is closed")
            lst = self.idle.get(key)
            if lst:
                conn = self._pop_live(key, lst)
                if conn is not None:
                    return conn
            n = self.count.get(key, 0)
            if n < self.max_per_host and (
                    self.total < self.max_connections or self._evict()):
                self.count[key] = n + 1
                self.total += 1
                return None
            self._wait(deadline)

    def _pop_live(self, key, lst):
        now = clock()
        dead = []
        conn = None
        while lst:
            c = lst.pop()
            if now - c.idle_since < IDLE_MAX and c.alive():
                conn = c
                break
            dead.append(c)
        for c in dead:
            self._forget(c)
        for c in dead:
            c.close()
        if conn is not None:
            conn.state = ACTIVE
            conn.reused = True
            conn.received = 0
        return conn

    def _evict(self):
        """Close the idle connection unused longest (of any key) to make
        room under ``max_connections``; False if there is none."""
        oldest = None
        for lst in self.idle.values():
            if lst and (oldest is None
                        or lst[0].idle_since < oldest.idle_since):
                oldest = lst[0]
        if oldest is None:
            return False
        self.idle[oldest.key].remove(oldest)
        self._forget(oldest)
        oldest.close()
        return True

    def _wait(self, deadline):
        self.waiting += 1
        try:
            with self.cond:
                self.cond.wait(expires=deadline)
        except TimeoutError:
            raise TimeoutError(
                "timeout", "no connection became free within the request's "
                "timeout (max_connections=%d, max_per_host=%d)"
                % (self.max_connections, self.max_per_host)) from None
        finally:
            self.waiting -= 1

    def _wake(self):
        if self.waiting:
            with self.cond:
                self.cond.notify_all()

    def _forget(self, conn):
        """Drop *conn* from the counts (it is being closed)."""
        key = conn.key
        n = self.count.get(key, 0) - 1
        if n > 0:
            self.count[key] = n
        else:
            self.count.pop(key, None)
            self.idle.pop(key, None)
        self.total -= 1

    def opened(self, conn):
        """A connection was opened in a reserved slot: now active."""
        conn.state = ACTIVE
        conn.received = 0

    def unreserve(self, key):
        """Opening a connection in a reserved slot failed."""
        n = self.count.get(key, 0) - 1
        if n > 0:
            self.count[key] = n
        else:
            self.count.pop(key, None)
        self.total -= 1
        self._wake()

    def release(self, conn, keep):
        """A request is done with *conn*: idle in the pool when *keep* (and
        it has nothing unread), else closed."""
        if conn.state == CLOSED:
            return
        if keep and not self.closed and conn.reusable():
            conn.state = IDLE
            conn.idle_since = clock()
            lst = self.idle.get(conn.key)
            if lst is None:
                self.idle[conn.key] = [conn]
            else:
                lst.append(conn)
        else:
            self._forget(conn)
            conn.close()
        self._wake()

    def discard(self, conn):
        """Close *conn*, which failed while active."""
        if conn.state != CLOSED:
            self._forget(conn)
            conn.close()
            self._wake()

    def close(self):
        """Close every idle connection; active ones close when their
        responses are done.  Waiting requests raise ``Error('closed')``."""
        self.closed = True
        idle = [c for lst in self.idle.values() for c in lst]
        self.idle.clear()
        for c in idle:
            self._forget(c)
        for c in idle:
            c.close()
        self._wake()

    def stats(self):
        """``{'total': n, 'idle': n, 'waiting': n}``."""
        return {"total": self.total, "waiting": self.waiting,
                "idle": sum(len(v) for v in self.idle.values())}
