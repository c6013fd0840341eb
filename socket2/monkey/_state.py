"""The one registry of what ``socket2.monkey`` replaced: behind
``original()``, ``is_patched()`` and ``unpatch_all()``."""
import importlib

_MISSING = object()
_NOT_SAVED = object()
_SAVED = {}          # (module name, attribute) -> the original (or _MISSING)
_PATCHED = set()     # names of the patched standard modules


def _modname(target):
    if isinstance(target, type):
        return "%s.%s" % (target.__module__, target.__name__)
    return target.__name__


def set_attr(target, name, value):
    """Put *value* at ``target.name`` (a module or a class), remembering
    the original the first time; ``_MISSING`` deletes the name."""
    key = (_modname(target), name)
    if key not in _SAVED:
        _SAVED[key] = getattr(target, name, _MISSING)
    if value is _MISSING:
        if hasattr(target, name):
            delattr(target, name)
    else:
        setattr(target, name, value)


def mark(*names):
    _PATCHED.update(names)


def is_patched(name):
    """Whether the standard module *name* is patched."""
    return name in _PATCHED


def original(module, name):
    """The standard library's ``module.name`` as it was before patching
    (``original('threading', 'Thread')`` starts real OS threads).  Raises
    ``AttributeError`` if it does not exist, ``ImportError`` for an
    unknown module."""
    if not isinstance(module, str) or not isinstance(name, str):
        raise TypeError("original() takes a module name and an attribute "
                        "name (strings)")
    value = _SAVED.get((module, name), _NOT_SAVED)
    if value is _NOT_SAVED:
        return getattr(importlib.import_module(module), name)
    if value is _MISSING:
        raise AttributeError("module %r had no attribute %r before "
                             "patching" % (module, name))
    return value


def _target(modname):
    """The module, or the class (``module.Class``: see _modname), that
    *modname* names."""
    try:
        return importlib.import_module(modname)
    except ImportError:
        module, _, cls = modname.rpartition(".")
        return getattr(importlib.import_module(module), cls)


def restore_all():
    """Put every original back."""
    for (modname, name), value in list(_SAVED.items()):
        target = _target(modname)
        if value is _MISSING:
            if hasattr(target, name):
                delattr(target, name)
        else:
            setattr(target, name, value)
    _SAVED.clear()
    _PATCHED.clear()
