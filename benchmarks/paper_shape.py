"""Time and peak memory of every stage of a paper-scale job, to size a GPU job before launching it.

For each paper experiment (``conf/experiment/vocab_ablation.yaml``, ``pretrain_study.yaml``,
``head_scale.yaml``) its paper-shaped job (:mod:`splade_exp.paper_shape`: the experiment file as
written, the papers' model shapes -- BERT-base under a 100,000-word unigram head, ModernBERT-base
with its 50,368 terms -- built offline with random weights, 200 passages, 2 EMLM and 2 fine-tuning
steps at batch 8) runs the public path, ``run(cfg)``, in a fresh process with a runs root of its
own, so every artifact is built as a first job of a sweep builds it. The pipeline's stages are
wrapped (``STAGES``: backbone build, unigram vocabulary, head initialisation, EMLM pretraining and
its statistics, encoding, pruning-grid metrics, ...) and every training step is timed by a
callback added to the stage's trainer; per stage the JSON holds the wall time and the process's
CPU time (all threads; less sensitive than wall time to other jobs on a shared machine) of each
call, and the peak memory while it ran:

- CPU: the process's peak RSS (``VmHWM``, reset through ``/proc/self/clear_refs`` when a stage
  starts; a stage inside another passes its peak up);
- CUDA (``--accelerator gpu``): ``torch.cuda.max_memory_allocated``, reset likewise.

Beside the public path, an isolated probe per backbone shape: forward and backward of the built
trunk under a head of the job's |V| (chunked max pooling, loss ``w.sum()``, gradients of every
parameter kept from a warm-up step) at batch 8 and L = 64 and 128, random ids: the extra peak over
the memory held before the step, whose growth from L = 64 to 128 is the activation memory per
token (README, *Sizing a paper-scale job*).

    python benchmarks/paper_shape.py                      # all three -> results/paper_shape.json
    python benchmarks/paper_shape.py --experiments head_scale
    python benchmarks/paper_shape.py --accelerator gpu    # on a GPU machine

The orchestrating process does not import torch (its memory would count in the children's peaks).
"""
from __future__ import annotations

import argparse
import importlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).resolve().parent / "results"
EXPERIMENTS = ("vocab_ablation", "pretrain_study", "head_scale")
MiB = 2**20
PROBE = [(8, 64), (8, 128)]  # (B, L) of the activation probe

sys.path.insert(0, str(Path(__file__).resolve().parent))
from head_memory import _cpu_model, _git_commit, _hwm_bytes, _loadavg, _reset_hwm, _rss_bytes, _write_json  # noqa: E402

#: stage -> the function whose calls it is (``module:attribute``), wrapped in the measured process.
STAGES = {
    "data loading": "splade_exp.run:load_collection",
    "BM25 baseline": "splade_exp.run:ensure_bm25",
    "backbone build": "splade_exp.run:load_backbone",
    "unigram vocabulary": "splade_exp.vocab.heads:unigram_vocabulary",
    "head initialisation": "splade_exp.vocab.heads:initial_decoder",
    "EMLM rows (tokenised corpus)": "splade_exp.stages.pretrain:rows_artifact",
    "EMLM pretraining": "splade_exp.stages.pretrain:_train",
    "EMLM statistics": "splade_exp.stages.emlm_stats:emlm_statistics",
    "encoding": "splade_exp.stages.evaluate:encode_to_store",
    "pruning-grid metrics": "splade_exp.stages.evaluate:pruning_rows",
}
#: trainer module (by class name) -> the name of its steps
STEP_NAMES = {"EmlmModule": "EMLM step", "SpladeModule": "fine-tuning step"}


# --------------------------------------------------------------------------- measured process
class Meter:
    """Wall time and peak memory of nested stages (see the module docstring)."""

    def __init__(self, cuda: bool) -> None:
        self.cuda = cuda
        self.stack: list[dict] = []
        self.records: dict[str, list[dict]] = {}

    def _now(self) -> int:
        import torch

        return torch.cuda.memory_allocated() if self.cuda else _rss_bytes()

    def _peak(self) -> int:
        import torch

        return torch.cuda.max_memory_allocated() if self.cuda else _hwm_bytes()

    def _reset(self) -> None:
        import torch

        if self.cuda:
            torch.cuda.reset_peak_memory_stats()
        else:
            _reset_hwm()

    def start(self, name: str, **info) -> None:
        peak = self._peak()
        for outer in self.stack:
            outer["peak"] = max(outer["peak"], peak)
        self._reset()
        now = self._now()
        self.stack.append({"name": name, "t0": time.perf_counter(), "c0": time.process_time(), "start": now,
                           "peak": now, **info})

    def stop(self) -> dict:
        s = self.stack.pop()
        s["peak"] = max(s["peak"], self._peak())
        for outer in self.stack:
            outer["peak"] = max(outer["peak"], s["peak"])
        rec = {"s": round(time.perf_counter() - s["t0"], 3), "cpu_s": round(time.process_time() - s["c0"], 3),
               "start_mib": round(s["start"] / MiB, 1), "peak_mib": round(s["peak"] / MiB, 1),
               **{k: v for k, v in s.items() if k not in ("name", "t0", "c0", "start", "peak")}}
        self.records.setdefault(s["name"], []).append(rec)
        return rec

    @contextmanager
    def stage(self, name: str):
        self.start(name)
        try:
            yield
        finally:
            self.stop()


def _wrap(meter: Meter, name: str, fn):
    def wrapped(*args, **kwargs):
        with meter.stage(name):
            return fn(*args, **kwargs)

    return wrapped


def _instrument(meter: Meter) -> list[str]:
    """Wrap the stages and add a step timer to every trainer; the targets not found."""
    import lightning as L

    missing = []
    for name, target in STAGES.items():
        module, attr = target.split(":")
        mod = importlib.import_module(module)
        if not hasattr(mod, attr):
            missing.append(target)
            continue
        setattr(mod, attr, _wrap(meter, name, getattr(mod, attr)))

    class StepTimer(L.Callback):
        def on_train_batch_start(self, trainer, module, batch, batch_idx):
            tokens = sum(int(v.numel()) for k, v in batch.items() if k.endswith("input_ids"))
            meter.start(STEP_NAMES.get(type(module).__name__, type(module).__name__), tokens=tokens)

        def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
            meter.stop()

    fit = importlib.import_module("splade_exp.stages.fit")
    make_trainer = fit.make_trainer

    def with_timer(*args, callbacks=(), **kwargs):
        return make_trainer(*args, callbacks=[*callbacks, StepTimer()], **kwargs)

    fit.make_trainer = with_timer
    return missing


def _probe(meter: Meter, root: Path, vocab_size: int, device: str) -> list[dict]:
    """The isolated activation probe on the backbone the job built (see the module docstring)."""
    import torch
    from torch import nn

    from splade_exp.models.backbone import load_masked_lm
    from splade_exp.models.encoder import SpladeEncoder

    [built] = sorted((root / "artifacts" / "backbone").glob("built-*"))
    mlm, _ = load_masked_lm(str(built))
    enc = SpladeEncoder.from_masked_lm(mlm).to(device)
    enc.decoder = nn.Linear(enc.decoder.in_features, vocab_size).to(device)
    enc.train()
    g = torch.Generator().manual_seed(0)

    def step(b: int, length: int) -> None:
        ids = torch.randint(5, enc.mlm.config.vocab_size, (b, length), generator=g).to(device)
        enc(ids, torch.ones_like(ids)).sum().backward()

    step(2, 8)  # gradients of every parameter exist from here on, as in training
    out = []
    for b, length in PROBE:
        meter.start("probe")
        t0 = time.perf_counter()
        step(b, length)
        rec = meter.stop()
        out.append({"B": b, "L": length, "tokens": b * length, "s": round(time.perf_counter() - t0, 3),
                    "cpu_s": rec["cpu_s"], "extra_peak_mib": round(rec["peak_mib"] - rec["start_mib"], 1)})
    meter.records.pop("probe", None)
    return out


def worker(payload: dict) -> dict:
    import torch

    from splade_exp.resolvers import register_resolvers
    from splade_exp.paper_shape import overrides

    register_resolvers()
    cuda = payload["accelerator"] in ("gpu", "cuda")
    meter = Meter(cuda)
    missing = _instrument(meter)
    from hydra import compose, initialize_config_dir
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import open_dict

    from splade_exp.run import run

    root = Path(payload["root"])
    job = overrides(payload["experiment"], payload["data"])
    args = [*job, f"paths.root={root}", "logger=none", "trainer.enable_progress_bar=false",
            f"trainer.accelerator={payload['accelerator']}"]
    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        cfg = compose(config_name="config", overrides=args, return_hydra_config=True)
    HydraConfig.instance().set_config(cfg)
    with open_dict(cfg):
        del cfg["hydra"]
    t0 = time.perf_counter()
    with meter.stage("whole job"):
        frame = run(cfg)
    wall = time.perf_counter() - t0
    row = frame.iloc[0]
    vocab_size = int(row["vocab_size"])
    probe = _probe(meter, root, vocab_size, "cuda" if cuda else "cpu")
    built = json.loads(next((root / "artifacts" / "backbone").glob("built-*/config.json")).read_text())
    return {
        "experiment": payload["experiment"], "overrides": job, "status": str(row["status"]),
        "wall_s": round(wall, 1), "threads": torch.get_num_threads(),
        "model": {"model_type": built["model_type"], "layers": built["num_hidden_layers"],
                  "hidden": built["hidden_size"], "input_vocab": built["vocab_size"], "output_vocab": vocab_size},
        "stages": {name: _summary(recs) for name, recs in meter.records.items()},
        "probe": probe, "targets_not_found": missing,
    }


def _summary(recs: list[dict]) -> dict:
    out = {"calls": len(recs), "s": [r["s"] for r in recs], "cpu_s": [r["cpu_s"] for r in recs],
           "peak_mib": max(r["peak_mib"] for r in recs), "start_mib": recs[0]["start_mib"]}
    if len(recs) > 1:
        out["median_s"] = round(statistics.median(r["s"] for r in recs), 3)
    if "tokens" in recs[0]:
        out["tokens"] = [r["tokens"] for r in recs]
    return out


# --------------------------------------------------------------------------- orchestrating process
def _spawn(payload: dict) -> dict:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", json.dumps(payload)]
    res = subprocess.run(cmd, capture_output=True, text=True)
    for line in reversed(res.stdout.strip().splitlines()):
        if line.startswith("{"):
            return json.loads(line)
    tail = (res.stderr or res.stdout).strip().splitlines()[-8:]
    return {"experiment": payload["experiment"], "status": "error",
            "reason": f"exit code {res.returncode}: " + " | ".join(tail)}


def _write_data(root: Path) -> str:
    code = ("import sys; from splade_exp.paper_shape import write_msmarco; "
            f"print(write_msmarco({str(root)!r}))")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return res.stdout.strip().splitlines()[-1]


def _versions() -> dict:
    code = ("import json, torch, transformers, lightning; print(json.dumps({'torch': torch.__version__, "
            "'transformers': transformers.__version__, 'lightning': lightning.__version__, "
            "'cuda': torch.cuda.get_device_name(0) if torch.cuda.is_available() else None}))")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return json.loads(res.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--experiments", nargs="+", default=list(EXPERIMENTS), choices=EXPERIMENTS)
    ap.add_argument("--accelerator", default="cpu", choices=("cpu", "gpu"))
    ap.add_argument("--root", default=None, help="where the runs go (default: a temporary directory)")
    ap.add_argument("--out", default=str(RESULTS / "paper_shape.json"))
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        print(json.dumps(worker(json.loads(args.worker))))
        return
    with tempfile.TemporaryDirectory(prefix="paper-shape-") as tmp:
        root = Path(args.root or tmp)
        meta = {"cpu": _cpu_model(), "cpus": os.cpu_count(), "accelerator": args.accelerator,
                "loadavg_start": _loadavg(), "git": _git_commit(), **_versions()}
        data = _write_data(root / "data")
        results = {}
        for exp in args.experiments:
            print(f"{exp} ...", flush=True)
            results[exp] = _spawn({"experiment": exp, "data": data, "root": str(root / exp),
                                   "accelerator": args.accelerator})
            r = results[exp]
            print(f"  {r.get('status')} in {r.get('wall_s')} s" if r.get("status") != "error" else f"  {r['reason']}")
        meta["loadavg_end"] = _loadavg()
    out = Path(args.out)
    _write_json(out, {"meta": meta, "experiments": results})
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
