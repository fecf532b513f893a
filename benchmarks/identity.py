"""What data identity costs: fingerprinting input files, and the line readers that name file:line.

Measures, on files written to a temporary directory (so in the page cache: the figures are the
CPU's cost; a cold read adds the disk's):

- ``fingerprint``: :func:`splade_exp.fingerprint.fingerprint` of a ``--mb`` MiB file, first call
  (hashes every byte with xxh3), then a relaunch's call (the digest read back from the on-disk
  cache: a ``stat`` and a small JSON file), next to hashing the same bytes with sha256 and blake2b
  (what a cryptographic digest would cost);
- ``reader``: reading an MS MARCO-style ``collection.tsv`` of ``--docs`` passages with the readers
  (:func:`splade_exp.data.collection.iter_tsv`: bytes split on newlines, each line decoded so that
  a bad byte is reported with its line) next to plain text-mode iteration (the previous reader);
  both split the fields of every line;
- ``run_id``: :func:`splade_exp.identity.run_id` of a BEIR config whose corpus is the large file,
  first in a fresh root, then again (the cached path every job of a sweep and every relaunch takes).

Usage::

    python benchmarks/identity.py              # 512 MiB, 300,000 passages -> results/identity.json
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import random
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).resolve().parent / "results"
sys.path.insert(0, str(REPO))
from machine import cpu_model


def best(fn, repeat: int = 3) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def hash_with(algo, path: Path) -> str:
    h = algo()
    with open(path, "rb") as fh:
        while block := fh.read(8 << 20):
            h.update(block)
    return h.hexdigest()


def bench_fingerprint(tmp: Path, mb: int) -> dict:
    from splade_exp import fingerprint as F

    big = tmp / "big.bin"
    with open(big, "wb") as fh:
        for _ in range(mb):
            fh.write(os.urandom(1 << 20))
    old = time.time() - 60
    os.utime(big, (old, old))  # not "racy": its digest may be cached
    cache = tmp / "cache"

    def first():
        F._memo.clear()
        for f in cache.glob("*.json") if cache.exists() else []:
            f.unlink()
        F.fingerprint(big, cache)

    def relaunch():
        F._memo.clear()  # a new process: only the on-disk cache
        F.fingerprint(big, cache)

    out = {"mb": mb, "xxh3_first_s": best(first)}
    first()
    out["cached_s"] = best(relaunch, 5)
    out["sha256_s"] = best(lambda: hash_with(hashlib.sha256, big))
    out["blake2b_s"] = best(lambda: hash_with(hashlib.blake2b, big))
    out["xxh3_mb_per_s"] = mb / out["xxh3_first_s"]
    out["sha256_over_xxh3"] = out["sha256_s"] / out["xxh3_first_s"]
    out["blake2b_over_xxh3"] = out["blake2b_s"] / out["xxh3_first_s"]
    return out


def bench_reader(tmp: Path, docs: int) -> dict:
    from splade_exp.data.collection import iter_tsv

    rng = random.Random(0)
    words = [f"w{i}" for i in range(30000)]
    path = tmp / "collection.tsv"
    with open(path, "w", encoding="utf-8") as fh:
        for i in range(docs):
            fh.write(f"{i}\t{' '.join(rng.choice(words) for _ in range(55))}\n")

    def text_mode():  # the previous reader: text-mode iteration, the same per-line work
        with open(path, encoding="utf-8", newline="") as fh:
            for line in fh:
                line = line.rstrip("\r\n")
                if line.strip():
                    line.split("\t")

    def readers():
        for _ in iter_tsv(path, 2, "id<TAB>text"):
            pass

    old, new = best(text_mode), best(readers)
    return {"docs": docs, "mb": path.stat().st_size / 2**20, "text_mode_s": old, "iter_tsv_s": new,
            "iter_tsv_over_text_mode": new / old}


def bench_run_id(tmp: Path) -> dict:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    sys.path.insert(0, str(REPO / "tests"))
    sys.path.insert(0, str(REPO / "tests" / "data"))
    from conftest import compose_cfg
    from data_toys import write_beir

    import splade_exp.data.sources  # noqa: F401  (imports outside the timing: transformers, hydra)
    import splade_exp.models.backbone  # noqa: F401
    from splade_exp import fingerprint as F
    from splade_exp.identity import run_id

    data = write_beir(tmp / "beir")
    (data / "corpus.jsonl").unlink()
    os.link(tmp / "big.bin", data / "corpus.jsonl")  # the large file as the corpus (identity reads bytes only)
    cfg = compose_cfg(["data=beir", f"data.path={data}", "backbone=tiny", "logger=none"], tmp / "root")
    run_id(compose_cfg(["+experiment=smoke"], tmp / "warm"))  # first-call costs other than hashing
    F._memo.clear()
    t0 = time.perf_counter()
    run_id(cfg)
    first = time.perf_counter() - t0
    F._memo.clear()
    again = best(lambda: run_id(cfg), 5)
    return {"first_s": first, "relaunch_s": again}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--mb", type=int, default=512)
    ap.add_argument("--docs", type=int, default=300_000)
    ap.add_argument("--out", type=Path, default=RESULTS / "identity.json")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        result = {"cpu": cpu_model(), "loadavg_before": os.getloadavg(), "python": platform.python_version(),
                  "fingerprint": bench_fingerprint(tmp, args.mb), "reader": bench_reader(tmp, args.docs),
                  "run_id": bench_run_id(tmp), "loadavg_after": os.getloadavg()}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
