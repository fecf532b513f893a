"""The whole pipeline on a tiny collection and model: results rows, metric ranges, frontier shape."""
import pandas as pd
import pytest

from conftest import compose_cfg
from splade_exp.results import read_results
from splade_exp.run import results_path, run, run_id


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    root = tmp_path_factory.mktemp("e2e")
    cfg = compose_cfg(["+experiment=smoke", "logger=none"], root)
    frame = run(cfg)
    return cfg, frame, root


def test_one_row_per_pruning_point(smoke):
    cfg, frame, _ = smoke
    assert list(zip(frame.qk, frame.dk)) == [(0, 0), (7, 20), (5, 20), (5, 10)]
    assert (frame.status == "completed").all()
    assert frame.run_id.nunique() == 1 and frame.run_id.iloc[0] == run_id(cfg)
    for col in ("vocab", "init", "loss", "backbone", "cfg.trainer.max_steps", "wall_time_s"):
        assert col in frame.columns


def test_results_file_written_and_readable(smoke):
    cfg, frame, _ = smoke
    on_disk = read_results(results_path(cfg, run_id(cfg)))
    assert len(on_disk) == 4
    assert not list(results_path(cfg, run_id(cfg)).parent.glob(".*.tmp"))


def test_metrics_in_range_and_pruning_bounds_l0(smoke):
    _, frame, _ = smoke
    for col in ("mrr@10", "recall@10", "recall@100", "ndcg@10"):
        assert frame[col].between(0, 1).all(), col
    assert frame["recall@100"].ge(frame["recall@10"] - 1e-9).all()
    pruned = frame[frame.qk > 0]
    assert (pruned.l0_q <= pruned.qk + 1e-9).all() and (pruned.l0_d <= pruned.dk + 1e-9).all()


def test_flops_falls_as_pruning_tightens(smoke):
    _, frame, _ = smoke
    f = frame.set_index(["qk", "dk"])["flops"]
    assert f[(0, 0)] >= f[(7, 20)] >= f[(5, 20)] >= f[(5, 10)]
    assert f[(0, 0)] > f[(5, 10)]


def test_bm25_baseline_written(smoke):
    cfg, _, root = smoke
    files = list((root / "results" / cfg.sweep).glob("bm25-*.parquet"))
    assert len(files) == 1
    bm25 = read_results(files[0])
    assert bm25.system.iloc[0] == "bm25"
    assert 0 < bm25["mrr@10"].iloc[0] <= 1 and bm25["flops"].iloc[0] > 0


def test_finished_run_is_skipped(smoke):
    cfg, frame, _ = smoke
    path = results_path(cfg, run_id(cfg))
    before = path.stat().st_mtime_ns
    again = run(cfg)
    assert path.stat().st_mtime_ns == before
    pd.testing.assert_frame_equal(again.reset_index(drop=True), read_results(path))
