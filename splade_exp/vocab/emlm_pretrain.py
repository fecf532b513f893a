"""EMLM pretraining of the output head (METHOD §5), built once per configuration and reused.

The EMLM checkpoint is an artifact ``emlm/emlm-<hash>/`` keyed by the backbone, the data source,
the ``vocab``, ``init`` and ``pretrain`` configs (without ``pretrain.checkpoint``) and the seed, so
every fine-tuning job of a sweep that needs the same pretraining reuses it. It holds:

- ``model.safetensors``: the whole encoder state (trunk + output decoder), ``safetensors`` format;
- ``vocab.tsv``: the output vocabulary in id order (a copy of the unigram vocabulary);
- ``curves.csv``: the learning curves (step, split, loss, accuracy);
- ``stats.json``: the EMLM statistics (:mod:`splade_exp.stages.emlm_stats`), the final validation
  loss/accuracy and what the data actually was (distinct texts, effective repetition).

Data. The pretraining texts are the lines of ``pretrain.corpus`` (``general``, ``in_domain`` or a
text file). A fixed sample of ``pretrain.stats_docs`` collection documents is held out for the
statistics (removed from the texts when the corpus is ``in_domain``). The texts are shuffled
(``random.Random(seed)``); the first ``pretrain.val_size`` are the validation split, and the
training set is the next ``ceil(steps * batch_size / repetition)`` texts, so with ``repetition``
R each text is seen about R times within the same step budget (R = 1: unique data). When the
corpus is too small for that, all remaining texts are used and the effective repetition
(``emlm.repetition_effective``, logged with a warning) is larger than asked. Pretraining runs in
one process on one device, also inside a DDP job (:mod:`splade_exp.artifacts`), so
``pretrain.batch_size`` is the whole batch -- never a per-device batch times the job's ranks -- and
the artifact does not depend on the job that built it.

A run may instead name an existing checkpoint (``pretrain.checkpoint``: an EMLM artifact directory
or its ``model.safetensors``); its vocabulary must equal the configured one.
"""
from __future__ import annotations

import json
import logging
import math
import random
import shutil
import time
from pathlib import Path

import pandas as pd
import torch
from omegaconf import OmegaConf

from splade_exp import artifacts
from splade_exp.data.masking import WholeWordMaskCollator
from splade_exp.io import atomic_path
from splade_exp.models.encoder import SpladeEncoder
from splade_exp.results import flatten
from splade_exp.vocab.unigram import backbone_key, corpus_key, corpus_texts, data_key, read_vocab

log = logging.getLogger(__name__)

CHECKPOINT = "model.safetensors"


def emlm_key(cfg) -> dict:
    pre = OmegaConf.to_container(cfg.pretrain, resolve=True)
    pre.pop("checkpoint", None)
    pre.update(corpus_key(pre["corpus"]))
    return {**backbone_key(cfg), "data": data_key(cfg), "vocab": OmegaConf.to_container(cfg.vocab, resolve=True),
            "init": OmegaConf.to_container(cfg.init, resolve=True), "pretrain": pre, "seed": int(cfg.seed)}


def stats_doc_ids(collection, n: int, seed: int) -> list[str]:
    """The held-out in-domain documents of the statistics: a fixed sample, in corpus order (empty
    documents have no word to mask and are not sampled)."""
    ids = [i for i, t in collection.corpus.items() if t]
    chosen = set(random.Random(seed).sample(ids, min(n, len(ids))))
    return [i for i in ids if i in chosen]


def split_texts(p, collection, held_out: list[str], seed: int) -> tuple[list[str], list[str], dict]:
    """(training texts, validation texts, data info) of the pretraining corpus."""
    if p.corpus == "in_domain":
        skip = set(held_out)
        texts = [t for i, t in collection.corpus.items() if i not in skip and t]
    else:
        texts = corpus_texts(p.corpus, collection)
    random.Random(seed).shuffle(texts)
    val, pool = texts[: p.val_size], texts[p.val_size:]
    wanted = math.ceil(p.steps * p.batch_size / p.repetition)
    train = pool[:wanted]
    if len(train) < p.batch_size:
        raise ValueError(f"pretrain.corpus={p.corpus}: {len(train)} training texts after holding out "
                         f"pretrain.val_size={p.val_size}; fewer than one batch (pretrain.batch_size={p.batch_size})")
    effective = p.steps * p.batch_size / len(train)
    if len(train) < wanted:
        log.warning("pretrain.corpus=%s has %d texts for training, fewer than the %d distinct texts that "
                    "repetition=%s asks for: each is seen %.2f times", p.corpus, len(train), wanted, p.repetition, effective)
    return train, val, {"distinct_texts": len(train), "repetition_effective": effective, "val_texts": len(val)}


def _device(cfg) -> str:
    acc = cfg.trainer.accelerator
    return "cuda" if acc in ("gpu", "cuda", "auto") and torch.cuda.is_available() else "cpu"


def build_emlm(out: Path, cfg, encoder: SpladeEncoder, tokenizer, collection, words: list[str] | None) -> None:
    """Pretrain ``encoder`` in place and write the artifact files into ``out``."""
    from safetensors.torch import save_model

    from splade_exp.stages.emlm import EmlmModule
    from splade_exp.stages.emlm_stats import emlm_statistics
    from splade_exp.stages.fit import loader, make_trainer

    p, seed = cfg.pretrain, int(cfg.seed)
    torch.manual_seed(seed)
    held_out = stats_doc_ids(collection, p.stats_docs, seed)
    train, val, data_info = split_texts(p, collection, held_out, seed)
    word_vocab = None if words is None else {w: i for i, w in enumerate(words)}
    masking = dict(mask_rate=p.mask_rate, mask_token_prob=p.mask_token_prob, random_token_prob=p.random_token_prob)
    collate = WholeWordMaskCollator(tokenizer, p.max_length, word_vocab, seed=seed, **masking)
    val_collate = WholeWordMaskCollator(tokenizer, p.max_length, word_vocab, seed=seed + 1, **masking)
    val_batches = [val_collate(val[i:i + p.batch_size]) for i in range(0, len(val), p.batch_size)]
    module = EmlmModule(encoder, lr=p.lr, weight_decay=p.weight_decay, warmup_steps=p.warmup_steps,
                        max_steps=p.steps, val_batches=val_batches, val_every_n_steps=p.val_every_n_steps,
                        log_every_n_steps=p.log_every_n_steps)
    trainer = make_trainer(cfg.trainer, out, p.steps, logger=False, single_process=True)  # see artifacts.py
    t0 = time.time()
    trainer.fit(module, loader(train, p.batch_size, collate, True, 0, seed))
    train_time = time.time() - t0
    curves = pd.DataFrame(module.curves, columns=["step", "split", "loss", "accuracy"])
    last_val = curves[curves.split == "val"].iloc[-1] if (curves.split == "val").any() else None

    device = _device(cfg)
    encoder.to(device)
    docs = [collection.corpus[i] for i in held_out]
    stats = emlm_statistics(encoder, tokenizer, docs, p.max_length, p.stats_batch_size, device)
    encoder.to("cpu")
    stats.update({"accuracy": float(last_val.accuracy) if last_val is not None else float("nan"),
                  "val_loss": float(last_val.loss) if last_val is not None else float("nan"),
                  "train_time_s": train_time, **data_info})
    log.info("EMLM: %d steps in %.0fs, val accuracy %.4f, %d distinct texts", p.steps, train_time,
             stats["accuracy"], data_info["distinct_texts"])

    for leftover in ("checkpoints", "lightning_logs"):
        shutil.rmtree(out / leftover, ignore_errors=True)
    save_model(encoder, str(out / CHECKPOINT))
    curves.to_csv(out / "curves.csv", index=False)
    (out / "stats.json").write_text(json.dumps(stats, indent=2, sort_keys=True) + "\n")
    (out / "key.json").write_text(json.dumps(emlm_key(cfg), indent=2, sort_keys=True, default=str) + "\n")
    with open(out / "vocab.tsv", "w", encoding="utf-8") as fh:
        for w in words if words is not None else tokenizer.convert_ids_to_tokens(list(range(encoder.vocab_size))):
            fh.write(f"{w}\n")


def load_checkpoint(encoder: SpladeEncoder, path: Path, words: list[str] | None) -> Path:
    """Load an EMLM checkpoint (artifact directory or its safetensors file) into ``encoder``."""
    from splade_exp.checkpoint import load_safetensors

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


def write_curves(cfg, directory: Path) -> Path | None:
    """``<results_dir>/<sweep>/<artifact>.curves.parquet`` from the artifact's ``curves.csv``."""
    src = directory / "curves.csv"
    if not src.exists():
        return None
    out = Path(cfg.paths.results_dir) / cfg.sweep / f"{directory.name}.curves.parquet"
    if out.exists():
        return out
    curves = pd.read_csv(src)
    cols = flatten({"pretrain": OmegaConf.to_container(cfg.pretrain, resolve=True)})
    frame = pd.DataFrame({"artifact_id": directory.name, "pretrain": str(cfg.pretrain.name),
                          **{k: [v] * len(curves) for k, v in cols.items()}})
    frame = pd.concat([frame, curves.reset_index(drop=True)], axis=1)
    for col in frame.columns:  # one type per column for Parquet
        if frame[col].dtype == object and col not in ("artifact_id", "pretrain", "split"):
            frame[col] = frame[col].map(lambda v: None if v is None else str(v))
    with atomic_path(out) as tmp:
        frame.to_parquet(tmp, index=False)
    return out


def pretrained_head(cfg, encoder: SpladeEncoder, tokenizer, collection, words: list[str] | None,
                    artifacts_dir) -> tuple[SpladeEncoder, dict]:
    """``encoder`` with the EMLM-pretrained trunk and decoder; info has the ``emlm.*`` statistics."""
    if cfg.pretrain.get("checkpoint"):
        directory = load_checkpoint(encoder, cfg.pretrain.checkpoint, words)
        info = {"emlm.checkpoint": str(directory)}
    else:
        directory = artifacts.artifact(artifacts_dir, "emlm", "emlm", emlm_key(cfg),
                                       lambda out: build_emlm(out, cfg, encoder, tokenizer, collection, words))
        load_checkpoint(encoder, directory, words)
        info = {"emlm.artifact": directory.name}
    stats_file = directory / "stats.json"
    if stats_file.exists():
        info.update({f"emlm.{k}": v for k, v in json.loads(stats_file.read_text()).items()})
    write_curves(cfg, directory)
    return encoder, info
