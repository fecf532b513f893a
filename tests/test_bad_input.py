"""Bad input, end to end: every mistake fails early with a message naming the file, line or config
key and saying what to do. Most go through ``run()`` exactly as a job would; config-group typos and
a bad value inside a sweep go through the real command line."""
import json
import logging
import os
import subprocess
import sys
from pathlib import Path

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


def test_empty_document_and_query(tmp_path, caplog):
    root = write_beir(tmp_path / "beir")
    with open(root / "corpus.jsonl", "a") as fh:
        fh.write(json.dumps({"_id": "blank", "title": " ", "text": ""}) + "\n")
    msg = run_fails(toy_cfg(tmp_path, root), DataError)
    assert f"{root / 'corpus.jsonl'}:6: document 'blank' is empty" in msg and "data.drop_empty=true" in msg

    from splade_exp.data.collection import load_beir

    with caplog.at_level(logging.WARNING):
        assert "blank" not in load_beir(root, drop_empty=True).corpus
    assert "dropped 1 empty documents" in caplog.text

    root = write_beir(tmp_path / "beir2")
    with open(root / "queries.jsonl", "a") as fh:
        fh.write(json.dumps({"_id": "q9", "text": "   "}) + "\n")
    assert f"{root / 'queries.jsonl'}:5: query 'q9' is empty" in run_fails(toy_cfg(tmp_path, root), DataError)


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


def test_unigram_vocabulary_larger_than_the_corpus(tmp_path):
    root = write_beir(tmp_path / "beir")
    msg = run_fails(toy_cfg(tmp_path, root, "vocab=unigram", "vocab.size=5000"), ValueError)
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

    from splade_exp.cli import _package_path
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
    from splade_exp.vocab.emlm_pretrain import load_checkpoint

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
