"""What a run is: its training identity (the run id) and its evaluation identity (the eval id).

**Run id** = hash of everything that changes the *trained model*: the resolved config without

- the keys of :data:`LAUNCH_KEYS` (where things go, how the job is launched and logged: the same
  model on 1 or 8 devices, with or without a progress bar, is the same run);
- the keys of :data:`EVAL_KEYS` (how the trained model is evaluated; the eval id below);
- paths: every key that names input files (``data.path`` and the source's path options,
  ``data.general_corpus``, a local ``backbone.name_or_path``, a ``vocab.corpus``/``pretrain.corpus``
  file, ``pretrain.checkpoint``) is replaced by the *content* of those files
  (:mod:`splade_exp.fingerprint`), under the role each file plays.

So editing any input file makes a new run, and ``data.path=~/d``, ``data.path=/home/u/d/``,
``data.path=/home/u/x/../d`` or a copy of ``d`` elsewhere are the same run.

**Eval id** = hash of :data:`EVAL_KEYS`: the pruning grid, the ``eval`` group (engine, shards,
...), the evaluation split and the evaluation batch size. Results rows carry it. A launch whose
training is finished but whose eval id differs evaluates the final weights again and replaces
the results file (``run.py``). One exception: with ``data.exclude_eval_docs=true`` the evaluation
split decides which training pairs are removed, so it belongs to the run id instead.
"""
from __future__ import annotations

import os

from omegaconf import DictConfig

from splade_exp.fingerprint import directory_fingerprint, fingerprint, normalise_path
from splade_exp.hashing import config_hash, drop_keys

# Keys that do not change what a run computes: where things go, how it is launched and logged.
LAUNCH_KEYS = ("paths", "logger", "launcher", "hydra", "sweep", "model", "force", "lock",
               "trainer.devices", "trainer.num_nodes", "trainer.accelerator", "trainer.strategy",
               "trainer.enable_progress_bar", "trainer.log_every_n_steps", "trainer.num_workers",
               "trainer.checkpoint_every_n_steps",
               "pretrain.checkpoint_every_n_steps", "pretrain.missing", "pretrain.wait_timeout_min",
               "pretrain.wait_poll_s", "vocab.count_processes")
# Keys that change only how a trained model is evaluated: the eval id, not the run id.
EVAL_KEYS = ("prune", "eval", "data.eval_split", "trainer.eval_batch_size")
# Text-corpus specs that are not files (vocab.corpus, pretrain.corpus).
NAMED_CORPORA = ("in_domain", "general")
INPUT = "<input>"  # what a path key holds in the hashed config: its files are in the inputs


def eval_keys(cfg: DictConfig) -> tuple[str, ...]:
    if cfg.get("data") is not None and cfg.data.get("exclude_eval_docs"):
        return tuple(k for k in EVAL_KEYS if k != "data.eval_split")
    return EVAL_KEYS


def path_keys(cfg: DictConfig) -> dict[str, str]:
    """Dotted key -> path of the config values outside ``data`` that name input files or directories."""
    from splade_exp.models.backbone import looks_local

    keys = {}
    name = cfg.get("backbone", {}).get("name_or_path")
    if name and looks_local(name):
        keys["backbone.name_or_path"] = name
    vocab, pretrain = cfg.get("vocab") or {}, cfg.get("pretrain") or {}
    if vocab.get("corpus") and vocab.get("corpus") not in NAMED_CORPORA:
        keys["vocab.corpus"] = vocab.get("corpus")
    if pretrain.get("enabled") and pretrain.get("checkpoint"):
        keys["pretrain.checkpoint"] = pretrain.get("checkpoint")
    elif pretrain.get("enabled") and pretrain.get("corpus") and pretrain.get("corpus") not in NAMED_CORPORA:
        keys["pretrain.corpus"] = pretrain.get("corpus")
    return keys


def run_inputs(cfg: DictConfig) -> dict[str, dict]:
    """role -> ``{"path", "size", "xxh3"}`` of every file the run reads (``data/<role>`` for the data
    source's, ``<key>/<file>`` for a directory such as a local backbone). A path that does not
    exist is recorded as missing: :func:`splade_exp.checks.check_config` reports it."""
    from splade_exp.data.identity import data_inputs

    cache = os.path.join(str(cfg.paths.artifacts_dir), "fingerprints")
    inputs = {f"data/{role}": fp for role, fp in data_inputs(cfg.data, cfg.paths.artifacts_dir).items()}
    for key, value in path_keys(cfg).items():
        path = normalise_path(value)
        if path.is_dir():
            for name, fp in directory_fingerprint(path, cache).items():
                inputs[f"{key}/{name}"] = {"path": str(path / name), **fp}
        elif path.is_file():
            inputs[key] = {"path": str(path), **fingerprint(path, cache)}
        else:
            inputs[key] = {"path": str(path), "missing": True}
    return inputs


def training_config(cfg: DictConfig) -> dict:
    """The resolved config that makes the run id: without launch, evaluation and path keys."""
    from splade_exp.data.identity import source_options

    plain = drop_keys(cfg, LAUNCH_KEYS + eval_keys(cfg))
    data = plain.get("data")
    if isinstance(data, dict):
        for key in ("path", "general_corpus"):
            data.pop(key, None)
        data["source"] = source_options(cfg.data)
    for dotted in path_keys(cfg):
        node = plain
        *parents, leaf = dotted.split(".")
        for part in parents:
            node = node[part]
        node[leaf] = INPUT
    return plain


def content(inputs: dict[str, dict]) -> dict[str, dict]:
    """``inputs`` without the paths: what enters hashes."""
    return {role: {k: v for k, v in fp.items() if k != "path"} for role, fp in inputs.items()}


def identity_hash(config: dict, inputs: dict[str, dict]) -> str:
    return config_hash({"config": config, "inputs": content(inputs)})


def run_id(cfg: DictConfig) -> str:
    """The training identity (module doc)."""
    return identity_hash(training_config(cfg), run_inputs(cfg))


def config_id(cfg_or_config) -> str:
    """The hash of the training config alone: runs that differ only in their input files share it."""
    config = training_config(cfg_or_config) if isinstance(cfg_or_config, DictConfig) else cfg_or_config
    return config_hash(config)


def eval_id(cfg: DictConfig) -> str:
    """The evaluation identity (module doc); a missing group (``eval``) counts as absent."""
    from omegaconf import OmegaConf

    plain = OmegaConf.to_container(cfg, resolve=True)
    picked = {}
    for dotted in eval_keys(cfg):
        node = plain
        for part in dotted.split("."):
            node = node.get(part) if isinstance(node, dict) else None
        if node is not None:
            picked[dotted] = node
    return config_hash(picked)
