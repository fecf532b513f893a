"""Choices of different groups that cannot go together stop the preflight, naming the keys: before
the first job of a sweep, not after a backbone build or a unigram count."""
import pytest
from hydra import initialize_config_dir

from conftest import CONF, compose_cfg
from splade_exp.checks import ConfigError, Preflight, check_config, sweep_jobs


@pytest.mark.parametrize("overrides,message", [
    (["vocab=wordpiece", "init=esplade"], r"init=esplade builds unigram rows .* needs vocab=unigram"),
    (["vocab=unigram", "init=pretrained"], r"init=pretrained keeps the backbone's WordPiece decoder .* vocab=unigram"),
    (["loss=margin_mse"], r"loss=margin_mse: its ranking loss distils teacher scores, but the data carry none"),
    (["loss=kl"], r"loss=kl: .* data.distillation=.* data.teacher_scores="),
    (["loss=kl", "loss.ranking.temperature=0"], r"loss.ranking: temperature must be > 0"),
])
def test_a_bad_combination_is_a_config_error_naming_the_keys(overrides, message, tmp_path):
    with pytest.raises(ConfigError, match=message):
        check_config(compose_cfg(overrides, tmp_path))


@pytest.mark.parametrize("overrides", [
    ["vocab=unigram", "init=esplade"], ["vocab=unigram", "init=random"], ["vocab=wordpiece", "init=random"],
    ["vocab=wordpiece", "init=pretrained"], ["+experiment=distil_demo", "loss=margin_mse"],
    ["+experiment=distil_demo", "loss=margin_mse_ce"]])
def test_the_combinations_that_can_run_pass(overrides, tmp_path):
    check_config(compose_cfg(overrides, tmp_path))


def test_a_sweep_with_one_bad_combination_stops_before_any_job_naming_it(tmp_path):
    # the distillation sweep (loss=flops,margin_mse,kl,margin_mse_ce) on data without teacher scores
    cfg = compose_cfg(["+experiment=distil_demo", "data.distillation=null"], tmp_path, hydra_node=True)
    with initialize_config_dir(config_dir=CONF, version_base="1.3"):
        with pytest.raises(SystemExit) as info:
            Preflight().on_multirun_start(cfg)
    msg = str(info.value)
    assert len(sweep_jobs(cfg)) == 4
    assert msg.startswith("3 of 4 jobs of this sweep cannot run; nothing was launched"), msg
    assert "loss=margin_mse " in msg and "loss=kl " in msg and "loss=margin_mse_ce " in msg and "data carry none" in msg
