"""Crash-safe file output: everything is written to a temporary sibling and renamed into place.

A reader therefore sees either the previous complete file or the new complete file, never a
partial one. Temporary names start with ``.`` and end with ``.tmp`` so loaders skip them.
"""
from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Callable, Iterator


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp)
    try:
        yield tmp
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        # mkstemp creates 0600: give the file the mode a plain open() would (shared results dirs)
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_text(path: str | os.PathLike, text: str) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


def write_json(path: str | os.PathLike, obj) -> Path:
    return write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary directory beside ``path``; rename it onto ``path`` if the block succeeds.

    Fails if ``path`` already exists (directories cannot be replaced atomically).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    try:
        yield tmp
        os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp creates 0700, like mkstemp above
        os.rename(tmp, path)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def lock_path(path: str | os.PathLike) -> Path:
    """The lock file that guards the build of the directory ``path``."""
    path = Path(path)
    return path.parent / f".{path.name}.lock"


def build_once(path: str | os.PathLike, build: Callable[[Path], None], lock_timeout: float = -1) -> bool:
    """Build the directory ``path`` with ``build(tmp_dir)`` unless it already exists.

    A file lock beside ``path`` keeps two parallel jobs from building the same artifact: the
    second waits, then finds it built. Returns True if this call built it.
    """
    from filelock import FileLock

    path = Path(path)
    if path.is_dir():
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(lock_path(path)), timeout=lock_timeout):
        if path.is_dir():
            return False
        with atomic_dir(path) as tmp:
            build(tmp)
    return True
