"""Every source (BEIR, MS MARCO TSVs, local files through `datasets`, click logs) reads the same toy
collection into the same Collection; triples, clicks and pre-tokenised batches."""
import json

import numpy as np
import pandas as pd
import pytest
import torch

from data_toys import DOCS, QRELS, QUERIES, doc_text, write_beir, write_jsonl, write_msmarco
from splade_exp import artifacts
from splade_exp.data.clicklog import ClickLog, query_id
from splade_exp.data.collection import load_beir
from splade_exp.data.hf import HfFiles
from splade_exp.data.msmarco import MsMarco, text_id
from splade_exp.data.sources import Beir, exclude_eval_docs
from splade_exp.data.training import PairCollator, PairDataset, training_tokens

EXPECTED_CORPUS = {k: doc_text(k) for k in DOCS}


def _same_as_toy(c):
    assert c.corpus == EXPECTED_CORPUS
    assert c.queries == QUERIES
    assert c.qrels == QRELS
    assert c.train_pairs() == [("q1", "d1"), ("q2", "d2")]


def test_beir_directory_with_trec_qrels(tmp_path):
    root = write_beir(tmp_path / "beir", trec_split="test")
    c = Beir(str(root), tmp_path).load()
    _same_as_toy(c)
    assert c.corpus["d5"] == "sleep improves memory consolidation"  # empty title: no leading space


def test_msmarco_tsvs_give_the_same_collection(tmp_path):
    root = write_msmarco(tmp_path / "ms")
    c = MsMarco(str(root), queries=["queries.train.tsv", "queries.dev.tsv"],
                qrels={"train": "qrels.train.tsv", "test": "qrels.dev.tsv"}).load()
    _same_as_toy(c)


def test_msmarco_id_triples_are_pairs_and_hard_negatives(tmp_path):
    root = write_msmarco(tmp_path / "ms")
    (root / "triples.tsv").write_text("q1\td1\td3\nq1\td1\td5\nq3\td3\t007\nq4\t007\td1\n")
    c = MsMarco(str(root), queries=["queries.train.tsv", "queries.dev.tsv"], qrels={"test": "qrels.dev.tsv"},
                triples="triples.tsv", triples_format="ids", max_triples=3).load()
    assert c.qrels["train"] == {"q1": {"d1": 1}, "q3": {"d3": 1}}  # the 4th line is past max_triples
    assert c.negatives == {"q1": ["d3", "d5"], "q3": ["007"]}
    ds = PairDataset(c, num_negatives=2, seed=0)
    q, d, _, negs, _ = ds[0]
    assert (q, d) == (QUERIES["q1"], doc_text("d1")) and set(negs) <= {doc_text("d3"), doc_text("d5")}


def test_msmarco_text_triples_become_training_only_documents(tmp_path):
    root = write_msmarco(tmp_path / "ms")
    (root / "triples.tsv").write_text("is aspirin safe\taspirin is safe\tstatins  lower cholesterol\n"
                                      "is aspirin safe\taspirin is safe\tinsulin is a hormone\n"
                                      "what lowers cholesterol\tstatins lower cholesterol\taspirin is safe\n")
    c = MsMarco(str(root), queries=["queries.train.tsv", "queries.dev.tsv"], qrels={"test": "qrels.dev.tsv"},
                triples="triples.tsv").load()
    qa, qb = text_id("t", "is aspirin safe"), text_id("t", "what lowers cholesterol")
    pa, ps, pi = text_id("p", "aspirin is safe"), text_id("p", "statins lower cholesterol"), \
        text_id("p", "insulin is a hormone")
    assert c.qrels["train"] == {qa: {pa: 1}, qb: {ps: 1}}
    assert c.negatives == {qa: [ps, pi], qb: [pa]}  # the same passage (two spaces or one) is one document
    assert c.train_docs == {pa: "aspirin is safe", ps: "statins lower cholesterol", pi: "insulin is a hormone"}
    assert c.corpus == EXPECTED_CORPUS  # training-only documents are not indexed


def test_hf_files_parquet_jsonl_tsv(tmp_path):
    root = tmp_path / "hf"
    root.mkdir()
    pd.DataFrame([{"doc": k, "title": t, "body": x} for k, (t, x) in DOCS.items()]).to_parquet(root / "docs.parquet")
    write_jsonl(root / "queries.jsonl", [{"_id": k, "text": v} for k, v in QUERIES.items()])
    for split, qrels in QRELS.items():  # ids such as 007 must keep their zeros
        (root / f"{split}.tsv").write_text("qid\tdocid\tgrade\n" + "".join(
            f"{q}\t{d}\t{g}\n" for q, docs in qrels.items() for d, g in docs.items()))
    c = HfFiles(corpus="docs.parquet", queries="queries.jsonl", qrels={"train": "train.tsv", "test": "test.tsv"},
                path=str(root), doc_id="doc", doc_text=["title", "body"], qrels_columns=["qid", "docid", "grade"],
                cache_dir=tmp_path / "cache").load()
    _same_as_toy(c)
    assert any((tmp_path / "cache" / "hf_datasets").iterdir())  # the Arrow cache later jobs reuse


def test_click_log_tsv_and_jsonl(tmp_path):
    root = write_beir(tmp_path / "beir")
    (root / "clicks.tsv").write_text("query\tdoc_id\tclicks\n"
                                     "aspirin  fever\td1\t2\n"
                                     "aspirin fever\td1\t1\n"     # same query text: summed
                                     "aspirin fever\td2\t1\n"     # under min_clicks=2: not a pair
                                     "bones\t007\t5\n")
    c = ClickLog(str(root), "clicks.tsv", min_clicks=2).load()
    qa, qb = query_id("aspirin fever"), query_id("bones")
    assert c.qrels["train"] == {qa: {"d1": 3}, qb: {"007": 5}}
    assert c.queries[qa] == "aspirin fever" and c.qrels["test"] == QRELS["test"]
    write_jsonl(root / "clicks.jsonl", [{"query_id": "q1", "doc_id": "d1"}, {"query_id": "q1", "doc_id": "d1"},
                                        {"query": "sugar", "doc_id": "d3", "clicks": 0}])
    c = ClickLog(str(root), "clicks.jsonl").load()
    assert c.qrels["train"] == {"q1": {"d1": 2}}  # zero clicks is no pair
    assert c.train_pairs() == [("q1", "d1")]


def test_exclude_eval_docs_removes_pairs_on_judged_documents(tmp_path):
    root = write_beir(tmp_path / "beir")
    c = load_beir(root)
    c.qrels["train"] = {"q1": {"d1": 1, "d3": 1}, "q2": {"007": 1}, "q4": {"d5": 1}}
    # judged relevant in test: d3, 007 (d5 has grade 0 and stays)
    assert exclude_eval_docs(c, "test") == 2
    assert c.qrels["train"] == {"q1": {"d1": 1}, "q4": {"d5": 1}}


def test_sampled_negatives_depend_on_the_position_only(tmp_path):
    """Random negatives are drawn from (seed, epoch, item): the same in any order, any process, after a
    resume; another epoch draws again."""
    c = load_beir(write_beir(tmp_path / "beir"))
    ds = PairDataset(c, num_negatives=3, seed=5)
    forward = [ds[(e, i)][3] for e in range(3) for i in range(len(ds))]
    again = PairDataset(c, num_negatives=3, seed=5)
    backward = [again[(e, i)][3] for e in reversed(range(3)) for i in reversed(range(len(ds)))][::-1]
    assert forward == backward
    epochs = [tuple(tuple(ds[(e, 0)][3]) for _ in range(2)) for e in range(6)]
    assert len(set(epochs)) > 1  # a new draw per epoch
    assert ds[0][3] == ds[(0, 0)][3]  # a plain index is epoch 0


def test_loader_workers_give_the_batches_of_one_process(tmp_path):
    from splade_exp.stages.fit import GlobalBatchData

    c = load_beir(write_beir(tmp_path / "beir"))
    c.qrels["train"] = {q: {d: 1} for q, d in zip(["q1", "q2", "q3", "q4"], ["d1", "d2", "d3", "007"])}
    ds = PairDataset(c, num_negatives=2, seed=1)
    collate = lambda items: [(it[2], tuple(it[4])) for it in items]  # noqa: E731  (positive and negative keys)

    def batches(workers: int, start: int = 0) -> list:
        loader = GlobalBatchData(ds, collate, 2, seed=1, num_workers=workers).loader(start=start)
        it = iter(loader)
        return [next(it) for _ in range(6)]

    single = batches(0)
    assert batches(2) == single  # two workers, each with its own copy of the dataset
    assert batches(0, start=3) == batches(0)[3:] + batches(0, start=6)[:3]  # resumed at batch 3
    assert len({neg for batch in single for _, neg in batch}) > 2


@pytest.fixture(scope="module")
def tokenizer():
    from splade_exp.models.backbone import train_wordpiece

    return train_wordpiece([doc_text(k) for k in DOCS] * 3 + list(QUERIES.values()) * 3, vocab_size=120)


def test_pretokenised_batches_equal_tokenised_texts(tmp_path, tokenizer):
    c = load_beir(write_beir(tmp_path / "beir"))
    tokens = training_tokens(tmp_path / "art", c, tokenizer, query_max_length=4, doc_max_length=6)
    collate = PairCollator(tokenizer, 4, 6)
    from_text = collate([PairDataset(c, num_negatives=1, seed=3)[i] for i in range(2)])
    from_tokens = collate([PairDataset(c, num_negatives=1, seed=3, tokens=tokens)[i] for i in range(2)])
    assert from_text.keys() == from_tokens.keys()
    for k in from_text:
        assert torch.equal(from_text[k], from_tokens[k]), k
    assert from_text["d_input_ids"].shape == (4, 6)  # truncated to doc_max_length, negatives after positives


def test_tokens_artifact_is_built_once_and_keyed_by_length(tmp_path, tokenizer):
    c = load_beir(write_beir(tmp_path / "beir"))
    artifacts.built.clear()
    first = training_tokens(tmp_path / "art", c, tokenizer, 8, 16)
    built = list(artifacts.built)
    second = training_tokens(tmp_path / "art", c, tokenizer, 8, 16)
    assert sorted(b.split("-")[0] for b in built) == ["tokens/docs", "tokens/train_queries"]
    assert artifacts.built == built  # nothing rebuilt
    assert second[1].path == first[1].path
    assert isinstance(second[1].ids, np.memmap) and not second[1].ids.flags.writeable
    longer = training_tokens(tmp_path / "art", c, tokenizer, 8, 32)
    assert longer[1].path != first[1].path and longer[0].path == first[0].path
    assert json.loads((first[1].path / "meta.json").read_text())["texts"] == len(DOCS)


@pytest.mark.slow
def test_msmarco_triples_train_end_to_end_and_a_second_job_reuses_the_tokens(tmp_path):
    from conftest import compose_cfg
    from splade_exp.run import run

    root = write_msmarco(tmp_path / "ms")
    (root / "triples.tsv").write_text("q1\td1\td3\nq2\td2\t007\nq1\td1\td5\n")
    base = ["data=msmarco", f"data.path={root}", "data.source.queries=[queries.train.tsv,queries.dev.tsv]",
            "data.source.qrels.dev=qrels.dev.tsv", "data.source.triples=triples.tsv",
            "data.source.triples_format=ids", "data.num_negatives=1", "backbone=splade_tiny", "logger=none",
            "trainer.max_steps=2", "trainer.batch_size=2", "trainer.enable_progress_bar=false",
            "head.pooling_impl=chunked"]
    first = run(compose_cfg(base, tmp_path / "root"))
    assert list(zip(first.qk, first.dk)) == [(0, 0), (7, 20), (5, 20), (5, 10)]
    assert (first.status == "completed").all() and first["mrr@10"].between(0, 1).all()
    assert {b.split("-")[0] for b in first.artifacts_built.iloc[0].split(",")} == {"tokens/docs", "tokens/train_queries"}
    second = run(compose_cfg([*base, "trainer.lr=1e-4"], tmp_path / "root"))  # another job of the sweep
    assert second.run_id.iloc[0] != first.run_id.iloc[0]
    assert second.artifacts_built.iloc[0] == ""  # tokenised once, read by both
