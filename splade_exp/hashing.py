"""Stable short hashes of configs: run ids and artifact keys."""
from __future__ import annotations

import hashlib
import json

from omegaconf import DictConfig, ListConfig, OmegaConf


def _plain(obj):
    if isinstance(obj, (DictConfig, ListConfig)):
        return OmegaConf.to_container(obj, resolve=True)
    return obj


def config_hash(obj, length: int = 10) -> str:
    """sha1 of the canonical JSON of ``obj`` (keys sorted), truncated to ``length`` hex digits."""
    text = json.dumps(_plain(obj), sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha1(text.encode("utf-8")).hexdigest()[:length]


def drop_keys(cfg: DictConfig, keys: tuple[str, ...]) -> dict:
    """A plain, resolved copy of ``cfg`` without the dotted ``keys`` (missing keys are ignored)."""
    plain = OmegaConf.to_container(cfg, resolve=True)
    for key in keys:
        node = plain
        *parents, leaf = key.split(".")
        for part in parents:
            node = node.get(part) if isinstance(node, dict) else None
            if node is None:
                break
        if isinstance(node, dict):
            node.pop(leaf, None)
    return plain
