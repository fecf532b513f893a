"""EMLM pretraining of the output head (METHOD §5) as a resumable, distributed stage.

**One artifact per configuration.** The result is the artifact ``emlm/emlm-<hash>/``, keyed by
:func:`emlm_key` (backbone, data, ``vocab``, ``init``, the ``pretrain`` values that change what is
computed, the trainer's precision / clipping / accumulation, the seed) and reused by every
fine-tuning job that needs it. It holds ``model.safetensors`` (the whole encoder: trunk + output
decoder), ``vocab.tsv`` (the output vocabulary in id order), ``curves.csv`` (step, split, loss,
accuracy), ``stats.json`` (the EMLM statistics of :mod:`splade_exp.stages.emlm_stats`, the final
validation loss/accuracy and those at step 0, the context-free bound of the validation labels
(``val_prior_accuracy``/``val_prior_loss``: :func:`~splade_exp.stages.emlm.context_free_bound`),
the data actually used: corpus texts, distinct training texts, effective repetition; the step a relaunch resumed from) and ``key.json``.

**Who builds it.** ``stage=pretrain`` runs :func:`pretrain_emlm` as a job of its own: a sweep
launches its distinct pretrainings first, then the fine-tuning jobs, which find the artifact and
load it (``sweeps/README.md``). The job trains under its own process group (DDP over srun tasks,
torchrun or ``submitit_local`` tasks) on the global ``pretrain.batch_size``, split over the ranks
(:mod:`splade_exp.data.pretraining`; the exact global-batch loss of
:class:`~splade_exp.stages.emlm.EmlmModule`), so 1 and W processes compute the same pretraining.
A fine-tuning job whose artifact is missing follows ``pretrain.missing`` (:func:`emlm_artifact`):
``build`` (default) runs the same resumable pretraining inside the job, in one process as every
artifact build inside a job does (:mod:`splade_exp.artifacts`: the job's other ranks wait on the
lock), ``wait`` polls until another job has published it, ``error`` stops with the command that
builds it.

**Resume.** While it trains, the builder holds the artifact's lock (:func:`splade_exp.artifacts.claim`)
and writes ``last.ckpt`` into a work directory keyed like the artifact,
``emlm/.work/emlm-<hash>/checkpoints/``, every ``pretrain.checkpoint_every_n_steps`` steps, on
Slurm's pre-timeout/preemption signal and on SIGTERM (:class:`splade_exp.launch.PreemptionCheckpoint`).
A relaunch -- the requeued job, the same command again, or a fine-tuning job with
``missing=build`` -- resumes from it: step count, LR schedule, optimizer, data position (batches
are a function of the step), masking and dropout (functions of the step:
:mod:`splade_exp.stages.seeding`), curves. The finished artifact is published atomically (written
beside, renamed into place), then the work directory is removed.

**Data.** The pretraining texts are ``pretrain.corpus`` (``general``, ``in_domain``, a text file, or
a Parquet/JSON dataset read through ``datasets``; :mod:`splade_exp.data.corpus`), streamed, never
held in memory. A fixed sample of ``pretrain.stats_docs`` collection documents is held out for the
statistics (and removed from the texts when the corpus is ``in_domain``). Which texts are
validation / training and in what order they come is :mod:`splade_exp.data.pretraining`:
``pretrain.val_size`` validation texts, ``ceil(steps * batch_size / repetition)`` distinct training
texts (fewer if the corpus is smaller: the effective repetition, logged with a warning, is larger).

A run may instead name an existing checkpoint (``pretrain.checkpoint``: an EMLM artifact directory
or its ``model.safetensors``); its vocabulary must equal the configured one.
"""
from __future__ import annotations

import json
import logging
import os
import random
import shutil
import signal
import time
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import torch
from omegaconf import DictConfig, OmegaConf

from splade_exp import artifacts
from splade_exp.errors import SpladeExpError
from splade_exp.io import atomic_dir, atomic_path
from splade_exp.models.encoder import SpladeEncoder
from splade_exp.results import flatten

log = logging.getLogger(__name__)

CHECKPOINT = "model.safetensors"
# Bump when the same key would compute something else (2: streamed corpus, position-keyed
# selection, order and masking; exact global-batch loss under DDP).
EMLM_VERSION = 2
# pretrain.* keys that say how and where to run, not what is computed: not part of the key.
OPERATIONAL = ("checkpoint", "checkpoint_every_n_steps", "missing", "wait_timeout_min", "wait_poll_s")
TRAINER_KEYS = ("precision", "gradient_clip_val", "accumulate_grad_batches")
MISSING = ("build", "wait", "error")
ROWS_FORMAT = 1


class EmlmMissing(SpladeExpError, RuntimeError):
    """The EMLM artifact a run needs does not exist and ``pretrain.missing`` says not to build it."""


@dataclass(frozen=True)
class EmlmSpec:
    """Everything the stage needs besides the model: its sub-configs and what identifies its inputs
    (``backbone_id``/``data_id``: the backbone and data parts of artifact keys, computed by the caller
    with :func:`splade_exp.run.backbone_key` / :func:`splade_exp.vocab.unigram.data_key`)."""
    pretrain: DictConfig
    trainer: DictConfig
    vocab: DictConfig
    init: DictConfig
    seed: int
    backbone_id: dict
    data_id: dict
    artifacts_dir: Path

    @property
    def fingerprints(self) -> Path:
        """The cache of input-file fingerprints (:mod:`splade_exp.fingerprint`)."""
        return Path(self.artifacts_dir) / "fingerprints"

    def path(self) -> Path:
        return artifacts.artifact_path(self.artifacts_dir, "emlm", "emlm", emlm_key(self))

    def work_dir(self) -> Path:
        path = self.path()
        return path.parent / ".work" / path.name


def _plain(node) -> dict:
    return OmegaConf.to_container(node, resolve=True) if OmegaConf.is_config(node) else dict(node)


def emlm_key(spec: EmlmSpec) -> dict:
    """What identifies an EMLM pretraining: the one function every job computes its artifact from.
    The data part is the caller's ``data_key()``; a corpus file enters by :func:`corpus_key`."""
    from splade_exp.vocab.unigram import corpus_key

    pre = _plain(spec.pretrain)
    for key in OPERATIONAL:
        pre.pop(key, None)
    pre.update(corpus_key(pre["corpus"], pre.get("text_field"), spec.fingerprints))
    vocab = _plain(spec.vocab)
    vocab.pop("count_processes", None)
    if "corpus" in vocab:  # the words of a vocabulary counted on a file change with the file
        vocab.update(corpus_key(vocab["corpus"], vocab.get("text_field"), spec.fingerprints))
    return {**spec.backbone_id, "data": spec.data_id, "vocab": vocab, "init": _plain(spec.init), "pretrain": pre,
            "trainer": {k: spec.trainer.get(k) for k in TRAINER_KEYS}, "seed": int(spec.seed),
            "version": EMLM_VERSION}


def stats_doc_ids(collection, n: int, seed: int) -> list[str]:
    """The held-out in-domain documents of the statistics: a fixed sample, in corpus order (empty
    documents have no word to mask and are not sampled)."""
    ids = [i for i, t in collection.corpus.items() if t]
    chosen = set(random.Random(seed).sample(ids, min(n, len(ids))))
    return [i for i in ids if i in chosen]


# --------------------------------------------------------------------------- data
def rows_artifact(spec: EmlmSpec, tokenizer, collection, words: list[str] | None, held_out: list[str]) -> Path:
    """The tokenised training/validation rows of this pretraining (:mod:`splade_exp.data.pretraining`)."""
    from splade_exp.data.corpus import text_source
    from splade_exp.data.pretraining import build_rows, wanted_texts
    from splade_exp.data.tokenized import tokenizer_fingerprint
    from splade_exp.hashing import config_hash
    from splade_exp.vocab.unigram import CORPORA, corpus_key

    p, seed = spec.pretrain, int(spec.seed)
    wanted = wanted_texts(int(p.steps), int(p.batch_size), float(p.repetition))
    key = {"corpus": corpus_key(str(p.corpus), p.get("text_field"), spec.fingerprints),
           "data": spec.data_id if str(p.corpus) in CORPORA else None,
           "held_out": [int(p.stats_docs), seed] if p.corpus == "in_domain" else None,
           "tokenizer": tokenizer_fingerprint(tokenizer), "max_length": int(p.max_length),
           "val_size": int(p.val_size), "wanted": wanted, "seed": seed,
           "labels": None if words is None else config_hash(words, 16), "format": ROWS_FORMAT}

    def build(out: Path) -> None:
        source = text_source(p.corpus, collection, p.get("text_field", "text"), spec.artifacts_dir,
                             exclude=held_out, key="pretrain.corpus")
        word_vocab = None if words is None else {w: i for i, w in enumerate(words)}
        build_rows(out, source, tokenizer, word_vocab, int(p.max_length), int(p.val_size), wanted,
                   int(p.batch_size), seed)

    return artifacts.artifact(spec.artifacts_dir, "tokens", "emlm", key, build)


def _masking(p, tokenizer, words):
    from splade_exp.data.masking import check_rates
    from splade_exp.data.pretraining import Masking

    check_rates(p.mask_rate, p.mask_token_prob, p.random_token_prob)
    return Masking(p.mask_rate, p.mask_token_prob, p.random_token_prob, tokenizer.mask_token_id,
                   tokenizer.pad_token_id, len(tokenizer), words is None, tokenizer.padding_side)


# --------------------------------------------------------------------------- training
def _join_group(trainer):
    """The job's process group, formed now rather than inside ``fit`` (Lightning then reuses it),
    so that its ranks can agree on the artifact lock before training. Returns a gloo group."""
    import torch.distributed as dist

    from splade_exp.checks import ConfigError

    if not dist.is_initialized():
        env = trainer.strategy.cluster_environment
        if not env.creates_processes_externally:
            raise ConfigError(
                f"stage=pretrain on {trainer.world_size} processes needs them started from outside (srun tasks: "
                "launcher=slurm_multigpu; torchrun --nproc-per-node N -m splade_exp ...; or launcher=submitit_local "
                "hydra.launcher.tasks_per_node=N -m), not by Lightning re-executing the command")
        os.environ["MASTER_ADDR"], os.environ["MASTER_PORT"] = env.main_address, str(env.main_port)
        backend = "nccl" if trainer.strategy.root_device.type == "cuda" else "gloo"
        if backend == "nccl":
            torch.cuda.set_device(trainer.strategy.root_device)
        dist.init_process_group(backend, rank=trainer.global_rank, world_size=trainer.world_size)
    return dist.group.WORLD if dist.get_backend() == "gloo" else dist.new_group(backend="gloo")


def _trainer(spec: EmlmSpec, work: Path, single_process: bool, logger):
    from splade_exp.launch import PreemptionCheckpoint
    from splade_exp.stages.fit import make_trainer
    from splade_exp.stages.seeding import StepSeed

    p = spec.pretrain
    last = work / "checkpoints" / "last.ckpt"
    return make_trainer(spec.trainer, work, int(p.steps), logger=logger,
                        callbacks=[StepSeed(spec.seed, "emlm"), PreemptionCheckpoint(last)],
                        checkpoint_every=int(p.checkpoint_every_n_steps) or None, use_distributed_sampler=False,
                        single_process=single_process), last


def pretrain_emlm(spec: EmlmSpec, encoder: SpladeEncoder, tokenizer, collection, words: list[str] | None,
                  single_process: bool = False, logger=False) -> Path:
    """Build the artifact of ``spec`` unless it exists; return its path (module doc).

    ``single_process``: train in this process alone (inside a fine-tuning job); otherwise on the
    job's processes (``stage=pretrain``), which all call this.
    """
    import torch.distributed as dist

    work = spec.work_dir()
    trainer, last = _trainer(spec, work, single_process, logger)
    group = _join_group(trainer) if trainer.world_size > 1 else None
    path = spec.path()
    with artifacts.claim(path, float(spec.pretrain.wait_poll_s), group) as build:
        if not build:
            if trainer.global_rank == 0:
                shutil.rmtree(work, ignore_errors=True)  # left by a builder killed after publishing
            log.info("reusing artifact %s (EMLM pretraining)", path)
            return path
        info = _train(spec, trainer, last, encoder, tokenizer, collection, words)
        if trainer.global_rank == 0:
            _publish(spec, path, encoder, tokenizer, collection, words, info)
            shutil.rmtree(work, ignore_errors=True)
            artifacts.built.append(f"emlm/{path.name}")
        if group is not None:
            dist.barrier(group)  # every rank returns once the artifact exists
    return path


def _train(spec: EmlmSpec, trainer, last: Path, encoder, tokenizer, collection, words) -> dict:
    from lightning.pytorch.utilities.exceptions import SIGTERMException

    from splade_exp.checkpoint import check_torch_checkpoint
    from splade_exp.data.pretraining import PretrainingData, TokenRows, validation_batches
    from splade_exp.stages.emlm import EmlmModule, context_free_bound

    p, seed = spec.pretrain, int(spec.seed)
    held_out = stats_doc_ids(collection, int(p.stats_docs), seed)
    rows = rows_artifact(spec, tokenizer, collection, words, held_out)
    meta = json.loads((rows / "meta.json").read_text())
    masking = _masking(p, tokenizer, words)
    val = validation_batches(TokenRows(rows, "val"), int(p.batch_size), seed, masking)
    module = EmlmModule(encoder, lr=p.lr, weight_decay=p.weight_decay, warmup_steps=p.warmup_steps, max_steps=p.steps,
                        val_batches=val, val_every_n_steps=p.val_every_n_steps, log_every_n_steps=p.log_every_n_steps)
    data = PretrainingData(TokenRows(rows, "train"), int(p.batch_size), seed, masking, int(spec.trainer.num_workers))
    effective = int(p.steps) * int(p.batch_size) / meta["train_texts"]
    if meta["train_texts"] < meta["wanted"]:
        log.warning("pretrain.corpus=%s has %d texts for training, fewer than the %d distinct texts that "
                    "repetition=%s asks for: each is seen %.2f times", p.corpus, meta["train_texts"], meta["wanted"],
                    p.repetition, effective)
    resume = last.exists()
    if resume:
        check_torch_checkpoint(last, f"Delete it (rm {last}) to restart this pretraining from step 0")
        log.info("resuming EMLM pretraining from %s", last)
    t0 = time.time()
    try:
        trainer.fit(module, datamodule=data, ckpt_path=str(last) if resume else None)
    except SIGTERMException:
        log.warning("SIGTERM after %d steps: %s holds the last step; the same command resumes from it",
                    trainer.global_step, last)
        raise SystemExit(128 + signal.SIGTERM) from None
    return {"module": module, "train_time_s": time.time() - t0, "held_out": held_out, "devices": trainer.world_size,
            "val_prior": {f"val_{k}": v for k, v in context_free_bound(val).items()},
            "data": {"corpus_texts": meta["texts"], "distinct_texts": meta["train_texts"],
                     "repetition_effective": effective, "val_texts": meta["val_texts"]}}


def _publish(spec: EmlmSpec, path: Path, encoder, tokenizer, collection, words, info: dict) -> None:
    """Statistics, then every file of the artifact into a temporary directory renamed onto ``path``."""
    from safetensors.torch import save_model

    from splade_exp.stages.emlm_stats import emlm_statistics

    p, module = spec.pretrain, info["module"]
    curves = pd.DataFrame(module.curves, columns=["step", "split", "loss", "accuracy"])
    val_rows = curves[curves.split == "val"]
    last_val = val_rows.iloc[-1] if len(val_rows) else None
    first_val = val_rows.iloc[0] if len(val_rows) and val_rows.iloc[0].step == 0 else None
    device = next(encoder.parameters()).device
    docs = [collection.corpus[i] for i in info["held_out"]]
    stats = emlm_statistics(encoder, tokenizer, docs, int(p.max_length), int(p.stats_batch_size), device)
    encoder.to("cpu")
    stats.update({"accuracy": float(last_val.accuracy) if last_val is not None else float("nan"),
                  "val_loss": float(last_val.loss) if last_val is not None else float("nan"),
                  "accuracy_step0": float(first_val.accuracy) if first_val is not None else float("nan"),
                  "val_loss_step0": float(first_val.loss) if first_val is not None else float("nan"),
                  **info["val_prior"],
                  "train_time_s": info["train_time_s"], "resumed_from_step": module.resumed_from_step,
                  "devices": info["devices"], **info["data"]})
    log.info("EMLM: %d steps, val accuracy %.4f, %d distinct texts", p.steps, stats["accuracy"],
             stats["distinct_texts"])
    with atomic_dir(path) as out:
        save_model(encoder, str(out / CHECKPOINT))
        curves.to_csv(out / "curves.csv", index=False)
        (out / "stats.json").write_text(json.dumps(stats, indent=2, sort_keys=True) + "\n")
        (out / "key.json").write_text(json.dumps(emlm_key(spec), indent=2, sort_keys=True, default=str) + "\n")
        with open(out / "vocab.tsv", "w", encoding="utf-8") as fh:
            for w in words if words is not None else tokenizer.convert_ids_to_tokens(list(range(encoder.vocab_size))):
                fh.write(f"{w}\n")
    log.info("built artifact %s (EMLM pretraining)", path)


# --------------------------------------------------------------------------- fine-tuning jobs
def emlm_artifact(spec: EmlmSpec, encoder: SpladeEncoder, tokenizer, collection, words: list[str] | None,
                  command: str) -> Path:
    """The artifact a fine-tuning job needs; if missing, built here, waited for or refused
    (``pretrain.missing``). ``command`` builds it on its own (named in the messages)."""
    path = spec.path()
    if path.is_dir():
        log.info("reusing artifact %s (EMLM pretraining)", path)
        return path
    p = spec.pretrain
    if p.missing == "build":
        return pretrain_emlm(spec, encoder, tokenizer, collection, words, single_process=True)
    if p.missing == "error":
        raise EmlmMissing(f"{path}: the EMLM pretraining this run needs is not built (pretrain.missing=error). Build "
                          f"it first with:\n  {command}\nor set pretrain.missing=build (build it in this job) or "
                          "pretrain.missing=wait (wait for a pretraining job to publish it)")
    if p.missing != "wait":
        raise ValueError(f"pretrain.missing must be one of {MISSING}, got {p.missing!r}")
    timeout = float(p.wait_timeout_min) * 60
    deadline, poll = time.monotonic() + timeout, float(p.wait_poll_s)
    log.info("waiting up to %.0f min for %s (pretrain.missing=wait)", timeout / 60, path)
    while not path.is_dir():
        if time.monotonic() >= deadline:
            raise EmlmMissing(f"{path}: waited {timeout / 60:g} min (pretrain.wait_timeout_min) for the EMLM "
                              f"pretraining this run needs and it did not appear. Is its job running? It is "
                              f"built by:\n  {command}")
        time.sleep(min(poll, max(deadline - time.monotonic(), 0.0)))
    return path


def load_checkpoint(encoder: SpladeEncoder, path: Path, words: list[str] | None) -> Path:
    """Load an EMLM checkpoint (artifact directory or its safetensors file) into ``encoder``."""
    from splade_exp.checkpoint import load_safetensors
    from splade_exp.vocab.unigram import read_vocab

    path = Path(path).expanduser()
    directory = path if path.is_dir() else path.parent
    file = directory / CHECKPOINT if path.is_dir() else path
    if not file.is_file():
        raise FileNotFoundError(f"pretrain.checkpoint={path}: no {CHECKPOINT} there; give an EMLM artifact "
                                f"directory or its {CHECKPOINT}")
    if words is not None and (directory / "vocab.tsv").exists():
        theirs = read_vocab(directory / "vocab.tsv")
        if theirs != words:
            raise ValueError(f"pretrain.checkpoint={path} was pretrained with a different output vocabulary "
                             f"({len(theirs)} words) than the configured one ({len(words)} words)")
    load_safetensors(encoder, file, "the EMLM checkpoint",
                     f"delete {directory} so that the next run rebuilds it (an EMLM artifact), or point "
                     "pretrain.checkpoint at a complete checkpoint")
    return directory


def emlm_info(directory: Path) -> dict:
    """The ``emlm.*`` results columns of an artifact (its ``stats.json``)."""
    stats_file = Path(directory) / "stats.json"
    if not stats_file.exists():
        return {}
    return {f"emlm.{k}": v for k, v in json.loads(stats_file.read_text()).items()}


def write_curves(directory: Path, pretrain: DictConfig, out: Path) -> Path | None:
    """``out`` (``<results_dir>/<sweep>/<artifact>.curves.parquet``) from the artifact's ``curves.csv``,
    with the context-free bound of its validation labels (``stats.json``) as constant columns."""
    src = Path(directory) / "curves.csv"
    if not src.exists():
        return None
    if out.exists():
        return out
    curves = pd.read_csv(src)
    cols = flatten({"pretrain": _plain(pretrain)})
    frame = pd.DataFrame({"artifact_id": Path(directory).name, "pretrain": str(pretrain.name),
                          **{k: [v] * len(curves) for k, v in cols.items()}})
    frame = pd.concat([frame, curves.reset_index(drop=True)], axis=1)
    stats = emlm_info(directory)
    for col in ("val_prior_accuracy", "val_prior_loss"):  # the figure's context-free bound
        if stats.get(f"emlm.{col}") is not None:
            frame[col] = float(stats[f"emlm.{col}"])
    for col in frame.columns:  # one type per column for Parquet
        if frame[col].dtype == object and col not in ("artifact_id", "pretrain", "split"):
            frame[col] = frame[col].map(lambda v: None if v is None else str(v))
    with atomic_path(out) as tmp:
        frame.to_parquet(tmp, index=False)
    return out
