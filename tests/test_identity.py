"""Data identity: run ids, the BM25 key and artifact keys follow the content of the input files,
not their names; an edited file makes a new run and the log says why."""
import json
import logging
import os
import sys
import time
from pathlib import Path

import pytest

from conftest import compose_cfg
from splade_exp.fingerprint import describe_changes, fingerprint
from splade_exp.identity import eval_id, run_id, run_inputs
from splade_exp.results import read_results
from splade_exp.run import bm25_key, results_path, run

sys.path.insert(0, str(Path(__file__).parent / "data"))
from data_toys import write_beir, write_msmarco  # noqa: E402

EVAL = ["data=beir", "logger=none", "backbone=splade_tiny", "stage=evaluate", "trainer.enable_progress_bar=false"]


def _age(path: Path, seconds: float = 60) -> None:
    """Give ``path`` an mtime in the past: a digest is cached only for files not written just now."""
    t = time.time() - seconds
    os.utime(path, (t, t))


def _edit(path: Path, old: str, new: str) -> None:
    path.write_text(path.read_text().replace(old, new))


# --------------------------------------------------------------------------- fingerprints
def test_a_fingerprint_is_the_content_not_the_name_or_the_time(tmp_path):
    a = tmp_path / "a.tsv"
    a.write_text("q1\td1\t1\n")
    first = fingerprint(a)
    assert first["size"] == 8
    os.utime(a, (1, 1))  # touched: same content
    b = tmp_path / "sub" / "b.tsv"
    b.parent.mkdir()
    b.write_bytes(a.read_bytes())  # a copy elsewhere
    assert fingerprint(a) == fingerprint(b) == first
    a.write_text("q1\td1\t2\n")  # same size, one byte different
    assert fingerprint(a)["size"] == 8 and fingerprint(a)["xxh3"] != first["xxh3"]


def test_the_disk_cache_is_used_only_for_files_not_written_just_now(tmp_path):
    f, cache = tmp_path / "corpus.jsonl", tmp_path / "cache"
    f.write_text('{"_id": "d1", "text": "x"}\n')
    fingerprint(f, cache)
    assert not cache.exists()  # written within RACY_S seconds: a second edit could hide behind it
    _age(f)
    digest = fingerprint(f, cache)["xxh3"]
    entries = list(cache.glob("*.json"))
    assert len(entries) == 1 and json.loads(entries[0].read_text())["xxh3"] == digest


def test_describe_changes_names_the_changed_file():
    old = {"data/qrels/test": {"path": "/d/qrels/test.tsv", "size": 10, "xxh3": "aaaa1111"},
           "data/corpus": {"path": "/d/corpus.jsonl", "size": 5, "xxh3": "bbbb"}}
    new = {"data/qrels/test": {"path": "/d/qrels/test.tsv", "size": 12, "xxh3": "cccc2222"},
           "data/corpus": {"path": "/e/corpus.jsonl", "size": 5, "xxh3": "bbbb"}}  # moved, same content
    assert describe_changes(old, new) == ["data/qrels/test: /d/qrels/test.tsv changed (10 -> 12 bytes, content "
                                          "aaaa1111 -> cccc2222)"]


# --------------------------------------------------------------------------- run ids
def test_path_spellings_and_copies_give_the_same_run_id(tmp_path, monkeypatch):
    data = write_beir(tmp_path / "home" / "beir")
    (tmp_path / "home" / "x").mkdir()
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    ids = {run_id(compose_cfg([*EVAL, f"data.path={p}"], tmp_path / "root"))
           for p in (data, f"{data}/", tmp_path / "home" / "x" / ".." / "beir", "'~/beir'")}
    copy = write_beir(tmp_path / "elsewhere")
    ids.add(run_id(compose_cfg([*EVAL, f"data.path={copy}"], tmp_path / "root")))
    assert len(ids) == 1


@pytest.mark.parametrize("edit", ["corpus", "queries", "qrels/test", "qrels/train"])
def test_editing_any_input_file_changes_the_run_id(tmp_path, edit):
    data = write_beir(tmp_path / "beir")
    cfg = compose_cfg([*EVAL, f"data.path={data}"], tmp_path / "root")
    before = run_id(cfg)
    file = {"corpus": data / "corpus.jsonl", "queries": data / "queries.jsonl"}.get(edit) or \
        data / "qrels" / f"{edit.split('/')[1]}.tsv"
    _edit(file, "\t1\n", "\t2\n") if edit.startswith("qrels") else _edit(file, "aspirin", "ibuprofen")
    assert run_id(cfg) != before
    assert run_inputs(cfg)[f"data/{edit}"]["path"] == str(file)


def test_msmarco_files_and_options_are_the_identity(tmp_path):
    root = write_msmarco(tmp_path / "ms")
    base = ["data=msmarco", f"data.path={root}", "data.source.queries=[queries.train.tsv,queries.dev.tsv]",
            "data.source.qrels.dev=qrels.dev.tsv", "logger=none"]
    cfg = compose_cfg(base, tmp_path / "root")
    roles = set(run_inputs(cfg))
    assert roles == {"data/corpus", "data/queries/0", "data/queries/1", "data/qrels/train", "data/qrels/dev"}
    relative = run_id(cfg)
    absolute = compose_cfg([*base, f"data.source.collection={root / 'collection.tsv'}"], tmp_path / "root")
    assert run_id(absolute) == relative  # a file named another way is the same file
    assert run_id(compose_cfg([*base, "data.source.max_triples=5"], tmp_path / "root")) != relative


def test_evaluation_keys_change_the_eval_id_only(tmp_path):
    base = ["+experiment=smoke"]
    cfg = compose_cfg(base, tmp_path)
    for override in ("prune.grid=[[0,0],[5,10]]", "data.eval_split=dev", "trainer.eval_batch_size=7"):
        other = compose_cfg([*base, override], tmp_path)
        assert run_id(other) == run_id(cfg) and eval_id(other) != eval_id(cfg), override
    trained_otherwise = compose_cfg([*base, "trainer.lr=1e-4"], tmp_path)
    assert run_id(trained_otherwise) != run_id(cfg) and eval_id(trained_otherwise) == eval_id(cfg)
    # removing training pairs judged in the evaluation split: the split decides the training data
    excl = [*base, "data.exclude_eval_docs=true"]
    assert run_id(compose_cfg(excl, tmp_path)) != run_id(compose_cfg([*excl, "data.eval_split=dev"], tmp_path))


def test_artifact_keys_follow_the_texts_bm25_follows_the_judgments(tmp_path):
    from splade_exp.data.sources import load_collection
    from splade_exp.vocab.unigram import data_key

    data = write_beir(tmp_path / "beir")
    cfg = compose_cfg([*EVAL, f"data.path={data}"], tmp_path / "root")

    def keys():
        c = load_collection(cfg.data, cfg.paths.artifacts_dir, "train")
        return data_key(cfg), c.key(), bm25_key(cfg)

    texts, tokens, bm25 = keys()
    _edit(data / "qrels" / "test.tsv", "q3\td3\t1", "q3\td1\t1")  # a judgment corrected
    texts2, tokens2, bm25_2 = keys()
    assert texts2 == texts  # the backbone, vocabulary and EMLM artifacts do not depend on qrels
    assert bm25_2 != bm25 and tokens2 != tokens
    _edit(data / "corpus.jsonl", "fever", "fevers")
    texts3, tokens3, bm25_3 = keys()
    assert texts3 != texts2 and tokens3 != tokens2 and bm25_3 != bm25_2


# --------------------------------------------------------------------------- launches
def test_an_edited_qrels_file_makes_a_new_run_and_the_log_says_why(tmp_path, caplog):
    data = write_beir(tmp_path / "beir")
    cfg = compose_cfg([*EVAL, f"data.path={data}"], tmp_path / "root")
    first = run(cfg)
    assert first["mrr@10"].iloc[0] > 0
    bm25_files = lambda: sorted(f for f in (tmp_path / "root" / "results" / cfg.sweep).glob("bm25-*.parquet") if ".perquery." not in f.name)  # noqa: E731
    assert len(bm25_files()) == 1
    # every test query's relevant document becomes one the collection has, but not the one it asks for
    (data / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\nq3\td2\t1\nq4\td1\t1\n")
    with caplog.at_level(logging.WARNING):
        second = run(cfg)
    assert second.run_id.iloc[0] != first.run_id.iloc[0]
    assert f"the same config ran as {first.run_id.iloc[0]} with other input files" in caplog.text
    assert f"data/qrels/test: {data / 'qrels' / 'test.tsv'} changed" in caplog.text
    assert len(bm25_files()) == 2  # a BM25 file for each version of the judgments
    bm25 = {read_results(f).run_id.iloc[0]: read_results(f)["mrr@10"].iloc[0] for f in bm25_files()}
    assert len(set(bm25.values())) == 2
    assert read_results(results_path(cfg, first.run_id.iloc[0]))["mrr@10"].iloc[0] == first["mrr@10"].iloc[0]


def test_force_recomputes_the_bm25_file_too(tmp_path):
    data = write_beir(tmp_path / "beir")
    cfg = compose_cfg([*EVAL, f"data.path={data}"], tmp_path / "root")
    run(cfg)
    (bm25,) = [f for f in (tmp_path / "root" / "results" / cfg.sweep).glob("bm25-*.parquet") if ".perquery." not in f.name]
    out = results_path(cfg, run_id(cfg))
    stamps = bm25.stat().st_mtime_ns, out.stat().st_mtime_ns
    run(cfg)  # finished: nothing rewritten
    assert (bm25.stat().st_mtime_ns, out.stat().st_mtime_ns) == stamps
    run(compose_cfg([*EVAL, f"data.path={data}", "force=true"], tmp_path / "root"))
    assert bm25.stat().st_mtime_ns > stamps[0] and out.stat().st_mtime_ns > stamps[1]


def test_a_tilde_in_the_runs_root_is_the_home_directory(tmp_path, monkeypatch):
    home = tmp_path / "home"
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("SPLADE_EXP_ROOT", "~/exp")
    monkeypatch.chdir(tmp_path)
    data = write_beir(tmp_path / "beir")
    cfg = compose_cfg([*EVAL, f"data.path={data}"])
    assert cfg.paths.root == str(home / "exp")
    run(cfg)
    assert list((home / "exp" / "results" / cfg.sweep).glob("*.parquet"))
    assert not (tmp_path / "~").exists()
    cfg = compose_cfg([*EVAL, f"data.path={data}", "paths.root='~/other'"])  # the key itself, not the variable
    run(cfg)
    assert list((home / "other" / "results" / cfg.sweep).glob("*.parquet")) and not (tmp_path / "~").exists()
