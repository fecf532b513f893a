"""Kill-and-resume: a fine-tuning run killed with SIGKILL after a periodic checkpoint, relaunched with
the same command, continues from that checkpoint (step count, lambda ramp, data stream), writes one
complete results file, and a further relaunch skips it."""
from __future__ import annotations

import signal
import time

import pandas as pd
import pytest
import torch

import ddp_worker as W
from conftest import compose_cfg
from omegaconf import OmegaConf
from smoke_cli import RANK_ENV, launch, shared_artifacts, tail
from splade_exp.results import read_results
from splade_exp.run import results_path, run, run_id
from splade_exp.stages.fit import GlobalBatchData, make_trainer
from splade_exp.stages.splade import SpladeModule

MAX_STEPS, EVERY, T, LAMBDA_Q = 40, 5, 100, 3e-4
ARGS = ["+experiment=smoke", "logger=csv", f"trainer.max_steps={MAX_STEPS}",
        f"trainer.checkpoint_every_n_steps={EVERY}", "trainer.log_every_n_steps=1",
        f"loss.lambda_warmup_steps={T}", f"loss.lambda_q={LAMBDA_Q}"]


class _Batches(W.L.Callback):
    def __init__(self) -> None:
        self.keys: list[list[int]] = []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        self.keys.append(batch["doc_keys"].tolist())


def _fit(init: dict, root, stop_at: int, resume: bool = False):
    """A 6-step schedule of the tiny model, stopped after ``stop_at`` steps (checkpoint every 2)."""
    encoder = W.tiny_encoder()
    encoder.load_state_dict(init)
    module = SpladeModule(encoder, regularizers=W.regularizers("flops", warmup_steps=4), lr=1e-2, warmup_steps=0,
                          max_steps=6)
    tcfg = OmegaConf.create({"accelerator": "cpu", "devices": 1, "num_nodes": 1, "strategy": "auto",
                             "precision": "32-true", "accumulate_grad_batches": 1, "gradient_clip_val": 1.0,
                             "log_every_n_steps": 1, "enable_progress_bar": False})
    batches = _Batches()
    trainer = make_trainer(tcfg, root, stop_at, callbacks=[batches], checkpoint_every=2, use_distributed_sampler=False)
    last = root / "checkpoints" / "last.ckpt"
    trainer.fit(module, datamodule=GlobalBatchData(W.Pairs(), W.collate, 8, seed=0), ckpt_path=last if resume else None)
    return module, batches.keys


def test_resumed_fit_sees_the_next_batches_and_ends_where_an_uninterrupted_fit_ends(tmp_path, monkeypatch):
    for key in RANK_ENV:  # one plain process
        monkeypatch.delenv(key, raising=False)
    init = W.tiny_encoder().state_dict()
    straight, keys = _fit(init, tmp_path / "straight", 6)
    _, first = _fit(init, tmp_path / "killed", 2)  # stops mid-epoch (4 batches per epoch), after a checkpoint
    resumed, rest = _fit(init, tmp_path / "killed", 6, resume=True)
    assert resumed.resumed_from_step == 2
    assert first == keys[:2] and rest == keys[2:]  # the same stream, across the epoch boundary
    a, b = straight.encoder.state_dict(), resumed.encoder.state_dict()
    assert max((a[k] - b[k]).abs().max().item() for k in a if a[k].is_floating_point()) <= 1e-6


def _metrics(run_dir, version: int) -> pd.DataFrame:
    frame = pd.read_csv(run_dir / "logs" / f"version_{version}" / "metrics.csv")
    return frame.dropna(subset=["train/lambda_q"]).set_index("step")


METRICS = ["mrr@10", "recall@10", "recall@100", "ndcg@10", "flops", "l0_q", "l0_d", "posting_mean", "posting_max",
           "posting_var"]
CURVES = ["train/loss", "train/rank_loss", "train/flops_q", "train/flops_d", "train/l0_q", "train/l0_d",
          "train/cos_q", "train/cos_d", "train/lambda_q"]


@pytest.mark.slow
def test_sigkill_mid_training_then_relaunch_resumes_exactly(tmp_path, tmp_path_factory):
    """Killed after a periodic checkpoint and relaunched, a run ends with the metrics and the curves of
    an uninterrupted run, bit for bit: dropout is drawn per step (StepSeed) and negatives per
    (epoch, item) (``data.num_negatives=1``), so nothing restarts from the seed."""
    root, log = tmp_path / "root", tmp_path / "run.log"
    artifacts = shared_artifacts(tmp_path_factory)
    args = [*ARGS, "data.num_negatives=1"]
    cfg = compose_cfg([*args, f"paths.artifacts_dir={artifacts}"], root)
    rid = run_id(cfg)
    run_dir, out = root / "runs" / rid, results_path(cfg, rid)
    last = run_dir / "checkpoints" / "last.ckpt"

    straight = launch(args, tmp_path / "straight", artifacts, tmp_path / "straight.log")  # the reference, alongside
    first = launch(args, root, artifacts, log)
    deadline = time.monotonic() + 240
    while not last.exists() and first.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    first.send_signal(signal.SIGKILL)
    assert first.wait(30) == -signal.SIGKILL, tail(log)
    step = torch.load(last, map_location="cpu", weights_only=False)["global_step"]
    assert 0 < step < MAX_STEPS and step % EVERY == 0, f"checkpoint at step {step}\n{tail(log)}"
    assert not out.exists()
    # what a kill in the middle of a save leaves: the temporary of the checkpoint (and of a results file)
    orphans = [last.parent / ".last.ckpt.abc123.tmp", out.parent / f".{out.name}.xyz.tmp"]
    for orphan in orphans:
        orphan.parent.mkdir(parents=True, exist_ok=True)
        orphan.write_bytes(b"partial")

    second = launch(args, root, artifacts, log)
    assert second.wait(240) == 0, tail(log)
    assert straight.wait(240) == 0, tail(tmp_path / "straight.log")
    assert not any(o.exists() for o in orphans) and "temporary files of an interrupted write" in log.read_text()

    frame = read_results(out)
    assert sorted(zip(frame.qk, frame.dk)) == sorted([(0, 0), (7, 20), (5, 20), (5, 10)])  # once each
    assert (frame.status == "completed").all() and (frame.resumed_from_step == step).all()
    assert frame["head.logit_std_init"].notna().all()  # initial diagnostics carried by the checkpoint
    reference = read_results(tmp_path / "straight" / "results" / cfg.sweep / out.name)
    pd.testing.assert_frame_equal(frame[METRICS].reset_index(drop=True), reference[METRICS].reset_index(drop=True),
                                  check_exact=True)

    before, after = _metrics(run_dir, 0), _metrics(run_dir, 1)
    assert before.index.max() >= step - 1  # the killed launch got at least to the checkpoint
    assert after.index.min() == step and after.index.max() == MAX_STEPS - 1
    resumed = pd.concat([before[before.index < step], after])[CURVES]
    uninterrupted = _metrics(tmp_path / "straight" / "runs" / rid, 0)[CURVES]
    assert resumed.index.tolist() == list(range(MAX_STEPS))
    pd.testing.assert_frame_equal(resumed, uninterrupted, check_exact=True)
    # the lambda ramp continues where it stopped: lambda(t) = lambda_q * (t / T)^2, not lambda(0) = 0
    assert after.loc[step, "train/lambda_q"] == pytest.approx(LAMBDA_Q * (step / T) ** 2, rel=1e-6)
    assert after.loc[step, "train/lambda_q"] > 0
    # the collapse diagnostics are logged each step: mean cosine between two texts of the batch
    for col in ("train/cos_q", "train/cos_d"):
        assert after[col].between(0.0, 1.0 + 1e-6).all() and after[col].notna().all(), col

    mtime = out.stat().st_mtime_ns
    again = run(cfg)  # a third launch of the same config: finished, so skipped
    assert out.stat().st_mtime_ns == mtime and len(again) == 4
    assert not (run_dir / "logs" / "version_2").exists()
