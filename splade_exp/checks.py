"""Checks of a composed config that need no model and no data loading: run before any work.

:func:`check_config` runs at the start of every job (``run()``), before the collection is read
and long before training, and the :class:`Preflight` Hydra callback runs it for *every* job of a
sweep before the first one is launched (on the login node for Slurm arrays): a grid of 48 jobs
with one bad value fails at once, naming the job's overrides, instead of at job 37.

What is checked: mandatory values (``???``: paper-scale experiments leave their data paths to the
command line), ``prune.grid`` (pairs of non-negative integers), ``stage``, ``vocab.size``
(a positive integer), the data source (paths exist and are readable; options make sense;
:mod:`splade_exp.data.sources`), a local ``backbone.name_or_path`` (a directory with a config,
weights and tokenizer files), ``pretrain.checkpoint`` (exists, its safetensors header parses).
Checks that need the data (a unigram ``vocab.size`` larger than the corpus's distinct words,
malformed lines, unknown qrels ids) run when the job reads it, still before training.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

log = logging.getLogger(__name__)

STAGES = ("train", "evaluate")


class ConfigError(ValueError):
    """A config value that cannot work; the message names the key and what to do."""


def _positive_int(value, key: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ConfigError(f"{key} must be a positive integer, got {value!r}")
    return value


def check_prune_grid(grid) -> None:
    from splade_exp.sparse import check_prune_k

    if not OmegaConf.is_list(grid) and not isinstance(grid, (list, tuple)):
        raise ConfigError(f"prune.grid must be a list of [qk, dk] pairs, e.g. [[0,0],[5,10]], got {grid!r}")
    if len(grid) == 0:
        raise ConfigError("prune.grid is empty; give at least [[0, 0]] (0 = unpruned)")
    for i, pair in enumerate(grid):
        if not (OmegaConf.is_list(pair) or isinstance(pair, (list, tuple))) or len(pair) != 2:
            raise ConfigError(f"prune.grid[{i}] must be a pair [qk, dk], got {pair!r}")
        for j, side in enumerate(("qk", "dk")):
            try:
                check_prune_k(pair[j], f"prune.grid[{i}][{j}] ({side})")
            except ValueError as err:
                raise ConfigError(str(err)) from None


def check_pretrain_checkpoint(path) -> None:
    from safetensors import safe_open

    from splade_exp.vocab.emlm_pretrain import CHECKPOINT

    p = Path(str(path)).expanduser()
    file = p / CHECKPOINT if p.is_dir() else p
    if not file.is_file():
        raise ConfigError(f"pretrain.checkpoint={path}: no {CHECKPOINT} there; give an EMLM artifact directory "
                          f"(artifacts/emlm/emlm-*) or its {CHECKPOINT}")
    try:
        with safe_open(str(file), framework="pt"):
            pass
    except Exception as err:
        raise ConfigError(f"{file}: pretrain.checkpoint is damaged or truncated ({err}); point it at a complete "
                          "checkpoint") from None


def missing_values(cfg, prefix: str = "") -> list[str]:
    """Dotted keys whose value is mandatory (``???``) and not given. Interpolations are not
    followed (``data.source.path: ${data.path}`` is reported once, as ``data.path``), which
    ``OmegaConf.missing_keys`` cannot do: it resolves them and raises."""
    from omegaconf import ListConfig

    keys = range(len(cfg)) if isinstance(cfg, ListConfig) else cfg.keys()
    found = []
    for key in keys:
        name = f"{prefix.rstrip('.')}[{key}]" if isinstance(cfg, ListConfig) else f"{prefix}{key}"
        if OmegaConf.is_missing(cfg, key):
            found.append(name)
        elif not OmegaConf.is_interpolation(cfg, key) and OmegaConf.is_config(cfg[key]):
            found += missing_values(cfg[key], f"{name}.")
    return found


def check_required(cfg: DictConfig) -> None:
    """Every mandatory value is given; else a ConfigError naming the keys to pass."""
    missing = missing_values(cfg)
    if missing:
        raise ConfigError(f"{', '.join(missing)} {'is' if len(missing) == 1 else 'are'} required and not set (??? "
                          f"in the config); pass {' '.join(f'{k}=...' for k in missing)} on the command line")


def check_config(cfg: DictConfig) -> None:
    """Raise ConfigError/DataError/BackboneError for a config that cannot run (see module doc)."""
    from splade_exp.data.sources import make_source
    from splade_exp.models.backbone import check_local_model, looks_local

    check_required(cfg)
    if cfg.get("stage") not in STAGES:
        raise ConfigError(f"stage must be one of {STAGES}, got {cfg.get('stage')!r}")
    if "prune" in cfg:
        check_prune_grid(cfg.prune.grid)
    vocab = cfg.get("vocab")
    if vocab is not None and vocab.get("kind") == "unigram":
        _positive_int(vocab.get("size"), "vocab.size")
    make_source(cfg.data, cfg.paths.artifacts_dir)
    for key in ("query_max_length", "doc_max_length"):
        _positive_int(cfg.data.get(key), f"data.{key}")
    name = cfg.backbone.get("name_or_path")
    if name and looks_local(name):
        check_local_model(name)
    pretrain = cfg.get("pretrain")
    if pretrain is not None and pretrain.get("enabled") and pretrain.get("checkpoint"):
        check_pretrain_checkpoint(pretrain.checkpoint)


# --------------------------------------------------------------------------- whole sweep
def sweep_jobs(config: DictConfig, task: list[str] | None = None) -> list[list[str]]:
    """The override list of every job a BasicSweeper would launch for this multirun config: its
    ``hydra.sweeper.params``, then the command line's overrides (``task``; default: the ones the
    config was composed with), a key of the command line replacing the same key of the params."""
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    from hydra.core.override_parser.overrides_parser import OverridesParser

    params = [f"{k}={v}" for k, v in (config.hydra.sweeper.get("params") or {}).items()]
    if task is None:
        task = OmegaConf.to_container(config.hydra.overrides.task, resolve=False)
    overrides = OverridesParser.create().parse_overrides([*params, *task])
    return [job for batch in BasicSweeper.split_arguments(overrides, None) for job in batch]


class Preflight(Callback):
    """Hydra callback: :func:`check_config` on every job of a sweep before any job starts."""

    def __init__(self, enabled: bool = True) -> None:
        self.enabled = enabled

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        if not self.enabled:
            return
        if not str(config.hydra.sweeper.get("_target_", "")).endswith("BasicSweeper"):
            log.info("preflight: sweeper %s is not the basic sweeper; jobs are checked when they start",
                     config.hydra.sweeper.get("_target_"))
            return
        from hydra import compose

        from splade_exp.cli import register_resolvers

        register_resolvers()
        jobs = sweep_jobs(config)
        errors = []
        for i, overrides in enumerate(jobs):
            cfg = compose(config_name=config.hydra.job.config_name, overrides=overrides)
            try:
                check_config(cfg)
            except (ValueError, RuntimeError, OSError) as err:
                errors.append(f"  job {i} ({' '.join(overrides)}):\n    {type(err).__name__}: {err}")
        if errors:
            # Hydra turns a callback's exceptions into warnings and carries on; SystemExit is not an
            # Exception, so it stops the sweep before the launcher starts any job.
            raise SystemExit(f"{len(errors)} of {len(jobs)} jobs of this sweep cannot run; nothing was launched. "
                             "Fix these values (or drop them from the sweep) and launch again:\n" + "\n".join(errors)
                             + "\n(skip this check with hydra.callbacks.preflight.enabled=false)")
        log.info("preflight: %d jobs checked", len(jobs))
