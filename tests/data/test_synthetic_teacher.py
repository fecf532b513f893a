"""The synthetic collection's teacher: scores from the generator's latent relevance, mined hard
negatives, in the distillation JSON-lines format; the other files do not change."""
from __future__ import annotations

import json

from omegaconf import OmegaConf

from splade_exp.data.sources import load_collection
from splade_exp.data.synthetic import _teacher_jsonl, generate

SMALL = dict(n_docs=300, n_train_queries=200, n_dev_queries=30, n_test_queries=40, n_concepts=400, n_topics=8,
             n_general_paragraphs=60, n_names=300, n_general_words=300)


def test_teacher_formula_by_hand():
    # documents by concept: d0 {0, 1}, d1 {0}, d2 {2}, d3 {0, 1}; N = 4, df = 3, 2, 1
    # idf: c0 ln(4/3) = 0.287682, c1 ln 2 = 0.693147. Query q0 = {0, 1}, clicked d0:
    # t(q0, d0) = 0.980829; d3 expresses both concepts too (relevant: no negative); d1: 0.287682;
    # d2 shares nothing: padding with score 0.
    docs = [[(0, 0, 0), (1, 0, 0)], [(0, 0, 0)], [(2, 0, 0)], [(0, 1, 0), (1, 0, 1)]]
    line = json.loads(_teacher_jsonl(docs, [("train", "q0", [0, 1], 0), ("test", "q1", [2], 2)], 2))
    assert line == {"qid": "q0", "pos": [["d0", 0.9808]], "neg": [["d1", 0.2877], ["d2", 0.0]]}


def test_teacher_file_is_additive_and_consistent_with_the_clicks(tmp_path):
    plain = generate(tmp_path / "plain", seed=2, **SMALL)
    taught = generate(tmp_path / "taught", seed=2, n_teacher_negatives=4, **SMALL)
    assert not (plain / "distillation.jsonl").exists()
    for rel in ("corpus.jsonl", "queries.jsonl", "qrels/train.tsv", "qrels/dev.tsv", "qrels/test.tsv", "general.txt"):
        assert (plain / rel).read_bytes() == (taught / rel).read_bytes(), rel
    clicks = dict(line.split("\t")[:2] for line in (taught / "qrels/train.tsv").read_text().splitlines()[1:])
    rows = [json.loads(line) for line in (taught / "distillation.jsonl").read_text().splitlines()]
    assert [r["qid"] for r in rows] == list(clicks)
    for r in rows:
        (pos, top), negs = r["pos"][0], r["neg"]
        assert pos == clicks[r["qid"]] and len(negs) == 4 and pos not in {d for d, _ in negs}
        scores = [s for _, s in negs]
        assert scores == sorted(scores, reverse=True) and top > scores[0] >= 0
    assert sum(r["neg"][0][1] > 0 for r in rows) > 0.9 * len(rows)  # mined: they share concepts with the query
    assert generate(tmp_path / "again", seed=2, n_teacher_negatives=4, **SMALL).joinpath(
        "distillation.jsonl").read_bytes() == (taught / "distillation.jsonl").read_bytes()


def test_synthetic_source_with_teacher_loads_for_distillation(tmp_path):
    data = OmegaConf.create({"source": {"_target_": "splade_exp.data.sources.Synthetic", "seed": 1,
                                        "n_teacher_negatives": 3, **SMALL},
                             "eval_split": "test", "num_negatives": 2, "distillation": "distillation.jsonl"})
    c = load_collection(data, tmp_path)
    assert len(c.teacher) == SMALL["n_train_queries"] and all(len(c.negatives[q]) == 3 for q in c.teacher)
