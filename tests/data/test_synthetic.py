"""Synthetic collection: determinism, BEIR layout, Zipf tail, mismatch, general corpus."""
from __future__ import annotations

import inspect
import math
import json
import re
import statistics
import time
from collections import Counter
from pathlib import Path

import pytest

from splade_exp.data.synthetic import FUNCTION_WORDS, TITLE_GENERIC_WORDS, generate

SMALL = dict(n_docs=300, n_train_queries=200, n_dev_queries=30, n_test_queries=40,
             n_concepts=400, n_topics=8, n_general_paragraphs=60, n_names=300,
             n_general_words=300)
FILES = ("corpus.jsonl", "queries.jsonl", "qrels/train.tsv", "qrels/dev.tsv", "qrels/test.tsv",
         "general.txt", "meta.json")
HEADER = "query-id\tcorpus-id\tscore"
TEXT = re.compile(r"^[a-z0-9]+( [a-z0-9]+)*$")


def _jsonl(path: Path) -> list[dict]:
    with open(path, encoding="ascii") as fh:
        return [json.loads(line) for line in fh]


def _qrels(path: Path) -> list[tuple[str, str, str]]:
    lines = path.read_text(encoding="ascii").splitlines()
    assert lines[0] == HEADER
    return [tuple(line.split("\t")) for line in lines[1:]]


def _title_counts(root: Path) -> Counter:
    return Counter(w for d in _jsonl(root / "corpus.jsonl") for w in d["title"].split())


@pytest.fixture(scope="module")
def default_collection(tmp_path_factory) -> tuple[Path, float]:
    out = tmp_path_factory.mktemp("synthetic") / "default"
    start = time.process_time()  # CPU time: a loaded machine does not fail it
    generate(out)
    return out, time.process_time() - start


@pytest.fixture(scope="module")
def small_collection(tmp_path_factory) -> Path:
    return generate(tmp_path_factory.mktemp("synthetic") / "small", seed=3, **SMALL)


def test_deterministic_per_seed(tmp_path):
    a = generate(tmp_path / "a", seed=7, **SMALL)
    b = generate(tmp_path / "b", seed=7, **SMALL)
    c = generate(tmp_path / "c", seed=8, **SMALL)
    for rel in FILES:
        assert (a / rel).read_bytes() == (b / rel).read_bytes(), rel
    assert (a / "corpus.jsonl").read_bytes() != (c / "corpus.jsonl").read_bytes()
    assert (a / "general.txt").read_bytes() != (c / "general.txt").read_bytes()


def test_layout(small_collection):
    root = small_collection
    assert isinstance(root, Path)
    for rel in FILES:
        assert (root / rel).is_file(), rel
    assert sorted(p.name for p in root.iterdir()) == sorted(
        ["corpus.jsonl", "queries.jsonl", "qrels", "general.txt", "meta.json"])

    corpus = _jsonl(root / "corpus.jsonl")
    assert len(corpus) == SMALL["n_docs"]
    assert all(set(d) == {"_id", "title", "text"} and d["text"] == "" for d in corpus)
    doc_ids = [d["_id"] for d in corpus]
    assert len(set(doc_ids)) == len(doc_ids)
    assert all(TEXT.match(d["title"]) and 4 <= len(d["title"].split()) <= 12 for d in corpus)

    queries = _jsonl(root / "queries.jsonl")
    assert all(set(q) == {"_id", "text"} for q in queries)
    query_ids = [q["_id"] for q in queries]
    assert len(set(query_ids)) == len(query_ids)
    assert all(TEXT.match(q["text"]) and 2 <= len(q["text"].split()) <= 5 for q in queries)

    splits = {}
    for split in ("train", "dev", "test"):
        rows = _qrels(root / "qrels" / f"{split}.tsv")
        assert all(score == "1" for _, _, score in rows)
        assert {d for _, d, _ in rows} <= set(doc_ids)
        per_query = Counter(q for q, _, _ in rows)
        if split == "train":
            assert set(per_query.values()) == {1}  # exactly one click per train query
        assert len(rows) == len(set(rows))
        splits[split] = set(per_query)
    assert len(splits["train"]) == SMALL["n_train_queries"]
    assert len(splits["dev"]) == SMALL["n_dev_queries"]
    assert len(splits["test"]) == SMALL["n_test_queries"]
    assert not (splits["train"] & splits["dev"] or splits["train"] & splits["test"]
                or splits["dev"] & splits["test"])
    assert splits["train"] | splits["dev"] | splits["test"] == set(query_ids)

    paragraphs = (root / "general.txt").read_text(encoding="ascii").splitlines()
    assert len(paragraphs) == SMALL["n_general_paragraphs"]
    assert all(TEXT.match(p) for p in paragraphs)

    meta = json.loads((root / "meta.json").read_text())
    assert meta["args"]["seed"] == 3 and meta["args"]["n_docs"] == SMALL["n_docs"]
    for key in ("corpus_distinct_words", "general_distinct_words", "corpus_tokens",
                "general_tokens", "test_no_overlap_fraction"):
        assert key in meta["stats"]


def test_meta_records_every_argument_as_plain_scalar(small_collection):
    meta = json.loads((small_collection / "meta.json").read_text())
    params = [p for p in inspect.signature(generate).parameters if p != "out_dir"]
    assert sorted(meta["args"]) == sorted(params)
    assert all(type(v) in (int, float, str) for v in meta["args"].values())
    defaults = inspect.signature(generate).parameters
    assert all(type(defaults[p].default) in (int, float, str) for p in params)


def test_refuses_existing_directory(tmp_path):
    target = tmp_path / "coll"
    target.mkdir()
    (target / "keep.txt").write_text("x")
    with pytest.raises(FileExistsError):
        generate(target, **SMALL)
    assert [p.name for p in target.iterdir()] == ["keep.txt"]
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(FileExistsError):
        generate(empty, **SMALL)
    assert list(empty.iterdir()) == []
    generate(tmp_path / "fresh", **SMALL)
    with pytest.raises(FileExistsError):
        generate(tmp_path / "fresh", **SMALL)
    # No temporary sibling is left behind.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["coll", "empty", "fresh"]


def test_rejects_bad_arguments(tmp_path):
    with pytest.raises(ValueError):
        generate(tmp_path / "a", synonym_rate=1.5, **SMALL)
    with pytest.raises(TypeError):
        generate(tmp_path / "b", n_docs="many")
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_default_size_fast_and_rich(default_collection):
    root, seconds = default_collection
    assert seconds < 10.0  # CPU seconds; about one on a laptop
    meta = json.loads((root / "meta.json").read_text())
    counts = _title_counts(root)
    assert meta["stats"]["corpus_distinct_words"] == len(counts) >= 5000
    lengths = [len(d["title"].split()) for d in _jsonl(root / "corpus.jsonl")]
    assert 5.5 <= statistics.mean(lengths) <= 9.0
    qlen = [len(q["text"].split()) for q in _jsonl(root / "queries.jsonl")]
    assert 2.2 <= statistics.mean(qlen) <= 3.5


def test_zipf_like_long_tail(default_collection):
    counts = _title_counts(default_collection[0])
    content = sorted((n for w, n in counts.items()
                      if w not in FUNCTION_WORDS and w not in TITLE_GENERIC_WORDS), reverse=True)
    median = statistics.median(content)
    assert median <= 2
    assert content[0] >= 50 * median
    assert content[9] >= 20 * median  # a head, not a single outlier
    rare = sum(1 for n in content if n <= 2) / len(content)
    assert rare >= 0.6
    # Rank-frequency slope over the head is Zipf-like (log-log slope between -1.6 and -0.5).
    slope = (math.log(content[199]) - math.log(content[9])) / (math.log(200) - math.log(10))
    assert -1.6 <= slope <= -0.5


def test_vocabulary_mismatch(default_collection):
    root = default_collection[0]
    titles = {d["_id"]: set(d["title"].split()) for d in _jsonl(root / "corpus.jsonl")}
    queries = {q["_id"]: set(q["text"].split()) for q in _jsonl(root / "queries.jsonl")}
    rel: dict[str, list[str]] = {}
    for q, d, _ in _qrels(root / "qrels" / "test.tsv"):
        rel.setdefault(q, []).append(d)
    no_overlap = sum(all(queries[q].isdisjoint(titles[d]) for d in docs) for q, docs in rel.items())
    fraction = no_overlap / len(rel)
    assert 0.15 <= fraction <= 0.5
    meta = json.loads((root / "meta.json").read_text())
    assert meta["stats"]["test_no_overlap_fraction"] == pytest.approx(fraction, abs=1e-6)
    # Most queries still share a word: exact match is imperfect, not useless.
    train = {q for q, _, _ in _qrels(root / "qrels" / "train.tsv")}
    clicks = {q: d for q, d, _ in _qrels(root / "qrels" / "train.tsv")}
    shared = sum(not queries[q].isdisjoint(titles[clicks[q]]) for q in train) / len(train)
    assert 0.45 <= shared <= 0.85


def test_general_corpus_differs(default_collection):
    root = default_collection[0]
    titles = _title_counts(root)
    general = Counter(w for line in (root / "general.txt").read_text().splitlines()
                      for w in line.split())
    top_titles = {w for w, _ in titles.most_common(50)}
    top_general = {w for w, _ in general.most_common(50)}
    assert len(top_titles & top_general) <= 20
    absent = [w for w in general if w not in titles]
    assert len(absent) >= 1000
    # Longer sentences than titles, and it still covers a good part of the in-domain words.
    paragraphs = (root / "general.txt").read_text().splitlines()
    para_len = statistics.mean(len(p.split()) for p in paragraphs)
    assert para_len >= 30
    covered = sum(n for w, n in titles.items() if w in general) / sum(titles.values())
    assert covered >= 0.4
