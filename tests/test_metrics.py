"""FLOPS cost, posting statistics, pruning and effectiveness on hand-worked matrices."""
import numpy as np
import pytest
import scipy.sparse as sp
import torch

from splade_exp.metrics import evaluate_run, flops_cost, mean_l0, posting_stats, retrieve
from splade_exp.sparse import check_prune_k, prune_csr, to_csr, topk_mask


def csr(rows):
    return sp.csr_matrix(np.array(rows, dtype=np.float32))


def test_flops_cost_hand_example():
    # docs: p_d = [1/2, 0, 1]; queries: p_q = [1, 1/2, 1/2] -> 1*1/2 + 1/2*0 + 1/2*1 = 1.0
    d = csr([[1, 0, 2], [0, 0, 3]])
    q = csr([[1, 1, 0], [2, 0, 5]])
    assert flops_cost(q, d) == pytest.approx(1.0)


def test_flops_cost_counts_presence_not_weight():
    d = csr([[100, 0], [0.001, 0]])
    q = csr([[7, 0]])
    assert flops_cost(q, d) == pytest.approx(1.0)


def test_flops_cost_rejects_mismatched_vocabularies():
    with pytest.raises(ValueError, match="vocabularies differ"):
        flops_cost(csr([[1, 0]]), csr([[1, 0, 0]]))


def test_posting_stats_and_l0():
    # postings per term: [2, 0, 1, 3] -> active [2, 1, 3]: mean 2, max 3, var 2/3
    d = csr([[1, 0, 1, 1], [1, 0, 0, 1], [0, 0, 0, 1]])
    stats = posting_stats(d)
    assert stats["posting_mean"] == pytest.approx(2.0)
    assert stats["posting_max"] == 3
    assert stats["posting_var"] == pytest.approx(2 / 3)
    assert stats["active_terms"] == 3
    assert mean_l0(d) == pytest.approx(2.0)


def test_prune_keeps_top_k_by_weight_and_keeps_weights():
    m = csr([[0.1, 0.9, 0.5, 0.7], [0.3, 0, 0, 0]])
    p = prune_csr(m, 2).toarray()
    np.testing.assert_allclose(p, [[0, 0.9, 0, 0.7], [0.3, 0, 0, 0]], rtol=0, atol=1e-7)
    np.testing.assert_allclose(prune_csr(m, 0).toarray(), m.toarray())


def test_prune_ties_break_on_lower_term_id():
    p = prune_csr(csr([[0.5, 0.5, 0.5]]), 2).toarray()
    np.testing.assert_allclose(p, [[0.5, 0.5, 0]])


@pytest.mark.parametrize("bad", [-1, 2.5, "5", True])
def test_prune_budget_must_be_non_negative_integer(bad):
    with pytest.raises(ValueError, match="non-negative integer"):
        check_prune_k(bad, "prune.grid[0][0] (qk)")


def test_pruning_never_raises_flops():
    d = sp.random(50, 40, density=0.3, random_state=1, format="csr", dtype=np.float32)
    q = sp.random(10, 40, density=0.3, random_state=2, format="csr", dtype=np.float32)
    costs = [flops_cost(prune_csr(q, qk), prune_csr(d, dk)) for qk, dk in [(0, 0), (7, 20), (5, 20), (5, 10)]]
    assert costs == sorted(costs, reverse=True) and costs[0] > costs[-1]


def test_topk_mask_keeps_k_and_gradient_flows_only_to_kept():
    w = torch.tensor([[0.1, 0.9, 0.5, 0.7]], requires_grad=True)
    out = topk_mask(w, 2)
    assert torch.equal(out.detach(), torch.tensor([[0.0, 0.9, 0.0, 0.7]]))
    out.sum().backward()
    assert w.grad.tolist() == [[0.0, 1.0, 0.0, 1.0]]
    assert topk_mask(w, 0) is w


def test_retrieve_and_evaluate_by_hand():
    # vocab of 3 terms; q1 matches d1 (score 2) above d0 (score 1); q2 matches nothing.
    docs = csr([[1, 0, 0], [2, 1, 0]])
    queries = csr([[1, 0, 0], [0, 0, 1]])
    run = retrieve(queries, docs, ["q1", "q2"], ["d0", "d1"], k=10)
    assert run["q1"] == {"d1": 2.0, "d0": 1.0}
    assert run["q2"] == {}
    # q1's relevant doc d0 is at rank 2 -> RR 0.5; q2 retrieves nothing -> 0. Mean 0.25.
    m = evaluate_run({"q1": {"d0": 1}, "q2": {"d1": 1}}, run)
    assert m["mrr@10"] == pytest.approx(0.25)
    assert m["recall@10"] == pytest.approx(0.5)
    # nDCG@10 of q1: (1/log2(3)) / 1 = 0.6309; q2: 0 -> mean 0.3155
    assert m["ndcg@10"] == pytest.approx(0.5 / np.log2(3))


def test_to_csr_round_trip():
    w = torch.tensor([[0.0, 1.5], [2.0, 0.0]])
    np.testing.assert_allclose(to_csr(w).toarray(), w.numpy())
