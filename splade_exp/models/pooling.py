"""SPLADE pooling of the MLM head: ``w_j = max_i log1p(relu(h_i . E_j + b_j))`` over non-padding i.

``h`` are the head's *transformed* hidden states (B, L, H): everything of the MLM head except the
final vocabulary projection. ``weight`` (|V|, H) and ``bias`` (|V|) are that projection.

Implementations:
- ``naive``: materialises the (B, L, |V|) logits (reference; also the only one for sum pooling).
- ``chunked``: :func:`max_pool_chunked`, which never holds more than one vocabulary chunk of
  logits and keeps only O(B·|V|) state for the backward pass.

How ``chunked`` works
---------------------
``log1p∘relu`` is monotone, so ``w = log1p(relu(max_l z_l))`` with ``z_l = h_l·E_j + b_j``, and the
bias does not depend on ``l``: ``max_l z_l = max_l (h_l·E_j) + b_j``. The forward pass therefore

1. gathers the real (non-padding) token states once: ``h_r`` (N, H), N = number of real tokens;
2. for each vocabulary chunk ``E_c`` (c rows) computes ``E_c h_r^T`` (c, N) — no FLOPs are spent on
   padding — copies it into the real columns of a reused (c, B, L) buffer whose padding columns
   hold ``-inf`` (skipped when the batch has no padding), and reduces that with ``max`` over L,
   keeping the value and the position;
3. adds the bias and applies ``log1p(relu(.))`` on the (B, |V|) result only.

An all-padding row pools ``-inf`` and gives ``log1p(relu(-inf)) = 0``. Ties resolve as
``torch.max`` resolves them (the same rule as the naive path applies to the same numbers).

Saved for backward: ``h``, ``weight``, ``bias``, the argmax position (B, |V|) in the smallest
integer dtype that holds it (uint8 for L <= 256, else int16/int32) and the output itself. The max
value ``z*`` is not stored separately: the output *is* ``log1p(z*)`` where ``z* > 0`` and
``d w / d z* = 1 / (1 + z*) = exp(-w)``, so the backward uses ``g·exp(-w)`` where ``w > 0`` and 0
elsewhere (the relu subgradient at 0 is 0). Under ``no_grad``/``inference_mode`` nothing is saved
and no argmax is kept.

The backward pass is sparse: with ``gz`` (B, |V|) the gradient at the pooled logits and ``S`` the
(B·L, |V|) matrix holding ``gz[b, j]`` at row ``b·L + argmax[b, j]``,
``grad_h = S E``, ``grad_E = S^T h`` and ``grad_b = Σ_b gz``. Per vocabulary chunk ``S`` has at most
B·c non-zeros (entries with ``gz = 0`` are dropped) and both products are sparse-dense matmuls, so
the cost is O(B·|V|·H) instead of the O(B·L·|V|·H) of the two dense matmuls of the naive backward.

Precision and autocast: outputs and gradients have the inputs' dtype. Under ``torch.autocast`` the
logits matmul runs in the autocast dtype (each weight chunk is cast on the fly, so no low-precision
copy of the whole matrix is made); the max/argmax is taken on those low-precision logits, and the
bias, ``log1p`` and the backward run in the inputs' dtype (float32 when the inputs themselves are
float16/bfloat16), i.e. the casts are treated as identity in the backward, as autocast does.
"""
from __future__ import annotations

import contextlib
import warnings

import torch

#: Vocabulary rows per chunk. Temporaries are about ``B·L·chunk_size`` logits (plus a sparse
#: (B·chunk_size)-entry matrix in the backward); 2048 was the fastest on CPU for
#: B=32, L=64, H=384, |V|=100K (see ``benchmarks/head_memory.py``).
DEFAULT_CHUNK_SIZE = 2048


def max_pool_naive(
    h: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, mask: torch.Tensor
) -> torch.Tensor:
    """Reference max pooling over materialised logits. ``mask`` (B, L) is 1 for real tokens."""
    logits = torch.nn.functional.linear(h, weight, bias)  # (B, L, V)
    logits = logits.masked_fill(~mask.bool().unsqueeze(-1), float("-inf"))
    pooled = logits.max(dim=1).values
    # log1p(relu(-inf)) = 0, so an all-padding row gives zeros rather than NaN.
    return torch.log1p(torch.relu(pooled))


def sum_pool_naive(
    h: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, mask: torch.Tensor
) -> torch.Tensor:
    """Sum pooling (SPLADE v1): ``w_j = sum_i log1p(relu(z_ij))`` over non-padding positions."""
    logits = torch.nn.functional.linear(h, weight, bias)
    act = torch.log1p(torch.relu(logits)) * mask.unsqueeze(-1).to(logits.dtype)
    return act.sum(dim=1)


# ----------------------------------------------------------------------------------------------
# Chunked max pooling
# ----------------------------------------------------------------------------------------------


def _autocast_dtype(device_type: str) -> torch.dtype | None:
    """The autocast dtype active for ``device_type``, or None when autocast is off there."""
    try:
        if torch.is_autocast_enabled(device_type):
            return torch.get_autocast_dtype(device_type)
        return None
    except (TypeError, RuntimeError, AttributeError):  # torch < 2.4 API
        if device_type == "cpu":
            return torch.get_autocast_cpu_dtype() if torch.is_autocast_cpu_enabled() else None
        if device_type == "cuda":
            return torch.get_autocast_gpu_dtype() if torch.is_autocast_enabled() else None
        return None


def _accumulation_dtype(dtype: torch.dtype) -> torch.dtype:
    return torch.float32 if dtype in (torch.float16, torch.bfloat16) else dtype


def _index_dtype(length: int) -> torch.dtype:
    """Smallest dtype holding positions 0..length-1 (the argmax is O(B·|V|) saved state)."""
    if length <= 256:
        return torch.uint8
    return torch.int16 if length <= torch.iinfo(torch.int16).max + 1 else torch.int32


def _chunked_max_forward(
    h: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    mask: torch.Tensor,
    chunk_size: int,
    compute_dtype: torch.dtype,
    out_dtype: torch.dtype,
    keep_argmax: bool,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Pooled weights (B, V) in ``out_dtype`` and, if asked, the argmax positions (B, V)."""
    # Dtypes are chosen by the caller; autocast must not re-cast the chunk matmuls.
    with _autocast_off(h.device.type):
        return _chunked_max_forward_impl(
            h, weight, bias, mask, chunk_size, compute_dtype, out_dtype, keep_argmax
        )


def _autocast_off(device_type: str):
    if _autocast_dtype(device_type) is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device_type, enabled=False)


def _chunked_max_forward_impl(h, weight, bias, mask, chunk_size, compute_dtype, out_dtype, keep_argmax):
    B, L, H = h.shape
    V = weight.shape[0]
    device = h.device
    real = mask.reshape(B * L).bool()
    n_real = int(real.sum())
    padded = n_real < B * L

    hf = h.reshape(B * L, H).to(compute_dtype)
    if padded:
        real_rows = real.nonzero().squeeze(1)
        hr_t = hf.index_select(0, real_rows).t()  # (H, N): no FLOPs on padding
    else:
        real_rows = None
        hr_t = hf.t()

    out = torch.empty((B, V), dtype=out_dtype, device=device)
    argmax = torch.empty((B, V), dtype=_index_dtype(L), device=device) if keep_argmax else None
    c = max(1, min(int(chunk_size), V))
    zbuf = torch.empty((c, n_real), dtype=compute_dtype, device=device)
    # Padding columns are -inf once and for all: each chunk only overwrites the real columns.
    full = torch.full((c, B * L), float("-inf"), dtype=compute_dtype, device=device) if padded else None
    vbuf = torch.empty((c, B), dtype=compute_dtype, device=device)
    ibuf = torch.empty((c, B), dtype=torch.long, device=device) if keep_argmax else None

    for j0 in range(0, V, c):
        n = min(c, V - j0)
        z = torch.mm(weight[j0 : j0 + n].to(compute_dtype), hr_t, out=zbuf[:n])  # (n, N)
        if padded:
            zz = full[:n].index_copy_(1, real_rows, z)
        else:
            zz = z
        zz = zz.view(n, B, L)
        if keep_argmax:
            torch.max(zz, dim=2, out=(vbuf[:n], ibuf[:n]))
            argmax[:, j0 : j0 + n].copy_(ibuf[:n].t())
        else:
            torch.amax(zz, dim=2, out=vbuf[:n])
        out[:, j0 : j0 + n].copy_(vbuf[:n].t())

    if bias is not None:
        out.add_(bias.to(out_dtype))  # -inf + b = -inf for all-padding rows
    out.clamp_min_(0).log1p_()  # log1p(relu(.)); relu(-inf) = 0
    return out, argmax


class _ChunkedMaxPool(torch.autograd.Function):
    @staticmethod
    def forward(ctx, h, weight, bias, mask, chunk_size, compute_dtype, out_dtype):
        out, argmax = _chunked_max_forward(
            h, weight, bias, mask, chunk_size, compute_dtype, out_dtype, keep_argmax=True
        )
        ctx.chunk_size = chunk_size
        ctx.has_bias = bias is not None
        if bias is not None:
            ctx.save_for_backward(h, weight, argmax, out, bias)
        else:
            ctx.save_for_backward(h, weight, argmax, out)
        return out

    @staticmethod
    def backward(ctx, grad_out):
        h, weight, argmax, out = ctx.saved_tensors[:4]
        bias = ctx.saved_tensors[4] if ctx.has_bias else None
        need_h, need_w, need_b = ctx.needs_input_grad[:3]
        need_b = need_b and bias is not None
        grad_h = grad_w = grad_b = None
        if not (need_h or need_w or need_b):
            return None, None, None, None, None, None, None

        with _autocast_off(h.device.type), warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*[Ss]parse.*")
            B, L, H = h.shape
            V = weight.shape[0]
            acc = _accumulation_dtype(out.dtype)
            hf = h.reshape(B * L, H).to(acc) if need_w else None
            gh = torch.zeros((B * L, H), dtype=acc, device=h.device) if need_h else None
            if need_w:
                grad_w = torch.empty_like(weight)
            if need_b:
                grad_b = torch.empty_like(bias)
            row_offset = torch.arange(B, device=h.device) * L
            c = max(1, min(int(ctx.chunk_size), V))
            for j0 in range(0, V, c):
                n = min(c, V - j0)
                w_c = out[:, j0 : j0 + n].to(acc)
                g_c = grad_out[:, j0 : j0 + n].to(acc)
                # d log1p(relu(z)) / dz = 1 / (1 + z) = exp(-w) for z > 0, else 0.
                gz = torch.where(w_c > 0, g_c * torch.exp(-w_c), torch.zeros((), dtype=acc, device=h.device))
                if need_b:
                    grad_b[j0 : j0 + n].copy_(gz.sum(0))
                if not (need_h or need_w):
                    continue
                gz_t = gz.t()  # (n, B)
                jj, bb = gz_t.nonzero(as_tuple=True)  # sorted by (j, b)
                if jj.numel() == 0:
                    if need_w:
                        grad_w[j0 : j0 + n].zero_()
                    continue
                vals = gz_t[jj, bb]
                rows = row_offset[bb] + argmax[bb, jj + j0].long()  # (b, argmax) -> b*L + l
                if need_w:
                    # grad_E[j] = sum_b gz[b, j] h[b, argmax[b, j]]: S^T (n, B*L) @ h (B*L, H).
                    # Indices are sorted and unique by construction, hence coalesced.
                    s_t = torch.sparse_coo_tensor(
                        torch.stack([jj, rows]), vals, (n, B * L), is_coalesced=True
                    )
                    grad_w[j0 : j0 + n].copy_(torch.sparse.mm(s_t, hf))
                if need_h:
                    # grad_h[b, l] = sum_{j: argmax[b, j] = l} gz[b, j] E[j]: S (B*L, n) @ E_c.
                    s = torch.sparse_coo_tensor(torch.stack([rows, jj]), vals, (B * L, n))
                    gh.add_(torch.sparse.mm(s, weight[j0 : j0 + n].to(acc)))
            if need_h:
                grad_h = gh.view(B, L, H).to(h.dtype)
        return grad_h, grad_w, grad_b, None, None, None, None


def max_pool_chunked(
    h: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    mask: torch.Tensor | None,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
) -> torch.Tensor:
    """Max pooling equal to :func:`max_pool_naive` that never materialises (B, L, |V|) logits.

    ``h`` (B, L, H), ``weight`` (|V|, H), ``bias`` (|V|) or None, ``mask`` (B, L), 1 for real
    tokens (None: no padding). ``chunk_size`` is the number of vocabulary rows processed at once.
    Returns (B, |V|). Exact gradients for ``h``, ``weight`` and ``bias``; see the module docstring.
    """
    if h.dim() != 3:
        raise ValueError(f"h must be (B, L, H), got shape {tuple(h.shape)}")
    if weight.dim() != 2 or weight.shape[1] != h.shape[2]:
        raise ValueError(f"weight must be (|V|, {h.shape[2]}), got shape {tuple(weight.shape)}")
    if bias is not None and bias.shape != (weight.shape[0],):
        raise ValueError(f"bias must be ({weight.shape[0]},), got shape {tuple(bias.shape)}")
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
    B, L, _ = h.shape
    if mask is None:
        mask = torch.ones((B, L), dtype=torch.bool, device=h.device)
    elif mask.shape != (B, L):
        raise ValueError(f"mask must be ({B}, {L}), got shape {tuple(mask.shape)}")

    out_dtype = torch.promote_types(h.dtype, weight.dtype)
    if bias is not None:
        out_dtype = torch.promote_types(out_dtype, bias.dtype)
    compute_dtype = _autocast_dtype(h.device.type) or out_dtype

    needs_grad = torch.is_grad_enabled() and (
        h.requires_grad or weight.requires_grad or (bias is not None and bias.requires_grad)
    )
    if not needs_grad:
        # Plain chunked computation: no argmax kept, nothing saved.
        out, _ = _chunked_max_forward(
            h, weight, bias, mask, chunk_size, compute_dtype, out_dtype, keep_argmax=False
        )
        return out
    return _ChunkedMaxPool.apply(h, weight, bias, mask, chunk_size, compute_dtype, out_dtype)


def sparse_pool(
    h: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    mask: torch.Tensor,
    pooling: str = "max",
    impl: str = "naive",
    chunk_size: int = DEFAULT_CHUNK_SIZE,
) -> torch.Tensor:
    """Dispatch on pooling (``max`` | ``sum``) and implementation (``naive`` | ``chunked``).

    Sum pooling always takes the naive path.
    """
    if impl not in ("naive", "chunked"):
        raise ValueError(f"head.pooling_impl must be 'naive' or 'chunked', got {impl!r}")
    if pooling == "sum":
        return sum_pool_naive(h, weight, bias, mask)
    if pooling != "max":
        raise ValueError(f"head.pooling must be 'max' or 'sum', got {pooling!r}")
    if impl == "chunked":
        return max_pool_chunked(h, weight, bias, mask, chunk_size=chunk_size)
    return max_pool_naive(h, weight, bias, mask)
