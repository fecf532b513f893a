"""Building Lightning trainers and data loaders from the ``trainer`` config group."""
from __future__ import annotations

from pathlib import Path

import lightning as L
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.plugins.environments import SLURMEnvironment
from torch.utils.data import DataLoader, Dataset


def make_trainer(tcfg, root_dir: Path, max_steps: int, logger=False, callbacks=(), checkpoint_every: int | None = None,
                 val_check_interval=None) -> L.Trainer:
    """A step-bounded trainer. With ``checkpoint_every`` it saves ``last.ckpt`` periodically."""
    callbacks = list(callbacks)
    if checkpoint_every:
        callbacks.append(ModelCheckpoint(dirpath=root_dir / "checkpoints", save_last=True, save_top_k=0,
                                         every_n_train_steps=checkpoint_every))
    plugins = []
    if SLURMEnvironment.detect():
        # submitit owns requeueing (it handles USR2 and resubmits); Lightning must not also.
        plugins.append(SLURMEnvironment(auto_requeue=False))
    return L.Trainer(
        accelerator=tcfg.accelerator,
        devices=tcfg.devices,
        num_nodes=tcfg.num_nodes,
        strategy=tcfg.strategy,
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
        plugins=plugins or None,
        val_check_interval=val_check_interval,
        limit_val_batches=None if val_check_interval else 0,
        num_sanity_val_steps=0,
    )


def loader(dataset: Dataset, batch_size: int, collate, shuffle: bool, num_workers: int, seed: int) -> DataLoader:
    import torch

    g = torch.Generator().manual_seed(seed)
    return DataLoader(dataset, batch_size=batch_size, shuffle=shuffle, collate_fn=collate, num_workers=num_workers,
                      drop_last=shuffle, generator=g, persistent_workers=num_workers > 0)
