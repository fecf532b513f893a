"""MLM-head rescaling (P3): divide the vocabulary projection by k before SPLADE fine-tuning.

Backbones with a large MLM-head norm (ModernBERT, Ettin) produce huge initial logits, so
log1p(relu(.)) activates almost every term and training collapses; dividing the projection by a
constant k in 8-16 fixes it. The SpladeEncoder's decoder is always an untied copy, so scaling it
never touches the input embeddings (which would change the encoder itself).
"""
from __future__ import annotations

import torch

from splade_exp.models.encoder import SpladeEncoder


def mean_row_norm(weight: torch.Tensor) -> float:
    """Mean L2 norm of the decoder rows (one row per output term)."""
    return float(weight.detach().float().norm(dim=1).mean())


@torch.no_grad()
def scale_head(encoder: SpladeEncoder, k: float, scale_bias: bool = False) -> dict[str, float]:
    """Divide ``encoder.decoder.weight`` (and optionally its bias) by ``k``; report row norms."""
    if not k > 0:
        raise ValueError(f"head.k must be > 0, got {k}")
    before = mean_row_norm(encoder.decoder.weight)
    if k != 1:
        encoder.decoder.weight.div_(k)
        if scale_bias and encoder.decoder.bias is not None:
            encoder.decoder.bias.div_(k)
    return {"head.norm_before": before, "head.norm_after": mean_row_norm(encoder.decoder.weight)}


@torch.no_grad()
def inflate_head(encoder: SpladeEncoder, target_norm: float) -> None:
    """Rescale the decoder rows so their mean L2 norm is ``target_norm`` (simulates a
    large-norm backbone such as ModernBERT, whose head rows average about 2.55)."""
    encoder.decoder.weight.mul_(target_norm / max(mean_row_norm(encoder.decoder.weight), 1e-12))


@torch.no_grad()
def init_diagnostics(encoder: SpladeEncoder, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> dict[str, float]:
    """Logit standard deviation (over real tokens) and active dimensions of the pooled vectors
    at initialisation, on one batch of documents."""
    was_training = encoder.training
    encoder.eval()
    logits = encoder.logits(input_ids, attention_mask)
    real = attention_mask.bool()
    w = encoder(input_ids, attention_mask)
    encoder.train(was_training)
    return {
        "head.logit_std_init": float(logits[real].float().std()),
        "head.active_dims_step0": float((w > 0).sum(-1).float().mean()),
    }
