"""The bookkeeping of a client's keep-alive connections.

Connections belong to the hub of the OS thread that opened them, so a
:class:`Pool` serves one OS thread (the client keeps one per thread);
the bounds (``max_connections``, ``max_per_host``) are the client's, held
across all its OS threads by one :class:`Limits`.  The pool does
bookkeeping only: it never opens a connection itself and closes the ones
it drops after its books are straight, so that no wait happens in the
middle of an update (httpcore's rule).  Every update is made under the
limits' lock (an OS lock, held for a few dict operations, never across a
wait): another OS thread may take an idle connection of this one away
to make room for its own.

A request asks :meth:`Pool.acquire` for a connection to its *key*
(scheme, host, port, proxy): it gets an idle one that is still alive,
or ``None`` and a reserved slot to open one in (then :meth:`opened` or
:meth:`unreserve`), or waits, cooperatively, until a connection is given
back or closed in any OS thread -- at most until the request's deadline
(``socket2.TimeoutError``).  Slots count against ``max_per_host`` for the
key and ``max_connections`` in all; an idle connection to another origin
(of this OS thread first, else of another one) is closed to make room
when only the total is exhausted.
"""
import _thread

from ..errors import Error, TimeoutError
from ..hub import clock
from ..sync import Condition
from ._connection import ACTIVE, CLOSED, IDLE
from ._parser import HeadParser

__all__ = ["Pool", "Limits"]

#: An idle connection older than this is closed instead of reused (most
#: servers close theirs after 5 to 75 seconds).
IDLE_MAX = 30.0

_get_ident = _thread.get_ident


class Limits:
    """A client's bounds and counts, shared by its pools (one per OS
    thread): connections open or opening, in all and per key."""

    def __init__(self, max_connections, max_per_host):
        self.max_connections = max_connections
        self.max_per_host = max_per_host
        self.lock = _thread.allocate_lock()
        self.count = {}          # key -> connections open or opening
        self.total = 0
        self.pools = []          # the live pools (for room and wake-ups)
        self.waiting = 0         # requests waiting, in all the pools

    def free(self, key):
        """Under the lock: a connection to *key* closed (or its opening
        failed).  Returns the pools with requests waiting."""
        n = self.count.get(key, 0) - 1
        if n > 0:
            self.count[key] = n
        else:
            self.count.pop(key, None)
        self.total -= 1
        return self.waiters()

    def waiters(self):
        """The pools with requests waiting (a snapshot)."""
        if not self.waiting:
            return ()
        return [p for p in list(self.pools) if p.waiting]

    def steal_idle(self, me, key=None):
        """Under the lock: the idle connection unused longest of another
        pool than *me* (to *key*, when given), taken out of its books
        (the caller closes it), or None.  Its owner pops and appends its
        idle lists without the lock (each a single atomic list
        operation): a connection it took meanwhile is skipped."""
        while True:
            oldest = owner = None
            for p in self.pools:
                if p is not me:
                    c = p.oldest_idle(key)
                    if c is not None and (oldest is None or c.idle_since
                                          < oldest.idle_since):
                        oldest, owner = c, p
            if oldest is None:
                return None
            if owner.unlist(oldest):
                owner.total -= 1
                return oldest


def _wake_all(pools):
    """Wake the waiting requests of *pools*, each in its own OS thread."""
    me = _get_ident()
    for p in pools:
        hub = p.hub
        if hub is None or hub.thread_ident == me:
            p.wake()
        else:
            hub.call_threadsafe(p.wake)


class Pool:
    """Connections of one client in one OS thread.

    Its OS thread reuses and gives back idle connections without the
    limits' lock (``idle``'s lists are only popped and appended, single
    atomic operations, and only this thread adds or drops its keys);
    every count changes under the lock."""

    def __init__(self, limits, hub=None):
        self.limits = limits
        self.hub = hub               # the hub of the OS thread it serves
        self.idle = {}               # key -> [Connection], most recent last
        self.total = 0               # this thread's open or opening
        self.waiting = 0
        self.cond = Condition()
        self.closed = False
        self.parser = HeadParser()   # heads are parsed without a wait
        with limits.lock:
            limits.pools.append(self)

    @property
    def max_connections(self):
        return self.limits.max_connections

    @property
    def max_per_host(self):
        return self.limits.max_per_host

    def acquire(self, key, deadline):
        """An idle live connection to *key* (marked active), or ``None``
        with a slot reserved for a new one."""
        lim = self.limits
        while True:
            if self.closed:
                raise Error("closed", "the client is closed")
            if self.idle.get(key):
                conn = self._pop_live(key)
                if conn is not None:
                    return conn
            victim = None
            with lim.lock:
                # Counted as waiting before anything is looked at: a
                # connection given back (or freed) from now on either is
                # seen below or wakes this request (see release()).
                lim.waiting += 1
                self.waiting += 1
                n = lim.count.get(key, 0)
                if n >= lim.max_per_host:
                    # Idle in another OS thread (that may not run its hub
                    # for a long while): closed from here to make room.
                    victim = lim.steal_idle(self, key)
                    if victim is not None:
                        self._forget_locked(victim, False)
                        n -= 1
                reserved = False
                if n < lim.max_per_host:
                    if lim.total >= lim.max_connections:
                        victim = self._take_oldest() or lim.steal_idle(self)
                        if victim is not None:
                            self._forget_locked(victim, False)
                    if lim.total < lim.max_connections:
                        lim.count[key] = lim.count.get(key, 0) + 1
                        lim.total += 1
                        self.total += 1
                        reserved = True
                if reserved:
                    lim.waiting -= 1
                    self.waiting -= 1
                    if len(self.idle) > 64:
                        self._drop_empty()
            if victim is not None:
                victim.close()       # (another thread's: closed from here)
            if reserved:
                return None
            self._wait(deadline)

    def oldest_idle(self, key=None):
        """This pool's idle connection unused longest (to *key*, when
        given), or None; left in place."""
        oldest = None
        lists = list(self.idle.values()) if key is None \
            else [self.idle.get(key)]
        for lst in lists:
            try:
                c = lst[0]
            except (IndexError, TypeError):
                continue
            if oldest is None or c.idle_since < oldest.idle_since:
                oldest = c
        return oldest

    def unlist(self, conn):
        """Take the idle *conn* out of its list; False if it is not there
        (its thread took it meanwhile)."""
        try:
            self.idle[conn.key].remove(conn)
        except (KeyError, ValueError):
            return False
        return True

    def _take_oldest(self):
        """Under the lock: this pool's idle connection unused longest, out
        of the idle lists (still counted), or None."""
        oldest = self.oldest_idle()
        if oldest is not None and self.unlist(oldest):
            self.total -= 1
            return oldest
        return None

    def _drop_empty(self):
        """Under the lock, in this pool's thread: forget keys with no idle
        connection (only this thread adds or drops keys)."""
        for k in [k for k, lst in self.idle.items() if not lst]:
            del self.idle[k]

    def _pop_live(self, key):
        lst = self.idle.get(key)
        now = clock()
        dead = []
        conn = None
        while lst:
            try:
                c = lst.pop()
            except IndexError:       # taken by another thread meanwhile
                break
            if now - c.idle_since < IDLE_MAX and c.alive():
                conn = c
                break
            dead.append(c)
        for c in dead:
            self._forget(c)
            c.close()
        if conn is not None:
            conn.state = ACTIVE
            conn.reused = True
            conn.received = 0
        return conn

    def _wait(self, deadline):
        """Wait to be woken (counted as waiting by the caller already)."""
        lim = self.limits
        try:
            with self.cond:
                self.cond.wait(expires=deadline)
        except TimeoutError:
            raise TimeoutError(
                "timeout", "no connection became free within the request's "
                "timeout (max_connections=%d, max_per_host=%d)"
                % (self.max_connections, self.max_per_host)) from None
        finally:
            with lim.lock:
                self.waiting -= 1
                lim.waiting -= 1

    def wake(self):
        """Wake this pool's waiting requests (in its own OS thread)."""
        if self.waiting:
            with self.cond:
                self.cond.notify_all()

    def _forget_locked(self, conn, counted=True):
        """Under the lock: drop *conn* from the counts (it is being
        closed); *counted*: still in this pool's own total."""
        lim = self.limits
        if counted:
            self.total -= 1
        if self.closed and not self.total and self in lim.pools:
            lim.pools.remove(self)
        return lim.free(conn.key)

    def _forget(self, conn):
        with self.limits.lock:
            waiting = self._forget_locked(conn)
        _wake_all(waiting)

    def opened(self, conn):
        """A connection was opened in a reserved slot: now active."""
        conn.state = ACTIVE
        conn.received = 0

    def unreserve(self, key):
        """Opening a connection in a reserved slot failed."""
        with self.limits.lock:
            self.total -= 1
            waiting = self.limits.free(key)
        _wake_all(waiting)

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
                lst = self.idle.setdefault(conn.key, [])
            lst.append(conn)
            # After the append: a request counted as waiting from now on
            # sees it (acquire() counts itself first, then looks).
            if self.limits.waiting:
                _wake_all(self.limits.waiters())
        else:
            self._forget(conn)
            conn.close()

    def discard(self, conn):
        """Close *conn*, which failed while active."""
        if conn.state != CLOSED:
            self._forget(conn)
            conn.close()

    def close(self):
        """Close every idle connection and leave the client's limits;
        active ones close when their responses are done.  Waiting
        requests raise ``Error('closed')``.  From any OS thread."""
        self.closed = True
        waiting = []
        with self.limits.lock:
            idle = []
            for lst in list(self.idle.values()):
                while lst:
                    try:
                        idle.append(lst.pop())
                    except IndexError:
                        break
            for c in idle:
                waiting = self._forget_locked(c)
            if not self.total and self in self.limits.pools:
                self.limits.pools.remove(self)
        for c in idle:
            c.close()
        _wake_all(set(waiting) | {self})

    def stats(self):
        """``{'total': n, 'idle': n, 'waiting': n}``."""
        return {"total": self.total, "waiting": self.waiting,
                "idle": sum(len(v) for v in list(self.idle.values()))}
