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
    files = [f for f in (root / "results" / cfg.sweep).glob("bm25-*.parquet") if ".perquery." not in f.name]
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


def test_per_query_metrics_average_to_the_rows_and_run_files_rank_them(smoke):
    from splade_exp.analysis import load_perquery, load_results
    from splade_exp.runfiles import read_trec, trec_path

    cfg, frame, root = smoke
    results = root / "results" / cfg.sweep
    per = load_perquery(results)
    assert set(per.system) == {"splade", "bm25"}
    mine = per[per.run_id == run_id(cfg)]
    assert len(mine) == 4 * cfg.data.source.n_test_queries  # every judged test query at every point
    means = mine.groupby(["qk", "dk"])[["mrr@10", "recall@10", "recall@100", "ndcg@10"]].mean()
    rows = frame.set_index(["qk", "dk"])
    for metric in means.columns:
        for point in means.index:
            assert means.loc[point, metric] == pytest.approx(rows.loc[point, metric], abs=1e-12)
    assert len(load_results(results)) == 5  # 4 grid points + BM25: per-query files are not rows
    for qk, dk in zip(frame.qk, frame.dk):
        run = read_trec(trec_path(results, run_id(cfg), qk, dk))
        assert 0 < len(run) <= cfg.data.source.n_test_queries
        assert max(len(docs) for docs in run.values()) <= 1000
    assert frame["latency_p50_ms"].gt(0).all() and frame["index_size_mb"].gt(0).all()  # the default engine
    assert frame["recall@1000_vs_exact"].between(0, 1).all()


def _shard_times(root, rid):
    return {p: p.stat().st_mtime_ns for p in (root / "runs" / rid / "vectors").rglob("shard-*.npz")}


def test_re_evaluation_reuses_the_stored_vectors(smoke):
    """The same trained weights evaluated again, relaunched with another engine and then with another
    grid (other eval ids, the same run id): no training, and nothing is encoded again."""
    cfg, frame, root = smoke
    rid = run_id(cfg)
    shards = _shard_times(root, rid)
    assert len(shards) == 2  # one shard of documents, one of queries
    again = run(compose_cfg(["+experiment=smoke", "logger=none", "eval/engine=exact"], root))
    assert _shard_times(root, rid) == shards  # nothing re-encoded
    assert again.run_id.iloc[0] == rid and "latency_p50_ms" not in again
    pd.testing.assert_series_equal(again["mrr@10"], frame["mrr@10"])
    evaluated = run(compose_cfg(["+experiment=smoke", "logger=none", "eval/engine=exact",
                                 "prune.grid=[[0,0],[3,6]]"], root))
    assert _shard_times(root, rid) == shards
    assert evaluated.run_id.iloc[0] == rid
    assert list(zip(evaluated.qk, evaluated.dk)) == [(0, 0), (3, 6)]
    assert evaluated["mrr@10"].iloc[0] == frame["mrr@10"].iloc[0]
    assert evaluated["recall@100"].iloc[0] == frame["recall@100"].iloc[0]
