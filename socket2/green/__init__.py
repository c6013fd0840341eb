"""Cooperative versions of standard-library modules: ``socket2.green.socket``,
``.ssl``, ``.select``, ``.selectors``, ``.time``, ``.thread`` (``_thread``),
``.threading``, ``.queue``, ``.os``, ``.subprocess`` and ``.signal`` have
their namesakes' names, classes, functions and constants, and their
blocking calls wait on socket2's hub.  Each lists the names it replaces
in ``__implements__``.  Import them directly, or let
``socket2.monkey.patch_all()`` put them into the standard library's
modules for code you do not control.
"""
