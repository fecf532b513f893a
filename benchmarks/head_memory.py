"""Peak memory and time of the SPLADE max-pooling head: ``naive`` vs ``chunked``.

Each case (|V|, B, L, H, impl) runs forward + backward of ``sparse_pool`` (loss: ``w.sum()``, or a
random-weighted sum with ``--loss weighted``; h, weight and bias require grad) in a *fresh
subprocess*, so that one case's allocations cannot hide another's:

- CPU: extra peak = ``getrusage(RUSAGE_SELF).ru_maxrss`` at the end minus the baseline RSS right
  after allocating the inputs (h, weight, bias, mask, loss weights). Before taking the baseline the
  process's RSS high-water mark is reset (``/proc/self/clear_refs``, Linux) so that transients of
  start-up and input creation cannot hide the step's peak; where that is not possible the baseline
  is the high-water mark itself (recorded as ``hwm_reset: false``). The extra peak includes
  everything the step allocates, gradients of weight/bias included (the same for both
  implementations).
- CUDA: ``torch.cuda.max_memory_allocated()`` minus ``memory_allocated()`` after the inputs.

Time: one warm-up step, then the median of ``--repeats`` steps (forward and backward also reported
separately). A naive case whose logits would not fit (B·L·|V|·4 bytes × 4 > 60% of the available
memory) is skipped and recorded with the reason.

The ``targets`` section is computed at |V| = 100000, B = 32, L = 64, H = 384:
``memory_ratio`` = chunked extra peak / naive extra peak (target ≤ 0.1) and
``speedup`` = naive time / chunked time (target ≥ 2). Both extra peaks include the weight's
gradient, |V|·H·4 bytes, which no implementation can avoid (at the target case it alone is
H / (2·B·L) ≈ 9.4% of the naive peak); ``memory_ratio_without_param_grads`` also reports the ratio
with the parameter-gradient bytes taken out of both peaks.

Usage::

    python benchmarks/head_memory.py                 # full grid -> benchmarks/results/head_memory.json
    python benchmarks/head_memory.py --quick         # target case and its |V|=30522 twin
    python benchmarks/head_memory.py --train-step    # one SGD step of the head at |V|=100K
    python benchmarks/head_memory.py --device cuda --threads 2 --out /tmp/x.json

The orchestrating process does not import torch (its memory would otherwise be inherited by the
measured children's high-water marks).
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

VOCABS = (30522, 100000)
BATCH = 32
LENGTHS = (64, 256)
HIDDENS = (128, 384, 768)
IMPLS = ("naive", "chunked")
TARGET = {"V": 100000, "B": 32, "L": 64, "H": 384}
TARGET_MEMORY_RATIO = 0.1
TARGET_SPEEDUP = 2.0


# ----------------------------------------------------------------------------------------------
# Child: one case
# ----------------------------------------------------------------------------------------------


def _rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _reset_hwm() -> bool:
    """Resets this process's RSS high-water mark to its current RSS (Linux >= 4.0)."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def _maxrss_bytes() -> int:
    import resource

    kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return kb * (1 if sys.platform == "darwin" else 1024)


def run_case(case: dict) -> dict:
    """Runs one case in this process and returns its measurements."""
    import gc

    import torch

    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))
    from splade_exp.models.pooling import DEFAULT_CHUNK_SIZE, sparse_pool

    torch.set_num_threads(int(case["threads"]))
    device = torch.device(case["device"])
    cuda = device.type == "cuda"
    V, B, L, H = case["V"], case["B"], case["L"], case["H"]
    impl = case["impl"]
    chunk_size = int(case.get("chunk_size") or DEFAULT_CHUNK_SIZE)
    train_step = bool(case.get("train_step"))

    g = torch.Generator().manual_seed(1234)
    # A transformed MLM state is layer-normed (unit scale); tied decoder rows have std ~0.05.
    # In-place scaling: no transient copies of the inputs.
    h = torch.randn(B, L, H, generator=g).to(device).requires_grad_(True)
    weight = torch.randn(V, H, generator=g).mul_(0.05).to(device).requires_grad_(True)
    bias = torch.randn(V, generator=g).mul_(0.1).sub_(0.1).to(device).requires_grad_(True)
    if case.get("full_length"):
        lengths = torch.full((B,), L)
    else:
        lengths = torch.randint(L // 2, L + 1, (B,), generator=g)
    mask = (torch.arange(L)[None, :] < lengths[:, None]).to(device)
    loss_weights = torch.rand(B, V, generator=g).to(device) if case.get("loss") == "weighted" else None
    opt = torch.optim.SGD([weight, bias], lr=0.1) if train_step else None
    gc.collect()

    def sync():
        if cuda:
            torch.cuda.synchronize()

    if cuda:
        sync()
        base = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
    else:
        hwm_reset = _reset_hwm()
        base_rss = _rss_bytes()
        base = max(_maxrss_bytes(), base_rss)  # == base_rss after a reset

    def step() -> tuple[float, float]:
        t0 = time.perf_counter()
        w = sparse_pool(h, weight, bias, mask, pooling="max", impl=impl, chunk_size=chunk_size)
        sync()
        t1 = time.perf_counter()
        (w.sum() if loss_weights is None else (w * loss_weights).sum()).backward()
        if opt is not None:
            opt.step()
        sync()
        t2 = time.perf_counter()
        del w
        h.grad = None
        if opt is not None:
            opt.zero_grad(set_to_none=True)
        else:
            weight.grad = None
            bias.grad = None
        return t1 - t0, t2 - t1

    fwd, bwd, tot = [], [], []
    step()  # warm-up
    for _ in range(int(case["repeats"])):
        f, b = step()
        fwd.append(f)
        bwd.append(b)
        tot.append(f + b)

    sync()
    if cuda:
        extra = torch.cuda.max_memory_allocated() - base
        mem = {"baseline_bytes": base}
    else:
        extra = _maxrss_bytes() - base
        mem = {"baseline_bytes": base, "baseline_rss_bytes": base_rss, "hwm_reset": hwm_reset}
    return {
        **{k: case[k] for k in ("V", "B", "L", "H", "impl")},
        "status": "ok",
        "chunk_size": chunk_size if impl == "chunked" else None,
        "extra_peak_bytes": int(extra),
        "extra_peak_mib": round(extra / 2**20, 1),
        "time_s": statistics.median(tot),
        "time_min_s": min(tot),
        "forward_s": statistics.median(fwd),
        "backward_s": statistics.median(bwd),
        "times_s": [round(t, 4) for t in tot],
        "real_tokens": int(mask.sum()),
        "param_grad_bytes": (weight.numel() + bias.numel()) * weight.element_size(),
        **mem,
    }


# ----------------------------------------------------------------------------------------------
# Parent: grid, skipping, table, JSON
# ----------------------------------------------------------------------------------------------


def _meminfo_bytes(key: str) -> int | None:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _gpu_info() -> dict:
    """Total memory and name of GPU 0, asked of a short-lived child (keeps torch out of here)."""
    code = (
        "import json, torch; p = torch.cuda.get_device_properties(0); "
        "print(json.dumps({'name': p.name, 'total_bytes': p.total_memory}))"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return json.loads(res.stdout.strip().splitlines()[-1])


def _torch_version() -> str:
    res = subprocess.run(
        [sys.executable, "-c", "import torch; print(torch.__version__)"],
        capture_output=True,
        text=True,
    )
    return res.stdout.strip() or "unknown"


def _spawn(case: dict) -> dict:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--case", json.dumps(case)]
    res = subprocess.run(cmd, capture_output=True, text=True)
    for line in reversed(res.stdout.strip().splitlines()):
        if line.startswith("{"):
            return json.loads(line)
    tail = (res.stderr or res.stdout).strip().splitlines()[-5:]
    return {
        **{k: case[k] for k in ("V", "B", "L", "H", "impl")},
        "status": "error",
        "reason": f"exit code {res.returncode}: " + " | ".join(tail),
    }


def _grid(args) -> list[dict]:
    if args.train_step:
        shapes = [(100000, BATCH, L, 384) for L in LENGTHS]
    elif args.quick:
        shapes = [(100000, BATCH, 64, 384), (30522, BATCH, 64, 384)]
    else:
        shapes = [(V, BATCH, L, H) for V in VOCABS for L in LENGTHS for H in HIDDENS]
    return [{"V": V, "B": B, "L": L, "H": H, "impl": impl} for V, B, L, H in shapes for impl in IMPLS]


def _targets(results: list[dict]) -> dict:
    def find(impl):
        for r in results:
            if r["status"] == "ok" and r["impl"] == impl and all(r[k] == v for k, v in TARGET.items() if k != "impl"):
                return r
        return None

    naive, chunked = find("naive"), find("chunked")
    out: dict = {"case": dict(TARGET)}
    if naive is None or chunked is None:
        out["missing"] = "the target case did not run for both implementations"
        return out
    ratio = chunked["extra_peak_bytes"] / max(naive["extra_peak_bytes"], 1)
    speedup = naive["time_s"] / chunked["time_s"]
    out["memory_ratio"] = {"value": round(ratio, 4), "target": f"<= {TARGET_MEMORY_RATIO}", "met": ratio <= TARGET_MEMORY_RATIO}
    out["speedup"] = {"value": round(speedup, 3), "target": f">= {TARGET_SPEEDUP}", "met": speedup >= TARGET_SPEEDUP}
    grads = naive["param_grad_bytes"]
    out["memory_ratio_without_param_grads"] = round(
        max(chunked["extra_peak_bytes"] - grads, 0) / max(naive["extra_peak_bytes"] - grads, 1), 4
    )
    out["speedup_min_times"] = round(naive["time_min_s"] / chunked["time_min_s"], 3)
    out["naive_extra_peak_mib"] = naive["extra_peak_mib"]
    out["chunked_extra_peak_mib"] = chunked["extra_peak_mib"]
    out["param_grad_mib"] = round(grads / 2**20, 1)
    return out


def _table(results: list[dict]) -> str:
    by_key = {(r["V"], r["B"], r["L"], r["H"], r["impl"]): r for r in results}
    head = "| |V| | B | L | H | impl | extra peak MiB | forward s | backward s | total s | mem ratio | speedup |"
    lines = [head, "|" + "---|" * 11]
    for r in results:
        key = (r["V"], r["B"], r["L"], r["H"])
        if r["status"] != "ok":
            lines.append(f"| {key[0]} | {key[1]} | {key[2]} | {key[3]} | {r['impl']} | {r['status']}: {r.get('reason', '')} | | | | | |")
            continue
        ratio = speed = ""
        naive = by_key.get((*key, "naive"))
        if r["impl"] == "chunked" and naive is not None and naive["status"] == "ok":
            ratio = f"{r['extra_peak_bytes'] / max(naive['extra_peak_bytes'], 1):.3f}"
            speed = f"{naive['time_s'] / r['time_s']:.2f}x"
        lines.append(
            f"| {key[0]} | {key[1]} | {key[2]} | {key[3]} | {r['impl']} | {r['extra_peak_mib']:.1f} | "
            f"{r['forward_s']:.3f} | {r['backward_s']:.3f} | {r['time_s']:.3f} | {ratio} | {speed} |"
        )
    return "\n".join(lines)


def _write_json(path: Path, payload: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(payload, f, indent=2)
            f.write("\n")
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--case", help=argparse.SUPPRESS)
    p.add_argument("--quick", action="store_true", help="only |V|=100000 and 30522 at B=32, L=64, H=384")
    p.add_argument("--train-step", action="store_true", help="one full SGD step of the head at |V|=100K")
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    p.add_argument("--threads", type=int, default=2, help="torch.set_num_threads in each case")
    p.add_argument("--repeats", type=int, default=3, help="timed steps per case (after one warm-up)")
    p.add_argument("--chunk-size", type=int, default=None, help="chunked impl's chunk size (default: the library's)")
    p.add_argument("--full-length", action="store_true", help="no padding (default: lengths uniform in [L/2, L])")
    p.add_argument("--loss", choices=("sum", "weighted"), default="sum", help="w.sum() or sum(w * U[0,1) weights)")
    p.add_argument(
        "--out",
        type=Path,
        default=None,
        help="JSON output (default: benchmarks/results/head_memory.json; "
        "head_memory_quick.json with --quick, head_memory_train_step.json with --train-step)",
    )
    args = p.parse_args(argv)

    if args.case:
        print(json.dumps(run_case(json.loads(args.case))), flush=True)
        return 0

    if args.out is None:
        name = "head_memory_train_step.json" if args.train_step else "head_memory_quick.json" if args.quick else "head_memory.json"
        args.out = RESULTS / name

    if args.device == "cuda":
        gpu = _gpu_info()
        budget, device_name = gpu["total_bytes"], gpu["name"]
    else:
        budget = _meminfo_bytes("MemAvailable") or _meminfo_bytes("MemTotal") or 0
        device_name = _cpu_model()

    results = []
    for case in _grid(args):
        case.update(
            device=args.device,
            threads=args.threads,
            repeats=args.repeats,
            chunk_size=args.chunk_size,
            train_step=args.train_step,
            full_length=args.full_length,
            loss=args.loss,
        )
        logits_bytes = case["B"] * case["L"] * case["V"] * 4
        if case["impl"] == "naive" and budget and logits_bytes * 4 > 0.6 * budget:
            r = {
                **{k: case[k] for k in ("V", "B", "L", "H", "impl")},
                "status": "skipped",
                "reason": f"naive needs ~4 x {logits_bytes / 2**30:.1f} GiB of logits > 60% of "
                f"{budget / 2**30:.1f} GiB available",
            }
        else:
            t = time.perf_counter()
            r = _spawn(case)
            r["wall_s"] = round(time.perf_counter() - t, 2)
        results.append(r)
        msg = r.get("reason") or f"extra peak {r['extra_peak_mib']} MiB, {r['time_s']:.3f} s"
        print(f"[{len(results)}] V={r['V']} B={r['B']} L={r['L']} H={r['H']} {r['impl']}: {r['status']} {msg}", file=sys.stderr, flush=True)

    payload = {
        "meta": {
            "mode": "train_step" if args.train_step else "quick" if args.quick else "full",
            "device": args.device,
            "device_name": device_name,
            "threads": args.threads,
            "repeats": args.repeats,
            "memory_budget_bytes": budget,
            "padding": "none" if args.full_length else "lengths uniform in [L/2, L]",
            "loss": ("w.sum()" if args.loss == "sum" else "sum(w * U[0,1) weights)")
            + (" + SGD step on weight, bias" if args.train_step else ""),
            "torch": _torch_version(),
            "python": platform.python_version(),
            "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        },
        "cases": results,
        "targets": _targets(results),
    }
    _write_json(args.out, payload)
    print(_table(results))
    print()
    print("targets:", json.dumps(payload["targets"], indent=2))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
