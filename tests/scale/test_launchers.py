"""Launcher profiles: every profile composes with every sweep, devices follow the launcher, the grid
is one job array, run ids do not depend on the launcher, and DDP is started by the launcher only."""
import os
import re
import shutil
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import ConfigCompositionException
from omegaconf import OmegaConf, read_write

from conftest import CONF, compose_cfg, experiment_args
from splade_exp.launch import prepare_process
from splade_exp.run import run_id

ROOT = Path(CONF).parent
PROFILES = sorted(p.stem for p in (Path(CONF) / "launcher").glob("*.yaml"))
EXPERIMENTS = sorted(p.stem for p in (Path(CONF) / "experiment").glob("*.yaml"))
SUBMITIT = [p for p in PROFILES if p != "local"]


def resolved(overrides, root) -> dict:
    """The resolved job config, plus the resolved launcher and sweeper under ``hydra``."""
    cfg = compose_cfg(overrides, root, hydra_node=True)
    hydra = {k: OmegaConf.to_container(cfg.hydra[k], resolve=True) for k in ("launcher", "sweeper")}
    plain = {k: OmegaConf.to_container(cfg[k], resolve=True) if OmegaConf.is_config(cfg[k]) else cfg[k]
             for k in cfg if k != "hydra"}
    return {**plain, "hydra": hydra}


def grid_batches(plain: dict) -> list[list[list[str]]]:
    """The sweep's jobs as Hydra's basic sweeper batches them (one batch = one launch = one array)."""
    params = plain["hydra"]["sweeper"]["params"] or {}
    overrides = OverridesParser.create().parse_overrides([f"{k}={v}" for k, v in params.items()])
    return BasicSweeper.split_arguments(overrides, plain["hydra"]["sweeper"]["max_batch_size"])


def test_the_four_profiles_exist():
    assert set(PROFILES) >= {"local", "submitit_local", "slurm", "slurm_multigpu"}


@pytest.mark.parametrize("experiment", EXPERIMENTS)
@pytest.mark.parametrize("profile", PROFILES)
def test_profile_composes_with_every_sweep(profile, experiment, tmp_path):
    plain = resolved([f"launcher={profile}", *experiment_args(experiment)], tmp_path)
    launcher, trainer = plain["hydra"]["launcher"], plain["trainer"]
    assert len(grid_batches(plain)) == 1, "the whole grid goes out in one launch (one Slurm job array)"
    if profile == "local":
        assert launcher["_target_"].endswith("BasicLauncher")
        return
    assert (trainer["devices"], trainer["num_nodes"]) == (launcher["tasks_per_node"], launcher["nodes"])
    assert launcher["name"] == plain["sweep"] == experiment
    assert launcher["submitit_folder"].startswith(str(tmp_path / "multirun" / experiment))
    if profile.startswith("slurm"):
        assert launcher["_target_"].endswith("SlurmLauncher")
        assert launcher["gpus_per_node"] == launcher["tasks_per_node"]
        assert launcher["signal_delay_s"] > 0 and launcher["max_num_timeout"] > 0, "timed-out tasks are requeued"
    if profile == "slurm_multigpu":
        assert launcher["tasks_per_node"] > 1 and trainer["strategy"] == "ddp"


def test_devices_follow_tasks_per_node_and_nodes(tmp_path):
    plain = resolved(["launcher=slurm_multigpu", "hydra.launcher.tasks_per_node=8", "hydra.launcher.nodes=2"], tmp_path)
    assert (plain["trainer"]["devices"], plain["trainer"]["num_nodes"]) == (8, 2)
    assert plain["hydra"]["launcher"]["gpus_per_node"] == 8


@pytest.mark.parametrize("profile", SUBMITIT)
def test_a_key_the_launcher_does_not_know_is_a_compose_error(profile, tmp_path):
    """So composing every profile (above) catches keys of a newer launcher release, e.g. srun_args."""
    conf = tmp_path / "conf"
    shutil.copytree(CONF, conf)
    path = conf / "launcher" / f"{profile}.yaml"
    text = path.read_text()
    path.write_text(text.replace("\nhydra:\n  launcher:\n", "\nhydra:\n  launcher:\n    srun_args: [--cpu-bind=none]\n"))
    assert "srun_args" in path.read_text()
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(conf), version_base="1.3"):
        with pytest.raises(ConfigCompositionException, match="srun_args"):
            compose(config_name="config", overrides=[f"launcher={profile}"], return_hydra_config=True)


def test_run_id_is_the_same_under_every_launcher(tmp_path):
    ids = {p: run_id(compose_cfg(["+experiment=smoke", f"launcher={p}"], tmp_path)) for p in PROFILES}
    assert len(set(ids.values())) == 1, ids


# --- who starts the ranks -------------------------------------------------------------------------
LAUNCH_ENV = ("LOCAL_RANK", "RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT", "LOCAL_WORLD_SIZE",
              "SLURM_NTASKS", "SLURM_JOB_NAME", "TORCHELASTIC_RUN_ID", "SUBMITIT_EXECUTOR")
ENV_BEFORE = {key: os.environ.get(key) for key in LAUNCH_ENV}


@pytest.fixture
def clean_env(monkeypatch):
    for key in LAUNCH_ENV:
        monkeypatch.setenv(key, "")  # records the value before the test (or its absence) for teardown
        monkeypatch.delenv(key)
    return monkeypatch


def job_cfg(overrides, tmp_path, multirun: bool):
    cfg = compose_cfg(overrides, tmp_path, hydra_node=True)
    with read_write(cfg.hydra):
        cfg.hydra.mode = "MULTIRUN" if multirun else "RUN"
    HydraConfig.instance().set_config(cfg)
    return cfg


def test_local_multirun_refuses_lightnings_own_ddp_launcher(tmp_path, clean_env):
    cfg = job_cfg(["trainer.devices=2"], tmp_path, multirun=True)
    with pytest.raises(RuntimeError, match="launcher=slurm_multigpu"):
        prepare_process(cfg)


def test_single_run_or_single_device_is_allowed(tmp_path, clean_env):
    prepare_process(job_cfg(["trainer.devices=2"], tmp_path, multirun=False))
    prepare_process(job_cfg([], tmp_path, multirun=True))


def test_submitit_tasks_become_ranks(tmp_path, clean_env):
    """Task 1 of a 2-task submitit job exports what Lightning reads to join, instead of spawning."""
    for key, value in {"SUBMITIT_EXECUTOR": "local", "SUBMITIT_LOCAL_JOB_ID": "42", "SUBMITIT_LOCAL_NTASKS": "2",
                       "SUBMITIT_LOCAL_JOB_NUM_NODES": "1", "SUBMITIT_LOCAL_NODEID": "0",
                       "SUBMITIT_LOCAL_GLOBALID": "1", "SUBMITIT_LOCAL_LOCALID": "1"}.items():
        clean_env.setenv(key, value)
    cfg = job_cfg(["launcher=submitit_local", "hydra.launcher.tasks_per_node=2"], tmp_path, multirun=True)
    assert cfg.trainer.devices == 2
    prepare_process(cfg)  # no refusal: the ranks exist already
    assert (os.environ["RANK"], os.environ["LOCAL_RANK"], os.environ["WORLD_SIZE"]) == ("1", "1", "2")
    assert os.environ["MASTER_ADDR"] and int(os.environ["MASTER_PORT"]) > 0


# --- sweeps/README.md -----------------------------------------------------------------------------
def test_sweeps_readme_job_counts_match_the_experiment_files(tmp_path):
    text = (ROOT / "sweeps" / "README.md").read_text()
    rows = re.findall(r"^\| *\w+ *\| *`conf/experiment/(\w+)\.yaml` *\| *(\d+) *\|", text, re.M)
    table = {name: int(jobs) for name, jobs in rows}
    assert set(table) == set(EXPERIMENTS), "one row per conf/experiment file"
    for name, jobs in table.items():
        plain = resolved(experiment_args(name), tmp_path)
        assert sum(len(batch) for batch in grid_batches(plain)) == jobs, name


def test_rank_variables_set_by_these_tests_are_gone():
    """Runs last in this file: prepare_process exported rank variables inside clean_env tests only."""
    assert {key: os.environ.get(key) for key in LAUNCH_ENV} == ENV_BEFORE
