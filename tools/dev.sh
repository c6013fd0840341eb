#!/usr/bin/env bash
# Developer entry point: sets up .venv (when missing or stale) and runs a job.
#   tools/dev.sh run [echo_server args]   build, then start the echo server
#   tools/dev.sh test [pytest args]       build, then run the test suite (twice:
#                                         compiled and pure-Python hot path)
#   tools/dev.sh bench [--quick ...]      build, then the side-by-side benchmark
#   tools/dev.sh bench-sync               build, then Lock/Queue costs vs gevent
#   tools/dev.sh bench-green              build, then patched requests/echo costs
#   tools/dev.sh bench-instructions       build, then instructions per round trip
#                                         (callgrind: C, socket2, pure Python)
#   tools/dev.sh bench-http               build, then the WSGI server beside
#                                         nginx, bjoern, granian, gunicorn ...
#   tools/dev.sh bench-http-client        build, then the HTTP client beside
#                                         geventhttpclient, requests, pycurl
#   tools/dev.sh stdlib-tests [modules]   build, then CPython's own test suites
#                                         (threading, queue, subprocess ...)
#                                         under patch_all() (Debian: needs
#                                         libpython3-testsuite)
#   tools/dev.sh setup                    only build
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=${VENV:-.venv}
PY="$VENV/bin/python"
STAMP="$VENV/.socket2-built"

setup() {
    if [ ! -x "$PY" ]; then
        python3 -m venv "$VENV" || {
            echo "dev.sh: 'python3 -m venv' failed; on Debian: apt-get install python3-venv python3-dev" >&2
            exit 1
        }
    fi
    # Rebuild when the build inputs changed since the last build.
    if [ ! -f "$STAMP" ] || [ -n "$(find pyproject.toml setup.py socket2/ffi -newer "$STAMP" -print -quit)" ]; then
        "$PY" -m pip install -q --upgrade pip
        "$PY" -m pip install -q -e '.[test]'
        touch "$STAMP"
    fi
}

cmd=${1:-}
[ $# -gt 0 ] && shift
case "$cmd" in
    setup) setup ;;
    run)   setup; exec "$PY" examples/echo_server.py "$@" ;;
    test)  setup
           # Twice: the compiled hot path (what users run), then the pure-
           # Python one (socket2/_hotpath.py) on this OS's pollers.  In
           # S2_TEST_WORKERS processes (pytest-xdist; default 3): the tests
           # mostly wait on sockets and timers, so three share two cores
           # well.  '-n 0' among the arguments runs them in this process.
           rc=0
           workers=(-n "${S2_TEST_WORKERS:-3}")
           "$PY" -m pytest "${workers[@]}" "$@" || rc=$?
           echo "dev.sh: again with SOCKET2_PURE_PYTHON=1 (the Python hot path)" >&2
           SOCKET2_PURE_PYTHON=1 "$PY" -m pytest "${workers[@]}" \
               --ignore=tests/test_windows_wine.py "$@" || rc=$?
           exit $rc ;;
    bench) setup; exec "$PY" tools/bench/run.py "$@" ;;
    bench-sync) setup; exec "$PY" tools/bench/sync_bench.py "$@" ;;
    bench-green) setup; exec "$PY" tools/bench/green_bench.py "$@" ;;
    bench-instructions) setup; exec "$PY" tools/bench/instructions.py "$@" ;;
    stdlib-tests) setup
           # (without module names: the program's whole list)
           exec "$PY" tests/programs/stdlib_under_monkey.py "$@" ;;
    bench-http) setup; exec "$PY" tools/bench/http_bench.py "$@" ;;
    bench-http-client) setup; exec "$PY" tools/bench/http_client_bench.py "$@" ;;
    *)     echo "usage: tools/dev.sh run|test|bench|bench-sync|bench-green|bench-instructions|bench-http|bench-http-client|stdlib-tests|setup [args...]" >&2; exit 2 ;;
esac
