"""The results schema and its atomic writer.

One Parquet file per run (``<results_dir>/<sweep>/<run_id>.parquet``), one row per (run, qk, dk).
Identity and metric columns are fixed (below); the run's group choices are plain columns
(:func:`choice_columns`: every config group of ``conf/`` present in the config, so a new group
needs no code here) and the whole resolved config is flattened into ``cfg.<dotted.key>`` columns
so any swept value can be grouped on. Files are written via temp file + rename: a reader never
sees a partial file.
"""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from splade_exp.io import atomic_path

IDENTITY = ["run_id", "eval_id", "sweep", "system", "model", "status", "diverged_step", "wall_time_s"]
POINT = ["qk", "dk"]
METRICS = ["mrr@10", "recall@10", "recall@100", "ndcg@10", "flops", "l0_q", "l0_d",
           "posting_mean", "posting_max", "posting_var"]
STATUSES = ("completed", "diverged", "failed")


def config_groups(conf_dir: str | Path | None = None) -> list[str]:
    """The config groups of ``conf_dir`` (default: the package's ``conf/``): its sub-directories."""
    if conf_dir is None:
        from splade_exp.cli import CONFIG_DIR as conf_dir
    return sorted(p.name for p in Path(conf_dir).iterdir() if p.is_dir())


def choice_columns(cfg, conf_dir: str | Path | None = None) -> dict[str, str]:
    """``{group: its name}`` for every config group of ``conf_dir`` (:func:`config_groups`) that the
    composed ``cfg`` holds as a node with a ``name`` (``backbone``, ``vocab``, ``head``, ...), but the
    groups that only say where and how a run is launched (:data:`splade_exp.identity.LAUNCH_KEYS`:
    ``paths``, ``logger``, ``launcher``, ...). Groups whose files set no ``name`` (``trainer``,
    ``eval``) and ones that write into other nodes (``experiment``, ``vocab_defaults``) have no
    such column; every group's values are in the ``cfg.<group>.*`` columns."""
    from omegaconf import DictConfig

    from splade_exp.identity import LAUNCH_KEYS

    return {g: str(cfg[g].name) for g in config_groups(conf_dir)
            if g not in LAUNCH_KEYS and isinstance(cfg.get(g), DictConfig) and "name" in cfg[g]}


def flatten(d: dict, prefix: str = "cfg.") -> dict:
    """Nested dict to ``{prefix + dotted.key: scalar}``; lists become JSON strings."""
    out = {}
    for key, value in d.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(flatten(value, name + "."))
        elif isinstance(value, (list, tuple)):
            out[name] = json.dumps(value)
        else:
            out[name] = value
    return out


def make_frame(rows: list[dict], common: dict) -> pd.DataFrame:
    if common.get("status") not in STATUSES:
        raise ValueError(f"status must be one of {STATUSES}, got {common.get('status')!r}")
    frame = pd.DataFrame([{**common, **row} for row in rows])
    for col in METRICS:  # every file has every metric column (NaN where not measured, e.g. diverged)
        if col not in frame:
            frame[col] = float("nan")
    for col in POINT:
        if col in frame:
            frame[col] = frame[col].astype("int64")
    if "diverged_step" in frame:
        frame["diverged_step"] = frame["diverged_step"].astype("Int64")
    # Parquet needs one type per column: mixed config values (e.g. null vs str) become strings.
    for col in frame.columns:
        if frame[col].dtype == object:
            kinds = {type(v) for v in frame[col] if v is not None}
            if len(kinds) > 1 or (kinds and not kinds <= {str}):
                frame[col] = frame[col].map(lambda v: None if v is None else str(v))
    return frame


def write_results(path: str | Path, frame: pd.DataFrame) -> Path:
    """Write ``frame`` to ``path`` atomically (temp file in the same directory + rename)."""
    with atomic_path(path) as tmp:
        frame.to_parquet(tmp, index=False)
    return Path(path)


def read_results(path: str | Path) -> pd.DataFrame:
    """One results file. Read on the calling thread: with pyarrow's thread pools (its default) a
    process that had read a few of these files aborted at exit in about 1 run in 6 here ("terminate
    called without an active exception", exit code 134: apache/arrow#34314), which fails a job, a
    report or a test run whose work was done. The files are small, so threads buy nothing."""
    return pd.read_parquet(path, use_threads=False, pre_buffer=False)
