"""Encoded vectors on disk: fixed-size CSR shards under the run directory, written atomically.

A collection of N texts encoded by a model is stored as ``ceil(N / shard_size)`` shards,
``<dir>/shard-00000.npz`` ..., each an uncompressed npz of one CSR block (rows ``[i·S, (i+1)·S)``):
``indptr`` int64, ``indices`` int32, ``data`` float32, ``shape``. Uncompressed, so a shard is read
back at disk speed and is the size the evaluation holds in memory for it. ``<dir>/manifest.json``
names what the vectors depend on (the key) and the layout; the directory name is the hash of the
key, so vectors are reused exactly when everything that changes them is equal:

- the model: a fingerprint of the encoder's weights (the trained weights, whatever run or
  checkpoint they come from) and of the tokenizer's vocabulary;
- the texts: the collection's key (:meth:`Collection.key`, its input files), and for queries
  the evaluation split;
- the truncation lengths and the pooling.

Each shard is written via temp file + rename, so a shard file exists only complete: an encoding
killed half way leaves whole shards and nothing else, and the next launch encodes only the missing
ones. Under a process group every rank encodes and writes its own shards (shard ``i`` belongs to
rank ``i mod W``); nothing travels between ranks.
"""
from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np
import scipy.sparse as sp

from splade_exp.hashing import config_hash
from splade_exp.io import atomic_path, write_json

log = logging.getLogger(__name__)

MANIFEST = "manifest.json"


def weights_fingerprint(module) -> str:
    """sha1 of a module's parameters and buffers (names, shapes, dtypes, bytes): the identity of
    trained weights, equal for the model in memory after training and the one restored from its
    checkpoint. About a second for a BERT-base encoder."""
    import torch

    h = hashlib.sha1()
    for name, tensor in sorted(module.state_dict().items()):
        t = tensor.detach().to("cpu").contiguous()
        h.update(f"{name}:{tuple(t.shape)}:{t.dtype}".encode())
        h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()[:16]


def tokenizer_fingerprint(tokenizer) -> str:
    """Hash of the tokenizer's class and vocabulary (what turns texts into the model's input)."""
    vocab = tokenizer.get_vocab() if hasattr(tokenizer, "get_vocab") else {}
    return config_hash({"class": type(tokenizer).__name__, "vocab": sorted(vocab.items())})


@dataclass
class ShardedVectors:
    """One directory of CSR shards of a (rows × cols) matrix and its manifest."""

    path: Path
    rows: int
    cols: int
    shard_size: int
    key: dict

    @classmethod
    def open(cls, root: str | Path, name: str, key: dict, rows: int, cols: int, shard_size: int) -> "ShardedVectors":
        """The store ``<root>/<name>-<hash(key)>``; its manifest is written if absent and must
        otherwise describe the same layout (a shard size changed later keeps the first one)."""
        if shard_size <= 0:
            raise ValueError(f"eval.shard_size must be a positive integer, got {shard_size!r}")
        path = Path(root) / f"{name}-{config_hash(key)}"
        manifest = path / MANIFEST
        if manifest.exists():
            meta = json.loads(manifest.read_text())
            if (meta["rows"], meta["cols"]) != (rows, cols):
                raise ValueError(f"{manifest}: holds a {meta['rows']}x{meta['cols']} matrix, expected {rows}x{cols} "
                                 "for the same key; remove the directory")
            shard_size = int(meta["shard_size"])
        else:
            write_json(manifest, {"key": key, "rows": rows, "cols": cols, "shard_size": shard_size,
                                  "format": "csr npz: indptr int64, indices int32, data float32"})
        return cls(path, rows, cols, shard_size, key)

    @property
    def num_shards(self) -> int:
        return -(-self.rows // self.shard_size)

    def bounds(self, i: int) -> tuple[int, int]:
        return i * self.shard_size, min((i + 1) * self.shard_size, self.rows)

    def shard_path(self, i: int) -> Path:
        return self.path / f"shard-{i:05d}.npz"

    def missing(self) -> list[int]:
        return [i for i in range(self.num_shards) if not self.shard_path(i).exists()]

    def complete(self) -> bool:
        return not self.missing()

    def write(self, i: int, m: sp.csr_matrix) -> None:
        lo, hi = self.bounds(i)
        if m.shape != (hi - lo, self.cols):
            raise ValueError(f"shard {i} must be {(hi - lo, self.cols)}, got {m.shape}")
        with atomic_path(self.shard_path(i)) as tmp, open(tmp, "wb") as fh:
            np.savez(fh, indptr=m.indptr.astype(np.int64), indices=m.indices.astype(np.int32),
                     data=m.data.astype(np.float32), shape=np.array(m.shape, dtype=np.int64))

    def read(self, i: int) -> sp.csr_matrix:
        with np.load(self.shard_path(i)) as z:
            return sp.csr_matrix((z["data"], z["indices"], z["indptr"]), shape=tuple(z["shape"]))

    def __iter__(self) -> Iterator[tuple[int, sp.csr_matrix]]:
        """(first row, shard) in row order, one shard in memory at a time."""
        for i in range(self.num_shards):
            yield self.bounds(i)[0], self.read(i)

    def matrix(self) -> sp.csr_matrix:
        """All shards stacked (small matrices: the queries)."""
        if not self.rows:
            return sp.csr_matrix((0, self.cols), dtype=np.float32)
        return sp.vstack([m for _, m in self], format="csr")

    def nbytes(self) -> int:
        """Bytes of the stored shards (what holding the whole matrix in memory takes)."""
        return sum(self.shard_path(i).stat().st_size for i in range(self.num_shards) if self.shard_path(i).exists())
