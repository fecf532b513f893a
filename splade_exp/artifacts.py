"""Stage artifacts keyed by the hash of the config that produced them.

``<artifacts_dir>/<kind>/<name>-<hash>/`` is built at most once (atomic directory rename under a
file lock), so every job of a sweep that needs the same backbone, vocabulary or EMLM checkpoint
reuses it. ``built`` records which artifacts *this* process built (reported in the results).
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
