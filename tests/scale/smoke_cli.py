"""Launching the command line the way a user (or Slurm) does, for the kill-and-resume and W&B tests."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
RANK_ENV = ("RANK", "LOCAL_RANK", "WORLD_SIZE", "LOCAL_WORLD_SIZE", "NODE_RANK", "GROUP_RANK", "MASTER_ADDR",
            "MASTER_PORT")


def shared_artifacts(tmp_path_factory) -> Path:
    """One artifacts directory (collection, tiny backbone) for the command-line tests of a session."""
    return tmp_path_factory.getbasetemp() / "smoke-artifacts"


def launch(args: list[str], root: Path, artifacts: Path, log: Path, **env) -> subprocess.Popen:
    """``python -m splade_exp ARGS`` with ``SPLADE_EXP_ROOT=root``; output appended to ``log``."""
    # a plain local job: no rank or cluster variables inherited from the test process
    environ = {k: v for k, v in os.environ.items() if k not in RANK_ENV and not k.startswith(("SLURM_", "SUBMITIT_"))}
    environ.update({"SPLADE_EXP_ROOT": str(root), "HF_HUB_OFFLINE": "1", "WANDB_MODE": "offline",
                    "TOKENIZERS_PARALLELISM": "false", "OMP_NUM_THREADS": "1", **env})
    with open(log, "ab") as out:
        return subprocess.Popen([sys.executable, "-m", "splade_exp", *args, f"paths.artifacts_dir={artifacts}"],
                                cwd=REPO, env=environ, stdout=out, stderr=subprocess.STDOUT)


def tail(log: Path, n: int = 40) -> str:
    return "\n".join(log.read_text(errors="replace").splitlines()[-n:]) if log.exists() else "(no output)"
