"""TREC run files and per-query metrics beside the results rows (for trec_eval, ranx, and paired
significance tests between systems at the same grid point).

- ``<results_dir>/<sweep>/trec/<run_id>.q<qk>_d<dk>.run.gz``: gzip text, ``qid Q0 docid rank score
  tag`` (rank from 1, tag = run id), at most k documents per query, best first.
- ``<results_dir>/<sweep>/<run_id>.perquery.parquet``: one row per (grid point, judged query):
  ``run_id, system, model, seed, qk, dk, query_id`` and the metrics of ``metrics.MEASURES``; a judged
  query with no retrieved document scores 0. The results row of a grid point holds the mean of
  these values (computed from them), so the two never disagree.
"""
from __future__ import annotations

import gzip
from pathlib import Path

import pandas as pd

from splade_exp.io import atomic_path
from splade_exp.results import write_results

PERQUERY_SUFFIX = ".perquery.parquet"
PERQUERY_COLS = ["run_id", "system", "model", "seed", "qk", "dk", "query_id"]


def trec_path(results_dir: str | Path, run_id: str, qk: int, dk: int) -> Path:
    return Path(results_dir) / "trec" / f"{run_id}.q{qk}_d{dk}.run.gz"


def perquery_path(results_dir: str | Path, run_id: str) -> Path:
    return Path(results_dir) / f"{run_id}{PERQUERY_SUFFIX}"


def write_trec(path: str | Path, run: dict[str, dict[str, float]], tag: str) -> Path:
    """Write ``run`` (query id -> doc id -> score) as a gzip TREC run, ranked by score desc, doc id."""
    with atomic_path(path) as tmp:
        # mtime=0: the same run gives the same bytes
        with open(tmp, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as fh:
            for qid, docs in run.items():
                ranked = sorted(docs.items(), key=lambda item: (-item[1], item[0]))
                fh.write("".join(f"{qid} Q0 {did} {rank} {score:.6g} {tag}\n"
                                 for rank, (did, score) in enumerate(ranked, 1)).encode())
    return Path(path)


def read_trec(path: str | Path) -> dict[str, dict[str, float]]:
    run: dict[str, dict[str, float]] = {}
    with gzip.open(path, "rt") as fh:
        for line in fh:
            qid, _, did, _, score, _ = line.split()
            run.setdefault(qid, {})[did] = float(score)
    return run


def write_perquery(path: str | Path, frames: list[pd.DataFrame]) -> Path:
    frame = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=PERQUERY_COLS)
    for col in ("qk", "dk", "seed"):
        frame[col] = frame[col].astype("int64")
    return write_results(path, frame)
