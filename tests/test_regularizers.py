"""Regularisers and the λ schedule against numbers worked out by hand."""
import pytest
import torch

from splade_exp.regularizers import QuadraticRamp, flops, joint_flops, l0, mean_pairwise_cosine


def test_flops_hand_example():
    # W = [[1, 0, 2], [3, 0, 0]] -> mean |w| per term = [2, 0, 1] -> 2^2 + 0 + 1^2 = 5
    w = torch.tensor([[1.0, 0.0, 2.0], [3.0, 0.0, 0.0]])
    assert flops(w).item() == pytest.approx(5.0)


def test_flops_uses_absolute_values():
    # mean |w| = [1.5, 0.5] -> 2.25 + 0.25 = 2.5 (a signed mean would give 0.25 + 0.25)
    w = torch.tensor([[-1.0, 1.0], [2.0, 0.0]])
    assert flops(w).item() == pytest.approx(2.5)


def test_joint_flops_hand_example():
    # mean_q = [1, 2, 0]; D = [[2,0,1],[0,0,3]] -> mean_d = [1, 0, 2]; sum = 1*1 + 2*0 + 0*2 = 1
    q = torch.tensor([[1.0, 2.0, 0.0]])
    d = torch.tensor([[2.0, 0.0, 1.0], [0.0, 0.0, 3.0]])
    assert joint_flops(q, d).item() == pytest.approx(1.0)
    # nothing squared: doubling D doubles JFLOPS (FLOPS would quadruple)
    assert joint_flops(q, 2 * d).item() == pytest.approx(2.0)


def test_joint_flops_is_zero_for_disjoint_supports():
    q = torch.tensor([[1.0, 0.0]])
    d = torch.tensor([[0.0, 5.0]])
    assert joint_flops(q, d).item() == 0.0


def test_flops_gradient_by_hand():
    # d/dw_ij of sum_j (mean_i |w_ij|)^2 = 2 * mean_j / N * sign(w_ij); term 0: mean 2, N=2 -> 2
    w = torch.tensor([[1.0, 0.0, 2.0], [3.0, 0.0, 0.0]], requires_grad=True)
    flops(w).backward()
    assert w.grad[0, 0].item() == pytest.approx(2.0)
    assert w.grad[0, 2].item() == pytest.approx(1.0)


@pytest.mark.parametrize("step,expected", [(0, 0.0), (50, 0.25), (100, 1.0), (250, 1.0)])
def test_lambda_quadratic_ramp(step, expected):
    # lambda(t) = lam * min(1, (t/T)^2) with lam = 1, T = 100: t=50 -> 0.25
    assert 1.0 * QuadraticRamp(100)(step) == pytest.approx(expected)


def test_lambda_scales_with_lam_and_no_ramp():
    assert 3e-4 * QuadraticRamp(20)(10) == pytest.approx(3e-4 * 0.25)
    assert 0.5 * QuadraticRamp(0)(0) == 0.5


def test_l0_counts_positive_entries():
    w = torch.tensor([[0.0, 1.0, 2.0], [0.0, 0.0, 0.5]])
    assert l0(w).item() == pytest.approx(1.5)


def test_mean_pairwise_cosine_hand_example():
    # a = (1, 0), b = (1, 1), c = 0: cos(a, b) = 1/sqrt(2), a zero row has cosine 0 with both,
    # so the mean over the 3 pairs is 0.70711 / 3 = 0.23570
    w = torch.tensor([[1.0, 0.0], [1.0, 1.0], [0.0, 0.0]])
    assert mean_pairwise_cosine(w).item() == pytest.approx(0.2357023, abs=1e-6)


def test_mean_pairwise_cosine_extremes():
    same_up_to_scale = torch.tensor([[1.0, 2.0, 0.0], [2.0, 4.0, 0.0], [0.5, 1.0, 0.0]])
    assert mean_pairwise_cosine(same_up_to_scale).item() == pytest.approx(1.0, abs=1e-6)
    disjoint = torch.tensor([[3.0, 0.0, 0.0], [0.0, 0.1, 0.0], [0.0, 0.0, 7.0]])
    assert mean_pairwise_cosine(disjoint).item() == pytest.approx(0.0, abs=1e-7)
    assert torch.isnan(mean_pairwise_cosine(torch.ones(1, 4)))
