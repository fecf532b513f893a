"""Content fingerprints of input files: what a run id and every artifact key know of the data.

A fingerprint is ``{"size": bytes, "xxh3": 128-bit hash of every byte}`` -- the content, not the
name, the location or the modification time. A file edited in place gets a new fingerprint (and
so do the run ids and artifact keys built on it); the same file under another path, copied with
new timestamps or touched keeps its fingerprint, so nothing is recomputed for it.

Hashing every byte costs a read of the file: xxh3 (a non-cryptographic 128-bit hash; nothing here
defends against crafted collisions) is several times faster than sha256 or blake2b, so the disk
sets the pace (``make bench-identity``, ``benchmarks/results/identity.json``). It is done once
per file version: the digest is cached per (resolved path, size, mtime_ns, inode), in this
process and, when a cache directory is given, on disk (``<artifacts_dir>/fingerprints/``), so
the jobs of a sweep and every relaunch read only the stat. The cache follows the "racy git" rule:
a digest is not stored while the file's mtime is within :data:`RACY_S` seconds of now, because a
second edit within the file system's timestamp resolution (1 s or 2 s on some file systems)
would keep size and mtime and hide behind the cached digest.
"""
from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path

import xxhash

BLOCK = 8 << 20
RACY_S = 2.0
_memo: dict[tuple, str] = {}


def normalise_path(path: str | os.PathLike) -> Path:
    """``~`` expanded, made absolute, ``..``/``.``/trailing ``/`` and symbolic links resolved."""
    return Path(os.path.expanduser(str(path))).resolve()


def _digest(path: Path) -> str:
    h = xxhash.xxh3_128()
    with open(path, "rb") as fh:
        while block := fh.read(BLOCK):
            h.update(block)
    return h.hexdigest()


def _cache_file(cache_dir: Path, path: Path) -> Path:
    return Path(cache_dir) / f"{hashlib.sha1(str(path).encode('utf-8')).hexdigest()[:20]}.json"


def fingerprint(path: str | os.PathLike, cache_dir: str | os.PathLike | None = None) -> dict:
    """``{"size", "xxh3"}`` of the file at ``path`` (see the module doc for the cache)."""
    path = normalise_path(path)
    st = path.stat()
    stamp = (str(path), st.st_size, st.st_mtime_ns, st.st_ino, st.st_dev)
    digest = _memo.get(stamp)
    cached = _cache_file(cache_dir, path) if cache_dir is not None else None
    if digest is None and cached is not None:
        try:
            entry = json.loads(cached.read_text())
            if tuple(entry["stamp"]) == stamp:
                digest = entry["xxh3"]
        except (OSError, ValueError, KeyError, TypeError):
            pass
    if digest is None:
        digest = _digest(path)
        if time.time() - st.st_mtime_ns / 1e9 > RACY_S:
            _memo[stamp] = digest
            if cached is not None:
                _store(cached, stamp, digest)
    return {"size": st.st_size, "xxh3": digest}


def _store(cached: Path, stamp: tuple, digest: str) -> None:
    """Best effort: a cache that cannot be written only costs a re-hash later."""
    from splade_exp.io import write_json

    try:
        write_json(cached, {"stamp": list(stamp), "xxh3": digest})
    except OSError:
        pass


def directory_fingerprint(path: str | os.PathLike, cache_dir: str | os.PathLike | None = None) -> dict:
    """Fingerprints of the regular files directly inside ``path``, by name (e.g. a saved model)."""
    path = normalise_path(path)
    return {p.name: fingerprint(p, cache_dir) for p in sorted(path.iterdir())
            if p.is_file() and not p.name.startswith(".")}


def describe_changes(old: dict, new: dict) -> list[str]:
    """Human-readable differences between two ``{role: {"path", "size", "xxh3"}}`` maps."""
    lines = []
    for role in sorted(set(old) | set(new)):
        a, b = old.get(role), new.get(role)
        if a == b:
            continue
        if a is None:
            lines.append(f"{role}: new input {b.get('path', '')}")
        elif b is None:
            lines.append(f"{role}: no longer an input ({a.get('path', '')})")
        elif (a.get("size"), a.get("xxh3")) != (b.get("size"), b.get("xxh3")):
            lines.append(f"{role}: {b.get('path', '')} changed ({a.get('size')} -> {b.get('size')} bytes, "
                         f"content {str(a.get('xxh3'))[:8]} -> {str(b.get('xxh3'))[:8]})")
    return lines
