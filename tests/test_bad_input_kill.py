"""Nothing lost: a process SIGKILLed in the middle of writing a results file or building an artifact
leaves the previous complete file (or no artifact), never a partial one the analysis would read."""
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pandas as pd

from splade_exp.analysis.load import load_results
from splade_exp.io import build_once
from splade_exp.results import make_frame, write_results

REPO = Path(__file__).resolve().parent.parent


def _frame(run_id: str, mrr: float, n: int = 4) -> pd.DataFrame:
    rows = [{"qk": k, "dk": 2 * k, "mrr@10": mrr, "flops": float(k)} for k in range(n)]
    return make_frame(rows, {"run_id": run_id, "sweep": "s", "system": "splade", "model": "m", "status": "completed",
                             "diverged_step": None})


def _start_and_kill(code: str, ready: str) -> subprocess.Popen:
    """Run ``code`` in a subprocess, wait until it prints ``ready``, then SIGKILL it."""
    proc = subprocess.Popen([sys.executable, "-c", textwrap.dedent(code)], cwd=REPO, stdout=subprocess.PIPE,
                            text=True)
    line = proc.stdout.readline()
    assert line.strip() == ready, line
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    return proc


def test_results_file_killed_mid_write_keeps_the_previous_file(tmp_path):
    path = tmp_path / "results" / "s" / "run1.parquet"
    write_results(path, _frame("run1", 0.25))
    before = path.read_bytes()
    # The child writes a large new frame through write_results; its parquet writer stops after
    # the first half of the bytes (a slow disk) and the child is killed there.
    _start_and_kill(f"""
        import sys, time
        import pandas as pd
        from splade_exp.results import write_results
        real = pd.DataFrame.to_parquet
        def half_then_hang(self, target, **kw):
            import io
            buf = io.BytesIO()
            real(self, buf, **kw)
            data = buf.getvalue()
            with open(target, "wb") as fh:
                fh.write(data[: len(data) // 2])
                fh.flush()
            print("HALF", flush=True)
            time.sleep(120)
        pd.DataFrame.to_parquet = half_then_hang
        big = pd.DataFrame({{"run_id": "run1", "qk": range(200_000), "dk": 0, "mrr@10": 0.9, "flops": 1.0,
                            "system": "splade", "status": "completed"}})
        write_results({str(path)!r}, big)
    """, "HALF")
    leftovers = [p.name for p in path.parent.iterdir() if p.name != path.name]
    assert len(leftovers) == 1 and leftovers[0].startswith(".run1.parquet.") and leftovers[0].endswith(".tmp")
    assert path.read_bytes() == before  # the previous complete file, untouched
    df = load_results(tmp_path / "results")
    assert len(df) == 4 and (df["mrr@10"] == 0.25).all()  # the partial temp file is never read


def test_artifact_killed_mid_build_is_rebuilt_not_reused(tmp_path):
    target = tmp_path / "artifacts" / "tokens" / "docs-abc"
    _start_and_kill(f"""
        import time
        from pathlib import Path
        from splade_exp.io import build_once
        def build(tmp):
            (tmp / "ids.bin").write_bytes(b"x" * 1000)
            print("BUILDING", flush=True)
            time.sleep(120)
        build_once(Path({str(target)!r}), build)
    """, "BUILDING")
    assert not target.exists()  # the half-built directory never got the artifact's name
    assert [p.name.startswith(".docs-abc.") for p in target.parent.iterdir() if p.name.endswith(".tmp")] == [True]
    built = build_once(target, lambda tmp: (tmp / "ids.bin").write_bytes(b"complete"))
    assert built and (target / "ids.bin").read_bytes() == b"complete"
    assert not list(target.parent.glob("*.tmp"))  # the killed build's temporary is gone with the rebuild
