"""Backbone builders (``conf/backbone/*.yaml`` name them with ``_target_``): one identity per model,
their own checks, and every choice's file naming one."""
import shutil
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from conftest import CONF, compose_cfg
from splade_exp.checks import ConfigError, check_config
from splade_exp.models.backbones import Built, Pretrained, builder

DATA = {"source": "s"}


def key(bcfg, tmp_path, seed=0):
    return builder(OmegaConf.create(bcfg)).key(seed, DATA, tmp_path / "fingerprints")


@pytest.mark.parametrize("choice", sorted(p.stem for p in (Path(CONF) / "backbone").glob("*.yaml")))
def test_every_backbone_choice_names_a_builder(choice, tmp_path):
    extra = ["backbone.name_or_path=/some/model/dir"] if choice == "local" else []
    cfg = compose_cfg([f"backbone={choice}", *extra], tmp_path)
    expected = Pretrained if cfg.backbone.get("name_or_path") else Built
    assert type(builder(cfg.backbone)) is expected, "a file with defaults: [tiny] inherits tiny's builder"


def test_the_key_leaves_out_the_name_and_keeps_what_builds_the_model(tmp_path):
    tiny = OmegaConf.to_container(compose_cfg([], tmp_path).backbone, resolve=True)
    renamed = {**tiny, "name": "my_tiny"}
    assert key(tiny, tmp_path) == key(renamed, tmp_path), "two names of one model share its artifacts"
    assert key(tiny, tmp_path) != key(tiny, tmp_path, seed=1)
    assert key(tiny, tmp_path) != key({**tiny, "model_type": "modernbert"}, tmp_path)
    assert key(tiny, tmp_path) != key({**tiny, "mlm": {**tiny["mlm"], "steps": 1}}, tmp_path)
    assert key(tiny, tmp_path)["data"] == DATA
    hub = {"_target_": "splade_exp.models.backbones.Pretrained", "name": "bert_base",
           "name_or_path": "bert-base-uncased"}
    assert key(hub, tmp_path) == key({**hub, "name": "other", "tokenizer": {"vocab_size": 9}}, tmp_path)


def test_a_local_directory_is_keyed_by_its_content_not_its_path(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    (a / "config.json").write_text("{}")
    shutil.copytree(a, b)
    local = {"_target_": "splade_exp.models.backbones.Pretrained", "name": "local"}
    ka, kb = key({**local, "name_or_path": str(a)}, tmp_path), key({**local, "name_or_path": str(b)}, tmp_path)
    assert ka == kb and str(a) not in str(ka)
    (b / "config.json").write_text('{"x": 1}')
    assert key({**local, "name_or_path": str(b)}, tmp_path) != ka


@pytest.mark.parametrize("overrides,message", [
    (["backbone.name_or_path=/some/dir"],
     "backbone=tiny builds its model from config, so backbone.name_or_path=/some/dir"),
    (["backbone=bert_base", "backbone.name_or_path=null"], "backbone=bert_base: backbone.name_or_path must name"),
    (["backbone._target_=splade_exp.losses.MarginMSE"], "is not a splade_exp.models.backbones.Backbone subclass"),
    (["backbone._target_=splade_exp.nowhere.Built"], "backbone._target_=splade_exp.nowhere.Built: cannot import"),
])
def test_a_backbone_config_that_cannot_work_is_a_config_error(overrides, message, tmp_path):
    with pytest.raises(ConfigError) as info:
        check_config(compose_cfg(overrides, tmp_path))
    assert message in str(info.value)
