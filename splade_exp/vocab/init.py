"""Initialisation of the output head's vocabulary projection (P1 §4; the ``init`` config group).

- ``pretrained``: keep the backbone's MLM decoder (WordPiece vocabulary only).
- ``random``: rows ~ N(0, std²), bias 0 (any vocabulary; with WordPiece it re-initialises the head).
- ``esplade``: the row of unigram u is the mean of the WordPiece decoder rows of u's pieces
  (``tokenizer(u, add_special_tokens=False)``); its bias is the mean of their biases
  (``bias: mean``) or 0 (``bias: zero``).

The head's transform (dense, activation, LayerNorm) is part of the trunk and is never touched; the
new decoder is a fresh ``nn.Linear``, untied from the input embeddings.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

KINDS = ("pretrained", "random", "esplade")


def random_decoder(hidden: int, size: int, std: float, seed: int) -> nn.Linear:
    """A ``size`` x ``hidden`` projection with N(0, std²) rows and a zero bias."""
    if not std > 0:
        raise ValueError(f"init.std must be > 0, got {std}")
    g = torch.Generator().manual_seed(seed)
    dec = nn.Linear(hidden, size, bias=True)
    with torch.no_grad():
        dec.weight.copy_(torch.randn(size, hidden, generator=g) * std)
        dec.bias.zero_()
    return dec


def wordpieces(tokenizer, words: list[str]) -> list[list[int]]:
    """WordPiece ids of every word (no special tokens); a word with no pieces maps to [UNK]."""
    ids = tokenizer(list(words), add_special_tokens=False)["input_ids"]
    return [p if p else [tokenizer.unk_token_id] for p in ids]


@torch.no_grad()
def esplade_decoder(wordpiece_decoder: nn.Linear, pieces: list[list[int]], bias: str = "mean") -> nn.Linear:
    """ESPLADE rows: the mean of each word's WordPiece decoder rows (and biases, or a zero bias)."""
    if bias not in ("mean", "zero"):
        raise ValueError(f"init.bias must be 'mean' or 'zero', got {bias!r}")
    w = wordpiece_decoder.weight.detach()
    flat = torch.tensor([p for ps in pieces for p in ps], dtype=torch.long, device=w.device)
    offsets = torch.tensor([0] + [len(ps) for ps in pieces[:-1]], dtype=torch.long, device=w.device).cumsum(0)
    dec = nn.Linear(w.shape[1], len(pieces), bias=True).to(w.device, w.dtype)
    dec.weight.copy_(F.embedding_bag(flat, w, offsets, mode="mean"))
    b = wordpiece_decoder.bias
    if bias == "mean" and b is not None:
        dec.bias.copy_(F.embedding_bag(flat, b.detach().unsqueeze(1), offsets, mode="mean").squeeze(1))
    else:
        dec.bias.zero_()
    return dec


def initial_decoder(icfg, vocab_kind: str, decoder: nn.Linear, tokenizer, words: list[str] | None,
                    seed: int) -> nn.Linear:
    """The decoder a run starts from, given the ``init`` config and the vocabulary.

    ``words`` is the unigram vocabulary (None for the WordPiece vocabulary).
    """
    kind = icfg.kind
    if kind not in KINDS:
        raise ValueError(f"init.kind must be one of {KINDS}, got {kind!r}")
    if kind == "pretrained":
        if words is not None:
            raise ValueError(
                f"init={icfg.name} keeps the backbone's WordPiece decoder and cannot score a "
                f"{vocab_kind} vocabulary; use init=random or init=esplade"
            )
        return decoder
    if kind == "random":
        size = decoder.out_features if words is None else len(words)
        return random_decoder(decoder.in_features, size, float(icfg.std), seed).to(decoder.weight.device)
    if words is None:
        raise ValueError(f"init={icfg.name} builds unigram rows from WordPiece rows; it needs vocab=unigram")
    return esplade_decoder(decoder, wordpieces(tokenizer, words), icfg.bias)
