"""Regenerate the analysis notebooks (without outputs) from the cell sources below.

    python analysis/build_notebooks.py

The notebooks are thin callers of ``splade_exp.analysis``; edit the cells here, not in Jupyter,
so that the committed JSON stays free of outputs.
"""
from __future__ import annotations

from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

HERE = Path(__file__).resolve().parent

SETUP = '''\
import os
import sys
from pathlib import Path

try:  # the repository may not be installed: use the checkout this notebook lives in
    import splade_exp  # noqa: F401
except ImportError:
    sys.path.insert(0, str(Path.cwd().parent))

import pandas as pd
from IPython.display import Image, Markdown, display

from splade_exp import analysis as A

# Results directory: $SPLADE_RESULTS, else ../runs/results relative to this notebook.
RESULTS = Path(os.environ.get("SPLADE_RESULTS", "../runs/results")).expanduser().resolve()
# Figures go to $SPLADE_FIGURES, else RESULTS/figures.
FIGURES = Path(os.environ.get("SPLADE_FIGURES", RESULTS / "figures")).expanduser()
pd.set_option("display.max_columns", 40, "display.width", 200)

df = A.load_results(RESULTS)
print(f"{df['run_id'].nunique()} runs, {len(df)} rows from {RESULTS}")'''


def select_sweep(env: str, default: str) -> str:
    return f'''\
# The sweep studied here: ${env}, else "{default}"; all runs when no run has that sweep name.
SWEEP = os.environ.get("{env}", "{default}")
in_sweep = df["sweep"] == SWEEP
if in_sweep.any():
    sel = df[in_sweep | (df["system"] == "bm25")]
else:
    print(f"no run of sweep {{SWEEP!r}} (sweeps: {{sorted(set(df['sweep']))}}); using every run")
    sel = df
print(f"{{sel['run_id'].nunique()}} runs selected")'''


def show_figure() -> str:
    return "if path is not None:\n    display(Image(filename=str(path)))"


FRONTIERS = [
    new_markdown_cell(
        "# Vocabulary ablation: effectiveness / cost frontiers\n\n"
        "Effectiveness vs FLOPS of each model over the static-pruning grid `(qk,dk)`, the Pareto "
        "frontier, BM25 as the cost budget, and the results table with the change relative to "
        "each model's unpruned point.\n\n"
        "Environment: `SPLADE_RESULTS` (results dir, default `../runs/results`), "
        "`SPLADE_VOCAB_SWEEP` (sweep name, default `vocab_ablation`), `SPLADE_FIGURES`."
    ),
    new_code_cell(SETUP),
    new_code_cell(select_sweep("SPLADE_VOCAB_SWEEP", "vocab_ablation")),
    new_markdown_cell("## Curves per model and Pareto frontier"),
    new_code_cell(
        'MODEL_COLS = A.DEFAULT_MODEL_COLS\n'
        'curves = A.model_curves(sel, "mrr@10", model_cols=MODEL_COLS)\n'
        'display(curves)\n'
        'display(A.pareto_frontier(curves, "mrr@10"))\n'
        'display(A.bm25_budget(sel))'
    ),
    new_code_cell(
        'for metric in ("mrr@10", "recall@10"):\n'
        '    path = A.plot_frontier(sel, metric, FIGURES / f"frontier_{SWEEP}_{metric}.png",\n'
        '                           model_cols=MODEL_COLS)\n'
        '    if path is not None:\n'
        '        display(Image(filename=str(path)))'
    ),
    new_markdown_cell("## Results table"),
    new_code_cell(
        'table = A.results_table(sel, model_cols=MODEL_COLS, relative=("mrr@10", "flops"))\n'
        'display(Markdown(A.to_markdown(table)))'
    ),
    new_code_cell('print(A.to_latex(table))'),
]

PRETRAIN = [
    new_markdown_cell(
        "# EMLM pretraining study\n\n"
        "EMLM training curves per pretraining configuration, the EMLM statistics of the "
        "fine-tuned models, and effectiveness vs posting-list length variance at the strictest "
        "pruning point.\n\n"
        "Environment: `SPLADE_RESULTS`, `SPLADE_PRETRAIN_SWEEP` (default `pretrain_study`), "
        "`SPLADE_FIGURES`."
    ),
    new_code_cell(SETUP),
    new_code_cell(select_sweep("SPLADE_PRETRAIN_SWEEP", "pretrain_study")),
    new_markdown_cell("## EMLM training curves"),
    new_code_cell(
        'curves = A.load_curves(RESULTS)\n'
        'print(f"{curves[\'artifact_id\'].nunique()} pretraining artifacts with curves")\n'
        'path = A.plot_emlm_curves(curves, FIGURES / "emlm_curves.png")\n' + show_figure()
    ),
    new_markdown_cell("## EMLM statistics"),
    new_code_cell(
        'stats = A.emlm_stats_table(A.completed_runs(sel))\n'
        'display(Markdown(A.to_markdown(stats)) if not stats.empty else "no EMLM statistics")'
    ),
    new_markdown_cell("## Effectiveness vs posting-list length variance"),
    new_code_cell(
        'PRETRAIN_COLS = ("pretrain", *sorted(c for c in sel.columns if c.startswith("cfg.pretrain.")))\n'
        'print("strictest pruning point (qk, dk):", A.strictest_point(A.completed_runs(sel)))\n'
        'path = A.plot_posting_variance(sel, "mrr@10", FIGURES / f"posting_variance_{SWEEP}.png",\n'
        '                               model_cols=PRETRAIN_COLS)\n' + show_figure()
    ),
    new_code_cell(
        'table = A.results_table(sel, model_cols=PRETRAIN_COLS)\n'
        'display(Markdown(A.to_markdown(table)))'
    ),
]

HEAD_SCALE = [
    new_markdown_cell(
        "# MLM-head scale\n\n"
        "Unpruned effectiveness vs the head scale `k` per backbone (diverged runs as red "
        "crosses), head diagnostics, and the list of diverged runs.\n\n"
        "Environment: `SPLADE_RESULTS`, `SPLADE_HEAD_SWEEP` (default `head_scale`), "
        "`SPLADE_FIGURES`."
    ),
    new_code_cell(SETUP),
    new_code_cell(select_sweep("SPLADE_HEAD_SWEEP", "head_scale")),
    new_code_cell(
        'for metric in ("mrr@10", "recall@10"):\n'
        '    path = A.plot_head_scale(sel, metric, FIGURES / f"head_scale_{SWEEP}_{metric}.png")\n'
        '    if path is not None:\n'
        '        display(Image(filename=str(path)))'
    ),
    new_markdown_cell("## Unpruned results and head diagnostics per backbone and k"),
    new_code_cell(
        'table = A.results_table(sel, model_cols=("backbone", "head_k"))\n'
        'display(Markdown(A.to_markdown(table[(table["qk"] == 0) & (table["dk"] == 0)])))\n'
        'diag = [c for c in sel.columns if c.startswith("head.") and sel[c].notna().any()]\n'
        'runs = sel[sel["system"] != "bm25"].drop_duplicates("run_id")\n'
        'if diag:\n'
        '    display(runs.groupby(["backbone", "head_k"])[diag].mean())'
    ),
    new_markdown_cell("## Diverged and failed runs"),
    new_code_cell(
        'bad = runs[runs["diverged"] | (runs["status"] != "completed")]\n'
        'display(bad[["run_id", "backbone", "head_k", "seed", "status", "diverged_step"]])'
    ),
]

NOTEBOOKS = {
    "frontiers.ipynb": FRONTIERS,
    "pretrain_study.ipynb": PRETRAIN,
    "head_scale.ipynb": HEAD_SCALE,
}


def build(out_dir: Path = HERE) -> list[Path]:
    paths = []
    for name, cells in NOTEBOOKS.items():
        nb = new_notebook(
            cells=cells,
            metadata={
                "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
                "language_info": {"name": "python"},
            },
        )
        for i, cell in enumerate(nb.cells):
            cell["id"] = f"{Path(name).stem.replace('_', '-')}-{i}"
        nbformat.validate(nb)
        path = out_dir / name
        nbformat.write(nb, path)
        paths.append(path)
    return paths


if __name__ == "__main__":
    for p in build():
        print(f"wrote {p}")
