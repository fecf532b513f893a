"""Stage artifacts keyed by the hash of the config that produced them.

``<artifacts_dir>/<kind>/<name>-<hash>/`` is built at most once (atomic directory rename under a
file lock), so every job of a sweep that needs the same backbone, vocabulary or EMLM checkpoint
reuses it. ``built`` records which artifacts *this* process built; :func:`built_by_job` those of
every rank of the job (reported in the results).

Under DDP (``launcher=slurm_multigpu``: every rank runs ``run()`` from the start) the ranks of one
job meet an artifact exactly as parallel jobs do: the first process to take the lock builds it, the
others wait on the lock and then load what it built. A build is therefore always the work of *one
process*: the trainers of the backbone MLM warm-up and of EMLM pretraining are single-process
(``make_trainer(..., single_process=True)``: one device -- the rank's own GPU --, no process
group, Slurm/torchrun rank variables ignored). A build trainer configured for the job's N ranks
would wait in its collective for ranks that are themselves waiting on the lock: a deadlock. The
process group is formed later, by the fine-tuning trainer, once every rank holds the artifact.
Consequences: an artifact does not depend on how many processes the job that built it had (the
pretraining batch is ``pretrain.batch_size`` / ``backbone.mlm.batch_size``, never per device times
ranks), and while one rank builds, the job's other devices idle. A long EMLM pretraining is
therefore better run as a job of its own (``stage=pretrain``, :mod:`splade_exp.stages.pretrain`),
which trains on all of its job's devices and publishes the artifact through :func:`claim`: the
job holds the artifact's lock while it trains (resuming from its work directory after a kill),
so a fine-tuning job that needs the artifact waits for it rather than training a second copy.
"""
from __future__ import annotations

import contextlib
import logging
import time
from pathlib import Path
from typing import Callable, Iterator

from omegaconf import OmegaConf

from splade_exp.hashing import config_hash
from splade_exp.io import build_once, lock_path

log = logging.getLogger(__name__)
built: list[str] = []


def artifact_path(root: str | Path, kind: str, name: str, key) -> Path:
    """``<root>/<kind>/<name>-<hash(key)>``: where the artifact of ``key`` lives (built or not)."""
    key = OmegaConf.to_container(key, resolve=True) if OmegaConf.is_config(key) else key
    return Path(root) / kind / f"{name}-{config_hash(key)}"


def artifact(root: str | Path, kind: str, name: str, key, build: Callable[[Path], None]) -> Path:
    """Path of the artifact ``kind/name-hash(key)``, building it with ``build(tmp_dir)`` if absent."""
    path = artifact_path(root, kind, name, key)
    if build_once(path, build):
        built.append(f"{kind}/{path.name}")
        log.info("built artifact %s", path)
    else:
        log.info("reusing artifact %s", path)
    return path


def built_by_job() -> list[str]:
    """``built`` of every rank of the process group, in rank order (any rank may have built one);
    this process's own list without a group. A collective: every rank calls it."""
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return list(built)
    lists = [None] * dist.get_world_size()
    dist.all_gather_object(lists, list(built))
    return list(dict.fromkeys(name for names in lists for name in names))


def _broadcast(state: str, group) -> str:
    import torch.distributed as dist

    box = [state]
    dist.broadcast_object_list(box, src=0, group=group)
    return box[0]


@contextlib.contextmanager
def claim(path: str | Path, poll_s: float = 60.0, group=None) -> Iterator[bool]:
    """Hold the build lock of the artifact directory ``path`` for a long build; yields whether to build.

    Yields False when the artifact exists (also when another job published it while this one
    waited for the lock), True when this job holds the lock and must build it, then publish it
    (atomically: :func:`splade_exp.io.atomic_dir`) before leaving the block, which releases the lock.
    While another job holds the lock this waits, checking every ``poll_s`` seconds.

    ``group``: a process group whose ranks build together (a DDP job). Rank 0 alone takes the lock;
    after each check it broadcasts "build", "built" or "wait" to the other ranks, so no collective
    waits longer than ``poll_s`` (process-group timeouts are minutes; another job's build, hours).
    """
    from filelock import FileLock, Timeout

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(lock_path(path)))
    if group is None:
        rank, world = 0, 1
    else:
        import torch.distributed as dist

        rank, world = dist.get_rank(group), dist.get_world_size(group)
    state, since, told = "wait", time.monotonic(), 0.0
    while state == "wait":
        if rank == 0:
            if path.is_dir():
                state = "built"
            else:
                try:
                    lock.acquire(timeout=poll_s if world == 1 else 0)
                    state = "build"
                    if path.is_dir():  # published while we waited for the lock
                        lock.release()
                        state = "built"
                except Timeout:
                    pass
        if world > 1:
            state = _broadcast(state, group)
        if state == "wait":
            waited = time.monotonic() - since
            if waited - told >= 300 or not told:
                log.info("waiting for %s: another job holds %s (%.0f s so far)", path.name, lock_path(path), waited)
                told = waited or 1e-9
            if world > 1:
                time.sleep(poll_s)
    try:
        yield state == "build"
    finally:
        if rank == 0 and state == "build":
            lock.release()
