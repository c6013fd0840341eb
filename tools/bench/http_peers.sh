#!/usr/bin/env bash
# Installs the peers of the HTTP benchmark (tools/bench/http_bench.py) into
# their own virtual environment, never socket2's .venv (which stays as CI
# builds it):
#
#   bash tools/bench/http_peers.sh            # pip part only
#   bash tools/bench/http_peers.sh --apt      # also the Debian packages
#
# The environment is $VENV_BENCH (default: .venv-bench at the repository's
# root).  Every package is installed by name from PyPI; meinheld's last
# release pins greenlet<0.5, so it is built with --no-deps against the
# current greenlet (its C code may not build on a new Python: the script
# says so and goes on; the benchmark then reports meinheld as missing).
set -uo pipefail
cd "$(dirname "$0")/../.."

VENV_BENCH=${VENV_BENCH:-.venv-bench}
PY="$VENV_BENCH/bin/python"

# Debian: wrk (load generator), nginx-light (the C reference), libev-dev
# (bjoern's event loop), a compiler and Python headers (bjoern, meinheld).
APT_PACKAGES="wrk nginx-light libev-dev build-essential python3-dev"

if [ "${1:-}" = "--apt" ]; then
    apt-get install -y $APT_PACKAGES || exit 1
fi

if [ ! -x "$PY" ]; then
    python3 -m venv "$VENV_BENCH" || {
        echo "http_peers.sh: 'python3 -m venv' failed; on Debian: apt-get install python3-venv" >&2
        exit 1
    }
fi
"$PY" -m pip install -q --upgrade pip || exit 1

rc=0
# One pip call per peer: one that fails to build does not stop the others.
# (gunicorn's gevent worker imports packaging, which gunicorn does not
# declare.)
for pkg in "granian" "uvicorn httptools uvloop" "gunicorn gevent packaging" \
           "gevent" "waitress" "bjoern" "greenlet" "py-spy"; do
    echo "http_peers.sh: pip install $pkg" >&2
    # shellcheck disable=SC2086
    "$PY" -m pip install -q $pkg || { echo "http_peers.sh: $pkg FAILED" >&2; rc=1; }
done
echo "http_peers.sh: pip install --no-deps meinheld (against greenlet $("$PY" -c 'import greenlet; print(greenlet.__version__)'))" >&2
"$PY" -m pip install -q --no-deps meinheld \
    || echo "http_peers.sh: meinheld did not build (see above); the benchmark reports it as not available" >&2
"$PY" -m pip list 2>/dev/null | grep -iE '^(bjoern|granian|meinheld|uvicorn|httptools|uvloop|gunicorn|gevent|greenlet|waitress|py-spy) '
exit $rc
