"""Crash-safe file output: everything is written to a temporary sibling and renamed into place.

A reader therefore sees either the previous complete file or the new complete file, never a
partial one. Temporary names start with ``.`` and end with ``.tmp`` so loaders skip them; a
process killed while writing leaves its temporary behind, and :func:`remove_orphans` clears those
of one run when the run starts again (under its run lock, so no live writer loses its file).

A write that runs out of space (ENOSPC) or quota (EDQUOT) raises :class:`DiskFullError`, naming
the file and the free space left: libraries report it as ``basic_ios::clear: iostream error``
(``torch.save`` to a path) or ``Error writing bytes to file``, which say neither.
"""
from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Callable, Iterator

from splade_exp.errors import SpladeExpError

TEMP_GLOB = ".*.tmp"


class DiskFullError(SpladeExpError, OSError):
    """A write that ran out of disk space or quota; the message names the file (``errno`` and
    ``filename`` are set as on the OSError it replaces)."""

    def __str__(self) -> str:
        return str(self.args[0])


def disk_full(path: Path, err: OSError) -> DiskFullError:
    where = path.parent
    while not where.exists() and where != where.parent:
        where = where.parent
    try:
        free = f"{shutil.disk_usage(where).free / 2**20:,.0f} MiB free there now"
    except OSError:
        free = "free space unknown"
    reason = "the disk is full" if err.errno == errno.ENOSPC else "the disk quota is exhausted"
    full = DiskFullError(f"{path}: {reason} while writing it ({os.strerror(err.errno)}; {free}). The previous "
                         f"{path.name}, if any, is intact. Free space on that file system or point the runs root "
                         "(SPLADE_EXP_ROOT / paths.root) at a larger one, then launch again: the run resumes from "
                         "its last checkpoint")
    full.errno, full.filename = err.errno, str(path)
    return full


def _is_disk_full(err: BaseException) -> bool:
    return isinstance(err, OSError) and err.errno in (errno.ENOSPC, errno.EDQUOT)


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
    except OSError as err:
        if _is_disk_full(err):
            raise disk_full(path, err) from None
        raise
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
    except OSError as err:
        if _is_disk_full(err):
            raise disk_full(path, err) from None
        raise
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
        remove_orphans(path.parent, f".{path.name}.*.tmp", recursive=False)  # a killed build's; none is running
        with atomic_dir(path) as tmp:
            build(tmp)
    return True


def remove_orphans(directory: str | os.PathLike, pattern: str = TEMP_GLOB, recursive: bool = True) -> list[Path]:
    """Remove the temporaries (files and directories named ``pattern``) of interrupted atomic writes
    in ``directory`` (and below it); returns what was removed. Only call it where no other process
    is writing them (a run directory under its run lock, an artifact under its build lock)."""
    directory = Path(directory)
    if not directory.is_dir():
        return []
    matches = directory.rglob(pattern) if recursive else directory.glob(pattern)
    found = sorted(matches, key=lambda p: len(p.parts), reverse=True)
    removed = []
    for p in found:
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p, ignore_errors=True)
        else:
            p.unlink(missing_ok=True)
        removed.append(p)
    return removed
