"""What a "word" is: the tokenizer's own normalised, pre-tokenised words (the unit of unigram
vocabularies and of whole-word masking).

Imports nothing but ``tokenizers``, so that counting processes start fast.

:func:`space_local` says whether a tokenizer's normaliser and pre-tokeniser are *local to the
ASCII space*: the words of ``a + " " + b`` are the words of ``a`` followed by those of ``b``. That
holds for BERT's pipeline (clean-up, CJK padding, lower-casing, accent stripping, unicode
normal forms; whitespace and punctuation splits) and lets a counter split text at spaces in C,
count each distinct space-separated chunk once, and normalise only the distinct chunks
(:mod:`splade_exp.vocab.counting`). It does not hold for byte-level or metaspace pre-tokenisers,
which fold the space into the next word (``"Ġword"``, ``"▁word"``); those are counted text by text.
"""
from __future__ import annotations

import json

# Normalisers and pre-tokenisers (``tokenizers`` JSON type names) whose output is space-local.
LOCAL_NORMALIZERS = {"BertNormalizer", "Lowercase", "NFC", "NFD", "NFKC", "NFKD", "StripAccents", "Strip"}
# A pre-tokeniser must also split at whitespace (one of SPLITTERS), or "a b" stays one word.
SPLITTERS = {"BertPreTokenizer", "Whitespace", "WhitespaceSplit"}
LOCAL_PRE_TOKENIZERS = SPLITTERS | {"Punctuation", "Digits"}


def backend_words(backend, text: str) -> list[str]:
    """The normalised words of ``text`` under a ``tokenizers.Tokenizer`` (``backend_tokenizer``)."""
    if backend.normalizer is not None:
        text = backend.normalizer.normalize_str(text)
    if backend.pre_tokenizer is None:
        return text.split()
    return [w for w, _ in backend.pre_tokenizer.pre_tokenize_str(text)]


def _types(node, key: str) -> list[str]:
    """The component type names of a normaliser/pre-tokeniser node (a Sequence is flattened)."""
    if node is None:
        return []
    if node.get("type") == "Sequence":
        return [t for n in node.get(key, []) for t in _types(n, key)]
    return [node.get("type")]


def space_local(backend) -> bool:
    """Whether the words of a text are the words of its space-separated chunks, concatenated."""
    state = json.loads(backend.to_str())
    norm = _types(state.get("normalizer"), "normalizers")
    pre = _types(state.get("pre_tokenizer"), "pretokenizers")
    if not set(norm) <= LOCAL_NORMALIZERS:
        return False
    if state.get("pre_tokenizer") is None:  # backend_words splits at whitespace itself
        return True
    return set(pre) <= LOCAL_PRE_TOKENIZERS and bool(set(pre) & SPLITTERS)
