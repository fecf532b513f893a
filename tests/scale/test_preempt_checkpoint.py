"""The pre-timeout signal saves last.ckpt at a batch boundary, then hands over to the requeue handler.

A stand-in for submitit's USR2 handler records what it finds when called and exits like submitit
does (``sys.exit(-1)`` after requeueing); the real handler runs in tests/scale/test_slurm_array.py.
"""
import signal

import lightning as L
import pytest
import torch

from splade_exp.launch import PreemptionCheckpoint

SIG = signal.SIGUSR2


class Tiny(L.LightningModule):
    """y = w.x on fixed data; raises SIG (as Slurm would) inside the training step ``signal_at``."""

    def __init__(self, signal_at: int | None = None):
        super().__init__()
        self.layer = torch.nn.Linear(4, 1)
        self.signal_at = signal_at
        self.trained_steps = []
        self.handler_during_fit = None

    def train_dataloader(self):
        g = torch.Generator().manual_seed(0)
        x = torch.randn(64, 4, generator=g)
        return torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, x.sum(1, keepdim=True)), batch_size=4)

    def training_step(self, batch, batch_idx):
        self.trained_steps.append(self.global_step)
        self.handler_during_fit = signal.getsignal(SIG)
        if self.global_step == self.signal_at:
            signal.raise_signal(SIG)  # the handler runs now, in the middle of the step
        x, y = batch
        return torch.nn.functional.mse_loss(self.layer(x), y)

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


def trainer(max_steps, callbacks):
    return L.Trainer(accelerator="cpu", devices=1, max_steps=max_steps, logger=False, enable_checkpointing=False,
                     enable_progress_bar=False, enable_model_summary=False, callbacks=callbacks)


@pytest.fixture
def requeue_handler():
    """A stand-in for submitit's handler: records the checkpoint and the model at call time, exits."""
    calls = []
    state = {}

    def handler(signum, frame):
        calls.append(signum)
        state["weight"] = state["module"].layer.weight.detach().clone()
        raise SystemExit(-1)

    original = signal.signal(SIG, handler)
    yield handler, calls, state
    signal.signal(SIG, original)


def test_signal_saves_at_the_step_boundary_then_requeue_handler_runs(tmp_path, requeue_handler):
    handler, calls, state = requeue_handler
    last = tmp_path / "checkpoints" / "last.ckpt"
    module = state["module"] = Tiny(signal_at=3)
    with pytest.raises(SystemExit):
        trainer(10, [PreemptionCheckpoint(last)]).fit(module)

    assert calls == [SIG], "submitit's handler is called exactly once, after the save"
    assert module.trained_steps == [0, 1, 2, 3], "the step in flight finishes; no step starts after the signal"
    ckpt = torch.load(last, weights_only=False)
    assert ckpt["global_step"] == 4  # steps 0..3 done
    torch.testing.assert_close(ckpt["state_dict"]["layer.weight"], state["weight"], rtol=0, atol=0)
    assert "optimizer_states" in ckpt and ckpt["loops"], "a full checkpoint: training resumes, not restarts"
    assert signal.getsignal(SIG) is handler, "the previous handler is back in place"


def test_requeued_job_resumes_from_the_saved_step(tmp_path, requeue_handler):
    handler, _, state = requeue_handler
    last = tmp_path / "last.ckpt"
    state["module"] = Tiny(signal_at=3)
    with pytest.raises(SystemExit):
        trainer(10, [PreemptionCheckpoint(last)]).fit(state["module"])

    resumed = Tiny()
    trainer(10, [PreemptionCheckpoint(last)]).fit(resumed, ckpt_path=last)
    assert resumed.trained_steps == [4, 5, 6, 7, 8, 9]
    assert resumed.handler_during_fit.__name__ == "_record", "active while training"
    assert signal.getsignal(SIG) is handler, "submitit's handler is back for what follows training"


def test_without_a_requeue_handler_the_signal_is_left_alone(tmp_path):
    assert signal.getsignal(SIG) == signal.SIG_DFL  # not inside a submitit job
    module = Tiny()
    trainer(3, [PreemptionCheckpoint(tmp_path / "last.ckpt")]).fit(module)
    assert module.handler_during_fit == signal.SIG_DFL
    assert not (tmp_path / "last.ckpt").exists()


class TermAt(Tiny):
    """Receives SIGTERM (scancel, Slurm's kill at the time limit, ``kill``) inside step ``signal_at``."""

    def training_step(self, batch, batch_idx):
        self.trained_steps.append(self.global_step)
        if self.global_step == self.signal_at:
            signal.raise_signal(signal.SIGTERM)  # Lightning's handler: stop at the end of this step
        x, y = batch
        return torch.nn.functional.mse_loss(self.layer(x), y)


def test_sigterm_saves_at_the_step_boundary_and_the_relaunch_resumes_there(tmp_path):
    from lightning.pytorch.utilities.exceptions import SIGTERMException

    last = tmp_path / "last.ckpt"
    module = TermAt(signal_at=3)
    with pytest.raises(SIGTERMException):  # a SystemExit: the process ends after the save
        trainer(10, [PreemptionCheckpoint(last)]).fit(module)
    assert module.trained_steps == [0, 1, 2, 3]
    ckpt = torch.load(last, weights_only=False)
    assert ckpt["global_step"] == 4 and "optimizer_states" in ckpt
    torch.testing.assert_close(ckpt["state_dict"]["layer.weight"], module.layer.weight.detach(), rtol=0, atol=0)
    assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL  # Lightning put the default back

    resumed = Tiny()
    trainer(10, [PreemptionCheckpoint(last)]).fit(resumed, ckpt_path=last)
    assert resumed.trained_steps == [4, 5, 6, 7, 8, 9]
