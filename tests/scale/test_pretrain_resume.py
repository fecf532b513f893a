"""Kill-and-resume of the EMLM stage through the command line: ``stage=pretrain`` killed with SIGKILL
after a periodic checkpoint and launched again resumes from that checkpoint (not step 0) and
publishes the artifact an uninterrupted launch publishes: the same parameters (within 1e-6 on CPU),
the same curves. Step count, LR schedule, optimizer, data position, masking and dropout all resume."""
from __future__ import annotations

import json
import signal
import time

import pandas as pd
import pytest
import torch

from conftest import compose_cfg
from smoke_cli import launch, shared_artifacts, tail
from splade_exp.run import emlm_spec

STEPS, EVERY = 60, 10
ARGS = ["+experiment=smoke", "model=esplade_100k", "stage=pretrain", "logger=none", "vocab.size=150",
        "vocab.count_processes=1", "pretrain.corpus=in_domain", f"pretrain.steps={STEPS}", "pretrain.batch_size=16",
        "pretrain.max_length=32", "pretrain.warmup_steps=5", "pretrain.val_size=32", "pretrain.val_every_n_steps=20",
        "pretrain.log_every_n_steps=5", "pretrain.stats_docs=24", "pretrain.stats_batch_size=8",
        f"pretrain.checkpoint_every_n_steps={EVERY}"]


@pytest.mark.slow
def test_sigkill_mid_pretraining_then_relaunch_resumes_and_publishes_the_uninterrupted_artifact(tmp_path,
                                                                                               tmp_path_factory):
    from safetensors.torch import load_file

    root, log = tmp_path / "root", tmp_path / "run.log"
    artifacts = shared_artifacts(tmp_path_factory)
    spec = emlm_spec(compose_cfg([*ARGS, f"paths.artifacts_dir={artifacts}"], root))
    path, last = spec.path(), spec.work_dir() / "checkpoints" / "last.ckpt"

    straight = launch(ARGS, root, artifacts, log)  # the uninterrupted pretraining, put aside
    assert straight.wait(600) == 0, tail(log)
    reference = tmp_path / "uninterrupted"
    path.rename(reference)

    first = launch(ARGS, root, artifacts, log)
    deadline = time.monotonic() + 600
    while not last.exists() and first.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    first.send_signal(signal.SIGKILL)
    assert first.wait(30) == -signal.SIGKILL, tail(log)
    step = torch.load(last, map_location="cpu", weights_only=False)["global_step"]
    assert 0 < step < STEPS and step % EVERY == 0, f"checkpoint at step {step}\n{tail(log)}"
    assert not path.exists()  # nothing published by the killed job

    second = launch(ARGS, root, artifacts, log)
    assert second.wait(600) == 0, tail(log)
    assert "resuming EMLM pretraining from" in log.read_text()
    assert not spec.work_dir().exists()  # work files removed once published

    a, b = load_file(str(reference / "model.safetensors")), load_file(str(path / "model.safetensors"))
    diff = max((a[k] - b[k]).abs().max().item() for k in a)
    assert diff <= 1e-6, f"max |param(uninterrupted) - param(resumed at step {step})| = {diff:.2e}"
    stats = json.loads((path / "stats.json").read_text())
    assert stats["resumed_from_step"] == step
    assert json.loads((reference / "stats.json").read_text())["resumed_from_step"] is None
    ca, cb = pd.read_csv(reference / "curves.csv"), pd.read_csv(path / "curves.csv")
    assert ca[["step", "split"]].equals(cb[["step", "split"]]) and len(ca) == STEPS // 5 + 4  # + val at 0, 20, 40, 60
    assert ((ca[["loss", "accuracy"]] - cb[["loss", "accuracy"]]).abs() <= 1e-6).all().all()
