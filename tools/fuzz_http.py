"""Differential fuzzing of socket2's HTTP/1.1 parser, for as long as you
like: mutations of valid requests, responses and chunked bodies, each
checked for the compiled parser and the Python twin agreeing, for
incremental feeding (every byte boundary) giving what the whole input
gives, and against h11 (same framing whenever both accept).  The test
suite runs the same for two seconds (tests/test_http_parser.py); the
checks themselves are in tests/http_fuzz.py.

    .venv/bin/python tools/fuzz_http.py --seconds 600
    .venv/bin/python tools/fuzz_http.py --seed 405735996 --seconds 5

Exits 1 on the first disagreement, printing the input and the seed that
reproduces it.
"""
import argparse
import os
import random
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "tests"))

import http_fuzz  # noqa: E402


def main(argv=None):
    ap = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog="The checks: tests/http_fuzz.py.",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=60.0,
                    help="how long to run (default 60)")
    ap.add_argument("--seed", type=int, default=None,
                    help="the first seed (default: random); each run of "
                         "--batch seconds takes the next one")
    ap.add_argument("--batch", type=float, default=10.0,
                    help="seconds per seed (default 10)")
    args = ap.parse_args(argv)
    if http_fuzz.C is None:
        print("warning: socket2._http_ffi is not built: comparing the "
              "Python twin's two paths only", file=sys.stderr)
    if http_fuzz.h11 is None:
        print("warning: h11 is not installed: no oracle", file=sys.stderr)
    seed = args.seed if args.seed is not None else random.randrange(2 ** 32)
    deadline = time.monotonic() + args.seconds
    total = 0
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            break
        try:
            total += http_fuzz.run(min(args.batch, left), seed)
        except AssertionError as e:
            print("FAILED with seed %d: %s" % (seed, e))
            print("rerun: %s tools/fuzz_http.py --seed %d --seconds %g"
                  % (sys.executable, seed, args.batch))
            return 1
        print("seed %d ok, %d inputs so far" % (seed, total), flush=True)
        seed += 1
    print("%d inputs, no disagreement" % total)
    return 0


if __name__ == "__main__":
    sys.exit(main())
