"""A cooperative ``subprocess`` module: the standard library's, with a
``Popen`` whose waits let the other socket2 threads run.

- ``wait()`` (with or without a timeout) waits on the child's process
  descriptor in the hub (``socket2.green.os.wait_exit``), then reaps it;
  without ``pidfd_open`` it is the standard ``wait`` over the cooperative
  ``os.waitpid``/``time.sleep``.
- ``communicate()`` always reads and writes the pipes through the
  cooperative selector (the standard one reads a single pipe with a
  blocking ``read()`` when no timeout is given).

``run()``, ``call()``, ``check_call()``, ``check_output()`` and
``getoutput()`` build on ``Popen`` and need nothing else.  On Windows,
where both wait in the kernel, they run in a worker OS thread
(``run_in_thread``) while the caller waits cooperatively.
"""
import os as _os
import subprocess as __subprocess__
from subprocess import *  # noqa: F401,F403

from .. import sync as _sync
from . import os as _gos

__implements__ = ["Popen"]
__all__ = list(__subprocess__.__all__)
_POSIX = _os.name == "posix"


class Popen(__subprocess__.Popen):
    """``subprocess.Popen`` with cooperative ``wait()`` and
    ``communicate()`` (see the module docstring)."""

    if _POSIX:
        def _wait(self, timeout):
            if self.returncode is not None:
                return self.returncode
            if _gos._cooperative():
                exited = _gos.wait_exit(self.pid, timeout)
                if exited is False:
                    raise TimeoutExpired(self.args, timeout)
                if exited:
                    return super()._wait(None)    # reaps it at once
            return super()._wait(timeout)

        def communicate(self, input=None, timeout=None):
            pipes = [self.stdin, self.stdout, self.stderr]
            if timeout is not None or self._communication_started \
                    or pipes.count(None) < 2 or pipes.count(None) == 3 \
                    or not _gos._cooperative():
                return super().communicate(input, timeout)
            # One pipe, no timeout: the standard library would read (or
            # write) it in one blocking call; the selector loop waits.
            try:
                stdout, stderr = self._communicate(input, None, None)
            finally:
                self._communication_started = True
            self.wait()
            return stdout, stderr
    else:
        # Windows: both wait in the kernel (WaitForSingleObject, reader
        # threads): done in a worker OS thread while the caller waits
        # cooperatively (threads started there are real OS threads).
        def _wait(self, timeout):
            if self.returncode is not None or not _gos._cooperative():
                return super()._wait(timeout)
            return _sync.run_in_thread(super()._wait, timeout)

        def communicate(self, input=None, timeout=None):
            if not _gos._cooperative():
                return super().communicate(input, timeout)
            return _sync.run_in_thread(super().communicate, input, timeout)
