"""Texts tokenised once into a memory-mapped artifact that every job of a sweep reads.

``tokens/<side>-<hash>/`` (keyed by the collection's content, the side, the tokenizer's own
serialisation and the max length) holds

- ``ids.bin``: every text's token ids (``[CLS] ... [SEP]``, truncated), concatenated, raw
  little-endian int32 (written as it is tokenised, never held whole in memory);
- ``offsets.npy``: int64, text ``i`` is ``ids[offsets[i]:offsets[i + 1]]``;
- ``keys.txt``: the text ids in row order; ``meta.json``: counts and the build time.

Arrays are memory-mapped read-only: jobs and data-loader workers share the pages
read-only instead of each holding (and re-tokenising) the corpus. Padding a batch of rows gives
exactly what ``tokenizer(texts, truncation=True, max_length=L, padding=True)`` gives
(checked in tests). The tokenizer runs over the texts in chunks, so building never holds more than
one chunk's encodings beside the growing id file.
"""
from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path
from typing import Iterable, Mapping

import numpy as np
import torch

from splade_exp import artifacts

CHUNK = 4096


def tokenizer_fingerprint(tokenizer) -> str:
    """A hash of everything that decides the tokenizer's output (its full serialisation)."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None:  # without the call-time truncation/padding state the tokenizer carries
        state = json.loads(backend.to_str())
        state.pop("truncation", None)
        state.pop("padding", None)
        text = json.dumps(state, sort_keys=True)
    else:
        text = json.dumps(tokenizer.get_vocab(), sort_keys=True)
    extra = json.dumps({"cls": tokenizer.cls_token_id, "sep": tokenizer.sep_token_id, "pad": tokenizer.pad_token_id})
    return hashlib.sha1((text + extra).encode("utf-8")).hexdigest()[:16]


def write_tokenized(out: Path, tokenizer, keys: list[str], texts: Iterable[str], max_length: int) -> None:
    t0 = time.perf_counter()
    offsets = np.zeros(len(keys) + 1, dtype=np.int64)
    n, row = 0, 0
    with open(out / "ids.bin", "wb") as fh:
        chunk: list[str] = []

        def flush() -> None:
            nonlocal n, row
            enc = tokenizer(chunk, truncation=True, max_length=max_length, add_special_tokens=True)["input_ids"]
            for ids in enc:
                np.asarray(ids, dtype="<i4").tofile(fh)
                n += len(ids)
                row += 1
                offsets[row] = n
            chunk.clear()

        for text in texts:
            chunk.append(text)
            if len(chunk) == CHUNK:
                flush()
        if chunk:
            flush()
    if row != len(keys):
        raise ValueError(f"tokenised {row} texts for {len(keys)} keys")
    np.save(out / "offsets.npy", offsets)
    (out / "keys.txt").write_text("".join(k + "\n" for k in keys), encoding="utf-8")
    meta = {"texts": len(keys), "tokens": int(n), "max_length": max_length, "build_s": time.perf_counter() - t0}
    (out / "meta.json").write_text(json.dumps(meta, indent=2) + "\n")


def pad_rows(rows: list[np.ndarray], pad_id: int, side: str = "right") -> dict[str, torch.Tensor]:
    """``input_ids`` and ``attention_mask`` (int64) padded to the longest row, as a tokenizer pads."""
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), int(pad_id), dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, r in enumerate(rows):
        span = slice(width - len(r), width) if side == "left" else slice(0, len(r))
        ids[i, span] = torch.from_numpy(np.asarray(r, dtype=np.int64))
        mask[i, span] = 1
    return {"input_ids": ids, "attention_mask": mask}


class TokenizedTexts:
    """Read-only view of a tokens artifact: ``row(key)`` is one text's token ids."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.ids = np.memmap(self.path / "ids.bin", dtype="<i4", mode="r")
        self.offsets = np.load(self.path / "offsets.npy", mmap_mode="r")
        keys = (self.path / "keys.txt").read_text(encoding="utf-8").splitlines()
        self.index = {k: i for i, k in enumerate(keys)}

    def __len__(self) -> int:
        return len(self.index)

    def row(self, key: str) -> np.ndarray:
        i = self.index[key]
        return self.ids[self.offsets[i]:self.offsets[i + 1]]


def tokenized(artifacts_dir, collection_key: dict, side: str, texts: Mapping[str, str], tokenizer,
              max_length: int) -> TokenizedTexts:
    """The tokens artifact of ``texts`` (id -> text), built at most once per key."""
    key = {"collection": collection_key, "side": side, "tokenizer": tokenizer_fingerprint(tokenizer),
           "max_length": int(max_length)}
    keys = list(texts)
    path = artifacts.artifact(artifacts_dir, "tokens", side, key,
                              lambda out: write_tokenized(out, tokenizer, keys, (texts[k] for k in keys), max_length))
    return TokenizedTexts(path)
