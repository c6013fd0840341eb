"""Run CPython's own test modules under ``socket2.monkey.patch_all()``.

    python tests/programs/stdlib_under_monkey.py [--timeout S] [-j N]
        [--lib socket2|gevent] [--json FILE] [MODULE...]
    (e.g. test_socket test_ssl test_threading test_queue test_subprocess;
    without modules: every module of DEFAULT below)

``--lib gevent`` runs the same tests, with the same skips, under gevent's
``patch_all()`` instead (run it with an interpreter that has gevent), for
the side-by-side counts; ``--json`` keeps every module's result (tests
run, the ids that failed, seconds).  A module that the interpreter's
``test`` package lacks is taken from the distribution's copy for the
same Python version when there is one (Debian's libpython3.X-testsuite);
a module found in neither fails the run.

Each module runs in a fresh interpreter, patched before the test module
is imported; ``-j N`` runs N of them at a time (as CPython's own
``regrtest -j`` does: the modules are written to run side by side), and
the reports still come in the order the modules were given.  The failures that cooperative threads cannot avoid are
listed, each with its reason, in ``stdlib_expected_failures.txt`` beside
this file: ``xfail`` entries run and are expected to fail, ``skip``
entries (a test, or a whole class) cannot run at all (they would hang the process: a thread that
never waits starves the others, as with any cooperative library).  Any
other failure or error, and a module that does not finish within its
timeout, fails the run (exit status 1); an ``xfail`` that passes is
reported so that the list can shrink.
"""
import argparse
import concurrent.futures
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
LIST = os.path.join(HERE, "stdlib_expected_failures.txt")

# The suites of what patch_all() replaces, and of the libraries over it;
# the longest first (with -j, the others run beside them).
DEFAULT = ["test_concurrent_futures", "test_socket", "test_imaplib",
           "test_signal", "test_xmlrpc", "test_logging", "test_subprocess",
           "test_httpservers", "test_threading", "test_smtplib",
           "test_selectors", "test_ssl", "test_ftplib", "test_queue",
           "test_poplib", "test_urllib2_localnet", "test_select",
           "test_timeout", "test_socketserver", "test_thread",
           "test_httplib", "test_wsgiref", "test_threading_local"]

CHILD = r"""
import json, signal, sys, unittest, faulthandler
# Started in the background by a shell without job control, SIGINT comes
# ignored, and the KeyboardInterrupt tests (test_signal, test_threading's
# interrupt_main) would fail for that alone: as in a terminal.
signal.signal(signal.SIGINT, signal.default_int_handler)
PATCH
from test import support
name, timeout, out = sys.argv[1], float(sys.argv[2]), sys.argv[3]
skips = set(sys.argv[4:])
faulthandler.dump_traceback_later(timeout, exit=True)
support.verbose = False
mod = __import__("test." + name, fromlist=["_"])
def flat(s):
    for t in s:
        if isinstance(t, unittest.TestSuite):
            yield from flat(t)
        else:
            yield t
def short(t):
    tid = t.id()
    return tid[5:] if tid.startswith("test.") else tid
def skipped(tid):
    return any(tid == s or tid.startswith(s + ".") for s in skips)
tests = [t for t in flat(unittest.TestLoader().loadTestsFromModule(mod))
         if not skipped(short(t))]
r = unittest.TextTestRunner(verbosity=1, stream=sys.stderr).run(
    unittest.TestSuite(tests))
bad = [short(t) for t, _ in r.failures + r.errors]
# ids as in the list: MODULE.CLASS.TEST
# To a file: some tests leave the standard streams redirected or closed.
with open(out, "w") as f:
    json.dump({"run": r.testsRun, "bad": bad, "skipped": len(r.skipped),
               "tracebacks": {short(t): tb[-3000:]
                              for t, tb in r.failures + r.errors}}, f)
"""


PATCHES = {
    "socket2": "import socket2.monkey\nsocket2.monkey.patch_all()",
    # For the side-by-side counts: the same tests under gevent's patching
    # (the interpreter running this script must have gevent installed).
    "gevent": "from gevent import monkey\nmonkey.patch_all()",
}


def expected():
    """{test id: (kind, reason)} from the list (kind: xfail, skip, or
    skip-copy: skipped when the module is the distribution's copy, see
    find_module)."""
    out = {}
    with open(LIST) as f:
        for line in f:
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            kind, test, reason = line.split(None, 2)
            if kind not in ("xfail", "skip", "skip-copy"):
                raise ValueError("%s: unknown kind %r" % (LIST, kind))
            out[test] = (kind, reason)
    return out


def find_module(name):
    """Where test module *name* is: "" in the interpreter's own test
    package, else the path of the distribution's copy for the same
    Python version (Debian's libpython3.X-testsuite, which some builds'
    test packages lack modules of: this pyenv 3.11 has no
    test_concurrent_futures), else None."""
    try:
        found = importlib.util.find_spec("test." + name) is not None
    except (ImportError, ValueError):   # "test_x.py", a dotted typo...
        found = False
    if found:
        return ""
    base = "/usr/lib/python%d.%d/test" % sys.version_info[:2]
    for path in (os.path.join(base, name + ".py"),
                 os.path.join(base, name, "__init__.py")):
        if os.path.exists(path):
            return path
    return None


def run_module(name, timeout, known, lib="socket2", path=""):
    skips = [t for t, (kind, _) in known.items()
             if (kind == "skip" or kind == "skip-copy" and path)
             and t.startswith(name + ".")]
    child = CHILD.replace("PATCH", PATCHES[lib], 1)
    env = dict(os.environ)
    with tempfile.TemporaryDirectory() as d:
        out = os.path.join(d, "result.json")
        if path:
            # The distribution's copy, found as test.NAME by the child and
            # by the processes it spawns: a ``test`` package first on the
            # path whose modules come from the interpreter's own test
            # package, then from the distribution's directory.
            overlay = os.path.join(d, "overlay", "test")
            os.makedirs(overlay)
            own = os.path.join(os.path.dirname(os.__file__), "test")
            with open(os.path.join(overlay, "__init__.py"), "w") as f:
                f.write("__path__[:] = %r\n" % [
                    own, os.path.dirname(path.replace(
                        os.sep + "__init__.py", ""))])
            env["PYTHONPATH"] = os.pathsep.join(
                [os.path.dirname(overlay)]
                + [p for p in [env.get("PYTHONPATH")] if p])
        try:
            proc = subprocess.run([sys.executable, "-c", child, name,
                                   str(timeout), out] + skips,
                                  capture_output=True, text=True,
                                  timeout=timeout + 60, cwd=d, env=env)
        except subprocess.TimeoutExpired as e:
            return None, "killed after %ss\n%s" % (
                timeout + 60, (e.stderr or b"")[-4000:])
        if not os.path.exists(out):
            return None, proc.stderr[-4000:]
        with open(out) as f:
            return json.load(f), proc.stderr


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--timeout", type=float, default=300,
                   help="seconds a module may take (default 300)")
    p.add_argument("-j", "--jobs", type=int, default=1,
                   help="modules run at a time, each in its own process "
                   "(default 1)")
    p.add_argument("--lib", choices=sorted(PATCHES), default="socket2",
                   help="whose patch_all() to run under (default socket2; "
                   "gevent for the side-by-side counts)")
    p.add_argument("--json", help="also write every module's result here")
    p.add_argument("-v", "--verbose", action="store_true",
                   help="print the traceback of each unexpected failure")
    p.add_argument("modules", nargs="*", help="e.g. test_threading "
                   "(default: %s)" % " ".join(DEFAULT))
    args = p.parse_args(argv)
    if args.jobs < 1:
        p.error("-j must be at least 1, not %d" % args.jobs)
    known = expected()
    modules = args.modules or DEFAULT

    def run(name, path):
        t0 = time.monotonic()
        res, err = run_module(name, args.timeout, known, args.lib, path)
        if res is not None:
            res["seconds"] = round(time.monotonic() - t0, 1)
        return res, err

    failed = False
    results = {}
    with concurrent.futures.ThreadPoolExecutor(args.jobs) as pool:
        runs = []
        for name in modules:
            path = find_module(name)
            runs.append((name, path, None if path is None
                         else pool.submit(run, name, path)))
        for name, path, future in runs:
            if path is None:
                # A module asked for and not run fails the run: a misspelt
                # name must not pass (find_module says where it looked).
                print("%s: NOT RUN: neither in this interpreter's test "
                      "package nor in /usr/lib/python%d.%d/test (Debian's "
                      "libpython%d.%d-testsuite has the latter)"
                      % ((name,) + sys.version_info[:2] * 2), flush=True)
                results[name] = "missing"
                failed = True
                continue
            if path:
                print("%s: from %s (the interpreter's test package lacks "
                      "it)" % (name, path))
            res, err = future.result()
            results[name] = res
            if args.json:
                with open(args.json, "w") as f:
                    json.dump(results, f, indent=1)
            failed = report(name, res, err, known, args.verbose) or failed
    return 1 if failed else 0


def report(name, res, err, known, verbose):
    """Print module *name*'s result; whether it failed the run."""
    if res is None:
        print("%s: no result (a hang, a crash or an error outside the "
              "tests)\n%s" % (name, err), flush=True)
        return True
    bad = set(res["bad"])
    xfail = {t for t, (kind, _) in known.items()
             if kind == "xfail" and t.startswith(name + ".")}
    unexpected = sorted(bad - xfail)
    fixed = sorted(xfail - bad)
    print("%s: %d run, %d expected failures, %d unexpected, %d skipped"
          " (%.0f s)" % (name, res["run"], len(bad & xfail),
                         len(unexpected), res["skipped"], res["seconds"]))
    for t in unexpected:
        print("  UNEXPECTED", t)
        if verbose:
            print("    " + res["tracebacks"].get(t, "").replace(
                "\n", "\n    "))
    for t in fixed:
        print("  passes now (drop it from the list):", t)
    sys.stdout.flush()
    return bool(unexpected)


if __name__ == "__main__":
    sys.exit(main())
