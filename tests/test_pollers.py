"""Which pollers this build has, and how each one is selected."""
import os
import subprocess
import sys

import pytest

import socket2

pytestmark = pytest.mark.one_poller


def test_native_poller_is_the_default():
    if sys.platform.startswith("linux"):
        assert socket2.pollers()[0] == "epoll"
    if sys.platform == "win32":
        assert socket2.pollers() == ["iocp"]
    else:
        assert "poll" in socket2.pollers()


def test_kqueue_backend_is_built_and_tested_where_possible():
    if "kqueue" not in socket2.pollers():
        pytest.skip("kqueue poller not built: native on macOS/BSD; on Linux "
                    "it needs libkqueue found by pkg-config at build time, "
                    "so the suite ran on epoll and poll only")
    # Present: the suite above ran once more on it (parametrised).
    out = subprocess.run([sys.executable, "-c",
                          "import socket2; print(socket2.poller_name())"],
                         env=dict(os.environ, SOCKET2_POLLER="kqueue"),
                         capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "kqueue", out.stderr


def test_unknown_poller_is_a_clear_error():
    out = subprocess.run([sys.executable, "-c", "import socket2; socket2.tcp()"],
                         env=dict(os.environ, SOCKET2_POLLER="select"),
                         capture_output=True, text=True, timeout=60)
    assert out.returncode != 0
    assert "unknown poller 'select'" in out.stderr


def test_the_layering_holds():
    """Pollers never import the layers above them (hub, sockets, addr ...);
    the socket layer asks the backend what kind it is instead."""
    import ast
    import pathlib
    pkg = pathlib.Path(socket2.__file__).parent
    above = {"hub", "sockets", "addr", "serve", "timing", "_completion",
             "_offload"}
    for path in (pkg / "pollers").glob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.level >= 2:
                mod = (node.module or "").split(".")[0]
                assert mod not in above, "%s imports socket2.%s" % (
                    path.name, mod)
    assert callable(socket2.pollers)
    assert socket2.pollers() == socket2.available_pollers()
