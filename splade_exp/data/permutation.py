"""A seeded permutation of ``[0, n)`` evaluated at any index, in O(1) memory.

Pretraining corpora are shuffled with it: which texts are held out, which are trained on, and the
order of every epoch are functions of (seed, position), so a resumed run (or any rank of a DDP
job) computes the rows of global batch t without drawing, storing or replaying a ``randperm`` of
tens of millions of entries.

Construction: an unbalanced Feistel network on the ``m`` bits of ``n - 1`` (``2**m`` is the
smallest power of two >= n, at least 4), six rounds. A round maps the halves ``(hi, lo)`` to
``(lo, hi XOR F(lo))`` -- invertible whatever ``F`` is, so the network is a bijection of
``[0, 2**m)`` -- with ``F`` a SplitMix64 finaliser of ``lo`` and a round key derived from the seed
(:func:`splade_exp.stages.seeding.derive_seed`). "Cycle walking" (apply the network again while the
image is ``>= n``) restricts it to a bijection of ``[0, n)``; since ``2**m < 2n``, an index walks
fewer than two steps on average. Everything is vectorised over NumPy ``uint64`` arrays.
"""
from __future__ import annotations

import numpy as np

from splade_exp.stages.seeding import derive_seed

ROUNDS = 6
_M1, _M2 = np.uint64(0xBF58476D1CE4E5B9), np.uint64(0x94D049BB133111EB)


def _mix(x: np.ndarray) -> np.ndarray:
    """SplitMix64's finaliser (a bijective avalanche of 64 bits); wraps modulo 2**64 by design."""
    x = (x ^ (x >> np.uint64(30))) * _M1
    x = (x ^ (x >> np.uint64(27))) * _M2
    return x ^ (x >> np.uint64(31))


class Permutation:
    """``perm[i]`` for an index or an integer array ``i``: a bijection of ``[0, n)`` fixed by ``parts``
    (e.g. ``Permutation(n, seed, "emlm-order", epoch)``)."""

    def __init__(self, n: int, *parts) -> None:
        if n < 1:
            raise ValueError(f"a permutation needs n >= 1, got {n}")
        self.n = int(n)
        self.bits = max(2, int(n - 1).bit_length())  # 2**bits >= n
        self.keys = [np.uint64(derive_seed(*parts, "round", r)) for r in range(ROUNDS)]

    def _feistel(self, x: np.ndarray) -> np.ndarray:
        n_hi = self.bits // 2
        n_lo = self.bits - n_hi
        hi, lo = x >> np.uint64(n_lo), x & np.uint64((1 << n_lo) - 1)
        with np.errstate(over="ignore"):
            for key in self.keys:  # (hi, lo) -> (lo, hi ^ F(lo)): the halves swap sizes every round
                hi, lo = lo, hi ^ (_mix(lo ^ key) & np.uint64((1 << n_hi) - 1))
                n_hi, n_lo = n_lo, n_hi
        return (hi << np.uint64(n_lo)) | lo

    def __getitem__(self, index) -> np.ndarray | int:
        scalar = np.ndim(index) == 0
        x = np.atleast_1d(np.asarray(index, dtype=np.int64))
        if x.size and (x.min() < 0 or x.max() >= self.n):
            raise IndexError(f"index out of range of a permutation of {self.n}")
        y = self._feistel(x.astype(np.uint64))
        out = y >= self.n
        while out.any():  # cycle walking: stays inside [0, n) and keeps the map a bijection
            y[out] = self._feistel(y[out])
            out = y >= self.n
        y = y.astype(np.int64)
        return int(y[0]) if scalar else y

    def __len__(self) -> int:
        return self.n
