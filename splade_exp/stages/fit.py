"""Building Lightning trainers and data loaders from the ``trainer`` config group.

SPLADE fine-tuning reads its data as *global* batches (:class:`GlobalBatchSampler`): the sequence
of global batches depends only on the dataset, ``trainer.batch_size`` and the seed, never on the
number of processes, and rank r of W takes rows ``[r·B/W, (r+1)·B/W)`` of each. With the gathers of
:mod:`splade_exp.stages.splade` a run therefore computes the same thing on 1 or W devices, and
``trainer.devices`` can stay out of the run id. The stream starts at the batch the restored global
step points to, so a run resumed from ``last.ckpt`` sees exactly the batches an uninterrupted run
would have seen next.
"""
from __future__ import annotations

import os
from pathlib import Path

import lightning as L
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.plugins.environments import ClusterEnvironment, SLURMEnvironment
from lightning.pytorch.plugins.io import TorchCheckpointIO
from torch.utils.data import DataLoader, Dataset, Sampler

from splade_exp.devices import own_device
from splade_exp.io import atomic_path


class AtomicCheckpointIO(TorchCheckpointIO):
    """Checkpoints written to a temporary sibling and renamed into place: a job killed while saving
    leaves the previous ``last.ckpt`` intact, never a truncated one (its temporary is removed when
    the run starts again). ``torch.save`` writes through a Python file object: given a path, its C++
    writer turns a full disk into ``basic_ios::clear: iostream error``; through a file object the
    OSError (ENOSPC) reaches :func:`splade_exp.io.atomic_path`, which names the file."""

    def save_checkpoint(self, checkpoint, path, storage_options=None) -> None:
        with atomic_path(path) as tmp, open(tmp, "wb") as fh:
            torch.save(checkpoint, fh)


class FinalCheckpoint(L.Callback):
    """Save ``path`` when training ends, at its final step: the periodic checkpoint is at a multiple
    of ``checkpoint_every_n_steps`` (or absent), and a diverged run stops between two. A finished
    training therefore always leaves its final weights and its callbacks' outcome (the collapse
    detector's verdict) in ``path``, and a later launch that only changes how the run is evaluated
    restores them instead of training again (``run.py``). Every rank calls it; rank 0 writes."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)

    def on_train_end(self, trainer, pl_module) -> None:
        trainer.save_checkpoint(self.path)


class SingleProcessEnvironment(ClusterEnvironment):
    """This process alone (world size 1, rank 0), whatever rank variables Slurm, submitit or torchrun set.

    For trainers that must not join the job's other ranks: artifact builds (:mod:`splade_exp.artifacts`).
    """

    @property
    def creates_processes_externally(self) -> bool:
        return True  # nothing to launch

    @property
    def main_address(self) -> str:
        return "127.0.0.1"

    @property
    def main_port(self) -> int:
        return 0

    @staticmethod
    def detect() -> bool:
        return False  # only ever passed explicitly

    def world_size(self) -> int:
        return 1

    def set_world_size(self, size: int) -> None:
        pass

    def global_rank(self) -> int:
        return 0

    def set_global_rank(self, rank: int) -> None:
        pass

    def local_rank(self) -> int:
        return 0

    def node_rank(self) -> int:
        return 0


def make_trainer(tcfg, root_dir: Path, max_steps: int, logger=False, callbacks=(), checkpoint_every: int | None = None,
                 val_check_interval=None, use_distributed_sampler: bool = True,
                 single_process: bool = False) -> L.Trainer:
    """A step-bounded trainer. With ``checkpoint_every`` it saves ``last.ckpt`` periodically.

    ``use_distributed_sampler=False`` when the loader already gives each rank its own rows
    (:class:`GlobalBatchData`); otherwise Lightning shards the loader with a ``DistributedSampler``.
    ``single_process=True``: one device, no process group, the rank variables ignored
    (:class:`SingleProcessEnvironment`) -- a trainer that runs inside one rank of a DDP job
    without waiting for the others (artifact builds); ``trainer.devices``/``num_nodes``/``strategy``
    do not apply to it.
    """
    callbacks = list(callbacks)
    if checkpoint_every:
        # no version counter: a run directory has one writer (the run lock), so never a last-v1.ckpt
        callbacks.append(ModelCheckpoint(dirpath=root_dir / "checkpoints", save_last=True, save_top_k=0,
                                         every_n_train_steps=checkpoint_every, enable_version_counter=False))
    plugins = [AtomicCheckpointIO()]
    devices, num_nodes, strategy = tcfg.devices, tcfg.num_nodes, tcfg.strategy
    if single_process:
        devices, num_nodes, strategy = own_device(tcfg.accelerator), 1, "auto"
        plugins.append(SingleProcessEnvironment())
    elif SLURMEnvironment.detect():
        # submitit owns requeueing (it handles USR2 and resubmits); Lightning must not also.
        plugins.append(SLURMEnvironment(auto_requeue=False))
    return L.Trainer(
        accelerator=tcfg.accelerator,
        devices=devices,
        num_nodes=num_nodes,
        strategy=strategy,
        precision=tcfg.precision,
        max_steps=max_steps,
        max_epochs=-1,
        accumulate_grad_batches=tcfg.accumulate_grad_batches,
        gradient_clip_val=tcfg.gradient_clip_val,
        log_every_n_steps=tcfg.log_every_n_steps,
        enable_progress_bar=tcfg.enable_progress_bar,
        enable_model_summary=False,
        enable_checkpointing=bool(checkpoint_every),
        default_root_dir=str(root_dir),
        logger=logger,
        callbacks=callbacks,
        plugins=plugins,
        val_check_interval=val_check_interval,
        limit_val_batches=None if val_check_interval else 0,
        num_sanity_val_steps=0,
        use_distributed_sampler=use_distributed_sampler,
    )


def loader(dataset: Dataset, batch_size: int, collate, shuffle: bool, num_workers: int, seed: int) -> DataLoader:
    g = torch.Generator().manual_seed(seed)
    return DataLoader(dataset, batch_size=batch_size, shuffle=shuffle, collate_fn=collate, num_workers=num_workers,
                      drop_last=shuffle, generator=g, persistent_workers=num_workers > 0)


class GlobalBatchSampler(Sampler[list[int]]):
    """An endless stream of global batches of ``batch_size`` rows; this rank's slice of each.

    Global batch t (counted from the start of training) is rows ``[p·B, (p+1)·B)`` of the
    permutation of epoch e, where ``e, p = divmod(t, len(dataset) // B)`` (the last partial batch of
    an epoch is dropped) and the permutation depends only on ``(seed, e)``. Rank r of W yields rows
    ``[r·B/W, (r+1)·B/W)`` of it. Iteration starts at global batch ``start``. With
    ``with_epoch`` each row is ``(epoch, index)``, for datasets whose items draw random numbers
    (``PairDataset``'s negatives): the position keys the draw.
    """

    def __init__(self, n_items: int, batch_size: int, seed: int = 0, shuffle: bool = True, start: int = 0,
                 rank: int = 0, world_size: int = 1, with_epoch: bool = False) -> None:
        if batch_size % world_size:
            raise ValueError(f"trainer.batch_size={batch_size} is the global batch: it must be divisible by the "
                             f"number of processes (trainer.devices x trainer.num_nodes = {world_size})")
        if n_items < batch_size:
            raise ValueError(f"trainer.batch_size={batch_size} exceeds the {n_items} training examples")
        self.n_items, self.batch_size, self.seed, self.shuffle = n_items, batch_size, seed, shuffle
        self.start, self.rank, self.world_size, self.with_epoch = start, rank, world_size, with_epoch

    def _order(self, epoch: int) -> torch.Tensor:
        if not self.shuffle:
            return torch.arange(self.n_items)
        return torch.randperm(self.n_items, generator=torch.Generator().manual_seed(self.seed + epoch))

    def __iter__(self):
        per_rank, n_batches = self.batch_size // self.world_size, self.n_items // self.batch_size
        t, epoch, order = self.start, None, None
        while True:
            e, p = divmod(t, n_batches)
            if e != epoch:
                epoch, order = e, self._order(e)
            rows = order[p * self.batch_size : (p + 1) * self.batch_size]
            mine = rows[self.rank * per_rank : (self.rank + 1) * per_rank].tolist()
            yield [(e, i) for i in mine] if self.with_epoch else mine
            t += 1


class WorkerSeed:
    """``worker_init_fn`` of training loaders: each worker's global generators seeded from (seed, rank,
    worker). Data code draws through ``seeding.rng(seed, position)`` and does not depend on them;
    this only makes anything that still reads a global generator in a worker reproducible, instead of
    inheriting whatever state the main process had when the workers started."""

    def __init__(self, seed: int, rank: int) -> None:
        self.seed, self.rank = int(seed), int(rank)

    def __call__(self, worker_id: int) -> None:
        from splade_exp.stages.seeding import derive_seed, seed_globals

        seed_globals(derive_seed(self.seed, "loader-worker", self.rank, worker_id))


class GlobalBatchData(L.LightningDataModule):
    """Training data as global batches of ``batch_size`` examples, split over the trainer's ranks.

    ``train_dataloader()`` runs in every rank after the checkpoint has been restored, so it knows
    the rank, the world size and how many batches the run has already consumed
    (``global_step × accumulate_grad_batches``).
    """

    def __init__(self, dataset: Dataset, collate, batch_size: int, seed: int = 0, num_workers: int = 0,
                 shuffle: bool = True) -> None:
        super().__init__()
        self.dataset, self.collate, self.batch_size = dataset, collate, batch_size
        self.seed, self.num_workers, self.shuffle = seed, num_workers, shuffle

    def loader(self, rank: int = 0, world_size: int = 1, start: int = 0) -> DataLoader:
        sampler = GlobalBatchSampler(len(self.dataset), self.batch_size, self.seed, self.shuffle, start, rank, world_size,
                                     with_epoch=getattr(self.dataset, "epoch_keyed", False))
        return DataLoader(self.dataset, batch_sampler=sampler, collate_fn=self.collate, num_workers=self.num_workers,
                          persistent_workers=self.num_workers > 0, worker_init_fn=WorkerSeed(self.seed, rank))

    def train_dataloader(self) -> DataLoader:
        t = self.trainer
        return self.loader(t.global_rank, t.world_size, start=t.global_step * t.accumulate_grad_batches)
