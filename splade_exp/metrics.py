"""Retrieval cost and effectiveness on sparse matrices (rows = queries or documents, cols = terms).

- ``flops_cost``: ``sum_j p_q(j) p_d(j)`` with ``p`` the fraction of rows where term j is non-zero:
  the expected number of shared non-zero terms of a (query, document) pair (METHOD §3). It is
  computed on exactly what is indexed (after pruning).
- posting-list statistics over *active* terms (terms with at least one posting).
- exact retrieval by sparse dot products and effectiveness with ``ir_measures``.
"""
from __future__ import annotations

import ir_measures
import numpy as np
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


def retrieve(
    queries: sp.csr_matrix,
    docs: sp.csr_matrix,
    query_ids: list[str],
    doc_ids: list[str],
    k: int = 1000,
    batch_size: int = 256,
) -> dict[str, dict[str, float]]:
    """Exact top-``k`` retrieval by dot product over an inverted index (term -> postings).

    Documents with a zero score are not retrieved (they share no term with the query).
    """
    index = sp.csr_matrix(docs).T.tocsr()  # (V, Nd): one posting list per term
    run: dict[str, dict[str, float]] = {}
    for start in range(0, queries.shape[0], batch_size):
        scores = (sp.csr_matrix(queries[start : start + batch_size]) @ index).toarray()
        for row, qid in enumerate(query_ids[start : start + batch_size]):
            s = scores[row]
            cand = np.flatnonzero(s > 0)
            if cand.size > k:
                cand = cand[np.argpartition(-s[cand], k - 1)[:k]]
            run[qid] = {doc_ids[i]: float(s[i]) for i in cand}
    return run


def evaluate_run(qrels: dict[str, dict[str, int]], run: dict[str, dict[str, float]]) -> dict[str, float]:
    """MRR@10, R@10, R@100 and nDCG@10 averaged over the judged queries (missing runs score 0)."""
    run = {qid: run.get(qid, {}) for qid in qrels}
    # ir_measures averages over queries present in the run; an empty run would be dropped.
    empty = [qid for qid, docs in run.items() if not docs]
    for qid in empty:
        run[qid] = {"__none__": 0.0}
    agg = ir_measures.calc_aggregate(list(MEASURES.values()), qrels, run)
    return {name: float(agg.get(m, 0.0)) for name, m in MEASURES.items()}
