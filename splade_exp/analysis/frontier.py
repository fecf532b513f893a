"""Model identity, effectiveness/cost curves over the pruning grid, Pareto frontiers, BM25 budget."""
from __future__ import annotations

import logging
import math
import re
from typing import Sequence

import numpy as np
import pandas as pd

from .load import CHOICE_COLS, METRIC_COLS

log = logging.getLogger(__name__)

#: Columns that identify a model by default (constant or missing ones are skipped).
DEFAULT_MODEL_COLS: tuple[str, ...] = ("backbone", "vocab", "init", "pretrain", "head")


# --------------------------------------------------------------------------- row selection
def is_bm25(df: pd.DataFrame) -> pd.Series:
    if "system" not in df.columns:
        return pd.Series(False, index=df.index)
    return df["system"].astype(str).str.lower().eq("bm25")


def completed_runs(df: pd.DataFrame) -> pd.DataFrame:
    """Non-BM25 rows of runs that completed (missing status counts as completed)."""
    mask = ~is_bm25(df)
    if "status" in df.columns:
        status = df["status"].astype(object).where(df["status"].notna(), "")
        mask &= status.astype(str).isin(["completed", ""])
    if "diverged" in df.columns:
        mask &= ~df["diverged"].fillna(False).astype(bool)
    return df[mask]


# --------------------------------------------------------------------------- labels
def _fmt_value(v) -> str | None:
    if v is None or (isinstance(v, float) and math.isnan(v)) or v is pd.NA:
        return None
    if isinstance(v, (float, np.floating)):
        return f"{float(v):g}"
    s = str(v).strip()
    return s or None


def _short_key(col: str) -> str:
    """``cfg.pretrain.lr`` -> ``lr``; plain columns stay as they are."""
    return col.rsplit(".", 1)[-1] if col.startswith("cfg.") else col


def _hashable(s: pd.Series) -> pd.Series:
    return s.map(lambda v: repr(v) if isinstance(v, (list, dict, np.ndarray)) else v)


def _display(df: pd.DataFrame, col: str) -> pd.Series:
    return _hashable(df[col]).map(_fmt_value)


def varying_columns(df: pd.DataFrame, cols: Sequence[str]) -> list[str]:
    """Columns of ``cols`` that tell rows of ``df`` apart, in ``cols`` order.

    A plain column counts when it takes two or more distinct values. Two kinds of column count
    only when they separate rows that the other counted columns leave together: a column with a
    single value that is missing on some rows (typically one older result files lack), and a
    flattened config column (``cfg.*``; it often repeats what a choice label already says).
    """
    present = [c for c in cols if c in df.columns]
    if df.empty:
        return []
    vals = {c: _display(df, c) for c in present}
    primary, refine = [], []
    for c in present:
        distinct = vals[c].dropna().nunique()
        if distinct == 0 or (distinct == 1 and not vals[c].isna().any()):
            continue
        (refine if c.startswith("cfg.") or distinct == 1 else primary).append(c)
    key = pd.Series("", index=df.index)
    for c in primary:
        key = key + "\x1f" + vals[c].fillna("\0")
    chosen = set(primary)
    for c in refine:
        v = vals[c].fillna("\0")
        if (pd.DataFrame({"k": key, "v": v}).groupby("k")["v"].nunique() > 1).any():
            chosen.add(c)
            key = key + "\x1f" + v
    return [c for c in present if c in chosen]


def natural_key(text) -> str:
    """Sort key that orders numbers inside labels by value (``k=2`` before ``k=16``)."""
    def pad(m: re.Match) -> str:
        try:
            return f"{float(m.group()):024.8f}"
        except ValueError:
            return m.group()

    return re.sub(r"\d+(?:\.\d+)?(?:e[-+]?\d+)?", pad, str(text))


def model_label(
    df: pd.DataFrame,
    cols: Sequence[str] = DEFAULT_MODEL_COLS,
    use_model_column: bool = True,
) -> pd.Series:
    """A readable model label per row, e.g. ``"vocab=bert-30k, pretrain=emlm"``.

    Only columns of ``cols`` that vary across ``df`` appear in labels (constant or missing ones
    would add nothing; ``cfg.*`` columns only appear when they separate runs the other columns
    leave together). When none varies the constant values of the non-``cfg.*`` columns are used;
    when no column of ``cols`` has a value each run is its own model (``run_id``). A non-empty ``model`` column wins over all of
    this when ``use_model_column``. BM25 rows are labelled ``"BM25"``.
    """
    if df.empty:
        return pd.Series([], index=df.index, dtype=object, name="model_label")
    splade = df[~is_bm25(df)]
    present = [c for c in cols if c in df.columns and _display(splade, c).notna().any()]
    shown = varying_columns(splade, present) or [c for c in present if not c.startswith("cfg.")]

    def build(row) -> str:
        parts = []
        for c in shown:
            v = _fmt_value(row[c])
            if v is not None:
                parts.append(f"{_short_key(c)}={v}")
        if parts:
            return ", ".join(parts)
        if not present and "run_id" in row.index and _fmt_value(row["run_id"]):
            return str(row["run_id"])
        return "(default)"

    labels = pd.Series([build(row) for _, row in df.iterrows()], index=df.index, dtype=object)
    if use_model_column and "model" in df.columns:
        given = df["model"].map(_fmt_value)
        labels = given.where(given.notna(), labels)
    labels = labels.where(~is_bm25(df), "BM25")
    return labels.astype(object).rename("model_label")


def pretrain_config_cols(df: pd.DataFrame) -> list[str]:
    """The ``cfg.pretrain.*`` columns of ``df``, sorted; seeds and ``cfg.pretrain.name`` (the
    ``pretrain`` column again) excluded."""
    return sorted(
        c for c in df.columns
        if c.startswith("cfg.pretrain.") and "seed" not in c and c != "cfg.pretrain.name"
    )


def _warn_merged(runs: pd.DataFrame, labels: pd.Series, cols: Sequence[str]) -> None:
    """Log when one label averages runs whose configurations differ beyond the seed."""
    check = [c for c in (*CHOICE_COLS, "head_k", "vocab_size", *pretrain_config_cols(runs))
             if c in runs.columns and c not in cols]
    if not check or runs.empty:
        return
    frame = runs[check].apply(_hashable).assign(_label=labels.values)
    for label, group in frame.groupby("_label", sort=True):
        differ = [c for c in check if group[c].map(_fmt_value).nunique(dropna=False) > 1]
        if differ:
            log.warning(
                "model %r groups runs that differ on %s; pass model_cols including them to separate",
                label,
                ", ".join(differ),
            )


# --------------------------------------------------------------------------- curves
def sd_col(metric: str) -> str:
    """Name of the across-runs (seeds) standard deviation column of ``metric``: ``"mrr@10 sd"``."""
    return f"{metric} sd"


def model_curves(
    df: pd.DataFrame,
    metric: str,
    cost: str = "flops",
    model_cols: Sequence[str] = DEFAULT_MODEL_COLS,
) -> pd.DataFrame:
    """Per model, the mean ``metric`` and ``cost`` at each pruning point, sorted by cost.

    Only completed non-BM25 runs count; seeds of one model are averaged (``n_runs`` says how many
    runs a point averages) and their spread is the standard deviation of the runs' values
    (``ddof=1``; NaN for one run). Returns columns ``model, qk, dk, <cost>, <metric>, n_runs,
    "<cost> sd", "<metric> sd"`` sorted by model, then cost (ascending), then ``qk``/``dk``.
    """
    out_cols = ["model", "qk", "dk", cost, metric, "n_runs", sd_col(cost), sd_col(metric)]
    if metric not in df.columns or cost not in df.columns:
        return pd.DataFrame(columns=out_cols)
    runs = completed_runs(df)
    runs = runs[runs[metric].notna() & runs[cost].notna()]
    if runs.empty:
        return pd.DataFrame(columns=out_cols)
    labels = model_label(runs, model_cols)
    _warn_merged(runs, labels, model_cols)
    frame = pd.DataFrame(
        {
            "model": labels.values,
            "qk": runs["qk"].values if "qk" in runs else 0,
            "dk": runs["dk"].values if "dk" in runs else 0,
            cost: runs[cost].astype(float).values,
            metric: runs[metric].astype(float).values,
            "run_id": runs["run_id"].values if "run_id" in runs else np.arange(len(runs)),
        }
    )
    frame["qk"] = pd.array(frame["qk"], dtype="Int64").fillna(0)
    frame["dk"] = pd.array(frame["dk"], dtype="Int64").fillna(0)
    agg = (
        frame.groupby(["model", "qk", "dk"], sort=True)
        .agg(**{cost: (cost, "mean"), metric: (metric, "mean"), "n_runs": ("run_id", "nunique"),
                sd_col(cost): (cost, "std"), sd_col(metric): (metric, "std")})
        .reset_index()
    )
    if cost == metric:
        agg = agg.loc[:, ~agg.columns.duplicated()]
    agg = agg.sort_values(["model", cost, "qk", "dk"], kind="mergesort",
                          key=lambda col: col.map(natural_key) if col.name == "model" else col)
    agg = agg.reset_index(drop=True)
    return agg[[c for c in out_cols if c in agg.columns]]


def pareto_frontier(df: pd.DataFrame, metric: str, cost: str = "flops") -> pd.DataFrame:
    """Rows of ``df`` not dominated by another (higher ``metric`` is better, lower ``cost`` is).

    A point is kept when no point has ``cost <= c`` and ``metric >= m`` with one of them strict.
    Of several points with exactly the same ``(cost, metric)`` only the first in ``df`` order is
    kept, so the result is deterministic. Rows with a missing value are ignored. The frontier is
    returned sorted by cost (ascending), with ``df``'s columns and index.
    """
    if metric not in df.columns or cost not in df.columns:
        raise KeyError(f"pareto_frontier needs columns {metric!r} and {cost!r}")
    pts = df[df[metric].notna() & df[cost].notna()]
    if pts.empty:
        return pts.copy()
    order = pd.DataFrame(
        {
            "c": pts[cost].astype(float).to_numpy(),
            "m": -pts[metric].astype(float).to_numpy(),
            "pos": np.arange(len(pts)),
        }
    ).sort_values(["c", "m", "pos"], kind="mergesort")
    keep = []
    best = -math.inf
    for pos, m in zip(order["pos"], -order["m"]):
        if m > best:
            keep.append(pos)
            best = m
    return pts.iloc[keep]


# --------------------------------------------------------------------------- BM25
def bm25_budget(df: pd.DataFrame) -> pd.DataFrame:
    """BM25 rows: ``run_id``, ``data`` (collection), FLOPS and every metric present.

    Copies of one BM25 result (same collection and metrics, e.g. written into several sweep
    folders) appear once. Empty, with the same columns, when the results hold no BM25 row.
    """
    metric_cols = [c for c in METRIC_COLS if c in df.columns]
    rows = df[is_bm25(df)]
    cols = [c for c in ("run_id", "data") if c in df.columns] + metric_cols
    if rows.empty:
        return pd.DataFrame(columns=cols)
    key = [c for c in ("data", *metric_cols) if c in rows.columns]
    rows = rows.drop_duplicates(subset=key, keep="first")[cols]
    if "data" in rows.columns:
        rows = rows.sort_values("data", kind="mergesort")
    return rows.reset_index(drop=True)
