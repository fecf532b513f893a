"""The latency engine: Seismic built from pruned vectors, its columns, its recall against exact
top-k; every engine choice composes and builds."""
from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from hydra.utils import instantiate

from conftest import compose_cfg
from splade_exp.engines import ExactEngine, SeismicEngine
from splade_exp.stages.evaluate import pruning_rows


@pytest.mark.parametrize("choice,cls", [("exact", ExactEngine), ("seismic", SeismicEngine)])
def test_engine_choices_compose_and_build(choice, cls, tmp_path):
    cfg = compose_cfg([f"eval/engine={choice}"], tmp_path)
    assert isinstance(instantiate(cfg.eval.engine), cls)


def _zipf(rng, n, vocab, length):
    p = 1 / np.arange(1, vocab + 1)
    p /= p.sum()
    dense = np.zeros((n, vocab), np.float32)
    for i in range(n):
        terms = np.unique(rng.choice(vocab, length, p=p))
        dense[i, terms] = rng.lognormal(0, 0.6, terms.size)
    return sp.csr_matrix(dense)


def test_seismic_latency_columns_and_recall_against_exact(tmp_path):
    rng = np.random.default_rng(0)
    docs, queries = _zipf(rng, 600, 500, 40), _zipf(rng, 50, 500, 8)
    qids, dids = [f"q{i}" for i in range(50)], [f"d{i}" for i in range(600)]
    # the relevant document of each query is its best exact match, so MRR@10 (exact) = 1
    best = np.asarray((queries @ docs.T).argmax(axis=1)).ravel()
    qrels = {q: {dids[b]: 1} for q, b in zip(qids, best)}
    grid = [(0, 0), (4, 10)]
    exact = pruning_rows(queries, docs, qids, dids, qrels, grid, k=100)
    seismic = pruning_rows(queries, [(0, docs[:250]), (250, docs[250:])], qids, dids, qrels, grid, k=100,
                           engine=SeismicEngine(), workdir=tmp_path)
    assert exact.rows[0]["mrr@10"] == 1.0 and "latency_p50_ms" not in exact.rows[0]
    for e, s in zip(exact.rows, seismic.rows):
        assert {k: s[k] for k in e if k != "eval_time_s"} == {k: e[k] for k in e if k != "eval_time_s"}
        assert 0 < s["latency_p50_ms"] <= s["latency_p99_ms"] and s["latency_mean_ms"] > 0
        assert s["index_size_mb"] > 0 and s["engine_docs"] == 600
        # approximate, on float16 weights: measured 1.0 here; a broken id mapping gives ~0
        assert s["recall@100_vs_exact"] >= 0.95
        assert abs(s["engine_mrr@10"] - s["mrr@10"]) <= 0.05
    assert not list(tmp_path.iterdir())  # the saved index was only measured


def test_documents_too_dense_for_the_engine_are_not_indexed_and_say_why(tmp_path):
    rng = np.random.default_rng(1)
    docs, queries = _zipf(rng, 100, 500, 40), _zipf(rng, 10, 500, 8)  # ~30 terms per unpruned document
    qids, dids = [f"q{i}" for i in range(10)], [f"d{i}" for i in range(100)]
    qrels = {q: {"d0": 1} for q in qids}
    grid = [(0, 0), (4, 10)]
    exact = pruning_rows(queries, docs, qids, dids, qrels, grid, k=20)
    rows = pruning_rows(queries, [(0, docs[:50]), (50, docs[50:])], qids, dids, qrels, grid, k=20,
                        engine=SeismicEngine(max_doc_terms=12), workdir=tmp_path).rows
    unpruned, pruned = rows
    assert "more than eval.engine.max_doc_terms=12" in unpruned["engine_skipped"]
    assert "latency_p50_ms" not in unpruned and "engine_mrr@10" not in unpruned
    assert unpruned["mrr@10"] == exact.rows[0]["mrr@10"]  # the exact metrics are there as always
    assert "engine_skipped" not in pruned and pruned["latency_p50_ms"] > 0  # 10 terms a document: indexed
