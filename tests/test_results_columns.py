"""The results' choice columns come from the config groups of ``conf/`` present in the config, not
from a list in the code: a new group directory reaches every results row with no code edit."""
import shutil

from conftest import CONF, compose_cfg
from splade_exp.hashing import drop_keys
from splade_exp.results import choice_columns, config_groups, flatten, make_frame, read_results, write_results


def test_the_default_config_has_a_column_per_study_group_and_none_for_launch_groups(tmp_path):
    cols = choice_columns(compose_cfg([], tmp_path))
    assert cols == {"backbone": "tiny", "data": "synthetic", "head": "k1", "init": "pretrained", "loss": "flops",
                    "pretrain": "none", "prune": "grid", "vocab": "wordpiece"}
    assert {"paths", "logger", "launcher", "hydra", "model", "experiment"} <= set(config_groups())


def test_a_new_config_group_reaches_the_results_row_with_no_code_edit(tmp_path):
    conf = tmp_path / "conf"
    shutil.copytree(CONF, conf)
    (conf / "sampler").mkdir()
    (conf / "sampler" / "hard.yaml").write_text("name: hard\nnegatives_per_query: 4\nmix: [0.5, 0.5]\n")
    cfg = compose_cfg(["+sampler=hard"], tmp_path / "root", config_dir=str(conf))
    common = {"run_id": "r", "sweep": "s", "status": "completed", **choice_columns(cfg, conf),
              **flatten(drop_keys(cfg, ("paths", "hydra", "launcher", "logger")))}
    path = write_results(tmp_path / "r.parquet", make_frame([{"qk": 0, "dk": 0}], common))
    row = read_results(path).iloc[0]
    assert row["sampler"] == "hard" and row["cfg.sampler.negatives_per_query"] == 4
    assert row["cfg.sampler.mix"] == "[0.5, 0.5]"  # lists are stored as JSON
    assert row["backbone"] == "tiny" and "launcher" not in row and "logger" not in row
