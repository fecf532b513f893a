"""EMLM pretraining on a 2 GB text file: peak resident memory and step time of ``stage=pretrain``.

Generates a ~2 GB text file in a temporary directory (``benchmarks/text_corpus.py``; one paragraph
a line, ~20M lines; deleted at the end) and runs the public command on it::

    python -m splade_exp stage=pretrain +experiment=smoke model=esplade_100k backbone=splade_tiny \\
        pretrain.corpus=<file> pretrain.steps=20 pretrain.batch_size=32 pretrain.max_length=128 ...

in a fresh process, recording its peak resident set (``ru_maxrss`` of the job's process, and the
largest sum over the job's process tree, sampled every 0.2 s), the wall time, the time to select
and tokenise the pretraining rows (two streaming passes over the file), and the time per training
step. The text file is never held in memory: the job streams it once to count the texts and once
to tokenise the ``val_size + steps x batch_size / repetition`` texts it selects.

``previous`` measures, in a fresh process, what the pretraining did with the file before any
training step until it was streamed: read it whole into a list of lines and shuffle the list.

Usage::

    python benchmarks/pretrain_memory.py                  # -> benchmarks/results/pretrain_memory.json
    python benchmarks/pretrain_memory.py --gb 0.2 --steps 5 --out /tmp/x.json
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).resolve().parent / "results"
sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import loadavg, machine  # noqa: E402  (benchmarks/machine.py)

PREVIOUS = r"""
import json, random, resource, sys, time
t0 = time.perf_counter()
with open({path!r}, encoding="utf-8") as fh:   # splade_exp.data.collection.read_lines
    texts = [line.strip() for line in fh if line.strip()]
random.Random(0).shuffle(texts)               # split_texts
print(json.dumps({{"texts": len(texts), "seconds": time.perf_counter() - t0,
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}}))
"""


def _rss_kb(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def _tree(pid: int) -> list[int]:
    pids, todo = [], [pid]
    while todo:
        p = todo.pop()
        pids.append(p)
        try:
            for task in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{task}/children") as f:
                    todo.extend(int(c) for c in f.read().split())
        except OSError:
            pass
    return pids


def run_measured(cmd: list[str], env: dict, log: Path) -> dict:
    """Run ``cmd``; its wall time, its own peak RSS and the peak RSS summed over its process tree."""
    peak_tree = [0]
    with open(log, "w") as out:
        proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT)
        done = threading.Event()

        def sample() -> None:
            while not done.is_set():
                peak_tree[0] = max(peak_tree[0], sum(_rss_kb(p) for p in _tree(proc.pid)))
                time.sleep(0.2)

        sampler = threading.Thread(target=sample, daemon=True)
        t0 = time.perf_counter()
        sampler.start()
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t0
        done.set()
        sampler.join()
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode:
        raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{log.read_text()[-4000:]}")
    return {"wall_s": wall, "peak_rss_mb": usage.ru_maxrss / 1024, "peak_rss_tree_mb": peak_tree[0] / 1024}


def main(argv=None) -> dict:
    from text_corpus import write_text_file

    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--gb", type=float, default=2.0)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--max-length", type=int, default=128)
    p.add_argument("--backbone", default="splade_tiny")
    p.add_argument("--skip-previous", action="store_true")
    p.add_argument("--tmp", default=tempfile.gettempdir())
    p.add_argument("--out", default=str(RESULTS / "pretrain_memory.json"))
    args = p.parse_args(argv)
    start_load = loadavg()
    with tempfile.TemporaryDirectory(dir=args.tmp, prefix="pretrain_memory.") as tmp:
        work = Path(tmp)
        corpus = work / "corpus.txt"
        t0 = time.perf_counter()
        size = write_text_file(corpus, int(args.gb * 1e9))
        gen_s = time.perf_counter() - t0
        overrides = ["stage=pretrain", "+experiment=smoke", "model=esplade_100k", f"backbone={args.backbone}",
                     "logger=none", "vocab.size=150", "vocab.count_processes=1", f"pretrain.corpus={corpus}",
                     f"pretrain.steps={args.steps}", f"pretrain.batch_size={args.batch}",
                     f"pretrain.max_length={args.max_length}", "pretrain.warmup_steps=1", "pretrain.val_size=256",
                     "pretrain.val_every_n_steps=0", "pretrain.log_every_n_steps=1", "pretrain.stats_docs=32",
                     "pretrain.stats_batch_size=16", "hydra.callbacks.preflight.enabled=false"]
        env = {**os.environ, "SPLADE_EXP_ROOT": str(work / "root"), "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1",
               "WANDB_MODE": "offline", "TOKENIZERS_PARALLELISM": "false"}
        job = run_measured([sys.executable, "-m", "splade_exp", *overrides], env, work / "job.log")
        art = work / "root" / "artifacts"
        emlm = next((art / "emlm").glob("emlm-*"))
        stats = json.loads((emlm / "stats.json").read_text())
        rows = json.loads(next((art / "tokens").glob("emlm-*/meta.json")).read_text())
        previous = None
        if not args.skip_previous:
            res = subprocess.run([sys.executable, "-c", PREVIOUS.format(path=str(corpus))], capture_output=True,
                                 text=True, check=True)
            previous = json.loads(res.stdout.strip().splitlines()[-1])
    summary = {
        "file_mb": size / 1e6, "generate_s": gen_s, "command": "python -m splade_exp " + " ".join(overrides),
        "texts": rows["texts"], "selected_texts": rows["train_texts"] + rows["val_texts"],
        "peak_rss_mb": job["peak_rss_mb"], "peak_rss_tree_mb": job["peak_rss_tree_mb"], "wall_s": job["wall_s"],
        "select_and_tokenize_s": rows["build_s"], "train_s": stats["train_time_s"],
        "step_s": stats["train_time_s"] / args.steps, "steps": args.steps, "batch_size": args.batch,
        "max_length": args.max_length, "backbone": args.backbone,
        "previous_read_and_shuffle": previous,
        "machine": machine(start_load),
    }
    from splade_exp.io import write_json

    write_json(args.out, summary)
    print(json.dumps(summary, indent=2))
    return summary


if __name__ == "__main__":
    main()
