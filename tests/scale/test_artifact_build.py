"""An artifact build inside one rank of a multi-rank job trains alone (splade_exp/artifacts.py).

Every rank of a ``slurm_multigpu`` job runs ``run()``; the one that takes an artifact's lock builds
it while the others wait on the lock. A build trainer configured for the job's ranks would wait in
its process-group rendezvous for ranks that are waiting on the lock: a deadlock. Here the process
carries the variables of rank 1 of a 2-task srun job, as ``launch.prepare_process`` leaves them,
and a process-group rendezvous raises instead of blocking, so a regression fails at once.
``tests/scale/test_slurm_array.py`` runs the real two-rank job.
"""
from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
import torch.distributed as dist
from lightning.pytorch.plugins.environments import SLURMEnvironment
from lightning.pytorch.strategies import DDPStrategy, SingleDeviceStrategy
from omegaconf import OmegaConf

from splade_exp.stages.fit import SingleProcessEnvironment, make_trainer

RANK1_OF_2 = {  # srun task 1 of 2 on one node, after prepare_process exported the torch variables
    "SLURM_JOB_ID": "7", "SLURM_JOB_NAME": "smoke", "SLURM_NTASKS": "2", "SLURM_NTASKS_PER_NODE": "2",
    "SLURM_NNODES": "1", "SLURM_NODEID": "0", "SLURM_PROCID": "1", "SLURM_LOCALID": "1",
    "SLURM_NODELIST": "localhost", "RANK": "1", "LOCAL_RANK": "1", "WORLD_SIZE": "2", "LOCAL_WORLD_SIZE": "2",
    "NODE_RANK": "0", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "29512",
}
TCFG = OmegaConf.create({"accelerator": "cpu", "devices": 2, "num_nodes": 1, "strategy": "ddp",
                         "precision": "32-true", "accumulate_grad_batches": 1, "gradient_clip_val": 1.0,
                         "log_every_n_steps": 1, "enable_progress_bar": False})


@pytest.fixture
def rank1(monkeypatch):
    from lightning.pytorch.utilities.rank_zero import rank_zero_only
    from lightning_utilities.core.rank_zero import rank_zero_only as utils_rank_zero_only

    for key, value in RANK1_OF_2.items():
        monkeypatch.setenv(key, value)
    for fn in (rank_zero_only, utils_rank_zero_only):  # a DDP trainer sets them to its rank: restored after
        monkeypatch.setattr(fn, "rank", fn.rank)

    def no_rendezvous(*args, **kwargs):
        raise AssertionError("an artifact build formed a process group: it would wait for the other ranks")

    monkeypatch.setattr(torch.distributed, "init_process_group", no_rendezvous)
    assert not dist.is_initialized()


def test_the_job_trainer_joins_both_ranks_the_build_trainer_only_this_process(rank1, tmp_path):
    job = make_trainer(TCFG, tmp_path, 2)  # fine-tuning: rank 1 of 2 through Slurm
    assert isinstance(job.strategy, DDPStrategy) and isinstance(job.strategy.cluster_environment, SLURMEnvironment)
    assert (job.world_size, job.global_rank) == (2, 1)
    build = make_trainer(TCFG, tmp_path, 2, single_process=True)
    assert isinstance(build.strategy, SingleDeviceStrategy)
    assert isinstance(build._accelerator_connector.cluster_environment, SingleProcessEnvironment)
    assert (build.world_size, build.global_rank, build.local_rank, build.num_devices) == (1, 0, 0, 1)


def test_the_backbone_warm_up_runs_alone_in_rank_1(rank1, tmp_path):
    """The build that deadlocked, for real: MLM warm-up of the offline backbone, then a saved model."""
    from splade_exp.models.backbone import load_masked_lm
    from splade_exp.stages.backbone_mlm import build_tiny_backbone

    texts = [f"{a} {b} {c}" for a in ("alpha", "beta", "gamma") for b in ("river", "stone") for c in ("runs", "falls")]
    bcfg = OmegaConf.create({"tokenizer": {"vocab_size": 50, "lowercase": True},
                             "config": {"hidden_size": 16, "num_hidden_layers": 1, "num_attention_heads": 2,
                                        "intermediate_size": 32, "max_position_embeddings": 32},
                             "mlm": {"steps": 2, "lr": 1e-3, "batch_size": 4, "max_length": 16}})
    out = tmp_path / "backbone"
    out.mkdir()
    build_tiny_backbone(out, bcfg, TCFG, SimpleNamespace(corpus=dict(enumerate(texts)), general_path=None), 0)
    assert not dist.is_initialized()
    model, _ = load_masked_lm(str(out))
    assert model.config.hidden_size == 16 and not (out / "checkpoints").exists()
