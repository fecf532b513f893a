"""SciFact end to end: zero-shot and fine-tuned SPLADE over the pruning grid, next to BM25.

The real-data check of the pipeline, on BEIR SciFact (5,183 abstracts; 919 train pairs over 809
claims; 300 test claims). For each backbone (default: ``splade_tiny``, a trained SPLADE BERT-tiny
shipped offline in a PyPI package):

1. **zero-shot**: ``stage=evaluate``, the model as shipped, on the test split;
2. **fine-tuned**: ``stage=train`` on ``qrels/train.tsv`` (in-batch negatives + FLOPS), then the
   test split.

Both are evaluated over ``prune.grid`` (encode once, prune many times) and BM25 is measured on the
same split. 196 of the 300 test claims have a relevant abstract that is also a training positive,
so a fine-tuned model partly memorises documents; the zero-shot rows are the reference that does
not, and ``--heldout`` adds a third run fine-tuned without the training pairs whose abstract is
judged relevant for a test claim (``data.exclude_eval_docs=true``).

Each run is ``splade_exp.run.run`` on a config composed exactly as the command line composes it,
i.e. the same as::

    python -m splade_exp data=beir data.path=<SciFact> backbone=splade_tiny stage=evaluate sweep=scifact
    python -m splade_exp data=beir data.path=<SciFact> backbone=splade_tiny sweep=scifact <TRAIN ...>

Outputs (``<name>`` is the data directory's name, ``scifact`` by default): result files under
``<root>/results/<name>/``, the frontier report (``python -m splade_exp.analysis``) in
``benchmarks/results/<name>/``, and a JSON summary with every (model, qk, dk) row, BM25, the wall
time of each run and the machine, in ``benchmarks/results/<name>.json``.

Usage::

    python benchmarks/scifact.py                                  # ../shared/datasets/scifact
    python benchmarks/scifact.py --data /path/to/any/beir/dir     # any BEIR directory with train qrels
    python benchmarks/scifact.py --steps 40 --backbones splade_tiny,minilm --heldout
"""
from __future__ import annotations

import argparse
import logging
import os
import platform
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).resolve().parent / "results"
DEFAULT_DATA = REPO.parent / "shared" / "datasets" / "scifact"
METRICS = ("mrr@10", "ndcg@10", "recall@10", "recall@100", "flops", "l0_q", "l0_d")
# the latency engine's columns (conf/eval/engine/seismic.yaml, the default)
ENGINE = ("latency_mean_ms", "latency_p50_ms", "latency_p99_ms", "index_size_mb", "recall@1000_vs_exact",
          "engine_mrr@10")

# Fine-tuning: ~4 epochs of the 919 training pairs at batch 32; a low learning rate because the
# backbone is already a trained SPLADE model; the chunked head keeps B x L x |V| logits out of memory.
TRAIN = [
    "trainer.batch_size=32", "trainer.lr=3e-5", "trainer.warmup_steps=10", "trainer.checkpoint_every_n_steps=50",
    "loss.lambda_q=3e-4", "loss.lambda_d=1e-4", "loss.lambda_warmup_steps=40",
]
COMMON = ["data=beir", "logger=none", "head.pooling_impl=chunked", "trainer.eval_batch_size=32",
          "trainer.enable_progress_bar=false", "data.query_max_length=64", "data.doc_max_length=256"]


def compose(overrides: list[str]):
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import open_dict

    from splade_exp.cli import CONFIG_DIR
    from splade_exp.resolvers import register_resolvers

    register_resolvers()
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        cfg = hydra_compose(config_name="config", overrides=overrides, return_hydra_config=True)
    HydraConfig.instance().set_config(cfg)  # ${hydra:...} resolves as inside a job
    with open_dict(cfg):
        del cfg["hydra"]
    return cfg


def one_run(label: str, overrides: list[str]) -> dict:
    from omegaconf import open_dict

    from splade_exp.run import run

    cfg = compose(overrides)
    with open_dict(cfg):
        cfg.model = label  # the curve's name in the report
    t0 = time.perf_counter()
    frame = run(cfg)
    wall = time.perf_counter() - t0
    print(f"  {label}: {wall:.0f}s", flush=True)
    rows = frame[["qk", "dk", *METRICS, *[c for c in ENGINE if c in frame]]].to_dict("records")
    return {"label": label, "run_id": str(frame.run_id.iloc[0]), "status": str(frame.status.iloc[0]),
            "wall_s": wall, "run_wall_time_s": float(frame.wall_time_s.iloc[0]), "overrides": overrides,
            "rows": [{k: (int(v) if k in ("qk", "dk") else float(v)) for k, v in r.items()} for r in rows]}


def table(summary: dict) -> str:
    lines = ["| model | qk | dk | MRR@10 | nDCG@10 | R@10 | R@100 | FLOPS | L0 q | L0 d | p50 ms | p99 ms | R@1000 vs exact |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    entries = [(r["label"], row) for r in summary["runs"] for row in r["rows"]]
    entries.append(("BM25", summary["bm25"]))
    for label, row in entries:
        lines.append(f"| {label} | {row['qk']} | {row['dk']} | {row['mrr@10']:.3f} | {row['ndcg@10']:.3f} | "
                     f"{row['recall@10']:.3f} | {row['recall@100']:.3f} | {row['flops']:.2f} | "
                     f"{row['l0_q']:.1f} | {row['l0_d']:.1f} | {row.get('latency_p50_ms', float('nan')):.2f} | "
                     f"{row.get('latency_p99_ms', float('nan')):.2f} | {row.get('recall@1000_vs_exact', float('nan')):.3f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data", default=os.environ.get("SCIFACT", str(DEFAULT_DATA)), help="a BEIR directory")
    p.add_argument("--root", default=None, help="SPLADE_EXP_ROOT for runs/artifacts/results (default: paths.root)")
    p.add_argument("--backbones", default="splade_tiny", help="comma-separated conf/backbone choices")
    p.add_argument("--steps", type=int, default=120, help="fine-tuning steps")
    p.add_argument("--heldout", action="store_true", help="also fine-tune without test-relevant train pairs")
    p.add_argument("--sweep", default=None, help="results sub-directory (default: the data directory's name)")
    p.add_argument("--out", default=None, help="JSON summary (default: benchmarks/results/<name>.json)")
    p.add_argument("--report", default=None, help="report folder (default: benchmarks/results/<name>/)")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    p.add_argument("--force", action="store_true", help="re-run finished runs")
    p.add_argument("extra", nargs="*", help="more config overrides for every run (key=value)")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")

    if args.root:
        os.environ["SPLADE_EXP_ROOT"] = args.root
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    data = Path(args.data).expanduser().resolve()
    name = data.name
    args.sweep = args.sweep or name
    args.out = args.out or str(RESULTS / f"{name}.json")
    args.report = args.report or str(RESULTS / name)
    base = [*COMMON, f"data.path={data}", f"sweep={args.sweep}", *args.extra] + (["force=true"] if args.force else [])

    t_all = time.perf_counter()
    runs = []
    for backbone in args.backbones.split(","):
        bb = [f"backbone={backbone}"]
        print(f"{backbone}:", flush=True)
        runs.append(one_run(f"{backbone} zero-shot", [*base, *bb, "stage=evaluate"]))
        train = [*base, *bb, *TRAIN, f"trainer.max_steps={args.steps}"]
        runs.append(one_run(f"{backbone} fine-tuned", train))
        if args.heldout:
            runs.append(one_run(f"{backbone} fine-tuned, held-out docs", [*train, "data.exclude_eval_docs=true"]))
    total = time.perf_counter() - t_all

    import pandas as pd

    cfg = compose(base)
    results_dir = Path(cfg.paths.results_dir) / args.sweep
    from splade_exp.run import bm25_path

    bm25 = pd.read_parquet(bm25_path(cfg))
    bm25_row = {k: (int(v) if k in ("qk", "dk") else float(v)) for k, v in bm25.iloc[0][["qk", "dk", *METRICS]].items()}

    import subprocess

    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "splade_exp.analysis", str(results_dir), "--out", args.report], check=True)
    report_s = time.perf_counter() - t0

    summary = {
        "data": str(data), "split": str(cfg.data.eval_split), "steps": args.steps, "runs": runs, "bm25": bm25_row,
        "wall_s": {"runs": total, "report": report_s},
        "machine": {"python": platform.python_version(), "torch": torch.__version__,
                    "threads": torch.get_num_threads(), "cpus": os.cpu_count(), "platform": platform.platform(),
                    "load_avg_end": os.getloadavg()},
        "results_dir": str(results_dir), "report": args.report,
    }
    from splade_exp.io import write_json

    write_json(args.out, summary)
    print(table(summary))
    print(f"total {total:.0f}s; wrote {args.out} and {args.report}/")
    return summary


if __name__ == "__main__":
    main()
