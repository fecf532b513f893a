"""The training objective as configured objects: SpladeModule sums whatever ranking loss and
regularisers the ``loss`` group builds, including classes it has never seen (defined here only)."""
from pathlib import Path

import pandas as pd
import pytest
import torch
from omegaconf import OmegaConf
from torch import nn

from conftest import CONF, compose_cfg
from splade_exp.losses import LossBatch, in_batch_cross_entropy
from splade_exp.regularizers import FlopsPerSide
from splade_exp.run import run
from splade_exp.stages.splade import SpladeModule, build_objective

LOSSES = sorted(p.stem for p in (Path(CONF) / "loss").glob("*.yaml"))


class TableEncoder(nn.Module):
    """Returns a fixed vector per text: row ``input_ids[i, 0]`` of ``table``."""

    def __init__(self, table) -> None:
        super().__init__()
        self.table = nn.Parameter(torch.tensor(table))

    def forward(self, input_ids, attention_mask, topk: int = 0):
        return self.table[input_ids[:, 0]]


def _batch(q_rows, d_rows, keys):
    ids = lambda rows: torch.tensor(rows).unsqueeze(1)  # noqa: E731
    return {"q_input_ids": ids(q_rows), "q_attention_mask": torch.ones(len(q_rows), 1),
            "d_input_ids": ids(d_rows), "d_attention_mask": torch.ones(len(d_rows), 1),
            "doc_keys": torch.tensor(keys), "pos_index": torch.arange(len(q_rows))}


def test_module_adds_ranking_loss_and_regularisers():
    # table rows: q0 = (1, 0), q1 = (0, 1), d0 = (2, 0), d1 = (0, 1)
    # CE: q0 scores (2, 0) -> log(1 + e^-2) = 0.126928; q1 (0, 1) -> log(1 + e^-1) = 0.313262; mean 0.220095
    # FLOPS(Q): mean |q| = (0.5, 0.5) -> 0.5; FLOPS(D): mean |d| = (1, 0.5) -> 1.25
    # reg = 0.1·0.5 + 0.2·1.25 = 0.3; loss = 0.520095
    enc = TableEncoder([[1.0, 0.0], [0.0, 1.0], [2.0, 0.0], [0.0, 1.0]])
    module = SpladeModule(enc, regularizers={"flops": FlopsPerSide(0.1, 0.2)})
    out, synced = module.compute_loss(_batch([0, 1], [2, 3], [10, 11]))
    assert out["rank_loss"].item() == pytest.approx(0.220095, abs=1e-6)
    assert out["reg"].item() == pytest.approx(0.3) and out["loss"].item() == pytest.approx(0.520095, abs=1e-6)
    assert (out["flops_q"].item(), out["flops_d"].item()) == pytest.approx((0.5, 1.25))
    assert (out["lambda_q"], out["lambda_d"]) == pytest.approx((0.1, 0.2))
    assert synced == {"loss", "rank_loss"}  # per-rank means; the rest is computed on the global batch


class Probe(nn.Module):
    """A regulariser that logs a name the module already uses."""

    def forward(self, batch):
        return {"loss": batch.q_all.sum() * 0, "flops_q": 1.0}


def test_a_term_name_used_twice_is_an_error_naming_the_regulariser():
    enc = TableEncoder([[1.0, 0.0], [0.0, 1.0], [2.0, 0.0], [0.0, 1.0]])
    module = SpladeModule(enc, regularizers={"probe": Probe()})
    with pytest.raises(ValueError, match=r"loss.regularizers.probe logs \['flops_q'\]"):
        module.compute_loss(_batch([0, 1], [2, 3], [10, 11]))


@pytest.mark.parametrize("name", LOSSES)
def test_every_loss_file_builds_its_objects(name, tmp_path):
    cfg = compose_cfg([f"loss={name}"], tmp_path)
    assert "_target_" in cfg.loss.ranking and all("_target_" in r for r in cfg.loss.regularizers.values() if r)
    ranking, regularizers = build_objective(cfg.loss)
    assert isinstance(ranking, nn.Module) and regularizers and all(isinstance(r, nn.Module) for r in regularizers.values())


def test_a_bad_value_names_its_key(tmp_path):
    cfg = compose_cfg(["model=esplade_100k", "loss.joint_docs=negatives"], tmp_path)
    with pytest.raises(ValueError, match=r"loss.regularizers.jflops: .*joint_docs.*'negatives'"):
        build_objective(cfg.loss)


# --------------------------------------------------------------------------- new classes train
class ScaledCrossEntropy(nn.Module):
    """A ranking loss defined only in this test module: ``factor`` × in-batch CE."""

    calls = 0

    def __init__(self, factor: float) -> None:
        super().__init__()
        self.factor = factor

    def forward(self, batch: LossBatch):
        type(self).calls += 1
        ce = in_batch_cross_entropy(batch.q, batch.d_all, batch.pos_index, batch.doc_keys)
        return {"loss": self.factor * ce, "probe_ce": ce}


class MeanWeight(nn.Module):
    """A regulariser defined only in this test module: ``weight`` × the mean document weight."""

    def __init__(self, weight: float) -> None:
        super().__init__()
        self.weight = weight

    def forward(self, batch: LossBatch):
        mean = batch.d_all.mean()
        return {"loss": self.weight * mean, "mean_weight": mean}


def _train_log(cfg) -> pd.DataFrame:
    from splade_exp.run import run_id

    logs = list((Path(cfg.paths.runs_dir) / run_id(cfg) / "logs").glob("version_*/metrics.csv"))
    assert len(logs) == 1, logs
    return pd.read_csv(logs[0]).dropna(subset=["train/loss"]).set_index("step")


SMOKE = ["+experiment=smoke", "logger=csv", "trainer.max_steps=4", "trainer.log_every_n_steps=1"]


@pytest.mark.slow
def test_a_loss_and_a_regulariser_defined_in_a_test_module_train_end_to_end(tmp_path):
    ScaledCrossEntropy.calls = 0
    cfg = compose_cfg([*SMOKE, f"loss.ranking._target_={__name__}.ScaledCrossEntropy", "+loss.ranking.factor=2.0",
                       f"+loss.regularizers.mean_weight={{_target_: {__name__}.MeanWeight, weight: 0.01}}"], tmp_path)
    frame = run(cfg)
    assert (frame.status == "completed").all() and frame["mrr@10"].notna().all()
    assert ScaledCrossEntropy.calls == 4
    log = _train_log(cfg)
    assert list(log.index) == [0, 1, 2, 3]
    assert log["train/rank_loss"].to_numpy() == pytest.approx(2 * log["train/probe_ce"].to_numpy(), rel=1e-5)
    # reg = FLOPS term (lambda 0 at step 0 of the ramp) + 0.01 x mean weight: both regularisers ran
    assert log.loc[0, "train/reg"] == pytest.approx(0.01 * log.loc[0, "train/mean_weight"], rel=1e-4)
    assert log["train/loss"].to_numpy() == pytest.approx((log["train/rank_loss"] + log["train/reg"]).to_numpy(), rel=1e-5)
    assert frame["cfg.loss.ranking._target_"].iloc[0] == f"{__name__}.ScaledCrossEntropy"


@pytest.mark.slow
def test_distillation_on_the_synthetic_teacher_trains_end_to_end(tmp_path):
    cfg = compose_cfg([*SMOKE, "loss=margin_mse_ce", "+data.source.n_teacher_negatives=4",
                       "data.distillation=distillation.jsonl", "data.num_negatives=2"], tmp_path)
    frame = run(cfg)
    assert (frame.status == "completed").all() and frame["mrr@10"].notna().all()
    log = _train_log(cfg)
    # rank_loss = 1.0 x MarginMSE + 0.1 x in-batch CE (conf/loss/margin_mse_ce.yaml)
    expected = log["train/margin_mse"] + 0.1 * log["train/ce"]
    assert log["train/rank_loss"].to_numpy() == pytest.approx(expected.to_numpy(), rel=1e-5)
    assert (log["train/margin_mse"] > 0).all() and (log["train/ce"] > 0).all()
    assert OmegaConf.select(cfg, "loss.ranking.weights.ce") == 0.1
