"""Chunked SPLADE max pooling against the naive reference: values, exact gradients, edge cases."""
from __future__ import annotations

import math

import pytest
import torch

from splade_exp.models.pooling import (
    max_logits,
    max_pool_chunked,
    max_pool_naive,
    sparse_pool,
    sum_pool_naive,
)


def _mask(B: int, L: int, lengths, device="cpu") -> torch.Tensor:
    return (torch.arange(L, device=device)[None, :] < torch.as_tensor(lengths, device=device)[:, None]).long()


def _leaves(*tensors):
    return [t.detach().clone().requires_grad_(True) if t is not None else None for t in tensors]


def _run(fn, h, weight, bias, mask, upstream, **kw):
    h, weight, bias = _leaves(h, weight, bias)
    out = fn(h, weight, bias, mask, **kw)
    (out * upstream).sum().backward()
    return out.detach(), h.grad, weight.grad, (bias.grad if bias is not None else None)


def _assert_same(fn_a, fn_b, h, weight, bias, mask, atol=1e-5, rtol=1e-5, seed=0):
    upstream = torch.rand(h.shape[0], weight.shape[0], generator=torch.Generator().manual_seed(seed), dtype=h.dtype)
    a = _run(fn_a, h, weight, bias, mask, upstream)
    b = _run(fn_b, h, weight, bias, mask, upstream)
    for name, x, y in zip(("out", "grad_h", "grad_weight", "grad_bias"), a, b):
        if x is None or y is None:
            assert x is None and y is None, name
            continue
        torch.testing.assert_close(x, y, atol=atol, rtol=rtol, msg=lambda m: f"{name}: {m}")
    return a


def chunked(chunk_size):
    return lambda h, w, b, m: max_pool_chunked(h, w, b, m, chunk_size=chunk_size)


# ----------------------------------------------------------------------------------------------
# Exact gradients
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("with_bias,chunk_size", [(True, 3), (False, 64)])
def test_gradcheck_float64(with_bias, chunk_size):
    g = torch.Generator().manual_seed(1)
    B, L, H, V = 3, 5, 4, 7
    h = torch.randn(B, L, H, generator=g, dtype=torch.float64, requires_grad=True)
    weight = torch.randn(V, H, generator=g, dtype=torch.float64, requires_grad=True)
    bias = torch.randn(V, generator=g, dtype=torch.float64, requires_grad=True) if with_bias else None
    mask = _mask(B, L, [5, 2, 0])  # padding and an all-padding row
    mask = torch.cat([mask, torch.tensor([[0, 1, 0, 1, 1]])])  # left padding and a hole
    h = torch.cat([h, torch.randn(1, L, H, generator=g, dtype=torch.float64)]).detach().requires_grad_(True)
    inputs = (h, weight, bias) if with_bias else (h, weight)

    def f(h, weight, bias=None):
        return max_pool_chunked(h, weight, bias, mask, chunk_size=chunk_size)

    assert torch.autograd.gradcheck(f, inputs, eps=1e-6, atol=1e-5)


def test_hand_worked_example():
    # h = [1, 2] (B=1, L=2, H=1); E = [[1], [-1]], b = [0.5, 3].
    # logits z[l, j]: l=0: [1.5, 2.0]; l=1: [2.5, 1.0]  ->  max: j=0: 2.5 at l=1; j=1: 2.0 at l=0.
    # w = [log1p(2.5), log1p(2.0)] = [log 3.5, log 3].  With loss = w0 + w1: gz = [1/3.5, 1/3].
    # grad_h[l=0] = gz1 * E1 = -1/3;  grad_h[l=1] = gz0 * E0 = 1/3.5.
    # grad_E0 = gz0 * h[1] = 2/3.5;  grad_E1 = gz1 * h[0] = 1/3;  grad_b = gz.
    for impl in ("naive", "chunked"):
        h = torch.tensor([[[1.0], [2.0]]], requires_grad=True)
        weight = torch.tensor([[1.0], [-1.0]], requires_grad=True)
        bias = torch.tensor([0.5, 3.0], requires_grad=True)
        mask = torch.ones(1, 2)
        w = sparse_pool(h, weight, bias, mask, impl=impl, chunk_size=1)
        w.sum().backward()
        torch.testing.assert_close(w, torch.tensor([[math.log(3.5), math.log(3.0)]]))
        torch.testing.assert_close(h.grad, torch.tensor([[[-1 / 3], [1 / 3.5]]]))
        torch.testing.assert_close(weight.grad, torch.tensor([[2 / 3.5], [1 / 3]]))
        torch.testing.assert_close(bias.grad, torch.tensor([1 / 3.5, 1 / 3]))

        # A padding position with the largest logits changes nothing; it gets no gradient.
        h_pad = torch.tensor([[[1.0], [2.0], [10.0]]], requires_grad=True)
        w_pad = sparse_pool(h_pad, weight.detach(), bias.detach(), torch.tensor([[1, 1, 0]]), impl=impl, chunk_size=1)
        w_pad.sum().backward()
        torch.testing.assert_close(w_pad, w.detach())
        torch.testing.assert_close(h_pad.grad, torch.tensor([[[-1 / 3], [1 / 3.5], [0.0]]]))


# ----------------------------------------------------------------------------------------------
# Equality with the naive reference (float32)
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "B,L,H,V,chunk_size",
    [(2, 3, 4, 5, 2), (4, 9, 16, 100, 32), (3, 17, 8, 257, 64), (5, 6, 32, 1000, 4096), (1, 1, 3, 10, 3)],
)
def test_matches_naive_random(B, L, H, V, chunk_size):
    g = torch.Generator().manual_seed(B * 1000 + L * 10 + H)
    h = torch.randn(B, L, H, generator=g)
    weight = 0.3 * torch.randn(V, H, generator=g)
    bias = 0.5 * torch.randn(V, generator=g) - 0.5
    lengths = torch.randint(1, L + 1, (B,), generator=g)
    lengths[0] = L
    if B > 2:
        lengths[-1] = 0  # an all-padding row
    mask = _mask(B, L, lengths)
    out, *_ = _assert_same(chunked(chunk_size), max_pool_naive, h, weight, bias, mask)
    assert torch.isfinite(out).all()
    if B > 2:
        assert (out[-1] == 0).all()
    # And without bias.
    _assert_same(chunked(chunk_size), max_pool_naive, h, weight, None, mask)


@pytest.mark.parametrize("chunk_size", [1, 8, 64])
def test_matches_naive_arbitrary_masks(chunk_size):
    # Left padding, holes, a single real token at the end, all-padding: any mask pattern.
    g = torch.Generator().manual_seed(23)
    B, L, H, V = 6, 7, 5, 40
    h = torch.randn(B, L, H, generator=g)
    weight = 0.5 * torch.randn(V, H, generator=g)
    bias = torch.randn(V, generator=g) - 1.0  # many negative pooled logits
    mask = (torch.rand(B, L, generator=g) < 0.6).long()
    mask[0] = torch.tensor([0, 0, 0, 1, 1, 1, 1])
    mask[1] = torch.tensor([0, 0, 0, 0, 0, 0, 1])
    mask[2] = 0
    _, gh, _, _ = _assert_same(chunked(chunk_size), max_pool_naive, h, weight, bias, mask)
    assert (gh[~mask.bool()] == 0).all()


def test_long_sequences_use_wider_positions():
    # L > 256: positions no longer fit in uint8.
    g = torch.Generator().manual_seed(29)
    B, L, H, V = 2, 300, 4, 30
    h = torch.randn(B, L, H, generator=g)
    h[0, 280] = 5.0  # the max of most terms sits beyond position 255
    weight = torch.randn(V, H, generator=g)
    mask = _mask(B, L, [300, 290])
    _assert_same(chunked(8), max_pool_naive, h, weight, torch.zeros(V), mask)


def test_exact_ties_and_never_active_rows():
    # Dyadic values: every dot product is exact whatever the summation order, so ties are exact.
    g = torch.Generator().manual_seed(7)
    B, L, H, V = 4, 6, 5, 40
    h = torch.randint(-3, 4, (B, L, H), generator=g).float() * 0.25
    h[:, 3] = h[:, 1]  # duplicate rows: exact ties between positions 1 and 3
    h[:, 5] = h[:, 1]
    h[2, :] = h[2, 0]  # a row whose positions all tie
    weight = torch.randint(-2, 3, (V, H), generator=g).float() * 0.5
    bias = torch.randint(-2, 3, (V,), generator=g).float() * 0.5
    bias[:10] = -100.0  # vocabulary rows that never activate
    mask = _mask(B, L, [6, 4, 6, 0])
    out, gh, gw, gb = _assert_same(chunked(7), max_pool_naive, h, weight, bias, mask, atol=1e-6)
    assert (out[:, :10] == 0).all() and (gw[:10] == 0).all() and (gb[:10] == 0).all()
    assert (out[3] == 0).all() and (gh[3] == 0).all()  # all-padding row
    assert (gh[1, 4:] == 0).all()  # padding positions never get gradient


def test_padding_never_wins():
    g = torch.Generator().manual_seed(3)
    B, L, H, V = 3, 8, 6, 50
    weight = torch.randn(V, H, generator=g)
    bias = torch.randn(V, generator=g)
    h = torch.randn(B, L, H, generator=g)
    lengths = [5, 3, 8]
    mask = _mask(B, L, lengths)
    # Padding states aligned with every row of the weight (all its logits are huge).
    h_pad = h.clone()
    h_pad[~mask.bool()] = 100.0 * weight.sum(0) / weight.sum(0).norm()
    h_pad[~mask.bool()] += 100.0 * weight.abs().max()
    upstream = torch.rand(B, V, generator=g)
    clean = _run(chunked(16), h, weight, bias, mask, upstream)
    for fn in (chunked(16), max_pool_naive):
        out, gh, gw, gb = _run(fn, h_pad, weight, bias, mask, upstream)
        torch.testing.assert_close(out, clean[0])
        torch.testing.assert_close(gh[mask.bool()], clean[1][mask.bool()])
        assert (gh[~mask.bool()] == 0).all()
        torch.testing.assert_close(gb, clean[3])
        # grad_weight differs only through h at the (real) argmax positions, which are unchanged.
        torch.testing.assert_close(gw, clean[2])
    got = (out,)
    # Whatever padding states hold (even NaN), they change nothing.
    h_nan = h.clone()
    h_nan[~mask.bool()] = float("nan")
    out_nan, gh_nan, gw_nan, gb_nan = _run(chunked(16), h_nan, weight, bias, mask, upstream)
    torch.testing.assert_close(out_nan, clean[0])
    torch.testing.assert_close(gw_nan, clean[2])
    assert (gh_nan[~mask.bool()] == 0).all()
    # Same values as pooling each row over its real tokens only.
    for b, n in enumerate(lengths):
        single = max_pool_naive(h[b : b + 1, :n], weight, bias, torch.ones(1, n))
        torch.testing.assert_close(got[0][b : b + 1], single)


def test_partial_input_grads_and_no_bias():
    g = torch.Generator().manual_seed(5)
    h = torch.randn(2, 4, 3, generator=g)
    weight = torch.randn(9, 3, generator=g)
    bias = torch.randn(9, generator=g)
    mask = _mask(2, 4, [4, 2])
    for need in ("h", "weight", "bias"):
        leaves = {"h": h.clone(), "weight": weight.clone(), "bias": bias.clone()}
        leaves[need].requires_grad_(True)
        max_pool_chunked(leaves["h"], leaves["weight"], leaves["bias"], mask, chunk_size=4).sum().backward()
        ref = {k: v.detach().clone().requires_grad_(k == need) for k, v in leaves.items()}
        max_pool_naive(ref["h"], ref["weight"], ref["bias"], mask).sum().backward()
        for k in leaves:
            if k == need:
                torch.testing.assert_close(leaves[k].grad, ref[k].grad)
            else:
                assert leaves[k].grad is None


def test_saves_only_linear_state():
    """Nothing of size B·L·|V| is saved for backward."""
    B, L, H, V = 4, 16, 8, 64
    h = torch.randn(B, L, H, requires_grad=True)
    weight = torch.randn(V, H, requires_grad=True)
    bias = torch.randn(V, requires_grad=True)
    saved = []
    with torch.autograd.graph.saved_tensors_hooks(lambda t: saved.append(t.numel()) or t, lambda t: t):
        out = max_pool_chunked(h, weight, bias, _mask(B, L, [16, 3, 9, 1]), chunk_size=8)
    assert saved and max(saved) <= max(h.numel(), weight.numel(), B * V)
    out.sum().backward()


def test_inference_mode_and_no_grad():
    g = torch.Generator().manual_seed(11)
    h = torch.randn(3, 5, 4, generator=g)
    weight = torch.randn(30, 4, generator=g, requires_grad=True)
    bias = torch.randn(30, generator=g)
    mask = _mask(3, 5, [5, 1, 0])
    ref = max_pool_naive(h, weight, bias, mask).detach()
    with torch.inference_mode():
        out = max_pool_chunked(h, weight, bias, mask, chunk_size=7)
    torch.testing.assert_close(out, ref)
    saved = []
    with torch.no_grad(), torch.autograd.graph.saved_tensors_hooks(lambda t: saved.append(t) or t, lambda t: t):
        out = max_pool_chunked(h, weight, bias, mask, chunk_size=7)
    assert out.grad_fn is None and not out.requires_grad and not saved
    torch.testing.assert_close(out, ref)


def test_autocast_bfloat16_cpu():
    g = torch.Generator().manual_seed(13)
    h = torch.randn(2, 6, 16, generator=g, requires_grad=True)
    weight = (0.2 * torch.randn(50, 16, generator=g)).requires_grad_(True)
    bias = torch.zeros(50, requires_grad=True)
    mask = _mask(2, 6, [6, 3])
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = max_pool_chunked(h, weight, bias, mask, chunk_size=16)
    assert out.dtype == torch.float32
    out.sum().backward()
    assert h.grad.dtype == weight.grad.dtype == bias.grad.dtype == torch.float32
    ref = max_pool_naive(h.detach(), weight.detach(), bias.detach(), mask)
    torch.testing.assert_close(out.detach(), ref, atol=5e-2, rtol=5e-2)
    # Exactly the pooling of bfloat16 logits (matmul in bfloat16, the rest in float32).
    z = (h.detach().bfloat16() @ weight.detach().bfloat16().T).float()
    z = z.masked_fill(~mask.bool().unsqueeze(-1), float("-inf")).amax(dim=1) + bias.detach()
    torch.testing.assert_close(out.detach(), torch.log1p(torch.relu(z)), atol=1e-2, rtol=1e-2)
    # The backward is the float32 one at the bfloat16 argmax: close to the float32 gradients.
    g32 = _run(max_pool_naive, h, weight, bias, mask, torch.ones(2, 50))
    for got, want in zip((h.grad, weight.grad, bias.grad), g32[1:]):
        torch.testing.assert_close(got, want, atol=5e-2, rtol=5e-2)


# ----------------------------------------------------------------------------------------------
# Dispatcher and training step
# ----------------------------------------------------------------------------------------------


def test_dispatcher():
    g = torch.Generator().manual_seed(17)
    h = torch.randn(2, 4, 3, generator=g)
    weight = torch.randn(11, 3, generator=g)
    bias = torch.randn(11, generator=g)
    mask = _mask(2, 4, [4, 2])
    torch.testing.assert_close(
        sparse_pool(h, weight, bias, mask, impl="chunked", chunk_size=4), max_pool_naive(h, weight, bias, mask)
    )
    torch.testing.assert_close(
        sparse_pool(h, weight, bias, mask, pooling="sum", impl="chunked"), sum_pool_naive(h, weight, bias, mask)
    )
    with pytest.raises(ValueError, match="head.pooling_impl"):
        sparse_pool(h, weight, bias, mask, impl="dense")
    with pytest.raises(ValueError, match="head.pooling"):
        sparse_pool(h, weight, bias, mask, pooling="mean")


def test_sgd_step_same_parameters():
    torch.manual_seed(0)
    B, L, D, H, V = 4, 7, 6, 8, 120
    transform = torch.nn.Linear(D, H)
    proj = torch.nn.Linear(H, V)
    x = torch.randn(B, L, D)
    mask = _mask(B, L, [7, 5, 1, 3])
    target = torch.rand(B, V)
    init = {k: v.clone() for k, v in {**dict(transform.named_parameters(prefix="t")), **dict(proj.named_parameters(prefix="p"))}.items()}

    params = {}
    for impl in ("naive", "chunked"):
        t, p = torch.nn.Linear(D, H), torch.nn.Linear(H, V)
        with torch.no_grad():
            for k, v in {**dict(t.named_parameters(prefix="t")), **dict(p.named_parameters(prefix="p"))}.items():
                v.copy_(init[k])
        opt = torch.optim.SGD([*t.parameters(), *p.parameters()], lr=0.5)
        w = sparse_pool(torch.tanh(t(x)), p.weight, p.bias, mask, impl=impl, chunk_size=32)
        loss = ((w - target) ** 2).mean() + 1e-3 * w.sum(1).pow(2).mean()
        loss.backward()
        opt.step()
        params[impl] = [v.detach().clone() for v in [*t.parameters(), *p.parameters()]]
    for a, b in zip(params["naive"], params["chunked"]):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=1e-5)
    assert any(not torch.equal(a, init[k]) for a, k in zip(params["chunked"], init))


def test_training_step_through_the_encoder_gives_the_same_parameters():
    """One SGD step of a whole SpladeEncoder (BERT trunk + untied head) on the fine-tuning loss
    (in-batch cross-entropy + FLOPS, training top-k) lands on the same parameters either way."""
    import copy

    from transformers import BertConfig, BertForMaskedLM

    from splade_exp import regularizers as R
    from splade_exp.losses import in_batch_cross_entropy
    from splade_exp.models.encoder import SpladeEncoder

    torch.manual_seed(0)
    cfg = BertConfig(vocab_size=60, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                     intermediate_size=32, max_position_embeddings=16, hidden_dropout_prob=0.0,
                     attention_probs_dropout_prob=0.0)
    base = SpladeEncoder.from_masked_lm(BertForMaskedLM(cfg), pooling_impl="naive")
    base.decoder = torch.nn.Linear(16, 150)  # an untied 150-term head, as for a unigram vocabulary
    g = torch.Generator().manual_seed(1)
    q_ids, d_ids = torch.randint(5, 60, (3, 5), generator=g), torch.randint(5, 60, (3, 9), generator=g)
    q_mask, d_mask = _mask(3, 5, [5, 3, 2]), _mask(3, 9, [9, 4, 6])

    params = {}
    for impl in ("naive", "chunked"):
        enc = copy.deepcopy(base)
        enc.pooling_impl, enc.chunk_size = impl, 32
        opt = torch.optim.SGD(enc.parameters(), lr=0.5)
        q, d = enc(q_ids, q_mask, topk=40), enc(d_ids, d_mask, topk=80)
        loss = in_batch_cross_entropy(q, d, torch.arange(3)) + 0.1 * (R.flops(q) + R.flops(d))
        loss.backward()
        opt.step()
        params[impl] = dict(enc.named_parameters())
    moved = 0
    for name, p in params["naive"].items():
        torch.testing.assert_close(params["chunked"][name], p, atol=1e-6, rtol=1e-5, msg=lambda m: f"{name}: {m}")
        moved += not torch.equal(p, dict(base.named_parameters())[name])
    assert moved >= len(params["naive"]) - 2  # the trunk and the head both trained (not just the head)


@pytest.mark.parametrize("chunk_size", [3, 1000])
def test_max_logits_streams_token_logits(chunk_size):
    """Raw pooled logits (negative ones kept, -inf for an all-padding row) and every real token's
    logit seen exactly once, without padding."""
    g = torch.Generator().manual_seed(31)
    B, L, H, V = 3, 6, 4, 20
    h = torch.randn(B, L, H, generator=g)
    h[1, 4:] = 1e6  # padding that would dominate every max and every moment
    weight, bias = torch.randn(V, H, generator=g), torch.randn(V, generator=g) - 3.0
    mask = _mask(B, L, [6, 4, 0])
    logits = h @ weight.T + bias
    ref = logits.masked_fill(~mask.bool().unsqueeze(-1), float("-inf")).amax(dim=1)
    for impl in ("naive", "chunked"):
        seen = []
        z = max_logits(h, weight, bias, mask, impl=impl, chunk_size=chunk_size, token_logits=seen.append)
        torch.testing.assert_close(z, ref)
        assert (z[:2] < 0).any() and torch.isneginf(z[2]).all()
        got = torch.cat([t.reshape(-1) for t in seen]).sort().values
        torch.testing.assert_close(got, logits[mask.bool()].reshape(-1).sort().values)
