"""SPLADE pooling of the MLM head: ``w_j = max_i log1p(relu(h_i . E_j + b_j))`` over non-padding i.

``h`` are the head's *transformed* hidden states (B, L, H): everything of the MLM head except the
final vocabulary projection. ``weight`` (|V|, H) and ``bias`` (|V|) are that projection.

Implementations:
- ``naive``: materialises the (B, L, |V|) logits (reference; also the only one for sum pooling).
"""
from __future__ import annotations

import torch


def max_pool_naive(
    h: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, mask: torch.Tensor
) -> torch.Tensor:
    """Reference max pooling over materialised logits. ``mask`` (B, L) is 1 for real tokens."""
    logits = torch.nn.functional.linear(h, weight, bias)  # (B, L, V)
    logits = logits.masked_fill(~mask.bool().unsqueeze(-1), float("-inf"))
    pooled = logits.max(dim=1).values
    # log1p(relu(-inf)) = 0, so an all-padding row gives zeros rather than NaN.
    return torch.log1p(torch.relu(pooled))


def sum_pool_naive(
    h: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, mask: torch.Tensor
) -> torch.Tensor:
    """Sum pooling (SPLADE v1): ``w_j = sum_i log1p(relu(z_ij))`` over non-padding positions."""
    logits = torch.nn.functional.linear(h, weight, bias)
    act = torch.log1p(torch.relu(logits)) * mask.unsqueeze(-1).to(logits.dtype)
    return act.sum(dim=1)


def sparse_pool(
    h: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    mask: torch.Tensor,
    pooling: str = "max",
    impl: str = "naive",
    chunk_size: int = 8192,
) -> torch.Tensor:
    """Dispatch on pooling (``max`` | ``sum``) and implementation (``naive`` | ``chunked``)."""
    if pooling == "sum":
        return sum_pool_naive(h, weight, bias, mask)
    if pooling != "max":
        raise ValueError(f"head.pooling must be 'max' or 'sum', got {pooling!r}")
    if impl == "naive":
        return max_pool_naive(h, weight, bias, mask)
    raise ValueError(f"head.pooling_impl must be 'naive' or 'chunked', got {impl!r}")
