"""Collapse detection: a diverged run becomes a data point instead of a dead sweep.

A non-finite training loss stops training at once; degenerate pooled vectors do after
``patience`` consecutive checks: queries or documents that are

- all-zero: mean L0 at 0;
- all-active: mean L0 at >= ``active_fraction`` of the vocabulary;
- identical: every text of the batch gets (nearly) the same vector, the mean cosine similarity
  between two queries or two documents of the global batch at >= ``identical_cosine`` (None: not
  checked). This is the collapse onto the same few terms for every text, which neither L0 test
  sees.

The orchestrator then records the run as ``diverged`` with its step and the reason.
"""
from __future__ import annotations

import logging
import math

import lightning as L
import torch

log = logging.getLogger(__name__)


class CollapseDetector(L.Callback):
    def __init__(self, vocab_size: int, patience: int = 20, check_every: int = 1, active_fraction: float = 0.99,
                 identical_cosine: float | None = None, inject_nan_at_step: int | None = None) -> None:
        self.vocab_size = vocab_size
        self.identical_cosine = identical_cosine
        self.patience = patience
        self.check_every = check_every
        self.active_fraction = active_fraction
        self.inject_nan_at_step = inject_nan_at_step
        self.streak = 0
        self.diverged_step: int | None = None
        self.reason = ""
        self._batch_step = 0

    # The verdict and the streak travel in checkpoints: a resumed run counts the streak on, and a
    # diverged run restored from its final checkpoint stays diverged (and does not train on).
    def state_dict(self) -> dict:
        return {"streak": self.streak, "diverged_step": self.diverged_step, "reason": self.reason}

    def load_state_dict(self, state_dict: dict) -> None:
        self.streak = int(state_dict.get("streak", 0))
        self.diverged_step = state_dict.get("diverged_step")
        self.reason = state_dict.get("reason", "")

    def on_train_start(self, trainer, pl_module):
        if self.diverged_step is not None:
            trainer.should_stop = True

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
        kind = self.degenerate(trainer.callback_metrics)
        self.streak = self.streak + 1 if kind else 0
        if self.streak >= self.patience:
            self._stop(trainer, step, f"{kind} representations for {self.streak} checks")

    def degenerate(self, metrics) -> str | None:
        """``all-zero``, ``all-active``, ``identical`` or None, from this step's logged metrics."""
        l0s = [float(metrics[k]) for k in ("train/l0_q", "train/l0_d") if k in metrics]
        if any(v == 0 for v in l0s):
            return "all-zero"
        if any(v >= self.active_fraction * self.vocab_size for v in l0s):
            return "all-active"
        if self.identical_cosine is not None:
            cos = [float(metrics[k]) for k in ("train/cos_q", "train/cos_d") if k in metrics]
            if any(c >= self.identical_cosine for c in cos if math.isfinite(c)):
                return "identical"
        return None

    def _stop(self, trainer, step: int, reason: str) -> None:
        if self.diverged_step is None:
            self.diverged_step, self.reason = step, reason
            log.warning("run diverged at step %d: %s", step, reason)
        trainer.should_stop = True
