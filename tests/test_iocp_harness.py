"""The IOCP mechanics (socket2/ffi/iocp.c) run for real: cross-compiled
with mingw-w64 together with tests/iocp/harness.c and executed under wine
(natively on Windows CI).  .ci/run installs both Debian packages."""
import os
import shutil
import subprocess

import pytest

pytestmark = pytest.mark.one_poller

HERE = os.path.dirname(os.path.abspath(__file__))


def _wine():
    return shutil.which("wine64") or (
        "/usr/lib/wine/wine64" if os.path.exists("/usr/lib/wine/wine64") else None)


@pytest.mark.skipif(shutil.which("x86_64-w64-mingw32-gcc") is None or _wine() is None,
                    reason="needs gcc-mingw-w64-x86-64 and wine64 (Debian packages; "
                           ".ci/run installs them)")
def test_iocp_harness_under_wine():
    out = subprocess.run(["bash", os.path.join(HERE, "iocp", "run.sh")],
                         capture_output=True, text=True, timeout=600)
    lines = [l for l in out.stdout.splitlines() if l.startswith(("ok", "FAIL", "iocp:", "  FAIL"))]
    assert out.returncode == 0, "\n".join(lines) + out.stderr[-2000:]
    assert lines[-1] == "iocp: 6 passed, 0 failed", lines
