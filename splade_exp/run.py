"""``run(cfg)``: one experiment from a composed config, all orchestration in one place.

Stages: collection -> BM25 baseline -> backbone -> output head (vocabulary, init, optional EMLM)
-> SPLADE fine-tuning (resumable) -> evaluation over the pruning grid -> one Parquet file.
Tests call :func:`run` directly with a composed config.
"""
from __future__ import annotations

import gc
import logging
import time
from pathlib import Path

import lightning as L
import pandas as pd
import torch
from omegaconf import DictConfig, OmegaConf

from splade_exp import artifacts, tracking
from splade_exp.checks import check_config, check_required
from splade_exp.hashing import config_hash, drop_keys
from splade_exp.io import write_text
from splade_exp.launch import PreemptionCheckpoint, prepare_process
from splade_exp.results import flatten, make_frame, read_results, write_results

log = logging.getLogger(__name__)

# Keys that do not change what a run computes: where things go, how it is launched and logged.
RUN_ID_EXCLUDE = ("paths", "logger", "launcher", "hydra", "sweep", "model", "force",
                  "trainer.devices", "trainer.num_nodes", "trainer.accelerator", "trainer.strategy",
                  "trainer.enable_progress_bar", "trainer.log_every_n_steps", "trainer.num_workers",
                  "trainer.checkpoint_every_n_steps", "trainer.eval_batch_size")


def run_id(cfg: DictConfig) -> str:
    return config_hash(drop_keys(cfg, RUN_ID_EXCLUDE))


def results_path(cfg: DictConfig, rid: str) -> Path:
    return Path(cfg.paths.results_dir) / cfg.sweep / f"{rid}.parquet"


def _device(cfg) -> str:
    acc = cfg.trainer.accelerator
    if acc in ("gpu", "cuda") or (acc == "auto" and torch.cuda.is_available()):
        return "cuda"
    return "cpu"


def load_collection(cfg: DictConfig):
    from splade_exp.data.sources import load_collection as load

    return load(cfg.data, cfg.paths.artifacts_dir, cfg.stage)


def ensure_bm25(cfg: DictConfig, collection) -> Path:
    """BM25 rows of this collection and split, written once per sweep."""
    from splade_exp.baselines.bm25 import bm25_row

    key = {"data": OmegaConf.to_container(cfg.data.source, resolve=True), "split": cfg.data.eval_split}
    path = Path(cfg.paths.results_dir) / cfg.sweep / f"bm25-{config_hash(key)}.parquet"
    if not path.exists():
        row = bm25_row(collection, cfg.data.eval_split)
        frame = make_frame([row], {"run_id": f"bm25-{config_hash(key)}", "sweep": cfg.sweep, "system": "bm25",
                                   "model": "BM25", "status": "completed", "diverged_step": None,
                                   "data": cfg.data.name})
        write_results(path, frame)
    return path


def load_backbone(cfg: DictConfig, collection):
    """(masked LM, tokenizer): built offline from config, or loaded from ``backbone.name_or_path``."""
    from splade_exp.models.backbone import BUILD_VERSION, load_masked_lm

    b = cfg.backbone
    if b.name_or_path:
        return load_masked_lm(b.name_or_path)
    from splade_exp.stages.backbone_mlm import build_tiny_backbone

    # keyed on what the build uses (not the choice's name): tiny and tiny_inflated share it
    key = {"tokenizer": b.tokenizer, "config": b.config, "mlm": b.mlm, "data": cfg.data.source, "seed": cfg.seed,
           "build": BUILD_VERSION}
    path = artifacts.artifact(cfg.paths.artifacts_dir, "backbone", "built", key,
                              lambda out: build_tiny_backbone(out, b, cfg.trainer, collection, cfg.seed))
    return load_masked_lm(str(path))


def build_encoder(cfg: DictConfig, collection):
    from splade_exp.models.encoder import SpladeEncoder
    from splade_exp.models.head_scale import inflate_head, scale_head
    from splade_exp.vocab.heads import prepare_head

    mlm, tokenizer = load_backbone(cfg, collection)
    h = cfg.head
    encoder = SpladeEncoder.from_masked_lm(mlm, pooling=h.pooling, pooling_impl=h.pooling_impl, chunk_size=h.chunk_size)
    if cfg.backbone.get("inflate_head_norm"):
        inflate_head(encoder, cfg.backbone.inflate_head_norm)
    encoder, info = prepare_head(cfg, encoder, tokenizer, collection, cfg.paths.artifacts_dir)
    if cfg.stage == "train":
        info.update(scale_head(encoder, h.k, h.scale_bias))
    return encoder, tokenizer, info


def train_splade(cfg: DictConfig, encoder, tokenizer, collection, run_dir: Path, logger=False):
    from splade_exp.checkpoint import check_resume_checkpoint
    from splade_exp.data.training import PairCollator, PairDataset, training_tokens
    from splade_exp.models.head_scale import init_diagnostics
    from splade_exp.stages.collapse import CollapseDetector
    from splade_exp.stages.fit import GlobalBatchData, make_trainer
    from splade_exp.stages.splade import SpladeModule

    t, loss, d = cfg.trainer, cfg.loss, cfg.data
    module = SpladeModule(
        encoder, regularizer=loss.regularizer, lambda_q=loss.lambda_q, lambda_d=loss.lambda_d,
        lambda_joint=loss.lambda_joint, lambda_warmup_steps=loss.lambda_warmup_steps, joint_docs=loss.joint_docs,
        topk_q=loss.topk_q, topk_d=loss.topk_d, lr=t.lr, weight_decay=t.weight_decay,
        warmup_steps=t.warmup_steps, max_steps=t.max_steps,
    )
    tokens = training_tokens(cfg.paths.artifacts_dir, collection, tokenizer, d.query_max_length,
                             d.doc_max_length) if d.get("pretokenize") else None
    dataset = PairDataset(collection, num_negatives=d.num_negatives, seed=cfg.seed, tokens=tokens)
    collate = PairCollator(tokenizer, d.query_max_length, d.doc_max_length)
    c = t.collapse
    detector = CollapseDetector(encoder.vocab_size, patience=c.patience, check_every=c.check_every,
                                active_fraction=c.active_fraction, identical_cosine=c.identical_cosine,
                                inject_nan_at_step=c.inject_nan_at_step)
    last = run_dir / "checkpoints" / "last.ckpt"
    trainer = make_trainer(t, run_dir, t.max_steps, logger=logger, callbacks=[detector, PreemptionCheckpoint(last)],
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


def run(cfg: DictConfig) -> pd.DataFrame:
    """Run one experiment; returns (and writes) its result rows. Finished runs are skipped."""
    prepare_process(cfg)
    check_required(cfg)  # the run id resolves every value: a missing one gets its message, not a traceback
    rid = run_id(cfg)
    out = results_path(cfg, rid)
    if out.exists() and not cfg.force:
        log.info("run %s already finished: %s", rid, out)
        return read_results(out)
    check_config(cfg)  # before any work: a bad value fails now, not after training
    run_dir = Path(cfg.paths.runs_dir) / rid
    run_dir.mkdir(parents=True, exist_ok=True)
    logger = tracking.make_logger(cfg, rid, run_dir)
    failed = True
    try:
        frame = _run(cfg, rid, out, run_dir, logger)
        failed = False
        _leave_process_group()
        return frame
    finally:  # one W&B run per job, also when the job fails
        tracking.finish(failed)


def _leave_process_group() -> None:
    """All ranks leave the job's process group together once rank 0 has written the results:
    a rank exiting with the group alive can abort in gloo's/NCCL's teardown (SIGABRT)."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def _run(cfg: DictConfig, rid: str, out: Path, run_dir: Path, logger) -> pd.DataFrame:
    L.seed_everything(cfg.seed, workers=True)
    t0 = time.time()
    write_text(run_dir / "config.yaml", OmegaConf.to_yaml(cfg, resolve=True))
    tracking.log_config(logger, cfg, rid)
    artifacts.built.clear()
    log.info("run %s in %s", rid, run_dir)

    collection = load_collection(cfg)
    encoder, tokenizer, info = build_encoder(cfg, collection)
    # Artifact builds (backbone warm-up, EMLM) leave their trainers, modules and AdamW state in
    # reference cycles; freed now rather than whenever Python's collector runs (at BERT-base under
    # a 100K head the EMLM optimizer state alone is 1.5 GB, beside fine-tuning's own).
    gc.collect()
    status, diverged_step, step = "completed", None, 0
    if cfg.stage == "train":
        module, trainer, detector = train_splade(cfg, encoder, tokenizer, collection, run_dir, logger)
        info.update(module.diagnostics)
        info["resumed_from_step"] = module.resumed_from_step  # None: trained from the start
        step = trainer.global_step
        if detector.diverged_step is not None:
            status, diverged_step = "diverged", detector.diverged_step
            info["diverged_reason"] = detector.reason
    elif cfg.stage != "evaluate":
        raise ValueError(f"stage must be 'train' or 'evaluate', got {cfg.stage!r}")

    from splade_exp.stages.evaluate import distributed_world, evaluate_encoder, parse_grid

    # Rank 0 computes the metrics and writes the results. Under a process group (DDP in srun tasks)
    # every rank encodes a shard of the collection for it; without one, the other ranks stop here.
    rows = []
    rank, world = distributed_world()
    if rank == 0:
        ensure_bm25(cfg, collection)
    if status == "diverged":  # no meaningful vectors: one row per grid point, metrics missing
        rows = [{"qk": qk, "dk": dk} for qk, dk in parse_grid(cfg.prune.grid)] if rank == 0 else []
    elif rank == 0 or world > 1:
        device = _device(cfg)
        encoder.to(device)
        rows = evaluate_encoder(encoder, tokenizer, collection, cfg.data.eval_split, cfg.prune.grid,
                                cfg.data.query_max_length, cfg.data.doc_max_length,
                                cfg.trainer.eval_batch_size, device)
    common = {
        "run_id": rid, "sweep": cfg.sweep, "system": "splade", "model": cfg.model or "",
        "status": status, "diverged_step": diverged_step, "wall_time_s": time.time() - t0,
        **{g: str(cfg[g].name) for g in ("backbone", "vocab", "init", "pretrain", "loss", "head", "data")},
        "head_k": float(cfg.head.k), "seed": int(cfg.seed), "stage": cfg.stage,
        "artifacts_built": ",".join(artifacts.built_by_job()),  # collective under DDP
        **{k: v for k, v in info.items()},
        **flatten(drop_keys(cfg, ("paths", "hydra", "launcher", "logger"))),
    }
    frame = make_frame(rows, common)
    if rank == 0:
        write_results(out, frame)
        log.info("wrote %d rows to %s", len(frame), out)
        tracking.log_results(logger, frame, step)
    return frame
