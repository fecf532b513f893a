"""Evaluation at collection scale: today's in-memory path vs vector shards streamed from disk.

Synthetic SPLADE-like vectors: term ids drawn from a Zipf law (exponent ``--zipf``) over |V| terms,
about 120 distinct non-zeros per document and 25 per query, weights log-normal (positive, like
``log1p(relu(.))`` of logits); one relevant document per query. The unpruned document vectors are
written once per (N, |V|) as shards on disk (``splade_exp.vectors.ShardedVectors``, what an
evaluation leaves under ``runs/<run_id>/vectors``), then every case runs in a fresh process:

- ``old``: the path before shards (kept in ``splade_exp.reference``): the whole matrix in memory
  (as encoding left it), then per grid point the row-loop ``prune_csr_loop``, ``retrieve_dense``
  (256 × N dense score blocks), ``ir_measures`` aggregate and the index statistics;
- ``new``: ``splade_exp.stages.evaluate.pruning_rows`` on the shard store: one pass over the shards
  for the whole grid (vectorised pruning, top-n sparse product on ``--threads`` threads, per-query
  top-k merged across shards, statistics by bincount), per-query metrics and their mean.

Both evaluate the four-point grid {(0,0), (7,20), (5,20), (5,10)} at k = 1000. Per case: wall time of
the evaluation (prune + retrieve + metrics; the old path's load of the matrix is not counted, the
new path's reading of shards is), peak RSS of the process (``ru_maxrss``), and the metrics, which
must agree between the paths. Targets (N = 1M, |V| = 30,522): new >= 5x faster than old, and new
peak RSS <= 1.5x the stored unpruned document vectors.

``--encode``: encoding throughput on SciFact abstracts with ``backbone=splade_tiny``: the old
in-memory ``encode`` (one CSR matrix) vs ``encode_to_store`` (shards written to disk), each in a
fresh process.

Usage::

    python benchmarks/eval_scale.py                       # all cases -> benchmarks/results/eval_scale.json
    python benchmarks/eval_scale.py --cases 100000:30522:old,100000:30522:new --no-encode
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path
from machine import cpu_model as _cpu_model

REPO = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).resolve().parent / "results"
GRID = [(0, 0), (7, 20), (5, 20), (5, 10)]
METRICS = ("mrr@10", "recall@10", "recall@100", "ndcg@10", "flops", "l0_q", "l0_d", "posting_mean", "posting_max",
           "posting_var")
DEFAULT_CASES = ("100000:30522:old,100000:30522:new,1000000:30522:new,1000000:30522:old,"
                 "100000:100000:old,100000:100000:new,1000000:100000:new")
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


# ------------------------------------------------------------------------------------------ data
def _zipf_rows(rng, n: int, vocab: int, length: int, zipf: float, chunk: int = 50_000):
    """CSR blocks of ``n`` rows: ~``length`` distinct Zipf-drawn term ids per row, log-normal weights."""
    import numpy as np
    import scipy.sparse as sp

    cdf = np.cumsum(1.0 / np.arange(1, vocab + 1) ** zipf)
    cdf /= cdf[-1]
    # a random permutation of term ids, so frequent terms are not the low ids
    perm = rng.permutation(vocab).astype(np.int64)
    draws = int(length * 1.1) + 2  # duplicates are dropped: draw a little more
    for lo in range(0, n, chunk):
        m = min(chunk, n - lo)
        terms = perm[np.searchsorted(cdf, rng.random((m, draws)))]
        terms.sort(axis=1)
        first = np.ones_like(terms, dtype=bool)
        first[:, 1:] = terms[:, 1:] != terms[:, :-1]
        first &= np.cumsum(first, axis=1) <= length + int(rng.integers(-10, 11))
        counts = first.sum(axis=1)
        indptr = np.zeros(m + 1, dtype=np.int64)
        np.cumsum(counts, out=indptr[1:])
        data = rng.lognormal(0.0, 0.6, int(indptr[-1])).astype(np.float32)
        yield sp.csr_matrix((data, terms[first].astype(np.int32), indptr), shape=(m, vocab))


def generate(root: Path, n: int, vocab: int, queries: int, zipf: float, shard_size: int, seed: int = 0) -> dict:
    import numpy as np
    import scipy.sparse as sp

    from splade_exp.io import write_json
    from splade_exp.vectors import ShardedVectors

    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    key = {"synthetic": "zipf", "n": n, "vocab": vocab, "zipf": zipf, "seed": seed}
    docs = ShardedVectors.open(root, "docs", key, n, vocab, shard_size)
    if docs.missing():
        block = iter(_zipf_rows(rng, n, vocab, 120, zipf, chunk=shard_size))
        for i in range(docs.num_shards):
            m = next(block)
            if not docs.shard_path(i).exists():
                docs.write(i, m)
    q = sp.vstack(list(_zipf_rows(np.random.default_rng(seed + 1), queries, vocab, 25, zipf)), format="csr")
    qpath = root / "queries.npz"
    sp.save_npz(qpath, q)
    rel = np.random.default_rng(seed + 2).integers(0, n, queries)
    write_json(root / "qrels.json", {f"q{i}": {f"d{int(d)}": 1} for i, d in enumerate(rel)})
    return {"docs": str(docs.path), "queries": str(qpath), "qrels": str(root / "qrels.json"),
            "stored_docs_mb": docs.nbytes() / 1e6, "nnz_per_doc": None}


# ------------------------------------------------------------------------------------------ cases
def run_case(job: dict) -> dict:
    import json as _json

    import numpy as np
    import scipy.sparse as sp

    from splade_exp.vectors import ShardedVectors

    meta = _json.loads((Path(job["docs"]) / "manifest.json").read_text())
    store = ShardedVectors(Path(job["docs"]), meta["rows"], meta["cols"], meta["shard_size"], meta["key"])
    q = sp.load_npz(job["queries"]).tocsr()
    qrels = _json.loads(Path(job["qrels"]).read_text())
    query_ids = [f"q{i}" for i in range(q.shape[0])]
    doc_ids = [f"d{i}" for i in range(store.rows)]
    base = _peak_rss_mb()
    out = {"path": job["path"], "n": store.rows, "vocab": store.cols, "queries": q.shape[0], "threads": job["threads"]}
    if job["path"] == "old":
        import ir_measures

        from splade_exp import metrics as M
        from splade_exp.reference import prune_csr_loop, retrieve_dense

        t0 = time.perf_counter()
        d = sp.vstack([m for _, m in store], format="csr")  # what today's encode leaves in memory
        out["load_s"] = time.perf_counter() - t0
        out["nnz_per_doc"] = d.nnz / d.shape[0]
        rows, phases = [], {"prune_s": 0.0, "retrieve_s": 0.0, "metrics_s": 0.0}
        t_all = time.perf_counter()
        for qk, dk in GRID:
            t = time.perf_counter()
            qp, dp = prune_csr_loop(q, qk), prune_csr_loop(d, dk)
            phases["prune_s"] += time.perf_counter() - t
            t = time.perf_counter()
            run = retrieve_dense(qp, dp, query_ids, doc_ids, k=1000)
            phases["retrieve_s"] += time.perf_counter() - t
            t = time.perf_counter()
            r = {name: 0.0 for name in M.MEASURES}
            run = {qid: (run.get(qid) or {"__none__": 0.0}) for qid in qrels}
            agg = ir_measures.calc_aggregate(list(M.MEASURES.values()), qrels, run)
            r = {name: float(agg.get(m, 0.0)) for name, m in M.MEASURES.items()}
            r.update({"flops": M.flops_cost(qp, dp), "l0_q": M.mean_l0(qp), "l0_d": M.mean_l0(dp),
                      **M.posting_stats(dp)})
            phases["metrics_s"] += time.perf_counter() - t
            rows.append({"qk": qk, "dk": dk, **r})
            del qp, dp, run
        out["eval_s"] = time.perf_counter() - t_all
        out.update(phases)
    else:
        from splade_exp.stages.evaluate import pruning_rows

        t_all = time.perf_counter()
        phases: dict = {}
        result = pruning_rows(q, store, query_ids, doc_ids, qrels, GRID, k=1000, threads=job["threads"],
                              timings=phases)
        out["eval_s"] = time.perf_counter() - t_all
        out.update(phases)
        rows = [{k: v for k, v in r.items() if k in ("qk", "dk", *METRICS)} for r in result.rows]
    out["rows"] = rows
    out["peak_rss_mb"] = _peak_rss_mb()
    out["rss_before_mb"] = base
    out["stored_docs_mb"] = store.nbytes() / 1e6
    out["loadavg_end"] = os.getloadavg()
    return out


def encode_case(job: dict) -> dict:
    import shutil
    import tempfile

    import torch

    from splade_exp.resolvers import _package_path
    from splade_exp.models.backbone import load_masked_lm
    from splade_exp.models.encoder import SpladeEncoder
    from splade_exp.stages.evaluate import encode, encode_to_store
    from splade_exp.vectors import ShardedVectors

    torch.set_num_threads(job["threads"])
    mlm, tokenizer = load_masked_lm(_package_path("cognition", "model"))
    encoder = SpladeEncoder.from_masked_lm(mlm).eval()
    texts = job["texts"]
    encode(encoder, tokenizer, texts[:8], 256, 8)  # warm-up
    tmp = Path(tempfile.mkdtemp(dir=job["workdir"]))
    try:
        t0 = time.perf_counter()
        if job["path"] == "old":
            m = encode(encoder, tokenizer, texts, 256, job["batch_size"])
            nnz = m.nnz
        else:
            store = ShardedVectors.open(tmp, "docs", {"bench": 1}, len(texts), encoder.vocab_size, job["shard_size"])
            encode_to_store(encoder, tokenizer, texts, store, 256, job["batch_size"])
            nnz = sum(s.nnz for _, s in store)
        wall = time.perf_counter() - t0
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return {"path": job["path"], "docs": len(texts), "wall_s": wall, "docs_per_s": len(texts) / wall,
            "nnz_per_doc": nnz / len(texts), "peak_rss_mb": _peak_rss_mb(), "threads": job["threads"],
            "loadavg_end": os.getloadavg()}


def _spawn(kind: str, job: dict, workdir: Path) -> dict:
    path = workdir / f"job-{kind}-{time.time_ns()}.json"
    path.write_text(json.dumps(job))
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": str(job.get("threads", 2))}
    res = subprocess.run([sys.executable, str(Path(__file__).resolve()), f"--{kind}", str(path)],
                         capture_output=True, text=True, env=env)
    path.unlink(missing_ok=True)
    for line in reversed(res.stdout.strip().splitlines()):
        if line.startswith("{"):
            return json.loads(line)
    return {**{k: v for k, v in job.items() if k != "texts"}, "status": "error",
            "reason": f"exit {res.returncode}: " + " | ".join((res.stderr or res.stdout).strip().splitlines()[-6:])}


def _scifact_texts(path: Path, n: int) -> list[str]:
    texts = []
    with path.open() as fh:
        for line in fh:
            doc = json.loads(line)
            texts.append(f"{doc.get('title', '')} {doc.get('text', '')}".strip())
            if len(texts) == n:
                break
    return texts


def _compare(old: dict, new: dict) -> dict:
    diffs = {}
    for a, b in zip(old["rows"], new["rows"]):
        for m in METRICS:
            diffs[m] = max(diffs.get(m, 0.0), abs(a[m] - b[m]))
    return diffs


def _dump(out: Path, meta: dict, data: dict, cases: list, encode: list) -> list:
    from splade_exp.io import write_json

    summary = summarise(cases)
    write_json(out, {"meta": meta, "data": {f"{n}:{v}": d for (n, v), d in data.items()}, "cases": cases,
                     "summary": summary, "encode": encode})
    return summary


def summarise(cases: list[dict]) -> list[dict]:
    """Old vs new per (N, |V|): speed-up, peak RSS over the stored vectors, metric differences."""
    summary = []
    for n, vocab in dict.fromkeys((c.get("n"), c.get("vocab")) for c in cases if "eval_s" in c):
        by = {c["path"]: c for c in cases if c.get("n") == n and c.get("vocab") == vocab and "eval_s" in c}
        if "new" not in by:
            continue
        new = by["new"]
        s = {"n": n, "vocab": vocab, "new_eval_s": new["eval_s"], "new_peak_rss_mb": new["peak_rss_mb"],
             "stored_docs_mb": new["stored_docs_mb"], "rss_over_stored": new["peak_rss_mb"] / new["stored_docs_mb"]}
        if "old" in by:
            old = by["old"]
            s.update({"old_eval_s": old["eval_s"], "old_peak_rss_mb": old["peak_rss_mb"],
                      "speedup": old["eval_s"] / new["eval_s"], "max_abs_metric_diff": _compare(old, new)})
        if n == 1_000_000 and vocab == 30522:
            s["targets"] = {"speedup >= 5": s.get("speedup", 0) >= 5, "rss_over_stored <= 1.5": s["rss_over_stored"] <= 1.5}
        summary.append(s)
    return summary


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--case", help=argparse.SUPPRESS)
    p.add_argument("--gen", help=argparse.SUPPRESS)
    p.add_argument("--enc", help=argparse.SUPPRESS)
    p.add_argument("--cases", default=DEFAULT_CASES, help="N:|V|:old|new, comma-separated")
    p.add_argument("--queries", type=int, default=1000)
    p.add_argument("--zipf", type=float, default=1.0)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--shard-size", type=int, default=100_000)
    p.add_argument("--workdir", type=Path, default=None, help="where the synthetic shards go (default: <root>/bench)")
    p.add_argument("--no-encode", action="store_true")
    p.add_argument("--encode-docs", type=int, default=1000)
    p.add_argument("--scifact", type=Path, default=REPO.parent / "shared" / "datasets" / "scifact" / "corpus.jsonl")
    p.add_argument("--out", type=Path, default=RESULTS / "eval_scale.json")
    args = p.parse_args(argv)
    for flag, fn in (("case", run_case), ("gen", lambda job: generate(Path(job["root"]), job["n"], job["vocab"],
                                                                        job["queries"], job["zipf"],
                                                                        job["shard_size"])),
                     ("enc", encode_case)):
        if getattr(args, flag):
            print(json.dumps(fn(json.loads(Path(getattr(args, flag)).read_text()))), flush=True)
            return 0

    root = Path(os.environ.get("SPLADE_EXP_ROOT", REPO / "runs"))
    workdir = args.workdir or root / "bench" / "eval_scale"
    workdir.mkdir(parents=True, exist_ok=True)
    meta = {"command": "python benchmarks/eval_scale.py " + " ".join(sys.argv[1:] if argv is None else argv),
            "cpu": _cpu_model(), "cpu_count": os.cpu_count(), "python": platform.python_version(),
            "loadavg_start": os.getloadavg(), "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "grid": GRID,
            "queries": args.queries, "threads_new": args.threads, "zipf": args.zipf, "shard_size": args.shard_size}
    cases, data = [], {}
    for spec in args.cases.split(","):
        n, vocab, path = spec.split(":")
        n, vocab = int(n), int(vocab)
        if (n, vocab) not in data:
            t0 = time.perf_counter()
            data[(n, vocab)] = _spawn("gen", {"root": str(workdir / f"n{n}_v{vocab}"), "n": n, "vocab": vocab,
                                              "queries": args.queries, "zipf": args.zipf,
                                              "shard_size": args.shard_size, "threads": 1}, workdir)
            print(f"data N={n} |V|={vocab}: {time.perf_counter() - t0:.0f}s {data[(n, vocab)].get('reason', '')}",
                  file=sys.stderr, flush=True)
        d = data[(n, vocab)]
        r = _spawn("case", {"path": path, "docs": d["docs"], "queries": d["queries"], "qrels": d["qrels"],
                            "threads": args.threads if path == "new" else 1}, workdir)
        print(f"N={n} |V|={vocab} {path}: {r.get('eval_s', r.get('reason'))} s, peak {r.get('peak_rss_mb')} MB",
              file=sys.stderr, flush=True)
        cases.append(r)
        _dump(args.out, meta, data, cases, [])  # after every case: a long run interrupted keeps what it measured
    encode = []
    if not args.no_encode and args.scifact.exists():
        texts = _scifact_texts(args.scifact, args.encode_docs)
        for path in ("old", "new"):
            r = _spawn("enc", {"path": path, "texts": texts, "threads": args.threads, "batch_size": 32,
                               "shard_size": 250, "workdir": str(workdir)}, workdir)
            print(f"encode {path}: {r.get('docs_per_s', r.get('reason'))} docs/s", file=sys.stderr, flush=True)
            encode.append(r)
    meta["loadavg_end"] = os.getloadavg()
    summary = _dump(args.out, meta, data, cases, encode)
    print(json.dumps(summary, indent=1))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
