#!/usr/bin/env bash
# Cross-compile the IOCP mechanics (socket2/ffi/iocp.c) with their C test
# harness using mingw-w64, and run it headless under wine.  Exits non-zero
# if a check fails.  Needs Debian's gcc-mingw-w64-x86-64 and wine64.
set -euo pipefail
cd "$(dirname "$0")"
out=$(mktemp -d)
wine=$(command -v wine64 || echo /usr/lib/wine/wine64)
export WINEPREFIX="$out/prefix" WINEDEBUG=-all
trap 'wineserver -k 2>/dev/null || true; rm -rf "$out"' EXIT
x86_64-w64-mingw32-gcc -O2 -Wall -o "$out/harness.exe" harness.c -lws2_32 -lmswsock
timeout 300 "$wine" "$out/harness.exe"
