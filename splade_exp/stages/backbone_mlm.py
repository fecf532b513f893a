"""The offline default backbone: a WordPiece tokenizer trained on the collection (+ general
corpus) and a small BERT built from config (another architecture with ``backbone.model_type``,
e.g. ``modernbert``), warmed up by whole-word-masked MLM on the same text, saved with
``save_pretrained`` so it loads exactly like any local or hub checkpoint. The warm-up
runs in one process on one device, also inside a DDP job (:mod:`splade_exp.artifacts`):
``backbone.mlm.batch_size`` is the whole batch."""
from __future__ import annotations

import logging
import random
from pathlib import Path

import torch

from splade_exp.data.masking import WholeWordMaskCollator
from splade_exp.models.backbone import build_masked_lm, train_wordpiece
from splade_exp.models.encoder import SpladeEncoder
from splade_exp.stages.emlm import EmlmModule
from splade_exp.stages.fit import loader, make_trainer

log = logging.getLogger(__name__)


def texts_for_backbone(collection) -> list[str]:
    """Documents and general corpus; empty documents (kept in the collection) teach nothing."""
    texts = [t for t in collection.corpus.values() if t]
    if collection.general_path is not None:
        texts += collection.general_texts()
    return texts


def build_tiny_backbone(out: Path, bcfg, tcfg, collection, seed: int) -> None:
    torch.manual_seed(seed)
    texts = texts_for_backbone(collection)
    tokenizer = train_wordpiece(texts, bcfg.tokenizer.vocab_size, bcfg.tokenizer.lowercase)
    model = build_masked_lm(tokenizer, bcfg.get("model_type", "bert"), **bcfg.config)
    mlm = bcfg.mlm
    if mlm.steps > 0:
        encoder = SpladeEncoder.from_masked_lm(model)
        module = EmlmModule(encoder, lr=mlm.lr, weight_decay=0.01, warmup_steps=mlm.steps // 10, max_steps=mlm.steps)
        rng = random.Random(seed)
        rng.shuffle(texts)
        collate = WholeWordMaskCollator(tokenizer, mlm.max_length, None, mask_rate=0.15, seed=seed)
        trainer = make_trainer(tcfg, out, mlm.steps, logger=False, single_process=True)  # see artifacts.py
        trainer.fit(module, loader(texts, mlm.batch_size, collate, True, 0, seed))
        log.info("backbone MLM warm-up: %d steps, final loss %.3f", mlm.steps,
                 float(trainer.callback_metrics.get("train/loss", float("nan"))))
        model = encoder.export_masked_lm()
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    for leftover in ("checkpoints", "lightning_logs"):
        p = out / leftover
        if p.exists():
            import shutil

            shutil.rmtree(p)
