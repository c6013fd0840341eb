"""``socket2.serve()``: the accept loop every server writes, once."""
import sys

from .errors import Error
from .hub import sleep

# Accept failures that mean "the machine is short of something right now":
# wait a moment for connections to finish instead of dying.
_TRANSIENT = ("too_many_open_files", "no_buffer_space", "out_of_memory")


def serve(listener, handler, *args, **kwargs):
    """Accept connections on the listening *listener* until it is closed;
    run ``handler(conn, *args, **kwargs)`` in a thread of its own for each.

    A connection's thread starts when the connection first has something to
    read (or is closed or fails): a client that connects and stays silent
    costs a socket, not a greenlet.  The handler owns *conn* (close it, or
    use ``with conn:``).  Returns when *listener* is closed; running out of
    descriptors pauses accepting for 0.1 s instead of failing.
    """
    hub = listener._hub
    start = hub.start_when_readable
    while True:
        try:
            conn = listener.accept()
        except Error as e:
            if e.err == "closed":
                return
            if e.err in _TRANSIENT:
                sys.stderr.write("socket2.serve: %s; pausing accept\n" % e)
                sleep(0.1)
                continue
            raise
        start(conn, handler, args, kwargs)
