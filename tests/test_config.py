"""Every choice of every config group, and every experiment file, composes and resolves."""
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from conftest import CONF, PAPER_EXPERIMENTS, compose_cfg, experiment_args
from splade_exp.checks import missing_values

# Choices that need a value the user must give on the command line.
REQUIRED = {
    ("data", "beir"): ["data.path=/some/beir/dir"],
    ("data", "msmarco"): ["data.path=/some/msmarco/dir"],
    ("data", "clicklog"): ["data.path=/some/beir/dir", "data.source.clicks=clicks.tsv"],
    ("backbone", "local"): ["backbone.name_or_path=/some/model/dir"],
}
SKIP_GROUPS = {"experiment", "hydra"}


def group_choices():
    for group in sorted(p for p in Path(CONF).iterdir() if p.is_dir() and p.name not in SKIP_GROUPS):
        for f in sorted(group.glob("*.yaml")):
            yield group.name, f.stem


def _groups_in_defaults():
    cfg = OmegaConf.load(Path(CONF) / "config.yaml")
    names = set()
    for entry in cfg.defaults:
        if isinstance(entry, str):
            continue
        for key in entry:
            names.add(key.replace("optional ", "").strip())
    return names


@pytest.mark.parametrize("group,choice", list(group_choices()))
def test_group_choice_composes_and_resolves(group, choice, tmp_path):
    if group not in _groups_in_defaults():
        pytest.skip(f"{group} is a specialisation group selected by another choice")
    cfg = compose_cfg([f"{group}={choice}", *REQUIRED.get((group, choice), [])], tmp_path)
    plain = OmegaConf.to_container(cfg, resolve=True)
    if group in plain and isinstance(plain[group], dict) and "name" in plain[group]:
        assert plain[group]["name"], f"{group}/{choice}.yaml needs a non-empty name"
    assert plain["paths"]["root"] == str(tmp_path)


EXPERIMENTS = sorted(p.stem for p in (Path(CONF) / "experiment").glob("*.yaml"))


@pytest.mark.parametrize("name", EXPERIMENTS)
def test_experiment_composes_and_states_its_command(name, tmp_path):
    text = (Path(CONF) / "experiment" / f"{name}.yaml").read_text()
    assert text.startswith("# @package _global_"), "experiment files are global packages"
    assert f"+experiment={name}" in text, "the header must give the exact command"
    required = [o.split("=")[0] for o in PAPER_EXPERIMENTS.get(name, [])]
    assert missing_values(compose_cfg([f"+experiment={name}"], tmp_path)) == required
    cfg = compose_cfg(experiment_args(name), tmp_path)  # every job: tests/test_experiments.py
    OmegaConf.to_container(cfg, resolve=True)
    assert cfg.sweep == name


def test_every_group_file_that_builds_an_object_names_its_target():
    for f in Path(CONF).rglob("*.yaml"):
        cfg = OmegaConf.load(f)
        if isinstance(cfg, dict) and "source" in cfg:
            assert "_target_" in cfg.source, f"{f}: a data source needs _target_"


def test_unknown_choice_lists_the_available_ones(tmp_path):
    from hydra.errors import MissingConfigException

    with pytest.raises(MissingConfigException) as err:
        compose_cfg(["vocab=nonexistent"], tmp_path)
    assert "wordpiece" in str(err.value)
