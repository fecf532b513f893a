"""A large plain-text corpus for benchmarks, generated on the fly (one paragraph a line).

Words are drawn from a Zipf distribution (exponent 1.07) over 300,000 pseudo-words, as natural
text's word frequencies fall; a word is sometimes capitalised (10%), followed by punctuation
(8%: ``, . ; :``) or written with an accented vowel (a few % of pseudo-words), so that the
tokenizer's normaliser and pre-tokeniser have work to do and the distinct space-separated chunks
keep growing with the size of the file, as in real text. Lines hold 5 to 120 words.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

LETTERS = np.array(list("etaoinshrdlcumwfgypbvkjxqz"))
ACCENTED = {"e": "é", "a": "à", "o": "ö", "u": "ü", "i": "ï"}


def vocabulary(n: int, rng: np.random.Generator) -> list[str]:
    """``n`` distinct pseudo-words of 2-11 letters (letters drawn by their rank in English)."""
    freq = 1.0 / np.arange(1, len(LETTERS) + 1)
    freq /= freq.sum()
    words: dict[str, None] = {}
    while len(words) < n:
        lengths = rng.integers(2, 12, size=n)
        letters = "".join(rng.choice(LETTERS, size=int(lengths.sum()), p=freq))
        ends = np.cumsum(lengths)
        for a, b in zip(ends - lengths, ends):
            words.setdefault(letters[a:b])
            if len(words) == n:
                break
    accent = str.maketrans(ACCENTED)
    return [w.translate(accent) if rng.random() < 0.03 else w for w in words]


def write_text_file(path: str | os.PathLike, size_bytes: int, seed: int = 0, vocab_size: int = 300_000) -> int:
    """Write about ``size_bytes`` of text to ``path``; returns the size written."""
    rng = np.random.default_rng(seed)
    base = vocabulary(vocab_size, rng)
    forms = np.array(base + [w.capitalize() for w in base]
                     + [w + p for p in (",", ".", ";", ":") for w in base], dtype=object)
    zipf = 1.0 / np.arange(1, vocab_size + 1) ** 1.07
    zipf /= zipf.sum()
    weights = np.concatenate([zipf * 0.82, zipf * 0.10] + [zipf * 0.02] * 4)
    cdf = np.cumsum(weights)
    cdf /= cdf[-1]
    written = 0
    with open(path, "w", encoding="utf-8") as fh:
        while written < size_bytes:
            idx = np.searchsorted(cdf, rng.random(1 << 20))
            words = forms[idx].tolist()
            cuts = np.cumsum(rng.integers(5, 121, size=len(words) // 5))
            cuts = cuts[cuts < len(words)].tolist()
            block = "\n".join(" ".join(words[a:b]) for a, b in zip([0] + cuts, cuts)) + "\n"
            fh.write(block)
            written += len(block.encode("utf-8"))
    return Path(path).stat().st_size
