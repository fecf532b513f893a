"""Sparsity regularisers on batches of pooled term-weight vectors (rows = examples).

- ``flops(W) = sum_j (mean_i |w_ij|)^2``  (Paria et al. 2020; SPLADE applies it per side).
- ``joint_flops(Q, D) = sum_j mean_q(|w_j|) * mean_d(|w_j|)``  (ESPLADE; nothing is squared).
- ``lambda_at(step)``: ``lam * min(1, (t / T)^2)`` with t counted in optimizer steps.

Diagnostics (not losses): ``l0`` (non-zeros per row) and ``mean_pairwise_cosine`` (how alike the
rows of a batch are; 1 when every text gets the same vector up to scale).
"""
from __future__ import annotations

import torch


def flops(w: torch.Tensor) -> torch.Tensor:
    """FLOPS regulariser of one side: squared mean absolute activation, summed over terms."""
    return w.abs().mean(dim=0).pow(2).sum()


def joint_flops(q: torch.Tensor, d: torch.Tensor) -> torch.Tensor:
    """Joint FLOPS: expected query-document term overlap cost, one λ for both sides."""
    return (q.abs().mean(dim=0) * d.abs().mean(dim=0)).sum()


def lambda_at(step: int, lam: float, warmup_steps: int) -> float:
    """Quadratic ramp ``lam * min(1, (step / T)^2)``; ``T <= 0`` means no ramp."""
    if warmup_steps <= 0:
        return float(lam)
    return float(lam) * min(1.0, (step / warmup_steps) ** 2)


def l0(w: torch.Tensor) -> torch.Tensor:
    """Mean number of non-zero entries per row."""
    return (w > 0).sum(dim=-1).float().mean()


def mean_pairwise_cosine(w: torch.Tensor) -> torch.Tensor:
    """Mean cosine similarity over pairs of distinct rows; a zero row has cosine 0 with any row.

    With unit rows ``u_i`` (zero rows stay zero), ``|sum_i u_i|^2 = sum_i |u_i|^2 + sum_{i != j}
    u_i . u_j``, so the mean over the N(N-1) ordered pairs costs O(N·|V|), not O(N²·|V|).
    NaN for fewer than two rows.
    """
    n = w.shape[0]
    if n < 2:
        return torch.tensor(float("nan"), device=w.device)
    w = w.detach().float()
    norms = w.norm(dim=1, keepdim=True)
    u = w / norms.clamp_min(torch.finfo(w.dtype).tiny)
    total = u.sum(dim=0).pow(2).sum() - u.pow(2).sum()
    return total / (n * (n - 1))
