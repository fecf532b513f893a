"""The collapse detector's criteria, on logged metrics written by hand: each degenerate kind stops
training after ``patience`` consecutive checks, a healthy check resets the count, and a non-finite
loss stops at once."""
from __future__ import annotations

from types import SimpleNamespace

import torch

from splade_exp.stages.collapse import CollapseDetector

V = 1000
HEALTHY = {"train/l0_q": 12.0, "train/l0_d": 80.0, "train/cos_q": 0.2, "train/cos_d": 0.35}


class FakeStrategy:
    def reduce_boolean_decision(self, decision, all=True):
        return decision


def _run(detector, metrics_per_step, losses=None):
    """Feeds one logged-metrics dict per step; returns the trainer (``should_stop``)."""
    trainer = SimpleNamespace(global_step=0, strategy=FakeStrategy(), callback_metrics={}, should_stop=False)
    for step, metrics in enumerate(metrics_per_step):
        trainer.global_step = step
        detector.on_train_batch_start(trainer, None, None, step)
        trainer.callback_metrics = {k: torch.tensor(v) for k, v in metrics.items()}
        loss = torch.tensor(1.0 if losses is None else losses[step])
        detector.on_train_batch_end(trainer, None, {"loss": loss}, None, step)
        if trainer.should_stop:
            break
    return trainer


def test_each_kind_stops_after_patience_checks():
    cases = {
        "all-zero": {**HEALTHY, "train/l0_d": 0.0},
        "all-active": {**HEALTHY, "train/l0_q": 995.0},  # >= 0.99 * 1000
        "identical": {**HEALTHY, "train/cos_d": 0.995},
    }
    for kind, bad in cases.items():
        det = CollapseDetector(V, patience=3, identical_cosine=0.99)
        trainer = _run(det, [HEALTHY, bad, bad, bad, HEALTHY])
        assert trainer.should_stop, kind
        assert det.diverged_step == 3, kind  # the third consecutive degenerate check
        assert det.reason == f"{kind} representations for 3 checks"


def test_a_healthy_check_resets_the_count():
    bad = {**HEALTHY, "train/cos_q": 0.999}
    det = CollapseDetector(V, patience=3, identical_cosine=0.99)
    trainer = _run(det, [bad, bad, HEALTHY, bad, bad, HEALTHY, bad])
    assert not trainer.should_stop and det.diverged_step is None


def test_thresholds_are_inclusive_and_identical_can_be_switched_off():
    just = {**HEALTHY, "train/cos_d": 0.99, "train/l0_d": 989.0}  # cos at the threshold, L0 just below
    assert CollapseDetector(V, identical_cosine=0.99).degenerate(just) == "identical"
    assert CollapseDetector(V, identical_cosine=None).degenerate(just) is None
    assert CollapseDetector(V, identical_cosine=0.995).degenerate(just) is None
    # NaN similarity (a one-row batch) is no evidence either way
    assert CollapseDetector(V).degenerate({**HEALTHY, "train/cos_q": float("nan")}) is None


def test_non_finite_loss_stops_at_once():
    det = CollapseDetector(V, patience=20)
    trainer = _run(det, [HEALTHY] * 5, losses=[1.0, 0.9, float("nan"), 0.8, 0.7])
    assert trainer.should_stop and det.diverged_step == 2 and det.reason == "non-finite loss"
