"""EMLM pretraining on 2 CPU processes (gloo) publishes the artifact 1 process publishes.

Every rank of a ``stage=pretrain`` job calls the stage: the ranks join one process group, rank 0
takes the artifact's lock for them, each rank trains on its half of every global batch, the loss
is the mean over the labelled positions of the global batch, and rank 0 publishes. The two halves
of a batch hold different numbers of masked words, so a mean of per-rank means would move the
parameters differently; here parameters and per-step losses agree to float32 round-off.
"""
from __future__ import annotations

import socket
from pathlib import Path

import pandas as pd
import pytest
import torch
import torch.multiprocessing as mp

import ddp_worker as W
from smoke_cli import RANK_ENV

TOL = 1e-5


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def published(tmp_path_factory):
    """(root, artifact of 1 process, artifact of 2 processes): the same toy pretraining, same initial weights."""
    from transformers import AutoTokenizer

    from splade_exp.models.backbone import train_wordpiece
    from splade_exp.stages.pretrain import pretrain_emlm

    root = tmp_path_factory.mktemp("emlm_ddp")
    train_wordpiece(list(W.emlm_texts().values()), vocab_size=80).save_pretrained(str(root / "tokenizer"))
    tokenizer = AutoTokenizer.from_pretrained(str(root / "tokenizer"))
    torch.save(W.tiny_emlm_encoder(tokenizer).state_dict(), root / "emlm_init.pt")
    with pytest.MonkeyPatch.context() as env:
        for key in RANK_ENV:  # the reference is one plain process; the workers set their own
            env.delenv(key, raising=False)
        mp.spawn(W.emlm_worker, args=(2, _free_port(), str(root)), nprocs=2, join=True)
        encoder, tokenizer, collection, words = W.emlm_model(root)
        one = pretrain_emlm(W.emlm_spec(root, 1), encoder, tokenizer, collection, words)
    two = [Path((root / f"emlm_rank{r}.txt").read_text()) for r in range(2)]
    assert two[0] == two[1]  # both ranks return the published artifact
    return root, one, two[0]


@pytest.mark.slow
def test_two_processes_publish_the_pretraining_of_one(published):
    import json

    from safetensors.torch import load_file

    root, one, two = published
    assert one.name == two.name  # the same key: the job's size is not part of it
    a, b = load_file(str(one / "model.safetensors")), load_file(str(two / "model.safetensors"))
    init = torch.load(root / "emlm_init.pt")
    moved = max((a[k] - init[k]).abs().max().item() for k in a)
    assert moved > 1e-3
    diff = max((a[k] - b[k]).abs().max().item() for k in a)
    assert diff <= TOL, f"max |param(1 process) - param(2 processes)| = {diff:.2e}"
    ca, cb = pd.read_csv(one / "curves.csv"), pd.read_csv(two / "curves.csv")
    assert ca.step.tolist() == cb.step.tolist() == [0, 1, 2, 2, 3, 4, 4]  # val at 0, 2, 4; train every step
    assert ((ca[["loss", "accuracy"]] - cb[["loss", "accuracy"]]).abs() <= TOL).all().all()
    sa, sb = json.loads((one / "stats.json").read_text()), json.loads((two / "stats.json").read_text())
    assert (sa["devices"], sb["devices"]) == (1, 2)
    assert abs(sa["doc-score-avg@10"] - sb["doc-score-avg@10"]) <= TOL


@pytest.mark.slow
def test_the_ranks_halves_hold_different_numbers_of_labels(published):
    """What makes the global-batch mean matter: per-rank label counts differ."""
    from splade_exp.data.pretraining import GlobalBatches, TokenRows
    from splade_exp.stages.pretrain import _masking

    root, _, _ = published
    rows_dir = next((root / "artifacts2" / "tokens").glob("emlm-*"))
    encoder, tokenizer, _, words = W.emlm_model(root)
    masking = _masking(W.emlm_spec(root, 2).pretrain, tokenizer, words)
    counts = [[int((GlobalBatches(TokenRows(rows_dir, "train"), W.EMLM_BATCH, 0, masking, r, 2)[t]["labels"] >= 0)
                   .sum()) for r in range(2)] for t in range(W.EMLM_STEPS)]
    assert any(c0 != c1 for c0, c1 in counts) and all(c0 + c1 > 0 for c0, c1 in counts), counts
