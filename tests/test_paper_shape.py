"""Every paper-scale experiment file composes and trains at its papers' model shapes on a CPU.

One job of each (``splade_exp.paper_shape``): the experiment file as written, with test-sized data
(200 MS MARCO-layout passages, a general corpus of 110K distinct words), 2 EMLM and 2 fine-tuning
steps at batch 8, and the hub backbone replaced by an offline build of its shape with random
weights -- BERT-base (12 layers, H = 768, 30,522 WordPieces) under a 100,000-word unigram head,
ModernBERT-base (22 layers, 50,368 terms, head norm 2.55) for the head scale. The three jobs share
one runs root, so the BERT-base build and the unigram vocabulary are made once.
"""
import json
from pathlib import Path

import pytest

from conftest import compose_cfg
from splade_exp.paper_shape import overrides, write_msmarco
from splade_exp.run import run

pytestmark = pytest.mark.slow
GRID = [(0, 0), (7, 20), (5, 20), (5, 10)]


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    root = tmp_path_factory.mktemp("paper-shape")
    write_msmarco(root / "data")
    return root


def paper_job(experiment: str, root: Path):
    data = next((root / "data").glob("paper-shape-msmarco-*"))
    cfg = compose_cfg([*overrides(experiment, data), "logger=none", "trainer.enable_progress_bar=false"], root)
    return cfg, run(cfg)


def built_config(root: Path, frame) -> dict:
    """config.json of the backbone this run built."""
    [name] = [a for a in frame["artifacts_built"].iloc[0].split(",") if a.startswith("backbone/")]
    return json.loads((root / "artifacts" / name / "config.json").read_text())


def check_rows(frame, vocab_size: int) -> None:
    assert list(zip(frame.qk, frame.dk)) == GRID
    assert (frame.status == "completed").all() and (frame.vocab_size == vocab_size).all()
    for col in ("mrr@10", "recall@10", "recall@100", "ndcg@10"):
        assert frame[col].between(0, 1).all(), col
    pruned = frame[frame.qk > 0]
    assert (pruned.l0_q <= pruned.qk).all() and (pruned.l0_d <= pruned.dk).all()
    f = frame.set_index(["qk", "dk"])["flops"]
    assert f[(0, 0)] >= f[(7, 20)] >= f[(5, 20)] >= f[(5, 10)] > 0


def test_vocab_ablation_esplade_job_at_bert_base_shape(root):
    cfg, frame = paper_job("vocab_ablation", root)
    assert cfg.sweep == "vocab_ablation" and cfg.model == "esplade-100K"
    check_rows(frame, 100_000)
    built = built_config(root, frame)
    assert (built["model_type"], built["num_hidden_layers"], built["hidden_size"]) == ("bert", 12, 768)
    assert built["vocab_size"] == 30_522
    row = frame.iloc[0]
    assert row["vocab.distinct_words"] >= 110_000 and row["emlm.distinct_texts"] == 16  # 2 steps x 8, R = 1
    assert (row["cfg.loss.topk_q"], row["cfg.loss.topk_d"], row["cfg.trainer.lr"]) == (1000, 2000, 2e-5)


def test_pretrain_study_general_corpus_job(root):
    cfg, frame = paper_job("pretrain_study", root)
    check_rows(frame, 100_000)
    row = frame.iloc[0]
    assert row["pretrain"] == "emlm-general-r1-lr0.001" and row["emlm.distinct_texts"] == 16
    built = row["artifacts_built"].split(",")
    assert not any(a.startswith(("backbone/", "vocab/")) for a in built), "the BERT-base build and vocabulary are reused"
    assert any(a.startswith("emlm/") for a in built), "its own pretraining"


def test_head_scale_job_at_modernbert_base_shape(root):
    cfg, frame = paper_job("head_scale", root)
    check_rows(frame, 50_368)
    built = built_config(root, frame)
    assert (built["model_type"], built["num_hidden_layers"], built["hidden_size"]) == ("modernbert", 22, 768)
    row = frame.iloc[0]
    assert row["head.norm_before"] == pytest.approx(2.55, rel=1e-4)  # ModernBERT-base's head norm
    assert row["head.norm_after"] == pytest.approx(2.55 / 16, rel=1e-4)  # divided by k = 16
