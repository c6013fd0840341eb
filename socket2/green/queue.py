"""A cooperative ``queue`` module: the standard library's.

``Queue``, ``LifoQueue`` and ``PriorityQueue`` are the standard classes:
they wait on ``threading``'s locks and conditions, which cooperate once
``threading`` is patched (``socket2.monkey`` patches it first).  The
standard ``SimpleQueue`` is written in C and waits in C, so
:class:`SimpleQueue` here is a cooperative one, built on the same lock
machinery as ``socket2.green.thread``'s locks (``_locks``): a ``get`` waits in the
calling socket2 thread's hub (or blocks a real OS thread), and a ``put``
from any thread wakes it.
"""
import queue as __queue__
from queue import *  # noqa: F401,F403
from collections import deque
import types

from ._locks import _Sem

__implements__ = ["SimpleQueue"]
__all__ = list(__queue__.__all__)


class SimpleQueue:
    """``queue.SimpleQueue``: an unbounded FIFO queue; ``put`` never
    waits, ``get(block=True, timeout=None)`` waits cooperatively and
    raises ``queue.Empty`` when it gives up."""

    __slots__ = ("_items", "_count", "__weakref__")

    def __init__(self):
        self._items = deque()
        self._count = _Sem(0)       # one permit per item

    def put(self, item, block=True, timeout=None):
        """Add *item* (never waits: *block* and *timeout* are ignored, as
        in the standard library)."""
        self._items.append(item)
        self._count._release()

    def put_nowait(self, item):
        """Add *item*."""
        self.put(item, False)

    def get(self, block=True, timeout=None):
        """Remove and return the first item, waiting for one if *block*
        (at most *timeout* seconds); raise ``queue.Empty`` otherwise."""
        if block and timeout is not None:
            if timeout < 0:
                raise ValueError("'timeout' must be a non-negative number")
            wait = timeout
        else:
            wait = -1
        if not self._count._acquire(block, wait):
            raise Empty
        return self._items.popleft()

    def get_nowait(self):
        """Remove and return the first item, or raise ``queue.Empty``."""
        return self.get(False)

    def empty(self):
        """Whether the queue is empty (a snapshot)."""
        return not self._items

    def qsize(self):
        """How many items are queued (a snapshot)."""
        return len(self._items)

    __class_getitem__ = classmethod(types.GenericAlias)
