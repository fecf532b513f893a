"""Exact top-k retrieval and the index statistics of a pruning grid, streamed over document shards.

Memory does not grow with (queries × N): each shard of documents is scored by a multithreaded
top-n sparse product (``sparse_dot_topn.sp_matmul_topn``: per query row, an accumulator over the
shard's documents, keeping the n best), and the k best of every query are merged into a running
(queries × k) top-k. Over a whole pass the peak is one shard (unpruned and pruned), its transpose,
the queries and the (queries × k) arrays of every grid point, whatever N is. The statistics that
need the whole index (FLOPS, posting lists, L0) are sums over documents, so they accumulate shard
by shard as integer counts: term document frequencies by ``bincount``, row lengths.

One pass over the shards serves every (qk, dk) of the grid: a shard is read once, pruned per dk,
and scored against the queries pruned per qk. Scores are float32 sums as in a sparse product;
documents with score 0 share no term with the query and are not retrieved. Ties at the k-th place
are broken by the lower document row, and rankings by (score desc, row asc).
"""
from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from splade_exp.sparse import prune_csr

# A matrix with this many non-zeros or more needs 64-bit indices in the product (module-level so a
# test can lower it and exercise that path without 2^31 real non-zeros).
INT32_NNZ_LIMIT = 2**31 - 1


def index_dtype(*mats: sp.spmatrix):
    return np.int64 if max(m.nnz for m in mats) >= INT32_NNZ_LIMIT else np.int32


def shard_topk(queries: sp.csr_matrix, docs: sp.csr_matrix, k: int, threads: int = 1,
               index: sp.csr_matrix | None = None) -> sp.csr_matrix:
    """(queries × shard) CSR holding, per query, its at most ``k`` best positive scores.

    ``index`` is ``docs`` transposed (V × n: one posting list per term), when the caller already has it."""
    from sparse_dot_topn import sp_matmul_topn

    index = docs.T.tocsr() if index is None else index
    dtype = index_dtype(queries, index)
    if dtype == np.int64:
        queries, index = queries.copy(), index.copy()
        for m in (queries, index):
            m.indptr, m.indices = m.indptr.astype(np.int64), m.indices.astype(np.int64)
    return sp_matmul_topn(queries.astype(np.float32, copy=False), index.astype(np.float32, copy=False), top_n=k,
                          threshold=0.0, n_threads=max(1, int(threads)), idx_dtype=dtype)


class TopK:
    """Running top-``k`` of every query over the shards seen so far: (queries × k) scores
    (``-inf`` where empty) and global document rows (``-1``)."""

    def __init__(self, n_queries: int, k: int) -> None:
        self.k = k
        self.scores = np.full((n_queries, k), -np.inf, dtype=np.float32)
        self.docs = np.full((n_queries, k), -1, dtype=np.int64)

    def add(self, hits: sp.csr_matrix, offset: int) -> None:
        """Merge a shard's hits (columns = rows of the shard, starting at global row ``offset``).

        Only hits at or above a query's current k-th score can enter its top-k, and after the first
        shards few do: only those are merged, and only for the queries that have any."""
        if not hits.nnz:
            return
        hits.sort_indices()  # each query's hits by document row
        rows = np.repeat(np.arange(hits.shape[0]), np.diff(hits.indptr))
        survive = hits.data >= self.scores[rows, -1]
        if not survive.any():
            return
        rows, data, cols = rows[survive], hits.data[survive], hits.indices[survive].astype(np.int64) + offset
        touched, first, n = np.unique(rows, return_index=True, return_counts=True)
        width = int(n.max())
        pos = np.arange(rows.size) - np.repeat(first, n)
        local = np.repeat(np.arange(touched.size), n)
        scores = np.full((touched.size, self.k + width), -np.inf, dtype=np.float32)
        docs = np.full((touched.size, self.k + width), -1, dtype=np.int64)
        scores[:, : self.k], docs[:, : self.k] = self.scores[touched], self.docs[touched]
        scores[local, self.k + pos] = data
        docs[local, self.k + pos] = cols
        # Best first: score descending, then lower row. The kept part is in that order and holds
        # lower rows than this shard's hits, which are by row: a stable sort on the score suffices.
        order = np.argsort(-scores, axis=1, kind="stable")[:, : self.k]
        self.scores[touched] = np.take_along_axis(scores, order, axis=1)
        self.docs[touched] = np.take_along_axis(docs, order, axis=1)

    def run(self, query_ids: list[str], doc_ids) -> dict[str, dict[str, float]]:
        """As a run dict (query id -> doc id -> score), for the metrics."""
        out = {}
        for qid, s, d in zip(query_ids, self.scores, self.docs):
            ok = d >= 0
            out[qid] = {doc_ids[i]: float(v) for i, v in zip(d[ok], s[ok])}
        return out


def retrieve(queries: sp.csr_matrix, docs: sp.csr_matrix, query_ids: list[str], doc_ids: list[str], k: int = 1000,
             threads: int = 1, shard_size: int = 100_000) -> dict[str, dict[str, float]]:
    """Exact top-``k`` by dot product of in-memory matrices, shard by shard (see the module doc)."""
    top = TopK(queries.shape[0], k)
    docs = sp.csr_matrix(docs)
    for lo in range(0, docs.shape[0], shard_size):
        top.add(shard_topk(queries, docs[lo : lo + shard_size], k, threads), lo)
    return top.run(query_ids, doc_ids)


class PointStats:
    """Whole-index statistics of one grid point accumulated shard by shard."""

    def __init__(self, vocab_size: int) -> None:
        self.df = np.zeros(vocab_size, dtype=np.int64)  # documents with w_j != 0
        self.postings = np.zeros(vocab_size, dtype=np.int64)  # stored entries per term
        self.rows = 0
        self.nnz = 0

    def add(self, docs: sp.csr_matrix) -> None:
        counts = np.bincount(docs.indices, minlength=docs.shape[1])
        self.postings += counts
        if np.count_nonzero(docs.data) < docs.nnz:  # explicit zeros are stored but not "active"
            counts = np.bincount(docs.indices[docs.data != 0], minlength=docs.shape[1])
        self.df += counts
        self.rows += docs.shape[0]
        self.nnz += docs.nnz

    def row(self, queries: sp.csr_matrix) -> dict[str, float]:
        """FLOPS against ``queries``, mean L0 of both sides, posting-list statistics (as
        :mod:`splade_exp.metrics` computes them on whole matrices)."""
        from splade_exp import metrics as M

        if self.rows == 0:
            raise ValueError("cannot compute term frequencies of an empty matrix (no rows)")
        p_d = self.df / self.rows
        active = self.postings[self.postings > 0].astype(np.float64)
        posting = ({"posting_mean": float(active.mean()), "posting_max": float(active.max()),
                    "posting_var": float(active.var()), "active_terms": int(active.size)} if active.size else
                   {"posting_mean": 0.0, "posting_max": 0.0, "posting_var": 0.0, "active_terms": 0})
        return {"flops": float(M.term_doc_frequency(queries) @ p_d), "l0_q": M.mean_l0(queries),
                "l0_d": self.nnz / self.rows, **posting}


def grid_pass(queries: sp.csr_matrix, shards, grid: list[tuple[int, int]], k: int, threads: int = 1,
              on_pruned=None, timings: dict | None = None) -> tuple[dict, dict, dict]:
    """One pass over ``shards`` (an iterable of (first row, CSR shard)) for every (qk, dk).

    Returns, per grid point, its :class:`TopK`, its :class:`PointStats` and the pruned queries.
    ``on_pruned(point, first_row, pruned_shard)`` sees every pruned shard (to build an engine's
    index from it). ``timings``, when given, gets the seconds spent reading shards, pruning,
    retrieving (transpose, top-n product, merge) and counting.
    """
    import time

    clock = dict.fromkeys(("read_s", "prune_s", "retrieve_s", "stats_s"), 0.0)
    t = time.perf_counter()

    def tick(phase: str) -> None:
        nonlocal t
        now = time.perf_counter()
        clock[phase] += now - t
        t = now

    pruned_q = {qk: prune_csr(queries, qk) for qk in {qk for qk, _ in grid}}
    grid = list(dict.fromkeys(grid))
    tops = {p: TopK(queries.shape[0], k) for p in grid}
    by_dk = {dk: PointStats(queries.shape[1]) for _, dk in grid}  # the index of a dk serves every qk
    # unpruned first, then dk descending: each pruning starts from the previous one (pruning nests)
    budgets = sorted({dk for _, dk in grid}, key=lambda dk: (dk != 0, -dk))
    for offset, shard in shards:
        tick("read_s")
        docs = shard
        for dk in budgets:
            docs = prune_csr(docs, dk) if dk else shard
            tick("prune_s")
            by_dk[dk].add(docs)
            tick("stats_s")
            index = docs.T.tocsr()
            for point in [p for p in grid if p[1] == dk]:
                tops[point].add(shard_topk(pruned_q[point[0]], docs, k, threads, index), offset)
                tick("retrieve_s")
                if on_pruned is not None:
                    on_pruned(point, offset, docs)
                    t = time.perf_counter()  # an engine's copy is not the pass's time
            del index
        del docs, shard
    if timings is not None:
        timings.update(clock)
    return tops, {p: by_dk[p[1]] for p in grid}, {p: pruned_q[p[0]] for p in grid}
