"""Where a collection comes from. Each source is a Hydra ``_target_`` returning a BEIR directory."""
from __future__ import annotations

import os
from pathlib import Path

from splade_exp.data.collection import DataError
from splade_exp.hashing import config_hash
from splade_exp.io import build_once


def synthetic(cache_dir: str | os.PathLike, **generator_kwargs) -> Path:
    """The embedded synthetic collection, generated once per distinct generator config."""
    from splade_exp.data import synthetic as gen

    out = Path(cache_dir) / "data" / f"synthetic-{config_hash(generator_kwargs)}"
    build_once(out, lambda tmp: _generate_into(gen, tmp, generator_kwargs))
    return out


def _generate_into(gen, tmp: Path, kwargs: dict) -> None:
    tmp.rmdir()  # the generator creates its own directory
    gen.generate(tmp, **kwargs)


def beir_dir(cache_dir: str | os.PathLike, path: str | None = None) -> Path:
    """A BEIR-layout directory on disk (``data.path``)."""
    if not path or path == "???":
        raise DataError("data.path is not set; pass data.path=<a BEIR directory>")
    p = Path(path).expanduser()
    if not p.is_dir():
        raise DataError(f"{p}: data.path is not a directory (expected BEIR layout: corpus.jsonl, queries.jsonl, qrels/)")
    return p
