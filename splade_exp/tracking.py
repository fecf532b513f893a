"""Experiment tracking around a run: the logger from the ``logger`` config group, the resolved
config logged once, the pruning-grid results, and a clean end of every run.

- :func:`make_logger` instantiates ``cfg.logger`` (any Lightning logger, by ``_target_``) with
  ``save_dir`` = the run directory, and passes the run's ``id`` (the run id, so a resumed or
  requeued job continues the same W&B run) and ``name`` (model label and run id) to a logger whose
  constructor takes them, unless its config sets them (``CSVLogger``'s ``name`` is its folder).
- :func:`log_config` logs the resolved config once (the modules keep their hyper-parameters
  out of the logger).
- :func:`log_results` logs the grid rows as a table (loggers that have ``log_table``) and one
  summary metric per (metric, grid point), e.g. ``eval/mrr@10/q5_d10``, plus ``eval/<metric>`` of
  the unpruned point.
- :func:`finish` ends the W&B run of this job (``wandb.finish``), also after a failure, so the
  next job of a multirun in the same process starts its own run.
- :func:`wandb_offline` (the ``${wandb_offline:}`` resolver): offline unless an API key is
  available. Secrets are read from the environment or ``~/.netrc`` by wandb itself and never pass
  through the config.
- An online W&B logger whose server cannot be reached (:func:`unreachable`: a TCP connection with
  a short timeout; compute nodes often have no network) logs offline instead, with a warning that
  says how to upload later, rather than failing after wandb's own minutes of retries.
"""
from __future__ import annotations

import inspect
import logging
import math
import netrc
import os
import sys
from pathlib import Path
from urllib.parse import urlparse

import pandas as pd
from hydra.utils import get_class, instantiate
from omegaconf import DictConfig, OmegaConf

log = logging.getLogger(__name__)

GRID_METRICS = ("mrr@10", "recall@10", "recall@100", "ndcg@10", "flops", "l0_q", "l0_d",
                "posting_mean", "posting_max", "posting_var")


def _netrc_has(host: str) -> bool:
    path = os.environ.get("NETRC") or os.path.join(os.path.expanduser("~"), ".netrc")
    try:
        return netrc.netrc(path).authenticators(host) is not None
    except (FileNotFoundError, netrc.NetrcParseError, OSError):
        return False


def wandb_offline() -> bool:
    """True (log offline) unless ``WANDB_MODE`` asks otherwise or an API key is available
    (``WANDB_API_KEY`` set, or a ``~/.netrc`` entry for the W&B host written by ``wandb login``)."""
    mode = os.environ.get("WANDB_MODE", "").strip().lower()
    if mode in ("offline", "dryrun"):
        return True
    if mode in ("online", "run", "disabled"):  # disabled: wandb reads WANDB_MODE itself
        return False
    host = urlparse(os.environ.get("WANDB_BASE_URL", "https://api.wandb.ai")).hostname or "api.wandb.ai"
    return not (os.environ.get("WANDB_API_KEY") or _netrc_has(host))


WANDB_URL = "https://api.wandb.ai"
PROBE_TIMEOUT_S = 5.0


def unreachable(url: str, timeout: float = PROBE_TIMEOUT_S) -> str | None:
    """Why a TCP connection to ``url``'s host cannot be made within ``timeout`` seconds (None: it can)."""
    import socket

    parsed = urlparse(url)
    host = parsed.hostname
    if not host:
        return f"{url!r} names no host"
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    try:
        socket.create_connection((host, port), timeout=timeout).close()
    except OSError as err:
        return f"{type(err).__name__}: {err}"
    return None


def _wandb_online(cfg: DictConfig, cls) -> bool:
    from lightning.pytorch.loggers import WandbLogger

    mode = os.environ.get("WANDB_MODE", "").strip().lower()
    return issubclass(cls, WandbLogger) and not cfg.logger.get("offline") and mode not in ("offline", "dryrun",
                                                                                               "disabled")


def make_logger(cfg: DictConfig, rid: str, run_dir: Path):
    """The Lightning logger of ``cfg.logger`` for this run, or False for ``logger=none``."""
    if not cfg.logger.get("_target_"):
        return False
    cls = get_class(cfg.logger._target_)
    accepts = inspect.signature(cls).parameters
    run_fields = {"id": rid, "name": f"{cfg.model}-{rid}" if cfg.model else rid}
    fill = {k: v for k, v in run_fields.items() if k in accepts and cfg.logger.get(k) is None}
    if _wandb_online(cfg, cls):
        url = os.environ.get("WANDB_BASE_URL", WANDB_URL)
        why = unreachable(url)
        if why is not None:
            log.warning("logger=wandb: %s cannot be reached (%s); logging offline to %s/wandb instead. Upload it "
                        "later with `wandb sync %s/wandb/offline-run-*`, or set WANDB_MODE=offline to skip this "
                        "check", url, why, run_dir, run_dir)
            fill["offline"] = True
    return instantiate(cfg.logger, save_dir=str(run_dir), **fill)


def log_config(logger, cfg: DictConfig, rid: str) -> None:
    if logger:
        logger.log_hyperparams({"run_id": rid, **OmegaConf.to_container(cfg, resolve=True)})


def summary_metrics(frame: pd.DataFrame) -> dict[str, float]:
    """``eval/<metric>/q<qk>_d<dk>`` for every grid point and ``eval/<metric>`` at the unpruned point."""
    out: dict[str, float] = {}
    for row in frame.to_dict("records"):
        point = f"q{int(row['qk'])}_d{int(row['dk'])}"
        for m in GRID_METRICS:
            value = row.get(m)
            if value is None or not math.isfinite(float(value)):
                continue
            out[f"eval/{m}/{point}"] = float(value)
            if point == "q0_d0":
                out[f"eval/{m}"] = float(value)
    return out


def log_results(logger, frame: pd.DataFrame, step: int) -> None:
    """The pruning-grid rows as a table and their summary metrics, at training step ``step``."""
    if not logger or frame.empty:
        return
    columns = ["qk", "dk", *[m for m in GRID_METRICS if m in frame]]
    if hasattr(logger, "log_table"):
        logger.log_table("eval/pruning_grid", dataframe=frame[columns].reset_index(drop=True), step=step)
    metrics = summary_metrics(frame)
    metrics["eval/diverged"] = float((frame["status"] == "diverged").any())
    logger.log_metrics(metrics, step=step)
    logger.save()


def finish(failed: bool = False) -> None:
    """End this process's W&B run, if one is open (exit code 1 marks it failed in W&B)."""
    wandb = sys.modules.get("wandb")  # never imported by runs that do not log to W&B
    if wandb is not None and getattr(wandb, "run", None) is not None:
        wandb.finish(exit_code=1 if failed else 0)
