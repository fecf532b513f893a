"""The output head of a run: which vocabulary it scores and how its rows are initialised.

``prepare_head(cfg, encoder, tokenizer, collection, artifacts_dir)`` is the single entry point the
orchestrator calls; it returns the encoder with its final decoder and a dict of diagnostics.
"""
from __future__ import annotations

from splade_exp.models.encoder import SpladeEncoder


def prepare_head(cfg, encoder: SpladeEncoder, tokenizer, collection, artifacts_dir) -> tuple[SpladeEncoder, dict]:
    if cfg.vocab.kind != "wordpiece" or cfg.init.kind != "pretrained":
        raise NotImplementedError(f"vocab={cfg.vocab.name} init={cfg.init.name} is not available yet")
    return encoder, {"vocab_size": encoder.vocab_size}
