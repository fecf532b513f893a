"""The command line: ``python -m splade_exp [+experiment=NAME] [-m] [group=choice ...]``."""
from __future__ import annotations

from pathlib import Path

import hydra
from omegaconf import DictConfig, OmegaConf

CONFIG_DIR = str(Path(__file__).resolve().parent.parent / "conf")


def _project_root() -> str:
    """The checkout's root when running from a source tree; otherwise the working directory."""
    here = Path(__file__).resolve().parent.parent
    return str(here) if (here / "pyproject.toml").exists() else str(Path.cwd())


def register_resolvers() -> None:
    if not OmegaConf.has_resolver("project_root"):
        OmegaConf.register_new_resolver("project_root", _project_root)


register_resolvers()


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="config")
def main(cfg: DictConfig) -> float | None:
    from splade_exp.run import run

    frame = run(cfg)
    if len(frame) and "mrr@10" in frame:
        return float(frame["mrr@10"].iloc[0])
    return None
