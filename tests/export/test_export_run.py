"""End to end: a finished smoke run leaves runs/<run_id>/model/; evaluating that directory as the
backbone reproduces the run's metrics exactly; ``python -m splade_exp.export`` copies it with a
model card (metrics from the results file) and uploads the folder it wrote."""
from __future__ import annotations

import json
import shutil

import pandas as pd
import pytest
import torch

from conftest import compose_cfg
from splade_exp.export.__main__ import main as export_main
from splade_exp.export.model_dir import METADATA, ModelDir
from splade_exp.run import build_encoder, load_collection, run, run_id

pytestmark = pytest.mark.slow
METRICS = ["mrr@10", "recall@10", "recall@100", "ndcg@10", "flops", "l0_q", "l0_d", "posting_mean",
           "posting_max", "posting_var"]
HEADS = {"wordpiece": [], "unigram": ["vocab=unigram", "init=esplade", "vocab.size=500", "head.k=4"]}


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """head kind -> (overrides, run id, results frame); both runs share one runs root."""
    root = tmp_path_factory.mktemp("export")
    out = {}
    for kind, extra in HEADS.items():
        overrides = ["+experiment=smoke", "logger=none", *extra]
        cfg = compose_cfg(overrides, root)
        out[kind] = (overrides, run_id(cfg), run(cfg))
    return root, out


def test_a_finished_run_writes_its_model_directory(trained):
    root, runs = trained
    for kind, (overrides, rid, frame) in runs.items():
        model = root / "runs" / rid / "model"
        meta = json.loads((model / METADATA).read_text())
        assert meta["run_id"] == rid and meta["step"] == 30 and meta["pooling"] == "max"
        assert meta["vocab"]["kind"] == kind and meta["vocab"]["size"] == int(frame["vocab_size"].iloc[0])
        assert meta["head"] == {"k": 4.0 if kind == "unigram" else 1.0, "scale_bias": False, "applied": True}
        assert meta["config"]["trainer"]["max_steps"] == 30 and meta["overrides"][:len(overrides)] == overrides
        assert (model / "modules.json").is_file() and (model / "tokenizer.json").is_file()
        assert (model / "unigram_head" / "vocab.tsv").is_file() == (kind == "unigram")
        assert not list(model.parent.glob(".model*"))


@pytest.mark.parametrize("kind", list(HEADS))
def test_evaluating_the_model_directory_reproduces_the_metrics(trained, kind):
    root, runs = trained
    _, rid, frame = runs[kind]
    # the reproduction command: no vocab/init/head settings, the directory carries its head
    cfg = compose_cfg(["+experiment=smoke", "logger=none", "backbone=local",
                       f"backbone.name_or_path={root / 'runs' / rid / 'model'}", "stage=evaluate"], root)
    again = run(cfg)
    assert run_id(cfg) != rid and (again["status"] == "completed").all()
    assert int(again["vocab_size"].iloc[0]) == int(frame["vocab_size"].iloc[0])
    cols = ["qk", "dk", *METRICS]
    pd.testing.assert_frame_equal(again[cols].reset_index(drop=True), frame[cols].reset_index(drop=True),
                                  check_exact=True)


def test_head_k_divides_a_carried_head_once(trained):
    root, runs = trained
    _, rid, _ = runs["unigram"]
    model = ModelDir.read(root / "runs" / rid / "model")
    assert model.head_scaled
    # fine-tuning further from the directory with the same head.k: the head starts as saved
    cfg = compose_cfg(["+experiment=smoke", "logger=none", "backbone=local", f"backbone.name_or_path={model.path}",
                       "vocab=unigram", "head.k=4"], root)
    encoder, _, info = build_encoder(cfg, load_collection(cfg))
    assert info["head.k_applied"] is False and "head.norm_after" not in info
    torch.testing.assert_close(encoder.decoder.weight, model.unigram_decoder().weight, rtol=0, atol=0)
    # a new head on the same trunk is divided as usual
    cfg = compose_cfg(["+experiment=smoke", "logger=none", "backbone=local", f"backbone.name_or_path={model.path}",
                       "vocab=unigram", "vocab.size=500", "init=random", "head.k=4"], root)
    _, _, info = build_encoder(cfg, load_collection(cfg))
    assert info["head.k_applied"] is True
    assert info["head.norm_after"] == pytest.approx(info["head.norm_before"] / 4)


def test_export_cli_writes_a_model_card_and_uploads_that_folder(trained, tmp_path, monkeypatch, capsys):
    import huggingface_hub

    root, runs = trained
    _, rid, frame = runs["wordpiece"]
    calls = []

    class FakeApi:
        def create_repo(self, **kwargs):
            calls.append(("create_repo", kwargs))

        def upload_folder(self, **kwargs):
            folder = kwargs["folder_path"]
            calls.append(("upload_folder", {**kwargs, "files": sorted(p.name for p in __import__("pathlib").Path(
                folder).iterdir())}))

    monkeypatch.setattr(huggingface_hub, "HfApi", FakeApi)
    out = tmp_path / "export"
    assert export_main([rid, "--out", str(out), "--root", str(root), "--push-to-hub", "me/splade-smoke"]) == 0
    assert "uploaded to https://huggingface.co/me/splade-smoke" in capsys.readouterr().out

    assert calls[0] == ("create_repo", {"repo_id": "me/splade-smoke", "repo_type": "model", "private": False,
                                        "exist_ok": True})
    name, kwargs = calls[1]
    assert name == "upload_folder" and kwargs["folder_path"] == str(out) and kwargs["repo_id"] == "me/splade-smoke"
    assert {"README.md", METADATA, "model.safetensors", "modules.json", "1_SpladePooling"} <= set(kwargs["files"])

    card = (out / "README.md").read_text()
    assert card.startswith("---\nlibrary_name: sentence-transformers\n")
    for _, row in frame.iterrows():  # every grid point, with the results file's values
        assert f"| ({row.qk}, {row.dk}) | {row['mrr@10']:.4f} | {row['ndcg@10']:.4f} |" in card
    assert "| BM25 |" in card
    assert "python -m splade_exp +experiment=smoke logger=none" in card
    assert 'SparseEncoder("me/splade-smoke")' in card and "trust_remote_code" not in card
    assert "built from scratch" in card
    assert ModelDir.read(out).meta["run_id"] == rid


def test_export_cli_unigram_card_and_run_directory(trained, tmp_path):
    root, runs = trained
    _, rid, _ = runs["unigram"]
    out = tmp_path / "u"
    assert export_main([str(root / "runs" / rid), "--out", str(out), "--root", str(root)]) == 0
    card = (out / "README.md").read_text()
    assert "unigram: 500 words" in card and "trust_remote_code=True" in card and "4 (applied" in card
    assert (out / "splade_exp_unigram.py").is_file() and (out / "unigram_head" / "model.safetensors").is_file()


def test_export_cli_errors(trained, tmp_path, capsys):
    root, runs = trained
    _, rid, _ = runs["wordpiece"]
    assert export_main(["0123456789", "--out", str(tmp_path / "a"), "--root", str(root)]) == 2
    err = capsys.readouterr().err
    assert "unknown run '0123456789'" in err and rid in err and "Traceback" not in err

    unfinished = root / "runs" / "unfinished1"
    unfinished.mkdir()
    (unfinished / "config.yaml").write_text("seed: 0\n")
    assert export_main(["unfinished1", "--out", str(tmp_path / "b"), "--root", str(root)]) == 2
    assert "has not finished" in capsys.readouterr().err

    # trained, but no results file where the metadata or the root say
    moved = tmp_path / "moved"
    shutil.copytree(root / "runs" / rid / "model", moved)
    meta = json.loads((moved / METADATA).read_text())
    (moved / METADATA).write_text(json.dumps({**meta, "results": str(tmp_path / "nowhere.parquet")}))
    assert export_main([str(moved), "--out", str(tmp_path / "c"), "--root", str(tmp_path / "empty")]) == 2
    assert "its evaluation has not finished" in capsys.readouterr().err

    taken = tmp_path / "taken"
    taken.mkdir()
    assert export_main([rid, "--out", str(taken), "--root", str(root)]) == 2
    assert "already exists" in capsys.readouterr().err
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists() and not (tmp_path / "c").exists()
