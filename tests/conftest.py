"""Shared fixtures: compose configs from the repo's conf/ exactly as the command line does."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import open_dict

from splade_exp.resolvers import register_resolvers

CONF = str(Path(__file__).resolve().parent.parent / "conf")
#: What the paper-scale experiment files leave to the command line: their data.
PAPER_EXPERIMENTS = {name: ["data.path=/some/msmarco/dir"] for name in ("vocab_ablation", "pretrain_study", "head_scale")}


def experiment_args(name: str) -> list[str]:
    """``+experiment=name`` plus the values that experiment requires on the command line."""
    return [f"+experiment={name}", *PAPER_EXPERIMENTS.get(name, [])]

os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def compose_cfg(overrides: list[str], root: Path | None = None, hydra_node: bool = False, config_dir: str = CONF):
    """The job's config as the CLI composes it; like inside a job, ``${hydra:...}`` resolves
    (launcher profiles tie ``trainer.devices`` to ``hydra.launcher.tasks_per_node``).
    ``hydra_node=True`` keeps the ``hydra`` node (launcher, sweeper) in the result."""
    register_resolvers()
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(config_dir), version_base="1.3"):
        extra = [f"paths.root={root}"] if root is not None else []
        cfg = compose(config_name="config", overrides=[*overrides, *extra], return_hydra_config=True)
    HydraConfig.instance().set_config(cfg)
    if not hydra_node:
        with open_dict(cfg):
            del cfg["hydra"]
    return cfg


@pytest.fixture
def compose_config():
    return compose_cfg
