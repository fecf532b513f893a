"""Teacher scores for distillation: both file formats, batches that carry them, clear errors."""
from __future__ import annotations

import gzip
import json

import pytest
import torch
from omegaconf import OmegaConf

from data_toys import QUERIES, doc_text, write_beir, write_jsonl, write_msmarco
from splade_exp.data.collection import DataError
from splade_exp.data.sources import load_collection
from splade_exp.data.training import PairCollator, PairDataset

DISTIL = [{"qid": "q1", "pos": [["d1", 9.5]], "neg": [["d3", 2.0], ["d5", -1.0]]},
          {"qid": "q2", "pos": [["d2", 8]], "neg": [["007", 1.5]]},
          {"qid": "q4", "pos": [["007", 7.25]], "neg": [["d1", 0.5]]}]  # a query new to the train split


def beir_data(root, **extra):
    return OmegaConf.create({"source": {"_target_": "splade_exp.data.sources.Beir", "path": str(root)},
                             "eval_split": "test", "num_negatives": 1, **extra})


def msmarco_data(root, **extra):
    return OmegaConf.create({"source": {"_target_": "splade_exp.data.msmarco.MsMarco", "path": str(root),
                                        "queries": ["queries.train.tsv", "queries.dev.tsv"],
                                        "qrels": {"test": "qrels.dev.tsv"}, "triples": "triples.tsv",
                                        "triples_format": "ids"},
                             "eval_split": "test", "num_negatives": 1, **extra})


def test_json_lines_add_pairs_negatives_and_scores(tmp_path):
    root = write_beir(tmp_path / "beir")
    write_jsonl(root / "distil.jsonl", DISTIL)
    c = load_collection(beir_data(root, distillation="distil.jsonl"), tmp_path)
    assert c.qrels["train"] == {"q1": {"d1": 1}, "q2": {"d2": 1}, "q4": {"007": 1}}
    assert c.negatives == {"q1": ["d3", "d5"], "q2": ["007"], "q4": ["d1"]}
    assert c.teacher["q1"] == {"d1": 9.5, "d3": 2.0, "d5": -1.0} and c.teacher["q2"]["d2"] == 8.0
    assert root / "distil.jsonl" in c.files  # part of the collection's identity (tokens artifact key)

    items = [PairDataset(c, num_negatives=1, seed=0)[i] for i in range(3)]
    q1, q2, q4 = items  # train pairs in order: (q1, d1), (q2, d2), (q4, 007)
    assert q1[:2] == (QUERIES["q1"], doc_text("d1")) and q1[5][0] == 9.5 and q1[5][1] in (2.0, -1.0)
    assert q2[5] == [8.0, 1.5] and q4[5] == [7.25, 0.5]
    from splade_exp.models.backbone import train_wordpiece

    tok = train_wordpiece([doc_text(k) for k in ("d1", "d2", "d3")] * 3 + list(QUERIES.values()), vocab_size=80)
    batch = PairCollator(tok, 8, 8)(items)
    assert batch["teacher_scores"].dtype == torch.float32 and batch["teacher_scores"].shape == (3, 2)
    assert batch["teacher_scores"][1:].tolist() == [[8.0, 1.5], [7.25, 0.5]]


def test_qid_pid_score_file_gzip_spaces_header_keeps_only_sampled_pairs(tmp_path):
    root = write_msmarco(tmp_path / "ms")
    (root / "triples.tsv").write_text("q1\td1\td3\nq1\td1\td5\nq2\td2\t007\n")
    with gzip.open(root / "ce-scores", "wt") as fh:  # no .gz suffix: recognised by its bytes
        fh.write("qid pid score\nq1 d1 9.5\nq1  d3 2\nq1\td5\t-1e0\nq2 d2 8.0\nq2 007 1.5\nq3 d3 4.0\nq1 d2 0.1\n")
    c = load_collection(msmarco_data(root, teacher_scores="ce-scores"), tmp_path)
    # (q3, d3) and (q1, d2) are no training pair or hard negative: not kept
    assert c.teacher == {"q1": {"d1": 9.5, "d3": 2.0, "d5": -1.0}, "q2": {"d2": 8.0, "007": 1.5}}
    _, _, _, negs, _, scores = PairDataset(c, num_negatives=2, seed=1)[0]
    assert scores[0] == 9.5 and scores[1:] == [{doc_text("d3"): 2.0, doc_text("d5"): -1.0}[n] for n in negs]


def test_a_missing_score_names_the_file_and_the_pair(tmp_path):
    root = write_msmarco(tmp_path / "ms")
    (root / "triples.tsv").write_text("q1\td1\td3\nq1\td1\td5\nq2\td2\t007\n")
    (root / "scores.tsv").write_text("q1\td1\t9.5\nq1\td3\t2\nq2\td2\t8\nq2\t007\t1.5\n")
    with pytest.raises(DataError, match=r"scores.tsv: no teacher score for 1 .* query 'q1' and document 'd5'"):
        load_collection(msmarco_data(root, teacher_scores="scores.tsv"), tmp_path)
    # without hard negatives only the training pairs need scores
    c = load_collection(msmarco_data(root, teacher_scores="scores.tsv", num_negatives=0), tmp_path)
    assert PairDataset(c, num_negatives=0)[0][5] == [9.5]


def test_a_sampled_pair_without_score_is_an_error_when_drawn(tmp_path):
    root = write_beir(tmp_path / "beir")
    write_jsonl(root / "distil.jsonl", DISTIL)
    c = load_collection(beir_data(root, distillation="distil.jsonl"), tmp_path)
    del c.teacher["q2"]["007"]  # e.g. a negative added after the check
    with pytest.raises(DataError, match=r"distil.jsonl: no teacher score for the sampled pair query 'q2', document '007'"):
        PairDataset(c, num_negatives=1)[1]


@pytest.mark.parametrize("text,line,message", [
    ("q1\td1\t9.5\nq1\td3\nq1\td5\t1\n", 2, "expected 'qid pid score'"),
    ("q1\td1\t9.5\nq1\td3\tlots\n", 2, "score 'lots' is not a number"),
    ("q1\td1\tnan\n", 1, "not a finite number"),
    ("q1\td1\t9.5\nq1\td3\t2\nq1\td1\t9.0\n", 3, "scored 9.5 before"),
])
def test_a_malformed_scores_line_names_file_and_line(tmp_path, text, line, message):
    root = write_msmarco(tmp_path / "ms")
    (root / "triples.tsv").write_text("q1\td1\td3\nq1\td1\td5\n")
    (root / "scores.tsv").write_text(text)
    with pytest.raises(DataError, match=rf"scores.tsv:{line}: .*{message}"):
        load_collection(msmarco_data(root, teacher_scores="scores.tsv"), tmp_path)


@pytest.mark.parametrize("lines,line,message", [
    ([json.dumps(DISTIL[0]), '{"qid": "q2", "pos": [["d2", 8]'], 2, "malformed JSON"),
    ([json.dumps(DISTIL[0]), json.dumps({"qid": "q2", "neg": []})], 2, "expected an object"),
    ([json.dumps({"qid": "q1", "pos": [["d1"]]})], 1, "'pos' must be a list of \\[doc id, score\\] pairs"),
    ([json.dumps({"qid": "q1", "pos": [["d1", "high"]]})], 1, "score 'high' is not a number"),
    ([json.dumps({"qid": "q1", "pos": []})], 1, "'pos' is empty"),
    ([json.dumps(DISTIL[0]), json.dumps({"qid": "q9", "pos": [["d1", 1]]})], 2, "query id 'q9' is not in the queries"),
    ([json.dumps({"qid": "q1", "pos": [["d1", 1]], "neg": [["d99", 0]]})], 1, "document id 'd99' is not in the corpus"),
])
def test_a_malformed_json_line_names_file_and_line(tmp_path, lines, line, message):
    root = write_beir(tmp_path / "beir")
    (root / "distil.jsonl").write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match=rf"distil.jsonl:{line}: .*{message}"):
        load_collection(beir_data(root, distillation="distil.jsonl"), tmp_path)


def test_unknown_ids_are_dropped_on_request(tmp_path):
    root = write_beir(tmp_path / "beir")
    write_jsonl(root / "distil.jsonl", [*DISTIL, {"qid": "q9", "pos": [["d1", 1]]},
                                        {"qid": "q1", "pos": [["d1", 9.5]], "neg": [["d99", 0]]}])
    c = load_collection(beir_data(root, distillation="distil.jsonl", drop_unknown_qrels=True), tmp_path)
    assert "q9" not in c.qrels["train"] and c.negatives["q1"] == ["d3", "d5"]


def test_training_queries_need_scored_hard_negatives(tmp_path):
    root = write_beir(tmp_path / "beir")
    write_jsonl(root / "distil.jsonl", [DISTIL[0]])  # q2 keeps its train qrels pair but has no negatives
    with pytest.raises(DataError, match=r"1 training queries have no hard negative, e.g. 'q2'"):
        load_collection(beir_data(root, distillation="distil.jsonl"), tmp_path)


def test_a_missing_file_names_its_key(tmp_path):
    root = write_beir(tmp_path / "beir")
    with pytest.raises(DataError, match="data.distillation"):
        load_collection(beir_data(root, distillation="nope.jsonl"), tmp_path)
    # evaluation reads no teacher scores
    assert not load_collection(beir_data(root, distillation="nope.jsonl"), tmp_path, stage="evaluate").teacher


def test_teacher_files_are_part_of_the_data_identity(tmp_path):
    from splade_exp.data.identity import data_identity

    root = write_msmarco(tmp_path / "ms")
    (root / "triples.tsv").write_text("q1\td1\td3\n")
    (root / "scores.tsv").write_text("q1 d1 9.5\n")
    data = msmarco_data(root, teacher_scores="scores.tsv")
    before = data_identity(data, tmp_path / "cache")
    assert "teacher_scores" in before["inputs"]
    (root / "scores.tsv").write_text("q1 d1 9.0\n")  # a corrected teacher: a new identity
    assert data_identity(data, tmp_path / "cache") != before
