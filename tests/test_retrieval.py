"""Scalable evaluation against the reference paths and hand-worked numbers: vectorised pruning
(ties, empty rows, rows shorter than k), exact top-k streamed over shards, the 64-bit index path,
index statistics accumulated per shard, per-query metrics and TREC files."""
from __future__ import annotations

import gzip

import numpy as np
import pytest
import scipy.sparse as sp

import splade_exp.retrieval as R
from splade_exp import metrics as M
from splade_exp.reference import prune_csr_loop, retrieve_dense
from splade_exp.runfiles import read_trec, write_trec
from splade_exp.sparse import prune_csr


def _random(rng, n, v, density, signs=False):
    dense = (rng.random((n, v)) < density) * rng.integers(1, 5, (n, v)) / 4  # multiples of 1/4: many ties
    if signs:
        dense *= np.where(rng.random((n, v)) < 0.2, -1, 1)
    dense[rng.random(n) < 0.2] = 0  # empty rows
    return sp.csr_matrix(dense.astype(np.float32))


def test_prune_by_hand_ties_go_to_the_lower_term_id():
    m = sp.csr_matrix(np.array([[0.5, 0.9, 0.5, 0.0, 0.5],   # 0.9, then ties at 0.5: terms 0 then 2
                                [0.0, 0.0, 0.0, 0.0, 0.0],   # empty row
                                [0.0, 0.3, 0.0, 0.0, 0.0]],  # shorter than k
                               dtype=np.float32))
    got = prune_csr(m, 2).toarray()
    np.testing.assert_array_equal(got, np.array([[0.5, 0.9, 0, 0, 0], [0, 0, 0, 0, 0], [0, 0.3, 0, 0, 0]], np.float32))


@pytest.mark.parametrize("seed", range(6))
def test_prune_equals_the_row_loop(seed):
    rng = np.random.default_rng(seed)
    m = _random(rng, int(rng.integers(1, 80)), int(rng.integers(1, 60)), rng.random(), signs=seed % 2 == 1)
    for k in (0, 1, 2, 3, 5, 8, 100):
        a, b = prune_csr(m, k), prune_csr_loop(m, k)
        assert a.shape == b.shape and np.array_equal(a.indptr, b.indptr)
        assert np.array_equal(a.indices, b.indices) and np.array_equal(a.data, b.data), k


def test_prune_of_unsorted_indices_leaves_the_input_alone():
    m = sp.csr_matrix((np.array([1.0, 3.0, 2.0], np.float32), np.array([4, 0, 2]), np.array([0, 3])), shape=(1, 5))
    before = m.indices.copy()
    assert prune_csr(m, 2).toarray().tolist() == [[3.0, 0.0, 2.0, 0.0, 0.0]]
    assert np.array_equal(m.indices, before)


def _same_ranking(a, b):
    """Equal modulo ties: the same scores in order, the same documents above the k-th score."""
    assert a.keys() == b.keys()
    for qid in a:
        sa, sb = sorted(a[qid].values(), reverse=True), sorted(b[qid].values(), reverse=True)
        assert sa == pytest.approx(sb, abs=1e-6), qid
        if sa:
            assert {d for d, s in a[qid].items() if s > sa[-1] + 1e-6} == {d for d, s in b[qid].items() if s > sa[-1] + 1e-6}


@pytest.mark.parametrize("shard_size", [7, 100, 10_000])
def test_streamed_retrieval_equals_the_dense_reference(shard_size):
    rng = np.random.default_rng(3)
    q, d = _random(rng, 40, 50, 0.15), _random(rng, 600, 50, 0.1)
    qids, dids = [f"q{i}" for i in range(40)], [f"d{i}" for i in range(600)]
    for k in (1, 10, 1000):
        _same_ranking(R.retrieve(q, d, qids, dids, k=k, threads=2, shard_size=shard_size),
                      retrieve_dense(q, d, qids, dids, k=k))


def test_top_k_merge_by_hand():
    top = R.TopK(2, 2)
    # shard 0 (rows 0-2): q0 scores rows 0:1.0, 2:3.0; q1 nothing
    top.add(sp.csr_matrix(np.array([[1.0, 0, 3.0], [0, 0, 0]], np.float32)), 0)
    # shard 1 (rows 3-4): q0 row 3:1.0 (ties row 0: the lower row stays), row 4:2.0; q1 row 4:5.0
    top.add(sp.csr_matrix(np.array([[1.0, 2.0], [0, 5.0]], np.float32)), 3)
    assert top.docs.tolist() == [[2, 4], [4, -1]]
    assert top.scores[0].tolist() == [3.0, 2.0] and top.scores[1, 0] == 5.0


def test_64_bit_indices_when_a_matrix_reaches_the_limit(monkeypatch):
    import sparse_dot_topn

    seen = []
    real = sparse_dot_topn.sp_matmul_topn

    def spy(a, b, **kw):
        seen.append((kw["idx_dtype"], a.indices.dtype, b.indptr.dtype))
        return real(a, b, **kw)

    monkeypatch.setattr(sparse_dot_topn, "sp_matmul_topn", spy)
    rng = np.random.default_rng(4)
    q, d = _random(rng, 20, 30, 0.2), _random(rng, 200, 30, 0.2)
    ids, dids = [f"q{i}" for i in range(20)], [f"d{i}" for i in range(200)]
    small = R.retrieve(q, d, ids, dids, k=50)
    assert seen[-1][0] == np.int32
    monkeypatch.setattr(R, "INT32_NNZ_LIMIT", 10)  # as if the shard had 2^31 non-zeros
    big = R.retrieve(q, d, ids, dids, k=50)
    assert seen[-1] == (np.int64, np.int64, np.int64)
    assert big == small


def test_grid_pass_statistics_equal_whole_matrix_metrics():
    rng = np.random.default_rng(5)
    q, d = _random(rng, 30, 40, 0.3), _random(rng, 250, 40, 0.3)
    grid = [(0, 0), (3, 5), (2, 5), (2, 2)]
    shards = [(lo, d[lo : lo + 60]) for lo in range(0, 250, 60)]
    tops, stats, pruned_q = R.grid_pass(q, shards, grid, k=1000, threads=2)
    for qk, dk in grid:
        qp, dp = prune_csr_loop(q, qk), prune_csr_loop(d, dk)
        row = stats[(qk, dk)].row(pruned_q[(qk, dk)])
        ref = {"flops": M.flops_cost(qp, dp), "l0_q": M.mean_l0(qp), "l0_d": M.mean_l0(dp), **M.posting_stats(dp)}
        assert row == pytest.approx(ref, rel=1e-12)


def test_per_query_metrics_and_their_mean_by_hand(tmp_path):
    qrels = {"q1": {"d2": 1}, "q2": {"d9": 1}, "q3": {"d1": 1, "d3": 1}}
    run = {"q1": {"d1": 3.0, "d2": 2.0, "d3": 1.0},  # relevant at rank 2: RR 1/2, R@10 1
           "q2": {"d1": 1.0},                       # relevant never retrieved: 0
           "q3": {}}                                # nothing retrieved: 0
    per = M.perquery(qrels, run).set_index("query_id")
    assert per.loc["q1", "mrr@10"] == 0.5 and per.loc["q1", "recall@10"] == 1.0
    assert per.loc["q2"].tolist() == [0.0] * 4 and per.loc["q3"].tolist() == [0.0] * 4
    # nDCG@10 of q1: (1/log2(3)) / 1
    assert per.loc["q1", "ndcg@10"] == pytest.approx(1 / np.log2(3))
    agg = M.evaluate_run(qrels, run)
    assert agg["mrr@10"] == pytest.approx(0.5 / 3) and agg["recall@10"] == pytest.approx(1 / 3)

    path = write_trec(tmp_path / "trec" / "r.q0_d0.run.gz", run, "r")
    lines = gzip.open(path, "rt").read().splitlines()
    assert lines[:3] == ["q1 Q0 d1 1 3 r", "q1 Q0 d2 2 2 r", "q1 Q0 d3 3 1 r"] and len(lines) == 4
    assert M.evaluate_run(qrels, read_trec(path)) == agg


def test_vectorised_per_query_metrics_equal_ir_measures_on_random_rankings():
    rng = np.random.default_rng(7)
    n_q, n_docs, k = 25, 300, 120
    qids, dids = [f"q{i}" for i in range(n_q)], [f"d{i}" for i in range(n_docs)]
    qrels = {q: {dids[d]: int(rng.integers(0, 4)) for d in rng.choice(n_docs, rng.integers(1, 6), replace=False)}
             for q in qids}
    qrels["never"] = {dids[0]: 1}  # judged, not among the queries: scores 0
    rows = np.full((n_q, k), -1)
    run = {}
    for i, q in enumerate(qids):
        judged = [dids.index(d) for d in qrels[q]]
        ranked = list(dict.fromkeys(judged + list(rng.permutation(n_docs))))[: int(rng.integers(0, k + 1))]
        ranked = list(rng.permutation(ranked))
        rows[i, : len(ranked)] = ranked
        run[q] = {dids[d]: float(k - r) for r, d in enumerate(ranked)}  # distinct scores, best first
    fast = M.perquery_topk(qrels, qids, rows, M.judged_rows(qrels, dids)).set_index("query_id")
    slow = M.perquery(qrels, run).set_index("query_id").loc[fast.index]
    np.testing.assert_allclose(fast.to_numpy(), slow.to_numpy(), atol=1e-12)
    assert fast.loc["never"].tolist() == [0.0] * 4 and fast["mrr@10"].gt(0).any()


def test_vectorised_per_query_metrics_by_hand():
    qrels = {"a": {"d1": 2, "d3": 1}, "b": {"d0": 0}}
    rows = np.array([[3, 1, 2, -1], [0, -1, -1, -1]])  # a: d3 (1), d1 (2), d2 (unjudged); b: only grade 0
    per = M.perquery_topk(qrels, ["a", "b"], rows, {"d0": 0, "d1": 1, "d3": 3}).set_index("query_id")
    dcg = 1 / np.log2(2) + 2 / np.log2(3)
    ideal = 2 / np.log2(2) + 1 / np.log2(3)
    assert per.loc["a"].tolist() == pytest.approx([1.0, 1.0, 1.0, dcg / ideal])
    assert per.loc["b"].tolist() == [0.0, 0.0, 0.0, 0.0]  # no relevant document: everything 0
