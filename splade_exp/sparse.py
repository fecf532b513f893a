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


def prune_csr(m: sp.csr_matrix, k: int) -> sp.csr_matrix:
    """Keep at most ``k`` largest non-zero entries per row of a CSR matrix (0 = keep all).

    Weights are unchanged; ties are broken by the lower term id, so pruning is deterministic.
    """
    k = check_prune_k(k, "k")
    m = m.tocsr()
    if k == 0:
        return m.copy()
    m.sort_indices()
    indptr, indices, data = m.indptr, m.indices, m.data
    lengths = np.diff(indptr)
    keep = np.ones(len(data), dtype=bool)
    for row in np.nonzero(lengths > k)[0]:
        lo, hi = indptr[row], indptr[row + 1]
        # stable sort on -value keeps the lower term id (already sorted) first among ties
        order = np.argsort(-data[lo:hi], kind="stable")
        keep[lo + order[k:]] = False
    rows = np.repeat(np.arange(m.shape[0]), lengths)[keep]
    return sp.csr_matrix((data[keep], (rows, indices[keep])), shape=m.shape)


def to_csr(w: torch.Tensor) -> sp.csr_matrix:
    """Dense (N, V) tensor to a float32 CSR matrix of its non-zero entries."""
    w = w.detach().float().cpu()
    nz = w.nonzero(as_tuple=True)
    return sp.csr_matrix(
        (w[nz].numpy(), (nz[0].numpy(), nz[1].numpy())), shape=tuple(w.shape), dtype=np.float32
    )
