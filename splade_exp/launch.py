"""How a job's processes are started and stopped: ranks under submitit, and the pre-timeout checkpoint.

Two things sit between the launcher (``conf/launcher/``) and Lightning:

- :func:`prepare_process` runs first in every job. Inside a submitit job with several tasks (the
  ``slurm_multigpu`` profile, or ``submitit_local`` with ``tasks_per_node > 1``) each task is one
  rank: it exports ``RANK``/``LOCAL_RANK``/``WORLD_SIZE``/``MASTER_*`` so Lightning joins the
  processes Slurm (or submitit) started instead of starting its own. It refuses the one combination
  that silently goes wrong: several devices in a Hydra multirun with no external process launcher,
  where Lightning's DDP launcher would re-execute ``sys.argv`` -- the whole sweep -- in every rank.
- :class:`PreemptionCheckpoint` makes Slurm's pre-timeout/preemption signal save ``last.ckpt``.
  submitit owns requeueing: its ``USR2`` handler asks the Hydra launcher's ``checkpoint()`` for the
  resubmission, runs ``scontrol requeue`` and exits (Lightning gets
  ``SLURMEnvironment(auto_requeue=False)``). A handler that fires between two bytecodes of an
  optimizer step cannot save a consistent model, so this callback only records the signal, saves at
  the next batch boundary (all ranks agree through one boolean all-reduce) and then calls
  submitit's handler. The requeued job recomposes the same config, hence the same run id and run
  directory, and ``run()`` resumes from ``runs/<run_id>/checkpoints/last.ckpt``.
  SIGTERM (``scancel``, Slurm's kill at the time limit, ``kill``) is Lightning's: it stops training
  at the next batch boundary with ``SIGTERMException``; this callback then saves the same file,
  from rank 0 alone (ranks may stop one step apart, so nothing here waits for the others).
"""
from __future__ import annotations

import logging
import os
import signal
from pathlib import Path

import lightning as L

log = logging.getLogger(__name__)


def preempt_signal() -> signal.Signals:
    """The signal submitit asks Slurm to send before the time limit (``SUBMITIT_PREEMPT_SIGNAL``, default USR2)."""
    name = os.environ.get("SUBMITIT_PREEMPT_SIGNAL", "USR2")
    sig = getattr(signal, f"SIG{name}", None)
    if sig is None:
        raise ValueError(f"SUBMITIT_PREEMPT_SIGNAL={name!r} is not a signal name (e.g. USR2)")
    return sig


def _submitit_env():
    """submitit's JobEnvironment when this process is a submitit job, else None."""
    if not os.environ.get("SUBMITIT_EXECUTOR"):
        return None
    import submitit

    return submitit.JobEnvironment()


def requested_processes(tcfg) -> int:
    """Processes the trainer config asks for: devices x nodes (``auto``/-1 count the visible GPUs)."""
    devices = tcfg.devices
    if isinstance(devices, str) and devices.strip().lstrip("-").isdigit():
        devices = int(devices)
    if devices in ("auto", -1):
        from splade_exp.devices import visible_gpus

        devices = visible_gpus(tcfg.accelerator)
    elif not isinstance(devices, int):  # a list of device indices
        devices = len(devices)
    return max(int(devices), 1) * int(tcfg.num_nodes)


def _externally_launched() -> bool:
    """Whether something else started this job's ranks: submitit/torchrun (LOCAL_RANK), srun, torchelastic.

    Mirrors Lightning's SLURM detection (a job named bash/interactive is a shell, not a rank).
    """
    from lightning.fabric.plugins.environments import TorchElasticEnvironment

    env = os.environ
    srun = "SLURM_NTASKS" in env and env.get("SLURM_JOB_NAME") not in ("bash", "interactive")
    return "LOCAL_RANK" in env or srun or TorchElasticEnvironment.detect()


def _in_multirun() -> bool:
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN


def prepare_process(cfg) -> None:
    """Set up this process's rank from the launcher, or refuse a launch Lightning would get wrong."""
    env = _submitit_env()
    if env is not None and env.num_tasks > 1:
        from submitit.helpers import TorchDistributedEnvironment

        # GPUs stay visible: Lightning picks cuda:LOCAL_RANK itself.
        TorchDistributedEnvironment().export(set_cuda_visible_devices=False, overwrite=True)
    world = requested_processes(cfg.trainer)
    if world > 1 and not _externally_launched() and _in_multirun():
        raise RuntimeError(
            f"trainer.devices={cfg.trainer.devices} x trainer.num_nodes={cfg.trainer.num_nodes} inside a "
            "multirun (-m) with the local launcher: Lightning would start its own DDP processes, and each "
            "would re-execute the whole sweep. Run DDP sweeps with launcher=slurm_multigpu (one srun task "
            "per rank; set hydra.launcher.tasks_per_node/nodes, trainer.devices follows) or "
            "launcher=submitit_local hydra.launcher.tasks_per_node=N; or run one job without -m."
        )


class PreemptionCheckpoint(L.Callback):
    """On the pre-timeout signal: save ``path`` at the next batch boundary, then let submitit requeue.

    Active only where a Python handler for the signal already exists (submitit installs one in
    every job); elsewhere the signal keeps its default action.
    """

    def __init__(self, path: str | os.PathLike, signum: int | None = None) -> None:
        self.path = Path(path)
        self.signum = signum
        self._previous = None
        self._pending = None  # (signum, frame) once the signal has arrived
        self._trainer = None

    # --- the signal --------------------------------------------------------------------------------
    def _install(self) -> None:
        sig = self.signum if self.signum is not None else preempt_signal()
        previous = signal.getsignal(sig)
        if not callable(previous):
            return
        self.signum, self._previous, self._pending = sig, previous, None
        signal.signal(sig, self._record)

    def _record(self, signum, frame) -> None:
        step = self._trainer.global_step if self._trainer is not None else -1
        log.warning("received %s after %d steps: saving %s at the end of the current step",
                    signal.Signals(signum).name, step, self.path)
        self._pending = (signum, frame)

    def _restore(self):
        """Put the previous handler back; return it (None if this callback was not installed)."""
        previous, self._previous = self._previous, None
        if previous is not None:
            signal.signal(self.signum, previous)
        return previous

    def _hand_over(self, previous) -> None:
        signum, frame = self._pending or (self.signum, None)
        self._pending = None
        previous(signum, frame)  # submitit: launcher.checkpoint(), scontrol requeue, sys.exit

    # --- Lightning hooks ---------------------------------------------------------------------------
    # Installed once training starts, i.e. after Lightning's signal connector has recorded the
    # handlers it restores at teardown (submitit's), and removed when training ends or fails.
    def on_train_start(self, trainer, pl_module) -> None:
        self._trainer = trainer
        self._install()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if self._signalled(trainer):
            self._save_and_requeue(trainer)

    def on_train_end(self, trainer, pl_module) -> None:
        if self._signalled(trainer):
            self._save_and_requeue(trainer)
        self._restore()
        self._trainer = None

    def on_exception(self, trainer, pl_module, exception: BaseException) -> None:
        from lightning.pytorch.utilities.exceptions import SIGTERMException

        self._restore()
        self._trainer = None
        if isinstance(exception, SIGTERMException):
            self._save_alone(trainer)

    def _save_alone(self, trainer) -> None:
        """Rank 0 writes ``path`` without a collective (``trainer.save_checkpoint`` ends in a barrier
        that ranks which stopped at another step would never reach). Every rank holds the same
        parameters and optimizer state after a step, so rank 0's state is the job's."""
        if not trainer.is_global_zero:
            return
        checkpoint = trainer._checkpoint_connector.dump_checkpoint(weights_only=False)
        trainer.strategy.checkpoint_io.save_checkpoint(checkpoint, self.path)  # atomic (stages/fit.py)
        log.warning("SIGTERM: saved %s at step %d", self.path, trainer.global_step)

    def _signalled(self, trainer) -> bool:
        """Whether any rank has received the signal (ranks get it at different steps)."""
        if self._previous is None:
            return False
        pending = self._pending is not None
        if trainer.world_size > 1:
            pending = bool(trainer.strategy.reduce_boolean_decision(pending, all=False))
        return pending

    def _save_and_requeue(self, trainer) -> None:
        previous = self._restore()
        # every rank calls it, rank 0 writes; atomic through the trainer's checkpoint IO (stages/fit.py)
        trainer.save_checkpoint(self.path)
        if trainer.is_global_zero:
            log.warning("saved %s at step %d; handing over to the requeue handler", self.path, trainer.global_step)
        self._hand_over(previous)
