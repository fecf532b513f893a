"""Paired significance tests between models at each pruning point, from per-query metrics.

The evaluation writes one per-query file per run beside its results file,
``<results_dir>/<sweep>/<run_id>.perquery.parquet``: one row per (pruning point, judged query),
columns ``run_id, system, model, seed, qk, dk, query_id`` and the effectiveness metrics
(:data:`PERQUERY_METRICS`; a query with nothing retrieved scores 0).

The unit of a test is the query. Two models are compared at one pruning point on the queries
both were evaluated on, with a paired two-sided test on their per-query scores: Student's paired
t-test (``scipy.stats.ttest_rel``) by default, the Wilcoxon signed-rank test
(``scipy.stats.wilcoxon``) where asked. A model with several runs (seeds) enters with the mean of
its runs per query: its seeds are never pooled into extra observations, which would count every
query once per seed and make the test far too confident; seed-to-seed spread is reported apart
(mean ± std of the runs' metrics, :func:`splade_exp.analysis.tables.results_table`).

All comparisons shown in one table form one family: their p-values are adjusted together with
Holm's step-down method (:func:`holm`), which controls the family-wise error rate without
assuming the tests independent (they are not: the same queries, models and metrics recur).
"""
from __future__ import annotations

import logging
import string
from itertools import combinations
from typing import Sequence

import numpy as np
import pandas as pd

from .load import PERQUERY_METRICS

log = logging.getLogger(__name__)

TESTS = ("t", "wilcoxon")
ALPHA = 0.05
TEST_NAMES = {"t": "paired two-sided t-test", "wilcoxon": "two-sided Wilcoxon signed-rank test"}


def holm(pvalues: Sequence[float]) -> np.ndarray:
    """Holm-adjusted p-values, in the input order; NaN entries stay NaN and are not counted.

    With the m p-values sorted ascending, ``p_(i)`` becomes ``max_{j <= i} min(1, (m - j + 1) p_(j))``
    (1-based ``j``): the smallest is multiplied by m, the next by m - 1, ..., and the running
    maximum keeps the adjusted values in the order of the raw ones.
    """
    p = np.asarray(pvalues, dtype=float)
    out = np.full(p.shape, np.nan)
    ok = np.flatnonzero(~np.isnan(p))
    m = len(ok)
    if m == 0:
        return out
    order = ok[np.argsort(p[ok], kind="stable")]
    scaled = np.minimum(1.0, p[order] * (m - np.arange(m)))
    out[order] = np.maximum.accumulate(scaled)
    return out


def paired_test(a: Sequence[float], b: Sequence[float], test: str = "t") -> tuple[float, float]:
    """(statistic, two-sided p-value) of a paired test of ``a`` against ``b`` (same queries, same order).

    Equal scores on every query give (0, 1): no evidence of a difference (both tests are
    undefined there). Fewer than two queries give (NaN, NaN).
    """
    from scipy import stats

    if test not in TESTS:
        raise ValueError(f"test must be one of {TESTS}, got {test!r}")
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if a.shape != b.shape:
        raise ValueError(f"paired scores must have the same length, got {a.shape} and {b.shape}")
    if len(a) < 2:
        return float("nan"), float("nan")
    if np.all(a == b):
        return 0.0, 1.0
    result = stats.ttest_rel(a, b) if test == "t" else stats.wilcoxon(a, b)
    return float(result.statistic), float(result.pvalue)


def model_scores(perquery: pd.DataFrame, labels: dict[str, str], metrics: Sequence[str]) -> pd.DataFrame:
    """Per (model, qk, dk, query_id): each metric averaged over the model's runs (seeds).

    ``labels`` maps run ids to model labels; rows of other runs (BM25, failed runs) are dropped.
    Returns columns ``model, qk, dk, query_id, n_runs`` and the metrics present.
    """
    metrics = [m for m in metrics if m in perquery.columns]
    rows = perquery[perquery["run_id"].isin(labels.keys())]
    if rows.empty or not metrics:
        return pd.DataFrame(columns=["model", "qk", "dk", "query_id", "n_runs", *metrics])
    rows = rows.assign(model=rows["run_id"].map(labels), query_id=rows["query_id"].astype(str))
    agg = {m: (m, "mean") for m in metrics}
    agg["n_runs"] = ("run_id", "nunique")
    out = rows.groupby(["model", "qk", "dk", "query_id"], sort=True).agg(**agg).reset_index()
    return out[["model", "qk", "dk", "query_id", "n_runs", *metrics]]


def paired_comparisons(scores: pd.DataFrame, pairs: Sequence[tuple[str, str]], metrics: Sequence[str],
            test: str = "t", alpha: float = ALPHA) -> pd.DataFrame:
    """One row per (pair, pruning point, metric) where both models have scores: the paired test of
    ``a`` against ``b`` on their common queries, Holm-adjusted over all the rows returned.

    Columns: ``a, b, qk, dk, metric, n_queries, mean_a, mean_b, diff`` (mean of a - b),
    ``statistic, p, p_holm, significant`` (``p_holm < alpha``).
    """
    cols = ["a", "b", "qk", "dk", "metric", "n_queries", "mean_a", "mean_b", "diff", "statistic", "p", "p_holm",
            "significant"]
    metrics = [m for m in metrics if m in scores.columns]
    out = []
    by_point = {key: g.set_index("query_id") for key, g in scores.groupby(["model", "qk", "dk"], sort=True)}
    points = sorted({(qk, dk) for _, qk, dk in by_point})
    for a, b in pairs:
        for qk, dk in points:
            ga, gb = by_point.get((a, qk, dk)), by_point.get((b, qk, dk))
            if ga is None or gb is None:
                continue
            common = ga.index.intersection(gb.index)
            if len(common) < len(ga.index.union(gb.index)):
                log.warning("%s vs %s at (%s,%s): %d queries in common of %d and %d; testing on the common ones",
                            a, b, qk, dk, len(common), len(ga), len(gb))
            for m in metrics:
                x, y = ga.loc[common, m].to_numpy(float), gb.loc[common, m].to_numpy(float)
                stat, p = paired_test(x, y, test)
                out.append({"a": a, "b": b, "qk": qk, "dk": dk, "metric": m, "n_queries": len(common),
                            "mean_a": x.mean() if len(x) else np.nan, "mean_b": y.mean() if len(y) else np.nan,
                            "diff": (x - y).mean() if len(x) else np.nan, "statistic": stat, "p": p})
    frame = pd.DataFrame(out, columns=cols[:-2])
    frame["p_holm"] = holm(frame["p"].to_numpy()) if len(frame) else []
    frame["significant"] = frame["p_holm"] < alpha
    return frame[cols]


def letters(n: int) -> list[str]:
    """``a, b, ..., z, aa, ab, ...``: one key per model of a table."""
    alphabet = string.ascii_lowercase
    out = []
    for i in range(n):
        key, i = "", i + 1
        while i:
            i, r = divmod(i - 1, 26)
            key = alphabet[r] + key
        out.append(key)
    return out


def table_markers(table: pd.DataFrame, scores: pd.DataFrame, metrics: Sequence[str], test: str = "t",
                  alpha: float = ALPHA) -> tuple[dict[str, str], pd.DataFrame, pd.DataFrame]:
    """Significance markers for a model x pruning-point table (``results_table``'s rows).

    Every model of the table with per-query scores gets a key (``a``, ``b``, ... in table order);
    the cell of model X, point (qk, dk), metric m lists the keys of the models X is significantly
    better than there (Holm over every pair, point and metric of the table; a two-sided test, so
    "better" is the sign of the mean difference of a significant pair).

    Returns (model -> key, markers: a frame like ``table[metrics]`` holding key strings, the
    comparisons from :func:`paired_comparisons`). Empty when fewer than two models have scores.
    """
    metrics = [m for m in metrics if m in table.columns and m in scores.columns]
    models = [m for m in dict.fromkeys(table["model"]) if m in set(scores["model"])]
    markers = pd.DataFrame("", index=table.index, columns=metrics)
    if len(models) < 2 or not metrics:
        return {}, markers, paired_comparisons(scores.iloc[0:0], [], metrics, test, alpha)
    keys = dict(zip(models, letters(len(models))))
    tests = paired_comparisons(scores, list(combinations(models, 2)), metrics, test, alpha)
    better: dict[tuple, list[str]] = {}
    for r in tests[tests["significant"]].itertuples(index=False):
        winner, loser = (r.a, r.b) if r.diff > 0 else (r.b, r.a)
        better.setdefault((winner, r.qk, r.dk, r.metric), []).append(keys[loser])
    for i, row in table.iterrows():
        for m in metrics:
            won = better.get((row["model"], int(row["qk"]), int(row["dk"]), m), [])
            markers.at[i, m] = "".join(sorted(won, key=lambda k: (len(k), k)))
    return keys, markers, tests


def describe(tests: pd.DataFrame, test: str, alpha: float = ALPHA) -> str:
    """One sentence saying what the markers mean, for a report."""
    n = int(tests["n_queries"].max()) if len(tests) else 0
    return (f"Superscript letters: significantly better than the models with those keys at the same pruning "
            f"point ({TEST_NAMES[test]} over {n} queries, each model's per-query scores averaged over its "
            f"runs; Holm correction over the {len(tests)} comparisons of this table, α = {alpha:g}).")
