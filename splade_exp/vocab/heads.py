"""The output head of a run: which vocabulary it scores and how its rows are initialised.

:func:`prepare_head` is what the orchestrator calls: it returns the encoder with its initial
decoder, the output vocabulary (None for the WordPiece head) and a dict of diagnostics (results
columns). The pieces live in :mod:`.unigram` (the vocabulary artifact) and :mod:`.init` (decoder
initialisation); EMLM pretraining of the head, when configured, is a training stage of its own
(:mod:`splade_exp.stages.pretrain`). The input side (tokenizer, input embeddings) never changes.
"""
from __future__ import annotations

from splade_exp.models.encoder import SpladeEncoder
from splade_exp.vocab.init import initial_decoder
from splade_exp.vocab.unigram import unigram_vocabulary

VOCABS = ("wordpiece", "unigram")


def prepare_head(vocab, init, seed: int, encoder: SpladeEncoder, tokenizer, collection, backbone_id: dict,
                 data_id: dict, artifacts_dir) -> tuple[SpladeEncoder, list[str] | None, dict]:
    """(encoder with its initial decoder, output words or None, info) from the ``vocab`` and ``init`` configs."""
    kind = vocab.kind
    if kind not in VOCABS:
        raise ValueError(f"vocab.kind must be one of {VOCABS}, got {kind!r}")
    words, info = None, {}
    if kind == "unigram":
        words, info = unigram_vocabulary(vocab, backbone_id, data_id, tokenizer, collection, artifacts_dir)
    encoder.decoder = initial_decoder(init, kind, encoder.decoder, tokenizer, words, int(seed))
    return encoder, words, info
