"""Export a finished run: copy its model directory, write the model card, optionally upload.

    python -m splade_exp.export RUN_ID_OR_DIR --out DIR [--push-to-hub REPO] [--root ROOT]

``RUN_ID_OR_DIR`` is a run id (looked up in ``<root>/runs/``, root = ``--root``, else the
``paths`` config: ``SPLADE_EXP_ROOT`` or ``./runs``), a run directory, or a model directory. The
card's metrics come from the run's results file, ``<results_dir>/<sweep>/<run_id>.parquet``.
"""
from __future__ import annotations

import logging
import shutil
from pathlib import Path

import pandas as pd

from splade_exp.errors import SpladeExpError
from splade_exp.export.model_dir import METADATA, ModelDir
from splade_exp.io import atomic_dir

log = logging.getLogger(__name__)


class ExportError(SpladeExpError, ValueError):
    """A run that cannot be exported; the message says which and why."""


def configured_paths(root: str | None = None) -> tuple[Path, Path]:
    """(runs_dir, results_dir) of the ``paths`` config, as a run would resolve them."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from splade_exp.cli import CONFIG_DIR
    from splade_exp.resolvers import register_resolvers

    register_resolvers()
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        cfg = compose(config_name="config", overrides=[f"paths.root={root}"] if root else [])
    GlobalHydra.instance().clear()
    return Path(cfg.paths.runs_dir), Path(cfg.paths.results_dir)


def resolve_model_dir(source: str, runs_dir: Path) -> ModelDir:
    """The model directory named by ``source`` (a model dir, a run dir or a run id under ``runs_dir``)."""
    path = Path(source).expanduser()
    if (path / METADATA).is_file():
        return ModelDir.read(path)
    if not path.is_dir():
        path = runs_dir / source
        if not path.is_dir():
            known = sorted(p.name for p in runs_dir.iterdir() if p.is_dir()) if runs_dir.is_dir() else []
            hint = f"runs there: {', '.join(known[:10])}{' ...' if len(known) > 10 else ''}" if known else "no runs there"
            raise ExportError(f"unknown run {source!r}: neither a directory nor a run id in {runs_dir} ({hint}); "
                              "pass a run id, a run directory or a model directory (--root sets the runs root)")
    if (path / "model" / METADATA).is_file():
        return ModelDir.read(path / "model")
    if (path / "config.yaml").is_file():
        raise ExportError(f"run {path.name} ({path}) has no model directory: its training has not finished "
                          "(or it diverged). Relaunch its command to finish it; a completed training writes model/")
    raise ExportError(f"{path}: not a model directory (no {METADATA}) nor a run directory (no config.yaml)")


def run_results(model_dir: ModelDir, results_dir: Path) -> tuple[pd.DataFrame, pd.DataFrame | None]:
    """(the run's results rows, the BM25 row of its sweep or None)."""
    from splade_exp.results import read_results

    meta = model_dir.meta
    candidates = [Path(meta["results"])] if meta.get("results") else []
    candidates.append(results_dir / str(meta.get("sweep")) / f"{meta['run_id']}.parquet")
    found = next((p for p in candidates if p.is_file()), None)
    if found is None:
        raise ExportError(f"run {meta['run_id']} has trained but has no results file "
                          f"({' or '.join(map(str, candidates))}): its evaluation has not finished. Relaunch its "
                          "command (the finished training is skipped) or pass --root where its results are")
    rows = read_results(found)
    if "status" in rows and (rows["status"] != "completed").any():
        raise ExportError(f"{found}: run {meta['run_id']} is {rows['status'].iloc[0]}, not completed")
    # BM25 of the same collection in the run's sweep folder; none shown when that is ambiguous
    data = (meta.get("data") or {}).get("name")
    matching = []
    for f in sorted(found.parent.glob("bm25-*.parquet")):
        if f.name.endswith((".perquery.parquet", ".curves.parquet")):
            continue
        frame = read_results(f)
        if "data" not in frame or (frame["data"] == data).all():
            matching.append(frame)
    return rows, (matching[0] if len(matching) == 1 else None)


def export_run(source: str, out, root: str | None = None, push_to_hub: str | None = None,
               private: bool = False) -> Path:
    """Copy the model directory of ``source`` to ``out`` with a model card; upload it if asked."""
    from splade_exp.export.card import model_card

    runs_dir, results_dir = configured_paths(root)
    model_dir = resolve_model_dir(source, runs_dir)
    rows, bm25 = run_results(model_dir, results_dir)
    out = Path(out).expanduser()
    if out.exists():
        raise ExportError(f"{out} already exists; remove it or choose another --out")
    card = model_card(model_dir, rows, bm25, repo=push_to_hub or str(out.resolve()))
    with atomic_dir(out) as tmp:
        shutil.copytree(model_dir.path, tmp, dirs_exist_ok=True)
        (tmp / "README.md").write_text(card, encoding="utf-8")
    log.info("exported run %s to %s", model_dir.meta["run_id"], out)
    if push_to_hub:
        upload(out, push_to_hub, private=private, run_id=model_dir.meta["run_id"])
    return out


def upload(folder: Path, repo: str, private: bool = False, run_id: str = "") -> None:
    """Create the model repository ``repo`` if needed and upload ``folder`` to it. The token comes
    from ``HF_TOKEN`` or ``huggingface-cli login``, never from a config."""
    from huggingface_hub import HfApi

    api = HfApi()
    api.create_repo(repo_id=repo, repo_type="model", private=private, exist_ok=True)
    api.upload_folder(folder_path=str(folder), repo_id=repo, repo_type="model",
                      commit_message=f"splade-exp run {run_id}".strip())
