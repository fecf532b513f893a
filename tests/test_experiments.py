"""The study experiment files: paper scale by default, ``<name>_demo`` overlays that shrink them.

The paper files must hold the papers' values (written out here from the method notes, not read
back from the groups), and every demo overlay must compose, job by job, to exactly the config of
its flat writing in ``tests/experiment_flat/`` (the demo settings key by key, no paper file
underneath): the paper file and the overlay together may not change one demo value."""
import shutil
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from conftest import CONF, PAPER_EXPERIMENTS, compose_cfg, experiment_args
from splade_exp.checks import ConfigError, Preflight, missing_values, sweep_jobs

FLAT = Path(__file__).resolve().parent / "experiment_flat"
STUDIES = sorted(PAPER_EXPERIMENTS)


def jobs(name: str, root: Path, config_dir: str = CONF) -> list[tuple[list[str], dict]]:
    """(overrides, resolved job config) of every job of the sweep ``name``."""
    base = compose_cfg(experiment_args(name), root, hydra_node=True, config_dir=config_dir)
    return [(job, OmegaConf.to_container(compose_cfg(job, root, config_dir=config_dir), resolve=True))
            for job in sweep_jobs(base)]


def grid(job: list[str]) -> dict:
    """A job's grid values (its overrides but the experiment and the required paths)."""
    return dict(o.split("=", 1) for o in job if not o.startswith(("+experiment=", "data.path=", "paths.root=")))


@pytest.mark.parametrize("study", STUDIES)
def test_demo_overlay_composes_to_the_flat_demo_key_by_key(study, tmp_path):
    conf = tmp_path / "conf"
    shutil.copytree(CONF, conf)
    shutil.copy(FLAT / f"{study}_demo.yaml", conf / "experiment" / f"{study}_flat.yaml")
    flat = jobs(f"{study}_flat", tmp_path / "root", str(conf))
    overlay = jobs(f"{study}_demo", tmp_path / "root", str(conf))
    assert len(overlay) == len(flat) > 1
    for (fjob, fcfg), (ojob, ocfg) in zip(flat, overlay):
        assert ocfg == fcfg, (fjob, ojob)
        assert ocfg["sweep"] == f"{study}_demo"


@pytest.mark.parametrize("study", STUDIES)
def test_demo_and_paper_write_to_different_results_directories(study, tmp_path):
    demo = compose_cfg([f"+experiment={study}_demo"], tmp_path)
    paper = compose_cfg(experiment_args(study), tmp_path)
    assert (demo.sweep, paper.sweep) == (f"{study}_demo", study)
    assert demo.data.name == "synthetic" and paper.data.name == "msmarco"
    assert not missing_values(demo), "a demo runs without any path"


# The papers' values (METHOD §2, §4-§6, §8): SPLADE on MS MARCO lr 2e-5, batch 128, documents of
# 256 tokens, 6k warm-up steps, FLOPS ramp T = 50k; top-k (500, 1000) with 32K, (1000, 2000) with
# 100K; lambdas 3e-4 / 1e-4 (FLOPS) and 1e-3 (joint); 100K unigrams; EMLM 600K steps.
MSMARCO = {"lr": 2e-5, "batch_size": 128, "warmup_steps": 6000}


def check_msmarco_recipe(cfg: dict) -> None:
    assert {k: cfg["trainer"][k] for k in MSMARCO} == MSMARCO
    assert cfg["data"]["name"] == "msmarco" and cfg["data"]["doc_max_length"] == 256
    assert cfg["data"]["path"] == "/some/msmarco/dir"
    assert cfg["loss"]["lambda_warmup_steps"] == 50_000


def test_vocab_ablation_holds_p1(tmp_path):
    by_model = {}
    for job, cfg in jobs("vocab_ablation", tmp_path):
        check_msmarco_recipe(cfg)
        assert cfg["backbone"]["name"] == "bert_base"
        by_model[grid(job)["model"]] = cfg
    assert set(by_model) == {"splade_32k", "random_100k", "esplade_100k"}
    wp = by_model["splade_32k"]
    assert (wp["vocab"]["kind"], wp["init"]["kind"], wp["pretrain"]["enabled"]) == ("wordpiece", "pretrained", False)
    assert (wp["loss"]["name"], wp["loss"]["lambda_q"], wp["loss"]["lambda_d"]) == ("flops", 3e-4, 1e-4)
    assert (wp["loss"]["topk_q"], wp["loss"]["topk_d"]) == (500, 1000)
    for name, init, pretrained in (("random_100k", "random", False), ("esplade_100k", "esplade", True)):
        cfg = by_model[name]
        assert (cfg["vocab"]["kind"], cfg["vocab"]["size"], cfg["init"]["kind"]) == ("unigram", 100_000, init)
        assert (cfg["loss"]["name"], cfg["loss"]["lambda_joint"]) == ("joint_flops", 1e-3)
        assert (cfg["loss"]["topk_q"], cfg["loss"]["topk_d"]) == (1000, 2000)
        assert cfg["pretrain"]["enabled"] is pretrained
    assert by_model["esplade_100k"]["pretrain"]["steps"] == 600_000


def test_pretrain_study_holds_p2(tmp_path):
    found = jobs("pretrain_study", tmp_path)
    points = set()
    for job, cfg in found:
        check_msmarco_recipe(cfg)
        assert (cfg["vocab"]["size"], cfg["init"]["kind"], cfg["loss"]["name"]) == (100_000, "esplade", "joint_flops")
        assert (cfg["loss"]["topk_q"], cfg["loss"]["topk_d"], cfg["loss"]["lambda_joint"]) == (1000, 2000, 1e-3)
        p = cfg["pretrain"]
        assert p["enabled"] and p["steps"] == 600_000
        assert cfg["model"] == f"esplade-100K {p['name']}"
        points.add((p["corpus"], p["repetition"], p["lr"]))
    assert points == {(c, r, lr) for c in ("general", "in_domain") for r in (1, 4) for lr in (1e-4, 1e-3)}


def test_head_scale_holds_p3(tmp_path):
    found = jobs("head_scale", tmp_path)
    backbones = ["modernbert_base", "ettin_17m", "ettin_32m", "ettin_68m", "ettin_150m"]
    assert {(cfg["backbone"]["name"], cfg["head"]["k"]) for _, cfg in found} == {
        (b, k) for b in backbones for k in (1, 2, 4, 8, 16, 32)}
    for _, cfg in found:
        check_msmarco_recipe(cfg)
        assert cfg["head"]["scale_bias"] is False and cfg["vocab"]["kind"] == "wordpiece"
        assert (cfg["loss"]["lambda_q"], cfg["loss"]["lambda_d"]) == (3e-4, 1e-4)


# --- running a paper file without its data ---------------------------------------------------------
def test_preflight_stops_a_paper_sweep_without_data_path(tmp_path):
    from hydra import initialize_config_dir

    cfg = compose_cfg(["+experiment=pretrain_study"], tmp_path, hydra_node=True)
    with initialize_config_dir(config_dir=CONF, version_base="1.3"):
        with pytest.raises(SystemExit) as info:
            Preflight().on_multirun_start(cfg)
    msg = str(info.value)
    n = len(sweep_jobs(cfg))
    assert msg.startswith(f"{n} of {n} jobs of this sweep cannot run; nothing was launched")
    assert "data.path is required and not set" in msg and "pass data.path=..." in msg


def test_a_single_paper_run_without_data_names_the_key(tmp_path):
    from splade_exp.run import run

    with pytest.raises(ConfigError, match=r"^data.path is required and not set .*pass data.path=\.\.\."):
        run(compose_cfg(["+experiment=vocab_ablation", "model=esplade_100k"], tmp_path))
    assert not (tmp_path / "runs").exists()


def test_missing_values_reports_each_key_once_without_resolving():
    cfg = OmegaConf.create({"data": {"path": "???", "source": {"path": "${data.path}"}}, "grid": [[0, 0], "???"],
                            "alias": "${data}"})
    assert missing_values(cfg) == ["data.path", "grid[1]"]


# --- -m --cfg job -----------------------------------------------------------------------------------
def test_cfg_job_with_multirun_prints_every_job_of_the_sweep(capsys):
    from splade_exp.cli import show_sweep_configs

    assert show_sweep_configs(["+experiment=vocab_ablation", "-m", "--cfg", "job"])
    out = capsys.readouterr().out
    parts = out.split("# job ")[1:]
    assert [p.split("\n", 1)[0] for p in parts] == [
        f"{i} of 3: model={m} +experiment=vocab_ablation" for i, m in enumerate(("splade_32k", "random_100k", "esplade_100k"))]
    configs = [OmegaConf.create(p.split("\n", 1)[1]) for p in parts]
    assert [(c.loss.topk_q, c.loss.topk_d) for c in configs] == [(500, 1000), (1000, 2000), (1000, 2000)]
    assert [c.pretrain.get("steps") for c in configs] == [None, None, 600_000]
    assert all(OmegaConf.is_missing(c.data, "path") and "hydra" not in c for c in configs)


def test_cfg_job_expands_the_command_lines_lists_too(capsys):
    from splade_exp.cli import show_sweep_configs

    assert show_sweep_configs(["-m", "+experiment=head_scale_demo", "backbone=splade_tiny,minilm", "--cfg", "job"])
    headers = [line for line in capsys.readouterr().out.splitlines() if line.startswith("# job ")]
    assert len(headers) == 12 and headers[0] == "# job 0 of 12: backbone=splade_tiny head.k=1 +experiment=head_scale_demo"


def test_cfg_without_multirun_is_left_to_hydra():
    from splade_exp.cli import show_sweep_configs

    assert not show_sweep_configs(["+experiment=vocab_ablation", "--cfg", "job"])
    assert not show_sweep_configs(["+experiment=vocab_ablation", "-m"])
    assert not show_sweep_configs(["-m", "--cfg", "job", "-cd", "/other/conf"])  # another config: Hydra's call
