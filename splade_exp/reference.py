"""Reference implementations of static pruning and exact retrieval, kept verbatim as the first
versions of :func:`splade_exp.sparse.prune_csr` and :func:`splade_exp.retrieval.retrieve` were
written: a Python loop over rows, and a dense ``batch × N`` score block per 256 queries.

They are what the equality tests compare the scalable paths with, and the "old" side of
``benchmarks/eval_scale.py``. Nothing in the pipeline calls them.
"""
from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from splade_exp.sparse import check_prune_k


def prune_csr_loop(m: sp.csr_matrix, k: int) -> sp.csr_matrix:
    """Keep at most ``k`` largest non-zero entries per row (0 = keep all); ties: lower term id."""
    k = check_prune_k(k, "k")
    m = m.tocsr()
    if k == 0:
        return m.copy()
    m.sort_indices()
    indptr, indices, data = m.indptr, m.indices, m.data
    lengths = np.diff(indptr)
    keep = np.ones(len(data), dtype=bool)
    for row in np.nonzero(lengths > k)[0]:
        lo, hi = indptr[row], indptr[row + 1]
        # stable sort on -value keeps the lower term id (already sorted) first among ties
        order = np.argsort(-data[lo:hi], kind="stable")
        keep[lo + order[k:]] = False
    rows = np.repeat(np.arange(m.shape[0]), lengths)[keep]
    return sp.csr_matrix((data[keep], (rows, indices[keep])), shape=m.shape)


def retrieve_dense(queries: sp.csr_matrix, docs: sp.csr_matrix, query_ids: list[str], doc_ids: list[str],
                   k: int = 1000, batch_size: int = 256) -> dict[str, dict[str, float]]:
    """Exact top-``k`` by dot product: ``batch_size × N`` dense scores at a time; zero scores dropped."""
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
