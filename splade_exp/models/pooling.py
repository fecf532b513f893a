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

1. for each vocabulary chunk ``E_c`` (c rows) computes ``E_c h^T`` (c, B·L) into one reused
   buffer, reading ``h`` in place (no copy), and overwrites the padding columns with ``-inf``
   (whatever the padding states hold, NaN included);
2. reduces that chunk over L with ``max`` (value and position; ``amax`` alone when no gradient is
   needed, several times cheaper on CPU);
3. adds the bias and applies ``log1p(relu(.))`` on the (B, |V|) result only. An all-padding
   example gets 0 (it pools ``-inf``, and ``log1p(relu(-inf)) = 0``).

Ties between positions resolve as ``torch.max`` resolves them; the position kept is never a
padding one (except in an all-padding example, whose weights and gradients are 0).

Saved for backward: ``h``, ``weight``, the argmax position (B, |V|) in the smallest integer dtype
that holds it (uint8 for L <= 256, else int16/int32) and the output itself. The max value ``z*``
is not stored separately: the output *is* ``log1p(z*)`` where ``z* > 0`` and
``d w / d z* = 1 / (1 + z*) = exp(-w)``, so the backward uses ``g·exp(-w)`` where ``w > 0`` and 0
elsewhere (the relu subgradient at 0 is 0).
Under ``no_grad``/``inference_mode`` nothing is saved and no argmax is kept.

The backward pass is sparse: with ``gz`` (B, |V|) the gradient at the pooled logits and ``S`` the
(B·L, |V|) matrix holding ``gz[b, j]`` at the row of the token where ``z[b, :, j]`` peaks,
``grad_h = S E``, ``grad_E = S^T h`` and ``grad_b = Σ_b gz``. ``S`` has at most B·|V| non-zeros
(entries with ``gz = 0`` are dropped), and per vocabulary chunk both products are weighted
``embedding_bag`` sums, so the cost is O(nnz(S)·H) instead of the O(B·L·|V|·H) of the two dense
matmuls of the naive backward.

Precision and autocast: outputs and gradients have the inputs' dtype. Under ``torch.autocast`` the
logits matmul runs in the autocast dtype (each weight chunk is cast on the fly, so no low-precision
copy of the whole matrix is made) and the max/argmax is taken on those low-precision logits; the
bias, ``log1p`` and the backward run in float32 (or float64 for float64 inputs), i.e. the casts
are treated as identity in the backward, as autocast does.
"""
from __future__ import annotations

import contextlib
from typing import Callable

import torch
import torch.nn.functional as F
from torch.autograd.function import once_differentiable

#: Vocabulary rows per chunk (``head.chunk_size``). The forward's temporaries are one chunk of
#: logits, ``B·L·chunk_size`` values; the backward's O(B·chunk_size) entries plus a (B·L, H) sum.
#: 1024 was the leanest and within noise of the fastest on CPU at B=32, L=64, H=384, |V|=100K
#: (``benchmarks/head_memory.py --chunk-sweep``; results/head_memory_chunks.json).
DEFAULT_CHUNK_SIZE = 1024
POOLINGS = ("max", "sum")
POOLING_IMPLS = ("chunked", "naive")


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
    activate: bool = True,
    on_chunk: Callable[[int, torch.Tensor], None] | None = None,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Pooled weights (B, V) in ``out_dtype`` and the argmax positions (B, V) if asked (else None).

    ``activate=False`` returns the raw pooled logits ``max_l z`` instead (``-inf`` for an
    all-padding example). ``on_chunk(j0, z)`` sees each chunk's logits ``z`` (n, B·L), bias not
    added, padding columns holding ``-inf``.
    """
    # Dtypes are chosen by the caller; autocast must not re-cast the chunk matmuls.
    with _autocast_off(h.device.type):
        return _chunked_max_forward_impl(
            h, weight, bias, mask, chunk_size, compute_dtype, out_dtype, keep_argmax, activate, on_chunk
        )


def _autocast_off(device_type: str):
    if _autocast_dtype(device_type) is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device_type, enabled=False)


def _chunks(V: int, chunk_size: int):
    c = max(1, min(int(chunk_size), V))
    return c, [(j0, min(c, V - j0)) for j0 in range(0, V, c)]


def _chunked_max_forward_impl(
    h, weight, bias, mask, chunk_size, compute_dtype, out_dtype, keep_argmax, activate, on_chunk
):
    B, L, H = h.shape
    V = weight.shape[0]
    device = h.device
    # A view of h where it already has the compute dtype: the logits matmul reads it transposed.
    hf = h.reshape(B * L, H).to(compute_dtype)
    # Padding columns of each logits chunk are overwritten with -inf (NaN in padding states too).
    pad_cols = (~mask.bool()).reshape(-1).nonzero().squeeze(1)
    if pad_cols.numel() == 0:
        pad_cols = None

    out = torch.empty((B, V), dtype=out_dtype, device=device)
    argmax = torch.empty((B, V), dtype=_index_dtype(L), device=device) if keep_argmax else None
    c, chunks = _chunks(V, chunk_size)
    zbuf = torch.empty((c, B * L), dtype=compute_dtype, device=device)
    vbuf = torch.empty((c, B), dtype=compute_dtype, device=device)
    ibuf = torch.empty((c, B), dtype=torch.long, device=device) if keep_argmax else None
    for j0, n in chunks:
        z = torch.mm(weight[j0 : j0 + n].to(compute_dtype), hf.t(), out=zbuf[:n])
        if pad_cols is not None:
            z.index_fill_(1, pad_cols, float("-inf"))
        if on_chunk is not None:
            on_chunk(j0, z)
        z = z.view(n, B, L)
        if keep_argmax:
            torch.max(z, dim=2, out=(vbuf[:n], ibuf[:n]))
            argmax[:, j0 : j0 + n].copy_(ibuf[:n].t())
        else:  # values only: several times cheaper than a max that tracks positions
            torch.amax(z, dim=2, out=vbuf[:n])
        out[:, j0 : j0 + n].copy_(vbuf[:n].t())

    if bias is not None:
        out.add_(bias.to(out_dtype))
    if not activate:
        return out, argmax  # -inf for an all-padding example
    out.clamp_min_(0).log1p_()  # log1p(relu(.)); an all-padding example pools -inf: weight 0
    return out, argmax


class _ChunkedMaxPool(torch.autograd.Function):
    @staticmethod
    def forward(ctx, h, weight, bias, mask, chunk_size, compute_dtype, out_dtype):
        out, argmax = _chunked_max_forward(
            h, weight, bias, mask, chunk_size, compute_dtype, out_dtype, keep_argmax=True
        )
        ctx.chunk_size = chunk_size
        ctx.bias_dtype = None if bias is None else bias.dtype
        ctx.save_for_backward(h, weight, argmax, out)
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_out):
        h, weight, argmax, out = ctx.saved_tensors
        need_h, need_w, need_b = ctx.needs_input_grad[:3]
        need_b = need_b and ctx.bias_dtype is not None
        if not (need_h or need_w or need_b):
            return None, None, None, None, None, None, None
        with _autocast_off(h.device.type):
            grad_h, grad_w, grad_b = _chunked_max_backward(
                h, weight, argmax, out, grad_out, ctx.chunk_size, need_h, need_w, need_b
            )
        if grad_b is not None:
            grad_b = grad_b.to(ctx.bias_dtype)
        return grad_h, grad_w, grad_b, None, None, None, None


def _chunked_max_backward(h, weight, argmax, out, grad_out, chunk_size, need_h, need_w, need_b):
    """Exact gradients from the saved argmax; per vocabulary chunk, only O(B·chunk) temporaries.

    With ``gz`` (B, |V|) the gradient at the pooled logits and ``S`` the (B·L, |V|) matrix holding
    ``gz[b, j]`` at the row of the token where ``z[b, :, j]`` peaks: ``grad_h = S E``,
    ``grad_E = S^T h`` (both ``embedding_bag`` sums over the non-zero entries of ``S``) and
    ``grad_b = sum_b gz``.
    """
    B, L, H = h.shape
    V = weight.shape[0]
    device = h.device
    acc = _accumulation_dtype(out.dtype)
    hf = h.reshape(B * L, H).to(acc) if need_w else None
    gh = torch.zeros((B * L, H), dtype=acc, device=device) if need_h else None
    grad_w = torch.empty_like(weight) if need_w else None
    grad_b = torch.empty((V,), dtype=acc, device=device) if need_b else None
    c, chunks = _chunks(V, chunk_size)
    vocab_pos = torch.arange(c, device=device)
    row_pos = torch.arange(B * L, dtype=torch.int32, device=device)
    for j0, n in chunks:
        w_c = out[:, j0 : j0 + n].to(acc)
        # d log1p(relu(z)) / dz = 1 / (1 + z) = exp(-w) for z > 0, else 0.
        gz = torch.where(w_c > 0, grad_out[:, j0 : j0 + n].to(acc) * torch.exp(-w_c), 0.0)
        if need_b:
            torch.sum(gz, dim=0, out=grad_b[j0 : j0 + n])
        if not (need_h or need_w):
            continue
        # The non-zero entries of S in this chunk, sorted by vocabulary row j.
        jj, bb = gz.t().nonzero(as_tuple=True)
        vals = gz[bb, jj]
        rows = bb * L + argmax[:, j0 : j0 + n][bb, jj].long()
        if need_w:  # grad_E[j] = sum over b of gz[b, j] h[row(b, j)]: one bag per vocabulary row
            offsets = torch.searchsorted(jj, vocab_pos[:n])
            grad_w[j0 : j0 + n].copy_(F.embedding_bag(rows, hf, offsets, mode="sum", per_sample_weights=vals))
        if need_h:  # grad_h[r] = sum of gz[b, j] E_j over the entries at token row r: one bag per row
            # int32 keys: the CPU sorts them by radix (int64 keys take a much slower path).
            rows_sorted, order = torch.sort(rows.to(torch.int32), stable=True)
            offsets = torch.searchsorted(rows_sorted, row_pos).long()
            w_rows = weight[j0 : j0 + n].to(acc)
            gh.add_(F.embedding_bag(jj[order], w_rows, offsets, mode="sum", per_sample_weights=vals[order]))
    grad_h = gh.view(B, L, H).to(h.dtype) if need_h else None
    return grad_h, grad_w, grad_b


def _prepare(h, weight, bias, mask, chunk_size) -> tuple[torch.Tensor, torch.dtype, torch.dtype]:
    """Checks shapes; returns the (B, L) mask (all real when None), the dtype of the logits
    matmul (the autocast dtype when autocast is on) and the output dtype."""
    if h.dim() != 3 or h.shape[1] == 0:
        raise ValueError(f"h must be (B, L, H) with L >= 1, got shape {tuple(h.shape)}")
    if weight.dim() != 2 or weight.shape[1] != h.shape[2]:
        raise ValueError(f"weight must be (|V|, {h.shape[2]}), got shape {tuple(weight.shape)}")
    if bias is not None and bias.shape != (weight.shape[0],):
        raise ValueError(f"bias must be ({weight.shape[0]},), got shape {tuple(bias.shape)}")
    if isinstance(chunk_size, bool) or int(chunk_size) != chunk_size or chunk_size < 1:
        raise ValueError(f"head.chunk_size must be a positive integer, got {chunk_size!r}")
    B, L, _ = h.shape
    if mask is None:
        mask = torch.ones((B, L), dtype=torch.bool, device=h.device)
    elif mask.shape != (B, L):
        raise ValueError(f"mask must be ({B}, {L}), got shape {tuple(mask.shape)}")
    out_dtype = torch.promote_types(h.dtype, weight.dtype)
    if bias is not None:
        out_dtype = torch.promote_types(out_dtype, bias.dtype)
    return mask, _autocast_dtype(h.device.type) or out_dtype, out_dtype


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
    mask, compute_dtype, out_dtype = _prepare(h, weight, bias, mask, chunk_size)
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
    impl: str = "chunked",
    chunk_size: int = DEFAULT_CHUNK_SIZE,
) -> torch.Tensor:
    """Dispatch on pooling (``max`` | ``sum``) and implementation (``naive`` | ``chunked``).

    Sum pooling always takes the naive path.
    """
    if impl not in POOLING_IMPLS:
        raise ValueError(f"head.pooling_impl must be 'naive' or 'chunked', got {impl!r}")
    if pooling == "sum":
        return sum_pool_naive(h, weight, bias, mask)
    if pooling != "max":
        raise ValueError(f"head.pooling must be 'max' or 'sum', got {pooling!r}")
    if impl == "chunked":
        return max_pool_chunked(h, weight, bias, mask, chunk_size=chunk_size)
    return max_pool_naive(h, weight, bias, mask)


def max_logits(
    h: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    mask: torch.Tensor,
    impl: str = "chunked",
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    token_logits: Callable[[torch.Tensor], None] | None = None,
) -> torch.Tensor:
    """Raw pooled logits ``z(d) = max_l z_l`` (B, |V|) before ``log1p(relu(.))``; ``-inf`` for an
    all-padding example. No gradient (statistics and diagnostics).

    ``token_logits``, if given, is called with the logits of real tokens (bias included), every
    one of them in exactly one call, e.g. to accumulate their moments: once with (N, |V|) for
    ``naive``, once per vocabulary chunk with (n, N) for ``chunked``, which never holds more than
    one chunk of logits.
    """
    if impl not in ("naive", "chunked"):
        raise ValueError(f"head.pooling_impl must be 'naive' or 'chunked', got {impl!r}")
    mask, compute_dtype, out_dtype = _prepare(h, weight, bias, mask, chunk_size)
    real = mask.bool()
    with torch.no_grad():
        if impl == "naive":
            logits = torch.nn.functional.linear(h, weight, bias)  # (B, L, V)
            if token_logits is not None:
                token_logits(logits[real])
            return logits.masked_fill(~real.unsqueeze(-1), float("-inf")).amax(dim=1)
        on_chunk = None
        if token_logits is not None:
            real_cols = real.reshape(-1).nonzero().squeeze(1)

            def on_chunk(j0: int, z: torch.Tensor) -> None:
                zr = z.index_select(1, real_cols)
                token_logits(zr if bias is None else zr.add_(bias[j0 : j0 + z.shape[0]].unsqueeze(1)))

        out, _ = _chunked_max_forward(
            h, weight, bias, mask, chunk_size, compute_dtype, out_dtype, keep_argmax=False,
            activate=False, on_chunk=on_chunk,
        )
        return out
