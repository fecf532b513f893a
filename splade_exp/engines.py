"""Query latency of the pruned vectors in a real inverted-index engine (``conf/eval/engine/``).

The effectiveness metrics always come from exact retrieval (:mod:`splade_exp.retrieval`); an
engine adds, per grid point, what a deployed index would cost: per-query latency on one thread
(each query timed alone: mean, p50, p99 in ms), its build time, its size on disk, and, for an
approximate engine, its recall@k against the exact top-k on the same pruned vectors and its
own MRR@10.

Engine choice: **Seismic** (``pyseismic-lsr``, Bruch et al., SIGIR 2024), an approximate engine
built for learned sparse vectors. It installs as one ~1 MB wheel that needs only numpy, runs
offline, takes float weights and integer term ids directly (its large-vocabulary variant, so
100K-term heads fit), and answers one query with one call into Rust on the calling thread, so
the timed span is the engine's work plus a Python call. Measured alternatives, same environment:
``bmp`` (Block-Max Pruning) installs as easily and is meant to be exact, but its index keeps term
ids as 16 bits (at most 65,536 distinct terms: a 100K head overflows), impacts as 8 bits and query
weights as 5 bits, and with ``alpha = 1`` it never scores the last block it visits (a document was
missing from its results on a 3-document index); ``pyterrier-pisa`` (PISA, exact) pulls in
python-terrier, Java and a pinned TBB, and its per-query calls go through pandas frames whose
overhead is of the order of the latencies measured.

Seismic stores the weights as float16 and prunes posting lists (``n_postings`` per term, about
1.5× kept before clustering into blocks summarised at ``summary_energy``); a query visits its
``query_cut`` heaviest terms and skips blocks whose summary bound is below ``heap_factor`` times the
current k-th score. So it is approximate: ``recall@{k}_vs_exact`` says how far.

Seismic's build clusters every posting list, which is meant for SPLADE's ~100-200 terms per
document; vectors of an untrained or collapsed head can hold thousands (tens of thousands with a
100K head) and make a build of a few hundred documents take many minutes. A grid point whose
documents average more than ``max_doc_terms`` non-zeros is not indexed: its row has
``engine_skipped`` set and no latency columns (the exact metrics are there as always).
"""
from __future__ import annotations

import contextlib
import logging
import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import scipy.sparse as sp

log = logging.getLogger(__name__)

class ExactEngine:
    """No engine: the exact top-k only (no latency columns)."""

    name = "exact"

    def builder(self, vocab_size: int, threads: int):
        return None


class SeismicEngine:
    """Seismic index per grid point; see the module doc for the parameters."""

    name = "seismic"

    def __init__(self, n_postings: int = 3500, centroid_fraction: float = 0.1, summary_energy: float = 0.4,
                 query_cut: int = 20, heap_factor: float = 0.8, k: int | None = None,
                 max_doc_terms: int | None = 2048) -> None:
        self.n_postings, self.centroid_fraction, self.summary_energy = n_postings, centroid_fraction, summary_energy
        self.query_cut, self.heap_factor, self.k = query_cut, heap_factor, k
        self.max_doc_terms = max_doc_terms

    def builder(self, vocab_size: int, threads: int) -> "SeismicBuilder":
        return SeismicBuilder(self, threads)


@contextlib.contextmanager
def _quiet_fd(*fds: int):
    """Silence what native code prints on these file descriptors (Seismic logs its build)."""
    saved = [os.dup(fd) for fd in fds]
    with open(os.devnull, "wb") as null:
        try:
            for fd in fds:
                os.dup2(null.fileno(), fd)
            yield
        finally:
            for fd, copy in zip(fds, saved):
                os.dup2(copy, fd)
                os.close(copy)


class SeismicBuilder:
    """Collects the pruned documents of one grid point shard by shard, then builds and measures."""

    def __init__(self, engine: SeismicEngine, threads: int) -> None:
        from seismic import SeismicDatasetLV

        self.engine, self.threads = engine, threads
        self.dataset = SeismicDatasetLV()
        self.rows = self.nnz = 0
        self.skipped: str | None = None  # why this grid point is not indexed (module doc)

    def add(self, offset: int, docs: sp.csr_matrix) -> None:
        from seismic import get_seismic_string

        docs = sp.csr_matrix(docs)
        self.rows += docs.shape[0]
        self.nnz += docs.nnz
        limit = self.engine.max_doc_terms
        if self.skipped is None and limit is not None and self.nnz > limit * self.rows:
            self.skipped = (f"documents average {self.nnz / self.rows:.0f} non-zeros, more than "
                            f"eval.engine.max_doc_terms={limit}")
            self.dataset = None  # its copy of the documents is freed
        if self.skipped is not None:
            return
        ids = np.arange(offset, offset + docs.shape[0]).astype(get_seismic_string())
        self.dataset.add_documents_by_id(ids, docs.indices.astype(np.int64), docs.data.astype(np.float32),
                                         docs.indptr.astype(np.int64))

    def measure(self, queries: sp.csr_matrix, k: int, exact_docs: np.ndarray, workdir: str | Path | None = None) -> dict:
        """Build the index, save it (size on disk), time every query alone, compare with exact.

        ``exact_docs``: (queries × k) global rows of the exact top-k (``-1`` where empty).
        Returns the result columns and the engine's own top-k rows (same layout) for its metrics. The
        recall column is named after the requested ``k``; the search depth is at most the number of
        documents.
        """
        from seismic import SeismicIndexLV, get_seismic_string

        e = self.engine
        if self.skipped is not None:
            log.warning("%s engine: not indexed, %s", e.name, self.skipped)
            return {"engine": e.name, "engine_skipped": self.skipped, "engine_docs": self.rows}, None
        k = int(e.k or k)
        depth = min(k, self.rows)
        t0 = time.perf_counter()
        with _quiet_fd(1, 2):
            index = SeismicIndexLV.build_from_dataset(
                self.dataset, n_postings=e.n_postings, centroid_fraction=e.centroid_fraction,
                summary_energy=e.summary_energy, num_threads=max(1, int(self.threads)))
        build_s = time.perf_counter() - t0
        tmp = Path(tempfile.mkdtemp(prefix=".seismic-", dir=workdir))
        try:
            with _quiet_fd(1, 2):
                index.save(str(tmp / "index"))
            size = sum(f.stat().st_size for f in tmp.rglob("*") if f.is_file())
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        queries = sp.csr_matrix(queries)
        string = get_seismic_string()
        times, found = [], np.full((queries.shape[0], depth), -1, dtype=np.int64)
        for i in range(queries.shape[0]):
            lo, hi = queries.indptr[i], queries.indptr[i + 1]
            if hi == lo:  # nothing to look up; exact retrieval finds nothing either
                continue
            comps, vals = queries.indices[lo:hi].astype(string), queries.data[lo:hi].astype(np.float32)
            start = time.perf_counter()
            res = index.search(str(i), comps, vals, depth, e.query_cut, e.heap_factor)
            times.append(time.perf_counter() - start)
            rows = [int(doc) for _, _, doc in res]
            found[i, : len(rows)] = rows
        ms = np.array(times) * 1e3 if times else np.array([np.nan])
        recall = []
        for got, ref in zip(found, exact_docs):
            ref = ref[ref >= 0]
            if ref.size:
                recall.append(np.isin(ref, got[got >= 0]).mean())
        return {"engine": e.name, "latency_mean_ms": float(ms.mean()), "latency_p50_ms": float(np.percentile(ms, 50)),
                "latency_p99_ms": float(np.percentile(ms, 99)), "index_size_mb": size / 1e6,
                "index_build_s": build_s, f"recall@{k}_vs_exact": float(np.mean(recall)) if recall else float("nan"),
                "engine_docs": self.rows}, found
