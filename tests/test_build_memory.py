"""What the artifact builds leave behind is freed before fine-tuning starts.

The backbone warm-up and the EMLM pretraining each run a Lightning trainer whose module, trainer
and AdamW state sit in reference cycles after the build returns: without a collection they would
stay allocated beside fine-tuning's own optimizer (1.5 GB of AdamW state at BERT-base under a 100K
head; benchmarks/paper_shape.py)."""
import gc

import lightning as L
import pytest
import torch

from conftest import compose_cfg
from splade_exp import run as pipeline
from splade_exp.stages.emlm import EmlmModule


class Stop(Exception):
    pass


def test_no_build_trainer_or_optimizer_is_alive_when_fine_tuning_starts(tmp_path, monkeypatch):
    cfg = compose_cfg(["+experiment=smoke", "logger=none", "model=esplade_100k", "vocab.size=300",
                       "backbone.mlm.steps=2", "pretrain.steps=2", "pretrain.batch_size=8", "pretrain.val_size=8",
                       "pretrain.stats_docs=8", "pretrain.warmup_steps=1"], tmp_path)
    seen = {}

    def train_splade(*args, **kwargs):
        objects = gc.get_objects()
        seen["modules"] = sum(isinstance(o, EmlmModule) for o in objects)
        seen["trainers"] = sum(isinstance(o, L.Trainer) for o in objects)
        seen["optimizers"] = sum(isinstance(o, torch.optim.Optimizer) for o in objects)
        raise Stop

    monkeypatch.setattr(pipeline, "train_splade", train_splade)
    with pytest.raises(Stop):
        pipeline.run(cfg)
    built = {a.split("/")[0] for a in pipeline.artifacts.built}
    assert {"backbone", "emlm"} <= built, "both builds ran in this process"
    assert seen == {"modules": 0, "trainers": 0, "optimizers": 0}
