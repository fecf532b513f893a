"""A process that has read results files exits cleanly.

With pyarrow's default thread pools, a process that read a dozen of these files aborted at
interpreter exit ("terminate called without an active exception", exit code 134;
apache/arrow#34314) in 5 of 30 runs here, after its work was done: a failed job, report or test
run. ``read_results`` (used by the orchestrator and the analysis loader) reads on the calling
thread; 16 fresh processes must all exit 0 (with the old reader, all 16 passing had a chance of
about 5 %)."""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pandas as pd

from splade_exp.results import write_results

READ = """
import sys
from pathlib import Path
from splade_exp.results import read_results
frames = [read_results(p) for p in sorted(Path(sys.argv[1]).glob("*.parquet"))]
assert sum(len(f) for f in frames) == 48 and frames[0]["cfg.s1"][0] == "val1_0"
"""


def _results_like_files(folder) -> None:
    """12 files shaped like results rows: 4 rows, flattened-config strings and floats, nullable ints."""
    rng = np.random.default_rng(0)
    for i in range(12):
        cols = {f"cfg.s{j}": [f"val{j}_{k}" for k in range(4)] for j in range(60)}
        cols.update({f"cfg.f{j}": rng.random(4) for j in range(60)})
        cols["diverged_step"] = pd.array([None, 1, None, 2], dtype="Int64")
        cols["note"] = [None, "a", None, "b"]
        write_results(folder / f"r{i}.parquet", pd.DataFrame(cols))


def test_processes_that_read_results_exit_cleanly(tmp_path):
    _results_like_files(tmp_path)
    codes = []
    for _ in range(16):
        done = subprocess.run([sys.executable, "-c", READ, str(tmp_path)], capture_output=True, text=True)
        codes.append((done.returncode, done.stderr.strip()[-300:]))
    assert all(rc == 0 for rc, _ in codes), [c for c in codes if c[0] != 0]
