"""EMLM pretraining data: the texts a pretraining uses, tokenised once into memory-mapped rows;
every global batch a pure function of (seed, batch index).

**Selection.** The corpus (:mod:`splade_exp.data.corpus`) has N texts (non-blank lines, rows or
documents) in a fixed order. Text i sits at position ``π(i)`` of a seeded permutation of
``[0, N)`` (:class:`~splade_exp.data.permutation.Permutation`, keyed ``(seed, "emlm-texts")``):
positions ``[0, val_size)`` are the validation texts, positions ``[val_size, val_size + M)`` the
training texts, with ``M = min(ceil(steps * batch_size / R), N - val_size)`` for repetition R.
So with R = 1 every training text is seen once, with R > 1 about R times within the same step
budget; a corpus too small for ``ceil(steps * batch_size / R)`` distinct texts gives every text
to training and an *effective* repetition ``steps * batch_size / M`` larger than R (the stage
warns and records it). This is the shuffle-then-slice of an in-memory list, computed in two
streaming passes (count N; tokenise the selected texts) without holding the corpus or a
permutation array.

**Rows.** The selected texts are tokenised (WordPiece input, truncated at ``max_length``) with
their word codes (:func:`splade_exp.data.masking.word_codes`: which tokens start a word and the
word's unigram id) into an artifact ``tokens/emlm-<hash>/``: ``ids.bin`` and ``codes.bin``
(int32, texts concatenated in corpus order as they are met), ``{train,val}.starts.npy`` (int64)
and ``{train,val}.lengths.npy`` (int32) giving each row's tokens, and ``meta.json``. Every job of
a sweep that pretrains on the same selection (a learning-rate grid) reads the same rows.

**Batches.** Global batch t (counted in micro-batches from the start of pretraining) is rows
``[p·B, (p+1)·B)`` of the permutation of ``[0, M)`` keyed ``(seed, "emlm-order", e)``, with
``e, p = divmod(t, M // B)`` (the last partial batch of an epoch is dropped, as a shuffling loader
with ``drop_last`` does). Row j of global batch t is masked with the generator
``torch_generator(seed, "emlm-mask", t, j)``; rank r of W takes rows ``[r·B/W, (r+1)·B/W)``. A batch
is therefore the same on 1 or W processes and in a run resumed at any step. Validation row i is
masked once with ``(seed, "emlm-val", i)``.
"""
from __future__ import annotations

import itertools
import json
import math
import time
from dataclasses import dataclass
from pathlib import Path

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from splade_exp.data.masking import IGNORE, mask_row, tokenize_words, word_codes
from splade_exp.data.permutation import Permutation
from splade_exp.stages.seeding import torch_generator

WINDOW = 1 << 16   # texts whose positions are computed at once
CHUNK = 4096       # selected texts tokenised at once


def wanted_texts(steps: int, batch_size: int, repetition: float) -> int:
    """Distinct training texts a pretraining asks for: ``ceil(steps * batch_size / repetition)``."""
    if not repetition > 0:
        raise ValueError(f"pretrain.repetition must be > 0, got {repetition}")
    return math.ceil(steps * batch_size / repetition)


def build_rows(out: Path, source, tokenizer, word_vocab: dict[str, int] | None, max_length: int, val_size: int,
               wanted: int, batch_size: int, seed: int, what: str = "pretrain.corpus") -> dict:
    """Select and tokenise the texts of ``source`` into ``out`` (module doc); returns the meta dict."""
    t0 = time.perf_counter()
    n = sum(1 for _ in source.texts())
    val = min(val_size, n)
    train = min(wanted, n - val)
    if train < batch_size:
        raise ValueError(f"{what}={source!r}: {max(train, 0)} training texts after holding out pretrain.val_size="
                         f"{val_size}; fewer than one batch (pretrain.batch_size={batch_size})")
    perm = Permutation(n, seed, "emlm-texts")
    splits = {"val": val, "train": train}
    starts = {s: np.lib.format.open_memmap(out / f"{s}.starts.npy", "w+", np.int64, (k,)) for s, k in splits.items()}
    lengths = {s: np.lib.format.open_memmap(out / f"{s}.lengths.npy", "w+", np.int32, (k,)) for s, k in splits.items()}
    written = 0
    with open(out / "ids.bin", "wb") as ids_fh, open(out / "codes.bin", "wb") as codes_fh:
        pending: list[tuple[int, str]] = []

        def flush() -> None:
            nonlocal written
            words, enc = tokenize_words(tokenizer, [t for _, t in pending], max_length)
            for b, (pos, _) in enumerate(pending):
                ids = np.asarray(enc["input_ids"][b], dtype="<i4")
                ids.tofile(ids_fh)
                word_codes(enc.word_ids(b), words[b], word_vocab).astype("<i4").tofile(codes_fh)
                split, row = ("val", pos) if pos < val else ("train", pos - val)
                starts[split][row], lengths[split][row] = written, len(ids)
                written += len(ids)
            pending.clear()

        window: list[str] = []
        first = 0

        def place() -> None:
            nonlocal first
            pos = perm[np.arange(first, first + len(window))]
            for k in np.flatnonzero(pos < val + train):
                pending.append((int(pos[k]), window[k]))
                if len(pending) == CHUNK:
                    flush()
            first += len(window)
            window.clear()

        for text in source.texts():
            window.append(text)
            if len(window) == WINDOW:
                place()
        if window:
            place()
        if pending:
            flush()
    for arr in (*starts.values(), *lengths.values()):
        arr.flush()
    meta = {"texts": n, "val_texts": val, "train_texts": train, "wanted": wanted, "tokens": written,
            "max_length": max_length, "build_s": time.perf_counter() - t0}
    (out / "meta.json").write_text(json.dumps(meta, indent=2) + "\n")
    return meta


class TokenRows:
    """One split of a rows artifact, memory-mapped (opened on first use, so in each loader worker)."""

    def __init__(self, path: str | Path, split: str) -> None:
        self.path, self.split = Path(path), split
        self._arrays = None
        self.n = int(np.load(self.path / f"{split}.lengths.npy", mmap_mode="r").shape[0])

    def _open(self):
        if self._arrays is None:
            self._arrays = (np.memmap(self.path / "ids.bin", dtype="<i4", mode="r"),
                            np.memmap(self.path / "codes.bin", dtype="<i4", mode="r"),
                            np.load(self.path / f"{self.split}.starts.npy", mmap_mode="r"),
                            np.load(self.path / f"{self.split}.lengths.npy", mmap_mode="r"))
        return self._arrays

    def __len__(self) -> int:
        return self.n

    def row(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        ids, codes, starts, lengths = self._open()
        a = int(starts[i])
        b = a + int(lengths[i])
        return ids[a:b], codes[a:b]

    def __getstate__(self):  # memory maps are reopened, never pickled into loader workers
        return {**self.__dict__, "_arrays": None}


@dataclass(frozen=True)
class Masking:
    """How rows are masked and padded (``pretrain`` config values and the tokenizer's ids)."""
    mask_rate: float
    mask_token_prob: float
    random_token_prob: float
    mask_id: int
    pad_id: int
    vocab_size: int
    wordpiece_labels: bool  # True: a WordPiece head (every piece labelled); False: unigram (EMLM)
    padding_side: str = "right"

    def batch(self, rows: list[tuple[np.ndarray, np.ndarray]], generators: list[torch.Generator]) -> dict:
        """Padded, masked tensors of ``rows``; row k drawn from ``generators[k]``."""
        width = max(len(ids) for ids, _ in rows)
        input_ids = torch.full((len(rows), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        labels = torch.full((len(rows), width), IGNORE, dtype=torch.long)
        for k, ((ids, codes), g) in enumerate(zip(rows, generators)):
            span = slice(width - len(ids), width) if self.padding_side == "left" else slice(0, len(ids))
            input_ids[k, span] = torch.from_numpy(np.asarray(ids, dtype=np.int64))
            mask[k, span] = 1
            mask_row(input_ids[k, span], labels[k, span], np.asarray(codes), g, self.mask_rate, self.mask_token_prob,
                     self.random_token_prob, self.mask_id, self.vocab_size, self.wordpiece_labels)
        return {"input_ids": input_ids, "attention_mask": mask, "labels": labels}


class GlobalBatches(Dataset):
    """Item t: this rank's slice of global batch t, masked (module doc). Indexed by batch, so a
    loader with ``batch_size=None`` and any start serves a resumed run and every loader worker."""

    def __init__(self, rows: TokenRows, batch_size: int, seed: int, masking: Masking, rank: int = 0,
                 world_size: int = 1) -> None:
        if batch_size % world_size:
            raise ValueError(f"pretrain.batch_size={batch_size} is the global batch: it must be divisible by the "
                             f"number of processes (trainer.devices x trainer.num_nodes = {world_size})")
        if len(rows) < batch_size:
            raise ValueError(f"pretrain.batch_size={batch_size} exceeds the {len(rows)} training texts")
        self.rows, self.batch_size, self.seed, self.masking = rows, batch_size, seed, masking
        self.rank, self.world_size = rank, world_size
        self.per_epoch = len(rows) // batch_size

    def global_rows(self, t: int) -> np.ndarray:
        epoch, p = divmod(t, self.per_epoch)
        order = Permutation(len(self.rows), self.seed, "emlm-order", epoch)
        return order[np.arange(p * self.batch_size, (p + 1) * self.batch_size)]

    def __getitem__(self, t: int) -> dict:
        rows = self.global_rows(t)
        per = self.batch_size // self.world_size
        mine = range(self.rank * per, (self.rank + 1) * per)
        return self.masking.batch([self.rows.row(int(rows[j])) for j in mine],
                                  [torch_generator(self.seed, "emlm-mask", t, j) for j in mine])


def validation_batches(rows: TokenRows, batch_size: int, seed: int, masking: Masking) -> list[dict]:
    """The held-out rows in position order, masked once, in batches of ``batch_size``."""
    out = []
    for a in range(0, len(rows), batch_size):
        idx = range(a, min(a + batch_size, len(rows)))
        out.append(masking.batch([rows.row(i) for i in idx], [torch_generator(seed, "emlm-val", i) for i in idx]))
    return out


class _From:
    """Batch indices ``start, start + 1, ...`` (a sampler for a loader with ``batch_size=None``)."""

    def __init__(self, start: int) -> None:
        self.start = start

    def __iter__(self):
        return itertools.count(self.start)


class PretrainingData(L.LightningDataModule):
    """The training loader of a rows artifact, for the trainer's rank and world size, starting at the
    batch the restored global step points to (``global_step × accumulate_grad_batches``)."""

    def __init__(self, rows: TokenRows, batch_size: int, seed: int, masking: Masking, num_workers: int = 0) -> None:
        super().__init__()
        self.rows, self.batch_size, self.seed, self.masking = rows, batch_size, seed, masking
        self.num_workers = num_workers

    def loader(self, rank: int = 0, world_size: int = 1, start: int = 0) -> DataLoader:
        batches = GlobalBatches(self.rows, self.batch_size, self.seed, self.masking, rank, world_size)
        return DataLoader(batches, batch_size=None, sampler=_From(start), num_workers=self.num_workers,
                          persistent_workers=self.num_workers > 0)

    def train_dataloader(self) -> DataLoader:
        t = self.trainer
        return self.loader(t.global_rank, t.world_size, start=t.global_step * t.accumulate_grad_batches)
