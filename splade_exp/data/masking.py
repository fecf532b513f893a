"""Whole-word masking for (expanded) masked-LM pretraining.

Words are the tokenizer's own normalised, pre-tokenised words (:mod:`splade_exp.data.words`). A
chosen word has all of its WordPieces replaced (80% ``[MASK]``, 10% a random token, 10% unchanged,
decided per word). Labels:
- WordPiece head (``word_vocab=None``): every piece of a chosen word is labelled with its own id
  (standard MLM with whole-word masking).
- Unigram head (EMLM): a chosen word that is in the unigram vocabulary ``U`` gets one label, its
  id in ``U``, at its first piece; chosen words outside ``U`` are masked but unlabelled.

A tokenised text is a row of token ids and a row of *word codes* (:func:`word_codes`), one per
token: ``NO_WORD`` (special tokens), ``CONTINUATION`` (a later piece of the word before it),
``UNLABELLED`` (first piece of a word with no unigram id) or the word's id in ``U`` (>= 0). The
codes are all masking needs, so pretraining can store tokenised texts once
(:mod:`splade_exp.data.pretraining`) and mask them at any batch. :func:`mask_row` is the one
masking procedure; its random draws come from the generator it is given. The text collator
(:class:`WholeWordMaskCollator`, the backbone's MLM warm-up) passes one generator that advances
from batch to batch; EMLM pretraining passes a generator derived from the row's position in the
run (:func:`splade_exp.stages.seeding.torch_generator`), so a resumed run masks what an
uninterrupted one masks.
"""
from __future__ import annotations

import numpy as np
import torch
from transformers import PreTrainedTokenizerFast

from splade_exp.data.words import backend_words

IGNORE = -100
NO_WORD, CONTINUATION, UNLABELLED = -1, -2, -3


def split_words(tokenizer: PreTrainedTokenizerFast, text: str) -> list[str]:
    """The tokenizer's normalised words of ``text`` (the unit of unigram vocabularies)."""
    return backend_words(tokenizer.backend_tokenizer, text)


def check_rates(mask_rate: float, mask_token_prob: float, random_token_prob: float) -> None:
    if not 0 < mask_rate <= 1:
        raise ValueError(f"pretrain.mask_rate must be in (0, 1], got {mask_rate}")
    if mask_token_prob + random_token_prob > 1:
        raise ValueError("pretrain.mask_token_prob + pretrain.random_token_prob must be <= 1")


def tokenize_words(tokenizer: PreTrainedTokenizerFast, texts: list[str], max_length: int, padding: bool = False):
    """(words of each text, the tokenizer's encoding of those words) -- words, not raw text, go in,
    so that word ``w`` of the encoding is ``words[b][w]``."""
    words = [split_words(tokenizer, t) or [tokenizer.unk_token] for t in texts]
    enc = tokenizer(words, is_split_into_words=True, truncation=True, max_length=max_length, padding=padding,
                    return_tensors="pt" if padding else None)
    return words, enc


def word_codes(word_ids: list[int | None], words: list[str], word_vocab: dict[str, int] | None) -> np.ndarray:
    """The word code of every token of one encoded text (module doc)."""
    codes = np.full(len(word_ids), NO_WORD, dtype=np.int32)
    previous = None
    for pos, w in enumerate(word_ids):
        if w is None:
            previous = None
            continue
        if w == previous:
            codes[pos] = CONTINUATION
        else:
            uid = None if word_vocab is None else word_vocab.get(words[w])
            codes[pos] = UNLABELLED if uid is None else uid
        previous = w
    return codes


def mask_row(input_ids: torch.Tensor, labels: torch.Tensor, codes: np.ndarray, g: torch.Generator,
             mask_rate: float, mask_token_prob: float, random_token_prob: float, mask_id: int, vocab_size: int,
             wordpiece_labels: bool) -> None:
    """Mask one row in place (``input_ids``, ``labels``: 1-D, the row's tokens first) from ``codes``.

    Draws, in this order: one uniform per word (chosen if < ``mask_rate``); if none is chosen, one
    word index; then for each chosen word one uniform (mask / random / keep) and, for a random
    replacement, one token id per piece.
    """
    n = len(codes)
    starts = np.flatnonzero((codes >= 0) | (codes == UNLABELLED)).tolist()
    if not starts:
        return
    spans = []
    for s in starts:
        e = s + 1
        while e < n and codes[e] == CONTINUATION:
            e += 1
        spans.append((s, e))
    # float64 comparison: the float32 draw against the configured rate, not its float32 rounding
    chosen = np.flatnonzero(torch.rand(len(spans), generator=g).double().numpy() < mask_rate).tolist()
    if not chosen:  # at least one masked word per sequence
        chosen = [int(torch.randint(len(spans), (), generator=g))]
    for k in chosen:
        s, e = spans[k]
        if wordpiece_labels:
            labels[s:e] = input_ids[s:e]
        elif codes[s] >= 0:
            labels[s] = int(codes[s])
        r = torch.rand((), generator=g).item()
        if r < mask_token_prob:
            input_ids[s:e] = mask_id
        elif r < mask_token_prob + random_token_prob:
            input_ids[s:e] = torch.randint(vocab_size, (e - s,), generator=g)


class WholeWordMaskCollator:
    """Texts -> masked batch, drawing from one generator seeded once (an artifact build that is never
    resumed: the backbone's MLM warm-up)."""

    def __init__(
        self,
        tokenizer: PreTrainedTokenizerFast,
        max_length: int,
        word_vocab: dict[str, int] | None = None,
        mask_rate: float = 0.15,
        mask_token_prob: float = 0.8,
        random_token_prob: float = 0.1,
        seed: int = 0,
    ) -> None:
        check_rates(mask_rate, mask_token_prob, random_token_prob)
        self.tokenizer = tokenizer
        self.max_length = max_length
        self.word_vocab = word_vocab
        self.rates = (mask_rate, mask_token_prob, random_token_prob)
        self.generator = torch.Generator().manual_seed(seed)

    def __call__(self, texts: list[str]) -> dict[str, torch.Tensor]:
        words, enc = tokenize_words(self.tokenizer, texts, self.max_length, padding=True)
        input_ids = enc["input_ids"].clone()
        labels = torch.full_like(input_ids, IGNORE)
        for b in range(len(texts)):
            codes = word_codes(enc.word_ids(b), words[b], self.word_vocab)
            mask_row(input_ids[b], labels[b], codes, self.generator, *self.rates, self.tokenizer.mask_token_id,
                     len(self.tokenizer), self.word_vocab is None)
        return {"input_ids": input_ids, "attention_mask": enc["attention_mask"], "labels": labels}
