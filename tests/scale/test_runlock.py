"""The run lock: two launches of one run id under one root train it once; the second waits and
reuses the results (``lock=wait``) or leaves it to the first (``lock=skip``). DDP ranks of one job
are one holder."""
from __future__ import annotations

import json
import os
import signal
import threading
import time

import pytest

from conftest import compose_cfg
from smoke_cli import launch, shared_artifacts, tail
from splade_exp.results import read_results
from splade_exp.run import results_path, run_id
from splade_exp.runlock import RunLock, job_token

ARGS = ["+experiment=smoke", "logger=csv", "trainer.max_steps=20", "trainer.checkpoint_every_n_steps=5"]


def _wait_for(predicate, timeout: float, what: str, logs=()) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}\n" + "\n".join(tail(p) for p in logs))
        time.sleep(0.05)


@pytest.mark.slow
def test_two_launches_of_one_run_train_it_once(tmp_path, tmp_path_factory):
    root, artifacts = tmp_path / "root", shared_artifacts(tmp_path_factory)
    cfg = compose_cfg([*ARGS, f"paths.artifacts_dir={artifacts}"], root)
    rid = run_id(cfg)
    run_dir, out = root / "runs" / rid, results_path(cfg, rid)
    logs = [tmp_path / f"{name}.log" for name in ("first", "skip", "second")]

    first = launch(ARGS, root, artifacts, logs[0])
    _wait_for(lambda: (run_dir / "lock.json").exists() or first.poll() is not None, 240, "the first to lock", logs)
    os.kill(first.pid, signal.SIGSTOP)  # frozen while holding the lock: the others must meet it
    try:
        skip = launch([*ARGS, "lock=skip"], root, artifacts, logs[1])
        second = launch(ARGS, root, artifacts, logs[2])
        assert skip.wait(240) == 0, tail(logs[1])
        assert "is running elsewhere" in logs[1].read_text() and "lock=skip: leaving it" in logs[1].read_text()
        assert not out.exists()
        _wait_for(lambda: "waiting for it to end" in logs[2].read_text(errors="replace") or second.poll() is not None,
                  240, "the second to wait", logs)
        holder = json.loads((run_dir / "lock.json").read_text())
        assert holder["pid"] == first.pid and f"pid {first.pid}" in logs[2].read_text()
    finally:
        os.kill(first.pid, signal.SIGCONT)
    assert first.wait(240) == 0, tail(logs[0])
    assert second.wait(240) == 0, tail(logs[2])
    assert "was finished by another process" in logs[2].read_text()

    assert sorted(p.name for p in (run_dir / "checkpoints").iterdir()) == ["last.ckpt"]  # no last-v1.ckpt
    assert sorted(p.name for p in (run_dir / "logs").iterdir()) == ["version_0"]  # trained once
    frame = read_results(out)
    assert len(frame) == 4 and (frame.status == "completed").all()


def test_ranks_of_one_job_follow_their_rank_0(tmp_path, monkeypatch):
    """Rank 1 does not take the lock: it waits until rank 0 of its own job holds it, and a holder
    from another job keeps it waiting (its rank 0 would be waiting too)."""
    for key in ("RANK", "SLURM_PROCID", "LOCAL_RANK", "SLURM_JOB_ID", "SLURM_STEP_ID", "TORCHELASTIC_RUN_ID",
                "SUBMITIT_LOCAL_JOB_ID"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("MASTER_ADDR", "10.0.0.1")
    monkeypatch.setenv("MASTER_PORT", "29500")
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    other = {"host": "elsewhere", "pid": 1, "job": "MASTER_ADDR=10.0.0.2|MASTER_PORT=29500", "since": 0}
    (run_dir / "lock.json").write_text(json.dumps(other))

    monkeypatch.setenv("RANK", "1")
    follower = RunLock(run_dir, "wait", world=2, poll_s=0.01)
    done = threading.Event()
    thread = threading.Thread(target=lambda: (follower.__enter__(), done.set()))
    thread.start()
    time.sleep(0.3)
    assert not done.is_set()  # another job holds the run: rank 1 waits
    monkeypatch.setenv("RANK", "0")
    with RunLock(run_dir, "wait", world=2) as leader:  # this job's rank 0 takes it
        assert leader.proceed and json.loads((run_dir / "lock.json").read_text())["job"] == job_token()
        assert done.wait(10) and follower.proceed
    thread.join(10)
    assert not (run_dir / "lock.skipped.json").exists()


def test_a_rank_stops_when_its_rank_0_finds_the_run_finished(tmp_path, monkeypatch):
    monkeypatch.setenv("RANK", "1")
    results = tmp_path / "results.parquet"
    follower = RunLock(tmp_path / "run", "wait", world=2, finished=results.exists, poll_s=0.01)
    timer = threading.Timer(0.2, results.write_text, args=("rows",))
    timer.start()
    with follower:
        assert not follower.proceed
    timer.join()


@pytest.mark.slow
def test_a_ddp_job_is_one_holder(tmp_path, tmp_path_factory):
    """Two submitit tasks (ranks) of one job run ``run()``: rank 0 takes the lock, rank 1 follows it
    into training instead of waiting for a lock its own rank 0 holds (a deadlock)."""
    import subprocess
    import sys

    from smoke_cli import REPO, RANK_ENV

    root = tmp_path / "root"
    args = ["+experiment=smoke", "logger=none", "trainer.max_steps=4", "trainer.checkpoint_every_n_steps=2",
            "launcher=submitit_local", "hydra.launcher.tasks_per_node=2", "trainer.accelerator=cpu",
            f"hydra.sweep.dir={tmp_path / 'sweep'}", f"paths.artifacts_dir={shared_artifacts(tmp_path_factory)}"]
    env = {k: v for k, v in os.environ.items() if k not in RANK_ENV and not k.startswith(("SLURM_", "SUBMITIT_"))}
    env.update({"SPLADE_EXP_ROOT": str(root), "OMP_NUM_THREADS": "1"})
    out = subprocess.run([sys.executable, "-m", "splade_exp", *args, "-m"], cwd=REPO, env=env, capture_output=True,
                         text=True, timeout=600)
    assert out.returncode == 0, (out.stdout + out.stderr)[-4000:]
    (folder,) = (tmp_path / "sweep" / ".submitit").glob("[0-9]*")
    ranks = [(folder / f"{folder.name}_{r}_log.err").read_text() + (folder / f"{folder.name}_{r}_log.out").read_text()
             for r in (0, 1)]
    for r in (0, 1):
        assert f"GLOBAL_RANK: {r}, MEMBER: {r + 1}/2" in ranks[r] and "Job completed successfully" in ranks[r]
    (run_dir,) = (root / "runs").glob("[0-9a-f]*")
    holder = json.loads((run_dir / "lock.json").read_text())
    assert f"SUBMITIT_LOCAL_JOB_ID={folder.name}" in holder["job"]
    frame = read_results(root / "results" / "smoke" / f"{run_dir.name}.parquet")
    assert len(frame) == 4 and (frame["cfg.trainer.devices"] == 2).all()
