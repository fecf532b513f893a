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
ranks), and while one rank builds, the job's other devices idle -- a large EMLM pretraining is
better built once by a single-device job of the sweep. A single-process run builds exactly as
before.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Callable

from omegaconf import OmegaConf

from splade_exp.hashing import config_hash
from splade_exp.io import build_once

log = logging.getLogger(__name__)
built: list[str] = []


def artifact(root: str | Path, kind: str, name: str, key, build: Callable[[Path], None]) -> Path:
    """Path of the artifact ``kind/name-hash(key)``, building it with ``build(tmp_dir)`` if absent."""
    key = OmegaConf.to_container(key, resolve=True) if OmegaConf.is_config(key) else key
    path = Path(root) / kind / f"{name}-{config_hash(key)}"
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
