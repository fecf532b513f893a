"""Collapse detection: a diverged run becomes a data point instead of a dead sweep.

A non-finite training loss, or pooled vectors that are all-zero or all-active (L0 of queries or
documents at 0, or at >= ``active_fraction`` of the vocabulary) for ``patience`` consecutive
checks, stops training; the orchestrator then records the run as ``diverged`` with its step.
"""
from __future__ import annotations

import logging
import math

import lightning as L
import torch

log = logging.getLogger(__name__)


class CollapseDetector(L.Callback):
    def __init__(self, vocab_size: int, patience: int = 20, check_every: int = 1, active_fraction: float = 0.99,
                 inject_nan_at_step: int | None = None) -> None:
        self.vocab_size = vocab_size
        self.patience = patience
        self.check_every = check_every
        self.active_fraction = active_fraction
        self.inject_nan_at_step = inject_nan_at_step
        self.streak = 0
        self.diverged_step: int | None = None
        self.reason = ""
        self._batch_step = 0

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        self._batch_step = trainer.global_step
        # Fault injection for tests and drills: poison the head so this step's loss is NaN.
        if self.inject_nan_at_step is not None and trainer.global_step == self.inject_nan_at_step:
            with torch.no_grad():
                pl_module.encoder.decoder.weight.fill_(float("nan"))

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        step = self._batch_step  # optimizer steps taken before this batch
        loss = outputs["loss"] if isinstance(outputs, dict) else outputs
        bad = loss is not None and not math.isfinite(float(loss))
        # every rank must stop at the same step (the loss is per rank; the L0s below are global)
        if trainer.strategy.reduce_boolean_decision(bad, all=False):
            return self._stop(trainer, step, "non-finite loss")
        if step % self.check_every:
            return
        m = trainer.callback_metrics
        l0s = [float(m[k]) for k in ("train/l0_q", "train/l0_d") if k in m]
        degenerate = any(v == 0 or v >= self.active_fraction * self.vocab_size for v in l0s)
        self.streak = self.streak + 1 if degenerate else 0
        if self.streak >= self.patience:
            kind = "all-zero" if any(v == 0 for v in l0s) else "all-active"
            self._stop(trainer, step, f"{kind} representations for {self.streak} checks")

    def _stop(self, trainer, step: int, reason: str) -> None:
        if self.diverged_step is None:
            self.diverged_step, self.reason = step, reason
            log.warning("run diverged at step %d: %s", step, reason)
        trainer.should_stop = True
