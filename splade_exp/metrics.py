"""Retrieval cost and effectiveness on sparse matrices (rows = queries or documents, cols = terms).

- ``flops_cost``: ``sum_j p_q(j) p_d(j)`` with ``p`` the fraction of rows where term j is non-zero:
  the expected number of shared non-zero terms of a (query, document) pair (METHOD §3). It is
  computed on exactly what is indexed (after pruning).
- posting-list statistics over *active* terms (terms with at least one posting).
- exact retrieval by sparse dot products (streamed over shards: :mod:`splade_exp.retrieval`) and
  effectiveness with ``ir_measures``, per query and averaged.
"""
from __future__ import annotations

import ir_measures
import numpy as np
import pandas as pd
import scipy.sparse as sp
from ir_measures import R, RR, nDCG

MEASURES = {"mrr@10": RR @ 10, "recall@10": R @ 10, "recall@100": R @ 100, "ndcg@10": nDCG @ 10}


def term_doc_frequency(m: sp.csr_matrix) -> np.ndarray:
    """Fraction of rows in which each term (column) is non-zero."""
    m = sp.csr_matrix(m)
    if m.shape[0] == 0:
        raise ValueError("cannot compute term frequencies of an empty matrix (no rows)")
    counts = np.bincount(m.indices[m.data != 0], minlength=m.shape[1])
    return counts / m.shape[0]


def flops_cost(queries: sp.csr_matrix, docs: sp.csr_matrix) -> float:
    """Expected shared non-zero terms per (query, document) pair."""
    if queries.shape[1] != docs.shape[1]:
        raise ValueError(f"query and document vocabularies differ: {queries.shape[1]} vs {docs.shape[1]}")
    return float(term_doc_frequency(queries) @ term_doc_frequency(docs))


def mean_l0(m: sp.csr_matrix) -> float:
    """Mean number of non-zero terms per row."""
    m = sp.csr_matrix(m)
    return float(np.diff(m.indptr).mean()) if m.shape[0] else 0.0


def posting_stats(docs: sp.csr_matrix) -> dict[str, float]:
    """Posting-list lengths over active terms: mean, max, (population) variance, count."""
    lengths = np.bincount(sp.csr_matrix(docs).indices, minlength=docs.shape[1])
    active = lengths[lengths > 0].astype(np.float64)
    if active.size == 0:
        return {"posting_mean": 0.0, "posting_max": 0.0, "posting_var": 0.0, "active_terms": 0}
    return {
        "posting_mean": float(active.mean()),
        "posting_max": float(active.max()),
        "posting_var": float(active.var()),
        "active_terms": int(active.size),
    }


def retrieve(queries: sp.csr_matrix, docs: sp.csr_matrix, query_ids: list[str], doc_ids: list[str], k: int = 1000,
             threads: int = 1) -> dict[str, dict[str, float]]:
    """Exact top-``k`` retrieval by dot product (:func:`splade_exp.retrieval.retrieve`).

    Documents with a zero score are not retrieved (they share no term with the query).
    """
    from splade_exp.retrieval import retrieve as streamed

    return streamed(queries, docs, query_ids, doc_ids, k=k, threads=threads)


def perquery(qrels: dict[str, dict[str, int]], run: dict[str, dict[str, float]]) -> pd.DataFrame:
    """One row per judged query: ``query_id`` and every metric of :data:`MEASURES` (a query without
    retrieved documents scores 0), in the order of ``qrels``."""
    run = {qid: docs for qid, docs in run.items() if docs and qid in qrels}
    values = {qid: dict.fromkeys(MEASURES, 0.0) for qid in qrels}
    names = {m: name for name, m in MEASURES.items()}
    if run:
        for metric in ir_measures.iter_calc(list(MEASURES.values()), qrels, run):
            values[metric.query_id][names[metric.measure]] = float(metric.value)
    return pd.DataFrame([{"query_id": qid, **v} for qid, v in values.items()],
                        columns=["query_id", *MEASURES])


def evaluate_run(qrels: dict[str, dict[str, int]], run: dict[str, dict[str, float]]) -> dict[str, float]:
    """MRR@10, R@10, R@100 and nDCG@10 averaged over the judged queries (missing runs score 0):
    the mean of :func:`perquery`."""
    return aggregate(perquery(qrels, run))


def aggregate(per_query: pd.DataFrame) -> dict[str, float]:
    """Mean of each metric over the rows of a :func:`perquery` frame (0 for no rows)."""
    return {name: float(per_query[name].mean()) if len(per_query) else 0.0 for name in MEASURES}
