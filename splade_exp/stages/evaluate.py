"""Evaluation: encode the corpus and the queries once, then for every (qk, dk) of the pruning grid
prune, index, retrieve exactly, and measure effectiveness and cost (METHOD §3).

Under data parallelism (a process group is up, e.g. after DDP training in srun tasks) every rank
encodes a contiguous shard of the corpus and of the queries and rank 0 gathers the shards in order:
the metrics need the whole collection (FLOPS and posting lists over the whole index, ranks among
all documents), so they are computed on rank 0 only, and the other ranks return no rows.
"""
from __future__ import annotations

import logging
import time

import numpy as np
import scipy.sparse as sp
import torch

from splade_exp import metrics as M
from splade_exp.models.encoder import SpladeEncoder
from splade_exp.sparse import check_prune_k, prune_csr, to_csr

log = logging.getLogger(__name__)


@torch.inference_mode()
def encode(encoder: SpladeEncoder, tokenizer, texts: list[str], max_length: int, batch_size: int = 128,
           device: torch.device | str = "cpu") -> sp.csr_matrix:
    """Pooled term weights of ``texts`` as a CSR matrix (rows in input order)."""
    encoder.eval()
    order = np.argsort([len(t) for t in texts], kind="stable")  # similar lengths share a batch
    rows: list[sp.csr_matrix] = []
    for start in range(0, len(texts), batch_size):
        idx = order[start : start + batch_size]
        enc = tokenizer([texts[i] for i in idx], truncation=True, max_length=max_length,
                        padding=True, return_tensors="pt")
        w = encoder(enc["input_ids"].to(device), enc["attention_mask"].to(device))
        rows.append(to_csr(w))
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


def encode_sharded(encoder: SpladeEncoder, tokenizer, texts: list[str], max_length: int, batch_size: int = 128,
                   device: torch.device | str = "cpu") -> sp.csr_matrix | None:
    """:func:`encode` split over the ranks of the process group: the whole matrix on rank 0, None elsewhere.

    Rank r encodes texts ``[r·n/W, (r+1)·n/W)``; the shards are gathered to rank 0 as CSR matrices
    (only the non-zeros travel) and stacked in rank order, so row i is ``texts[i]`` as with one process.
    """
    import torch.distributed as dist

    rank, world = distributed_world()
    if world == 1:
        return encode(encoder, tokenizer, texts, max_length, batch_size, device)
    bounds = np.linspace(0, len(texts), world + 1).astype(int)
    shard = encode(encoder, tokenizer, texts[bounds[rank] : bounds[rank + 1]], max_length, batch_size, device)
    shards = [None] * world if rank == 0 else None
    dist.gather_object(shard, shards, dst=0)
    return sp.vstack(shards).tocsr() if rank == 0 else None


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


def pruning_rows(q: sp.csr_matrix, d: sp.csr_matrix, query_ids: list[str], doc_ids: list[str],
                 qrels: dict[str, dict[str, int]], grid: list[tuple[int, int]], k: int = 1000) -> list[dict]:
    """One metrics row per (qk, dk): effectiveness, FLOPS, L0 and posting-list statistics."""
    rows = []
    for qk, dk in grid:
        t0 = time.perf_counter()
        qp, dp = prune_csr(q, qk), prune_csr(d, dk)
        run = M.retrieve(qp, dp, query_ids, doc_ids, k=min(k, len(doc_ids)))
        row = {"qk": qk, "dk": dk, **M.evaluate_run(qrels, run), "flops": M.flops_cost(qp, dp),
               "l0_q": M.mean_l0(qp), "l0_d": M.mean_l0(dp), **M.posting_stats(dp)}
        row["eval_time_s"] = time.perf_counter() - t0
        log.info("qk=%d dk=%d mrr@10=%.4f flops=%.3f l0_q=%.1f l0_d=%.1f", qk, dk, row["mrr@10"], row["flops"], row["l0_q"], row["l0_d"])
        rows.append(row)
    return rows


def evaluate_encoder(encoder: SpladeEncoder, tokenizer, collection, split: str, grid, query_max_length: int,
                     doc_max_length: int, batch_size: int = 128, device="cpu") -> list[dict]:
    """Rows of the pruning grid. Under a process group every rank must call it; rank 0 gets the rows,
    the other ranks an empty list."""
    points = parse_grid(grid)  # bad grids fail before any encoding
    qrels = collection.split(split)
    query_ids = [qid for qid in qrels if qid in collection.queries]
    doc_ids = list(collection.corpus)
    t0 = time.perf_counter()
    d = encode_sharded(encoder, tokenizer, [collection.corpus[i] for i in doc_ids], doc_max_length, batch_size, device)
    q = encode_sharded(encoder, tokenizer, [collection.queries[i] for i in query_ids], query_max_length, batch_size,
                       device)
    if d is None:  # not rank 0: the shards are on rank 0
        return []
    log.info("encoded %d documents and %d queries in %.1fs", len(doc_ids), len(query_ids), time.perf_counter() - t0)
    return pruning_rows(q, d, query_ids, doc_ids, qrels, points)
