"""Scoped deadlines and sleep jobs.

``with socket2.timeout(2.0): ...`` puts one deadline over a whole block:
when it passes, whichever call the block is waiting in raises
``socket2.TimeoutError`` (its socket stays usable).  Scopes nest: the
earliest deadline wins, and each scope only claims its own expiry.

``sleep_job()`` is a sleep that another thread can cut short with
``wakeup(*values)``.
"""
from greenlet import getcurrent

from .errors import Error, TimeoutError
from .hub import clock, get_hub, _deadline, deadline_arg, seconds_arg

__all__ = ["timeout", "sleep_job", "SleepJob"]


class timeout:
    """A deadline over a block of calls: ``with socket2.timeout(2.0):``.

    *seconds* from now, or *expires* (a ``clock()`` value), whichever comes
    first; ``None`` for both makes a scope that never fires.  When it fires,
    ``socket2.TimeoutError`` is raised where the block waits and propagates
    out of the ``with``; ``expired`` then says it was this scope's.  With
    ``raise_=False`` the scope swallows its own expiry instead (the block
    is simply cut short), like trio's ``move_on_after``.
    """

    __slots__ = ("_deadline", "_raise", "_entry", "_hub", "_exc", "expired")

    def __init__(self, seconds=None, expires=None, raise_=True):
        self._deadline = _deadline(seconds, expires)
        self._raise = raise_
        self._entry = None
        self._exc = None
        self.expired = False

    @property
    def deadline(self):
        """The ``clock()`` value at which the scope fires (or ``None``)."""
        return self._deadline

    def __enter__(self):
        if self._entry is not None:
            raise Error("busy", "this timeout scope is already active")
        if self._deadline is not None:
            self._hub = hub = get_hub()
            self._exc = TimeoutError(
                "timeout", "timed out (scoped deadline of %s)" % self)
            self._entry = hub._add_timer(self._deadline, self._fire,
                                         getcurrent())
        return self

    def _fire(self, g):
        self.expired = True
        self._hub._throw(g, self._exc)

    def __exit__(self, typ, value, tb):
        if self._entry is not None:
            self._hub._cancel_timer(self._entry)
            self._entry = None
        if value is not None and value is self._exc and not self._raise:
            return True
        return False

    def __repr__(self):
        if self._deadline is None:
            return "<socket2.timeout never>"
        return "<socket2.timeout %.3fs left>" % (self._deadline - clock())


class SleepJob:
    """A sleep that another thread can end early: ``sj.sleep(5)`` returns
    ``None`` when the time is up, or the values given to ``sj.wakeup()``
    (one value as is, several as a tuple)."""

    __slots__ = ("_g",)

    def __init__(self):
        self._g = None

    def sleep_until(self, t=None):
        """Sleep until ``clock()`` reaches *t* (``None``: until woken)."""
        if self._g is not None:
            raise Error("busy", "another thread already sleeps on this job")
        t = deadline_arg(t, "sleep_until()'s time")
        hub = get_hub()
        g = self._g = getcurrent()
        entry = None if t is None else hub._add_timer(t, hub._fire_resume, g)
        try:
            values = hub._switch_to_hub()
        finally:
            self._g = None
            if entry is not None:
                hub._cancel_timer(entry)
        if values is None or len(values) == 0:
            return None
        return values[0] if len(values) == 1 else values

    def sleep(self, seconds=None):
        """Sleep *seconds* (``None``: until woken)."""
        seconds = seconds_arg(seconds, "sleep()'s seconds")
        return self.sleep_until(None if seconds is None
                                else clock() + seconds)

    def wakeup(self, *values):
        """Wake the sleeper, which returns *values*; ``False`` if nobody
        sleeps on this job."""
        g = self._g
        if g is None:
            return False
        self._g = None
        get_hub().schedule(g, values)
        return True

    @property
    def sleeping(self):
        return self._g is not None


def sleep_job():
    """A new :class:`SleepJob`."""
    return SleepJob()
