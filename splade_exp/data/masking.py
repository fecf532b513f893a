"""Whole-word masking for (expanded) masked-LM pretraining.

Words are the tokenizer's own normalised, pre-tokenised words. A chosen word has all of its
WordPieces replaced (80% ``[MASK]``, 10% a random token, 10% unchanged, decided per word).
Labels:
- WordPiece head (``word_vocab=None``): every piece of a chosen word is labelled with its own id
  (standard MLM with whole-word masking).
- Unigram head (EMLM): a chosen word that is in the unigram vocabulary ``U`` gets one label, its
  id in ``U``, at its first piece; chosen words outside ``U`` are masked but unlabelled.
"""
from __future__ import annotations

import torch
from transformers import PreTrainedTokenizerFast

IGNORE = -100


def split_words(tokenizer: PreTrainedTokenizerFast, text: str) -> list[str]:
    """The tokenizer's normalised words of ``text`` (the unit of unigram vocabularies)."""
    backend = tokenizer.backend_tokenizer
    if backend.normalizer is not None:
        text = backend.normalizer.normalize_str(text)
    if backend.pre_tokenizer is None:
        return text.split()
    return [w for w, _ in backend.pre_tokenizer.pre_tokenize_str(text)]


class WholeWordMaskCollator:
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
        if not 0 < mask_rate <= 1:
            raise ValueError(f"pretrain.mask_rate must be in (0, 1], got {mask_rate}")
        if mask_token_prob + random_token_prob > 1:
            raise ValueError("pretrain.mask_token_prob + pretrain.random_token_prob must be <= 1")
        self.tokenizer = tokenizer
        self.max_length = max_length
        self.word_vocab = word_vocab
        self.mask_rate = mask_rate
        self.mask_token_prob = mask_token_prob
        self.random_token_prob = random_token_prob
        self.generator = torch.Generator().manual_seed(seed)

    def __call__(self, texts: list[str]) -> dict[str, torch.Tensor]:
        words = [split_words(self.tokenizer, t) or [self.tokenizer.unk_token] for t in texts]
        enc = self.tokenizer(
            words, is_split_into_words=True, truncation=True, max_length=self.max_length,
            padding=True, return_tensors="pt",
        )
        input_ids = enc["input_ids"].clone()
        labels = torch.full_like(input_ids, IGNORE)
        g = self.generator
        for b in range(len(texts)):
            word_ids = enc.word_ids(b)
            positions: dict[int, list[int]] = {}
            for pos, w in enumerate(word_ids):
                if w is not None:
                    positions.setdefault(w, []).append(pos)
            if not positions:
                continue
            ids = sorted(positions)
            chosen = [w for w in ids if torch.rand((), generator=g).item() < self.mask_rate]
            if not chosen:  # at least one masked word per sequence
                chosen = [ids[int(torch.randint(len(ids), (), generator=g))]]
            for w in chosen:
                pos = positions[w]
                if self.word_vocab is None:
                    labels[b, pos] = input_ids[b, pos]
                else:
                    uid = self.word_vocab.get(words[b][w])
                    if uid is not None:
                        labels[b, pos[0]] = uid
                r = torch.rand((), generator=g).item()
                if r < self.mask_token_prob:
                    input_ids[b, pos] = self.tokenizer.mask_token_id
                elif r < self.mask_token_prob + self.random_token_prob:
                    input_ids[b, pos] = torch.randint(len(self.tokenizer), (len(pos),), generator=g)
        return {"input_ids": input_ids, "attention_mask": enc["attention_mask"], "labels": labels}
