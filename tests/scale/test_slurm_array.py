"""A real Slurm: a two-job sweep through Hydra's submitit launcher runs as one job array, and the
task that gets the pre-timeout signal saves last.ckpt, is requeued by submitit and resumes from it.
A ``launcher=slurm_multigpu`` job (2 srun tasks = 2 DDP ranks, CPU/gloo) with a fresh runs root
builds its backbone, unigram vocabulary and EMLM pretraining in one rank while the other waits
(a build that needed both ranks deadlocked), fine-tunes under ``strategy=ddp`` (no unused
parameters) and writes one results file from rank 0.

Slurm comes from scripts/setup_slurm.sh (a single-node cluster from Debian's packages), which this
module runs when it is not up or its configuration is stale; the module skips only where that
cannot work (not root, or neither apt-get nor Slurm). The sweep goes through the real command
line in a subprocess, as a user would launch it, with this test's own runs root.
"""
from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import compose_cfg
from smoke_cli import RANK_ENV
from splade_exp.results import read_results
from splade_exp.run import run_id

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
SETUP = ROOT / "scripts" / "setup_slurm.sh"
STEPS = 25  # long enough to signal task 0 between its step-5 checkpoint and the end of training
# the smoke experiment, lighter still: no backbone MLM warm-up, smaller batches
JOB = ["+experiment=smoke", "logger=none", "backbone.mlm.steps=0", "trainer.batch_size=8",
       f"trainer.max_steps={STEPS}", "trainer.checkpoint_every_n_steps=5"]
GRID = "head.k=1,2"  # task 0: k=1, task 1: k=2 (Hydra's grid order)
DEADLINE_S = 900


def _slurm_answers() -> bool:
    if not shutil.which("sinfo"):
        return False
    try:
        out = subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True, text=True, timeout=15)
    except subprocess.TimeoutExpired:
        return False
    return out.returncode == 0 and any(s.startswith(("idle", "mixed", "alloc")) for s in out.stdout.split())


@pytest.fixture(scope="module")
def slurm():
    """A responsive Slurm; installed and started by scripts/setup_slurm.sh where possible."""
    if os.geteuid() != 0:
        if _slurm_answers():
            return
        pytest.skip("Slurm is not running and setting it up needs root (scripts/setup_slurm.sh)")
    if not shutil.which("apt-get") and not shutil.which("slurmctld"):
        pytest.skip("no apt-get to install slurm-wlm and munge, and no Slurm installed")
    done = subprocess.run(["bash", str(SETUP)], capture_output=True, text=True, timeout=1200)
    assert done.returncode == 0, f"scripts/setup_slurm.sh failed:\n{done.stdout}\n{done.stderr}"
    assert _slurm_answers(), "setup_slurm.sh succeeded but sinfo shows no usable node"


def _scontrol(job: str) -> str:
    out = subprocess.run(["scontrol", "show", "job", job], capture_output=True, text=True, timeout=30)
    return out.stdout


def _cluster_state(job: str | None, folder: Path | None) -> str:
    """What Slurm says of the node and the job, and the job's own logs: printed when a launch
    fails or times out (a drained node or a held task shows up here, not in the launcher log)."""
    parts = []
    for cmd in (["sinfo", "-R"], ["sinfo", "-N", "-l"], ["squeue", "-a", "-l"]) + (
        (["scontrol", "show", "job", job],) if job else ()
    ):
        try:
            out = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
            parts.append(f"$ {' '.join(cmd)}\n{out.stdout}{out.stderr}")
        except (OSError, subprocess.TimeoutExpired) as e:
            parts.append(f"$ {' '.join(cmd)}\n{e}")
    for f in sorted(folder.glob("*/*_log.*")) if folder and folder.exists() else []:
        parts.append(f"--- {f.name} (tail)\n{f.read_text(errors='replace')[-2000:]}")
    return "\n".join(parts)


def _wait_for(predicate, what: str, deadline: float, proc: subprocess.Popen, log: Path):
    while time.time() < deadline:
        value = predicate()
        if value:
            return value
        if proc.poll() is not None:
            pytest.fail(f"the sweep ended (rc={proc.returncode}) before {what}:\n{log.read_text()[-4000:]}")
        time.sleep(0.2)
    pytest.fail(f"timed out waiting for {what}:\n{log.read_text()[-4000:]}")


@pytest.fixture(scope="module")
def sweep(slurm, tmp_path_factory):
    """Launch the sweep, signal task 0 once it has a checkpoint, wait for the launcher to return."""
    root = tmp_path_factory.mktemp("slurm")
    rids = [run_id(compose_cfg([*JOB, f"head.k={k}"], root)) for k in (1, 2)]
    env = {**os.environ, "SPLADE_EXP_ROOT": str(root), "HF_HUB_OFFLINE": "1", "WANDB_MODE": "offline",
           "TOKENIZERS_PARALLELISM": "false"}
    cmd = [sys.executable, "-m", "splade_exp", *JOB, GRID, "launcher=slurm", "-m", "trainer.accelerator=cpu",
           f"hydra.sweep.dir={root}/sweep", "hydra.launcher.gpus_per_node=null", "hydra.launcher.cpus_per_task=1",
           "hydra.launcher.mem_gb=1", "hydra.launcher.timeout_min=10"]
    log = root / "launcher.log"
    t0 = time.time()
    deadline = t0 + DEADLINE_S
    with open(log, "w") as out:
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    submitit = root / "sweep" / ".submitit"
    array = None
    try:
        script = _wait_for(lambda: next(submitit.glob("*/*_submission.sh"), None), "the submission", deadline, proc,
                           log)
        array = script.parent.name
        ckpt = root / "runs" / rids[0] / "checkpoints" / "last.ckpt"
        _wait_for(ckpt.exists, "task 0's first checkpoint", deadline, proc, log)
        subprocess.run(["scancel", "--signal=USR2", f"{array}_0"], check=True, timeout=30)
        # Slurm holds a requeued job ~2 minutes before it is eligible again; release it now.
        _wait_for(lambda: "JobState=PENDING" in _scontrol(f"{array}_0"), "task 0 to be requeued", deadline, proc, log)
        subprocess.run(["scontrol", "update", f"JobId={array}_0", "StartTime=now"], check=True, timeout=30)
        proc.wait(timeout=max(deadline - time.time(), 1))
    except BaseException:
        print(_cluster_state(array, submitit), file=sys.stderr)
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            proc.wait(timeout=30)
        if array:
            subprocess.run(["scancel", array], timeout=30)
        raise
    return {"root": root, "rids": rids, "array": array, "rc": proc.returncode, "log": log, "script": script,
            "wall_s": time.time() - t0}


def test_the_sweep_ran_as_one_job_array(sweep):
    assert sweep["rc"] == 0, sweep["log"].read_text()[-4000:]
    array = sweep["array"]
    assert re.fullmatch(r"\d+", array)
    script = sweep["script"].read_text()
    assert "#SBATCH --array=0-1" in script
    assert "#SBATCH --signal=USR2@" in script
    assert "srun --unbuffered" in script and sys.executable in script, "the jobs run with the launching python"
    tasks = {m for m in re.findall(rf"ArrayJobId={array} ArrayTaskId=(\d+)", _scontrol(array))}
    assert tasks == {"0", "1"}, _scontrol(array)
    for task in (0, 1):
        assert (sweep["root"] / "sweep" / ".submitit" / f"{array}_{task}" / f"{array}_{task}_0_result.pkl").exists()
    print(f"slurm sweep wall time: {sweep['wall_s']:.0f} s (array {array})")


def test_both_results_complete_and_not_duplicated(sweep):
    results = sweep["root"] / "results" / "smoke"
    files = {p.stem for p in results.glob("*.parquet")
             if not p.name.startswith("bm25-") and not p.name.endswith(".perquery.parquet")}
    assert files == set(sweep["rids"])
    for rid, k in zip(sweep["rids"], (1, 2)):
        frame = read_results(results / f"{rid}.parquet")
        assert len(frame) == 4 and (frame.status == "completed").all()
        assert (frame.run_id == rid).all() and (frame.head_k == k).all()
        assert frame["mrr@10"].between(0, 1).all()


def test_the_signalled_task_saved_was_requeued_and_resumed(sweep):
    array, root = sweep["array"], sweep["root"]
    ckpt = root / "runs" / sweep["rids"][0] / "checkpoints" / "last.ckpt"
    out = (root / "sweep" / ".submitit" / f"{array}_0" / f"{array}_0_0_log.out").read_text()
    saved = re.search(rf"saved {re.escape(str(ckpt))} at step (\d+); handing over", out)
    assert saved, out[-4000:]
    assert 5 <= int(saved[1]) < STEPS, "saved mid-training, at the step the signal arrived"
    order = [saved.start(), out.index(f"Requeued job {array}_0"),
             out.index(f"Restoring states from the checkpoint path at {ckpt}"), out.index("Job completed successfully")]
    assert order == sorted(order), "save, requeue, then the requeued task resumes from that checkpoint"
    assert "Restarts=1" in _scontrol(f"{array}_0")
    assert "Restarts=0" in _scontrol(f"{array}_1")
    untouched = (root / "sweep" / ".submitit" / f"{array}_1" / f"{array}_1_0_log.out").read_text()
    assert "Restoring states" not in untouched


# DDP in one job: every artifact that has a Lightning trainer must be built, so a fresh root
DDP_JOB = ["+experiment=smoke", "logger=none", "vocab=unigram", "vocab.size=300", "init=esplade", "pretrain=emlm",
           "pretrain.steps=4", "pretrain.batch_size=8", "pretrain.warmup_steps=1", "pretrain.val_size=16",
           "pretrain.val_every_n_steps=0", "pretrain.log_every_n_steps=2", "pretrain.max_length=32",
           "pretrain.stats_docs=16", "backbone.mlm.steps=2", "backbone.mlm.batch_size=8", "trainer.max_steps=4",
           "trainer.batch_size=8", "trainer.warmup_steps=1"]
# a CPU-only node: no GPUs to ask for, gloo instead of NCCL (sweeps/README.md)
CPU_NODE = ["trainer.accelerator=cpu", "hydra.launcher.gpus_per_node=null", "hydra.launcher.cpus_per_task=1",
            "hydra.launcher.mem_gb=4", "hydra.launcher.timeout_min=10"]
DDP_DEADLINE_S = 600


@pytest.fixture(scope="module")
def ddp_job(slurm, tmp_path_factory):
    """One two-rank job through the real command line; cancelled if it does not end in time (a deadlock)."""
    root = tmp_path_factory.mktemp("slurm_ddp")
    rid = run_id(compose_cfg(DDP_JOB, root))
    env = {k: v for k, v in os.environ.items() if k not in RANK_ENV and not k.startswith(("SLURM_", "SUBMITIT_"))}
    env.update({"SPLADE_EXP_ROOT": str(root), "HF_HUB_OFFLINE": "1", "WANDB_MODE": "offline",
                "TOKENIZERS_PARALLELISM": "false"})
    cmd = [sys.executable, "-m", "splade_exp", *DDP_JOB, "launcher=slurm_multigpu", "-m", *CPU_NODE,
           "hydra.launcher.tasks_per_node=2", f"hydra.sweep.dir={root}/sweep"]
    log = root / "launcher.log"
    t0 = time.time()
    with open(log, "w") as out:
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    job = None
    try:
        script = _wait_for(lambda: next((root / "sweep" / ".submitit").glob("*/*_submission.sh"), None),
                           "the submission", t0 + DDP_DEADLINE_S, proc, log)
        job = script.parent.name
        proc.wait(timeout=max(t0 + DDP_DEADLINE_S - time.time(), 1))
    except BaseException:
        print(_cluster_state(job, root / "sweep" / ".submitit"), file=sys.stderr)
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            proc.wait(timeout=30)
        if job:
            subprocess.run(["scancel", job], timeout=30)
        raise
    folder = root / "sweep" / ".submitit" / job
    logs = {r: (folder / f"{job}_{r}_log.out").read_text() + (folder / f"{job}_{r}_log.err").read_text()
            for r in (0, 1)}
    print(f"slurm DDP job {job}: {time.time() - t0:.0f} s from launch to return")
    return {"root": root, "rid": rid, "job": job, "rc": proc.returncode, "log": log, "script": script.read_text(),
            "ranks": logs}


def test_ddp_job_builds_its_artifacts_in_one_rank_and_trains_on_both(ddp_job):
    assert ddp_job["rc"] == 0, ddp_job["log"].read_text()[-4000:]
    assert "#SBATCH --ntasks-per-node=2" in ddp_job["script"] and "--gpus" not in ddp_job["script"]
    ranks = ddp_job["ranks"]
    for r in (0, 1):
        assert f"global_rank={r}(2)" in ranks[r] and "Job completed successfully" in ranks[r], ranks[r][-3000:]
        assert f"Initializing distributed: GLOBAL_RANK: {r}, MEMBER: {r + 1}/2" in ranks[r], ranks[r][-3000:]
    for kind in ("backbone", "vocab", "emlm"):  # built by exactly one rank, reused by the other
        built = [r for r in (0, 1) if re.search(rf"built artifact \S+/artifacts/{kind}/", ranks[r])]
        reused = [r for r in (0, 1) if re.search(rf"reusing artifact \S+/artifacts/{kind}/", ranks[r])]
        assert len(built) == 1 and reused == [1 - built[0]], (kind, built, reused)


def test_ddp_job_writes_one_results_file_from_rank_zero(ddp_job):
    results = ddp_job["root"] / "results" / "smoke"
    runs = [p for p in results.glob("*.parquet")
            if not p.name.startswith(("bm25-", "emlm-")) and not p.name.endswith(".perquery.parquet")]
    assert [p.stem for p in runs] == [ddp_job["rid"]]
    assert "wrote 4 rows" in ddp_job["ranks"][0] and not re.search(r"wrote \d+ rows", ddp_job["ranks"][1])
    frame = read_results(runs[0])
    assert len(frame) == 4 and (frame.status == "completed").all()
    assert (frame["cfg.trainer.devices"] == 2).all() and (frame["cfg.trainer.strategy"] == "ddp").all()
    assert frame["mrr@10"].between(0, 1).all() and (frame.vocab_size == 300).all()
    # whichever rank built them, the job's results name them
    built = frame.artifacts_built.iloc[0].split(",")
    for kind in ("backbone", "vocab", "emlm"):
        assert any(b.startswith(f"{kind}/") for b in built), built
