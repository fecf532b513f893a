"""``run(cfg)``: one experiment from a composed config, all orchestration in one place.

Stages: collection -> BM25 baseline -> backbone -> output head (vocabulary, init, optional EMLM)
-> SPLADE fine-tuning (resumable) -> evaluation over the pruning grid -> one Parquet file.
``stage=pretrain`` runs only the EMLM pretraining of the configured model (resumable, on the job's
devices) and publishes its artifact for the fine-tuning jobs; it writes no results row.
Tests call :func:`run` directly with a composed config.

A launch, in order: the config is checked (:mod:`splade_exp.checks`); the run id and eval id
(:mod:`splade_exp.identity`); results whose eval id matches end it at once ("already finished");
the run lock is taken (:mod:`splade_exp.runlock`: one process per run id under a root); the run
directory is cleared of temporaries a killed process left, and the log says when the inputs
differ from those of an earlier run of the same config. Then: a finished training (its final
``last.ckpt``) is evaluated again without training; an unfinished one resumes from ``last.ckpt``;
``force=true`` trains from scratch and rewrites the BM25 file.
"""
from __future__ import annotations

import gc
import json
import logging
import os
import shutil
import time
from pathlib import Path

import lightning as L
import pandas as pd
import torch
from omegaconf import DictConfig, OmegaConf, open_dict

from splade_exp import artifacts, tracking
from splade_exp.checks import check_config
from splade_exp.hashing import config_hash, drop_keys
from splade_exp.identity import config_id, eval_id, identity_hash, run_id, run_inputs, training_config
from splade_exp.io import remove_orphans, write_json, write_text
from splade_exp.launch import PreemptionCheckpoint, prepare_process, requested_processes
from splade_exp.results import choice_columns, flatten, make_frame, read_results, write_results
from splade_exp.runlock import RunLock

log = logging.getLogger(__name__)

__all__ = ["run", "run_id", "eval_id", "results_path"]


def results_path(cfg: DictConfig, rid: str) -> Path:
    return Path(cfg.paths.results_dir) / cfg.sweep / f"{rid}.parquet"


def load_collection(cfg: DictConfig):
    from splade_exp.data.sources import load_collection as load

    return load(cfg.data, cfg.paths.artifacts_dir, cfg.stage)


def bm25_key(cfg: DictConfig) -> dict:
    """What BM25's rows depend on: the data (content of its files, :mod:`splade_exp.data.identity`),
    the loading options that change the corpus or the judgments, and the split."""
    from splade_exp.data.identity import data_identity

    return {"data": data_identity(cfg.data, cfg.paths.artifacts_dir),
            "drop_unknown_qrels": bool(cfg.data.get("drop_unknown_qrels", False)), "split": cfg.data.eval_split}


def bm25_path(cfg: DictConfig) -> Path:
    """The BM25 results file of this config's data and split (``<results_dir>/<sweep>/bm25-<key>.parquet``)."""
    return Path(cfg.paths.results_dir) / cfg.sweep / f"bm25-{config_hash(bm25_key(cfg))}.parquet"


def ensure_bm25(cfg: DictConfig, collection) -> Path:
    """BM25 rows of this collection and split, written once per sweep (again with ``force=true``), with
    their per-query metrics and run file (``runfiles``); the results file is written last (it marks the
    others complete)."""
    from splade_exp.baselines.bm25 import bm25_evaluation
    from splade_exp.runfiles import perquery_path, trec_path, write_perquery, write_trec

    path = bm25_path(cfg)
    results_dir, rid = path.parent, path.stem
    if cfg.force or not path.exists():
        row, per, bm25_run = bm25_evaluation(collection, cfg.data.eval_split, k=cfg.eval.k)
        write_trec(trec_path(results_dir, rid, 0, 0), bm25_run, rid)
        write_perquery(perquery_path(results_dir, rid),
                       [per.assign(run_id=rid, system="bm25", model="BM25", seed=int(cfg.seed))])
        frame = make_frame([row], {"run_id": rid, "sweep": cfg.sweep, "system": "bm25",
                                   "model": "BM25", "status": "completed", "diverged_step": None,
                                   "data": cfg.data.name})
        write_results(path, frame)
    return path


def backbone_key(cfg: DictConfig) -> dict:
    """The backbone's identity in this run's artifact keys (:meth:`splade_exp.models.backbones.Backbone.key`)."""
    from splade_exp.models.backbones import builder
    from splade_exp.vocab.unigram import data_key

    return builder(cfg.backbone).key(int(cfg.seed), data_key(cfg), Path(str(cfg.paths.artifacts_dir)) / "fingerprints")


def load_backbone(cfg: DictConfig, collection):
    """(masked LM, tokenizer) of the backbone's builder (:mod:`splade_exp.models.backbones`)."""
    from splade_exp.checks import tokenised_lengths
    from splade_exp.models.backbones import builder
    from splade_exp.vocab.unigram import data_key

    return builder(cfg.backbone).load(collection, cfg.trainer, cfg.paths.artifacts_dir, int(cfg.seed), data_key(cfg),
                                      tokenised_lengths(cfg))


def emlm_spec(cfg: DictConfig):
    """What the EMLM stage needs of the config (its sub-configs and the identities of its inputs)."""
    from splade_exp.stages.pretrain import EmlmSpec
    from splade_exp.vocab.unigram import data_key

    return EmlmSpec(cfg.pretrain, cfg.trainer, cfg.vocab, cfg.init, int(cfg.seed), backbone_key(cfg), data_key(cfg),
                    Path(cfg.paths.artifacts_dir))


def pretrain_command(cfg: DictConfig) -> str:
    """The command that runs this run's EMLM pretraining as a job of its own (for messages)."""
    from hydra.core.hydra_config import HydraConfig

    overrides = list(HydraConfig.get().overrides.task) if HydraConfig.initialized() else []
    keep = [o for o in overrides if o.split("=", 1)[0].lstrip("+~") != "stage"]
    return " ".join(["python -m splade_exp", "stage=pretrain", *keep])


def curves_path(cfg: DictConfig, directory: Path) -> Path:
    return Path(cfg.paths.results_dir) / cfg.sweep / f"{directory.name}.curves.parquet"


def prepare_model(cfg: DictConfig, collection):
    """(encoder with its initial output head, tokenizer, output words or None, info): before any EMLM.
    A backbone that is the model directory of an earlier run keeps its trained head when
    ``init=pretrained`` (:class:`splade_exp.export.model_dir.ModelDir`); ``info["head.carried_scaled"]``
    says whether that head was already divided by its run's ``head.k``."""
    from splade_exp.export.model_dir import ModelDir
    from splade_exp.models.encoder import SpladeEncoder
    from splade_exp.models.head_scale import inflate_head
    from splade_exp.vocab.heads import prepare_head
    from splade_exp.vocab.unigram import data_key

    mlm, tokenizer = load_backbone(cfg, collection)
    h = cfg.head
    encoder = SpladeEncoder.from_masked_lm(mlm, pooling=h.pooling, pooling_impl=h.pooling_impl, chunk_size=h.chunk_size)
    if h.get("inflate_norm") is not None:
        inflate_head(encoder, h.inflate_norm)
    model_dir = ModelDir.of(cfg.backbone.get("name_or_path"))  # the model directory of an earlier run, or None
    if model_dir is not None:
        model_dir.check_pooling(h.pooling)
    if model_dir is not None and model_dir.keeps_head(cfg.init.kind, cfg.pretrain.enabled):
        (encoder, info), words = model_dir.attach_head(encoder), None
    else:
        encoder, words, info = prepare_head(cfg.vocab, cfg.init, cfg.seed, encoder, tokenizer, collection,
                                            backbone_key(cfg), data_key(cfg), cfg.paths.artifacts_dir)
    # head.k divides a head once: not again when it comes, as trained, from a run that did
    info["head.carried_scaled"] = model_dir is not None and model_dir.head_scaled and cfg.init.kind == "pretrained"
    return encoder, tokenizer, words, info


def load_emlm(cfg: DictConfig, encoder, tokenizer, collection, words) -> dict:
    """Load the configured EMLM pretraining into ``encoder`` (built here, waited for or required:
    ``pretrain.missing``); returns the ``emlm.*`` results columns."""
    from splade_exp.stages.pretrain import emlm_artifact, emlm_info, load_checkpoint, write_curves

    if cfg.pretrain.get("checkpoint"):
        directory = load_checkpoint(encoder, cfg.pretrain.checkpoint, words)
        info = {"emlm.checkpoint": str(directory)}
    else:
        directory = emlm_artifact(emlm_spec(cfg), encoder, tokenizer, collection, words, pretrain_command(cfg))
        load_checkpoint(encoder, directory, words)
        info = {"emlm.artifact": directory.name}
    info.update(emlm_info(directory))
    write_curves(directory, cfg.pretrain, curves_path(cfg, directory))
    return info


def build_encoder(cfg: DictConfig, collection):
    from splade_exp.models.head_scale import scale_head

    encoder, tokenizer, words, info = prepare_model(cfg, collection)
    if cfg.pretrain.enabled:
        info.update(load_emlm(cfg, encoder, tokenizer, collection, words))
    info["vocab_size"] = encoder.vocab_size
    info["head.k_applied"] = cfg.stage == "train" and not info.pop("head.carried_scaled")
    if info["head.k_applied"]:
        info.update(scale_head(encoder, cfg.head.k, cfg.head.scale_bias))
    return encoder, tokenizer, info


def train_splade(cfg: DictConfig, encoder, tokenizer, collection, run_dir: Path, logger=False):
    from splade_exp.checkpoint import check_resume_checkpoint
    from splade_exp.data.training import PairCollator, PairDataset, training_tokens
    from splade_exp.models.head_scale import init_diagnostics
    from splade_exp.stages.fit import FinalCheckpoint, GlobalBatchData, make_trainer
    from splade_exp.stages.seeding import StepSeed
    from splade_exp.stages.splade import SpladeModule, build_objective

    t, loss, d = cfg.trainer, cfg.loss, cfg.data
    ranking_loss, regularizers = build_objective(loss)
    module = SpladeModule(encoder, ranking_loss, regularizers, topk_q=loss.topk_q, topk_d=loss.topk_d, lr=t.lr,
                          weight_decay=t.weight_decay, warmup_steps=t.warmup_steps, max_steps=t.max_steps)
    tokens = training_tokens(cfg.paths.artifacts_dir, collection, tokenizer, d.query_max_length,
                             d.doc_max_length) if d.get("pretokenize") else None
    dataset = PairDataset(collection, num_negatives=d.num_negatives, seed=cfg.seed, tokens=tokens)
    collate = PairCollator(tokenizer, d.query_max_length, d.doc_max_length)
    detector = collapse_detector(cfg, encoder.vocab_size)
    last = last_checkpoint(run_dir)
    # StepSeed: dropout of step t is drawn from (seed, rank, t), so a resumed run draws what an
    # uninterrupted one draws; FinalCheckpoint: last.ckpt always holds the final step.
    callbacks = [StepSeed(cfg.seed, "splade"), detector, PreemptionCheckpoint(last), FinalCheckpoint(last)]
    trainer = make_trainer(t, run_dir, t.max_steps, logger=logger, callbacks=callbacks,
                           checkpoint_every=t.checkpoint_every_n_steps, use_distributed_sampler=False)
    # trainer.batch_size is the global batch: each rank trains on its slice (stages/fit.py)
    data = GlobalBatchData(dataset, collate, t.batch_size, cfg.seed, t.num_workers)
    if not last.exists():  # head diagnostics at initialisation, on the first global batch
        first = next(iter(data.loader()))
        module.diagnostics = init_diagnostics(encoder, first["d_input_ids"], first["d_attention_mask"])
    else:  # resumes the step count, the lambda ramp, the optimizer and the data stream
        check_resume_checkpoint(last)
        log.info("resuming from %s", last)
    trainer.fit(module, datamodule=data, ckpt_path=str(last) if last.exists() else None)
    return module, trainer, detector


def collapse_detector(cfg: DictConfig, vocab_size: int):
    from splade_exp.stages.collapse import CollapseDetector

    c = cfg.trainer.collapse
    return CollapseDetector(vocab_size, patience=c.patience, check_every=c.check_every,
                            active_fraction=c.active_fraction, identical_cosine=c.identical_cosine,
                            inject_nan_at_step=c.inject_nan_at_step)


def last_checkpoint(run_dir: Path) -> Path:
    return run_dir / "checkpoints" / "last.ckpt"


def finished_training(cfg: DictConfig, run_dir: Path, vocab_size: int):
    """``(checkpoint, detector)`` when ``last.ckpt`` holds a finished training (its final step, or a
    diverged run's verdict), else None: then the run trains (or resumes)."""
    from splade_exp.checkpoint import check_resume_checkpoint

    last = last_checkpoint(run_dir)
    if not last.exists():
        return None
    check_resume_checkpoint(last)
    ckpt = torch.load(last, map_location="cpu", weights_only=False, mmap=True)
    detector = collapse_detector(cfg, vocab_size)
    detector.load_state_dict(ckpt.get("callbacks", {}).get(detector.state_key, {}))
    if ckpt.get("global_step", 0) >= cfg.trainer.max_steps or detector.diverged_step is not None:
        return ckpt, detector
    return None


def restore_final(encoder, ckpt: dict) -> dict:
    """Load the final weights of a finished training into ``encoder``; returns the run's training info."""
    state = {k[len("encoder."):]: v for k, v in ckpt["state_dict"].items() if k.startswith("encoder.")}
    encoder.load_state_dict(state)
    return {**ckpt.get("head_diagnostics", {}), "resumed_from_step": ckpt.get("resumed_from_step")}


def finished_results(out: Path, eid: str, force: bool = False) -> pd.DataFrame | None:
    """The results file's rows if it holds this evaluation (its eval id), else None."""
    if force or not out.exists():
        return None
    frame = read_results(out)
    if "eval_id" in frame and len(frame) and (frame["eval_id"] == eid).all():
        return frame
    return None


def normalise_paths(cfg: DictConfig) -> None:
    """``paths.*`` with ``~`` expanded and made absolute: a literal ``~/x`` would be a directory named
    ``~`` under the working directory."""
    with open_dict(cfg):
        for key in ("root", "artifacts_dir", "runs_dir", "results_dir"):
            value = cfg.paths.get(key)
            if value is None:
                continue
            norm = os.path.abspath(os.path.expanduser(str(value)))
            if norm != value:
                cfg.paths[key] = norm


def evaluate(cfg: DictConfig, encoder, tokenizer, collection, run_dir: Path, rid: str):
    """Rows of the pruning grid and per-query metrics (rank 0; (``[]``, None) on other ranks), with
    the TREC run file of every grid point; vectors stored under ``run_dir/vectors``."""
    from hydra.utils import instantiate

    from splade_exp.data.identity import data_identity
    from splade_exp.runfiles import trec_path, write_trec
    from splade_exp.stages.evaluate import evaluate_encoder

    from splade_exp.devices import job_device

    device = job_device(cfg.trainer.accelerator)
    encoder.to(device)
    e = cfg.eval
    results_dir = Path(cfg.paths.results_dir) / cfg.sweep
    result = evaluate_encoder(
        encoder, tokenizer, collection, cfg.data.eval_split, cfg.prune.grid, cfg.data.query_max_length,
        cfg.data.doc_max_length, cfg.trainer.eval_batch_size, device, store_dir=run_dir / "vectors",
        data_key={"data": data_identity(cfg.data, cfg.paths.artifacts_dir), "collection": collection.key()},
        pooling=cfg.head.pooling, engine=instantiate(e.engine), threads=e.threads or os.cpu_count() or 1,
        shard_size=e.shard_size, k=e.k, progress=cfg.trainer.enable_progress_bar,
        trec=lambda qk, dk, run: write_trec(trec_path(results_dir, rid, qk, dk), run, rid))
    return result.rows, (result.perquery if result.rows else None)


def run(cfg: DictConfig) -> pd.DataFrame:
    """Run one experiment; returns (and writes) its result rows. Finished runs are skipped (module doc)."""
    prepare_process(cfg)
    normalise_paths(cfg)
    # before any work, even reading the inputs for the run id: a bad value fails now, and nothing
    # (not even the cache of input fingerprints) is written for a config that cannot run
    check_config(cfg)
    config, inputs = training_config(cfg), run_inputs(cfg)
    rid, eid = identity_hash(config, inputs), eval_id(cfg)
    out = results_path(cfg, rid)
    done = finished_results(out, eid, cfg.force)
    if done is not None:
        log.info("run %s already finished: %s", rid, out)
        return done
    if out.exists() and not cfg.force:
        log.info("run %s: trained, but not evaluated with these settings (eval id %s, the results hold %s): "
                 "evaluating it again", rid, eid, _eval_ids(out))
    run_dir = Path(cfg.paths.runs_dir) / rid
    lock = RunLock(run_dir, cfg.get("lock", "wait"), requested_processes(cfg.trainer),
                   finished=lambda: not cfg.force and finished_results(out, eid) is not None,
                   prepare=lambda: _prepare_run_dir(cfg, rid, eid, config, inputs, run_dir, out))
    with lock:
        if not lock.proceed:  # finished meanwhile by the process we waited for, or running elsewhere (skip)
            done = finished_results(out, eid)
            if done is not None:
                log.info("run %s was finished by another process: %s", rid, out)
            return done if done is not None else pd.DataFrame()
        logger = tracking.make_logger(cfg, rid, run_dir)
        failed = True
        try:
            frame = _run(cfg, rid, eid, out, run_dir, logger)
            failed = False
            _leave_process_group()
            return frame
        finally:  # one W&B run per job, also when the job fails
            tracking.finish(failed)


def _eval_ids(out: Path) -> str:
    frame = read_results(out)
    return ", ".join(sorted(map(str, frame["eval_id"].unique()))) if "eval_id" in frame else "none (an older file)"


def _prepare_run_dir(cfg: DictConfig, rid: str, eid: str, config: dict, inputs: dict, run_dir: Path,
                     out: Path) -> bool:
    """Under the run lock, before the other ranks of the job go on: temporaries of a killed writer
    removed, ``force`` applied, the inputs recorded (and compared with the last run of this config).
    Returns False when another process finished the run while this one waited."""
    if not cfg.force and finished_results(out, eid) is not None:
        return False
    orphans = remove_orphans(run_dir) + remove_orphans(out.parent, f".{out.name}.*.tmp", recursive=False)
    if orphans:
        log.warning("run %s: removed %d temporary files of an interrupted write: %s", rid, len(orphans),
                    ", ".join(str(p) for p in orphans[:5]))
    if cfg.force and (run_dir / "checkpoints").exists():
        log.warning("run %s: force=true, training from scratch (removing %s)", rid, run_dir / "checkpoints")
        shutil.rmtree(run_dir / "checkpoints")
    _note_inputs(cfg, rid, config, inputs, run_dir)
    return True


def _note_inputs(cfg: DictConfig, rid: str, config: dict, inputs: dict, run_dir: Path) -> None:
    """``runs/<run_id>/inputs.json``, and a warning when the last run of the same training config on the
    same input paths read other contents (``runs/.by-config/<hash>.json`` remembers it): why a new run
    starts. Keyed by the paths too, so a sweep over datasets does not report one as a change of another."""
    from splade_exp.fingerprint import describe_changes

    paths = {role: fp["path"] for role, fp in inputs.items()}
    index = Path(cfg.paths.runs_dir) / ".by-config" / f"{config_hash({'config': config_id(config), 'paths': paths})}.json"
    try:
        previous = json.loads(index.read_text())
    except (OSError, ValueError):
        previous = None
    if previous and previous.get("run_id") != rid:
        changes = describe_changes(previous.get("inputs", {}), inputs)
        log.warning("run %s is a new run: the same config ran as %s with other input files, so its results do "
                    "not apply:\n  %s", rid, previous["run_id"], "\n  ".join(changes or ["(inputs differ)"]))
    write_json(run_dir / "inputs.json", inputs)
    write_json(index, {"run_id": rid, "inputs": inputs})


def _leave_process_group() -> None:
    """All ranks leave the job's process group together once rank 0 has written the results:
    a rank exiting with the group alive can abort in gloo's/NCCL's teardown (SIGABRT)."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def _run(cfg: DictConfig, rid: str, eid: str, out: Path, run_dir: Path, logger) -> pd.DataFrame:
    L.seed_everything(cfg.seed, workers=True)
    t0 = time.time()
    write_text(run_dir / "config.yaml", OmegaConf.to_yaml(cfg, resolve=True))
    tracking.log_config(logger, cfg, rid)
    artifacts.built.clear()
    log.info("run %s in %s", rid, run_dir)
    if cfg.stage == "pretrain":
        return _run_pretrain(cfg, rid, logger)

    collection = load_collection(cfg)
    encoder, tokenizer, info = build_encoder(cfg, collection)
    # Artifact builds (backbone warm-up, EMLM) leave their trainers, modules and AdamW state in
    # reference cycles; freed now rather than whenever Python's collector runs (at BERT-base under
    # a 100K head the EMLM optimizer state alone is 1.5 GB, beside fine-tuning's own).
    gc.collect()
    status, diverged_step, step = "completed", None, 0
    if cfg.stage == "train":
        final = finished_training(cfg, run_dir, encoder.vocab_size)
        if final is not None:  # only the evaluation changed: the final weights, no training
            ckpt, detector = final
            info.update(restore_final(encoder, ckpt))
            step = int(ckpt["global_step"])
            log.info("run %s: training finished at step %d; evaluating its final weights (eval id %s)", rid, step, eid)
        else:
            module, trainer, detector = train_splade(cfg, encoder, tokenizer, collection, run_dir, logger)
            info.update(module.diagnostics)
            info["resumed_from_step"] = module.resumed_from_step  # None: trained from the start
            step = trainer.global_step
        if detector.diverged_step is not None:
            status, diverged_step = "diverged", detector.diverged_step
            info["diverged_reason"] = detector.reason
        else:  # the model leaves the framework: runs/<run_id>/model/ (rank 0 writes it)
            from splade_exp.export.model_dir import run_metadata, write_model_dir
            from splade_exp.stages.evaluate import distributed_world

            if distributed_world()[0] == 0:
                write_model_dir(run_dir / "model", encoder, tokenizer, run_metadata(cfg, rid, step, info, out),
                                info.get("vocab.path"))
    elif cfg.stage != "evaluate":
        raise ValueError(f"stage must be 'train', 'evaluate' or 'pretrain', got {cfg.stage!r}")

    from splade_exp.stages.evaluate import distributed_world, parse_grid

    # Rank 0 computes the metrics and writes the results. Under a process group (DDP in srun tasks)
    # every rank encodes shards of the collection to disk for it; without one, the other ranks stop here.
    rows, perquery = [], None
    rank, world = distributed_world()
    if rank == 0:
        ensure_bm25(cfg, collection)
    if status == "diverged":  # no meaningful vectors: one row per grid point, metrics missing
        rows = [{"qk": qk, "dk": dk} for qk, dk in parse_grid(cfg.prune.grid)] if rank == 0 else []
    elif rank == 0 or world > 1:
        rows, perquery = evaluate(cfg, encoder, tokenizer, collection, run_dir, rid)
    common = {
        "run_id": rid, "eval_id": eid, "sweep": cfg.sweep, "system": "splade", "model": cfg.model or "",
        "status": status, "diverged_step": diverged_step, "wall_time_s": time.time() - t0,
        **choice_columns(cfg),
        "head_k": float(cfg.head.k), "seed": int(cfg.seed), "stage": cfg.stage,
        "artifacts_built": ",".join(artifacts.built_by_job()),  # collective under DDP
        **{k: v for k, v in info.items()},
        **flatten(drop_keys(cfg, ("paths", "hydra", "launcher", "logger"))),
    }
    frame = make_frame(rows, common)
    if rank == 0:
        if perquery is not None:  # before the results file, which marks the run finished
            from splade_exp.runfiles import perquery_path, write_perquery

            write_perquery(perquery_path(out.parent, rid), [perquery.assign(
                run_id=rid, system="splade", model=cfg.model or "", seed=int(cfg.seed))])
        write_results(out, frame)
        log.info("wrote %d rows to %s", len(frame), out)
        tracking.log_results(logger, frame, step)
    return frame


def _run_pretrain(cfg: DictConfig, rid: str, logger) -> pd.DataFrame:
    """``stage=pretrain``: the EMLM pretraining of this run's model, published as its artifact (the one
    a fine-tuning job of the same model looks up). Returns a one-row summary; writes no results row
    (its curves go to ``<results_dir>/<sweep>/<artifact>.curves.parquet``, its statistics into the
    artifact and, from there, into the fine-tuning rows)."""
    from splade_exp.stages.evaluate import distributed_world
    from splade_exp.stages.pretrain import emlm_info, pretrain_emlm, write_curves

    p = cfg.pretrain
    if not p.enabled or p.get("checkpoint"):
        log.info("stage=pretrain: nothing to pretrain for pretrain=%s%s", p.name,
                 f" (pretrain.checkpoint={p.checkpoint})" if p.get("checkpoint") else "")
        return pd.DataFrame()
    collection = load_collection(cfg)
    encoder, tokenizer, words, info = prepare_model(cfg, collection)
    info.pop("head.carried_scaled")  # fine-tuning's concern (head.k), not the pretraining's
    directory = pretrain_emlm(emlm_spec(cfg), encoder, tokenizer, collection, words, logger=logger)
    built = ",".join(artifacts.built_by_job())  # collective under DDP
    if distributed_world()[0] == 0:
        write_curves(directory, p, curves_path(cfg, directory))
    return pd.DataFrame([{"run_id": rid, "sweep": cfg.sweep, "stage": "pretrain", "model": cfg.model or "",
                          "emlm.artifact": directory.name, "artifacts_built": built, **info, **emlm_info(directory)}])
