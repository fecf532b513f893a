from pathlib import Path

import pandas as pd
import pytest

from splade_exp.analysis import load_curves, load_results

from analysis_fixtures import results_dir  # noqa: F401  (fixture)


def test_ignores_incomplete_files_and_types_columns(results_dir):
    df = load_results(results_dir)
    ids = set(df["run_id"])
    assert "v-partial" not in ids and "v-hidden" not in ids
    assert {"v-bert30k-s0", "v-old-s0", "h-distilbert-k16", "bm25-msmarco-dev"} <= ids
    assert str(df["qk"].dtype) == "Int64" and str(df["dk"].dtype) == "Int64"
    assert str(df["diverged_step"].dtype) == "Int64"
    for col in ("mrr@10", "flops", "posting_var", "head_k", "emlm.accuracy"):
        assert df[col].dtype == float
    assert df["vocab"].map(type).eq(str).all()
    assert df["diverged"].dtype == bool


def test_flags_diverged_and_fills_old_files(results_dir):
    df = load_results(results_dir)
    runs = df.drop_duplicates("run_id").set_index("run_id")
    assert runs.loc["h-distilbert-k16", "diverged"]
    assert runs.loc["h-distilbert-k16", "diverged_step"] == 1200
    assert not runs.loc["v-bert30k-s0", "diverged"]
    assert runs.loc["h-bert-k64", "status"] == "failed"
    # the old file has no status/system/diagnostics columns
    assert runs.loc["v-old-s0", "status"] == "completed"
    assert runs.loc["v-old-s0", "system"] == "splade"
    assert pd.isna(runs.loc["v-old-s0", "head.norm_after"])


def test_bm25_deduplicated(results_dir):
    df = load_results(results_dir)
    bm = df[df["system"] == "bm25"]
    assert len(bm) == 1
    assert bm["qk"].iloc[0] == 0 and bm["dk"].iloc[0] == 0


def test_missing_and_empty_directories(tmp_path):
    missing = tmp_path / "nope"
    with pytest.raises(FileNotFoundError, match="nope"):
        load_results(missing)
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "x.parquet.tmp").write_bytes(b"")
    with pytest.raises(ValueError, match=str(empty)):
        load_results(empty)


def test_load_curves(results_dir, tmp_path):
    curves = load_curves(results_dir)
    assert set(curves["artifact_id"]) == {"emlm-lr1", "emlm-lr5"}
    assert set(curves["split"]) == {"train", "val"}
    assert str(curves["step"].dtype) == "Int64"
    # curves are not run results
    assert "emlm-lr1" not in set(load_results(results_dir)["run_id"])
    empty = tmp_path / "nocurves"
    empty.mkdir()
    assert load_curves(empty).empty


def test_load_wandb_with_a_fake_api(monkeypatch):
    import sys
    import types

    class Run:
        def __init__(self, rid, state, config, summary):
            self.id, self.state, self.config, self.summary, self.sweep = rid, state, config, summary, None

    runs = [
        Run("a", "finished", {"vocab": "bert-30k", "pretrain": {"lr": 1e-4}},
            {"results": [{"qk": 0, "dk": 0, "mrr@10": 0.35, "flops": 1.2},
                         {"qk": 5, "dk": 10, "mrr@10": 0.3, "flops": 0.2}]}),
        Run("b", "crashed", {"vocab": "bert-100k"}, {"mrr@10": 0.2, "_step": 3}),
    ]
    seen = {}

    class Api:
        def runs(self, path, filters=None):
            seen["path"] = path
            return runs

    monkeypatch.setitem(sys.modules, "wandb", types.SimpleNamespace(Api=Api))
    from splade_exp.analysis import load_wandb

    df = load_wandb("proj", entity="team")
    assert seen["path"] == "team/proj"
    assert len(df) == 3 and str(df["qk"].dtype) == "Int64"
    a = df[df["run_id"] == "a"].sort_values("dk")
    assert list(a["mrr@10"]) == [0.35, 0.3] and (a["cfg.pretrain.lr"] == 1e-4).all()
    assert (a["vocab"] == "bert-30k").all() and (a["status"] == "completed").all()
    assert df.loc[df["run_id"] == "b", "status"].item() == "failed"
