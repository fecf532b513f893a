"""Randomness as a function of (seed, position): resumed runs draw what uninterrupted runs draw.

A training run draws random numbers for dropout, sampled negatives and masking. If those came
from generators that advance with every draw, a run resumed from a checkpoint would restart them
from the seed (or need every generator's state in the checkpoint, one per process, one per data
loader worker). Here every draw is derived from *where* it happens instead:

- :class:`StepSeed` reseeds torch (CPU and every CUDA device), NumPy and Python's ``random``
  before each training batch from ``(seed, rank, optimizer step, micro-batch)``: dropout of step t
  is the same whether the run started at step 0 or resumed at step t - 5.
- :func:`rng` gives data code (collators, samplers; also inside loader workers) a generator for
  one position, e.g. ``rng(seed, "negatives", epoch, index)``.

Both hash their counters with blake2b, so the streams do not depend on Python's hash seed, the
number of processes that computed earlier steps, or the order in which positions are visited.
"""
from __future__ import annotations

import hashlib
import random

import lightning as L
import numpy as np
import torch


def derive_seed(*parts) -> int:
    """A 63-bit seed from ``parts`` (ints and strings), stable across processes and platforms."""
    text = "\x1f".join(f"{type(p).__name__}:{p}" for p in parts)
    return int.from_bytes(hashlib.blake2b(text.encode("utf-8"), digest_size=8).digest(), "little") >> 1


def rng(*parts) -> np.random.Generator:
    """A NumPy generator for one position of a random stream, e.g. ``rng(seed, "masking", step)``."""
    return np.random.default_rng(derive_seed(*parts))


def torch_generator(*parts) -> torch.Generator:
    """A CPU torch generator for one position of a random stream."""
    return torch.Generator().manual_seed(derive_seed(*parts))


def seed_globals(seed: int) -> None:
    """Seed torch (CPU and all CUDA devices), NumPy's legacy global generator and Python's random."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)  # also seeds every CUDA device


class StepSeed(L.Callback):
    """Reseed the global generators before every training batch from (seed, rank, step, micro-batch).

    ``stream`` names the stage (e.g. ``"splade"``, ``"emlm"``) so two stages of one run with the
    same seed do not share dropout masks. With gradient accumulation the micro-batch index is
    counted within the optimizer step; checkpoints are taken at step boundaries, so a resumed run
    starts at micro-batch 0 of its next step, as the uninterrupted run does.
    """

    def __init__(self, seed: int, stream: str) -> None:
        self.seed, self.stream = int(seed), stream
        self._step, self._micro = -1, 0

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        step = trainer.global_step
        self._micro = self._micro + 1 if step == self._step else 0
        self._step = step
        seed_globals(derive_seed(self.seed, self.stream, trainer.global_rank, step, self._micro))
