"""The output head of a run: which vocabulary it scores and how its rows are initialised.

``prepare_head(cfg, encoder, tokenizer, collection, artifacts_dir)`` is the single entry point the
orchestrator calls; it returns the encoder with its final decoder and a dict of diagnostics
(results columns). The pieces live in :mod:`.unigram` (the vocabulary artifact), :mod:`.init`
(decoder initialisation) and :mod:`.emlm_pretrain` (the EMLM checkpoint artifact and statistics).
The input side (tokenizer, input embeddings) never changes.
"""
from __future__ import annotations

from splade_exp.models.encoder import SpladeEncoder
from splade_exp.vocab.emlm_pretrain import pretrained_head
from splade_exp.vocab.init import initial_decoder
from splade_exp.vocab.unigram import unigram_vocabulary

VOCABS = ("wordpiece", "unigram")


def prepare_head(cfg, encoder: SpladeEncoder, tokenizer, collection, artifacts_dir) -> tuple[SpladeEncoder, dict]:
    kind = cfg.vocab.kind
    if kind not in VOCABS:
        raise ValueError(f"vocab.kind must be one of {VOCABS}, got {kind!r}")
    words, info = None, {}
    if kind == "unigram":
        words, info = unigram_vocabulary(cfg, tokenizer, collection, artifacts_dir)
    encoder.decoder = initial_decoder(cfg.init, kind, encoder.decoder, tokenizer, words, int(cfg.seed))
    if cfg.pretrain.enabled:
        encoder, emlm_info = pretrained_head(cfg, encoder, tokenizer, collection, words, artifacts_dir)
        info.update(emlm_info)
    info["vocab_size"] = encoder.vocab_size
    return encoder, info
