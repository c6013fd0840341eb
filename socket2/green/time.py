"""A cooperative ``time`` module: the standard library's, with ``sleep``
waiting on socket2's hub (other threads run meanwhile)."""
import time as __time__
from time import *  # noqa: F401,F403

from ..hub import sleep as _sleep

__all__ = [n for n in dir(__time__) if not n.startswith("_")]


def sleep(secs):
    """Wait *secs* seconds cooperatively (``time.sleep``'s errors: a
    negative or NaN value raises ``ValueError``)."""
    _sleep(secs)
