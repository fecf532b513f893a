"""Optimiser shared by the stages: AdamW with linear warm-up and linear decay to zero."""
from __future__ import annotations

import torch
from transformers import get_linear_schedule_with_warmup


def adamw_linear(module: torch.nn.Module, lr: float, weight_decay: float, warmup_steps: int, max_steps: int):
    decay, no_decay = [], []
    for name, p in module.named_parameters():
        if not p.requires_grad:
            continue
        (no_decay if p.ndim < 2 or "LayerNorm" in name or "norm" in name.lower() else decay).append(p)
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}], lr=lr
    )
    sched = get_linear_schedule_with_warmup(opt, warmup_steps, max(max_steps, warmup_steps + 1))
    return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}
