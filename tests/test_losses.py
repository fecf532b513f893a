"""Ranking losses and regulariser objects against numbers worked out by hand."""
import math

import pytest
import torch
from torch import nn

from splade_exp.losses import (InBatchCrossEntropy, KLDistillation, LossBatch, MarginMSE, WeightedSum,
                               in_batch_cross_entropy)
from splade_exp.regularizers import L1, FlopsPerSide, JointFlops, QuadraticRamp

T = torch.tensor


def batch(q, d, pos=None, keys=None, teacher=None, step=0) -> LossBatch:
    q, d = T(q), T(d)
    pos = torch.arange(len(q)) if pos is None else T(pos)
    keys = torch.arange(len(d)) if keys is None else T(keys)
    return LossBatch(q=q, d=d, q_all=q, d_all=d, pos_index=pos, doc_keys=keys, step=step,
                     teacher_scores=None if teacher is None else T(teacher))


# --------------------------------------------------------------------------- in-batch CE
# q0 = (1, 0), q1 = (0, 1); documents (2, 0) key 10, (0, 1) key 11, (2, 0) key 10 again (a copy of
# q0's positive, e.g. drawn as another query's negative). Scores: q0 -> [2, 0, 2], q1 -> [0, 1, 0].
CE_Q, CE_D, CE_KEYS = [[1.0, 0.0], [0.0, 1.0]], [[2.0, 0.0], [0.0, 1.0], [2.0, 0.0]], [10, 11, 10]


def test_in_batch_cross_entropy_masks_copies_of_the_positive():
    # q0: the copy (row 2) is masked -> -log(e^2 / (e^2 + e^0)) = log(1 + e^-2) = 0.126928
    # q1: no copy of its positive -> -log(e^1 / (e^0 + e^1 + e^0)) = log(1 + 2 e^-1) = 0.551445
    # mean = 0.339186
    loss = InBatchCrossEntropy()(batch(CE_Q, CE_D, keys=CE_KEYS))
    assert loss.item() == pytest.approx(0.339186, abs=1e-6)


def test_in_batch_cross_entropy_without_keys_keeps_the_copy_as_a_negative():
    # q0 then sees its positive's copy as a negative: log(2 + e^-2) = 0.758624; mean with q1 = 0.655034
    loss = in_batch_cross_entropy(T(CE_Q), T(CE_D), torch.arange(2))
    assert loss.item() == pytest.approx(0.655034, abs=1e-6)


# --------------------------------------------------------------------------- distillation
# 2 queries, 2 hard negatives each; documents [d+_0, d+_1, d-_00, d-_01, d-_10, d-_11].
MQ = [[1.0, 2.0, 0.0], [0.0, 0.0, 1.0]]
MD = [[1.0, 1.0, 0.0], [0.0, 0.0, 2.0],   # positives: s(q0, d+_0) = 1 + 2 = 3, s(q1, d+_1) = 2
      [0.0, 1.0, 1.0], [0.0, 0.0, 5.0],   # q0's negatives: s = 2, 0
      [1.0, 0.0, 0.0], [0.0, 0.0, 3.0]]   # q1's negatives: s = 0, 3
MT = [[5.0, 4.0, 1.0], [2.0, 0.0, 1.0]]   # teacher scores of [d+, d-_1, d-_2]


def test_candidate_scores_follow_the_collator_layout():
    assert batch(MQ, MD).candidate_scores().tolist() == [[3.0, 2.0, 0.0], [2.0, 0.0, 3.0]]


def test_margin_mse_hand_example():
    # q0: student margins s+ - s- = 3-2 = 1, 3-0 = 3; teacher 5-4 = 1, 5-1 = 4 -> errors 0, -1
    # q1: student 2-0 = 2, 2-3 = -1; teacher 2-0 = 2, 2-1 = 1 -> errors 0, -2
    # mean of squares over the 4 (q, d+, d-) triples: (0 + 1 + 0 + 4) / 4 = 1.25
    assert MarginMSE()(batch(MQ, MD, teacher=MT)).item() == pytest.approx(1.25)


def test_margin_mse_gradient_by_hand():
    # L = 1/4 sum_ij e_ij^2, e_ij = (s+_i - s-_ij) - (t+_i - t-_ij); q0's errors are (0, -1), so
    # dL/ds+_0 = 1/4 · 2 · (0 - 1) = -0.5 and dL/ds-_01 = 1/4 · 2 · (-1) · (-1) = 0.5; since s = q·d,
    # dL/dd+_0 = -0.5 · q0 = (-0.5, -1, 0) and dL/dd-_01 (row 3) = 0.5 · q0 = (0.5, 1, 0)
    b = batch(MQ, MD, teacher=MT)
    b.d.requires_grad_(True)
    MarginMSE()(b).backward()
    assert b.d.grad[0].tolist() == [-0.5, -1.0, 0.0] and b.d.grad[3].tolist() == [0.5, 1.0, 0.0]
    assert b.d.grad[2].tolist() == [0.0, 0.0, 0.0]  # q0's first negative: error 0


def test_margin_mse_ignores_a_teacher_offset_per_query():
    shifted = [[s + 100.0 for s in MT[0]], [s - 7.0 for s in MT[1]]]
    assert MarginMSE()(batch(MQ, MD, teacher=shifted)).item() == pytest.approx(1.25)


# q0 = (1, 0, 0) scores its positive (1, 0, 0) and its negative (1, 5, 0) both 1 -> p_s = (1/2, 1/2);
# teacher (ln 3, 0) -> p_t = (3/4, 1/4). q1 scores both its candidates 0 and the teacher both 7: p_t = p_s.
KQ = [[1.0, 0.0, 0.0], [0.0, 0.0, 1.0]]
KD = [[1.0, 0.0, 0.0], [1.0, 0.0, 0.0], [1.0, 5.0, 0.0], [0.0, 1.0, 0.0]]
KT = [[math.log(3.0), 0.0], [7.0, 7.0]]


def test_kl_hand_example():
    # KL(p_t || p_s) for q0 = 3/4 ln((3/4)/(1/2)) + 1/4 ln((1/4)/(1/2)) = 0.75·0.405465 - 0.25·0.693147
    # = 0.130812; q1: 0. Mean over the 2 queries: 0.065406. (The other direction, KL(p_s || p_t),
    # would give 0.143841 / 2.)
    assert KLDistillation()(batch(KQ, KD, teacher=KT)).item() == pytest.approx(0.065406, abs=1e-6)


def test_kl_temperature_divides_both_score_lists():
    # tau = 2 with teacher (2 ln 3, 0): t / tau = (ln 3, 0) as above, s / tau = (1/2, 1/2): equal again
    teacher = [[2 * math.log(3.0), 0.0], [7.0, 7.0]]
    assert KLDistillation(temperature=2.0)(batch(KQ, KD, teacher=teacher)).item() == pytest.approx(0.065406, abs=1e-6)
    with pytest.raises(ValueError, match="temperature"):
        KLDistillation(temperature=0.0)


def test_distillation_without_teacher_scores_or_negatives_says_what_to_set():
    with pytest.raises(ValueError, match="data.distillation"):
        MarginMSE()(batch(MQ, MD))
    with pytest.raises(ValueError, match="data.num_negatives"):  # positives only: nothing to compare
        KLDistillation()(batch(KQ, KD[:2], teacher=[[1.0], [2.0]]))


class Const(nn.Module):
    def __init__(self, value: float) -> None:
        super().__init__()
        self.value = value

    def forward(self, batch):
        return torch.tensor(self.value)


def test_weighted_sum_adds_weighted_terms_and_logs_each():
    # 1.0 · 1.25 + 2.0 · 0.5 = 2.25
    out = WeightedSum({"a": Const(1.25), "b": Const(0.5)}, {"a": 1.0, "b": 2.0})(batch(MQ, MD))
    assert out["loss"].item() == pytest.approx(2.25)
    assert {k: v.item() for k, v in out.items() if k != "loss"} == {"a": 1.25, "b": 0.5}
    with pytest.raises(ValueError, match="weights"):
        WeightedSum({"a": Const(1.0)}, {"b": 1.0})


# --------------------------------------------------------------------------- regulariser objects
RQ = [[1.0, 0.0, 2.0], [3.0, 0.0, 0.0]]                      # mean |q| = (2, 0, 1): FLOPS = 4 + 1 = 5
RD = [[2.0, 0.0, 1.0], [0.0, 0.0, 3.0],                      # positives: mean |d| = (1, 0, 2)
      [0.0, 4.0, 0.0], [0.0, 4.0, 0.0]]                      # negatives; all four: mean |d| = (0.5, 2, 1)


def test_flops_per_side_follows_its_ramp():
    # step 5 of T = 10: ramp (5/10)^2 = 0.25 -> lambda_q 0.025, lambda_d 0.05
    # FLOPS(D) over all four rows = 0.25 + 4 + 1 = 5.25 -> 0.025·5 + 0.05·5.25 = 0.125 + 0.2625 = 0.3875
    out = FlopsPerSide(0.1, 0.2, QuadraticRamp(10))(batch(RQ, RD, step=5))
    assert out["loss"].item() == pytest.approx(0.3875)
    assert (out["lambda_q"], out["lambda_d"]) == pytest.approx((0.025, 0.05))


def test_joint_flops_documents_all_or_positives():
    # all: sum_j mean_q · mean_d = 2·0.5 + 0·2 + 1·1 = 2; positives: 2·1 + 0 + 1·2 = 4; lambda 0.1, ramp over
    all_docs = JointFlops(0.1, "all", QuadraticRamp(10))(batch(RQ, RD, step=20))
    positives = JointFlops(0.1, "positives", QuadraticRamp(10))(batch(RQ, RD, step=20))
    assert (all_docs["jflops"].item(), all_docs["loss"].item()) == pytest.approx((2.0, 0.2))
    assert (positives["jflops"].item(), positives["loss"].item()) == pytest.approx((4.0, 0.4))
    assert all_docs["lambda_q"] == all_docs["lambda_d"] == pytest.approx(0.1)
    with pytest.raises(ValueError, match="loss.joint_docs"):
        JointFlops(0.1, "negatives")


def test_l1_hand_example():
    # L1(Q): row sums 3, 3 -> 3; L1(D): rows 3, 3, 4, 4 -> 3.5; 1·3 + 0.5·3.5 = 4.75 (no schedule)
    out = L1(1.0, 0.5)(batch(RQ, RD))
    assert (out["l1_q"].item(), out["l1_d"].item(), out["loss"].item()) == pytest.approx((3.0, 3.5, 4.75))
