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


def judged_rows(qrels: dict[str, dict[str, int]], doc_ids) -> dict[str, int]:
    """Row of every judged document id among ``doc_ids`` (one pass over the collection's ids)."""
    judged = {did for docs in qrels.values() for did in docs}
    return {did: i for i, did in enumerate(doc_ids) if did in judged}


def perquery_topk(qrels: dict[str, dict[str, int]], query_ids: list[str], rows: np.ndarray,
                  doc_rows: dict[str, int]) -> pd.DataFrame:
    """:func:`perquery` of a ranked top-k given as arrays: ``rows[i]`` holds the document rows
    retrieved for ``query_ids[i]``, best first (``-1`` = empty), ``doc_rows`` the row of each judged
    document id (:func:`judged_rows`).

    The same definitions as trec_eval (through ``ir_measures``) for the order given: RR@10 = 1 / rank
    of the first document of grade >= 1 in the top 10; R@c = such documents in the top c over all
    judged ones; nDCG@10 with gain = grade and discount log2(rank + 1), over the ideal order of the
    judged grades. Vectorised: (queries × k) lookups instead of a dictionary per query, which for a
    large evaluation costs more than the retrieval itself. Equal to :func:`perquery` when no two
    retrieved documents of a query share a score (trec_eval orders ties by document id).
    """
    n_q, k = rows.shape
    index = {qid: i for i, qid in enumerate(query_ids)}
    width = max(len(doc_rows), int(rows.max(initial=0)) + 1, 1)
    keys, grades, n_rel, ideal = [], [], np.zeros(len(qrels)), np.zeros(len(qrels))
    discount = 1.0 / np.log2(np.arange(2, 12))
    for j, (qid, docs) in enumerate(qrels.items()):
        g = np.array(sorted((max(v, 0) for v in docs.values()), reverse=True)[:10], dtype=np.float64)
        ideal[j] = float(g @ discount[: g.size])
        n_rel[j] = sum(v >= 1 for v in docs.values())
        if qid in index:
            for did, grade in docs.items():
                if did in doc_rows:
                    keys.append(index[qid] * width + doc_rows[did])
                    grades.append(grade)
    keys, grades = np.asarray(keys, dtype=np.int64), np.asarray(grades, dtype=np.int64)
    order = np.argsort(keys)
    keys, grades = keys[order], grades[order]
    wanted = np.arange(n_q, dtype=np.int64)[:, None] * width + rows
    at = np.minimum(np.searchsorted(keys, wanted), max(keys.size - 1, 0))
    found = (rows >= 0) & (keys.size > 0) & (keys[at] == wanted if keys.size else False)
    grade = np.where(found, grades[at] if keys.size else 0, 0)
    rel = grade >= 1
    top10 = rel[:, :10]
    rr = np.where(top10.any(axis=1), 1.0 / (top10.argmax(axis=1) + 1), 0.0)
    dcg = np.maximum(grade[:, :10], 0) @ discount[: min(10, k)] if k else np.zeros(n_q)
    hits10, hits100 = rel[:, :10].sum(axis=1), rel[:, :100].sum(axis=1)
    out = []
    for j, qid in enumerate(qrels):
        i = index.get(qid)
        if i is None:
            out.append({"query_id": qid, **dict.fromkeys(MEASURES, 0.0)})
            continue
        out.append({"query_id": qid, "mrr@10": float(rr[i]),
                    "recall@10": float(hits10[i] / n_rel[j]) if n_rel[j] else 0.0,
                    "recall@100": float(hits100[i] / n_rel[j]) if n_rel[j] else 0.0,
                    "ndcg@10": float(dcg[i] / ideal[j]) if ideal[j] > 0 else 0.0})
    return pd.DataFrame(out, columns=["query_id", *MEASURES])


def evaluate_run(qrels: dict[str, dict[str, int]], run: dict[str, dict[str, float]]) -> dict[str, float]:
    """MRR@10, R@10, R@100 and nDCG@10 averaged over the judged queries (missing runs score 0):
    the mean of :func:`perquery`."""
    return aggregate(perquery(qrels, run))


def aggregate(per_query: pd.DataFrame) -> dict[str, float]:
    """Mean of each metric over the rows of a :func:`perquery` frame (0 for no rows)."""
    return {name: float(per_query[name].mean()) if len(per_query) else 0.0 for name in MEASURES}
