"""Peak memory and time of the SPLADE max-pooling head: ``naive`` vs ``chunked``.

Two kinds of case, each run in a *fresh subprocess* so that one case's allocations cannot hide
another's:

- ``head``: forward + backward of ``sparse_pool`` alone (h, weight and bias require grad; loss
  ``w.sum()``, or a random-weighted sum with ``--loss weighted``) for |V| x L x H at B = 32,
  document lengths uniform in [L/2, L] (``--full-length``: no padding).
- ``train``: one full SPLADE training step: a BERT trunk shaped like MiniLM-L6 (6 layers, H = 384,
  random init), an untied |V|-row head (random N(0, 0.02^2), as the random-100K reference model),
  B = 32 queries (L = 32) and their 32 positive documents (L = 64), in-batch cross-entropy plus
  FLOPS on both sides, backward, SGD step.

Memory is the *extra peak* of the measured steps over a baseline taken after the inputs (and the
model) exist:

- CPU: the process's RSS high-water mark (``VmHWM``, reset through ``/proc/self/clear_refs`` just
  before the baseline; ``hwm_reset: false`` in the JSON where that was not possible). Before the
  baseline one step runs on a tiny batch (B = 2, L = 8) so that loading library code and one-time
  initialisation (thread pools, JIT kernels) are not counted against either implementation. The
  peak then covers every step that follows (one warm-up and ``--repeats`` timed ones):
  ``step_peaks_mib`` lists it after each of them, which shows how the C allocator's retained
  memory grows from step to step.
- CUDA: ``torch.cuda.max_memory_allocated()`` over the same steps minus ``memory_allocated()`` at
  the baseline.

Extra peaks include everything a step allocates: the output, the parameter gradients (the weight's
is |V|·H floats, the same for both implementations) and the gradient of h. The JSON reports, per
target case, ``memory_ratio`` (chunked / naive extra peak: the target, <= 0.1), ``floor_ratio``
and ``memory_ratio_without_param_grads``. The floor is what any exact max-pooling backward that
keeps the max and its position holds at the end of the backward, over the naive peak: the
parameter gradients, the gradient of h (B·L·H floats), the saved max values (B·|V| floats: the
output, which the chunked head saves as its values) and the positions (B·|V| bytes for L <= 256).

Allocator (CPU): glibc's ``malloc`` raises its mmap threshold to the size of the largest block
freed so far (up to 32 MiB), after which blocks of that size come from the heap and stay resident
when freed, so the RSS high-water mark also counts memory the allocator keeps, by an amount that
varies from run to run. ``--allocator live`` runs every case with ``MALLOC_MMAP_THRESHOLD_=65536``
(a fixed threshold: blocks of 64 KiB and more are mapped and unmapped one by one), so the RSS
follows the tensors alive at each moment, as ``max_memory_allocated`` does on CUDA. The default
(``glibc``) leaves the allocator as a user's process has it.

Time: the median of ``--repeats`` steps after one warm-up (forward and backward also separately);
``time_min_s`` is the fastest. Wall-clock time on a shared machine is noisy: the JSON records the
load average at the start and end of the run.

Usage::

    python benchmarks/head_memory.py                    # grid + train step -> results/head_memory.json
    python benchmarks/head_memory.py --quick --threads 1,2 --repeats 5   # the target case only
    python benchmarks/head_memory.py --chunk-sweep      # chunked at the target case, chunk sizes
    python benchmarks/head_memory.py --quick --allocator live   # RSS = live tensors (see above)
    python benchmarks/head_memory.py --device cuda      # the same on GPU 0 (max allocated)
    python benchmarks/head_memory.py --device cuda --max-batch   # largest training batch that fits

``--max-batch`` (CUDA only) finds, for |V| in {30522, 100000} and each implementation, the largest
batch B (B queries + B documents) whose training step fits: doubling from 8 until the first
out-of-memory, then bisection, each probe in a fresh subprocess.

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
from machine import cpu_model as _cpu_model

REPO = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).resolve().parent / "results"

VOCABS = (30522, 100000)
BATCH = 32
LENGTHS = (64, 256)
HIDDENS = (128, 384, 768)
IMPLS = ("naive", "chunked")
CHUNK_SWEEP = (256, 512, 1024, 2048, 4096, 8192)
TARGET = {"V": 100000, "B": 32, "L": 64, "H": 384}
TARGET_MEMORY_RATIO = 0.1
TARGET_SPEEDUP = 2.0
# The training step: a MiniLM-L6-shaped BERT trunk, queries of QUERY_LENGTH tokens.
TRUNK = {"hidden_size": 384, "num_hidden_layers": 6, "num_attention_heads": 12, "intermediate_size": 1536}
INPUT_VOCAB = 30522
QUERY_LENGTH = 32
MiB = 2**20


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


def _hwm_bytes() -> int:
    """The RSS high-water mark: ``VmHWM`` (Linux), else ``ru_maxrss``."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    import resource

    kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return kb * (1 if sys.platform == "darwin" else 1024)


def _lengths(torch, B: int, L: int, g, full: bool):
    return torch.full((B,), L) if full else torch.randint(max(1, L // 2), L + 1, (B,), generator=g)


def _mask(torch, lengths, L: int, device):
    return (torch.arange(L)[None, :] < lengths[:, None]).to(device)


def _head_setup(case: dict, torch, device):
    """Parameters of a |V| x H projection; ``make_step(B, L)`` -> one forward+backward."""
    from splade_exp.models.pooling import sparse_pool

    V, H = case["V"], case["H"]
    g = torch.Generator().manual_seed(1234)
    # A transformed MLM state is layer-normed (unit scale); tied decoder rows have std ~0.05.
    weight = torch.randn(V, H, generator=g).mul_(0.05).to(device).requires_grad_(True)
    bias = torch.randn(V, generator=g).mul_(0.1).sub_(0.1).to(device).requires_grad_(True)
    params = [weight, bias]

    def make_step(B: int, L: int):
        h = torch.randn(B, L, H, generator=g).to(device).requires_grad_(True)
        mask = _mask(torch, _lengths(torch, B, L, g, case.get("full_length")), L, device)
        loss_weights = torch.rand(B, V, generator=g).to(device) if case.get("loss") == "weighted" else None

        def forward():
            w = sparse_pool(h, weight, bias, mask, pooling="max", impl=case["impl"], chunk_size=case["chunk_size"])
            return w.sum() if loss_weights is None else (w * loss_weights).sum()

        def clear():
            h.grad = weight.grad = bias.grad = None

        return forward, clear, int(mask.sum())

    return make_step, params


def _train_setup(case: dict, torch, device):
    """A MiniLM-L6-shaped SPLADE encoder with an untied |V|-row head; ``make_step(B, L)``."""
    from transformers import BertConfig, BertForMaskedLM

    from splade_exp import regularizers as R
    from splade_exp.losses import in_batch_cross_entropy
    from splade_exp.models.encoder import SpladeEncoder

    torch.manual_seed(0)
    cfg = BertConfig(vocab_size=INPUT_VOCAB, max_position_embeddings=512, **TRUNK)
    encoder = SpladeEncoder.from_masked_lm(
        BertForMaskedLM(cfg), pooling_impl=case["impl"], chunk_size=case["chunk_size"]
    )
    decoder = torch.nn.Linear(cfg.hidden_size, case["V"])
    torch.nn.init.normal_(decoder.weight, std=0.02)
    torch.nn.init.zeros_(decoder.bias)
    encoder.decoder = decoder
    encoder.to(device).train()
    opt = torch.optim.SGD(encoder.parameters(), lr=1e-3)
    g = torch.Generator().manual_seed(1234)

    def make_step(B: int, L: int):
        Lq = min(QUERY_LENGTH, L)
        q_ids = torch.randint(1000, INPUT_VOCAB, (B, Lq), generator=g).to(device)
        d_ids = torch.randint(1000, INPUT_VOCAB, (B, L), generator=g).to(device)
        q_mask = _mask(torch, _lengths(torch, B, Lq, g, case.get("full_length")), Lq, device).long()
        d_mask = _mask(torch, _lengths(torch, B, L, g, case.get("full_length")), L, device).long()
        positives = torch.arange(B, device=device)

        def forward():
            q, d = encoder(q_ids, q_mask), encoder(d_ids, d_mask)
            return in_batch_cross_entropy(q, d, positives) + 1e-3 * (R.flops(q) + R.flops(d))

        def clear():
            opt.step()
            opt.zero_grad(set_to_none=True)

        return forward, clear, int(d_mask.sum() + q_mask.sum())

    return make_step, [p for p in encoder.parameters() if p.requires_grad]


def run_case(case: dict) -> dict:
    """Runs one case in this process and returns its measurements."""
    import gc

    import torch

    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))
    from splade_exp.models.pooling import DEFAULT_CHUNK_SIZE

    torch.set_num_threads(int(case["threads"]))
    device = torch.device(case["device"])
    cuda = device.type == "cuda"
    case = {**case, "chunk_size": int(case.get("chunk_size") or DEFAULT_CHUNK_SIZE)}
    setup = _train_setup if case["kind"] == "train" else _head_setup
    make_step, params = setup(case, torch, device)

    def sync():
        if cuda:
            torch.cuda.synchronize()

    def run(forward, clear) -> tuple[float, float]:
        t0 = time.perf_counter()
        loss = forward()
        sync()
        t1 = time.perf_counter()
        loss.backward()
        clear()  # the training case steps the optimizer first
        sync()
        t2 = time.perf_counter()
        return t1 - t0, t2 - t1

    # Tiny step first: library code and one-time initialisation are not the head's memory.
    run(*make_step(2, 8)[:2])
    forward, clear, tokens = make_step(case["B"], case["L"])
    gc.collect()
    sync()
    if cuda:
        base = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
        hwm_reset = True
    else:
        hwm_reset = _reset_hwm()
        base = _rss_bytes() if hwm_reset else _hwm_bytes()

    def peak() -> int:
        return (torch.cuda.max_memory_allocated() if cuda else _hwm_bytes()) - base

    fwd, bwd, tot, peaks = [], [], [], []
    for i in range(1 + int(case["repeats"])):  # the first is a warm-up, not timed
        f, b = run(forward, clear)
        peaks.append(round(peak() / MiB, 1))
        if i:
            fwd.append(f)
            bwd.append(b)
            tot.append(f + b)

    extra = peak()
    return {
        **{k: case[k] for k in ("kind", "V", "B", "L", "H", "impl", "threads")},
        "status": "ok",
        "chunk_size": case["chunk_size"] if case["impl"] == "chunked" else None,
        "extra_peak_bytes": int(extra),
        "extra_peak_mib": round(extra / MiB, 1),
        "step_peaks_mib": peaks,
        "time_s": statistics.median(tot),
        "time_min_s": min(tot),
        "forward_s": statistics.median(fwd),
        "backward_s": statistics.median(bwd),
        "times_s": [round(t, 4) for t in tot],
        "tokens": tokens,
        # Gradient bytes no implementation can avoid: every parameter's (train) or weight + bias.
        "param_grad_bytes": sum(p.numel() * p.element_size() for p in params),
        "output_bytes": case["B"] * case["V"] * 4 * (2 if case["kind"] == "train" else 1),
        # The head's input gradient and uint8 argmax positions (head cases; L <= 256).
        "h_grad_bytes": case["B"] * case["L"] * case["H"] * 4 if case["kind"] == "head" else 0,
        "argmax_bytes": case["B"] * case["V"] if case["kind"] == "head" else 0,
        "malloc_env": {k: v for k, v in os.environ.items() if k.startswith("MALLOC_")},
        "baseline_bytes": int(base),
        "hwm_reset": hwm_reset,
    }


# ----------------------------------------------------------------------------------------------
# Child: does a training step at batch B fit? (CUDA, --max-batch)
# ----------------------------------------------------------------------------------------------


def probe_batch(case: dict) -> dict:
    import torch

    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))
    from splade_exp.models.pooling import DEFAULT_CHUNK_SIZE

    case = {**case, "chunk_size": int(case.get("chunk_size") or DEFAULT_CHUNK_SIZE)}
    device = torch.device(case["device"])
    oom = getattr(torch, "OutOfMemoryError", None) or torch.cuda.OutOfMemoryError
    try:
        make_step, _ = _train_setup(case, torch, device)
        forward, clear, _ = make_step(case["B"], case["L"])
        forward().backward()
        clear()
        torch.cuda.synchronize()
        return {"B": case["B"], "fits": True, "peak_bytes": torch.cuda.max_memory_allocated()}
    except oom:
        return {"B": case["B"], "fits": False}


# ----------------------------------------------------------------------------------------------
# Parent: grids, subprocesses, tables, JSON
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


def _child_json(code: str) -> dict:
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return json.loads(res.stdout.strip().splitlines()[-1])


def _gpu_info() -> dict:
    """Name and total memory of GPU 0, asked of a short-lived child (keeps torch out of here)."""
    return _child_json(
        "import json, torch; p = torch.cuda.get_device_properties(0); "
        "print(json.dumps({'name': p.name, 'total_bytes': p.total_memory}))"
    )


def _versions() -> dict:
    return _child_json(
        "import json, torch, transformers; "
        "print(json.dumps({'torch': torch.__version__, 'transformers': transformers.__version__}))"
    )


def _git_commit() -> str | None:
    res = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True)
    return res.stdout.strip() or None


def _loadavg() -> list[float] | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


#: ``--allocator live``: a fixed glibc mmap threshold (no dynamic raise), see the module docstring.
LIVE_MALLOC_ENV = {"MALLOC_MMAP_THRESHOLD_": "65536"}


def _spawn(payload: dict, flag: str = "--case") -> dict:
    cmd = [sys.executable, str(Path(__file__).resolve()), flag, json.dumps(payload)]
    env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
    if payload.get("allocator") == "live":
        env.update(LIVE_MALLOC_ENV)
    res = subprocess.run(cmd, capture_output=True, text=True, env=env)
    for line in reversed(res.stdout.strip().splitlines()):
        if line.startswith("{"):
            return json.loads(line)
    tail = (res.stderr or res.stdout).strip().splitlines()[-5:]
    return {"status": "error", "reason": f"exit code {res.returncode}: " + " | ".join(tail)}


def _key(r: dict) -> tuple:
    return (r["kind"], r["V"], r["B"], r["L"], r["H"], r["threads"], r.get("chunk_size") if r["impl"] == "chunked" else None)


def _grid(args) -> list[dict]:
    cases = []
    threads = args.threads
    chunk = args.chunk_size
    head = lambda V, L, H, impl, t, c=chunk: {"kind": "head", "V": V, "B": BATCH, "L": L, "H": H, "impl": impl, "threads": t, "chunk_size": c}  # noqa: E731
    train = lambda V, impl, t: {"kind": "train", "V": V, "B": BATCH, "L": 64, "H": TRUNK["hidden_size"], "impl": impl, "threads": t, "chunk_size": chunk}  # noqa: E731
    for t in threads:
        if args.chunk_sweep:
            cases.append(head(TARGET["V"], TARGET["L"], TARGET["H"], "naive", t))
            cases += [head(TARGET["V"], TARGET["L"], TARGET["H"], "chunked", t, c) for c in CHUNK_SWEEP]
        elif args.quick:
            cases += [head(TARGET["V"], TARGET["L"], TARGET["H"], impl, t) for impl in IMPLS]
        else:
            if not args.train_step_only:
                cases += [head(V, L, H, impl, t) for V in VOCABS for L in LENGTHS for H in HIDDENS for impl in IMPLS]
            cases += [train(V, impl, t) for V in VOCABS for impl in IMPLS]
    return cases


def _naive_twin(results: list[dict], r: dict) -> dict | None:
    for x in results:
        if x["status"] == "ok" and x["impl"] == "naive" and all(x[k] == r[k] for k in ("kind", "V", "B", "L", "H", "threads")):
            return x
    return None


def _floor_bytes(r: dict) -> int:
    """Parameter gradients + output (the saved max values) + gradient of h + argmax positions."""
    return r["param_grad_bytes"] + r["output_bytes"] + r.get("h_grad_bytes", 0) + r.get("argmax_bytes", 0)


def _ratios(naive: dict, chunked: dict) -> dict:
    ratio = chunked["extra_peak_bytes"] / max(naive["extra_peak_bytes"], 1)
    speedup = naive["time_s"] / chunked["time_s"]
    grads = naive["param_grad_bytes"]
    return {
        "memory_ratio": round(ratio, 4),
        "speedup": round(speedup, 3),
        "speedup_min_times": round(naive["time_min_s"] / chunked["time_min_s"], 3),
        "floor_ratio": round(_floor_bytes(naive) / max(naive["extra_peak_bytes"], 1), 4),
        "floor_mib": round(_floor_bytes(naive) / MiB, 1),
        "memory_ratio_without_param_grads": round(
            max(chunked["extra_peak_bytes"] - grads, 0) / max(naive["extra_peak_bytes"] - grads, 1), 4
        ),
        "memory_ratio_first_step": round(chunked["step_peaks_mib"][0] / max(naive["step_peaks_mib"][0], 1e-9), 4),
        "naive_extra_peak_mib": naive["extra_peak_mib"],
        "chunked_extra_peak_mib": chunked["extra_peak_mib"],
        "param_grad_mib": round(grads / MiB, 1),
        "naive_time_s": round(naive["time_s"], 4),
        "chunked_time_s": round(chunked["time_s"], 4),
    }


def _targets(results: list[dict]) -> list[dict]:
    """Target ratios at |V| = 100K, B = 32, L = 64, H = 384, per thread count (and chunk size)."""
    out = []
    for r in results:
        if r["status"] != "ok" or r["impl"] != "chunked" or r["kind"] != "head":
            continue
        if any(r[k] != v for k, v in TARGET.items()):
            continue
        naive = _naive_twin(results, r)
        if naive is None:
            continue
        x = {"case": dict(TARGET), "threads": r["threads"], "chunk_size": r["chunk_size"], **_ratios(naive, r)}
        x["memory_met"] = x["memory_ratio"] <= TARGET_MEMORY_RATIO
        x["speed_met"] = x["speedup"] >= TARGET_SPEEDUP
        out.append(x)
    return out


def _train_summary(results: list[dict]) -> list[dict]:
    out = []
    for r in results:
        if r["status"] == "ok" and r["kind"] == "train" and r["impl"] == "chunked":
            naive = _naive_twin(results, r)
            if naive is not None:
                out.append({"V": r["V"], "B": r["B"], "L": r["L"], "query_length": QUERY_LENGTH,
                            "threads": r["threads"], **_ratios(naive, r)})
    return out


def _table(results: list[dict]) -> str:
    head = ("| case | |V| | B | L | H | threads | impl | chunk | extra peak MiB | forward s | backward s "
            "| total s | mem ratio | speedup |")
    lines = [head, "|" + "---|" * 14]
    for r in results:
        if r["status"] != "ok":
            lines.append(f"| {r['kind']} | {r['V']} | {r['B']} | {r['L']} | {r['H']} | {r['threads']} | {r['impl']} | "
                         f"| {r['status']}: {r.get('reason', '')} | | | | | |")
            continue
        ratio = speed = ""
        naive = _naive_twin(results, r) if r["impl"] == "chunked" else None
        if naive is not None:
            ratio = f"{r['extra_peak_bytes'] / max(naive['extra_peak_bytes'], 1):.3f}"
            speed = f"{naive['time_s'] / r['time_s']:.2f}x"
        lines.append(
            f"| {r['kind']} | {r['V']} | {r['B']} | {r['L']} | {r['H']} | {r['threads']} | {r['impl']} | "
            f"{r['chunk_size'] or ''} | {r['extra_peak_mib']:.1f} | {r['forward_s']:.3f} | {r['backward_s']:.3f} | "
            f"{r['time_s']:.3f} | {ratio} | {speed} |"
        )
    return "\n".join(lines)


def _max_batch(args) -> list[dict]:
    """Largest training batch per (|V|, impl): doubling from 8, then bisection."""
    out = []
    for V in VOCABS:
        for impl in IMPLS:
            case = {"kind": "train", "V": V, "L": 64, "H": TRUNK["hidden_size"], "impl": impl,
                    "device": args.device, "chunk_size": args.chunk_size}
            probes = []

            def fits(B: int) -> bool:
                r = _spawn({**case, "B": B}, "--probe")
                probes.append(r)
                print(f"  V={V} {impl} B={B}: {r}", file=sys.stderr, flush=True)
                return bool(r.get("fits"))

            lo, hi = 0, 8
            while hi <= args.max_batch_cap and fits(hi):
                lo, hi = hi, hi * 2
            if hi > args.max_batch_cap:
                out.append({"V": V, "impl": impl, "max_batch": lo, "capped_at": args.max_batch_cap, "probes": probes})
                continue
            while hi - lo > max(1, lo // 32):  # to within ~3%
                mid = (lo + hi) // 2
                lo, hi = (mid, hi) if fits(mid) else (lo, mid)
            out.append({"V": V, "impl": impl, "max_batch": lo, "first_oom": hi, "probes": probes})
    return out


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


def _default_out(args) -> Path:
    name = "head_memory"
    name += "_chunks" if args.chunk_sweep else "_quick" if args.quick else "_max_batch" if args.max_batch else ""
    name += "_cuda" if args.device == "cuda" and not args.max_batch else ""
    name += "_live" if args.allocator == "live" and args.device == "cpu" else ""
    return RESULTS / f"{name}.json"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--case", help=argparse.SUPPRESS)
    p.add_argument("--probe", help=argparse.SUPPRESS)
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--quick", action="store_true", help="only the target case (|V|=100000, L=64, H=384)")
    mode.add_argument("--chunk-sweep", action="store_true", help=f"chunked at the target case, chunk sizes {CHUNK_SWEEP}")
    mode.add_argument("--train-step-only", action="store_true", help="only the full SPLADE training step")
    mode.add_argument("--max-batch", action="store_true", help="largest training batch that fits (CUDA)")
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    p.add_argument("--threads", default="2", help="torch.set_num_threads in each case; a list runs each: 1,2")
    p.add_argument("--repeats", type=int, default=3, help="timed steps per case (after one warm-up)")
    p.add_argument("--chunk-size", type=int, default=None, help="chunked impl's chunk size (default: the library's)")
    p.add_argument("--full-length", action="store_true", help="no padding (default: lengths uniform in [L/2, L])")
    p.add_argument("--loss", choices=("sum", "weighted"), default="sum", help="head cases: w.sum() or sum(w * U[0,1))")
    p.add_argument("--allocator", choices=("glibc", "live"), default="glibc",
                   help="CPU: glibc as is, or a fixed mmap threshold so that RSS follows live tensors")
    p.add_argument("--max-batch-cap", type=int, default=65536, help="--max-batch stops doubling here")
    p.add_argument("--out", type=Path, default=None, help="JSON output (default: benchmarks/results/head_memory*.json)")
    args = p.parse_args(argv)

    if args.case:
        print(json.dumps(run_case(json.loads(args.case))), flush=True)
        return 0
    if args.probe:
        print(json.dumps(probe_batch(json.loads(args.probe))), flush=True)
        return 0
    if args.max_batch and args.device != "cuda":
        p.error("--max-batch searches GPU memory: use it with --device cuda")
    args.threads = [int(t) for t in str(args.threads).split(",")]
    out_path = args.out or _default_out(args)

    if args.device == "cuda":
        gpu = _gpu_info()
        budget, device_name = gpu["total_bytes"], gpu["name"]
    else:
        budget = _meminfo_bytes("MemAvailable") or _meminfo_bytes("MemTotal") or 0
        device_name = _cpu_model()
    meta = {
        "command": "python benchmarks/head_memory.py " + " ".join(sys.argv[1:] if argv is None else argv),
        "device": args.device,
        "device_name": device_name,
        "cpu_count": os.cpu_count(),
        "loadavg_start": _loadavg(),
        "repeats": args.repeats,
        "memory_budget_bytes": budget,
        "padding": "none" if args.full_length else "lengths uniform in [L/2, L]",
        "head_loss": "w.sum()" if args.loss == "sum" else "sum(w * U[0,1) weights)",
        "allocator": args.allocator if args.device == "cpu" else "cuda caching allocator (max allocated)",
        "train_step": f"BERT trunk {TRUNK}, untied |V|-row head, B queries (L={QUERY_LENGTH}) + B documents, "
        "in-batch CE + 1e-3 FLOPS(q) + 1e-3 FLOPS(d), SGD step",
        **_versions(),
        "python": platform.python_version(),
        "git_commit": _git_commit(),
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    if args.device == "cpu":
        meta["gpu"] = ("not measured here (no GPU on this machine); run with --device cuda for GPU peaks and "
                       "--device cuda --max-batch for the largest batch that fits at |V| = 100000 vs 30522")

    if args.max_batch:
        payload = {"meta": meta, "max_batch": _max_batch(args)}
        payload["meta"]["loadavg_end"] = _loadavg()
        _write_json(out_path, payload)
        for r in payload["max_batch"]:
            print(f"V={r['V']} {r['impl']}: max batch {r['max_batch']}")
        print(f"wrote {out_path}")
        return 0

    results = []
    for case in _grid(args):
        case.update(device=args.device, repeats=args.repeats, full_length=args.full_length, loss=args.loss,
                    allocator=args.allocator)
        tokens = case["B"] * case["L"] * (2 if case["kind"] == "train" else 1)
        logits_bytes = tokens * case["V"] * 4
        if case["impl"] == "naive" and budget and logits_bytes * 3 > 0.6 * budget:
            r = {**case, "status": "skipped",
                 "reason": f"naive needs ~3 x {logits_bytes / 2**30:.1f} GiB of logits > 60% of {budget / 2**30:.1f} GiB"}
        else:
            t = time.perf_counter()
            r = {**{k: case[k] for k in ("kind", "V", "B", "L", "H", "impl", "threads")}, **_spawn(case)}
            r["wall_s"] = round(time.perf_counter() - t, 2)
        results.append(r)
        msg = r.get("reason") or f"extra peak {r['extra_peak_mib']} MiB, {r['time_s']:.3f} s"
        print(f"[{len(results)}] {r['kind']} V={r['V']} L={r['L']} H={r['H']} t={r['threads']} {r['impl']}"
              f"{'/' + str(r.get('chunk_size')) if r['impl'] == 'chunked' else ''}: {r['status']} {msg}",
              file=sys.stderr, flush=True)

    meta["loadavg_end"] = _loadavg()
    payload = {"meta": meta, "cases": results, "targets": _targets(results), "train_step": _train_summary(results)}
    _write_json(out_path, payload)
    print(_table(results))
    print()
    for x in payload["targets"]:
        print(f"target case, threads={x['threads']}, chunk={x['chunk_size']}: memory ratio {x['memory_ratio']} "
              f"(<= {TARGET_MEMORY_RATIO}: {x['memory_met']}; floor {x['floor_ratio']}, without parameter "
              f"gradients {x['memory_ratio_without_param_grads']}), speedup {x['speedup']}x "
              f"(>= {TARGET_SPEEDUP}: {x['speed_met']})")
    for x in payload["train_step"]:
        print(f"train step |V|={x['V']}, threads={x['threads']}: memory ratio {x['memory_ratio']}, "
              f"speedup {x['speedup']}x")
    print(f"loadavg start {meta['loadavg_start']}, end {meta['loadavg_end']}")
    print(f"wrote {out_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
