"""``threading.local`` per socket2 thread (``socket2.green.thread``'s
``_local``): each socket2 thread, and each OS thread outside socket2
threads, sees its own attributes; a thread's values go when it ends (or
its greenlet goes away, for a greenlet that is not a thread).

The per-thread dict is looked up on every attribute access and used as
the instance dict, descriptors first (as ``object.__getattribute__``
does), so methods and properties of a subclass see the calling thread's
values; nothing is swapped in and out (which a switch in the middle of a
property would break).
"""

import functools
import weakref

from greenlet import getcurrent

from .. import hub as _hub
from ..hub import at_greenlet_end as _at_greenlet_end
from ._locks import _AS_OS_THREAD, _is_hub_greenlet


def _key():
    """The greenlet whose locals are in use: the running socket2 thread,
    or the OS thread's root greenlet for the OS thread itself."""
    try:
        g = getcurrent()
    except RuntimeError:
        # The interpreter finalizes (greenlet refuses): only the OS thread
        # is left, under its root greenlet if it used locals before.
        ref = getattr(_hub._local, "locals_root", None)
        g = None if ref is None else ref()
        return _AS_OS_THREAD if g is None else g
    if _is_hub_greenlet(g):
        while g.parent is not None:
            g = g.parent
    return g


class _Dicts(dict):
    """A local's per-thread dicts: ``id(greenlet)`` -> (weakref of the
    greenlet, the dict).  (A dict that can be weakly referenced.)"""
    __slots__ = ("__weakref__",)


def _drop(used, key):
    """A socket2 thread ended: its dicts go from every local it used.
    (*used* is a WeakValueDictionary, read through its ``data``: a root
    greenlet's hook may run late in the interpreter's finalization, when
    the weakref module's own helpers are gone.)"""
    for ref in list(used.data.values()):
        dicts = ref()
        if dicts is not None:
            dicts.pop(key, None)


def _at_os_thread_end(callback):
    """Run ``callback()`` when the calling OS thread's state is cleared,
    as the standard library drops a thread's ``threading.local`` values
    (before ``join()`` returns: hub.at_os_thread_end)."""
    _hub.at_os_thread_end(callback)


class _local:
    """``threading.local`` per socket2 thread: each socket2 thread (and
    each OS thread outside socket2 threads) sees its own attributes.  A
    subclass's ``__init__`` runs, with the constructor's arguments, the
    first time a thread uses the object.  A thread's values are dropped
    when it ends (a socket2 thread, an OS thread), or when its greenlet
    goes away."""

    __slots__ = ("_local__dicts", "_local__args", "__weakref__")

    def __new__(cls, *args, **kwargs):
        if (args or kwargs) and cls.__init__ is object.__init__:
            raise TypeError("Initialization arguments are not supported")
        self = object.__new__(cls)
        object.__setattr__(self, "_local__dicts", _Dicts())
        object.__setattr__(self, "_local__args", (args, kwargs))
        # The creating thread's dict: Python calls __init__ for it next.
        _local_dict(self, init=False)
        return self

    def __getattribute__(self, name):
        d = _local_dict(self)[0]
        if name == "__dict__":
            return d
        return _lookup(self, d, name)

    def __setattr__(self, name, value):
        if name == "__dict__":
            raise AttributeError("%r object attribute '__dict__' is "
                                 "read-only" % type(self).__name__)
        d = _local_dict(self)[0]
        attr = _class_attr(type(self), name)
        if attr is not None and hasattr(type(attr), "__set__"):
            type(attr).__set__(attr, self, value)
        else:
            d[name] = value

    def __delattr__(self, name):
        if name == "__dict__":
            raise AttributeError("%r object attribute '__dict__' is "
                                 "read-only" % type(self).__name__)
        d = _local_dict(self)[0]
        attr = _class_attr(type(self), name)
        if attr is not None and hasattr(type(attr), "__delete__"):
            type(attr).__delete__(attr, self)
        elif name in d:
            del d[name]
        else:
            raise AttributeError(name)


_MISSING = object()


def _class_attr(cls, name):
    for klass in cls.__mro__:
        if name in klass.__dict__:
            return klass.__dict__[name]
    return None


def _lookup(self, d, name):
    """Attribute lookup with the per-thread dict *d* as the instance dict
    (descriptors first, as ``object.__getattribute__`` does)."""
    cls = type(self)
    attr = _class_attr(cls, name)
    if attr is not None and hasattr(type(attr), "__set__"):
        return type(attr).__get__(attr, self, cls)
    value = d.get(name, _MISSING)
    if value is not _MISSING:
        return value
    if attr is not None:
        get = getattr(type(attr), "__get__", None)
        return attr if get is None else get(attr, self, cls)
    if name in ("_local__dicts", "_local__args"):
        return object.__getattribute__(self, name)
    getattr_ = _class_attr(cls, "__getattr__")
    if getattr_ is not None:
        return getattr_(self, name)
    raise AttributeError("%r object has no attribute %r"
                         % (cls.__name__, name))


def _local_dict(self, init=True):
    """(the calling thread's dict of *self*, whether it was just made);
    a new dict is initialised by the class's ``__init__`` if *init*."""
    dicts = object.__getattribute__(self, "_local__dicts")
    g = _key()
    key = id(g)
    entry = dicts.get(key)
    if entry is not None:
        return entry[1], False
    d = {}
    # Dropped when the greenlet goes (its id may then be reused); the
    # callback holds the dicts, not the local.
    ref = weakref.ref(g, lambda _, k=key, ds=dicts: ds.pop(k, None))
    dicts[key] = (ref, d)
    gd = g.__dict__
    if g is _AS_OS_THREAD:
        pass        # (the interpreter finalizes: no thread ends after it)
    elif "_s2_thread" in gd or g.parent is None:
        # A socket2 thread's go when it ends, an OS thread's (its root
        # greenlet's) when the OS thread does: the greenlet may be kept a
        # while longer (hub.at_greenlet_end).  One registry per thread,
        # of the locals it used, held weakly: a local dropped meanwhile
        # leaves nothing behind, and a cycle through a local
        # (x.local.x = x) stays collectable.
        used = gd.get("_s2_locals")
        if used is None:
            used = gd["_s2_locals"] = weakref.WeakValueDictionary()
            drop = functools.partial(_drop, used, key)
            _at_greenlet_end(g, drop)
            if g.parent is None:
                _at_os_thread_end(drop)
                # (the key of this OS thread's values where greenlet no
                # longer answers getcurrent(): see _key)
                _hub._local.locals_root = weakref.ref(g)
        used[id(dicts)] = dicts
    init = type(self).__init__ if init else object.__init__
    if init is not object.__init__:
        args, kwargs = object.__getattribute__(self, "_local__args")
        try:
            init(self, *args, **kwargs)
        except BaseException:
            dicts.pop(key, None)
            raise
    return d, True
