"""A small synthetic results directory shared by the analysis tests.

Test modules import the ``results_dir`` fixture from here (``from analysis_fixtures import
results_dir``); this is not a ``conftest.py`` so that it never shadows ``tests/conftest.py``,
which other test modules import as ``conftest``.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

os.environ.setdefault("MPLBACKEND", "Agg")

GRID = [(0, 0), (7, 20), (5, 20), (5, 10)]
DATA = "msmarco-dev"
EMLM_STATS = {
    "emlm.accuracy": 0.41,
    "emlm.doc-score-avg@10": 5.2,
    "emlm.doc-score-std@10": 1.1,
    "emlm.logit-score-std": 2.3,
    "emlm.non-neg-terms-avg": 120.0,
}


def _run_rows(run_id, sweep, *, base_mrr, base_flops, seed=0, status="completed",
              diverged_step=None, grid=GRID, **config):
    rows = []
    for qk, dk in grid:
        keep = 1.0 if (qk, dk) == (0, 0) else (qk / 10) * (dk / 40)
        loss = 0.0 if (qk, dk) == (0, 0) else 0.04 + 0.03 * (1 - keep)
        ok = status == "completed"
        rows.append(
            {
                "run_id": run_id,
                "sweep": sweep,
                "system": "splade",
                "model": "",
                "status": status,
                "diverged_step": diverged_step,
                "wall_time_s": 3600.0,
                "backbone": "bert",
                "vocab": "bert-30k",
                "init": "mlm",
                "pretrain": "none",
                "loss": "margin-mse",
                "head": "mlm",
                "data": DATA,
                "head_k": 1.0,
                "vocab_size": 30522,
                "seed": seed,
                "qk": qk,
                "dk": dk,
                "mrr@10": base_mrr * (1 - loss) + 0.001 * seed if ok else np.nan,
                "recall@10": min(1.0, base_mrr * 1.9 * (1 - loss)) if ok else np.nan,
                "recall@100": min(1.0, base_mrr * 2.5 * (1 - loss / 2)) if ok else np.nan,
                "ndcg@10": base_mrr * 1.15 * (1 - loss) if ok else np.nan,
                "flops": base_flops * keep if ok else np.nan,
                "l0_q": 25.0 * (qk / 25 if qk else 1) if ok else np.nan,
                "l0_d": 180.0 * (dk / 180 if dk else 1) if ok else np.nan,
                "posting_mean": 40.0 * keep if ok else np.nan,
                "posting_max": 9e5 * keep if ok else np.nan,
                "posting_var": (2e6 * base_flops * keep) if ok else np.nan,
                "head.norm_before": 1.0,
                "head.norm_after": config.get("head_k", 1.0),
                **{k: np.nan for k in EMLM_STATS},
                **config,
            }
        )
    return rows


def _write(path: Path, rows) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows).to_parquet(path, index=False)


def build_results_dir(root: Path) -> Path:
    """Write the synthetic results tree under ``root`` and return it."""
    root = Path(root)
    # vocabulary ablation: three vocabularies, two seeds of the first
    vocab = root / "vocab_ablation"
    _write(vocab / "v-bert30k-s0.parquet",
           _run_rows("v-bert30k-s0", "vocab_ablation", base_mrr=0.36, base_flops=1.6))
    _write(vocab / "v-bert30k-s1.parquet",
           _run_rows("v-bert30k-s1", "vocab_ablation", base_mrr=0.36, base_flops=1.6, seed=1))
    _write(vocab / "v-bert100k-s0.parquet",
           _run_rows("v-bert100k-s0", "vocab_ablation", base_mrr=0.375, base_flops=0.9,
                     vocab="bert-100k", vocab_size=100000))
    _write(vocab / "v-splade60k-s0.parquet",
           _run_rows("v-splade60k-s0", "vocab_ablation", base_mrr=0.38, base_flops=2.4,
                     vocab="splade-en-60k", vocab_size=60000))
    # an incomplete file being written, a dot-file and garbage must all be ignored
    _write(vocab / "v-partial.parquet.tmp",
           _run_rows("v-partial", "vocab_ablation", base_mrr=0.9, base_flops=0.1))
    _write(vocab / ".v-hidden.parquet",
           _run_rows("v-hidden", "vocab_ablation", base_mrr=0.9, base_flops=0.1))
    (vocab / "v-garbage.tmp").write_bytes(b"not parquet")

    # pretraining study: no pretraining vs EMLM at two learning rates
    pre = root / "pretrain_study"
    for run_id, pretrain, lr, mrr in [("p-none", "none", np.nan, 0.355),
                                      ("p-emlm-lr1", "emlm", 1e-4, 0.37),
                                      ("p-emlm-lr5", "emlm", 5e-5, 0.365)]:
        extra = {"cfg.pretrain.lr": lr, "cfg.pretrain.corpus": "msmarco" if pretrain == "emlm" else None}
        rows = _run_rows(run_id, "pretrain_study", base_mrr=mrr, base_flops=1.2, pretrain=pretrain,
                         **extra)
        if pretrain == "emlm":
            for r in rows:
                r.update({k: v * (1 + lr * 1e3) for k, v in EMLM_STATS.items()})
                r["emlm.artifact"] = f"emlm-{run_id[7:]}"  # a string emlm.* column
        _write(pre / f"{run_id}.parquet", rows)
    curves = []
    for art, lr in [("emlm-lr1", 1e-4), ("emlm-lr5", 5e-5)]:
        for split in ("train", "val"):
            for step in range(0, 2001, 250 if split == "train" else 500):
                speed = 1 + lr * 1e4
                curves.append({"artifact_id": art, "pretrain": "emlm", "cfg.pretrain.name": "emlm",
                               "cfg.pretrain.lr": lr,
                               "cfg.pretrain.corpus": "msmarco", "step": step, "split": split,
                               "loss": 6.0 / (1 + speed * step / 400) + (0.15 if split == "val" else 0),
                               "accuracy": 0.45 * (1 - np.exp(-speed * step / 600))})
    _write(pre / "emlm.curves.parquet", curves)

    # MLM-head scale: two backbones over k, one diverged run and one failed run
    head = root / "head_scale"
    for backbone, ks in [("bert", [0.25, 1.0, 4.0, 16.0]), ("distilbert", [0.25, 1.0, 4.0])]:
        for k in ks:
            mrr = 0.34 + 0.02 * np.log2(k) - 0.004 * np.log2(k) ** 2 - (0.01 if backbone == "distilbert" else 0)
            run_id = f"h-{backbone}-k{k:g}"
            _write(head / f"{run_id}.parquet",
                   _run_rows(run_id, "head_scale", base_mrr=mrr, base_flops=1.0 + k / 8,
                             backbone=backbone, head_k=k))
    _write(head / "h-distilbert-k16.parquet",
           _run_rows("h-distilbert-k16", "head_scale", base_mrr=0.3, base_flops=1.0,
                     status="diverged", diverged_step=1200, grid=[(0, 0)],
                     backbone="distilbert", head_k=16.0))
    _write(head / "h-bert-k64.parquet",
           _run_rows("h-bert-k64", "head_scale", base_mrr=0.3, base_flops=1.0, status="failed",
                     grid=[(0, 0)], head_k=64.0))

    # an older file: fewer columns (no status, no diagnostics)
    old = _run_rows("v-old-s0", "vocab_ablation", base_mrr=0.33, base_flops=3.1, vocab="wordpiece-old")
    keep = ["run_id", "sweep", "backbone", "vocab", "init", "pretrain", "head", "data", "qk", "dk",
            "mrr@10", "recall@10", "flops", "l0_q", "l0_d", "posting_var"]
    _write(root / "old" / "v-old-s0.parquet", [{k: r[k] for k in keep} for r in old])

    # BM25: one file per collection, copied twice in the tree
    bm25 = [{"run_id": "bm25-msmarco-dev", "sweep": "baselines", "system": "bm25", "model": "BM25",
             "status": "completed", "data": DATA, "qk": 0, "dk": 0, "mrr@10": 0.187,
             "recall@10": 0.39, "recall@100": 0.66, "ndcg@10": 0.23, "flops": 0.8}]
    _write(root / "baselines" / "bm25-msmarco-dev.parquet", bm25)
    _write(root / "vocab_ablation" / "bm25-msmarco-dev.parquet",
           [{**bm25[0], "sweep": "vocab_ablation"}])
    return root


_BUILT: dict[str, Path] = {}


@pytest.fixture(scope="session")
def results_dir(tmp_path_factory) -> Path:
    """The synthetic results directory, built once per test session."""
    if "root" not in _BUILT or not _BUILT["root"].exists():
        _BUILT["root"] = build_results_dir(tmp_path_factory.mktemp("results"))
    return _BUILT["root"]


# ------------------------------------------------------------------------------ seeds + per-query
SEEDED_MODELS = {"strong": 0.15, "twin": 0.004, "weak": 0.0}  # label -> lift over the query's base score
N_QUERIES = 60


def build_seeded_dir(root: Path, seeds=(0, 1), models=SEEDED_MODELS, sweep: str = "seeded") -> Path:
    """A two-seed sweep of three models with per-query files, as the evaluation writes them
    (``<run_id>.perquery.parquet``: one row per pruning point and query; the results rows hold
    the per-query means). "strong" is far above the others at every point, "twin" within noise
    of "weak"."""
    root = Path(root)
    rng = np.random.default_rng(7)
    queries = [f"q{i:03d}" for i in range(N_QUERIES)]
    base = rng.uniform(0.1, 0.7, size=N_QUERIES)  # how hard each query is, shared by all models
    for label, lift in models.items():
        for seed in seeds:
            run_id = f"{label}-s{seed}"
            rows = _run_rows(run_id, sweep, base_mrr=0.4, base_flops=1.0 + 0.3 * lift, seed=seed, model=label)
            per_query = []
            for row in rows:
                keep = 1.0 if (row["qk"], row["dk"]) == (0, 0) else 0.8
                mrr = np.clip(base * keep + lift + rng.normal(0, 0.05, N_QUERIES), 0, 1)
                rec = np.clip(mrr * 1.3, 0, 1)
                scores = {"mrr@10": mrr, "recall@10": rec, "recall@100": np.clip(rec * 1.2, 0, 1),
                          "ndcg@10": np.clip(mrr * 1.1, 0, 1)}
                row.update({m: float(v.mean()) for m, v in scores.items()})
                per_query += [{"run_id": run_id, "system": "splade", "model": label, "seed": seed,
                               "qk": row["qk"], "dk": row["dk"], "query_id": q,
                               **{m: float(v[i]) for m, v in scores.items()}} for i, q in enumerate(queries)]
            _write(root / sweep / f"{run_id}.parquet", rows)
            _write(root / sweep / f"{run_id}.perquery.parquet", per_query)
    bm25 = {"run_id": "bm25-seeded", "sweep": sweep, "system": "bm25", "model": "BM25", "status": "completed",
            "data": DATA, "qk": 0, "dk": 0, "flops": 0.5}
    mrr = np.clip(base * 0.7, 0, 1)
    _write(root / sweep / "bm25-seeded.parquet", [{**bm25, "mrr@10": float(mrr.mean()), "recall@10": 0.3}])
    _write(root / sweep / "bm25-seeded.perquery.parquet",
           [{"run_id": "bm25-seeded", "system": "bm25", "model": "BM25", "seed": 0, "qk": 0, "dk": 0,
             "query_id": q, "mrr@10": float(mrr[i]), "recall@10": 0.3, "recall@100": 0.5, "ndcg@10": 0.3}
            for i, q in enumerate(queries)])
    return root


@pytest.fixture(scope="session")
def seeded_dir(tmp_path_factory) -> Path:
    """The two-seed sweep with per-query files, built once per test session."""
    if "seeded" not in _BUILT or not _BUILT["seeded"].exists():
        _BUILT["seeded"] = build_seeded_dir(tmp_path_factory.mktemp("seeded"))
    return _BUILT["seeded"]
