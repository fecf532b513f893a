"""Checks of a composed config that need no model and no data loading: run before any work.

:func:`check_config` runs at the start of every job (``run()``), before the collection is read
and long before training, and the :class:`Preflight` Hydra callback runs it for *every* job of a
sweep before the first one is launched (on the login node for Slurm arrays): a grid of 48 jobs
with one bad value fails at once, naming the job's overrides, instead of at job 37.

What is checked (one function per component, named for it; a component that owns code elsewhere
checks itself there):

- mandatory values (``???``: paper-scale experiments leave their data paths to the command line);
- ``stage``; ``seed`` (an integer in [0, 2^32), what the generators accept); ``lock``;
- ``trainer``: ``batch_size``, ``eval_batch_size``, ``max_steps`` (positive: the learning-rate
  schedule and the λ ramp are defined over them, so there is no "until stopped"), ``lr``,
  ``warmup_steps``, ``checkpoint_every_n_steps`` (positive or null), ``log_every_n_steps``,
  ``accumulate_grad_batches``, ``num_workers``, ``collapse.*`` (:func:`check_trainer`);
- ``loss``: ``lambda_warmup_steps``, the training top-k (:func:`check_loss`), and its objects build
  with teacher scores when they distil (:func:`check_objective`);
- ``prune.grid`` (pairs of non-negative integers); ``vocab.size`` and ``vocab.corpus`` of a unigram
  vocabulary (:func:`check_vocab`);
- ``head``: pooling, its implementation and chunk size, ``k``, ``inflate_norm``
  (:func:`splade_exp.models.encoder.check_head`);
- ``pretrain`` steps, batch, lr, repetition, ``missing``, ``checkpoint_every_n_steps``, wait
  settings and corpus when it is enabled (:func:`check_pretrain`); ``pretrain.checkpoint`` (exists,
  its safetensors header parses);
- choices of different groups that cannot go together (:func:`check_combinations`);
- ``paths``: the runs root (``paths.root`` / ``SPLADE_EXP_ROOT``) and the artifacts, runs and
  results directories can be created and written (checked on the nearest existing parent, without
  creating anything);
- the data source (paths exist and are readable; options make sense;
  :mod:`splade_exp.data.sources`);
- the backbone, by its builder (:meth:`splade_exp.models.backbones.Backbone.check`): a built one's
  ``tokenizer.vocab_size`` and ``mlm`` steps and batch, a local ``backbone.name_or_path`` (a
  directory with a config, weights and tokenizer files); and the lengths
  (:func:`tokenised_lengths`, ``backbone.mlm.max_length``) within its position embeddings: a built
  backbone's ``backbone.config.max_position_embeddings``, a local model's ``config.json`` (read
  without the weights); a hub model's once it is loaded, still before training.

Checks that need the data (a unigram ``vocab.size`` larger than the corpus's distinct words,
malformed lines, unknown qrels ids, a batch larger than the training pairs) run when the job reads
it, still before training. W&B reachability is checked when the logger is made
(:func:`splade_exp.tracking.make_logger`: offline with a warning when the server cannot be reached).
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from splade_exp.errors import SpladeExpError

log = logging.getLogger(__name__)

STAGES = ("train", "evaluate", "pretrain")


class ConfigError(SpladeExpError, ValueError):
    """A config value that cannot work; the message names the key and what to do."""


def positive_int(value, key: str, hint: str = "") -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ConfigError(f"{key} must be a positive integer, got {value!r}{hint}")
    return value


def non_negative_int(value, key: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ConfigError(f"{key} must be a non-negative integer, got {value!r}")
    return value


def positive_number(value, key: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0 or value != value:
        raise ConfigError(f"{key} must be a positive number, got {value!r}")
    return value


def check_seed(seed) -> None:
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**32:
        raise ConfigError(f"seed must be an integer in [0, 2^32), got {seed!r}")


def check_lock(lock) -> None:
    from splade_exp.runlock import MODES

    if lock not in MODES:
        raise ConfigError(f"lock must be one of {MODES}, got {lock!r}")


def check_trainer(t) -> None:
    """``trainer`` values that would fail late or silently misbehave."""
    positive_int(t.get("batch_size"), "trainer.batch_size", " (the global batch of training pairs)")
    positive_int(t.get("eval_batch_size"), "trainer.eval_batch_size")
    positive_int(t.get("max_steps"), "trainer.max_steps", "; training is step-bounded: the learning-rate "
                  "schedule and the lambda ramp are defined over trainer.max_steps, so -1 (until stopped) has no "
                  "meaning here")
    positive_number(t.get("lr"), "trainer.lr")
    non_negative_int(t.get("warmup_steps"), "trainer.warmup_steps")
    if t.get("checkpoint_every_n_steps") is not None:
        positive_int(t.checkpoint_every_n_steps, "trainer.checkpoint_every_n_steps", " (or null: no periodic "
                      "checkpoint)")
    positive_int(t.get("log_every_n_steps"), "trainer.log_every_n_steps")
    positive_int(t.get("accumulate_grad_batches"), "trainer.accumulate_grad_batches")
    non_negative_int(t.get("num_workers"), "trainer.num_workers")
    c = t.get("collapse")
    if c is not None:
        positive_int(c.get("patience"), "trainer.collapse.patience")
        positive_int(c.get("check_every"), "trainer.collapse.check_every")


def position_limit(config: dict) -> int | None:
    """Tokens a model of this ``config.json`` can take: ``max_position_embeddings``, less RoBERTa's
    offset (its positions start after the padding index). None when the config sets no limit."""
    limit = config.get("max_position_embeddings")
    if not isinstance(limit, int) or isinstance(limit, bool):
        return None
    if config.get("model_type") in ("roberta", "xlm-roberta", "camembert", "longformer"):
        limit -= int(config.get("pad_token_id") or 1) + 1
    return limit


def tokenised_lengths(cfg: DictConfig) -> dict:
    """Dotted key -> max length of what the run tokenises besides the backbone's own build: the data's
    queries and documents, and the EMLM pretraining when this run trains it."""
    lengths = {f"data.{k}": cfg.data.get(k) for k in ("query_max_length", "doc_max_length")}
    pretrain = cfg.get("pretrain")
    if pretrain is not None and pretrain.get("enabled") and not pretrain.get("checkpoint"):
        lengths["pretrain.max_length"] = pretrain.get("max_length")
    return lengths


def check_lengths(lengths: dict, limit: int | None, where: str) -> None:
    """Every max length of ``lengths`` (dotted key -> tokens) is positive and fits the backbone's
    ``limit`` positions (None: unknown), which come from ``where``."""
    for key, value in lengths.items():
        positive_int(value, key)
        if limit is not None and value > limit:
            raise ConfigError(f"{key}={value} is longer than the backbone's {limit} positions ({where}); set it to "
                              f"at most {limit}")


def check_backbone(cfg: DictConfig) -> None:
    """The backbone's builder checks its own config and the run's lengths
    (:meth:`splade_exp.models.backbones.Backbone.check`)."""
    from splade_exp.models.backbones import builder

    builder(cfg.backbone).check(tokenised_lengths(cfg))


def check_loss(loss) -> None:
    """``loss``'s plain keys: the lambda ramp and the training top-k (0: no masking; a k at or above
    the vocabulary size keeps every term, :func:`splade_exp.sparse.topk_mask`)."""
    if loss.get("lambda_warmup_steps") is not None:
        non_negative_int(loss.lambda_warmup_steps, "loss.lambda_warmup_steps")
    for key in ("topk_q", "topk_d"):
        non_negative_int(loss.get(key, 0), f"loss.{key}")


def check_pretrain(p) -> None:
    if p is None or not p.get("enabled") or p.get("checkpoint"):
        return
    positive_int(p.get("steps"), "pretrain.steps")
    positive_int(p.get("batch_size"), "pretrain.batch_size")
    positive_number(p.get("lr"), "pretrain.lr")
    positive_number(p.get("repetition"), "pretrain.repetition")
    non_negative_int(p.get("val_size"), "pretrain.val_size")
    from splade_exp.stages.pretrain import MISSING

    if p.get("missing", "build") not in MISSING:
        raise ConfigError(f"pretrain.missing must be one of {MISSING} (build it in this job, wait for another job "
                          f"to publish it, or stop), got {p.get('missing')!r}")
    every = p.get("checkpoint_every_n_steps", 0)
    if isinstance(every, bool) or not isinstance(every, int) or every < 0:
        raise ConfigError(f"pretrain.checkpoint_every_n_steps must be an integer >= 0 (0: only on preemption), "
                          f"got {every!r}")
    for key in ("wait_timeout_min", "wait_poll_s"):
        value = p.get(key, 1)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
            raise ConfigError(f"pretrain.{key} must be a positive number, got {value!r}")
    if p.get("corpus") is not None:
        check_corpus(p.corpus, "pretrain.corpus")


def check_paths(paths) -> None:
    """The runs root and the directories under it can be created and written (nothing is created)."""
    import os

    keys = {"root": "paths.root (SPLADE_EXP_ROOT)", "artifacts_dir": "paths.artifacts_dir",
            "runs_dir": "paths.runs_dir", "results_dir": "paths.results_dir"}
    for key, name in keys.items():
        value = paths.get(key)
        if value is None:
            continue
        path = Path(os.path.abspath(os.path.expanduser(str(value))))
        probe = path
        while not probe.exists() and probe != probe.parent:
            probe = probe.parent
        if not probe.is_dir():
            raise ConfigError(f"{path}: {name} cannot be a directory: {probe} is a file; point {name} elsewhere")
        if not os.access(probe, os.W_OK | os.X_OK):
            what = "is not writable" if probe == path else f"cannot be created ({probe} is not writable)"
            raise ConfigError(f"{path}: {name} {what}; point {name} at a directory you can write, or fix the "
                              "permissions (read-only file system?)")


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


def check_corpus(spec, key: str) -> None:
    """A corpus spec: ``in_domain``, ``general`` or an existing file or directory."""
    if spec in ("in_domain", "general"):
        return
    p = Path(str(spec)).expanduser()
    if not p.exists():
        raise ConfigError(f"{key}={spec}: not 'in_domain', 'general' or an existing file (one text a line, or a "
                          "Parquet/JSON dataset) or directory of dataset files")


def needs_teacher(module) -> bool:
    """Whether a ranking loss, or a term of a composite one, trains on teacher scores."""
    return any(getattr(m, "needs_teacher", False) for m in module.modules())


def check_objective(cfg: DictConfig) -> None:
    """The ``loss`` group's objects build (their own argument checks, naming the key), and a
    distillation loss has teacher scores to train on."""
    from splade_exp.stages.splade import build_objective

    if cfg.get("loss") is None or cfg.loss.get("ranking") is None:
        return
    try:
        ranking, _ = build_objective(cfg.loss)
    except (ValueError, TypeError) as err:
        raise ConfigError(str(err)) from None
    data = cfg.get("data") or {}
    if needs_teacher(ranking) and not (data.get("distillation") or data.get("teacher_scores")):
        raise ConfigError(f"loss={cfg.loss.get('name')}: its ranking loss distils teacher scores, but the data carry none; "
                          "set data.distillation=<JSON lines {qid, pos, neg}> or data.teacher_scores=<qid pid score "
                          "file> (with data.num_negatives>0), or choose a loss without a teacher (loss=flops)")


def check_combinations(cfg: DictConfig) -> None:
    """Choices of different groups that cannot go together: ``init`` × ``vocab``."""
    from splade_exp.export.model_dir import ModelDir

    vocab, init = cfg.get("vocab"), cfg.get("init")
    if vocab is None or init is None:
        return
    if init.get("kind") == "esplade" and vocab.get("kind") != "unigram":
        raise ConfigError(f"init={init.get('name')} builds unigram rows from WordPiece rows; it needs vocab=unigram "
                          f"(got vocab={vocab.get('name')}); with the WordPiece head use init=pretrained or init=random")
    carried = ModelDir.of(cfg.get("backbone", {}).get("name_or_path")) is not None  # keeps its own head
    if init.get("kind") == "pretrained" and vocab.get("kind") == "unigram" and not carried:
        raise ConfigError(f"init={init.get('name')} keeps the backbone's WordPiece decoder and cannot score "
                          "vocab=unigram; use init=random or init=esplade (or a model directory of a unigram run "
                          "as backbone.name_or_path)")


def check_pretrain_checkpoint(path) -> None:
    from safetensors import safe_open

    from splade_exp.stages.pretrain import CHECKPOINT

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


def check_vocab(vocab) -> None:
    """A unigram vocabulary's size and corpus (the WordPiece head has no settings)."""
    if vocab.get("kind") == "unigram":
        positive_int(vocab.get("size"), "vocab.size")
        check_corpus(vocab.get("corpus", "in_domain"), "vocab.corpus")


def check_config(cfg: DictConfig) -> None:
    """Raise ConfigError/DataError/BackboneError for a config that cannot run (see module doc)."""
    from splade_exp.data.sources import make_source
    from splade_exp.models.encoder import check_head

    check_required(cfg)
    if cfg.get("stage") not in STAGES:
        raise ConfigError(f"stage must be one of {STAGES}, got {cfg.get('stage')!r}")
    check_seed(cfg.get("seed"))
    check_lock(cfg.get("lock", "wait"))
    check_paths(cfg.paths)
    if cfg.get("trainer") is not None:
        check_trainer(cfg.trainer)
    if cfg.get("loss") is not None:
        check_loss(cfg.loss)
    if "prune" in cfg:
        check_prune_grid(cfg.prune.grid)
    if cfg.get("vocab") is not None:
        check_vocab(cfg.vocab)
    if cfg.get("head") is not None:
        check_head(cfg.head)
    check_pretrain(cfg.get("pretrain"))
    check_combinations(cfg)
    check_objective(cfg)
    make_source(cfg.data, cfg.paths.artifacts_dir)
    check_backbone(cfg)
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

        from splade_exp.resolvers import register_resolvers

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
