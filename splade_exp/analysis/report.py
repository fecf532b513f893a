"""Write every figure the results support, a Markdown report and a LaTeX results table.

    python -m splade_exp.analysis.report RESULTS_DIR [--out OUT_DIR] [--test t|wilcoxon]
    python -m splade_exp.analysis.report A B [--out OUT_DIR]      (compare two results directories)

``OUT_DIR`` defaults to ``RESULTS_DIR/report``. Figures and tables are grouped by collection
(``data``) and sweep when the results hold several.
"""
from __future__ import annotations

import argparse
import datetime as _dt
import logging
import re
import sys
from pathlib import Path
from typing import Sequence

import pandas as pd

from ._io import write_text
from .figures import (
    metric_name,
    plot_emlm_curves,
    plot_frontier,
    plot_head_scale,
    plot_posting_variance,
)
from .frontier import (
    DEFAULT_MODEL_COLS,
    bm25_budget,
    completed_runs,
    is_bm25,
    model_label,
    pretrain_config_cols,
)
from .load import PERQUERY_METRICS, load_curves, load_perquery, load_results
from .significance import ALPHA, TESTS, describe, model_scores, table_markers
from .tables import emlm_stats_table, results_table, to_latex, to_markdown

log = logging.getLogger(__name__)

#: The report separates models on these columns and on the ``cfg.pretrain.*`` columns (constant
#: ones are left out of the labels), so runs that differ on loss, head scale or pretraining
#: settings are not averaged together; only seeds are.
REPORT_MODEL_COLS: tuple[str, ...] = (*DEFAULT_MODEL_COLS, "loss", "head_k")


def report_model_cols(df: pd.DataFrame) -> tuple[str, ...]:
    """``REPORT_MODEL_COLS`` plus the ``cfg.pretrain.*`` columns of ``df``."""
    return (*REPORT_MODEL_COLS, *pretrain_config_cols(df))
FRONTIER_METRICS = ("mrr@10", "recall@10")


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", str(text)).strip("-.") or "all"


def _groups(df: pd.DataFrame) -> list[tuple[str, str, dict, pd.DataFrame]]:
    """``(title, file-suffix, tags, rows)`` per (collection, sweep) of the non-BM25 runs.

    Each group carries the BM25 rows of its collection. The suffix is empty, and ``tags``
    (``{"sweep": ..., "data": ...}``, for table columns) is empty, when there is one group.
    """
    bm25 = df[is_bm25(df)]
    runs = df[~is_bm25(df)]
    datas = sorted(set(runs["data"])) if "data" in runs else [""]
    sweeps_all = sorted(set(runs["sweep"])) if "sweep" in runs else [""]
    out = []
    for data in datas:
        at = runs[runs["data"] == data] if "data" in runs else runs
        bm = bm25[bm25["data"] == data] if ("data" in bm25 and data) else bm25
        sweeps = sorted(set(at["sweep"])) if "sweep" in at else [""]
        for sweep in sweeps:
            sub = at[at["sweep"] == sweep] if "sweep" in at else at
            # BM25 is written into each sweep's folder: prefer the sweep's own row
            own = bm[bm["sweep"] == sweep] if "sweep" in bm else bm
            group_bm = own if not own.empty else bm
            parts_t = [p for p in (f"sweep {sweep}" if sweep else "", f"collection {data}" if data else "") if p]
            parts_s, tags = [], {}
            if len(sweeps_all) > 1:
                parts_s.append(_slug(sweep or "nosweep"))
                tags["sweep"] = sweep
            if len(datas) > 1:
                parts_s.append(_slug(data or "nodata"))
                tags["data"] = data
            out.append((", ".join(parts_t) or "all runs", "_".join(parts_s), tags,
                        pd.concat([sub, group_bm])))
    return out


def _md_image(path: Path, out_dir: Path, alt: str) -> str:
    return f"![{alt}]({path.relative_to(out_dir).as_posix()})"


def _bm25_lines(df: pd.DataFrame) -> list[str]:
    bm = bm25_budget(df)
    if bm.empty:
        return ["No BM25 result found."]
    lines = []
    for _, r in bm.iterrows():
        vals = [f"{metric_name(m)} = {r[m]:.4f}" for m in ("mrr@10", "recall@10", "recall@100", "ndcg@10")
                if m in r and pd.notna(r[m])]
        if "flops" in r and pd.notna(r["flops"]):
            vals.append(f"FLOPS = {r['flops']:.4g}")
        where = f" ({r['data']})" if "data" in r and r["data"] else ""
        lines.append(f"- **BM25**{where}: " + ", ".join(vals or ["no metric recorded"]))
    return lines


def _problem_runs(df: pd.DataFrame, labels: pd.Series) -> pd.DataFrame:
    """Diverged / failed runs (one row each) with their model label from ``labels``."""
    runs = df[~is_bm25(df)]
    bad = runs[(runs["status"] != "completed") | runs["diverged"]]
    if bad.empty:
        return pd.DataFrame()
    bad = bad.assign(model=labels.reindex(bad.index).fillna(""))
    bad = bad.drop_duplicates(subset="run_id")
    cols = ["run_id", "sweep", "model", "status", "diverged_step", "head_k", "seed"]
    return bad[[c for c in cols if c in bad]].sort_values(["status", "run_id"], kind="mergesort")


def _problem_lines(bad: pd.DataFrame) -> list[str]:
    lines = []
    for _, r in bad.iterrows():
        extra = []
        if pd.notna(r.get("diverged_step")):
            extra.append(f"at step {int(r['diverged_step'])}")
        if pd.notna(r.get("head_k")):
            extra.append(f"head k = {r['head_k']:g}")
        if pd.notna(r.get("seed")):
            extra.append(f"seed {int(r['seed'])}")
        sweep = f" [{r['sweep']}]" if r.get("sweep") else ""
        lines.append(f"- `{r['run_id']}`{sweep} — {r['model']}: **{r['status']}**"
                     + (f" ({', '.join(extra)})" if extra else ""))
    return lines


def significance(table: pd.DataFrame, rows: pd.DataFrame, perquery: pd.DataFrame,
                 model_cols: Sequence[str], test: str = "t", alpha: float = ALPHA):
    """(table with a ``key`` column, markers, comparisons) for a results table of ``rows``, or
    (table, None, None) when fewer than two of its models have per-query metrics."""
    runs = completed_runs(rows)
    if perquery.empty or runs.empty:
        return table, None, None
    labels = dict(zip(runs["run_id"], model_label(runs, model_cols)))
    scores = model_scores(perquery, labels, PERQUERY_METRICS)
    keys, markers, tests = table_markers(table, scores, [m for m in table.columns if m in PERQUERY_METRICS],
                                         test, alpha)
    if not keys:
        return table, None, None
    table = table.copy()
    table.insert(0, "key", table["model"].map(keys).fillna(""))
    return table, markers, tests


def write_report(
    results_dir: str | Path,
    out_dir: str | Path | None = None,
    metrics: Sequence[str] = FRONTIER_METRICS,
    model_cols: Sequence[str] | None = None,
    test: str = "t",
    alpha: float = ALPHA,
) -> Path:
    """Write figures, ``report.md`` and ``results_table.tex`` into ``out_dir``; return report.md.

    ``out_dir`` defaults to ``results_dir/report``; ``model_cols`` (the columns that tell models
    apart) defaults to ``report_model_cols(results)``. Where the results hold per-query metrics
    (``*.perquery.parquet``) the tables mark significant differences between models (``test``:
    ``t`` or ``wilcoxon``; Holm over each table, level ``alpha``; :mod:`.significance`) and
    ``significance*.csv`` lists every comparison. Raises like ``load_results`` when the
    directory is missing or holds no result file.
    """
    results_dir = Path(results_dir)
    df = load_results(results_dir)
    curves = load_curves(results_dir)
    perquery = load_perquery(results_dir)
    if model_cols is None:
        model_cols = report_model_cols(df)
    out = Path(out_dir) if out_dir is not None else results_dir / "report"
    out.mkdir(parents=True, exist_ok=True)

    runs = df[~is_bm25(df)]
    n_runs = runs["run_id"].nunique()
    counts = runs.drop_duplicates("run_id")["status"].value_counts()
    md: list[str] = [
        "# Sweep results report",
        "",
        f"Results: `{results_dir.resolve()}`  ",
        f"Generated: {_dt.datetime.now().strftime('%Y-%m-%d %H:%M')}  ",
        f"Runs: {n_runs} (" + ", ".join(f"{v} {k}" for k, v in counts.items()) + ")"
        if n_runs else "Runs: 0",
        "",
        "Pruning points are written `(qk,dk)`: query / document terms kept by static top-k "
        "pruning, 0 = not pruned. Metrics average the completed runs (seeds) of a model, shown as "
        "mean ± standard deviation over the runs where a model has several (error bars in the "
        "figures); `Δ… %` is the relative change vs the model's unpruned point.",
        "",
        "## BM25 baseline",
        "",
        *_bm25_lines(df),
        "",
    ]

    tex_parts: list[pd.DataFrame] = []
    label_parts: list[pd.Series] = []
    groups = _groups(df)
    for title, suffix, tags, sub in groups:
        label_parts.append(model_label(sub[~is_bm25(sub)], model_cols))
        sfx = f"_{suffix}" if suffix else ""
        section = [f"## {title[0].upper() + title[1:]}", ""]
        for metric in metrics:
            png = plot_frontier(sub, metric, out / f"frontier_{metric}{sfx}.png", model_cols=model_cols,
                                title=f"{metric_name(metric)} vs FLOPS across the pruning grid — {title}")
            if png:
                section += [_md_image(png, out, f"{metric} vs FLOPS, {title}"), ""]
        png = plot_posting_variance(sub, metrics[0], out / f"posting_variance{sfx}.png",
                                    model_cols=model_cols)
        if png:
            section += [_md_image(png, out, f"{metrics[0]} vs posting variance, {title}"), ""]
        sub_runs = sub[~is_bm25(sub)]
        if sub_runs["head_k"].nunique() > 1:
            png = plot_head_scale(sub, metrics[0], out / f"head_scale{sfx}.png",
                                  title=f"{metric_name(metrics[0])} vs MLM-head scale k — {title}")
            if png:
                section += [_md_image(png, out, f"{metrics[0]} vs head scale, {title}"), ""]
        table = results_table(sub, model_cols=model_cols, relative=("mrr@10", "flops"), spread=True)
        if not table.empty:
            table, markers, tests = significance(table, sub, perquery, model_cols, test, alpha)
            section += ["### Results table", "", to_markdown(table, markers)]
            if tests is not None:
                section += [describe(tests, test, alpha), ""]
                write_text(out / f"significance{sfx}.csv", tests.to_csv(index=False))
            for i, (col, value) in enumerate(tags.items()):
                table.insert(i, col, value)
            tex_parts.append((table, markers))
        else:
            section += ["No completed run in this group.", ""]
        md += section

    md += ["## EMLM pretraining", ""]
    png = plot_emlm_curves(curves, out / "emlm_curves.png")
    if png:
        md += [_md_image(png, out, "EMLM loss and accuracy vs step"), ""]
    stats = emlm_stats_table(completed_runs(df))
    if not stats.empty:
        md += ["### EMLM statistics (mean over runs; sd: over seeds)", "", to_markdown(stats)]
    if not png and stats.empty:
        md += ["No EMLM curves or statistics in these results.", ""]

    md += ["## Diverged and failed runs", ""]
    bad = _problem_runs(df, pd.concat(label_parts) if label_parts else pd.Series(dtype=object))
    md += (_problem_lines(bad) if not bad.empty else ["None."]) + [""]

    if tex_parts:
        tex_table = pd.concat([t for t, _ in tex_parts], ignore_index=True)
        marks = [m if m is not None else pd.DataFrame(index=t.index) for t, m in tex_parts]
        tex_markers = pd.concat(marks, ignore_index=True).fillna("") if any(
            m is not None for _, m in tex_parts) else None
        caption = ("Effectiveness and cost per model and pruning point (qk, dk): mean ± sd over runs; "
                   "relative change vs the unpruned model.")
        if tex_markers is not None:
            caption += (f" Superscripts: significantly better than the models with those keys at the same point "
                        f"({'paired t-test' if test == 't' else 'Wilcoxon signed-rank test'}, Holm-corrected "
                        f"within each sweep and collection, alpha = {alpha:g}).")
        write_text(out / "results_table.tex", to_latex(tex_table, caption=caption, label="tab:results",
                                                      markers=tex_markers))
        md += ["LaTeX version of the results tables: [results_table.tex](results_table.tex)", ""]

    return write_text(out / "report.md", "\n".join(md).rstrip() + "\n")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m splade_exp.analysis.report",
        description="Turn a sweep results directory into figures, report.md and results_table.tex; "
                    "with a second directory, compare the two (paired differences at every pruning point).",
    )
    parser.add_argument("results_dir", metavar="RESULTS_DIR", help="folder with <run_id>.parquet files")
    parser.add_argument("other_dir", metavar="OTHER_DIR", nargs="?", default=None,
                        help="a second results folder: compare RESULTS_DIR (A) with it (B)")
    parser.add_argument("--out", metavar="OUT_DIR", default=None,
                        help="output folder (default: RESULTS_DIR/report; a comparison is printed, and also "
                             "written there when given)")
    parser.add_argument("--test", choices=TESTS, default="t",
                        help="paired two-sided test on per-query metrics: t (default) or wilcoxon")
    parser.add_argument("--alpha", type=float, default=ALPHA, help="significance level after Holm (0.05)")
    parser.add_argument("-v", "--verbose", action="store_true", help="log why figures are skipped")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    try:
        if args.other_dir is not None:
            from .compare import write_comparison

            print(write_comparison(args.results_dir, args.other_dir, args.out, args.test, args.alpha))
            return 0
        path = write_report(args.results_dir, args.out, test=args.test, alpha=args.alpha)
    except (FileNotFoundError, NotADirectoryError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"Report written to {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
