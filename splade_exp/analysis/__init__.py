"""Analysis of sweep results: loading, Pareto frontiers, figures, tables and reports.

Typical use::

    from splade_exp.analysis import load_results, plot_frontier, results_table, to_markdown
    df = load_results("runs/results")
    plot_frontier(df, "mrr@10", "frontier.png")
    print(to_markdown(results_table(df)))

or ``python -m splade_exp.analysis RESULTS_DIR [--out OUT_DIR]`` for the full report, and
``python -m splade_exp.analysis A B`` to compare two results directories. Significance tests
between models (from per-query metrics) are in :mod:`.significance`.
"""
from .figures import (
    frontier_figure,
    plot_emlm_curves,
    plot_frontier,
    plot_head_scale,
    plot_posting_variance,
    strictest_point,
)
from .frontier import (
    DEFAULT_MODEL_COLS,
    bm25_budget,
    completed_runs,
    model_curves,
    model_label,
    pareto_frontier,
    sd_col,
)
from .load import load_curves, load_perquery, load_results, load_wandb, tidy_results
from .significance import holm, model_scores, paired_comparisons, paired_test, table_markers
from .tables import emlm_stats_table, results_table, to_latex, to_markdown



def __getattr__(name: str):
    # Imported on first use so that ``python -m splade_exp.analysis.report`` does not find the
    # module already imported by its package.
    if name == "write_report":
        from .report import write_report

        return write_report
    if name in ("compare_dirs", "write_comparison"):
        from . import compare as _compare

        return getattr(_compare, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "DEFAULT_MODEL_COLS",
    "bm25_budget",
    "compare_dirs",
    "completed_runs",
    "emlm_stats_table",
    "frontier_figure",
    "holm",
    "load_curves",
    "load_perquery",
    "load_results",
    "load_wandb",
    "model_curves",
    "model_label",
    "model_scores",
    "paired_comparisons",
    "paired_test",
    "pareto_frontier",
    "plot_emlm_curves",
    "plot_frontier",
    "plot_head_scale",
    "plot_posting_variance",
    "results_table",
    "sd_col",
    "strictest_point",
    "table_markers",
    "tidy_results",
    "to_latex",
    "to_markdown",
    "write_comparison",
    "write_report",
]
