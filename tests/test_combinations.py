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


@pytest.mark.parametrize("override,message", [
    ("head.pooling=mean", "head.pooling must be one of ('max', 'sum'), got 'mean'"),
    ("head.pooling_impl=fast", "head.pooling_impl must be one of ('chunked', 'naive'), got 'fast'"),
    ("head.chunk_size=0", "head.chunk_size must be a positive integer, got 0"),
    ("head.k=0", "head.k must be a positive number, got 0"),
    ("head.scale_bias=maybe", "head.scale_bias must be true or false, got 'maybe'"),
    ("head.inflate_norm=-1", "head.inflate_norm must be a positive number, got -1"),
    ("loss.topk_d=-5", "loss.topk_d must be a non-negative integer, got -5"),
])
def test_head_and_loss_values_are_checked_by_the_preflight(override, message, tmp_path):
    with pytest.raises(ConfigError) as info:
        check_config(compose_cfg([override], tmp_path))
    assert message in str(info.value)


def test_a_sweep_with_a_bad_head_value_in_one_job_stops_before_any_job(tmp_path):
    from omegaconf import open_dict, read_write

    cfg = compose_cfg(["+experiment=head_scale_demo"], tmp_path, hydra_node=True)
    with read_write(cfg.hydra), open_dict(cfg.hydra):  # the grid: two jobs, the second one bad
        cfg.hydra.sweeper.params = {"head.pooling": "max,mean"}
    with initialize_config_dir(config_dir=CONF, version_base="1.3"):
        with pytest.raises(SystemExit) as info:
            Preflight().on_multirun_start(cfg)
    msg = str(info.value)
    assert msg.startswith("1 of 2 jobs of this sweep cannot run; nothing was launched"), msg
    assert "job 1 (head.pooling=mean +experiment=head_scale_demo" in msg
    assert "head.pooling must be one of ('max', 'sum'), got 'mean'" in msg and "head.pooling=max " not in msg


@pytest.mark.slow
def test_the_command_line_launches_no_job_of_a_sweep_with_a_bad_head_value(tmp_path):
    import os
    import subprocess
    import sys
    from pathlib import Path

    env = {**os.environ, "SPLADE_EXP_ROOT": str(tmp_path), "HF_HUB_OFFLINE": "1", "WANDB_MODE": "offline"}
    out = subprocess.run([sys.executable, "-m", "splade_exp", "-m", "+experiment=smoke", "logger=none",
                          "head.pooling=max,mean"], cwd=Path(CONF).parent, env=env, capture_output=True, text=True,
                         timeout=300)
    err = out.stderr + out.stdout
    assert out.returncode != 0 and "1 of 2 jobs of this sweep cannot run; nothing was launched" in err, err
    assert "head.pooling=mean" in err and "head.pooling must be one of" in err
    assert not (tmp_path / "runs").exists() and not (tmp_path / "artifacts").exists()
