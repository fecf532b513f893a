"""Analysis of sweep results: loading, Pareto frontiers, figures, tables and reports.

Typical use::

    from splade_exp.analysis import load_results, plot_frontier, results_table, to_markdown
    df = load_results("runs/results")
    plot_frontier(df, "mrr@10", "frontier.png")
    print(to_markdown(results_table(df)))

or ``python -m splade_exp.analysis RESULTS_DIR [--out OUT_DIR]`` for the full report.
"""
from .figures import (
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
)
from .load import load_curves, load_perquery, load_results, load_wandb, tidy_results
from .tables import emlm_stats_table, results_table, to_latex, to_markdown



def __getattr__(name: str):
    # Imported on first use so that ``python -m splade_exp.analysis.report`` does not find the
    # module already imported by its package.
    if name == "write_report":
        from .report import write_report

        return write_report
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "DEFAULT_MODEL_COLS",
    "bm25_budget",
    "completed_runs",
    "emlm_stats_table",
    "load_curves",
    "load_perquery",
    "load_results",
    "load_wandb",
    "model_curves",
    "model_label",
    "pareto_frontier",
    "plot_emlm_curves",
    "plot_frontier",
    "plot_head_scale",
    "plot_posting_variance",
    "results_table",
    "strictest_point",
    "tidy_results",
    "to_latex",
    "to_markdown",
    "write_report",
]
