"""The hot path: the per-fd slot record, the hub's waits and dispatch, and
the socket fields that recv/sendall read -- in C, or in Python.

A round trip of a socket2 server costs, outside the kernel: the hub's
dispatch of the event (find the fd's slot record, switch into the greenlet
parked there), that greenlet's wait (park in the slot, switch to the hub)
and the socket entry points (recv into the caller's buffer, sendall of
it).  ``socket2._speedups`` (``socket2/ffi/speedups.c``) does those in C;
this module holds the same things in Python, which is the reference the C
follows line for line, and the one place that chooses:

- ``SOCKET2_PURE_PYTHON=1`` (read at import) selects the Python versions;
- without it the C versions are used when the extension was built (it is,
  by every install: setup.py builds it with the cffi modules).

``COMPILED`` says which one this process runs.  Both pass the same test
suite (``tools/dev.sh test`` runs it both ways).

What is chosen here:

- ``Waiters``: the reader/writer slots of one registered fd;
- ``HubCore(greenlet, arm, deadline_wait)``: ``nio`` (greenlets parked on
  a socket), ``wait_readable``/``wait_writable`` and ``dispatch`` (one
  batch of poller tokens);
- ``SocketBase``: the fields of a socket that recv/sendall read (``_fd``,
  ``_type``, ``_w``, ``_hub``, ``_core``, ``_rb``, ``timeout``);
- ``ThreadBase``: a cooperative thread's record, made and run (its
  greenlet's ``_run``) without a Python frame of its own when compiled;
- ``socket_methods``: the compiled ``recv``/``sendall``/``accept`` for TCP
  sockets and ``close`` for every socket, or None (sockets.py then uses
  its Python methods).  The compiled ``accept`` keeps the peer's address
  as accept() returned it (``_peer_sockaddr()``: no getpeername() for a
  server that wants it of every connection).

Not chosen, but read by the same paths: ``ReadScratch``, the per-OS-thread
buffer that buffered reads receive into.
"""
import os
from _thread import _local, get_ident

from greenlet import GreenletExit, getcurrent, greenlet

from .errors import Error, os_error


class Waiters:
    """The reader and writer slots of one registered fd (the hub parks
    greenlets there, the backend's events resume them), and ``rready``:
    whether a recv() may find data.

    The short-read shortcut.  On an edge-triggered poller, a stream socket
    whose recv() came back short has an empty queue, and data arriving
    later brings a new edge: so the next recv() skips the system call that
    could only say EAGAIN and waits for that edge at once.  The shortcut
    trusts a fact about the kernel's queue; it may skip a system call only
    while that fact cannot have changed underneath.  The rule that keeps
    it so:

    - ``rready`` is cleared only right after a short read by the socket
      layer's recv (sockets.py ``_Socket._recv_loop`` and its compiled
      twin in speedups.c), on a stream, with ``hup`` unset: a read that
      proved the queue empty.  (The green socket's plain ``recv`` and
      ``recv_into`` make the same proof the same way, and so does the C
      TLS engine's read BIO during a compiled ``recv``: build_openssl.py,
      ``s2_rbio``.)
    - It is set again by anything that may have made the proof stale: an
      edge nobody waited for (``dispatch``), and the end of every wait for
      readability (``wait_readable``, whatever ended it).  A wait takes
      the edge; whoever waited then reads in its own way -- a TLS engine
      through OpenSSL, ``unwrap()``, a green ``recv(MSG_PEEK)`` -- and may
      leave data behind without proving anything.  So a path that consumes
      an edge leaves the shortcut armed unless it proves the queue empty
      by a short read of its own, and no new path has to remember to.
    - ``hup`` turns the shortcut off for good (sticky): after a hang-up or
      an error no edge follows, and after TCP urgent data a short read
      proves nothing -- it stops at the urgent mark with the rest still
      queued (so a backend with exact edges must report urgent data like
      a hang-up: epoll's EPOLLPRI, build_epoll.py).
    - Backends whose edges are not exact use a subclass whose ``rready``
      is always true (pollers.TryFirstWaiters); level-triggered poll(2)
      reports queued data at once, so the rule costs it nothing either.
    """
    __slots__ = ("rg", "wg", "rready", "hup", "soerr")

    def __init__(self):
        self.rg = None
        self.wg = None
        self.rready = True
        self.hup = False     # no short read is trusted any more: sticky
        self.soerr = 0       # a socket error the backend saw (kqueue)


class HubCore:
    """What the hub's hot path needs of the hub: its greenlet, the
    backend's ``arm(fd, write)`` (or None), its deadline wait
    ``deadline_wait(g, deadline)``, the count of greenlets parked on
    a socket (``nio``) and whether any greenlet ran since the hub last
    cleared it (``activity``).

    One switch per event: the batch being dispatched lives here, with its
    cursor, not in the hub's stack.  In the compiled twin (speedups.c
    ``core_wait``/``next_target``), a greenlet that parks without a
    deadline while a batch is under way does what the hub would do next
    itself: it takes the batch's next token (``_next(True)``) and
    switches straight to that token's waiter, and to the hub only when
    the batch is done, or when the next waiter has not started yet (see
    ``_next``).  Only greenlets of the hub's OS thread do: one of another
    thread waiting on this hub's socket switches to the hub, which refuses
    it.  If taking the next token raises (``forward``), the exception is
    raised in the hub's dispatch, as it would have been there, and the
    greenlet stays parked.  Whoever switches to the hub meanwhile (a
    greenlet that ends, parks elsewhere or waits with a deadline) finds
    the hub's dispatch continuing from the same cursor, so every token is
    delivered once, in order, whoever delivers it; the order in which
    greenlets run is the one the hub alone would give.

    This Python twin hands off the same way (``_hand_off``).  Either way
    the parked greenlet keeps the one it switched to alive until it is
    resumed itself (greenlet's rule), which may be long after that one
    ended: what is kept is a bare greenlet (hub.Thread is a record that
    holds one, and drops what hangs on it when the thread ends), never a
    thread's result, traceback or sockets."""
    __slots__ = ("greenlet", "arm", "deadline_wait", "nio", "activity",
                 "_batch", "_bn", "_bpos", "_bw", "_get", "_forward",
                 "_bthread", "_hub", "_fdmap", "_owners", "_waiters",
                 "_preg", "_punreg", "_close_drops", "_thread",
                 "_close_unstarted", "_prime_read")

    def __init__(self, greenlet, arm, deadline_wait):
        self.greenlet = greenlet
        self.arm = arm
        self.deadline_wait = deadline_wait
        self.nio = 0
        self.activity = False   # a greenlet ran (poll() reports it)
        # The batch under way (None outside dispatch): its tokens and
        # count, the cursor (_bpos: the next token; _bw: the slot record
        # whose writer's half of token _bpos is still due, or None), what
        # dispatch was given and the OS thread running it.
        self._batch = None
        self._bn = self._bpos = 0
        self._bw = self._get = self._forward = self._bthread = None

    # -- registration (the hub's register/unregister: one per connection)

    def configure_fds(self, hub, fdmap, owners, waiters_class, register,
                      unregister, close_drops, poller=None):
        """What register()/unregister() work on: the hub, its fd -> slot
        record map, the fd -> hub map of every hub (``_OWNERS``), the
        backend's slot record class, its ``register(fd, w)`` and
        ``unregister(fd, closing)``, and whether a close drops the kernel
        registration by itself (``close_unregisters``).  The compiled
        core also takes the backend (*poller*) for its optional
        ``native_register`` (see socket2/pollers/__init__.py); this twin
        always calls ``register``."""
        self._hub = hub
        self._fdmap = fdmap
        self._owners = owners
        self._waiters = waiters_class
        self._preg = register
        self._punreg = unregister
        self._close_drops = close_drops

    def register(self, fd):
        """Watch *fd*; return its reader/writer slots."""
        w = self._waiters()
        # Owner first: on a shared poller the ADD can report the fd at once
        # (an accepted socket with data queued) to another OS thread, which
        # must then know whose it is.
        self._fdmap[fd] = w
        self._owners[fd] = self._hub
        try:
            self._preg(fd, w)
        except BaseException:
            del self._fdmap[fd]
            if self._owners.get(fd) is self._hub:
                del self._owners[fd]
            raise
        return w

    def unregister(self, fd, closing=False):
        """Stop watching *fd*; *closing*: it is about to be closed, which
        drops kernel registrations by itself (no system call needed)."""
        if self._fdmap.pop(fd, None) is not None:
            if not (closing and self._close_drops):
                self._punreg(fd, closing)
            if self._owners.get(fd) is self._hub:
                del self._owners[fd]

    def configure_threads(self, thread_type, close_unstarted, prime_read):
        """What start_when_readable() makes: the hub's thread record class,
        the default *on_cancel*, and the backend's ``prime_read(fd, w,
        type)`` (completion backends) or None."""
        self._thread = thread_type
        self._close_unstarted = close_unstarted
        self._prime_read = prime_read

    def start_when_readable(self, sock, func, args, kwargs, on_cancel=None):
        """Run ``func(sock, *args, **kwargs)`` in a new thread once *sock*
        has something to read (or fails, or is closed): hub.py's
        ``Hub.start_when_readable`` says how."""
        w = sock._w
        if w.rg is not None:
            raise Error("busy", "another thread is already receiving on "
                        "this socket")
        if sock._fd < 0:        # (no event would ever start the thread)
            raise Error("closed", "start_when_readable() on a closed socket")
        if self.arm is not None:
            self.arm(sock._fd, 0)
        elif self._prime_read is not None:
            self._prime_read(sock._fd, w, sock._type)
        t = self._thread(self._hub, func, (sock,) + args, kwargs)
        t._parked_in = w
        t._on_cancel = on_cancel or self._close_unstarted
        w.rg = t._g
        self.nio += 1

    # wait_readable and wait_writable are kept as two straight functions
    # over the rg/wg slots rather than one parametrised by direction (which
    # would cost a branch or a getattr per wait).

    def wait_readable(self, w, deadline, fd=-1):
        """Park the current greenlet in *w*'s reader slot until the fd is
        readable, *deadline* (a ``clock()`` value or ``None``) passes
        (``TimeoutError``) or the socket is closed (``Error('closed')``).
        *fd* is the socket's descriptor, for backends that arm per wait."""
        if w.rg is not None:
            raise Error("busy", "another thread is already receiving on "
                        "this socket")
        g = getcurrent()
        hubg = self.greenlet
        if g is hubg:
            raise Error("hub", "cannot wait inside the hub's own greenlet")
        if self.arm is not None:
            self.arm(fd, 0)
        w.rg = g
        self.nio += 1
        try:
            if deadline is None:
                if self._batch is not None and self._bthread == get_ident():
                    self._hand_off(g)
                else:
                    hubg.switch()
            else:
                self.deadline_wait(g, deadline)
        finally:
            w.rg = None
            # The edge this wait took may have brought more than the
            # caller will read: re-arm the shortcut (see Waiters).
            w.rready = True
            self.nio -= 1

    def wait_writable(self, w, deadline, fd=-1):
        """Like :meth:`wait_readable`, for the writer slot."""
        if w.wg is not None:
            raise Error("busy", "another thread is already sending on "
                        "this socket")
        g = getcurrent()
        hubg = self.greenlet
        if g is hubg:
            raise Error("hub", "cannot wait inside the hub's own greenlet")
        if self.arm is not None:
            self.arm(fd, 1)
        w.wg = g
        self.nio += 1
        try:
            if deadline is None:
                if self._batch is not None and self._bthread == get_ident():
                    self._hand_off(g)
                else:
                    hubg.switch()
            else:
                self.deadline_wait(g, deadline)
        finally:
            w.wg = None
            self.nio -= 1

    def _hand_off(self, g):
        """The parked greenlet *g*, of the OS thread running the batch,
        takes the batch's next event itself (class docstring): it switches
        to that event's waiter, or to the hub when the batch is done or
        the next waiter has not started.  What taking the event raises
        (``forward``) is raised in the hub's dispatch, as it would have
        been there; *g* stays parked."""
        try:
            nxt = self._next(True)
        except BaseException as e:   # noqa: B902 - the hub's to raise
            self.greenlet.throw(e)
            return
        if nxt is None:
            self.greenlet.switch()
        elif nxt is not g:           # g: its own event, the wait is over
            nxt.switch()

    def _next(self, handing=False):
        """The greenlet to resume for the batch's next event (read from
        its slot now), the cursor moved past that event; None when the
        batch is done.  Remembers read edges nobody waited for, and hands
        the tokens of fds this hub does not own to ``forward``.

        *handing*: for a thread parking in the batch, which switches only
        to a greenlet that is running (parked).  One that never ran starts
        on the stack of whoever switches to it, and greenlet copies that
        much more at every switch of its life: its event is left where it
        is, for the hub (returned), which starts it from its short stack."""
        w = self._bw
        if w is not None:
            # The writer's half of a token whose reader was resumed.  The
            # slot is read now: that reader may have closed the socket,
            # which already woke the writer.
            g = w.wg
            if handing and g is not None and not g:
                return self.greenlet
            self._bw = None
            self._bpos += 1
            if g is not None:
                self.activity = True
                return g
        tokens = self._batch
        get = self._get
        n = self._bn
        i = self._bpos
        while i < n:
            token = tokens[i]
            w = get(token >> 3)
            if w is None:
                # Past it first: a forward that raises does not repeat it.
                self._bpos = i + 1
                self._forward(token)
                i = self._bpos
                continue
            if token & 1:
                if token & 4:
                    w.hup = w.rready = True
                g = w.rg
                if g is not None:
                    if handing and not g:
                        self._bpos = i
                        return self.greenlet
                    if token & 2:
                        self._bpos = i
                        self._bw = w
                    else:
                        self._bpos = i + 1
                    self.activity = True
                    return g
                w.rready = True   # nobody waits: remember the edge
            i += 1
            if token & 2:
                g = w.wg
                if g is not None:
                    if handing and not g:
                        # The writer's half is next, for the hub.
                        self._bpos = i - 1
                        self._bw = w
                        return self.greenlet
                    self._bpos = i
                    self.activity = True
                    return g
        self._bpos = i
        return None

    def dispatch(self, tokens, fdmap, forward, leftover):
        """Deliver one batch of poller tokens (``fd << 3 | readable |
        writable << 1 | hangup << 2``): resume the reader and the writer
        parked on each fd in *fdmap*, or remember a read edge nobody waited
        for; ``forward(token)`` for an fd this hub does not own.  Sets
        ``activity`` before each switch (the greenlet resumed may be the
        one in poll(), which reads it).  The greenlets resumed take the
        batch's next events themselves when they park (see the class);
        this returns when the batch is done.  If an exception reaches the
        hub meanwhile (a signal, a kill), the events not yet delivered go
        to *leftover* (the hub looks at it on its next turn) so no edge is
        lost."""
        if self._batch is not None:
            raise RuntimeError("dispatch: a batch is already under way")
        if type(tokens) is memoryview:
            # Copied out, as the C version does: the poller's buffer is not
            # held across the switches (and a list indexes faster).
            tokens = tokens.tolist()
        self._batch = tokens
        self._bn = len(tokens)
        self._bpos = 0
        self._get = fdmap.get
        self._forward = forward
        self._bthread = get_ident()
        try:
            g = self._next()
            while g is not None:
                g.switch()
                g = self._next()
        except BaseException:
            self._requeue(leftover)
            raise
        finally:
            self._batch = self._bw = self._get = self._forward = None

    def _requeue(self, leftover):
        """The events of the batch not delivered yet, into *leftover*."""
        tokens = self._batch
        i = self._bpos
        if self._bw is not None:
            leftover.append(tokens[i] & ~5)   # the writer's half
            i += 1
        while i < self._bn:
            leftover.append(tokens[i])
            i += 1


class ReadScratch(_local):
    """Per OS thread: a buffer (``buf``, with ``view``, a memoryview, and
    ``p``, ``pointer(buf)``) that read()/readline()/recvall() receive
    into, keeping only what came.  A reader parked there holds no receive
    buffer of its own, so an idle connection waiting for its next line
    costs what one parked in recv() does; the greenlets of one OS thread
    share it safely, because what a receive wrote is copied out before
    anything else runs in that thread."""

    def __init__(self, size, pointer):
        self.buf = bytearray(size)
        self.view = memoryview(self.buf)
        self.p = pointer(self.buf)


class SocketBase:
    """The fields of a socket that the hot path reads (sockets.py's
    ``_Socket`` adds the rest)."""
    __slots__ = ("_fd", "_type", "_w", "_hub", "_core", "_rb", "timeout",
                 "_family", "_proto", "_bound", "_opts", "_excl",
                 "_busy", "_held")

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        # (speedups.c's sockbase_finalize: the same test, without a Python
        # call for a socket that was closed)
        if getattr(self, "_fd", -1) >= 0:
            self._finalize_open()


class ThreadBase:
    """The record of a cooperative thread (hub.py's ``Thread`` adds join,
    kill and the rare paths): its fields, ``__init__`` and ``_run``, the
    function its greenlet runs.  One is made per connection a server
    accepts, so the C twin (speedups.c) makes it and runs it without a
    Python frame of its own; this is the reference it follows."""

    __slots__ = ("_g", "_hub", "_func", "_args", "_kwargs", "name",
                 "_result", "_exc", "_joiners", "_finished", "_group",
                 "_parked_in", "_on_cancel", "_cancelled")

    def __init__(self, hub, func, args, kwargs, name=None):
        self._g = g = greenlet(self._run, hub.greenlet)
        g._s2_thread = self
        self._hub = hub
        if hub._sole is not None:
            hub._live += 1      # a forked child's own thread (keep_only)
        self._func = func
        self._args = args
        self._kwargs = kwargs
        self.name = name or getattr(func, "__name__", "thread")
        self._result = None
        self._exc = None
        self._joiners = None    # greenlets in join(), made on first use
        self._finished = False
        self._group = None      # the socket2.group that spawned it
        self._parked_in = None  # start_when_readable: the slot it waits in
        self._on_cancel = None  # start_when_readable: run if killed unstarted
        self._cancelled = None  # the kill that ends it before it started

    def _run(self):
        w = self._parked_in
        if w is not None:
            # Started by its socket's first event (start_when_readable):
            # leave the reader slot it sat in unstarted.
            self._parked_in = None
            if w.rg is self._g:
                w.rg = None
            self._hub._core.nio -= 1
        try:
            if self._cancelled is not None:
                self._start_cancelled()     # raises the kill
            func, args = self._func, self._args
            if self._kwargs:
                self._result = func(*args, **self._kwargs)
            else:
                # Plain calls for the usual arities: the interpreter runs a
                # plain call to a Python function in the frame loop it is
                # in, where f(*args) enters a new one (Python 3.11: its C
                # stack is then part of every switch of this greenlet).
                n = len(args)
                if n == 1:
                    self._result = func(args[0])
                elif n == 2:
                    self._result = func(args[0], args[1])
                elif n == 0:
                    self._result = func()
                elif n == 3:
                    self._result = func(args[0], args[1], args[2])
                else:
                    self._result = func(*args)
        except GreenletExit:
            pass
        except BaseException as e:   # noqa: B902 - kept for join()
            self._failed(e)
        finally:
            self._finished = True
            self._func = self._args = self._kwargs = None
            if self._joiners or self._group is not None:
                self._wake_joiners()
            self._joiners = None
            # What hangs on the greenlet goes now (see hub.Thread and
            # at_greenlet_end): the greenlet may be kept a while longer.
            # So do the context variables it set (its context is its own:
            # nothing runs in it after this).
            g = self._g
            g.__dict__.clear()
            g.gr_context = None
            if self._hub._sole is not None:
                self._sole_ended()


socket_methods = None
COMPILED = False


def thread_state_id():
    """The interpreter's id of the calling thread's state: an OS thread
    that calls into Python again from C (a native thread's callbacks)
    gets a new one each time, unlike its ident.  (Through ctypes here;
    the compiled twin asks the C API directly.)"""
    global thread_state_id
    import ctypes
    get = ctypes.pythonapi.PyThreadState_Get
    get.restype, get.argtypes = ctypes.c_void_p, []
    gid = ctypes.pythonapi.PyThreadState_GetID
    gid.restype, gid.argtypes = ctypes.c_uint64, [ctypes.c_void_p]

    def thread_state_id():
        return gid(get())
    return thread_state_id()


if os.environ.get("SOCKET2_PURE_PYTHON", "").strip() not in ("", "0"):
    pass
else:
    try:
        from . import _speedups
    except ImportError:      # a source tree whose extension is not built
        _speedups = None
    if _speedups is not None:
        Waiters = _speedups.Waiters          # noqa: F811
        HubCore = _speedups.HubCore          # noqa: F811
        SocketBase = _speedups.SocketBase    # noqa: F811
        ThreadBase = _speedups.ThreadBase    # noqa: F811
        socket_methods = {"recv": SocketBase._c_recv,
                          "sendall": SocketBase._c_sendall,
                          "accept": SocketBase._c_accept,
                          "close": SocketBase._c_close}
        COMPILED = True
        thread_state_id = _speedups.thread_state_id     # noqa: F811
        # A thread that ends leaves its 16 KiB frame-stack chunk for the
        # next one instead of unmapping it (speedups.c explains).
        _speedups.cache_stack_chunks()


def configure_accept(accept_addr, close_addr, socket_type, forks, retry):
    """Hand the compiled accept()/close() the socket layer's s2_accept_peer
    and s2_close, the class of accepted sockets, the fork-generation list
    and the errors after which accept() tries again (called once by
    sockets.py; nothing to do for the Python ones)."""
    if COMPILED:
        _speedups.configure_accept(accept_addr, close_addr, socket_type,
                                   forks, tuple(retry))


def configure_sockets(recv_addr, send_addr, eagain, ewouldblock, stream):
    """Hand the compiled entry points the socket layer's system calls
    (called once by sockets.py; nothing to do for the Python ones)."""
    if COMPILED:
        _speedups.configure(recv_addr, send_addr, eagain, ewouldblock,
                            stream, Error, os_error)
