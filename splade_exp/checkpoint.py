"""Reading checkpoints with errors a person can act on.

Writing is atomic elsewhere (``last.ckpt`` through ``stages/fit.AtomicCheckpointIO``, artifacts
through ``io.build_once``), so a damaged file means a disk problem, a copy cut short or a file
from outside; each reader here names the file and says what to delete or fix. Foreign weights are
read with safetensors (:func:`load_safetensors`); nothing here unpickles a file the run did not
write (Hugging Face backbones load through ``from_pretrained``, which prefers safetensors and
otherwise uses ``torch.load(weights_only=True)``).
"""
from __future__ import annotations

import os
import zipfile
from pathlib import Path

import torch

from splade_exp.errors import SpladeExpError


class CheckpointError(SpladeExpError, RuntimeError):
    """A checkpoint that cannot be read; the message names the file and what to delete."""


def check_torch_checkpoint(path: str | os.PathLike, remedy: str) -> Path:
    """Structural check of a ``torch.save`` file (a zip archive with a CRC per member).

    A truncated file has no central directory and a damaged one fails a CRC: both raise a
    CheckpointError naming ``path`` and the ``remedy``. Reads the file once.
    """
    path = Path(path)
    try:
        with zipfile.ZipFile(path) as zf:
            bad = zf.testzip()
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as err:
        raise CheckpointError(f"{path}: not a complete checkpoint ({err}); it is damaged or truncated. "
                              f"{remedy}") from None
    if bad is not None:
        raise CheckpointError(f"{path}: member {bad!r} fails its CRC check, the file is damaged. {remedy}")
    return path


def check_resume_checkpoint(path: str | os.PathLike) -> Path:
    """``runs/<run_id>/checkpoints/last.ckpt`` before resuming from it."""
    path = Path(path)
    run_dir = path.parent.parent
    return check_torch_checkpoint(path, f"Delete it to restart this run from scratch (rm {path}), or delete "
                                        f"the run directory ({run_dir})")


def load_safetensors(module: torch.nn.Module, file: str | os.PathLike, what: str, remedy: str) -> None:
    """``safetensors.torch.load_model`` with errors naming ``file``, ``what`` it is and the ``remedy``."""
    from safetensors import SafetensorError
    from safetensors.torch import load_model

    try:
        load_model(module, str(file))
    except SafetensorError as err:
        raise CheckpointError(f"{file}: {what} is damaged or truncated ({err}); {remedy}") from None
    except RuntimeError as err:  # missing/unexpected keys or shape mismatches
        lines = [line.strip() for line in str(err).splitlines() if line.strip()]
        raise CheckpointError(f"{file}: {what} does not fit this model ({' '.join(lines[:3])[:400]}); "
                              f"{remedy}") from None
