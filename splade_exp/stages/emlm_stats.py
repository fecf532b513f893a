"""EMLM logit statistics (METHOD §5; P2's appendix, definitions inferred) of a pretrained head.

Computed on held-out in-domain documents: a fixed random sample of the collection's documents
(``pretrain.stats_docs`` of them, drawn with ``random.Random(seed)`` from the documents in corpus
order), which :mod:`splade_exp.stages.pretrain` removes from the pretraining texts when the
pretraining corpus is ``in_domain``, so they are unseen whichever corpus is used and the same for
every configuration of a sweep.

For a document d with token logits ``z[i, u]`` (raw, before ``log1p(relu(.))``):
- ``z(d) = max_i z[i, u]`` over its non-padding positions ([CLS] and [SEP] included, as in pooling);
- ``doc-score-avg@k`` / ``doc-score-std@k``: mean / standard deviation of the k largest entries of
  ``z(d)``, averaged over documents, for k in {10, 100, all} (k capped at |V|);
- ``logit-score-std``: standard deviation of all token-level logits ``z[i, u]`` over every
  non-padding position of every document; ``logit-score-std-pooled``: of all entries of all ``z(d)``;
- ``non-neg-terms-avg`` / ``non-neg-terms-std``: mean / standard deviation over documents of
  ``#{u : z_u(d) >= 0}`` (the terms SPLADE would activate before training).
Every standard deviation is the population one (divide by the count). Documents are processed in
batches of ``batch_size`` through the head's ``pooling_impl``: with ``chunked`` (the default) only
one vocabulary chunk of a batch's token logits exists at a time (never B x L x |V|); the global
standard deviations are accumulated with Chan's pairwise mean/M2 update in float64.
"""
from __future__ import annotations

import torch

from splade_exp.models.encoder import SpladeEncoder
from splade_exp.models.pooling import max_logits

TOPK = (10, 100, None)  # None = all


class RunningMoments:
    """Count, mean and M2 of a stream of tensors (Chan et al.'s parallel update, float64)."""

    def __init__(self) -> None:
        self.n, self.mean, self.m2 = 0, 0.0, 0.0

    def add(self, x: torch.Tensor) -> None:
        x = x.detach().double().flatten()
        nb = x.numel()
        if nb == 0:
            return
        mb = float(x.mean())
        m2b = float(((x - mb) ** 2).sum())
        n = self.n + nb
        delta = mb - self.mean
        self.mean += delta * nb / n
        self.m2 += m2b + delta * delta * self.n * nb / n
        self.n = n

    @property
    def std(self) -> float:
        return (self.m2 / self.n) ** 0.5 if self.n else float("nan")


def _k_name(k: int | None) -> str:
    return "all" if k is None else str(k)


@torch.inference_mode()
def emlm_statistics(encoder: SpladeEncoder, tokenizer, texts: list[str], max_length: int,
                    batch_size: int = 16, device: str | torch.device = "cpu",
                    ks: tuple[int | None, ...] = TOPK) -> dict[str, float]:
    """The statistics above (keys without prefix) of ``encoder`` on ``texts``; ``ks`` are the k of
    ``doc-score-*@k`` (None = all)."""
    if not texts:
        raise ValueError("no documents to compute EMLM statistics on")
    was_training = encoder.training
    encoder.eval()
    tok_moments, pooled_moments = RunningMoments(), RunningMoments()
    top_avg = {k: 0.0 for k in ks}
    top_std = {k: 0.0 for k in ks}
    non_neg: list[torch.Tensor] = []
    for start in range(0, len(texts), batch_size):
        enc = tokenizer(texts[start:start + batch_size], truncation=True, max_length=max_length,
                        padding=True, return_tensors="pt")
        ids, mask = enc["input_ids"].to(device), enc["attention_mask"].to(device)
        dec = encoder.decoder
        # (B, |V|); with the chunked head only one vocabulary chunk of token logits exists at a time
        z = max_logits(encoder.features(ids, mask), dec.weight, dec.bias, mask, impl=encoder.pooling_impl,
                       chunk_size=encoder.chunk_size, token_logits=tok_moments.add).float()
        pooled_moments.add(z)
        ordered = z.sort(dim=-1, descending=True).values
        for k in ks:
            top = ordered[:, : (ordered.shape[1] if k is None else min(k, ordered.shape[1]))].double()
            top_avg[k] += float(top.mean(dim=1).sum())
            top_std[k] += float(top.std(dim=1, correction=0).sum())
        non_neg.append((z >= 0).sum(dim=1).double().cpu())
    encoder.train(was_training)
    n_docs = len(texts)
    counts = torch.cat(non_neg)
    stats = {}
    for k in ks:
        stats[f"doc-score-avg@{_k_name(k)}"] = top_avg[k] / n_docs
        stats[f"doc-score-std@{_k_name(k)}"] = top_std[k] / n_docs
    stats["logit-score-std"] = tok_moments.std
    stats["logit-score-std-pooled"] = pooled_moments.std
    stats["non-neg-terms-avg"] = float(counts.mean())
    stats["non-neg-terms-std"] = float(counts.std(correction=0))
    stats["docs"] = n_docs
    return stats
