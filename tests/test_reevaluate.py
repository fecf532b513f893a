"""Training identity vs evaluation identity: a launch that changes only how a trained run is
evaluated restores the final weights from ``last.ckpt`` and evaluates them again, without training."""
import pandas as pd
import pytest
import torch

from conftest import compose_cfg
from splade_exp import run as run_module
from splade_exp.results import read_results
from splade_exp.run import eval_id, results_path, run, run_id

SMOKE = ["+experiment=smoke", "logger=none", "trainer.max_steps=12", "trainer.checkpoint_every_n_steps=5"]
GRID = "prune.grid=[[0,0],[3,6]]"


def _no_training(*args, **kwargs):
    raise AssertionError("a finished run was trained again")


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("reeval")
    cfg = compose_cfg(SMOKE, root)
    frame = run(cfg)
    return root, cfg, frame


def test_a_finished_training_leaves_its_final_step_in_last_ckpt(trained):
    _, cfg, frame = trained
    last = run_module.last_checkpoint(run_module.Path(cfg.paths.runs_dir) / run_id(cfg))
    ckpt = torch.load(last, map_location="cpu", weights_only=False)
    assert ckpt["global_step"] == 12  # periodic saves were at 5 and 10
    assert ckpt["callbacks"]["CollapseDetector"]["diverged_step"] is None
    assert (frame.eval_id == eval_id(cfg)).all()


def test_changing_only_the_grid_evaluates_the_final_weights_again(trained, monkeypatch):
    root, cfg, first = trained
    last = run_module.last_checkpoint(run_module.Path(cfg.paths.runs_dir) / run_id(cfg))
    stamp = last.stat().st_mtime_ns
    monkeypatch.setattr(run_module, "train_splade", _no_training)
    other = compose_cfg([*SMOKE, GRID], root)
    assert run_id(other) == run_id(cfg) and eval_id(other) != eval_id(cfg)
    second = run(other)
    assert last.stat().st_mtime_ns == stamp
    assert list(zip(second.qk, second.dk)) == [(0, 0), (3, 6)]
    assert (second.eval_id == eval_id(other)).all() and (second.run_id == first.run_id.iloc[0]).all()
    # the same weights: the unpruned point measures exactly what the first evaluation measured
    cols = ["mrr@10", "recall@10", "ndcg@10", "flops", "l0_q", "l0_d"]
    pd.testing.assert_series_equal(second.loc[0, cols], first.loc[0, cols], check_names=False)
    assert second["head.logit_std_init"].iloc[0] == first["head.logit_std_init"].iloc[0]
    on_disk = read_results(results_path(cfg, run_id(cfg)))  # replaced, not appended to
    assert list(zip(on_disk.qk, on_disk.dk)) == [(0, 0), (3, 6)]
    out = results_path(cfg, run_id(cfg))
    stamp = out.stat().st_mtime_ns
    run(compose_cfg([*SMOKE, GRID], root))  # the same evaluation again: finished, nothing rewritten
    assert out.stat().st_mtime_ns == stamp


def test_a_diverged_run_stays_diverged_when_evaluated_again(tmp_path, monkeypatch):
    args = [*SMOKE, "trainer.collapse.inject_nan_at_step=3"]
    first = run(compose_cfg(args, tmp_path))
    assert (first.status == "diverged").all() and (first.diverged_step == 3).all()
    monkeypatch.setattr(run_module, "train_splade", _no_training)
    second = run(compose_cfg([*args, GRID], tmp_path))
    assert (second.status == "diverged").all() and (second.diverged_step == 3).all()
    assert list(zip(second.qk, second.dk)) == [(0, 0), (3, 6)]
    assert second.diverged_reason.iloc[0] == "non-finite loss"
