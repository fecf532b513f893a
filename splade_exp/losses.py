"""Ranking losses on pooled sparse vectors. Scores are plain dot products ``s(q, d) = q·d``.

A ranking loss is a small ``nn.Module`` built from ``loss.ranking`` (``conf/loss/*.yaml``) by
``hydra.utils.instantiate``. Its ``forward`` takes the step's :class:`LossBatch` and returns a
scalar tensor, or a dict with the scalar under ``"loss"`` and further terms to log (as
``train/<name>``). ``SpladeModule`` calls it without knowing which loss it is, so a new loss is one
class here (or anywhere importable) and one YAML file naming it.

- :class:`InBatchCrossEntropy`: ``-log softmax_d s(q, d)`` at the query's positive, over every
  document of the global batch (SPLADE's contrastive loss; METHOD §2).
- :class:`MarginMSE`: ``mean over (q, d+, d-) of ((s(q,d+) - s(q,d-)) - (t(q,d+) - t(q,d-)))²``
  against teacher scores t (Hofstätter et al. 2020; SPLADE++).
- :class:`KLDistillation`: ``KL(softmax(t/τ) || softmax(s/τ))`` over the query's candidate list
  ``{d+, d-_1..d-_n}``, averaged over queries.
- :class:`WeightedSum`: ``Σ_k w_k · loss_k``, e.g. in-batch CE + a distillation loss by a weight.

Under data parallelism a ranking loss is a mean over this rank's queries (``batch.q``); DDP's
gradient average then makes it the mean over the global batch (``stages/splade.py``). Losses hold
no parameters: the optimiser covers the encoder only.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Mapping

import torch
import torch.nn.functional as F
from torch import nn


@dataclass
class LossBatch:
    """What a loss or a regulariser sees of one training step, on one rank.

    Attributes:
        q: (Nq, V) this rank's queries.
        d: (Nd, V) this rank's documents, laid out ``[positives of the Nq queries | hard negatives,
            query-major]``: query i's positive is row i, its negatives rows ``Nq + i·n .. Nq + (i+1)·n``.
        q_all, d_all: every rank's queries / documents, gathered with gradients (rank-major); ``q``
            and ``d`` themselves in one process.
        pos_index: (Nq,) the row of each local query's positive in ``d_all``.
        doc_keys: (rows of ``d_all``,) a key per gathered document; equal keys = the same document.
        step: optimizer steps done so far (the λ schedules' t; resume- and accumulation-safe).
        teacher_scores: (Nq, 1 + n) a teacher's scores of each local query's ``[d+, d-_1..d-_n]``,
            or None when the training data carry none.
        gather: rows of every rank, with gradients (identity in one process).
    """

    q: torch.Tensor
    d: torch.Tensor
    q_all: torch.Tensor
    d_all: torch.Tensor
    pos_index: torch.Tensor
    doc_keys: torch.Tensor
    step: int = 0
    teacher_scores: torch.Tensor | None = None
    gather: Callable[[torch.Tensor], torch.Tensor] = lambda x: x

    @property
    def n_negatives(self) -> int:
        """Hard negatives per query in this batch (0 without any)."""
        nq, nd = self.q.shape[0], self.d.shape[0]
        if nq == 0 or nd % nq:
            raise ValueError(f"documents ({nd}) must be one positive + n negatives per query ({nq})")
        return nd // nq - 1

    def positives_all(self) -> torch.Tensor:
        """Every rank's positives (rows ``[0, Nq)`` of each rank's documents), gathered with gradients."""
        return self.gather(self.d.narrow(0, 0, self.q.shape[0]))

    def candidate_scores(self) -> torch.Tensor:
        """(Nq, 1 + n) student scores ``s(q_i, [d+, d-_1..d-_n])`` of each query's own candidates."""
        nq, n = self.q.shape[0], self.n_negatives
        # O(Nq·(1+n)·V): each query against its own documents only, not the Nq x Nd score matrix
        pos = (self.q * self.d[:nq]).sum(dim=1, keepdim=True)
        neg = torch.bmm(self.d[nq:].reshape(nq, n, self.d.shape[1]), self.q.unsqueeze(2)).squeeze(2)
        return torch.cat([pos, neg], dim=1)

    def teacher(self, loss: str) -> torch.Tensor:
        """The teacher scores, shaped like :meth:`candidate_scores`; a clear error when missing."""
        if self.teacher_scores is None:
            raise ValueError(f"{loss} needs teacher scores in the training batches: train on data that carry them "
                             "(data.distillation=<JSON lines> or data.teacher_scores=<qid pid score file>; for "
                             "data=synthetic also data.source.n_teacher_negatives>0; see the README's "
                             "'Distillation data')")
        if self.n_negatives < 1:
            raise ValueError(f"{loss} compares a query's positive with its hard negatives: set data.num_negatives>0")
        expected = (self.q.shape[0], 1 + self.n_negatives)
        if tuple(self.teacher_scores.shape) != expected:
            raise ValueError(f"teacher_scores has shape {tuple(self.teacher_scores.shape)}, expected {expected} "
                             "(queries x [positive, negatives])")
        return self.teacher_scores


def as_terms(out: torch.Tensor | Mapping[str, torch.Tensor], owner: object) -> dict[str, torch.Tensor]:
    """A loss's return value as ``{"loss": scalar, **terms to log}``."""
    if isinstance(out, torch.Tensor):
        return {"loss": out}
    if isinstance(out, Mapping) and "loss" in out:
        return dict(out)
    raise TypeError(f"{type(owner).__name__} returned {type(out).__name__}: a loss returns a scalar tensor or a "
                    "dict with the scalar under 'loss'")


def in_batch_cross_entropy(q: torch.Tensor, d: torch.Tensor, positive_index: torch.Tensor,
                           doc_keys: torch.Tensor | None = None) -> torch.Tensor:
    """Mean over queries of ``-log softmax_d s(q, d)`` at the query's positive.

    ``q`` (Nq, V) queries; ``d`` (Nd, V) every document of the (global) batch: positives of all
    queries and any hard negatives; ``positive_index`` (Nq,) the row of each query's positive in
    ``d``. All other rows act as negatives for the query, except, given ``doc_keys`` (Nd,), copies
    of the query's own positive elsewhere in the batch (same key): those are masked out, not
    pushed down.
    """
    scores = q @ d.T
    if doc_keys is not None:
        dup = doc_keys.unsqueeze(0) == doc_keys[positive_index].unsqueeze(1)
        dup[torch.arange(len(positive_index), device=dup.device), positive_index] = False
        scores = scores.masked_fill(dup, float("-inf"))
    return F.cross_entropy(scores, positive_index)


class InBatchCrossEntropy(nn.Module):
    """In-batch negatives cross-entropy (METHOD §2): this rank's queries against every document of
    the global batch (all ranks' positives and hard negatives), copies of a query's positive masked.
    """

    def forward(self, batch: LossBatch) -> torch.Tensor:
        return in_batch_cross_entropy(batch.q, batch.d_all, batch.pos_index, batch.doc_keys)


class MarginMSE(nn.Module):
    """MarginMSE distillation (Hofstätter et al. 2020, arXiv 2010.02666; SPLADE++):

        ``L = mean over (q, d+, d-) of ((s(q,d+) - s(q,d-)) - (t(q,d+) - t(q,d-)))²``

    over each query's positive and each of its n hard negatives (Nq·n triples), with student
    scores ``s = q·d`` and teacher scores ``t`` (``batch.teacher_scores``). Only margins are matched,
    so the student's scores may sit at any offset from the teacher's, but not at another scale:
    the λ's of the regulariser must suit the squared margins of this teacher (METHOD §8: 0.5 / 0.4
    with MS MARCO cross-encoder scores).
    """

    needs_teacher = True  # the preflight refuses it on data without teacher scores (checks.py)

    def forward(self, batch: LossBatch) -> torch.Tensor:
        s = batch.candidate_scores()                   # (Nq, 1 + n): s(q, d+), s(q, d-_1..d-_n)
        t = batch.teacher("MarginMSE").to(s.dtype)     # the teacher's scores of the same documents
        return ((s[:, :1] - s[:, 1:]) - (t[:, :1] - t[:, 1:])).pow(2).mean()


class KLDistillation(nn.Module):
    """KL distillation over each query's candidate list ``{d+, d-_1..d-_n}`` (METHOD §2):

        ``L = mean_q Σ_c p_t(c) (log p_t(c) - log p_s(c))``,  ``p_t = softmax(t/τ)``, ``p_s = softmax(s/τ)``

    i.e. ``KL(p_t || p_s)`` averaged over queries. ``temperature`` τ (default 1) divides both score
    lists; the result is not multiplied by τ² (so at τ ≠ 1 the gradient scale changes with τ).
    """

    needs_teacher = True

    def __init__(self, temperature: float = 1.0) -> None:
        super().__init__()
        if not temperature > 0:
            raise ValueError(f"temperature must be > 0, got {temperature!r}")
        self.temperature = float(temperature)

    def forward(self, batch: LossBatch) -> torch.Tensor:
        s = batch.candidate_scores()
        t = batch.teacher("KLDistillation").to(s.dtype)
        log_p_s = F.log_softmax(s / self.temperature, dim=1)
        log_p_t = F.log_softmax(t / self.temperature, dim=1)
        return F.kl_div(log_p_s, log_p_t, reduction="batchmean", log_target=True)

    def extra_repr(self) -> str:
        return f"temperature={self.temperature}"


class WeightedSum(nn.Module):
    """``Σ_k weights[k] · losses[k](batch)``; each term is also logged under its key (``train/<key>``).

    E.g. MarginMSE + 0.1 · in-batch CE: ``losses={margin_mse: MarginMSE(), ce: InBatchCrossEntropy()}``,
    ``weights={margin_mse: 1.0, ce: 0.1}`` (``conf/loss/margin_mse_ce.yaml``). Terms are summed in
    the order of ``losses``.
    """

    def __init__(self, losses: Mapping[str, nn.Module], weights: Mapping[str, float]) -> None:
        super().__init__()
        if not losses:
            raise ValueError("WeightedSum needs at least one loss")
        if set(losses) != set(weights):
            raise ValueError(f"WeightedSum: weights {sorted(weights)} must name exactly the losses {sorted(losses)}")
        self.losses = nn.ModuleDict(dict(losses))
        self.weights = {k: float(weights[k]) for k in losses}

    def forward(self, batch: LossBatch) -> dict[str, torch.Tensor]:
        terms: dict[str, torch.Tensor] = {}
        total = None
        for name, loss in self.losses.items():
            out = as_terms(loss(batch), loss)
            value = out.pop("loss")
            for key, v in [(name, value), *out.items()]:
                if key in terms:
                    raise ValueError(f"WeightedSum: two terms are named {key!r}; rename one of the losses")
                terms[key] = v
            weighted = self.weights[name] * value
            total = weighted if total is None else total + weighted
        return {"loss": total, **terms}
