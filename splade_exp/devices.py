"""Which device a job computes on, in one place (``trainer.accelerator``: cpu, gpu, cuda or auto).

- :func:`uses_cuda`: the accelerator asks for GPUs and this machine has them (``auto`` falls back
  to the CPU);
- :func:`job_device`: the torch device of work done outside a Lightning trainer (encoding for
  evaluation): ``cuda`` -- the current device, which a DDP rank has set to its own -- or ``cpu``;
- :func:`own_device`: the ``devices`` of a single-process trainer (artifact builds inside a DDP job):
  this rank's own GPU (``LOCAL_RANK`` / ``SLURM_LOCALID``), else 1;
- :func:`visible_gpus`: how many GPUs ``devices=auto`` / ``-1`` means.
"""
from __future__ import annotations

import os

import torch

GPU_ACCELERATORS = ("gpu", "cuda", "auto")


def uses_cuda(accelerator: str) -> bool:
    return accelerator in GPU_ACCELERATORS and torch.cuda.is_available()


def job_device(accelerator: str) -> str:
    if accelerator in ("gpu", "cuda"):
        return "cuda"  # asked for explicitly: fail loudly on a machine without one
    return "cuda" if uses_cuda(accelerator) else "cpu"


def own_device(accelerator: str):
    if uses_cuda(accelerator):
        local = int(os.environ.get("LOCAL_RANK", os.environ.get("SLURM_LOCALID", "0")))
        return [local % torch.cuda.device_count()]
    return 1


def visible_gpus(accelerator: str) -> int:
    return torch.cuda.device_count() if accelerator in GPU_ACCELERATORS else 1
