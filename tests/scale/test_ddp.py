"""Data parallelism: 2 CPU processes (gloo) compute what 1 process computes on the same global batch.

The in-batch negatives and both regularisers (FLOPS, joint FLOPS) see the global batch through
gathers with gradients, and each rank reads its slice of the same global batches, so the logged
losses and the parameters after 3 AdamW steps agree to float32 round-off. In a sharded encoding
each rank writes its own shards to disk, and together they hold the matrix one process encodes.
"""
from __future__ import annotations

import socket

import pytest
import torch
import torch.multiprocessing as mp

import ddp_worker as W
from smoke_cli import RANK_ENV
from splade_exp.stages.evaluate import encode
from splade_exp.stages.fit import GlobalBatchSampler

TOL = 1e-5


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_global_batches_do_not_depend_on_the_world_size():
    one = iter(GlobalBatchSampler(30, 6, seed=3))
    halves = [iter(GlobalBatchSampler(30, 6, seed=3, rank=r, world_size=2)) for r in range(2)]
    for _ in range(12):  # 5 batches per epoch: crosses two epoch boundaries (new permutations)
        batch = next(one)
        assert next(halves[0]) + next(halves[1]) == batch and len(set(batch)) == 6
    resumed = iter(GlobalBatchSampler(30, 6, seed=3, start=7))
    fresh = iter(GlobalBatchSampler(30, 6, seed=3))
    for _ in range(7):
        next(fresh)
    assert [next(resumed) for _ in range(4)] == [next(fresh) for _ in range(4)]


def test_global_batch_must_split_evenly_over_ranks():
    with pytest.raises(ValueError, match=r"trainer.batch_size=6 .*\(trainer.devices"):
        GlobalBatchSampler(30, 6, world_size=4)


@pytest.fixture(scope="module")
def ddp_run(tmp_path_factory):
    """Both regularisers trained on 2 spawned processes; the reference on 1 process here."""
    out = tmp_path_factory.mktemp("ddp")
    init = W.tiny_encoder().state_dict()
    torch.save(init, out / "init.pt")
    with pytest.MonkeyPatch.context() as env:
        for key in RANK_ENV:  # the reference is one plain process; the workers set their own
            env.delenv(key, raising=False)
        mp.spawn(W.worker, args=(2, _free_port(), str(out)), nprocs=2, join=True)
        one = {reg: W.train(reg, init, 1, out / "single") for reg in W.HP}
    two = torch.load(out / "ddp.pt", weights_only=False)  # holds a scipy matrix
    return init, one, two


@pytest.mark.slow
@pytest.mark.parametrize("regularizer", list(W.HP))
def test_two_processes_match_one_process(ddp_run, regularizer):
    init, one, two = ddp_run
    module, rows = one[regularizer]
    rows2, state2 = two[regularizer]["rows"], two[regularizer]["state"]
    assert len(rows) == len(rows2) == W.STEPS
    for step, (a, b) in enumerate(zip(rows, rows2)):
        for key in a:
            assert abs(a[key] - b[key]) <= TOL * max(1.0, abs(a[key])), (step, key, a[key], b[key])
    # the regulariser is active (lambda ramps from 0 at step 0) and the parameters moved
    assert rows[-1]["loss"] > rows[-1]["rank_loss"] > 0
    state = module.encoder.state_dict()
    moved = max((state[k] - init[k]).abs().max().item() for k in init if init[k].is_floating_point())
    assert moved > 1e-3
    diff = max((state[k] - state2[k]).abs().max().item() for k in state if state[k].is_floating_point())
    assert diff <= TOL, f"max |param(1 process) - param(2 processes)| = {diff:.2e}"


@pytest.mark.slow
def test_each_rank_writes_its_shards_and_they_hold_the_single_process_matrix(ddp_run):
    _, _, two = ddp_run
    assert two["wrote"] == [[0, 2, 4], [1, 3]]  # 13 texts in shards of 3: shard i by rank i mod 2
    encoder = W.tiny_encoder()
    encoder.load_state_dict(two["joint_flops"]["state"])
    expected = encode(encoder, W.WordTokenizer(), W.texts(), max_length=32, batch_size=4)
    got = two["encoded"]
    assert got.shape == expected.shape == (len(W.texts()), W.VOCAB)
    assert abs(got.toarray() - expected.toarray()).max() <= TOL and expected.nnz > 0
