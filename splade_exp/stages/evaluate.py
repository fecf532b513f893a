"""Evaluation: encode the corpus and the queries once, to shards on disk, then for every (qk, dk)
of the pruning grid prune, index, retrieve exactly, and measure effectiveness and cost (METHOD §3).

Encoding writes the pooled vectors as CSR shards under the run directory
(:mod:`splade_exp.vectors`), keyed on what they depend on (model weights, tokenizer, texts,
lengths, pooling): a relaunch after a kill encodes only the missing shards, and a re-evaluation of
the same weights with another grid, engine or k encodes nothing. Under data parallelism (a
process group is up, e.g. after DDP training in srun tasks) every rank encodes and writes its own
shards, the ranks meet at a barrier, and rank 0 evaluates from disk: the metrics need the whole
collection (FLOPS and posting lists over the whole index, ranks among all documents), and
streaming the shards (:mod:`splade_exp.retrieval`) keeps rank 0's memory at one shard plus
(queries × k), whatever the collection's size. The other ranks return no rows.
"""
from __future__ import annotations

import logging
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp
import torch

from splade_exp import metrics as M
from splade_exp.engines import ExactEngine
from splade_exp.models.encoder import SpladeEncoder
from splade_exp.retrieval import grid_pass
from splade_exp.sparse import check_prune_k, to_csr
from splade_exp.vectors import ShardedVectors, tokenizer_fingerprint, weights_fingerprint

log = logging.getLogger(__name__)


@torch.inference_mode()
def encode(encoder: SpladeEncoder, tokenizer, texts: list[str], max_length: int, batch_size: int = 128,
           device: torch.device | str = "cpu", progress=None) -> sp.csr_matrix:
    """Pooled term weights of ``texts`` as a CSR matrix (rows in input order); ``progress`` (a tqdm
    bar) advances by the texts of each batch."""
    encoder.eval()
    order = np.argsort([len(t) for t in texts], kind="stable")  # similar lengths share a batch
    rows: list[sp.csr_matrix] = []
    for start in range(0, len(texts), batch_size):
        idx = order[start : start + batch_size]
        enc = tokenizer([texts[i] for i in idx], truncation=True, max_length=max_length,
                        padding=True, return_tensors="pt")
        w = encoder(enc["input_ids"].to(device), enc["attention_mask"].to(device))
        rows.append(to_csr(w))
        if progress is not None:
            progress.update(len(idx))
    stacked = sp.vstack(rows).tocsr() if rows else sp.csr_matrix((0, encoder.vocab_size), dtype=np.float32)
    inverse = np.empty_like(order)
    inverse[order] = np.arange(len(order))
    return stacked[inverse]


def distributed_world() -> tuple[int, int]:
    """(rank, world size) of the default process group; without one, (``RANK`` or 0, 1)."""
    import os

    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return int(os.environ.get("RANK", "0")), 1


def _barrier() -> None:
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        dist.barrier()


def encode_to_store(encoder: SpladeEncoder, tokenizer, texts: list[str], store: ShardedVectors, max_length: int,
                    batch_size: int = 128, device: torch.device | str = "cpu", progress: bool = False,
                    what: str = "texts") -> list[int]:
    """Encode the shards of ``store`` that are missing; shard ``i`` by rank ``i mod W``. Every rank
    of a process group must call it (it ends at a barrier). Returns the shards this rank wrote."""
    from tqdm.auto import tqdm

    rank, world = distributed_world()
    mine = [i for i in store.missing() if i % world == rank]
    total = sum(hi - lo for lo, hi in map(store.bounds, mine))
    if mine:
        log.info("encoding %d %s in %d of %d shards (rank %d)", total, what, len(mine), store.num_shards, rank)
    with tqdm(total=total, unit=" " + what, desc=f"encode {what}", disable=not progress or not total,
              dynamic_ncols=True) as bar:
        for i in mine:
            lo, hi = store.bounds(i)
            store.write(i, encode(encoder, tokenizer, texts[lo:hi], max_length, batch_size, device, bar))
    _barrier()
    return mine


def parse_grid(grid) -> list[tuple[int, int]]:
    """Validate ``prune.grid``: a list of [qk, dk] pairs of non-negative integers."""
    points = []
    for i, pair in enumerate(grid):
        if len(pair) != 2:
            raise ValueError(f"prune.grid[{i}] must be a pair [qk, dk], got {list(pair)!r}")
        points.append((check_prune_k(pair[0], f"prune.grid[{i}][0] (qk)"), check_prune_k(pair[1], f"prune.grid[{i}][1] (dk)")))
    if not points:
        raise ValueError("prune.grid is empty; give at least [[0, 0]]")
    return points


@dataclass
class Evaluation:
    """Rows of the pruning grid, per-query metrics (qk, dk, query_id, metrics), the stores used."""

    rows: list[dict]
    perquery: pd.DataFrame = field(default_factory=pd.DataFrame)
    stores: list[ShardedVectors] = field(default_factory=list)


def pruning_rows(q: sp.csr_matrix, docs, query_ids: list[str], doc_ids: list[str], qrels: dict[str, dict[str, int]],
                 grid: list[tuple[int, int]], k: int = 1000, threads: int = 1, engine=None, trec=None,
                 workdir: str | Path | None = None, timings: dict | None = None) -> Evaluation:
    """One metrics row per (qk, dk): effectiveness, FLOPS, L0, posting-list statistics and, with an
    engine, its latency columns. ``docs``: a CSR matrix or an iterable of (first row, CSR shard),
    e.g. a :class:`ShardedVectors`. ``trec(qk, dk, run)`` receives each grid point's run;
    ``timings`` (a dict) gets the seconds of each phase of the pass and of the metrics."""
    if sp.issparse(docs):
        docs = [(0, sp.csr_matrix(docs))]
    engine = engine or ExactEngine()
    grid = list(dict.fromkeys(grid))
    depth = min(k, len(doc_ids))
    builders = {p: engine.builder(q.shape[1], threads) for p in grid}
    feed = (lambda p, offset, pruned: builders[p].add(offset, pruned)) if any(builders.values()) else None
    t0 = time.perf_counter()
    timings = {} if timings is None else timings
    tops, stats, pruned_q = grid_pass(q, docs, grid, depth, threads, on_pruned=feed, timings=timings)
    pass_s = time.perf_counter() - t0
    rows, frames = [], []
    judged = M.judged_rows(qrels, doc_ids)
    for point in grid:
        qk, dk = point
        t_metrics = time.perf_counter()
        per = M.perquery_topk(qrels, query_ids, tops[point].docs, judged)
        timings["metrics_s"] = timings.get("metrics_s", 0.0) + time.perf_counter() - t_metrics
        row = {"qk": qk, "dk": dk, **M.aggregate(per), **stats[point].row(pruned_q[point]), "eval_time_s": pass_s}
        if builders[point] is not None:
            cols, found = builders[point].measure(pruned_q[point], k, tops[point].docs, workdir)
            row.update(cols)
            if found is not None:
                row["engine_mrr@10"] = M.aggregate(M.perquery_topk(qrels, query_ids, found, judged))["mrr@10"]
            builders[point] = None  # the engine's copy of the documents is freed
        if trec is not None:
            trec(qk, dk, tops[point].run(query_ids, doc_ids))
        frames.append(per.assign(qk=qk, dk=dk))
        log.info("qk=%d dk=%d mrr@10=%.4f flops=%.3f l0_q=%.1f l0_d=%.1f%s", qk, dk, row["mrr@10"], row["flops"],
                 row["l0_q"], row["l0_d"],
                 f" latency p50={row['latency_p50_ms']:.2f}ms" if "latency_p50_ms" in row else "")
        rows.append(row)
    return Evaluation(rows, pd.concat(frames, ignore_index=True))


def evaluate_encoder(encoder: SpladeEncoder, tokenizer, collection, split: str, grid, query_max_length: int,
                     doc_max_length: int, batch_size: int = 128, device="cpu", *, store_dir: str | Path | None = None,
                     data_key=None, pooling: str = "max", engine=None, threads: int = 1, shard_size: int = 100_000,
                     k: int = 1000, progress: bool = False, trec=None) -> Evaluation:
    """Rows of the pruning grid. Under a process group every rank must call it; rank 0 gets the rows,
    the other ranks an empty :class:`Evaluation`.

    ``store_dir``: where the vector shards live (``runs/<run_id>/vectors``; a temporary directory
    when None). ``data_key``: what identifies the texts (default: ``collection.key()``)."""
    points = parse_grid(grid)  # bad grids fail before any encoding
    qrels = collection.split(split)
    query_ids = [qid for qid in qrels if qid in collection.queries]
    doc_ids = list(collection.corpus)
    with tempfile.TemporaryDirectory(prefix="vectors-") as tmp:
        root = Path(store_dir) if store_dir is not None else Path(tmp)
        model = {"weights": weights_fingerprint(encoder), "tokenizer": tokenizer_fingerprint(tokenizer),
                 "pooling": pooling, "texts": collection.key() if data_key is None else data_key}
        docs = ShardedVectors.open(root, "docs", {**model, "side": "docs", "max_length": doc_max_length},
                                   len(doc_ids), encoder.vocab_size, shard_size)
        queries = ShardedVectors.open(root, "queries", {**model, "side": "queries", "split": split,
                                                        "max_length": query_max_length},
                                      len(query_ids), encoder.vocab_size, shard_size)
        t0 = time.perf_counter()
        encode_to_store(encoder, tokenizer, [collection.corpus[i] for i in doc_ids], docs, doc_max_length, batch_size,
                        device, progress, "documents")
        encode_to_store(encoder, tokenizer, [collection.queries[i] for i in query_ids], queries, query_max_length,
                        batch_size, device, progress, "queries")
        rank, _ = distributed_world()
        if rank != 0:
            return Evaluation([])
        log.info("vectors of %d documents and %d queries ready in %.1fs (%s)", len(doc_ids), len(query_ids),
                 time.perf_counter() - t0, docs.path)
        result = pruning_rows(queries.matrix(), docs, query_ids, doc_ids, qrels, points, k, threads, engine, trec, root)
        result.stores = [docs, queries]
        return result
