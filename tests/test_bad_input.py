"""Bad input, end to end: every mistake fails early with a message naming the file, line or config
key and saying what to do. Most go through ``run()`` exactly as a job would; config-group typos and
a bad value inside a sweep go through the real command line."""
import errno
import io
import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch

from conftest import compose_cfg
from splade_exp.checks import ConfigError
from splade_exp.data.collection import DataError
from splade_exp.models.backbone import BackboneError
from splade_exp.run import run, run_id

sys.path.insert(0, str(Path(__file__).parent / "data"))
from data_toys import write_beir  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
TOY = ["data=beir", "logger=none", "backbone=splade_tiny", "stage=evaluate", "trainer.enable_progress_bar=false"]


def toy_cfg(tmp_path, data: Path, *extra: str):
    return compose_cfg([*TOY, f"data.path={data}", *extra], tmp_path / "root")


def run_fails(cfg, exc=Exception) -> str:
    with pytest.raises(exc) as info:
        run(cfg)
    return str(info.value)


def nothing_built(tmp_path) -> bool:
    art = tmp_path / "root" / "artifacts"
    return not art.exists() or not any(art.iterdir())


# --------------------------------------------------------------------------- paths
def test_missing_data_path(tmp_path):
    msg = run_fails(toy_cfg(tmp_path, tmp_path / "nowhere"), DataError)
    assert "nowhere" in msg and "data.path does not exist" in msg
    assert nothing_built(tmp_path)


def test_missing_corpus_file_names_it_and_the_key(tmp_path):
    root = write_beir(tmp_path / "beir")
    (root / "corpus.jsonl").unlink()
    msg = run_fails(toy_cfg(tmp_path, root), DataError)
    assert f"{root / 'corpus.jsonl'}: BEIR corpus.jsonl not found" in msg and "data.path" in msg


def test_a_directory_where_a_file_belongs(tmp_path):
    root = write_beir(tmp_path / "beir")
    (root / "queries.jsonl").unlink()
    (root / "queries.jsonl").mkdir()
    assert "is a directory, expected a file" in run_fails(toy_cfg(tmp_path, root), DataError)


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their permissions")
def test_unreadable_file(tmp_path):
    root = write_beir(tmp_path / "beir")
    (root / "corpus.jsonl").chmod(0)
    assert "not readable" in run_fails(toy_cfg(tmp_path, root), DataError)


# --------------------------------------------------------------------------- file contents
def test_malformed_jsonl_line_names_file_and_line(tmp_path):
    root = write_beir(tmp_path / "beir")
    lines = (root / "corpus.jsonl").read_text().splitlines()
    lines[2] = lines[2][:-1]  # drop the closing brace of line 3
    (root / "corpus.jsonl").write_text("\n".join(lines) + "\n")
    msg = run_fails(toy_cfg(tmp_path, root), DataError)
    assert f"{root / 'corpus.jsonl'}:3: malformed JSON" in msg and "fix or remove the line" in msg


def test_qrels_with_unknown_ids_fail_or_are_dropped_with_a_count(tmp_path, caplog):
    root = write_beir(tmp_path / "beir")
    with open(root / "qrels" / "test.tsv", "a") as fh:
        fh.write("q3\tghost-doc\t1\nnobody\td1\t1\n")
    msg = run_fails(toy_cfg(tmp_path, root), DataError)
    # header = line 1, then q3/d3, q4/007, q4/d5: the ghost document is line 5
    assert f"{root / 'qrels' / 'test.tsv'}:5: document id 'ghost-doc' is not in the corpus" in msg
    assert "data.drop_unknown_qrels=true" in msg

    from splade_exp.data.sources import load_collection

    cfg = toy_cfg(tmp_path, root, "data.drop_unknown_qrels=true")
    with caplog.at_level(logging.WARNING):
        c = load_collection(cfg.data, cfg.paths.artifacts_dir, cfg.stage)
    assert c.qrels["test"] == {"q3": {"d3": 1}, "q4": {"007": 2, "d5": 0}}
    assert "dropped 2 judgments with unknown query or document ids" in caplog.text


def test_empty_documents_are_kept_counted_and_go_through_the_whole_pipeline(tmp_path, caplog):
    """An abstract-less document is part of the collection (Cranfield has two): read with a warning
    that counts it, tokenised, trained on, indexed by BM25, encoded and evaluated."""
    root = write_beir(tmp_path / "beir")
    with open(root / "corpus.jsonl", "a") as fh:
        fh.write(json.dumps({"_id": "blank", "title": " ", "text": ""}) + "\n")
        fh.write(json.dumps({"_id": "blank2", "title": None, "text": None}) + "\n")
    with open(root / "qrels" / "test.tsv", "a") as fh:
        fh.write("q3\tblank\t1\n")  # judged: the metrics see it
    with open(root / "qrels" / "train.tsv", "a") as fh:
        fh.write("q2\tblank2\t1\n")  # a training positive: a batch holds it
    with caplog.at_level(logging.WARNING):
        frame = run(toy_cfg(tmp_path, root, "stage=train", "trainer.max_steps=2", "trainer.batch_size=3",
                            "head.pooling_impl=chunked"))
    assert f"{root / 'corpus.jsonl'}: 2 empty documents kept ('blank', 'blank2')" in caplog.text
    assert "data.drop_empty=true" in caplog.text
    assert (frame.status == "completed").all() and frame["mrr@10"].between(0, 1).all()
    (bm25,) = [f for f in (tmp_path / "root" / "results" / "default").glob("bm25-*.parquet") if ".perquery." not in f.name]
    assert 0 <= pd.read_parquet(bm25)["mrr@10"].iloc[0] <= 1

    from splade_exp.data.collection import load_beir

    caplog.clear()
    with caplog.at_level(logging.WARNING):
        corpus = load_beir(root, drop_empty=True, drop_unknown_qrels=True).corpus
    assert "blank" not in corpus and "blank2" not in corpus
    assert "dropped 2 empty documents (data.drop_empty=true)" in caplog.text
    msg = run_fails(toy_cfg(tmp_path, root, "data.drop_empty=true"), DataError)  # judged, so now unknown
    assert "document id 'blank' is not in the corpus" in msg and "data.drop_unknown_qrels=true" in msg


def test_duplicate_ids_name_both_lines(tmp_path):
    root = write_beir(tmp_path / "beir")
    with open(root / "corpus.jsonl", "a") as fh:
        fh.write(json.dumps({"_id": "d2", "title": "again", "text": "a second d2"}) + "\n")
    msg = run_fails(toy_cfg(tmp_path, root), DataError)
    assert f"{root / 'corpus.jsonl'}:6: duplicate document id 'd2' (first at corpus.jsonl:2)" in msg


def test_msmarco_malformed_tsv_line(tmp_path):
    from data_toys import write_msmarco

    root = write_msmarco(tmp_path / "ms")
    with open(root / "collection.tsv", "a") as fh:
        fh.write("no tab on this line\n")
    cfg = compose_cfg(["data=msmarco", f"data.path={root}", "logger=none", "stage=evaluate",
                       "data.source.queries=[queries.train.tsv,queries.dev.tsv]",
                       "data.source.qrels.dev=qrels.dev.tsv"], tmp_path / "root")
    msg = run_fails(cfg, DataError)
    assert f"{root / 'collection.tsv'}:6: expected id<TAB>text" in msg


def test_training_without_train_qrels(tmp_path):
    root = write_beir(tmp_path / "beir")
    (root / "qrels" / "train.tsv").unlink()
    msg = run_fails(toy_cfg(tmp_path, root, "stage=train"), DataError)
    assert "no training pairs" in msg and "stage=evaluate" in msg


def test_datasets_files_malformed_line_and_missing_column(tmp_path):
    from splade_exp.data.hf import HfFiles

    root = write_beir(tmp_path / "beir")
    lines = (root / "corpus.jsonl").read_text().splitlines()
    (root / "broken.jsonl").write_text("\n".join([lines[0], lines[1][:-2], *lines[2:]]) + "\n")
    src = HfFiles(corpus="broken.jsonl", queries="queries.jsonl", qrels={"test": "qrels/test.tsv"}, path=str(root),
                  cache_dir=tmp_path / "cache")
    with pytest.raises(DataError, match=f"{root / 'broken.jsonl'}:2: malformed JSON"):
        src.load()
    src = HfFiles(corpus="corpus.jsonl", queries="queries.jsonl", path=str(root), doc_text=["body"],
                  cache_dir=tmp_path / "cache")
    with pytest.raises(DataError, match=r"no column\(s\) \['body'\].*set data.source.doc_id / data.source.doc_text"):
        src.load()


def test_click_log_naming_an_unknown_document(tmp_path):
    from splade_exp.data.clicklog import ClickLog

    root = write_beir(tmp_path / "beir")
    (root / "clicks.tsv").write_text("query\tdoc_id\nfever\td1\nsugar\tnope\n")
    with pytest.raises(DataError) as info:
        ClickLog(str(root), "clicks.tsv").load()
    assert f"{root / 'clicks.tsv'}:3: document id 'nope' is not in the corpus" in str(info.value)
    assert "data.drop_unknown_qrels=true" in str(info.value)
    c = ClickLog(str(root), "clicks.tsv").load(drop_unknown_qrels=True)
    assert len(c.train_pairs()) == 1


def _lines(path: Path) -> list[str]:
    return path.read_text().splitlines()


def _write_lines(path: Path, lines: list[str]) -> None:
    path.write_text("\n".join(lines) + "\n")


def test_undecodable_bytes_name_the_line_in_every_text_reader(tmp_path):
    from splade_exp.data.collection import read_lines

    root = write_beir(tmp_path / "beir")
    data = (root / "corpus.jsonl").read_bytes().splitlines(keepends=True)
    data[2] = data[2].replace(b"insulin", b"insul\xe9n")  # Latin-1, not UTF-8
    (root / "corpus.jsonl").write_bytes(b"".join(data))
    msg = run_fails(toy_cfg(tmp_path, root), DataError)
    assert f"{root / 'corpus.jsonl'}:3: not UTF-8 text (byte 0xe9 at column" in msg and "iconv" in msg

    root = write_beir(tmp_path / "beir2")
    with open(root / "qrels" / "test.tsv", "ab") as fh:
        fh.write(b"q3\td\xff1\t1\n")
    assert f"{root / 'qrels' / 'test.tsv'}:5: not UTF-8 text (byte 0xff" in run_fails(toy_cfg(tmp_path, root), DataError)

    text = tmp_path / "general.txt"
    text.write_bytes(b"one paragraph\n\nanother \xc3( paragraph\n")
    with pytest.raises(DataError, match=f"{text}:3: not UTF-8 text"):
        read_lines(text)


@pytest.mark.parametrize("line,error", [
    ('{"_id": null, "title": "t", "text": "x"}', "field '_id' must be a string or an integer id, got null"),
    ('{"_id": 1.5, "title": "t", "text": "x"}', "field '_id' must be a string or an integer id, got a number"),
    ('{"_id": "  ", "title": "t", "text": "x"}', "field '_id' is an empty id"),
    ('{"_id": "d9", "title": "t", "text": ["a", "b"]}', "field 'text' must be a string (or null), got an array"),
    ('{"_id": "d9", "title": {"a": 1}, "text": "x"}', "field 'title' must be a string (or null), got an object"),
    ('["d9", "x"]', "expected a JSON object, got an array"),
])
def test_json_values_of_the_wrong_type_are_not_read_as_text(tmp_path, line, error):
    root = write_beir(tmp_path / "beir")
    lines = _lines(root / "corpus.jsonl")
    _write_lines(root / "corpus.jsonl", [*lines[:3], line, *lines[3:]])
    msg = run_fails(toy_cfg(tmp_path, root), DataError)
    assert f"{root / 'corpus.jsonl'}:4: {error}" in msg


def test_integer_ids_and_null_texts_are_read(tmp_path):
    from splade_exp.data.collection import read_texts_jsonl

    f = tmp_path / "corpus.jsonl"
    f.write_text('{"_id": 7, "title": null, "text": "seven"}\n{"_id": "8", "text": "eight"}\n')
    assert read_texts_jsonl(f, "document") == {"7": "seven", "8": "eight"}


def test_qrels_conflicting_repeats_and_unfamiliar_headers(tmp_path, caplog):
    from splade_exp.data.collection import read_qrels

    f = tmp_path / "test.tsv"
    f.write_text("query-id\tcorpus-id\tscore\nq1\td1\t1\nq1\td2\t0\nq1\td1\t1\n")
    with caplog.at_level(logging.WARNING):
        assert read_qrels(f) == {"q1": {"d1": 1, "d2": 0}}
    assert "1 judgments repeated with the same grade, read once" in caplog.text
    f.write_text("query-id\tcorpus-id\tscore\nq1\td1\t1\nq1\td2\t0\nq1\td1\t2\n")
    with pytest.raises(DataError) as info:
        read_qrels(f)
    assert f"{f}:4: query 'q1', document 'd1' judged 2 here and 1 at {f}:2; keep one judgment" in str(info.value)
    f.write_text("question\tpassage\tlabel\nq1\td1\t1\n")  # a header this reader does not know
    with pytest.raises(DataError, match=f"{f}:1: .* is neither a judgment .* nor a known header"):
        read_qrels(f)
    f.write_text("q1 0 d1 1\nq1 0 d2 high\n")  # TREC, a grade that is no integer
    with pytest.raises(DataError, match=f"{f}:2: score 'high' is not an integer"):
        read_qrels(f)
    f.write_text("qid\tdocid\trel\nq1\t\t1\n")
    with pytest.raises(DataError, match=f"{f}:2: .*empty document id"):
        read_qrels(f)


def test_msmarco_triples_with_a_fourth_field(tmp_path):
    from data_toys import write_msmarco

    from splade_exp.data.msmarco import MsMarco

    root = write_msmarco(tmp_path / "ms")
    (root / "triples.tsv").write_text("q1\td1\td3\nq1\td1\td5\textra\n")
    src = MsMarco(str(root), queries=["queries.train.tsv", "queries.dev.tsv"], qrels={"test": "qrels.dev.tsv"},
                  triples="triples.tsv")
    with pytest.raises(DataError, match=f"{root / 'triples.tsv'}:2: expected query<TAB>positive<TAB>negative "
                                        r"\(3 tab-separated fields\), got 4"):
        src.load()


@pytest.mark.parametrize("row,error", [
    ({"query_id": "q1", "doc_id": None}, "field 'doc_id' must be a string or an integer id, got null"),
    ({"query": 5, "doc_id": "d1"}, "field 'query' must be a string (or null), got a number"),
    ({"query_id": "q1", "doc_id": "d1", "clicks": True}, "clicks True is not a non-negative integer"),
    ({"query_id": "q1", "doc_id": "d1", "clicks": 2.5}, "clicks 2.5 is not a non-negative integer"),
])
def test_click_log_json_values_of_the_wrong_type(tmp_path, row, error):
    from data_toys import write_jsonl

    from splade_exp.data.clicklog import ClickLog

    root = write_beir(tmp_path / "beir")
    write_jsonl(root / "clicks.jsonl", [{"query_id": "q2", "doc_id": "d2"}, row])
    with pytest.raises(DataError) as info:
        ClickLog(str(root), "clicks.jsonl").load(drop_unknown_qrels=True)  # never dropped as an unknown id
    assert f"{root / 'clicks.jsonl'}:2: {error}" in str(info.value)


def test_datasets_files_null_ids_bad_grades_and_conflicts_name_the_line(tmp_path):
    from data_toys import write_jsonl

    from splade_exp.data.hf import HfFiles

    root = write_beir(tmp_path / "beir")
    rows = [{"_id": "d1", "title": "a", "text": "x"}, {"_id": None, "title": "b", "text": "y"}]
    (root / "docs.jsonl").write_text(json.dumps(rows[0]) + "\n\n" + json.dumps(rows[1]) + "\n")  # a blank line
    src = HfFiles(corpus="docs.jsonl", queries="queries.jsonl", path=str(root), cache_dir=tmp_path / "cache")
    with pytest.raises(DataError, match=f"{root / 'docs.jsonl'}:3: column '_id' must hold a string or integer id, "
                                        "got None"):
        src.load()
    pd.DataFrame({"_id": ["d1", None], "title": ["a", "b"], "text": ["x", "y"]}).to_parquet(root / "docs.parquet")
    src = HfFiles(corpus="docs.parquet", queries="queries.jsonl", path=str(root), cache_dir=tmp_path / "cache")
    with pytest.raises(DataError, match=f"{root / 'docs.parquet'}: row 2: column '_id'"):
        src.load()
    write_jsonl(root / "g.jsonl", [{"query-id": "q3", "corpus-id": "d3", "score": 1.5}])
    src = HfFiles(corpus="corpus.jsonl", queries="queries.jsonl", qrels={"test": "g.jsonl"}, path=str(root),
                  cache_dir=tmp_path / "cache")
    with pytest.raises(DataError, match=f"{root / 'g.jsonl'}:1: grade 1.5 in column 'score' is not an integer"):
        src.load()
    (root / "c.tsv").write_text("query-id\tcorpus-id\tscore\nq3\td3\t1\nq4\t007\t1\nq3\td3\t0\n")
    src = HfFiles(corpus="corpus.jsonl", queries="queries.jsonl", qrels={"test": "c.tsv"}, path=str(root),
                  cache_dir=tmp_path / "cache")
    with pytest.raises(DataError, match=f"{root / 'c.tsv'}:4: query 'q3', document 'd3' judged 0 here and 1 at "
                                        f"{root / 'c.tsv'}:2"):
        src.load()


def test_evaluation_split_that_does_not_exist(tmp_path):
    root = write_beir(tmp_path / "beir")
    msg = run_fails(toy_cfg(tmp_path, root, "data.eval_split=dev"), DataError)
    assert "no qrels for split 'dev'; available: ['test', 'train']" in msg and "data.eval_split" in msg


# --------------------------------------------------------------------------- config values
@pytest.mark.parametrize("grid,key", [("[[0,0],[5,-1]]", "prune.grid[1][1] (dk)"),
                                      ("[[0,0],[2.5,10]]", "prune.grid[1][0] (qk)"),
                                      ("[[0,0],[5]]", "prune.grid[1] must be a pair")])
def test_bad_pruning_grid_fails_before_anything_is_built(tmp_path, grid, key):
    root = write_beir(tmp_path / "beir")
    msg = run_fails(toy_cfg(tmp_path, root, "stage=train", f"prune.grid={grid}"), ConfigError)
    assert key in msg
    assert nothing_built(tmp_path) and not (tmp_path / "root" / "runs").exists()


@pytest.mark.parametrize("override,message", [
    ("trainer.batch_size=0", "trainer.batch_size must be a positive integer, got 0"),
    ("trainer.eval_batch_size=0", "trainer.eval_batch_size must be a positive integer, got 0"),
    ("trainer.max_steps=-1", "trainer.max_steps must be a positive integer, got -1; training is step-bounded"),
    ("trainer.max_steps=0", "trainer.max_steps must be a positive integer, got 0"),
    ("trainer.lr=0", "trainer.lr must be a positive number, got 0"),
    ("trainer.warmup_steps=-5", "trainer.warmup_steps must be a non-negative integer, got -5"),
    ("trainer.checkpoint_every_n_steps=0", "trainer.checkpoint_every_n_steps must be a positive integer, got 0"),
    ("trainer.log_every_n_steps=0", "trainer.log_every_n_steps must be a positive integer"),
    ("trainer.accumulate_grad_batches=0", "trainer.accumulate_grad_batches must be a positive integer"),
    ("trainer.num_workers=-1", "trainer.num_workers must be a non-negative integer"),
    ("trainer.collapse.patience=0", "trainer.collapse.patience must be a positive integer"),
    ("loss.lambda_warmup_steps=-1", "loss.lambda_warmup_steps must be a non-negative integer"),
    ("seed=abc", "seed must be an integer in [0, 2^32), got 'abc'"),
    ("seed=1.5", "seed must be an integer in [0, 2^32), got 1.5"),
    ("seed=-1", "seed must be an integer in [0, 2^32), got -1"),
    ("lock=sometimes", "lock must be one of ('wait', 'skip'), got 'sometimes'"),
    ("data.doc_max_length=1000", "data.doc_max_length=1000 is longer than the backbone's 512 positions"),
    ("data.query_max_length=0", "data.query_max_length must be a positive integer, got 0"),
])
def test_every_config_value_is_checked_before_anything_runs(tmp_path, override, message):
    root = write_beir(tmp_path / "beir")
    msg = run_fails(toy_cfg(tmp_path, root, "stage=train", override), ConfigError)
    assert message in msg
    assert nothing_built(tmp_path) and not (tmp_path / "root" / "runs").exists()


@pytest.mark.parametrize("override,message", [
    ("data.doc_max_length=300", "data.doc_max_length=300 is longer than the backbone's 256 positions "
                                "(backbone.config.max_position_embeddings)"),
    ("backbone.mlm.max_length=257", "backbone.mlm.max_length=257 is longer than the backbone's 256 positions"),
    ("backbone.mlm.batch_size=0", "backbone.mlm.batch_size must be a positive integer"),
    ("backbone.tokenizer.vocab_size=0", "backbone.tokenizer.vocab_size must be a positive integer"),
    ("pretrain=emlm", None),
])
def test_built_backbone_and_pretraining_values(tmp_path, override, message):
    cfg = compose_cfg(["+experiment=smoke", "logger=none", override] +
                      (["pretrain.batch_size=0"] if override == "pretrain=emlm" else []), tmp_path / "root")
    msg = run_fails(cfg, ConfigError)
    assert (message or "pretrain.batch_size must be a positive integer, got 0") in msg
    assert nothing_built(tmp_path)


def test_position_limits_from_model_configs():
    from splade_exp.checks import position_limit

    assert position_limit({"model_type": "bert", "max_position_embeddings": 512}) == 512
    # RoBERTa's positions start after the padding index (1): 514 embeddings, 512 tokens
    assert position_limit({"model_type": "roberta", "max_position_embeddings": 514, "pad_token_id": 1}) == 512
    assert position_limit({"model_type": "t5"}) is None


def test_runs_root_and_results_directory_must_be_writable(tmp_path, monkeypatch):
    root = write_beir(tmp_path / "beir")
    (tmp_path / "a_file").write_text("not a directory")
    msg = run_fails(toy_cfg(tmp_path, root, f"paths.results_dir={tmp_path / 'a_file' / 'results'}"), ConfigError)
    assert f"{tmp_path / 'a_file' / 'results'}: paths.results_dir cannot be a directory: {tmp_path / 'a_file'} is " \
           "a file" in msg
    monkeypatch.setenv("SPLADE_EXP_ROOT", str(tmp_path / "a_file" / "exp"))
    cfg = compose_cfg([*TOY, f"data.path={root}"])
    assert "paths.root (SPLADE_EXP_ROOT) cannot be a directory" in run_fails(cfg, ConfigError)
    assert not (tmp_path / "root").exists()


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes anywhere whatever the permissions")
def test_read_only_results_directory_fails_before_training(tmp_path):
    root = write_beir(tmp_path / "beir")
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    msg = run_fails(toy_cfg(tmp_path, root, "stage=train", f"paths.results_dir={ro}"), ConfigError)
    assert f"{ro}: paths.results_dir is not writable" in msg


class _FullDisk(io.RawIOBase):
    """A file whose writes fail as the kernel's do on a full disk (OSError ENOSPC)."""

    def writable(self) -> bool:
        return True

    def write(self, data) -> int:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def test_a_full_disk_names_the_file_and_keeps_the_previous_one(tmp_path, monkeypatch):
    """ENOSPC while saving a checkpoint and a results file: an error naming the file and saying the
    disk is full, instead of torch's ``basic_ios::clear: iostream error``; the previous file intact."""
    from splade_exp.io import DiskFullError
    from splade_exp.results import make_frame, read_results, write_results
    from splade_exp.stages import fit

    last = tmp_path / "checkpoints" / "last.ckpt"
    fit.AtomicCheckpointIO().save_checkpoint({"global_step": 1, "w": torch.zeros(4)}, last)
    monkeypatch.setattr(fit, "open", lambda path, mode: _FullDisk(), raising=False)
    with pytest.raises(DiskFullError) as info:
        fit.AtomicCheckpointIO().save_checkpoint({"global_step": 2, "w": torch.zeros(1000)}, last)
    assert str(info.value).startswith(f"{last}: the disk is full while writing it (No space left on device;")
    assert "SPLADE_EXP_ROOT" in str(info.value) and info.value.errno == errno.ENOSPC
    assert torch.load(last, weights_only=False)["global_step"] == 1  # the previous checkpoint, intact
    assert [p.name for p in last.parent.iterdir()] == ["last.ckpt"]  # no temporary left behind

    out = tmp_path / "results" / "r.parquet"
    frame = make_frame([{"qk": 0, "dk": 0, "mrr@10": 0.5}], {"run_id": "r", "status": "completed"})
    write_results(out, frame)

    def pyarrow_full(self, path, **kwargs):  # what pyarrow raises on ENOSPC
        raise OSError(errno.ENOSPC, "Error writing bytes to file. Detail: [errno 28] No space left on device")

    monkeypatch.setattr(pd.DataFrame, "to_parquet", pyarrow_full)
    with pytest.raises(DiskFullError, match=f"{out}: the disk is full"):
        write_results(out, frame)
    assert read_results(out)["mrr@10"].iloc[0] == 0.5


def test_unigram_vocabulary_larger_than_the_corpus(tmp_path):
    root = write_beir(tmp_path / "beir")
    msg = run_fails(toy_cfg(tmp_path, root, "vocab=unigram", "init=random", "vocab.size=5000"), ValueError)
    assert "vocab.size=5000 is larger than the number of distinct words in the corpus" in msg
    assert "lower vocab.size" in msg
    assert not list((tmp_path / "root" / "artifacts" / "vocab").glob("unigram-*"))  # nothing half-built


def test_backbone_directory_without_a_model(tmp_path):
    root = write_beir(tmp_path / "beir")
    empty = tmp_path / "not_a_model"
    empty.mkdir()
    msg = run_fails(toy_cfg(tmp_path, root, "backbone=local", f"backbone.name_or_path={empty}"), BackboneError)
    assert f"{empty}: no config.json" in msg and "backbone.name_or_path" in msg and "save_pretrained" in msg
    assert nothing_built(tmp_path)


def test_backbone_with_truncated_weights(tmp_path):
    import shutil

    from splade_exp.resolvers import _package_path
    from splade_exp.models.backbone import load_masked_lm

    model = tmp_path / "model"
    shutil.copytree(_package_path("cognition", "model"), model)
    data = (model / "model.safetensors").read_bytes()
    (model / "model.safetensors").write_bytes(data[: len(data) // 3])
    with pytest.raises(BackboneError, match="damaged or truncated") as info:
        load_masked_lm(str(model))
    assert str(model) in str(info.value) and "backbone.name_or_path" in str(info.value)


# --------------------------------------------------------------------------- checkpoints
def _truncate(path: Path, fraction: float = 0.5) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * fraction)])


def test_truncated_last_ckpt_names_the_file_and_what_to_delete(tmp_path):
    root = write_beir(tmp_path / "beir")
    cfg = toy_cfg(tmp_path, root, "stage=train", "trainer.max_steps=2", "trainer.batch_size=2")
    last = Path(cfg.paths.runs_dir) / run_id(cfg) / "checkpoints" / "last.ckpt"
    last.parent.mkdir(parents=True)
    torch.save({"state_dict": {"w": torch.zeros(1000)}, "global_step": 1}, last)
    _truncate(last)
    from splade_exp.checkpoint import CheckpointError

    msg = run_fails(cfg, CheckpointError)
    assert f"{last}: not a complete checkpoint" in msg and f"rm {last}" in msg and str(last.parent.parent) in msg


def test_damaged_emlm_checkpoint(tmp_path):
    from safetensors.torch import save_model

    from splade_exp.checkpoint import CheckpointError
    from splade_exp.models.backbone import build_bert, train_wordpiece
    from splade_exp.models.encoder import SpladeEncoder
    from splade_exp.stages.pretrain import load_checkpoint

    tok = train_wordpiece(["alpha beta gamma delta"] * 4, vocab_size=40)
    enc = SpladeEncoder.from_masked_lm(build_bert(tok, hidden_size=8, num_hidden_layers=1, num_attention_heads=1,
                                                  intermediate_size=8))
    art = tmp_path / "emlm" / "emlm-abc"
    art.mkdir(parents=True)
    save_model(enc, str(art / "model.safetensors"))
    load_checkpoint(enc, art, None)  # intact: loads
    _truncate(art / "model.safetensors", 0.7)
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(enc, art, None)
    assert f"{art / 'model.safetensors'}: the EMLM checkpoint is damaged or truncated" in str(info.value)
    assert f"delete {art}" in str(info.value)
    # named in the config, it is caught before the job starts
    data = write_beir(tmp_path / "beir")
    msg = run_fails(toy_cfg(tmp_path, data, "pretrain=emlm", f"pretrain.checkpoint={art}"), ConfigError)
    assert "pretrain.checkpoint is damaged or truncated" in msg and nothing_built(tmp_path)


# --------------------------------------------------------------------------- command line
def _cli(args: list[str], root: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "SPLADE_EXP_ROOT": str(root), "HF_HUB_OFFLINE": "1", "WANDB_MODE": "offline"}
    return subprocess.run([sys.executable, "-m", "splade_exp", *args], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=300)


def test_unknown_config_group_choice_lists_the_choices(tmp_path):
    out = _cli(["data=bier", "data.path=/x"], tmp_path)
    assert out.returncode != 0
    err = out.stderr + out.stdout
    assert "Could not find 'data/bier'" in err
    assert "Available options in 'data'" in err and "beir" in err and "msmarco" in err


@pytest.mark.slow
def test_a_sweep_with_one_bad_job_launches_nothing(tmp_path):
    good = write_beir(tmp_path / "beir")
    out = _cli(["-m", *TOY, f"data.path={good},{tmp_path / 'missing'}", "sweep=bad"], tmp_path / "root")
    err = out.stderr + out.stdout
    assert out.returncode != 0
    assert "1 of 2 jobs of this sweep cannot run; nothing was launched" in err
    assert f"data.path={tmp_path / 'missing'}" in err and "data.path does not exist" in err
    assert not (tmp_path / "root" / "runs").exists() and not (tmp_path / "root" / "results").exists()


def test_preflight_expands_an_experiment_grid_and_checks_each_job(tmp_path):
    from hydra import initialize_config_dir

    from conftest import CONF
    from splade_exp.checks import Preflight, sweep_jobs

    def multirun_cfg(*overrides):
        return compose_cfg(["+experiment=vocab_ablation_demo", *overrides], tmp_path, hydra_node=True)

    cfg = multirun_cfg()
    jobs = sweep_jobs(cfg)
    models = sorted(o for j in jobs for o in j if o.startswith("model="))
    assert models == ["model=esplade_100k", "model=random_100k", "model=splade_32k"]
    bad = multirun_cfg("vocab.size=0")  # only the two unigram jobs use vocab.size
    with initialize_config_dir(config_dir=CONF, version_base="1.3"):
        Preflight().on_multirun_start(cfg)  # three good jobs: no error
        with pytest.raises(SystemExit) as info:
            Preflight().on_multirun_start(bad)
    msg = str(info.value)
    assert msg.startswith("2 of 3 jobs of this sweep cannot run") and "vocab.size must be a positive integer" in msg
    assert "model=random_100k" in msg and "model=esplade_100k" in msg and "model=splade_32k" not in msg
