"""The whole suite on Windows, for real: CPython 3.13 for Windows runs it
under wine with the IOCP backend, cross-built by mingw-w64
(tests/windows/run.sh; .ci/run installs both Debian packages, and the
Windows Python and wheels come from PyPI).  Natively on Windows CI the
suite simply runs on IOCP."""
import os
import re
import shutil
import subprocess
import sys

import pytest

pytestmark = pytest.mark.one_poller

HERE = os.path.dirname(os.path.abspath(__file__))


def _wine():
    return shutil.which("wine64") or (
        "/usr/lib/wine/wine64" if os.path.exists("/usr/lib/wine/wine64") else None)


@pytest.mark.skipif(sys.platform == "win32" or _wine() is None
                    or shutil.which("x86_64-w64-mingw32-gcc") is None,
                    reason="drives wine from Linux: needs wine64 and "
                           "gcc-mingw-w64-x86-64 (Debian packages; .ci/run "
                           "installs them)")
@pytest.mark.time_limit(1500)
def test_suite_on_windows_under_wine():
    out = subprocess.run(["bash", os.path.join(HERE, "windows", "run.sh"),
                          "-q", "-rsfE"],
                         env=dict(os.environ, PYTHON=sys.executable),
                         capture_output=True, text=True, timeout=1500)
    lines = out.stdout.splitlines()
    # What failed first (pytest's -rfE lines and the first traceback),
    # then the tail: a red run must say which Windows test failed.
    failed = [l for l in lines if l.startswith(("FAILED ", "ERROR "))]
    first = out.stdout.find("= FAILURES =")
    if first < 0:
        first = out.stdout.find("= ERRORS =")
    trace = out.stdout[first:first + 6000] if first >= 0 else ""
    tail = ("\n".join(failed) + "\n" + trace + "\n...\n"
            + out.stdout[-3000:] + out.stderr[-3000:])
    assert out.returncode == 0, tail
    summary = [l for l in out.stdout.splitlines() if " passed" in l]
    assert summary and "failed" not in summary[-1] \
        and "error" not in summary[-1], tail
    passed = int(re.search(r"(\d+) passed", summary[-1]).group(1))
    assert passed >= 100, tail      # the suite ran, not a handful of tests
