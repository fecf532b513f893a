"""Ranking losses on pooled sparse vectors. Scores are plain dot products (no temperature)."""
from __future__ import annotations

import torch
import torch.nn.functional as F


def in_batch_cross_entropy(q: torch.Tensor, d: torch.Tensor, positive_index: torch.Tensor) -> torch.Tensor:
    """Mean over queries of ``-log softmax_d s(q, d)`` at the query's positive.

    ``q`` (Nq, V) queries; ``d`` (Nd, V) every document of the (global) batch: positives of all
    queries and any hard negatives; ``positive_index`` (Nq,) the row of each query's positive in
    ``d``. All other rows act as negatives for the query.
    """
    scores = q @ d.T
    return F.cross_entropy(scores, positive_index)
