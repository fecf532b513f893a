"""Figures for the papers, written as PNG files with matplotlib's Agg canvas (no display needed).

Every function returns the ``Path`` it wrote, or ``None`` (and logs why at INFO level) when the
data it needs is absent.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Sequence

import matplotlib

matplotlib.use("Agg")  # figures are files; never open a window

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import FuncFormatter, LogLocator, MaxNLocator, NullFormatter

from ._io import atomic_write
from .frontier import (
    DEFAULT_MODEL_COLS,
    bm25_budget,
    completed_runs,
    is_bm25,
    model_curves,
    model_label,
    pareto_frontier,
    pretrain_config_cols,
    sd_col,
    varying_columns,
)

log = logging.getLogger(__name__)

METRIC_NAMES = {
    "mrr@10": "MRR@10",
    "recall@10": "Recall@10",
    "recall@100": "Recall@100",
    "ndcg@10": "nDCG@10",
}
COST_NAMES = {
    "flops": "FLOPS (expected floating-point operations per query–document score)",
    "l0_q": "Query terms (L0, non-zero entries per query)",
    "l0_d": "Document terms (L0, non-zero entries per document)",
    "posting_var": "Posting-list length variance (postings²)",
}
PRUNING_NOTE = "(qk,dk): query / document terms kept by static top-k pruning; 0 = not pruned."
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "<", ">", "h", "*", "p")
DPI = 130


def metric_name(metric: str) -> str:
    return METRIC_NAMES.get(metric, metric)


def _axis_label(metric: str) -> str:
    name = metric_name(metric)
    return f"{name} (higher is better)" if metric in METRIC_NAMES else name


def _colors(n: int) -> list:
    cmap = matplotlib.colormaps["tab10" if n <= 10 else "tab20"]
    return [cmap(i % cmap.N) for i in range(max(n, 1))]


def _skip(name: str, why: str) -> None:
    log.info("%s: skipped, %s", name, why)
    return None


def _save(fig: Figure, path: str | Path) -> Path:
    """Write ``fig`` as PNG atomically (temp file in the same folder, then ``os.replace``)."""
    FigureCanvasAgg(fig)
    return atomic_write(
        path, lambda fh: fig.savefig(fh, format="png", dpi=DPI, bbox_inches="tight"), binary=True
    )


def _num(df: pd.DataFrame, col: str) -> pd.Series:
    """``df[col]`` as float with missing -> 0 (a pruning column; 0 = not pruned)."""
    if col not in df.columns:
        return pd.Series(0.0, index=df.index)
    return pd.to_numeric(df[col], errors="coerce").astype(float).fillna(0.0)


def unpruned_mask(df: pd.DataFrame) -> pd.Series:
    """Rows at the unpruned point ``qk == dk == 0`` (missing counts as 0)."""
    return _num(df, "qk").eq(0) & _num(df, "dk").eq(0)


def _log_x_if_wide(ax, xs: Sequence[float]) -> None:
    """Log-scale x (ticks at 1, 2, 5 x 10^n) when the positive values span > 1 decade."""
    xs = np.asarray([x for x in xs if np.isfinite(x)], dtype=float)
    if xs.size and (xs > 0).all() and xs.max() / xs.min() > 10:
        ax.set_xscale("log")
        subs = (1.0, 2.0, 5.0) if xs.max() / xs.min() <= 1e3 else (1.0,)
        ax.xaxis.set_major_locator(LogLocator(base=10, subs=subs))
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        ax.xaxis.set_minor_formatter(NullFormatter())
    else:
        ax.ticklabel_format(axis="x", style="sci", scilimits=(-3, 4), useMathText=True)


def _annotate(ax, x: float, y: float, qk, dk, color="0.25", below: bool = False) -> None:
    """Label a point ``(qk,dk)``; ``below`` puts it under the point (alternate to avoid overlap)."""
    qk = 0 if pd.isna(qk) else int(qk)
    dk = 0 if pd.isna(dk) else int(dk)
    ax.annotate(
        f"({qk},{dk})",
        (x, y),
        xytext=(4, -11) if below else (4, 4),
        textcoords="offset points",
        fontsize=7,
        color=color,
    )


def _legend_outside(ax, handles=None, title=None) -> None:
    kwargs = dict(loc="upper left", bbox_to_anchor=(1.02, 1.0), fontsize=8, frameon=False)
    if handles is not None:
        kwargs["handles"] = handles
    ax.legend(title=title, title_fontsize=8, **kwargs)


def _note(ax, text: str) -> None:
    ax.text(0.0, -0.13, text, transform=ax.transAxes, fontsize=7.5, color="0.3", va="top")


# --------------------------------------------------------------------------- frontier
def plot_frontier(
    df: pd.DataFrame,
    metric: str,
    path: str | Path,
    cost: str = "flops",
    model_cols: Sequence[str] = DEFAULT_MODEL_COLS,
    title: str | None = None,
) -> Path | None:
    """Effectiveness vs cost: one curve per model over the pruning grid, BM25, Pareto frontier.

    Each point is annotated ``(qk,dk)``. A model with several runs (seeds) is plotted at their
    mean with error bars of one standard deviation of the runs' values (the metric vertically,
    the cost horizontally). BM25 (when present) is a vertical budget line at its cost plus a star
    at ``(cost, metric)``. The Pareto frontier of the model points is a dashed step line. The x
    axis is logarithmic when the costs span more than one decade.
    """
    fig = frontier_figure(df, metric, cost, model_cols, title)
    return _save(fig, path) if fig is not None else None


def frontier_figure(
    df: pd.DataFrame,
    metric: str,
    cost: str = "flops",
    model_cols: Sequence[str] = DEFAULT_MODEL_COLS,
    title: str | None = None,
) -> Figure | None:
    """The figure :func:`plot_frontier` writes, or None (logged) when the data is missing."""
    name = f"plot_frontier({metric})"
    if metric not in df.columns or cost not in df.columns:
        return _skip(name, f"column {metric!r} or {cost!r} missing")
    curves = model_curves(df, metric, cost=cost, model_cols=model_cols)
    if curves.empty:
        return _skip(name, f"no completed run with both {metric} and {cost}")

    fig = Figure(figsize=(10, 6))
    ax = fig.add_subplot(1, 1, 1)
    models = list(dict.fromkeys(curves["model"]))
    colors = _colors(len(models))
    xs = list(curves[cost])
    for i, label in enumerate(models):
        pts = curves[curves["model"] == label]
        n = int(pts["n_runs"].max())
        ax.plot(
            pts[cost],
            pts[metric],
            marker=MARKERS[i % len(MARKERS)],
            color=colors[i],
            linewidth=1.5,
            markersize=6,
            label=label + (f"  (mean ± sd of {n} runs)" if n > 1 else ""),
        )
        if n > 1:
            ax.errorbar(pts[cost], pts[metric], yerr=pts[sd_col(metric)].fillna(0),
                        xerr=pts[sd_col(cost)].fillna(0), fmt="none", ecolor=colors[i], elinewidth=1,
                        capsize=3, alpha=0.8)
        for j, (_, p) in enumerate(pts.iterrows()):
            _annotate(ax, p[cost], p[metric], p["qk"], p["dk"], color=colors[i], below=j % 2 == 1)

    front = pareto_frontier(curves, metric, cost)
    if len(front) >= 1:
        ax.step(
            front[cost],
            front[metric],
            where="post",
            linestyle="--",
            color="black",
            linewidth=1.2,
            label="Pareto frontier",
            zorder=1,
        )

    bm25 = bm25_budget(df)
    same_data = "data" in bm25 and bm25["data"].duplicated(keep=False).any()
    for i, row in bm25.iterrows():
        bx, by = row.get(cost, np.nan), row.get(metric, np.nan)
        where = ""
        if len(bm25) > 1:  # tell several BM25 rows apart: collection, and run id if needed
            tag = str(row.get("data", "") or "")
            if same_data:
                tag = f"{tag} {row.get('run_id', '')}".strip()
            where = f" [{tag or i}]"
        if pd.notna(bx):
            xs.append(bx)
            ax.axvline(bx, color="0.45", linestyle=":", linewidth=1.3,
                       label=f"BM25 budget{where}: {cost.upper()} = {bx:.3g}")
            if pd.notna(by):
                ax.plot([bx], [by], marker="*", markersize=14, color="black", linestyle="none",
                        label=f"BM25{where}: {metric_name(metric)} = {by:.3f}", zorder=5)
        elif pd.notna(by):
            ax.axhline(by, color="0.45", linestyle=":", linewidth=1.3,
                       label=f"BM25{where}: {metric_name(metric)} = {by:.3f} (no {cost})")

    _log_x_if_wide(ax, xs)
    ax.set_xlabel(COST_NAMES.get(cost, cost) + (", log scale" if ax.get_xscale() == "log" else ""))
    ax.set_ylabel(_axis_label(metric))
    ax.set_title(title or f"{metric_name(metric)} vs {cost.upper()} across the static-pruning grid")
    ax.grid(True, which="major", alpha=0.3)
    _legend_outside(ax, title="Model")
    _note(ax, PRUNING_NOTE + " Points average seeds (bars: ± 1 sd over runs); further left = cheaper, "
              "higher = more effective.")
    return fig


# --------------------------------------------------------------------------- EMLM curves
def _curve_labels(curves: pd.DataFrame) -> pd.Series:
    cfg_cols = pretrain_config_cols(curves)
    cols = ["pretrain", *cfg_cols]
    shown = varying_columns(curves, cols)
    if shown == ["pretrain"] or not shown:
        labels = curves["pretrain"].where(curves["pretrain"] != "", curves["artifact_id"])
    else:
        labels = model_label(curves, cols, use_model_column=False)
    # one line per artifact: disambiguate artifacts that share a label
    per_art = pd.DataFrame({"a": curves["artifact_id"], "l": labels}).drop_duplicates()
    shared = per_art["l"].duplicated(keep=False)
    if shared.any():
        rename = {a: f"{l} [{a}]" for a, l in zip(per_art.loc[shared, "a"], per_art.loc[shared, "l"])}
        labels = pd.Series(
            [rename.get(a, l) for a, l in zip(curves["artifact_id"], labels)], index=curves.index
        )
    return labels.replace("", "(unnamed)")


def plot_emlm_curves(curves: pd.DataFrame, path: str | Path) -> Path | None:
    """EMLM pretraining loss and accuracy vs step, one colour per pretraining configuration.

    Train curves are solid lines, validation curves dashed with markers; where ``curves`` has
    ``val_prior_accuracy`` / ``val_prior_loss`` (curves files carry their artifact's), a dotted line
    at the validation labels' context-free bound, which the validation curve must pass to show
    that the pretraining learnt from context.
    """
    name = "plot_emlm_curves"
    if curves is None or curves.empty or "step" not in curves.columns:
        return _skip(name, "no EMLM curves")
    panels = [c for c in ("loss", "accuracy") if c in curves.columns and curves[c].notna().any()]
    if not panels:
        return _skip(name, "curves have neither loss nor accuracy values")
    curves = curves[curves["step"].notna()].copy()
    for col in ("artifact_id", "pretrain", "split"):
        if col not in curves.columns:
            curves[col] = ""
    curves["_label"] = _curve_labels(curves)
    labels = list(dict.fromkeys(sorted(curves["_label"])))
    colors = dict(zip(labels, _colors(len(labels))))
    styles = {"train": dict(linestyle="-", marker=None), "val": dict(linestyle="--", marker="o")}

    fig = Figure(figsize=(12, 4.8))
    axes = [fig.add_subplot(1, len(panels), i + 1) for i in range(len(panels))]
    bounded = False
    for ax, value in zip(axes, panels):
        for (label, split), grp in curves.groupby(["_label", "split"], sort=True):
            grp = grp[grp[value].notna()].sort_values("step")
            if grp.empty:
                continue
            style = styles.get(split, dict(linestyle="-.", marker="x"))
            ax.plot(grp["step"].astype(float), grp[value], color=colors[label], linewidth=1.4,
                    markersize=3.5, **style)
            bound = f"val_prior_{value}"
            if split == "val" and bound in grp and grp[bound].notna().any():
                ax.hlines(float(grp[bound].mean()), float(grp["step"].min()), float(grp["step"].max()),
                          color=colors[label], linestyle=":", linewidth=1.2)
                bounded = True
        ax.set_xlabel("Training step")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylabel({"loss": "EMLM loss (lower is better)",
                       "accuracy": "EMLM accuracy (fraction, higher is better)"}[value])
        ax.set_title(f"EMLM {value} vs step")
        ax.grid(True, alpha=0.3)
    handles = [Line2D([], [], color=colors[l], linewidth=2, label=l) for l in labels]
    splits = sorted(set(curves["split"]))
    handles += [
        Line2D([], [], color="0.3", label=s, **{k: v for k, v in styles.get(
            s, dict(linestyle="-.", marker="x")).items()})
        for s in splits
    ]
    if bounded:
        handles.append(Line2D([], [], color="0.3", linestyle=":", label="context-free bound (val)"))
    _legend_outside(axes[-1], handles=handles, title="Pretraining config / split")
    fig.suptitle("EMLM pretraining curves per configuration (train solid, validation dashed)")
    return _save(fig, path)


# --------------------------------------------------------------------------- posting variance
def strictest_point(df: pd.DataFrame) -> tuple[int, int] | None:
    """The strictest pruning point: smallest nonzero ``dk``, then smallest nonzero ``qk`` at it.

    ``qk`` is 0 when only documents are pruned at that ``dk``; ``None`` when nothing is pruned.
    """
    if "dk" not in df.columns:
        return None
    dks = _num(df, "dk")
    if not (dks > 0).any():
        return None
    dk = int(dks[dks > 0].min())
    qks = _num(df, "qk")[dks == dk]
    qks = qks[qks > 0]
    return (int(qks.min()) if not qks.empty else 0, dk)


def plot_posting_variance(
    df: pd.DataFrame,
    metric: str,
    path: str | Path,
    model_cols: Sequence[str] = DEFAULT_MODEL_COLS,
    title: str | None = None,
) -> Path | None:
    """Effectiveness vs posting-list length variance at the strictest pruning point, per run."""
    name = f"plot_posting_variance({metric})"
    if metric not in df.columns or "posting_var" not in df.columns:
        return _skip(name, f"column {metric!r} or 'posting_var' missing")
    runs = completed_runs(df)
    runs = runs[runs[metric].notna() & runs["posting_var"].notna()]
    point = strictest_point(runs)
    if point is None:
        return _skip(name, "no pruned point with posting_var and the metric")
    qk, dk = point
    at_point = _num(runs, "dk").eq(dk) & _num(runs, "qk").eq(qk)
    sel = runs[at_point]
    if sel.empty:
        return _skip(name, f"no run at the strictest point ({qk},{dk})")
    labels = model_label(runs, model_cols).loc[sel.index]
    models = sorted(set(labels))
    colors = _colors(len(models))

    fig = Figure(figsize=(9, 5.5))
    ax = fig.add_subplot(1, 1, 1)
    for i, label in enumerate(models):
        pts = sel[labels == label]
        ax.scatter(pts["posting_var"], pts[metric], s=45, color=colors[i],
                   marker=MARKERS[i % len(MARKERS)], label=f"{label}  (n={len(pts)})", zorder=3)
        for _, p in pts.iterrows():
            _annotate(ax, p["posting_var"], p[metric], qk, dk, color=colors[i])
    _log_x_if_wide(ax, sel["posting_var"])
    ax.set_xlabel(COST_NAMES["posting_var"] + (", log scale" if ax.get_xscale() == "log" else ""))
    ax.set_ylabel(_axis_label(metric))
    ax.set_title(title or f"{metric_name(metric)} vs posting-list length variance "
                          f"at the strictest pruning point (qk,dk)=({qk},{dk})")
    ax.grid(True, alpha=0.3)
    _legend_outside(ax, title="Model (one marker per run)")
    _note(ax, PRUNING_NOTE + " Variance of the inverted index's posting-list lengths.")
    return _save(fig, path)


# --------------------------------------------------------------------------- head scale
def head_scale_line(df: pd.DataFrame) -> pd.Series:
    """The line of each row in :func:`plot_head_scale`: its backbone, with the norm its head rows were
    rescaled to first (``cfg.head.inflate_norm``) where one was set, so an inflated backbone is a
    line of its own."""
    backbone = (df["backbone"] if "backbone" in df else pd.Series("", index=df.index))
    backbone = backbone.astype(str).replace("", "(backbone not recorded)")
    if "cfg.head.inflate_norm" in df:
        norm = pd.to_numeric(df["cfg.head.inflate_norm"], errors="coerce")
        backbone = backbone.where(norm.isna(), backbone + norm.map(lambda v: f" (head norm {v:g})"))
    return backbone


def plot_head_scale(
    df: pd.DataFrame,
    metric: str,
    path: str | Path,
    title: str | None = None,
) -> Path | None:
    """Unpruned effectiveness vs MLM-head scale ``k`` (log2 x axis), one line per backbone (and
    ``head.inflate_norm``: a backbone whose head rows were rescaled first is a line of its own).

    Completed runs are averaged per ``(backbone, head_k)`` (the individual runs are shown as
    small dots); diverged runs are red crosses, at their metric when they have one, otherwise on
    the bottom edge of the plot, annotated with the divergence step.
    """
    name = f"plot_head_scale({metric})"
    if metric not in df.columns or "head_k" not in df.columns:
        return _skip(name, f"column {metric!r} or 'head_k' missing")
    splade = df[~is_bm25(df) & df["head_k"].notna()]
    if splade.empty:
        return _skip(name, "no run with a head scale (head_k)")
    splade = splade[splade["head_k"] > 0]
    splade = splade.assign(_backbone=head_scale_line(splade))
    unpruned = unpruned_mask(splade)
    ok = completed_runs(splade)
    ok = ok[unpruned.loc[ok.index] & ok[metric].notna()]
    div_mask = splade["diverged"].astype(bool) if "diverged" in splade else pd.Series(
        False, index=splade.index)
    if "status" in splade:
        div_mask |= splade["status"].eq("diverged")
    diverged = splade[div_mask]
    if ok.empty and diverged.empty:
        return _skip(name, "no completed unpruned run and no diverged run with head_k")

    # one marker per diverged run: its unpruned row if it has one, else its first row
    if not diverged.empty:
        key = "run_id" if "run_id" in diverged else None
        order = diverged.assign(_unp=~unpruned.loc[diverged.index]).sort_values("_unp", kind="mergesort")
        diverged = order.drop_duplicates(subset=key) if key else order

    fig = Figure(figsize=(9, 5.5))
    ax = fig.add_subplot(1, 1, 1)
    backbones = sorted(set(ok["_backbone"]) | set(diverged["_backbone"]))
    colors = dict(zip(backbones, _colors(len(backbones))))
    for i, bb in enumerate(backbones):
        pts = ok[ok["_backbone"] == bb]
        if pts.empty:
            continue
        mean = pts.groupby("head_k", sort=True)[metric].agg(["mean", "count"]).reset_index()
        ax.plot(mean["head_k"], mean["mean"], marker=MARKERS[i % len(MARKERS)], color=colors[bb],
                linewidth=1.6, label=f"{bb} (mean over seeds)", zorder=3)
        ax.scatter(pts["head_k"], pts[metric], s=10, color=colors[bb], alpha=0.45, zorder=2)
        for _, p in mean.iterrows():
            _annotate(ax, p["head_k"], p["mean"], 0, 0, color=colors[bb])

    handles, _ = ax.get_legend_handles_labels()
    if not diverged.empty:
        with_metric = diverged[metric].notna() & unpruned.loc[diverged.index]
        ymin = ok[metric].min() if not ok.empty else np.nan
        ymax = ok[metric].max() if not ok.empty else np.nan
        if with_metric.any():
            ymin = np.nanmin([ymin, diverged.loc[with_metric, metric].min()])
            ymax = np.nanmax([ymax, diverged.loc[with_metric, metric].max()])
        if not np.isfinite(ymin):
            ymin, ymax = 0.0, 1.0
        pad = max((ymax - ymin) * 0.15, 0.01)
        floor = ymin - pad
        ax.set_ylim(floor - pad * 0.3, ymax + pad)
        for _, r in diverged.iterrows():
            y = r[metric] if (pd.notna(r[metric]) and with_metric.get(r.name, False)) else floor
            ax.plot([r["head_k"]], [y], marker="x", color="red", markersize=11, markeredgewidth=2.2,
                    linestyle="none", zorder=6)
            step = r.get("diverged_step", np.nan)
            txt = f"diverged @ {int(step)}" if pd.notna(step) else "diverged"
            ax.annotate(f"{r['_backbone']}: {txt}", (r["head_k"], y), xytext=(6, 6),
                        textcoords="offset points", fontsize=7, color="red")
        handles.append(Line2D([], [], marker="x", color="red", markersize=9, markeredgewidth=2,
                              linestyle="none", label="diverged run (bottom edge = no metric)"))
    ax.set_xscale("log", base=2)
    ks = sorted(set(ok["head_k"]) | set(diverged["head_k"]))
    ax.set_xticks(ks)
    ax.set_xticklabels([f"{k:g}" for k in ks])
    ax.set_xlabel("MLM-head scale k (log₂ axis)")
    ax.set_ylabel(_axis_label(metric) + ", unpruned (qk,dk)=(0,0)")
    ax.set_title(title or f"{metric_name(metric)} vs MLM-head scale k, per backbone (unpruned)")
    ax.grid(True, alpha=0.3)
    _legend_outside(ax, handles=handles, title="Backbone")
    return _save(fig, path)
