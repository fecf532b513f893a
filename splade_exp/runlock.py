"""One process trains a given run id at a time under a runs root: the run lock.

``runs/<run_id>/.lock`` is an advisory file lock (``flock`` through :mod:`filelock`): the kernel
releases it when its holder exits, however it exits (a SIGKILL, a node reboot that ends the
process), so no stale lock outlives a dead job and nothing has to be cleaned by hand. On a shared
file system it needs lock support (NFS with ``lockd``, Lustre mounted with ``flock``). Beside it,
``lock.json`` says who holds it (host, pid, job) so that a second launch can say where the run is
going on.

``lock: wait`` (default): a second launch of the same run id waits, then finds the results the
first one wrote and returns them (or, if the first one died, resumes from its checkpoint).
``lock: skip``: it says that the run is going on elsewhere and ends cleanly without results.

The ranks of a DDP job are one holder. Every rank runs ``run()`` (srun/submitit tasks; the
processes Lightning starts itself re-run the command), so only the job's rank 0 takes the lock:
the other ranks wait until ``lock.json`` names their own job (the same Slurm job and step,
torchrun/submitit job, or rendezvous address; or their parent process when Lightning started
them), or until the results are there, or until their rank 0 records that it skips. A rank that
took a lock of its own would wait for its rank 0 forever, and a rank that took none would train
without it.
"""
from __future__ import annotations

import json
import logging
import os
import socket
import time
from pathlib import Path
from typing import Callable

log = logging.getLogger(__name__)

MODES = ("wait", "skip")
#: Environment variables that are the same in every rank of one job and tell two jobs apart.
JOB_VARS = ("SLURM_JOB_ID", "SLURM_STEP_ID", "SUBMITIT_LOCAL_JOB_ID", "TORCHELASTIC_RUN_ID", "MASTER_ADDR",
            "MASTER_PORT")
POLL_S = 0.5
REPORT_S = 60.0


def job_token() -> str:
    """What the ranks of this job share and no other running job has (empty outside a launcher)."""
    return "|".join(f"{k}={os.environ[k]}" for k in JOB_VARS if os.environ.get(k))


def launch_rank(world: int) -> int:
    """This process's global rank as the launcher set it (0 for a single-process run)."""
    if world <= 1:
        return 0
    env = os.environ
    if "RANK" in env:
        return int(env["RANK"])
    if "SLURM_PROCID" in env and int(env.get("SLURM_NTASKS", "1")) > 1:
        return int(env["SLURM_PROCID"])
    if "LOCAL_RANK" in env:  # Lightning's own subprocess launcher
        nodes_rank = int(env.get("NODE_RANK", env.get("GROUP_RANK", "0")))
        per_node = int(env.get("LOCAL_WORLD_SIZE", world))
        return nodes_rank * per_node + int(env["LOCAL_RANK"])
    return 0


class RunLock:
    """``with RunLock(run_dir, mode, world, finished, prepare) as lock:`` -- ``lock.proceed`` says
    whether to run.

    ``finished()`` is True once the run's results are there (another launch wrote them): ranks
    other than 0 stop waiting then. ``prepare()`` runs in rank 0 once it holds the lock and before
    the job's other ranks go on (clean-up of the run directory); False means there is nothing to
    run (it found the run finished), and the lock is released.
    """

    def __init__(self, run_dir: str | os.PathLike, mode: str = "wait", world: int = 1,
                 finished: Callable[[], bool] = lambda: False, prepare: Callable[[], bool] = lambda: True,
                 poll_s: float = POLL_S) -> None:
        if mode not in MODES:
            raise ValueError(f"lock must be one of {MODES}, got {mode!r}")
        self.dir, self.mode, self.finished, self.poll_s = Path(run_dir), mode, finished, poll_s
        self.prepare = prepare
        self.rank, self.world = launch_rank(world), world
        self.path, self.info, self.skipped_file = self.dir / ".lock", self.dir / "lock.json", self.dir / "lock.skipped.json"
        self.proceed = False  # False after __enter__: another process holds the run (skip) or finished it
        self._lock = None

    # ------------------------------------------------------------------ holder
    def holder(self) -> dict:
        try:
            return json.loads(self.info.read_text())
        except (OSError, ValueError):
            return {}

    @staticmethod
    def describe(holder: dict) -> str:
        if not holder:
            return "another process"
        since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(holder.get("since", 0)))
        job = f", job {holder['job']}" if holder.get("job") else ""
        return f"pid {holder.get('pid')} on {holder.get('host')}{job}, since {since}"

    def _mine(self, record: dict) -> bool:
        """Whether ``record`` (lock.json or lock.skipped.json) was written by rank 0 of this job."""
        if not record:
            return False
        if record.get("pid") == os.getppid() and record.get("host") == socket.gethostname():
            return True
        token = job_token()
        return bool(token) and record.get("job") == token

    # ------------------------------------------------------------------ rank 0
    def __enter__(self) -> "RunLock":
        from filelock import FileLock, Timeout

        self.dir.mkdir(parents=True, exist_ok=True)
        if self.rank != 0:
            self._follow()
            return self
        self._lock = FileLock(str(self.path))
        t0, timeout = time.monotonic(), 0
        while True:
            try:
                self._lock.acquire(timeout=timeout)
                break
            except Timeout:
                holder = self.holder()
                if self.mode == "skip":
                    log.warning("run %s is running elsewhere (%s); lock=skip: leaving it to that process",
                                self.dir.name, self.describe(holder))
                    self._tell_followers()
                    self._lock = None
                    return self
                log.warning("run %s is running elsewhere (%s); waiting for it to end (%.0f s so far; lock=skip "
                            "leaves it instead)", self.dir.name, self.describe(holder), time.monotonic() - t0)
                timeout = REPORT_S
        self.skipped_file.unlink(missing_ok=True)
        try:
            ready = self.prepare()
        except BaseException:
            self.__exit__()
            raise
        if not ready:
            self._tell_followers()
            self.__exit__()
            return self
        self._record(self.info)
        self.proceed = True
        return self

    def _tell_followers(self) -> None:
        """This job does not run: its other ranks, waiting in :meth:`_follow`, stop too."""
        if self.world > 1:
            self._record(self.skipped_file)

    def _record(self, path: Path) -> None:
        from splade_exp.io import write_json

        write_json(path, {"host": socket.gethostname(), "pid": os.getpid(), "job": job_token(), "since": time.time()})

    def __exit__(self, *exc) -> None:
        if self._lock is not None:
            self._lock.release()
            self._lock = None

    # ------------------------------------------------------------------ other ranks
    def _follow(self) -> None:
        """Rank > 0: wait for this job's rank 0 to hold the lock (then run with it), or to skip."""
        last = time.monotonic()
        while True:
            if self.finished():
                return
            if self._mine(self.holder()):
                self.proceed = True
                return
            if self._mine(self._read(self.skipped_file)):
                return
            if time.monotonic() - last > REPORT_S:
                last = time.monotonic()
                log.warning("rank %d: waiting for rank 0 of this job to take the lock of run %s (held by %s)",
                            self.rank, self.dir.name, self.describe(self.holder()))
            time.sleep(self.poll_s)

    @staticmethod
    def _read(path: Path) -> dict:
        try:
            return json.loads(path.read_text())
        except (OSError, ValueError):
            return {}
