"""``socket2.serve()``: the accept loop every server writes, once."""
import sys

from .errors import Error, TimeoutError
from .hub import clock, newthread, seconds_arg, sleep, thread_of

# Accept failures that mean "the machine is short of something right now":
# wait a moment for connections to finish instead of dying.
_TRANSIENT = ("too_many_open_files", "no_buffer_space", "out_of_memory")


def serve(listener, handler, *args, tls=None, tls_timeout=10,
          silent_timeout=None, make_room=None, **kwargs):
    """Accept connections on the listening *listener* until it is closed;
    run ``handler(conn, *args, **kwargs)`` in a thread of its own for each.

    A connection's thread starts when the connection first has something to
    read (or is closed or fails): a client that connects and stays silent
    costs a socket, not a greenlet.  The handler owns *conn* (close it, or
    use ``with conn:``); if the thread is killed before it starts, the
    handler never runs and *conn* is closed then.  Returns when *listener*
    is closed; connections that never sent anything are closed then (their
    handlers never run), the others go on in their threads.

    With *silent_timeout* (seconds), a connection that sends nothing
    within that time of being accepted is closed, its handler never run.

    Running out of descriptors (or kernel memory) never stops the loop:
    the connection that has been silent longest (accepted, nothing
    received yet, its handler never started) is dropped to make room, so
    silent clients cannot hold the server's descriptors for ever; with
    none to drop, *make_room* (when given) is called: a callable that
    closes a connection the server can spare (an idle keep-alive one, say)
    and returns True, or returns False; failing that, accepting pauses for
    0.1 s.  Each is reported on stderr at most every 10 s.

    With *tls* (an ``ssl.SSLContext`` with the server's certificate), each
    connection first completes a TLS handshake within *tls_timeout* seconds
    of being accepted (a client that says nothing is dropped too), and the
    handler gets the ``TLSSocket``; a failed or stalled handshake closes
    that connection and is reported once on stderr.
    """
    hub = listener._hub
    start = hub.start_when_readable
    if tls is not None:
        import ssl
        if not isinstance(tls, ssl.SSLContext):
            raise TypeError("tls must be an ssl.SSLContext, not %s"
                            % type(tls).__name__)
        if tls.check_hostname or tls.protocol == ssl.PROTOCOL_TLS_CLIENT:
            # Every handshake would fail (a server has no host name to
            # check): say so once, here, not once per connection.
            raise ValueError("serve(tls=...) needs a server context: this "
                             "one is a client's (PROTOCOL_TLS_CLIENT, or it "
                             "checks host names: made by "
                             "ssl.create_default_context()?); use "
                             "ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)")
        tls_timeout = seconds_arg(tls_timeout, "tls_timeout")
        args = (tls, tls_timeout, handler, args)
        handler = _tls_connection
    silent = _Silent(hub)
    on_cancel = None
    if tls is None and silent_timeout is not None:
        silent._timeout = seconds_arg(silent_timeout, "silent_timeout")
        args = (handler, args, silent)
        handler = _timed_connection
        on_cancel = _timed_cancelled
    conns = silent._conns        # (silent.add, inlined below: per accept)
    accept = listener.accept
    try:
        while True:
            try:
                conn = accept()
            except Error as e:
                if e.err == "closed":
                    silent.drop_all()
                    return
                if e.err in _TRANSIENT:
                    if silent.drop_oldest():
                        silent.report(e, "dropped the connection silent "
                                      "longest")
                    elif make_room is not None and make_room():
                        silent.report(e, "closed an idle connection")
                    else:
                        silent.report(e, "pausing accept")
                        sleep(0.1)
                    continue
                raise
            now = conns[conn] = clock()
            if len(conns) > silent._limit or (silent._timeout is not None
                                              and silent._timer is None):
                silent.added(conn, now)
            if tls is not None:
                # Silent clients never start their thread: a timer drops
                # them.
                entry = hub._add_timer(clock() + tls_timeout,
                                       _drop_silent_tls, conn)
                start(conn, handler, args + (entry,), kwargs,
                      on_cancel=_tls_cancelled)
            else:
                # (silent_timeout: _Silent's one timer drops the silent ones)
                start(conn, handler, args, kwargs, on_cancel)
    finally:
        silent.stop()


class _Silent:
    """serve()'s accepted connections whose thread has not started yet
    (nothing received), oldest first: what to drop when descriptors run
    out.  A connection leaves when it is dropped, or lazily once its
    thread started or it closed (pruned when the record doubles, so it
    stays within twice the connections alive)."""

    __slots__ = ("_conns", "_limit", "_reported", "_quiet", "_hub",
                 "_timeout", "_timer", "ended")

    # Only a connection silent this long counts as silent: one accepted a
    # moment ago may have its request on the way (or already queued, its
    # thread not scheduled yet).
    GRACE = 1.0

    def __init__(self, hub=None, timeout=None):
        self._conns = {}         # conn -> clock() of its accept, in order
        self._limit = 1024
        self._reported = None    # clock() of the last report
        self._quiet = 0          # reports held back since
        # serve(silent_timeout=...): one timer for all of them, due when
        # the oldest connection still silent runs out of time (they are
        # in accept order), not one timer per connection.
        self._hub = hub
        self._timeout = timeout
        self._timer = None
        self.ended = False       # serve() returned (or was killed)

    @staticmethod
    def _waiting(conn):
        g = conn._w.rg if not conn.closed else None
        return g is not None and not g      # an unstarted thread parked

    def added(self, conn, now):
        """serve() just recorded *conn* at *now* (``_conns[conn] =
        clock()``, inline: one per accept): prune the record when it has
        doubled, and start the silent-timeout timer if none runs.  *conn*
        itself stays: its thread is parked only after this."""
        conns = self._conns
        if len(conns) > self._limit:
            for c in [c for c in conns
                      if c is not conn and not self._waiting(c)]:
                del conns[c]
            self._limit = max(1024, 2 * len(conns))
        if self._timeout is not None and self._timer is None:
            self._timer = self._hub._add_timer(now + self._timeout,
                                               self._expire, None)

    def _expire(self, _):
        """Timer: close every connection silent for silent_timeout since
        its accept (its thread starts, sees it closed, and its handler
        never runs); then wait for the next one that may be."""
        self._timer = None
        conns = self._conns
        now = clock()
        while conns:
            conn, accepted = next(iter(conns.items()))
            if not self._waiting(conn):
                del conns[conn]      # started or closed: not silent
                continue
            due = accepted + self._timeout
            if due > now:
                self._timer = self._hub._add_timer(due, self._expire, None)
                return
            del conns[conn]
            conn.close()

    def stop(self):
        """serve() returns, or was killed: the connections still silent
        keep their deadline (the timer goes on for them), and the timer
        goes as soon as none is left (see settle)."""
        self.ended = True
        self.settle()

    def settle(self):
        """Once serve() ended: drop the timer when no connection it may
        close is left.  Connections leave in accept order, so only the
        front is looked at: if the oldest is still silent, the timer is
        due for it anyway."""
        if self._timer is None:
            return
        conns = self._conns
        while conns:
            conn = next(iter(conns))
            if self._waiting(conn):
                return
            del conns[conn]
        self._hub._cancel_timer(self._timer)
        self._timer = None

    def drop_oldest(self, grace=GRACE):
        """Kill the oldest unstarted connection thread accepted more than
        *grace* seconds ago (its socket is closed, its handler never
        runs); False if there is none."""
        conns = self._conns
        now = clock()
        while conns:
            conn, accepted = next(iter(conns.items()))
            if grace is not None and now - accepted < grace:
                return False         # the rest are younger still
            del conns[conn]
            if self._waiting(conn):
                thread_of(conn._w.rg).kill()
                return True
        return False

    def drop_all(self):
        """Close every connection whose thread has not started (the
        listener closed: nothing will serve a client that said nothing)."""
        while self.drop_oldest(grace=None):
            pass

    def report(self, e, what):
        now = clock()
        if self._reported is not None and now - self._reported < 10:
            self._quiet += 1
            return
        more = " (and %d more times)" % self._quiet if self._quiet else ""
        sys.stderr.write("socket2.serve: %s; %s%s\n" % (e, what, more))
        sys.stderr.flush()
        self._reported, self._quiet = now, 0


def _tls_cancelled(conn, ctx, tls_timeout, handler, args, entry, **kwargs):
    """The connection's thread was killed before it started: its handler
    never runs, so its socket is closed and its silence timer stopped
    here."""
    conn._hub._cancel_timer(entry)
    conn.close()


def _drop_silent_tls(conn):
    """Timer: the connection sent nothing for tls_timeout seconds."""
    g = conn._w.rg
    if g is not None and not g:
        _report(conn, "no TLS handshake started in time")
        conn.close()


def _timed_connection(conn, handler, args, silent, **kwargs):
    """A connection's thread under serve(silent_timeout=...): the handler
    runs unless _Silent closed the connection as silent."""
    if silent.ended:
        silent.settle()               # (it may have been the last one)
    if conn._fd < 0:                  # (closed: a property call less)
        return                        # silent past the timeout
    if len(args) == 1 and not kwargs:
        handler(conn, args[0])        # (a plain call: see hub.Thread._run)
    else:
        handler(conn, *args, **kwargs)


def _timed_cancelled(conn, handler, args, silent, **kwargs):
    """The connection's thread was killed before it started: its handler
    never runs; its socket is closed here."""
    conn.close()
    if silent.ended:
        silent.settle()


def _peer(conn):
    try:
        return "%s:%s" % (conn.remote_addr, conn.remote_port)
    except Error:
        return "a client"


def _report(peer, what):
    if not isinstance(peer, str):
        peer = _peer(peer)
    sys.stderr.write("socket2.serve: TLS with %s: %s\n" % (peer, what))
    sys.stderr.flush()


def _tls_connection(conn, ctx, tls_timeout, handler, args, entry, **kwargs):
    """A connection's thread under serve(tls=...): handshake, then the
    handler with the TLSSocket."""
    from .tls import tls
    hub = conn._hub
    deadline = entry[0]
    hub._cancel_timer(entry)
    if conn.closed:
        return                        # dropped silent (reported already)
    peer = _peer(conn)
    try:
        t = tls(conn, ctx, server_side=True, expires=deadline)
    except TimeoutError:
        _report(peer, "handshake not finished within %gs" % tls_timeout)
        return
    except Error as e:
        _report(peer, "handshake failed: %s" % e)
        return
    except BaseException:
        conn.close()      # tls() leaves it open on a bad argument
        raise
    handler(t, *args, **kwargs)


# ---------------------------------------------------------------------------
# connect(): by name, Happy Eyeballs


def _interleave(nodes):
    """RFC 8305 section 4: alternate address families, starting with the
    family of the first address the resolver preferred."""
    if not nodes:
        return nodes
    first = nodes[0][0]
    a = [n for n in nodes if n[0] == first]
    b = [n for n in nodes if n[0] != first]
    out = []
    for i in range(max(len(a), len(b))):
        out.extend(x[i] for x in (a, b) if i < len(x))
    return out


def connect(host, port, *, family=None, tls=None, server_hostname=None,
            local=None, timeout=None, expires=None, happy_eyeballs=0.25):
    """Connect to *host* (a name or an IP) on *port* and return the
    connected ``tcp`` (or, with *tls*, a ``TLSSocket``).

    *host* is resolved without blocking the OS thread; then the addresses
    are raced as RFC 8305 ("Happy Eyeballs") says: IPv6 and IPv4
    interleaved, a new attempt started every *happy_eyeballs* seconds or as
    soon as the previous one fails; the first to connect wins and the
    others are closed.  *family* (``'inet'``/``'inet6'``) limits the
    addresses; *local* ``(host, port)`` binds each attempt first.
    ``tls=True`` wraps the winner with the default client context and
    ``server_hostname=host``, ``tls=context`` with that context.  The
    whole call is bounded by *timeout*/*expires*; when every attempt
    fails, the last attempt's error is raised.
    """
    from .addr import addr
    from .hub import _deadline, seconds_arg
    from .sockets import tcp
    from .sync import Queue

    deadline = _deadline(timeout, expires)
    delay = seconds_arg(happy_eyeballs, "happy_eyeballs")
    ai = addr(host, port, type="tcp", family=family)
    try:
        nodes = _interleave([(n.family(), n) for n in ai])
        nodes = [n for _, n in nodes]
        if not nodes:
            raise Error("host_not_found", "no address for %r" % (host,))
        results = Queue()
        attempts = []

        def attempt(node):
            s = tcp(node.family())
            try:
                if local is not None:
                    s.bind(*local)
                # This node only: the nodes after it have attempts of
                # their own.
                s._connect_node(node, deadline)
            except BaseException as e:   # noqa: B902 - reported below
                s.close()
                results.put((None, e))
                return
            results.put((s, None))

        winner, last = None, None
        pending = 0
        nxt = 0
        try:
            while winner is None:
                if nxt < len(nodes):
                    attempts.append(newthread(attempt, nodes[nxt]))
                    nxt += 1
                    pending += 1
                if pending == 0:
                    break
                wait_until = deadline
                if nxt < len(nodes) and delay is not None:
                    stagger = clock() + delay
                    wait_until = stagger if deadline is None \
                        else min(stagger, deadline)
                try:
                    s, e = results.get(expires=wait_until)
                except TimeoutError:
                    if deadline is not None and clock() >= deadline:
                        raise
                    continue                 # stagger: start the next one
                pending -= 1
                if s is not None:
                    winner = s
                else:
                    last = e
                    if nxt >= len(nodes) and pending == 0:
                        break
        finally:
            for t in attempts:
                t.kill()                     # losers close their sockets
            while not results.empty():
                s, _ = results.get_nowait()
                if s is not None and s is not winner:
                    s.close()
        if winner is None:
            raise last
    finally:
        ai.free()
    if tls is None or tls is False:
        return winner
    from .tls import tls as _tls
    import ssl
    ctx = None if tls is True else tls
    if ctx is not None and not isinstance(ctx, ssl.SSLContext):
        winner.close()
        raise TypeError("tls must be True or an ssl.SSLContext")
    return _tls(winner, ctx, server_hostname=server_hostname or host,
                expires=deadline)
