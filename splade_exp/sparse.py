"""Sparse-vector operations: top-k masking for training, static pruning and CSR conversion."""
from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import torch


def topk_mask(w: torch.Tensor, k: int) -> torch.Tensor:
    """Keep the top-``k`` entries of each row and zero the rest; gradients flow to kept entries.

    ``k <= 0`` or ``k >= |V|`` returns ``w`` unchanged.
    """
    if k <= 0 or k >= w.shape[-1]:
        return w
    values, idx = w.topk(k, dim=-1)
    return torch.zeros_like(w).scatter(-1, idx, values)


def check_prune_k(k, key: str) -> int:
    """Validate a static-pruning budget (a non-negative integer; 0 = unpruned)."""
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 0:
        raise ValueError(f"{key} must be a non-negative integer (0 = unpruned), got {k!r}")
    return int(k)


def _descending_bits(values: np.ndarray, out: np.ndarray) -> np.ndarray:
    """Write into the uint64 ``out`` keys whose ascending order is the descending order of the
    float32 ``values`` (32 significant bits).

    IEEE-754 floats order like their bit patterns once negative numbers have all their bits
    flipped and non-negative ones their sign bit set; the complement then reverses the order.
    """
    bits = np.ascontiguousarray(values, dtype=np.float32).view(np.uint32)
    if values.size == 0 or values.min() >= 0:  # SPLADE weights: one subtraction
        out[:] = bits
        return np.subtract(np.uint64(0x7FFFFFFF), out, out=out)
    out[:] = ~np.where(bits & np.uint32(0x80000000), ~bits, bits | np.uint32(0x80000000))
    return out


def prune_csr(m: sp.csr_matrix, k: int) -> sp.csr_matrix:
    """Keep at most ``k`` largest non-zero entries per row of a CSR matrix (0 = keep all).

    Weights are unchanged; ties are broken by the lower term id, so pruning is deterministic
    (the same output as the row-by-row reference, :func:`splade_exp.reference.prune_csr_loop`).
    Pruning nests: ``prune_csr(prune_csr(m, 20), 10)`` equals ``prune_csr(m, 10)``.

    Without a loop over rows: every entry gets one 64-bit key, ``row | descending value |
    position in the row`` (positions follow the term ids, the indices being sorted), so one sort
    of the keys orders each row by value and, among equal values, by term id. Each row keeps its
    block of places, so after the sort the entry at place ``i`` has rank ``i - start of its row``
    (the position array itself) and is kept when that rank is below ``k``; row ``r`` keeps
    ``min(len(r), k)`` entries. Rows already sorted make the keys nearly sorted, which the stable
    sort (timsort) exploits. Rows are taken in chunks small enough for the row number to fit
    beside the 32 value bits and the position bits (2^21 rows per chunk when rows have at most
    2,048 entries). Few large temporaries: on a virtual machine each fresh array costs page
    faults comparable to the arithmetic.
    """
    k = check_prune_k(k, "k")
    m = sp.csr_matrix(m)
    if k == 0:
        return m.copy()
    if not m.has_sorted_indices:
        m = m.copy()
        m.sort_indices()
    lengths = np.diff(m.indptr)
    if m.nnz == 0 or lengths.max() <= k:
        return m.copy()
    pos_bits = max(1, int(lengths.max() - 1).bit_length())
    shift_pos, shift_row = np.uint64(pos_bits), np.uint64(32 + pos_bits)
    chunk = 1 << (32 - pos_bits)
    kept = []
    for lo in range(0, m.shape[0], chunk):
        hi = min(lo + chunk, m.shape[0])
        a, b = int(m.indptr[lo]), int(m.indptr[hi])
        n = lengths[lo:hi]
        if b == a:
            continue
        pos = np.arange(b - a, dtype=np.int64)
        pos -= np.repeat(m.indptr[lo:hi] - a, n)
        key = _descending_bits(m.data[a:b], np.empty(b - a, dtype=np.uint64))
        key <<= shift_pos
        key |= pos.view(np.uint64)  # positions are non-negative
        key |= np.repeat(np.arange(hi - lo, dtype=np.uint64) << shift_row, n)
        key.sort(kind="stable")
        key = key[pos < k]  # rank in the row = the position array (see above)
        del pos
        where = (key >> shift_row).astype(np.int64)
        key &= np.uint64((1 << pos_bits) - 1)
        where = m.indptr[lo + where]
        where += key.view(np.int64)
        where.sort(kind="stable")  # rows are in order already; entries back in term-id order
        kept.append(where)
    kept = np.concatenate(kept)
    indptr = np.zeros(m.shape[0] + 1, dtype=np.int64)
    np.cumsum(np.minimum(lengths, k), out=indptr[1:])
    return sp.csr_matrix((m.data[kept], m.indices[kept], indptr), shape=m.shape)


def to_csr(w: torch.Tensor) -> sp.csr_matrix:
    """Dense (N, V) tensor to a float32 CSR matrix of its non-zero entries."""
    w = w.detach().float().cpu()
    nz = w.nonzero(as_tuple=True)
    return sp.csr_matrix(
        (w[nz].numpy(), (nz[0].numpy(), nz[1].numpy())), shape=tuple(w.shape), dtype=np.float32
    )
