"""Result tables (model x pruning point) and their Markdown / LaTeX renderings.

The formatters are self-contained (no ``tabulate`` / ``jinja2`` needed).
"""
from __future__ import annotations

import math
from typing import Callable, Sequence

import numpy as np
import pandas as pd

from .load import EMLM_COLS
from .frontier import (
    DEFAULT_MODEL_COLS,
    completed_runs,
    model_label,
    natural_key,
    pretrain_config_cols,
    sd_col,
)

DEFAULT_TABLE_METRICS = ("mrr@10", "recall@10", "flops", "l0_q", "l0_d")
EFFECTIVENESS = ("mrr@10", "recall@10", "recall@100", "ndcg@10", "accuracy")


def delta_col(metric: str) -> str:
    """Name of the relative-change column of ``metric``: ``"Δmrr@10 %"``."""
    return f"Δ{metric} %"


def relative_change(value: float, reference: float) -> float:
    """``100 * (value - reference) / reference``; NaN when undefined."""
    if reference is None or value is None:
        return math.nan
    if not np.isfinite(reference) or not np.isfinite(value) or reference == 0:
        return math.nan
    return 100.0 * (value - reference) / reference


def results_table(
    df: pd.DataFrame,
    metrics: Sequence[str] = DEFAULT_TABLE_METRICS,
    model_cols: Sequence[str] = DEFAULT_MODEL_COLS,
    relative: Sequence[str] = ("mrr@10",),
    spread: bool = False,
) -> pd.DataFrame:
    """One row per model x pruning point: mean metrics over the model's completed runs.

    Columns: ``model, qk, dk, n_runs``, the ``metrics`` present, then for each metric of
    ``relative`` its change relative to the same model's unpruned point (qk = dk = 0), in percent,
    named ``"Δ<metric> %"`` (NaN when the model has no unpruned point). With ``spread``, one
    ``"<metric> sd"`` column per metric: the standard deviation of the runs' values (seeds;
    ``ddof=1``, NaN for a single run), which :func:`to_markdown` / :func:`to_latex` show as
    ``mean ± sd``. Rows are ordered by model, the unpruned point first, then by decreasing FLOPS
    (lighter pruning first) and qk/dk.
    """
    present = [m for m in metrics if m in df.columns]
    rel = [m for m in relative if m in df.columns]
    value_cols = list(dict.fromkeys([*present, *rel]))
    spreads = [sd_col(m) for m in present] if spread else []
    cols = ["model", "qk", "dk", "n_runs", *present, *[delta_col(m) for m in rel], *spreads]
    runs = completed_runs(df)
    if runs.empty:
        return pd.DataFrame(columns=cols)
    frame = runs[value_cols].astype(float).copy()
    frame.insert(0, "model", model_label(runs, model_cols).values)
    frame.insert(1, "qk", pd.array(runs["qk"] if "qk" in runs else 0, dtype="Int64"))
    frame.insert(2, "dk", pd.array(runs["dk"] if "dk" in runs else 0, dtype="Int64"))
    frame["qk"] = frame["qk"].fillna(0)
    frame["dk"] = frame["dk"].fillna(0)
    frame["_run"] = runs["run_id"].values if "run_id" in runs else np.arange(len(runs))
    agg = {c: (c, "mean") for c in value_cols}
    agg.update({sd_col(m): (m, "std") for m in present} if spread else {})
    agg["n_runs"] = ("_run", "nunique")
    table = frame.groupby(["model", "qk", "dk"], sort=True).agg(**agg).reset_index()

    unpruned = table[(table["qk"] == 0) & (table["dk"] == 0)].set_index("model")
    for m in rel:
        ref = table["model"].map(unpruned[m]) if not unpruned.empty else np.nan
        table[delta_col(m)] = [
            relative_change(v, r) for v, r in zip(table[m], np.broadcast_to(ref, len(table)))
        ]

    table["_pruned"] = ~((table["qk"] == 0) & (table["dk"] == 0))
    sort_cols, ascending = ["model", "_pruned"], [True, True]
    if "flops" in table:
        table["_negflops"] = -table["flops"]
        sort_cols.append("_negflops")
        ascending.append(True)
    table["_negdk"], table["_negqk"] = -table["dk"], -table["qk"]
    sort_cols += ["_negdk", "_negqk"]
    ascending += [True, True]
    table = table.sort_values(sort_cols, ascending=ascending, kind="mergesort",
                              key=lambda col: col.map(natural_key) if col.name == "model" else col)
    return table[cols].reset_index(drop=True)


# --------------------------------------------------------------------------- formatting
def _format_cell(col: str, v) -> str:
    if v is None or v is pd.NA or (isinstance(v, (float, np.floating)) and math.isnan(v)):
        return "–"
    if isinstance(v, (bool, np.bool_)):
        return "yes" if v else "no"
    if isinstance(v, (int, np.integer)):
        return str(int(v))
    if isinstance(v, (float, np.floating)):
        v = float(v)
        if col.startswith("Δ"):
            return f"{v:+.1f}"
        if col.endswith(" Δ"):  # a difference of two metric values
            return f"{v:+.4f}"
        if col.endswith(" p"):  # a p-value
            return f"{v:.3g}" if v >= 0.001 else f"{v:.1e}"
        base = col.split(".")[-1]
        if col in EFFECTIVENESS or base in EFFECTIVENESS or base.startswith(("mrr", "recall", "ndcg")):
            return f"{v:.4f}"
        if v.is_integer() and abs(v) < 1e15:
            return f"{int(v):d}"
        a = abs(v)
        if a >= 1000:
            return f"{v:,.0f}"
        if a >= 10:
            return f"{v:.1f}"
        return f"{v:.3g}" if a >= 0.001 or a == 0 else f"{v:.2e}"
    return str(v)


def _is_numeric(series: pd.Series) -> bool:
    return pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series)


def format_cells(table: pd.DataFrame) -> list[list[str]]:
    """The table's cells as display strings (metrics 4 decimals, Δ% signed 1 decimal, NaN -> –)."""
    return [[_format_cell(str(c), v) for c, v in zip(table.columns, row)] for row in table.itertuples(index=False)]


def _shown(table: pd.DataFrame, markers: pd.DataFrame | None,
           sup: Callable[[str], str]) -> tuple[list[str], list[list[str]], list[bool]]:
    """(headers, cells, numeric flags) with ``"<m> sd"`` folded into ``m`` as ``mean ± sd`` (a zero or
    missing sd is not shown) and
    ``markers`` (strings by row and column) appended to their cells as ``sup(marker)``."""
    shown = [c for c in table.columns if not (str(c).endswith(" sd") and str(c)[:-3] in table.columns)]
    cells = []
    for i, row in zip(table.index, table.itertuples(index=False)):
        values = dict(zip(table.columns, row))
        line = []
        for c in shown:
            text = _format_cell(str(c), values[c])
            sd = values.get(sd_col(str(c)))
            if sd is not None and not pd.isna(sd) and sd != 0:  # 0: every run gave the same value
                text += f" ± {_format_cell(str(c), sd)}"
            mark = markers.at[i, c] if markers is not None and c in markers.columns else ""
            line.append(text + (sup(mark) if mark else ""))
        cells.append(line)
    return [str(c) for c in shown], cells, [_is_numeric(table[c]) for c in shown]


def to_markdown(table: pd.DataFrame, markers: pd.DataFrame | None = None) -> str:
    """GitHub-flavoured Markdown table (numeric columns right-aligned).

    ``"<m> sd"`` columns are shown as ``mean ± sd`` in column ``m``; ``markers`` (a frame of
    strings indexed like ``table``, e.g. significance keys) are appended as ``<sup>…</sup>``.
    """
    headers, cells, numeric = _shown(table, markers, lambda m: f"<sup>{m}</sup>")
    headers = [h.replace("|", "\\|") for h in headers]
    cells = [[c.replace("|", "\\|") for c in row] for row in cells]
    widths = [max([len(h), 3, *(len(r[i]) for r in cells)]) for i, h in enumerate(headers)]

    def line(vals):
        out = [v.rjust(w) if num else v.ljust(w) for v, w, num in zip(vals, widths, numeric)]
        return "| " + " | ".join(out) + " |"

    sep = "|" + "|".join(
        ("-" * (w + 1) + ":") if num else (":" + "-" * (w + 1)) for w, num in zip(widths, numeric)
    ) + "|"
    return "\n".join([line(headers), sep, *(line(r) for r in cells)]) + "\n"


_LATEX_SPECIAL = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
    "Δ": r"$\Delta$",
    "–": "--",
    "²": r"$^2$",
    "±": r"$\pm$",
}


def latex_escape(text: str) -> str:
    return "".join(_LATEX_SPECIAL.get(ch, ch) for ch in str(text))


def to_latex(table: pd.DataFrame, caption: str | None = None, label: str | None = None,
             markers: pd.DataFrame | None = None) -> str:
    """A ``booktabs`` LaTeX table (``\\usepackage{booktabs}``); numeric columns right-aligned.

    With ``caption`` or ``label`` the tabular is wrapped in a ``table`` environment. ``sd``
    columns and ``markers`` as in :func:`to_markdown` (markers as superscripts).
    """
    marker = "\x00"  # stands for the superscript until the cell text is escaped
    headers, cells, numeric = _shown(table, markers, lambda m: marker + m)
    spec = "".join("r" if n else "l" for n in numeric)
    head = " & ".join(latex_escape(c) for c in headers) + r" \\"

    def cell(text: str) -> str:
        value, _, mark = text.partition(marker)
        return latex_escape(value) + (rf"$^{{\mathrm{{{mark}}}}}$" if mark else "")

    body = [" & ".join(cell(v) for v in row) + r" \\" for row in cells]
    lines = [rf"\begin{{tabular}}{{{spec}}}", r"\toprule", head, r"\midrule", *body,
             r"\bottomrule", r"\end{tabular}"]
    if caption or label:
        inner = [r"\begin{table}[t]", r"\centering", r"\small", *lines]
        if caption:
            inner.append(rf"\caption{{{latex_escape(caption)}}}")
        if label:
            inner.append(rf"\label{{{label}}}")
        inner.append(r"\end{table}")
        lines = inner
    return "% requires \\usepackage{booktabs}\n" + "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- EMLM statistics
def emlm_stats_table(
    df: pd.DataFrame,
    by: Sequence[str] | None = None,
    stats: Sequence[str] | None = EMLM_COLS,
    spread: bool = True,
) -> pd.DataFrame:
    """Mean EMLM statistics per pretraining configuration, and with ``spread`` their sample
    standard deviation over its runs (``<stat> sd``, when some configuration has several: seeds).

    ``stats`` are the ``emlm.*`` columns to show (default: the EMLM statistics of the results
    schema; ``None``: every numeric ``emlm.*`` column); those without values are left out.
    Configurations are told apart by ``pretrain`` and the ``cfg.pretrain.*`` columns that
    separate runs further (or by ``by`` when given). One value per run is used (statistics
    repeat over pruning points). Empty when no statistic has a value.
    """
    names = [c for c in df.columns if c.startswith("emlm.")] if stats is None else [
        c for c in stats if c in df.columns]
    numeric = {c: pd.to_numeric(df[c], errors="coerce") for c in names}
    stat_cols = [c for c, v in numeric.items() if v.notna().any()]
    if not stat_cols:
        return pd.DataFrame()
    df = df.assign(**{c: numeric[c] for c in stat_cols})
    runs = df[df[stat_cols].notna().any(axis=1)]
    if "system" in runs:
        runs = runs[runs["system"].astype(str) != "bm25"]
    if "run_id" in runs:
        runs = runs.drop_duplicates(subset="run_id")
    if by is None:
        by = ["pretrain", *pretrain_config_cols(runs)]
    labels = model_label(runs, by, use_model_column=False)
    frame = runs[stat_cols].astype(float).copy()
    frame.insert(0, "pretraining", labels.values)
    frame["_run"] = runs["run_id"].values if "run_id" in runs else np.arange(len(runs))
    agg = {c.removeprefix("emlm."): (c, "mean") for c in stat_cols}
    agg["n_runs"] = ("_run", "nunique")
    out = frame.groupby("pretraining", sort=True).agg(**agg).reset_index()
    names = [c.removeprefix("emlm.") for c in stat_cols]
    cols = ["pretraining", "n_runs", *names]
    if out["n_runs"].max() > 1 and spread:  # seeds: the spread beside each mean
        sd = frame.groupby("pretraining", sort=True)[stat_cols].std(ddof=1).reset_index()
        sd.columns = ["pretraining", *[f"{n} sd" for n in names]]
        out = out.merge(sd, on="pretraining")
        cols = ["pretraining", "n_runs", *[c for n in names for c in (n, f"{n} sd")]]
    out = out.sort_values("pretraining", key=lambda col: col.map(natural_key), kind="mergesort")
    return out[cols].reset_index(drop=True)
