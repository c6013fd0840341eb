"""The benchmark tooling works end to end: `run.py --quick` builds the C
programs, runs every workload against the C reference and socket2's own
echo server, and every cell comes out as a number.  No timing is asserted."""
import json
import math
import os
import shutil
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RUN = os.path.join(ROOT, "tools", "bench", "run.py")

pytestmark = pytest.mark.one_poller


@pytest.mark.skipif(shutil.which(os.environ.get("CC", "gcc")) is None
                    or not sys.platform.startswith("linux"),
                    reason="the benchmark's load generator is C over epoll: "
                           "Linux with gcc")
def test_quick_bench_produces_every_cell(tmp_path):
    out = subprocess.run([sys.executable, RUN, "--quick", "--out", str(tmp_path)],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    (result,) = [f for f in os.listdir(tmp_path) if f.endswith(".json")]
    with open(tmp_path / result) as f:
        data = json.load(f)
    results = data["results"]
    assert set(results) == {"c-epoll", "socket2"}
    for server, cells in results.items():
        assert set(cells) == {"rr-1", "rr-100", "rr-1000", "rr-100+idle",
                              "churn", "bulk"}
        for workload, cell in cells.items():
            for key in ("rate", "cpu_us_per_op", "rss_mib"):
                v = cell[key]
                assert isinstance(v, (int, float)) and math.isfinite(v) \
                    and v > 0, (server, workload, key, v)
    assert data["imports"]["socket2"] > 0
    table = (tmp_path / "latest.md").read_text()
    assert "| socket2 |" in table and "x)" in table
