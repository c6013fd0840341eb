"""Cross-build socket2 for Windows with mingw-w64, for running under wine.

    python build.py PYROOT OUT

PYROOT is a Windows CPython installation (include/, libs/, python.exe);
OUT receives ``socket2/`` with its cffi modules compiled as ``.pyd`` files
for that Python, plus ``tests/``, ``examples/`` and ``pyproject.toml``,
ready for ``python.exe -m pytest`` with OUT as the working directory.

The C code is what setup.py would build on Windows: the same build scripts
(``socket2/ffi/build_socket.py``, ``build_iocp.py``) with ``sys.platform``
set to ``win32`` while they are loaded, their C emitted by cffi and compiled
against PYROOT's headers and import library, and the hot path's extension
(``socket2/ffi/speedups.c``) and the WSGI server's
(``socket2/ffi/http_speedups.c``).
"""
import importlib.util
import os
import re
import shutil
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(
    __file__))))
FFI_DIR = os.path.join(ROOT, "socket2", "ffi")
MODULES = ["build_socket", "build_iocp", "build_http"]
CC = "x86_64-w64-mingw32-gcc"


def _python_tag(pyroot):
    with open(os.path.join(pyroot, "include", "patchlevel.h")) as f:
        text = f.read()
    major = re.search(r"#define PY_MAJOR_VERSION\s+(\d+)", text).group(1)
    minor = re.search(r"#define PY_MINOR_VERSION\s+(\d+)", text).group(1)
    return major + minor


def _load_windows_builder(name):
    real = sys.platform
    sys.platform = "win32"
    try:
        spec = importlib.util.spec_from_file_location(
            "_s2win_" + name, os.path.join(FFI_DIR, name + ".py"))
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
    finally:
        sys.platform = real
    return mod.ffibuilder


def _copy_tree(src, dst):
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns(
        "__pycache__", "*.so", "*.pyd", "*.o", "*.c.tmp"))


def build(pyroot, out):
    tag = _python_tag(pyroot)
    for sub in ("socket2", "tests", "examples"):
        shutil.rmtree(os.path.join(out, sub), ignore_errors=True)
        _copy_tree(os.path.join(ROOT, sub), os.path.join(out, sub))
    shutil.copy(os.path.join(ROOT, "pyproject.toml"), out)
    csrc = os.path.join(out, "c")
    os.makedirs(csrc, exist_ok=True)
    for name in MODULES:
        builder = _load_windows_builder(name)
        module = builder._assigned_source[0]          # socket2._xxx_ffi
        c_file = os.path.join(csrc, module.split(".")[-1] + ".c")
        builder.emit_c_code(c_file)
        kwds = builder._assigned_source[-1]
        pyd = os.path.join(out, *module.split(".")) + \
            ".cp%s-win_amd64.pyd" % tag
        cmd = [CC, "-O2", "-shared", "-o", pyd, c_file,
               "-I" + os.path.join(pyroot, "include"), "-I" + FFI_DIR,
               "-L" + os.path.join(pyroot, "libs"), "-lpython" + tag]
        cmd += ["-I" + d for d in kwds.get("include_dirs", [])]
        cmd += ["-l" + lib for lib in kwds.get("libraries", [])]
        subprocess.run(cmd, check=True)
        print("built", os.path.relpath(pyd, out))
    # The hot path's C extension: plain C over the Python and greenlet C
    # APIs (greenlet.h is the same on every OS: the host's copy serves).
    spec = importlib.util.spec_from_file_location(
        "_s2win_build_speedups", os.path.join(FFI_DIR, "build_speedups.py"))
    speedups = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(speedups)
    pyd = os.path.join(out, "socket2", "_speedups.cp%s-win_amd64.pyd" % tag)
    subprocess.run([CC, "-O2", "-shared", "-o", pyd, speedups.SOURCE,
                    "-I" + os.path.join(pyroot, "include"),
                    "-I" + speedups.greenlet_include(),
                    "-L" + os.path.join(pyroot, "libs"), "-lpython" + tag],
                   check=True)
    print("built", os.path.relpath(pyd, out))
    # The WSGI server's request loop (it compiles http_parser.c in).
    pyd = os.path.join(out, "socket2",
                       "_http_speedups.cp%s-win_amd64.pyd" % tag)
    subprocess.run([CC, "-O2", "-shared", "-o", pyd, speedups.HTTP_SOURCE,
                    "-I" + os.path.join(pyroot, "include"), "-I" + FFI_DIR,
                    "-L" + os.path.join(pyroot, "libs"), "-lpython" + tag],
                   check=True)
    print("built", os.path.relpath(pyd, out))


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    build(sys.argv[1], sys.argv[2])
