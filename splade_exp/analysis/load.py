"""Load sweep result files into tidy, typed DataFrames.

A results directory holds (recursively) one Parquet file per run, ``<run_id>.parquet``, with one
row per ``(run, qk, dk)`` pruning point, EMLM training curves in ``*.curves.parquet`` files and
per-query metrics in ``*.perquery.parquet`` files (one row per pruning point and judged query).
Files whose name starts with ``.`` or ends with ``.tmp`` (or that sit in a hidden directory) are
being written and are ignored.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Iterable

import numpy as np
import pandas as pd

from splade_exp.results import read_results

log = logging.getLogger(__name__)

CURVES_SUFFIX = ".curves.parquet"
PERQUERY_SUFFIX = ".perquery.parquet"

IDENTITY_COLS = ("run_id", "sweep", "system", "model", "status")
CHOICE_COLS = ("backbone", "vocab", "init", "pretrain", "loss", "head", "data")
STRING_COLS = IDENTITY_COLS + CHOICE_COLS
INT_COLS = ("qk", "dk", "diverged_step", "vocab_size", "seed")
METRIC_COLS = (
    "mrr@10",
    "recall@10",
    "recall@100",
    "ndcg@10",
    "flops",
    "l0_q",
    "l0_d",
    "posting_mean",
    "posting_max",
    "posting_var",
)
# the latency engine's columns (splade_exp/engines.py), NaN for eval/engine=exact
ENGINE_COLS = (
    "latency_mean_ms",
    "latency_p50_ms",
    "latency_p99_ms",
    "index_size_mb",
    "index_build_s",
    "recall@1000_vs_exact",
    "engine_mrr@10",
)
HEAD_DIAG_COLS = (
    "head.norm_before",
    "head.norm_after",
    "head.logit_std_init",
    "head.active_dims_step0",
)
EMLM_COLS = (
    "emlm.accuracy_step0",
    "emlm.accuracy",
    "emlm.val_prior_accuracy",
    "emlm.val_loss_step0",
    "emlm.val_loss",
    "emlm.val_prior_loss",
    "emlm.doc-score-avg@10",
    "emlm.doc-score-std@10",
    "emlm.doc-score-avg@100",
    "emlm.doc-score-std@100",
    "emlm.doc-score-avg@all",
    "emlm.doc-score-std@all",
    "emlm.logit-score-std",
    "emlm.logit-score-std-pooled",
    "emlm.non-neg-terms-avg",
    "emlm.non-neg-terms-std",
)
FLOAT_COLS = ("wall_time_s", "head_k") + METRIC_COLS + ENGINE_COLS + HEAD_DIAG_COLS + EMLM_COLS
EXPECTED_COLS = STRING_COLS + INT_COLS + FLOAT_COLS

CURVE_STRING_COLS = ("artifact_id", "pretrain", "split")
CURVE_FLOAT_COLS = ("loss", "accuracy")


# --------------------------------------------------------------------------- file discovery
def _is_incomplete(path: Path, root: Path) -> bool:
    """True for files still being written: a dot-name, a ``.tmp`` suffix, or a hidden folder."""
    name = path.name
    if name.startswith(".") or name.endswith(".tmp") or ".tmp." in name:
        return True
    return any(part.startswith(".") for part in path.relative_to(root).parts[:-1])


def _check_dir(path: str | Path) -> Path:
    root = Path(path).expanduser()
    if not root.exists():
        raise FileNotFoundError(f"results directory does not exist: {root}")
    if not root.is_dir():
        raise NotADirectoryError(f"results path is not a directory: {root}")
    return root


def result_files(path: str | Path) -> list[Path]:
    """Complete per-run result files under ``path`` (curves and per-query files excluded), sorted."""
    root = _check_dir(path)
    files = [
        p
        for p in root.rglob("*.parquet")
        if p.is_file() and not p.name.endswith((CURVES_SUFFIX, PERQUERY_SUFFIX)) and not _is_incomplete(p, root)
    ]
    return sorted(files)


def perquery_files(path: str | Path) -> list[Path]:
    """Complete ``*.perquery.parquet`` files under ``path``, sorted."""
    root = _check_dir(path)
    return sorted(p for p in root.rglob("*" + PERQUERY_SUFFIX) if p.is_file() and not _is_incomplete(p, root))


def curve_files(path: str | Path) -> list[Path]:
    """Complete ``*.curves.parquet`` files under ``path``, sorted."""
    root = _check_dir(path)
    files = [
        p for p in root.rglob("*" + CURVES_SUFFIX) if p.is_file() and not _is_incomplete(p, root)
    ]
    return sorted(files)


def _concat(frames: list[pd.DataFrame]) -> pd.DataFrame:
    """Concatenate frames whose columns differ; all-missing columns do not decide dtypes."""
    columns = list(dict.fromkeys(c for f in frames for c in f.columns))
    trimmed = [f.dropna(axis=1, how="all") for f in frames]
    df = pd.concat(trimmed, ignore_index=True, sort=False)
    return df.reindex(columns=columns)  # all-missing columns come back as NaN, in one step


def _read_many(files: Iterable[Path]) -> list[pd.DataFrame]:
    frames = []
    for f in files:
        try:
            frame = read_results(f)
        except Exception as exc:  # a truncated file must not hide every other result
            log.warning("skipping unreadable result file %s: %s", f, exc)
            continue
        if len(frame):
            frames.append(frame)
    return frames


# --------------------------------------------------------------------------- typing
def _as_str(s: pd.Series) -> pd.Series:
    """Object column of Python ``str``; missing values become ``""``."""
    out = s.astype(object).where(s.notna(), "")
    return out.map(lambda v: v if isinstance(v, str) else str(v)).astype(object)


def _as_int(s: pd.Series) -> pd.Series:
    num = pd.to_numeric(s, errors="coerce")
    return num.round().astype("Int64")


def _as_float(s: pd.Series) -> pd.Series:
    return pd.to_numeric(s, errors="coerce").astype(float)


def tidy_results(df: pd.DataFrame) -> pd.DataFrame:
    """Add missing expected columns and give every known column its type.

    - identity and choice columns: ``str`` (missing -> ``""``); ``system`` defaults to ``"splade"``;
    - ``qk``, ``dk``, ``diverged_step``, ``vocab_size``, ``seed``: nullable ``Int64``;
    - metrics, diagnostics, ``head_k``, ``wall_time_s``: ``float`` (missing -> NaN);
    - ``status`` missing -> ``"diverged"`` when ``diverged_step`` is set, else ``"completed"``;
    - ``diverged``: boolean, ``status == "diverged"`` or a ``diverged_step`` is recorded.
    ``cfg.*`` and any other columns are kept as read.
    """
    df = df.copy()
    for col in EXPECTED_COLS:
        if col not in df.columns:
            df[col] = np.nan
    for col in STRING_COLS:
        df[col] = _as_str(df[col])
    for col in INT_COLS:
        df[col] = _as_int(df[col])
    for col in FLOAT_COLS:
        df[col] = _as_float(df[col])

    df["system"] = df["system"].str.strip().str.lower().where(df["system"] != "", "splade")
    status = df["status"].str.strip().str.lower()
    default_status = np.where(df["diverged_step"].notna(), "diverged", "completed")
    df["status"] = status.where(status != "", pd.Series(default_status, index=df.index))
    df["diverged"] = ((df["status"] == "diverged") | df["diverged_step"].notna()).astype(bool)

    bm25 = df["system"] == "bm25"
    df.loc[bm25, "qk"] = df.loc[bm25, "qk"].fillna(0)
    df.loc[bm25, "dk"] = df.loc[bm25, "dk"].fillna(0)

    front = [c for c in EXPECTED_COLS if c in df.columns] + ["diverged"]
    rest = sorted(c for c in df.columns if c not in front)
    return df[front + rest]


def _dedupe(df: pd.DataFrame) -> pd.DataFrame:
    """Drop repeated BM25 rows (same collection and metrics) and repeated run points."""
    bm25 = df["system"] == "bm25"
    metric_cols = [c for c in METRIC_COLS if c in df.columns]
    bm = df[bm25].drop_duplicates(subset=["data", *metric_cols], keep="first")
    runs = df[~bm25]
    dup = runs.duplicated(subset=["run_id", "qk", "dk"], keep="last") & (runs["run_id"] != "")
    if dup.any():
        log.warning(
            "%d result rows repeat a (run_id, qk, dk) already seen; keeping the last file's row",
            int(dup.sum()),
        )
        runs = runs[~dup]
    return pd.concat([runs, bm], ignore_index=True)


def load_results(path: str | Path) -> pd.DataFrame:
    """All complete run result files under ``path`` as one tidy DataFrame (see ``tidy_results``).

    Raises ``FileNotFoundError`` when ``path`` does not exist and ``ValueError`` when it holds no
    (non-empty, readable) result file.
    """
    root = _check_dir(path)
    files = result_files(root)
    frames = _read_many(files)
    if not frames:
        raise ValueError(
            f"no result files (*.parquet, excluding *.curves.parquet and incomplete files) "
            f"with rows found under {root}"
        )
    df = _concat(frames)
    df = _dedupe(tidy_results(df))
    sort_cols = ["system", "sweep", "run_id", "qk", "dk"]
    return df.sort_values(sort_cols, kind="mergesort", na_position="last").reset_index(drop=True)


def tidy_curves(df: pd.DataFrame) -> pd.DataFrame:
    """Type an EMLM-curves frame: str labels, ``Int64`` step, float loss/accuracy."""
    df = df.copy()
    for col in CURVE_STRING_COLS:
        if col not in df.columns:
            df[col] = np.nan
        df[col] = _as_str(df[col])
    df["split"] = df["split"].str.strip().str.lower()
    if "step" not in df.columns:
        df["step"] = np.nan
    df["step"] = _as_int(df["step"])
    for col in CURVE_FLOAT_COLS:
        if col not in df.columns:
            df[col] = np.nan
        df[col] = _as_float(df[col])
    front = [*CURVE_STRING_COLS, "step", *CURVE_FLOAT_COLS]
    rest = sorted(c for c in df.columns if c not in front)
    return df[front + rest]


def load_curves(path: str | Path) -> pd.DataFrame:
    """EMLM training curves (``*.curves.parquet``) under ``path``; an empty frame when none.

    Raises ``FileNotFoundError`` when ``path`` does not exist.
    """
    root = _check_dir(path)
    frames = _read_many(curve_files(root))
    if not frames:
        return tidy_curves(pd.DataFrame())
    df = tidy_curves(_concat(frames))
    hashable = [c for c in df.columns if df[c].map(lambda v: isinstance(v, (list, dict))).sum() == 0]
    df = df.drop_duplicates(subset=hashable)
    return df.sort_values(["artifact_id", "split", "step"], kind="mergesort").reset_index(drop=True)


PERQUERY_KEYS = ("run_id", "system", "model", "seed", "qk", "dk", "query_id")
PERQUERY_METRICS = ("mrr@10", "recall@10", "recall@100", "ndcg@10")


def load_perquery(path: str | Path) -> pd.DataFrame:
    """Per-query metrics (``*.perquery.parquet``) under ``path``: one row per (run, qk, dk, query).

    ``run_id``, ``system``, ``model`` and ``query_id`` are ``str``, ``seed``/``qk``/``dk``
    ``Int64``, metrics float. An empty frame with those columns when there is no such file
    (results written before per-query metrics were stored). Raises ``FileNotFoundError`` when
    ``path`` does not exist.
    """
    root = _check_dir(path)
    frames = _read_many(perquery_files(root))
    df = _concat(frames) if frames else pd.DataFrame(columns=[*PERQUERY_KEYS, *PERQUERY_METRICS])
    for col in ("run_id", "system", "model", "query_id"):
        df[col] = _as_str(df[col]) if col in df else ""
    for col in ("seed", "qk", "dk"):
        df[col] = _as_int(df[col]) if col in df else pd.array([pd.NA] * len(df), dtype="Int64")
    for col in PERQUERY_METRICS:
        if col in df:
            df[col] = _as_float(df[col])
    dup = df.duplicated(subset=["run_id", "qk", "dk", "query_id"], keep="last")
    if dup.any():
        log.warning("%d per-query rows repeat a (run_id, qk, dk, query_id); keeping the last file's", int(dup.sum()))
        df = df[~dup]
    return df.sort_values(["run_id", "qk", "dk", "query_id"], kind="mergesort").reset_index(drop=True)


# --------------------------------------------------------------------------- Weights & Biases
def _flatten(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(_flatten(v, key + "."))
        else:
            out[key] = v
    return out


def load_wandb(project: str, entity: str | None = None, filters: dict | None = None) -> pd.DataFrame:
    """Results of a W&B project, one row per run, typed like ``load_results``.

    The run config is flattened into ``cfg.*`` columns (top-level choice keys such as ``vocab``
    are also copied to their own column when present); scalar summary values become columns.
    Runs that logged per-pruning-point rows under a summary key ``results`` (a list of dicts with
    ``qk``/``dk``) give one row per point. Needs network access and ``wandb`` credentials.
    """
    import wandb  # lazy: only this function needs it

    api = wandb.Api()
    path = f"{entity}/{project}" if entity else project
    rows = []
    for run in api.runs(path, filters=filters or {}):
        config = {k: v for k, v in dict(run.config).items() if not str(k).startswith("_")}
        base = {f"cfg.{k}": v for k, v in _flatten(config).items()}
        for col in CHOICE_COLS + ("head_k", "vocab_size", "seed", "model", "system", "sweep"):
            if col in config and not isinstance(config[col], dict):
                base[col] = config[col]
        summary = {k: v for k, v in dict(run.summary).items() if not str(k).startswith("_")}
        points = summary.pop("results", None)
        scalars = {
            k: v for k, v in summary.items() if isinstance(v, (int, float, str, bool)) or v is None
        }
        base.update(scalars)
        base.setdefault("run_id", run.id)
        sweep = getattr(run, "sweep", None)
        base.setdefault("sweep", (getattr(sweep, "name", None) or getattr(sweep, "id", "")) if sweep else "")
        state = getattr(run, "state", "")
        base.setdefault("status", {"finished": "completed", "crashed": "failed"}.get(state, state))
        if isinstance(points, list) and points and all(isinstance(p, dict) for p in points):
            rows.extend({**base, **p} for p in points)
        else:
            rows.append({"qk": 0, "dk": 0, **base})
    if not rows:
        raise ValueError(f"no runs found in W&B project {path}")
    return tidy_results(pd.DataFrame(rows))
