"""Two runs that need the same EMLM pretraining: the first builds it, the second reuses it."""
import math

import pytest

from conftest import compose_cfg
from splade_exp.results import read_results
from splade_exp.run import run

TINY = [
    "+experiment=smoke", "logger=none", "model=esplade_100k", "trainer.max_steps=4",
    "vocab.size=150", "pretrain.corpus=in_domain", "pretrain.steps=6", "pretrain.batch_size=16",
    "pretrain.max_length=32", "pretrain.warmup_steps=1", "pretrain.val_size=32", "pretrain.val_every_n_steps=3",
    "pretrain.log_every_n_steps=2", "pretrain.stats_docs=24", "pretrain.stats_batch_size=8",
]
STATS = ["emlm.doc-score-avg@10", "emlm.doc-score-std@10", "emlm.doc-score-avg@100", "emlm.doc-score-std@100",
         "emlm.doc-score-avg@all", "emlm.doc-score-std@all", "emlm.logit-score-std", "emlm.logit-score-std-pooled",
         "emlm.non-neg-terms-avg", "emlm.non-neg-terms-std", "emlm.accuracy"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("emlm_reuse")
    first = run(compose_cfg(TINY, root))
    second = run(compose_cfg([*TINY, "stage=evaluate"], root))  # another run, same pretraining
    return root, first, second


def test_first_run_builds_the_vocabulary_and_the_emlm(runs):
    _, first, _ = runs
    built = first.artifacts_built.iloc[0].split(",")
    assert any(b.startswith("vocab/unigram-") for b in built)
    assert any(b.startswith("emlm/emlm-") for b in built)
    assert (first.vocab_size == 150).all() and (first.loss == "joint_flops").all()


def test_second_run_reuses_it(runs):
    root, first, second = runs
    assert first.run_id.iloc[0] != second.run_id.iloc[0]
    assert not any(b.startswith(("emlm/", "vocab/")) for b in second.artifacts_built.iloc[0].split(",") if b)
    assert second["emlm.artifact"].iloc[0] == first["emlm.artifact"].iloc[0]
    assert len([p for p in (root / "artifacts" / "emlm").iterdir() if not p.name.startswith(".")]) == 1
    for col in STATS:  # the same statistics, read back from the artifact
        assert second[col].iloc[0] == first[col].iloc[0]


def test_rows_carry_the_emlm_statistics(runs):
    _, first, _ = runs
    assert len(first) == 4  # one row per pruning point
    for col in STATS:
        assert math.isfinite(first[col].iloc[0]), col
    assert 0 <= first["emlm.accuracy"].iloc[0] <= 1
    assert 0 <= first["emlm.non-neg-terms-avg"].iloc[0] <= 150


def test_curves_file(runs):
    root, first, _ = runs
    name = first["emlm.artifact"].iloc[0]
    curves = read_results(root / "results" / "smoke" / f"{name}.curves.parquet")
    assert {"artifact_id", "pretrain", "cfg.pretrain.lr", "cfg.pretrain.corpus", "step", "split", "loss",
            "accuracy"} <= set(curves.columns)
    assert set(curves.split) == {"train", "val"}
    val = curves[curves.split == "val"]
    assert val.step.tolist() == [0, 3, 6]
    assert (curves.artifact_id == name).all() and curves.pretrain.iloc[0] == "emlm-in_domain-r1-lr0.0001"
