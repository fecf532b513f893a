"""Sparsity regularisers on batches of pooled term-weight vectors (rows = examples).

Formulas (pure functions, tested against hand numbers):

- ``flops(W) = sum_j (mean_i |w_ij|)^2``  (Paria et al. 2020; SPLADE applies it per side).
- ``joint_flops(Q, D) = sum_j mean_q(|w_j|) * mean_d(|w_j|)``  (ESPLADE; nothing is squared).
- ``l1(W) = mean_i sum_j |w_ij|``.

Regularisers as configured objects (``loss.regularizers`` in ``conf/loss/*.yaml``, built by
``hydra.utils.instantiate``): :class:`FlopsPerSide`, :class:`JointFlops`, :class:`L1`. Each is an
``nn.Module`` whose ``forward`` takes the step's :class:`~splade_exp.losses.LossBatch` and returns
``{"loss": the weighted penalty, **terms to log}``; its weight follows a λ schedule object
(:class:`QuadraticRamp`: ``λ(t) = λ·min(1, (t/T)²)``, t in optimizer steps). They see the
*gathered* vectors (``batch.q_all``, ``batch.d_all``), so under data parallelism every rank computes
the same global-batch value (``stages/splade.py``).

Diagnostics (not losses): ``l0`` (non-zeros per row) and ``mean_pairwise_cosine`` (how alike the
rows of a batch are; 1 when every text gets the same vector up to scale).
"""
from __future__ import annotations

from typing import Callable

import torch
from torch import nn

from splade_exp.losses import LossBatch


def flops(w: torch.Tensor) -> torch.Tensor:
    """FLOPS regulariser of one side: squared mean absolute activation, summed over terms."""
    return w.abs().mean(dim=0).pow(2).sum()


def joint_flops(q: torch.Tensor, d: torch.Tensor) -> torch.Tensor:
    """Joint FLOPS: expected query-document term overlap cost, one λ for both sides."""
    return (q.abs().mean(dim=0) * d.abs().mean(dim=0)).sum()


def l1(w: torch.Tensor) -> torch.Tensor:
    """Mean L1 norm of the rows."""
    return w.abs().sum(dim=-1).mean()


# --------------------------------------------------------------------------- λ schedules
class QuadraticRamp:
    """The factor of ``λ(t) = λ·min(1, (t/T)²)``: 0 at t = 0, 1 from t = T on; ``T <= 0``: always 1.

    t counts optimizer steps (``global_step``), so a resumed run continues the ramp where it stopped
    and gradient accumulation does not stretch it. The regulariser multiplies its λ by the factor.
    """

    def __init__(self, warmup_steps: int) -> None:
        self.warmup_steps = int(warmup_steps)

    def __call__(self, step: int) -> float:
        if self.warmup_steps <= 0:
            return 1.0
        return min(1.0, (step / self.warmup_steps) ** 2)

    def __repr__(self) -> str:
        return f"QuadraticRamp(warmup_steps={self.warmup_steps})"


class Constant:
    """No schedule: the factor is 1 at every step."""

    def __call__(self, step: int) -> float:
        return 1.0

    def __repr__(self) -> str:
        return "Constant()"


Schedule = Callable[[int], float]


# --------------------------------------------------------------------------- regularisers
class PerSide(nn.Module):
    """A regulariser with one λ per side, both ramped by one schedule: :meth:`lambdas` gives
    ``(λ_q(t), λ_d(t))`` at the batch's step."""

    def __init__(self, lambda_q: float, lambda_d: float, schedule: Schedule | None = None) -> None:
        super().__init__()
        self.lambda_q, self.lambda_d, self.schedule = float(lambda_q), float(lambda_d), schedule or Constant()

    def lambdas(self, step: int) -> tuple[float, float]:
        ramp = self.schedule(step)
        return self.lambda_q * ramp, self.lambda_d * ramp


class FlopsPerSide(PerSide):
    """SPLADE's ``λ_q(t)·FLOPS(Q) + λ_d(t)·FLOPS(D)`` on the global batch (D = positives + negatives).

    Logs ``lambda_q``, ``lambda_d`` (the side FLOPS themselves are logged for every run as
    ``flops_q``, ``flops_d``).
    """

    def forward(self, batch: LossBatch) -> dict[str, torch.Tensor | float]:
        lam_q, lam_d = self.lambdas(batch.step)
        return {"loss": lam_q * flops(batch.q_all) + lam_d * flops(batch.d_all), "lambda_q": lam_q, "lambda_d": lam_d}


JOINT_DOCS = ("all", "positives")


class JointFlops(nn.Module):
    """ESPLADE's ``λ(t)·JFLOPS(Q, D)``, one λ for both sides (METHOD §2).

    ``docs``: which documents form D, ``all`` (positives + negatives, the default) or ``positives``
    (METHOD leaves it open). JFLOPS can be lowered by pushing query and document supports apart;
    both sides' L0 are logged for every run. Logs ``jflops`` and its λ as ``lambda_q`` and
    ``lambda_d`` (the weight each side gets, as :class:`FlopsPerSide` logs them).
    """

    def __init__(self, lambda_joint: float, docs: str = "all", schedule: Schedule | None = None) -> None:
        super().__init__()
        if docs not in JOINT_DOCS:
            raise ValueError(f"loss.joint_docs (JointFlops docs) must be one of {JOINT_DOCS}, got {docs!r}")
        self.lambda_joint, self.docs, self.schedule = float(lambda_joint), docs, schedule or Constant()

    def forward(self, batch: LossBatch) -> dict[str, torch.Tensor | float]:
        lam = self.lambda_joint * self.schedule(batch.step)
        d = batch.d_all if self.docs == "all" else batch.positives_all()
        jf = joint_flops(batch.q_all, d)
        return {"loss": lam * jf, "jflops": jf, "lambda_q": lam, "lambda_d": lam}


class L1(PerSide):
    """``λ_q(t)·L1(Q) + λ_d(t)·L1(D)``, the mean L1 norm per side (SparTerm, SPLADE v1's ablation).

    Unlike FLOPS it does not favour spreading mass over terms: it shrinks every weight alike.
    Logs ``l1_q``, ``l1_d``, ``lambda_l1_q``, ``lambda_l1_d``.
    """

    def forward(self, batch: LossBatch) -> dict[str, torch.Tensor | float]:
        lam_q, lam_d = self.lambdas(batch.step)
        l1_q, l1_d = l1(batch.q_all), l1(batch.d_all)
        return {"loss": lam_q * l1_q + lam_d * l1_d, "l1_q": l1_q, "l1_d": l1_d,
                "lambda_l1_q": lam_q, "lambda_l1_d": lam_d}


# --------------------------------------------------------------------------- diagnostics
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
