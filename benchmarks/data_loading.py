"""Reading a large collection, and tokenising it once for a whole sweep: time and memory.

Writes an MS MARCO-style ``collection.tsv`` of ``--docs`` synthetic passages (about 55 words
each, MS MARCO's mean), then measures, each in a fresh subprocess so peak memory is its own:

- ``load``: :class:`splade_exp.data.msmarco.MsMarco` reading it (streamed, one dictionary of
  strings): wall time and the increase of the resident set, next to the file size;
- ``tokenize``: building the tokens artifact of the corpus (what the first job of a sweep does);
- ``reuse``: what every later job does instead: open the artifact (memory-mapped) and gather
  every document's ids once, batch by batch, as the training collator would;
- ``retokenize``: what every later job would do without the artifact: tokenise every document
  again, batch by batch, with the same tokenizer and max length.

Usage::

    python benchmarks/data_loading.py                      # 100,000 passages -> results/data_loading.json
    python benchmarks/data_loading.py --docs 1000000 --out /tmp/x.json
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import random
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).resolve().parent / "results"

CHILD = r"""
import json, os, resource, sys, time
from pathlib import Path
sys.path.insert(0, {repo!r})
os.environ["TOKENIZERS_PARALLELISM"] = "false"
root, phase, max_length, batch = Path({root!r}), {phase!r}, {max_length}, {batch}

def rss_mb():  # current resident set, MiB
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024

from splade_exp.data.msmarco import MsMarco
from transformers import AutoTokenizer
from splade_exp.resolvers import _package_path
tok = AutoTokenizer.from_pretrained(_package_path("cognition", "model"))
base = rss_mb()
t0 = time.perf_counter()
c = MsMarco(str(root), queries=["queries.tsv"], qrels={{}}).load()
out = {{"load_s": time.perf_counter() - t0, "load_rss_increase_mb": rss_mb() - base, "docs": len(c.corpus)}}
if phase in ("tokenize", "reuse"):
    from splade_exp.data.tokenized import tokenized
    t0 = time.perf_counter()
    toks = tokenized(root / "art", c.key(), "docs", c.corpus, tok, max_length)
    out["artifact_s"] = time.perf_counter() - t0
    if phase == "reuse":
        from splade_exp.data.tokenized import pad_rows
        keys = list(c.corpus)
        t0 = time.perf_counter()
        for i in range(0, len(keys), batch):
            pad_rows([toks.row(k) for k in keys[i:i + batch]], tok.pad_token_id)
        out["gather_s"] = time.perf_counter() - t0
if phase == "retokenize":
    keys = list(c.corpus)
    t0 = time.perf_counter()
    for i in range(0, len(keys), batch):
        tok([c.corpus[k] for k in keys[i:i + batch]], truncation=True, max_length=max_length, padding=True,
            return_tensors="pt")
    out["retokenize_s"] = time.perf_counter() - t0
out["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps(out))
"""


def write_collection(root: Path, n: int, seed: int = 0) -> int:
    rng = random.Random(seed)
    words = [f"w{i}" for i in range(30000)]
    weights = [1.0 / (i + 1) for i in range(len(words))]
    root.mkdir(parents=True, exist_ok=True)
    with open(root / "collection.tsv", "w", encoding="utf-8") as fh:
        for i in range(n):
            fh.write(f"{i}\t{' '.join(rng.choices(words, weights, k=55))}\n")
    (root / "queries.tsv").write_text("0\tw1 w2\n")
    return (root / "collection.tsv").stat().st_size


def child(root: Path, phase: str, max_length: int, batch: int) -> dict:
    code = CHILD.format(repo=str(REPO), root=str(root), phase=phase, max_length=max_length, batch=batch)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--docs", type=int, default=100_000)
    p.add_argument("--max-length", type=int, default=256)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--out", default=str(RESULTS / "data_loading.json"))
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "msmarco"
        size = write_collection(root, args.docs)
        first = child(root, "tokenize", args.max_length, args.batch)   # builds the artifact
        reuse = child(root, "reuse", args.max_length, args.batch)      # a later job of the sweep
        again = child(root, "retokenize", args.max_length, args.batch)  # a later job without it
    summary = {
        "docs": args.docs, "file_mb": size / 2**20, "max_length": args.max_length, "batch": args.batch,
        "load_s": first["load_s"], "load_rss_increase_mb": first["load_rss_increase_mb"],
        "tokenize_once_s": first["artifact_s"], "open_artifact_s": reuse["artifact_s"],
        "gather_all_batches_s": reuse["gather_s"], "retokenize_all_batches_s": again["retokenize_s"],
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "load_avg": os.getloadavg()},
    }
    from splade_exp.io import write_json

    write_json(args.out, summary)
    for k, v in summary.items():
        if k != "machine":
            print(f"{k:28s} {v:.2f}" if isinstance(v, float) else f"{k:28s} {v}")
    return summary


if __name__ == "__main__":
    main()
