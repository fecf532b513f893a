"""Compare two results directories (e.g. two sweeps, or a sweep before and after a change).

    python -m splade_exp.analysis A B [--out DIR] [--test t|wilcoxon] [--alpha 0.05]

Models are matched by their label (each directory labels its own runs, as its report does);
when the two directories hold one model each, those two are compared whatever their labels.
For every matched model and pruning point present in both: the mean metrics of A and of B over
their runs, the difference ``B - A`` and, where both directories hold per-query metrics, the
Holm-adjusted p-value of a paired two-sided test on the queries they share (each side's
per-query scores averaged over its runs; :mod:`.significance`). Holm runs over every
(model, point, metric) test of the table. Without per-query files the p-value columns are absent.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import pandas as pd

from ._io import write_text
from .frontier import completed_runs, model_label
from .load import PERQUERY_METRICS, load_perquery, load_results
from .significance import ALPHA, TEST_NAMES, model_scores, paired_comparisons
from .tables import results_table, to_latex, to_markdown

COMPARE_METRICS = ("mrr@10", "recall@10", "ndcg@10", "flops")


def _labelled(results_dir: Path, metrics: Sequence[str]):
    """(results table, run id -> label, per-query frame) of one directory, labelled like its report."""
    from .report import report_model_cols

    df = load_results(results_dir)
    cols = report_model_cols(df)
    runs = completed_runs(df)
    labels = dict(zip(runs["run_id"], model_label(runs, cols)))
    table = results_table(df, metrics=metrics, model_cols=cols, relative=())
    return table, labels, load_perquery(results_dir)


def compare_dirs(a: str | Path, b: str | Path, metrics: Sequence[str] = COMPARE_METRICS, test: str = "t",
                 alpha: float = ALPHA) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """(table, markers, tests): one row per matched model and common pruning point.

    ``table`` columns: ``model, qk, dk, runs A, runs B`` and per metric ``"<m> A"``, ``"<m> B"``,
    ``"<m> Δ"`` (B - A) and, with per-query metrics on both sides, ``"<m> p"`` (Holm-adjusted);
    ``markers`` holds ``*`` on the ``Δ`` cells with ``p < alpha``; ``tests`` every comparison.
    """
    ta, labels_a, pa = _labelled(Path(a), metrics)
    tb, labels_b, pb = _labelled(Path(b), metrics)
    models_a, models_b = list(dict.fromkeys(ta["model"])), list(dict.fromkeys(tb["model"]))
    matched = [m for m in models_a if m in set(models_b)]
    rename = {}
    if not matched and len(models_a) == 1 and len(models_b) == 1:
        rename = {models_b[0]: models_a[0]}
        matched = models_a
    if not matched:
        raise ValueError(f"no model in common between {a} ({', '.join(models_a)}) and {b} ({', '.join(models_b)}); "
                         "compare directories that hold the same models, or one model each")
    tb = tb.assign(model=tb["model"].replace(rename))
    labels_b = {rid: rename.get(label, label) for rid, label in labels_b.items()}
    present = [m for m in metrics if m in ta.columns and m in tb.columns]
    keys = ["model", "qk", "dk"]
    merged = ta[ta["model"].isin(matched)][[*keys, "n_runs", *present]].merge(
        tb[[*keys, "n_runs", *present]], on=keys, suffixes=(" A", " B"))
    table = merged[keys].copy()
    table["runs A"], table["runs B"] = merged["n_runs A"].astype(int), merged["n_runs B"].astype(int)

    # per-query scores of both sides as models "B:<label>" and "A:<label>"; paired_comparisons() tests B against A
    tested = [m for m in present if m in PERQUERY_METRICS]
    sides = [model_scores(pa, {r: f"A:{lab}" for r, lab in labels_a.items()}, tested),
             model_scores(pb, {r: f"B:{lab}" for r, lab in labels_b.items()}, tested)]
    scores = pd.concat([s for s in sides if not s.empty] or sides[:1], ignore_index=True)
    tests = paired_comparisons(scores, [(f"B:{m}", f"A:{m}") for m in matched], tested, test, alpha)
    tests = tests.assign(model=tests["b"].str[2:]).drop(columns=["a", "b"])
    has_p = not tests.empty
    markers = pd.DataFrame("", index=table.index, columns=[f"{m} Δ" for m in present])
    for m in present:
        table[f"{m} A"], table[f"{m} B"] = merged[f"{m} A"], merged[f"{m} B"]
        table[f"{m} Δ"] = merged[f"{m} B"] - merged[f"{m} A"]
        if has_p and m in tested:
            sel = tests[tests["metric"] == m].set_index(keys)
            idx = pd.MultiIndex.from_frame(table[keys].astype({"qk": int, "dk": int}))
            table[f"{m} p"] = sel["p_holm"].reindex(idx).to_numpy()
            significant = sel["significant"].reindex(idx).fillna(False).to_numpy(bool)
            markers.loc[significant, f"{m} Δ"] = "*"
    return table.reset_index(drop=True), markers.reset_index(drop=True), tests


def comparison_note(a, b, tests: pd.DataFrame, test: str, alpha: float = ALPHA) -> str:
    text = f"A = `{a}`, B = `{b}`; `Δ` = B - A of the means over each side's runs."
    if tests.empty:
        return text + " No per-query metrics on both sides: no significance test."
    n = int(tests["n_queries"].max())
    return text + (f" `p`: {TEST_NAMES[test]} of B against A over {n} queries (per-query scores averaged over "
                   f"each side's runs), Holm-adjusted over the {len(tests)} tests of this table; "
                   f"`*`: p < {alpha:g}.")


def write_comparison(a, b, out: str | Path | None = None, test: str = "t", alpha: float = ALPHA) -> str:
    """The comparison as Markdown; with ``out``, also ``comparison.md``, ``.tex`` and ``.csv`` there."""
    table, markers, tests = compare_dirs(a, b, test=test, alpha=alpha)
    note = comparison_note(a, b, tests, test, alpha)
    text = "\n".join(["# Comparison of two results directories", "", note, "", to_markdown(table, markers)])
    if out is not None:
        out = Path(out)
        write_text(out / "comparison.md", text)
        write_text(out / "comparison.tex", to_latex(table, caption=note.replace("`", ""), label="tab:comparison",
                                                    markers=markers))
        write_text(out / "comparison.csv", tests.to_csv(index=False))
    return text
