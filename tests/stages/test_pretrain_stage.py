"""EMLM pretraining as a stage: a stage=pretrain job publishes the artifact, fine-tuning jobs reuse it;
a job whose artifact is missing builds it (pretrain.missing=build), waits for it (wait) or stops
with the command that builds it (error)."""
import math
import shutil
import threading
import time

import pytest

from conftest import compose_cfg
from splade_exp.checks import ConfigError, check_config
from splade_exp.results import read_results
from splade_exp.run import emlm_spec, run
from splade_exp.stages.pretrain import EmlmMissing

TINY = [
    "+experiment=smoke", "logger=none", "model=esplade_100k", "trainer.max_steps=4",
    "vocab.size=150", "pretrain.corpus=in_domain", "pretrain.steps=6", "pretrain.batch_size=16",
    "pretrain.max_length=32", "pretrain.warmup_steps=1", "pretrain.val_size=32", "pretrain.val_every_n_steps=3",
    "pretrain.log_every_n_steps=2", "pretrain.stats_docs=24", "pretrain.stats_batch_size=8",
]
OTHER = [*TINY, "pretrain.lr=3.0e-4"]  # another pretraining of the same model
STATS = ["emlm.doc-score-avg@10", "emlm.doc-score-std@10", "emlm.doc-score-avg@100", "emlm.doc-score-std@100",
         "emlm.doc-score-avg@all", "emlm.doc-score-std@all", "emlm.logit-score-std", "emlm.logit-score-std-pooled",
         "emlm.non-neg-terms-avg", "emlm.non-neg-terms-std", "emlm.accuracy", "emlm.accuracy_step0",
         "emlm.val_prior_accuracy", "emlm.val_prior_loss"]


def built(frame) -> list[str]:
    return [b for b in frame.artifacts_built.iloc[0].split(",") if b]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("pretrain_stage")
    pre = run(compose_cfg([*TINY, "stage=pretrain"], root))       # the pretraining job of a sweep
    tuned = run(compose_cfg(TINY, root))                          # its fine-tuning job
    other = run(compose_cfg([*OTHER, "stage=evaluate"], root))    # no pretraining job ran for this one
    return root, pre, tuned, other


def test_the_pretrain_stage_publishes_the_artifact_and_writes_no_results_row(runs):
    root, pre, _, _ = runs
    assert len(pre) == 1 and pre.stage.iloc[0] == "pretrain"
    assert any(b.startswith("vocab/unigram-") for b in built(pre))
    name = pre["emlm.artifact"].iloc[0]
    assert f"emlm/{name}" in built(pre) and any(b.startswith("tokens/emlm-") for b in built(pre))
    art = root / "artifacts" / "emlm" / name
    assert {"model.safetensors", "vocab.tsv", "curves.csv", "stats.json", "key.json"} <= {p.name for p in art.iterdir()}
    assert not (root / "artifacts" / "emlm" / ".work" / name).exists()  # work files removed once published
    results = [p.name for p in (root / "results" / "smoke").glob("*.parquet")]
    assert f"{name}.curves.parquet" in results
    assert pre["emlm.distinct_texts"].iloc[0] == 96  # ceil(6 steps x 16 / R=1)
    assert pre["emlm.resumed_from_step"].iloc[0] is None and pre["emlm.devices"].iloc[0] == 1


def test_the_fine_tuning_job_reuses_it(runs):
    _, pre, tuned, _ = runs
    assert not any(b.startswith(("emlm/", "vocab/", "tokens/emlm-")) for b in built(tuned))
    assert tuned["emlm.artifact"].iloc[0] == pre["emlm.artifact"].iloc[0]
    assert len(tuned) == 4 and (tuned.status == "completed").all()  # one row per pruning point
    for col in STATS:  # the same statistics, read back from the artifact
        assert tuned[col].iloc[0] == pre[col].iloc[0] and math.isfinite(tuned[col].iloc[0]), col
    assert 0 <= tuned["emlm.accuracy"].iloc[0] <= 1 and 0 <= tuned["emlm.non-neg-terms-avg"].iloc[0] <= 150
    assert (tuned.vocab_size == 150).all() and (tuned.loss == "joint_flops").all()


def test_a_job_whose_artifact_is_missing_builds_it_itself(runs):
    _, pre, _, other = runs
    assert any(b.startswith("emlm/emlm-") for b in built(other))  # pretrain.missing=build (the default)
    assert other["emlm.artifact"].iloc[0] != pre["emlm.artifact"].iloc[0]
    assert not any(b.startswith("vocab/") for b in built(other))  # the vocabulary is the same


def test_curves_file(runs):
    root, pre, _, _ = runs
    name = pre["emlm.artifact"].iloc[0]
    curves = read_results(root / "results" / "smoke" / f"{name}.curves.parquet")
    assert {"artifact_id", "pretrain", "cfg.pretrain.lr", "cfg.pretrain.corpus", "step", "split", "loss",
            "accuracy"} <= set(curves.columns)
    assert set(curves.split) == {"train", "val"}
    assert curves[curves.split == "val"].step.tolist() == [0, 3, 6]
    assert curves[curves.split == "train"].step.tolist() == [2, 4, 6]
    assert (curves.artifact_id == name).all() and curves.pretrain.iloc[0] == "emlm-in_domain-r1-lr0.0001"
    # the context-free bound of the artifact's validation labels rides along, as in its stats
    assert (curves.val_prior_accuracy == pre["emlm.val_prior_accuracy"].iloc[0]).all()
    assert 0 < curves.val_prior_accuracy.iloc[0] < 1 and curves.val_prior_loss.iloc[0] > 0


def test_missing_error_names_the_command_that_builds_it(runs):
    root = runs[0]
    cfg = compose_cfg([*TINY, "pretrain.lr=1.0e-3", "stage=evaluate", "pretrain.missing=error"], root)
    path = emlm_spec(cfg).path()
    with pytest.raises(EmlmMissing) as err:
        run(cfg)
    msg = str(err.value)
    assert msg.startswith(f"{path}: the EMLM pretraining this run needs is not built (pretrain.missing=error)")
    assert "python -m splade_exp stage=pretrain +experiment=smoke" in msg and "pretrain.lr=1.0e-3" in msg
    assert "stage=evaluate" not in msg and not path.exists() and not (path.parent / ".work" / path.name).exists()


def test_missing_wait_gives_up_after_its_timeout(runs):
    root = runs[0]
    cfg = compose_cfg([*TINY, "pretrain.lr=1.0e-3", "stage=evaluate", "pretrain.missing=wait",
                       "pretrain.wait_timeout_min=0.005", "pretrain.wait_poll_s=0.05"], root)
    t0 = time.monotonic()
    with pytest.raises(EmlmMissing, match=r"waited 0.005 min \(pretrain.wait_timeout_min\) .* built by:\n  python -m"):
        run(cfg)
    assert 0.3 <= time.monotonic() - t0 < 30 and not emlm_spec(cfg).path().exists()


def test_missing_wait_proceeds_once_the_artifact_is_published(runs):
    root, pre, _, _ = runs
    art = root / "artifacts" / "emlm" / pre["emlm.artifact"].iloc[0]
    aside = art.with_name("aside")
    art.rename(aside)  # not published yet: another job is still pretraining
    publisher = threading.Timer(1.0, lambda: aside.rename(art))
    publisher.start()
    try:
        frame = run(compose_cfg([*TINY, "stage=evaluate", "pretrain.missing=wait", "pretrain.wait_poll_s=0.1"], root))
    finally:
        publisher.join()
        if aside.exists():
            shutil.move(aside, art)
    assert frame["emlm.artifact"].iloc[0] == art.name and not any(b.startswith("emlm/") for b in built(frame))


def test_bad_missing_value_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match=r"pretrain.missing must be one of \('build', 'wait', 'error'\)"):
        check_config(compose_cfg([*TINY, "pretrain.missing=later"], tmp_path))
    with pytest.raises(ConfigError, match=r"pretrain.checkpoint_every_n_steps must be an integer >= 0"):
        check_config(compose_cfg([*TINY, "pretrain.checkpoint_every_n_steps=-5"], tmp_path))
    with pytest.raises(ConfigError, match=r"pretrain.corpus=/nowhere.txt: not 'in_domain', 'general' or an existing"):
        check_config(compose_cfg([*TINY, "pretrain.corpus=/nowhere.txt"], tmp_path))


def test_the_pretraining_first_commands_of_the_sweeps_readme_compose(tmp_path):
    """sweeps/README.md, *Pretraining first*: a stage=pretrain array, then a dependent fine-tuning array."""
    files = {"collection.tsv": "0\tpassage\n", "queries.train.tsv": "1\tquery\n", "queries.dev.small.tsv": "2\tq\n",
             "qrels.train.tsv": "1\t0\t0\t1\n", "qrels.dev.small.tsv": "2\t0\t0\t1\n", "general.txt": "some text\n"}
    for name, text in files.items():  # the paper file's data, named on the command line
        (tmp_path / name).write_text(text)
    data = [f"data.path={tmp_path}", f"data.general_corpus={tmp_path / 'general.txt'}"]
    pre = compose_cfg(["+experiment=pretrain_study", *data, "launcher=slurm_multigpu", "stage=pretrain",
                       "hydra.launcher.partition=gpu", "hydra.launcher.tasks_per_node=4",
                       "hydra.launcher.timeout_min=2880"], tmp_path, hydra_node=True)
    assert pre.stage == "pretrain" and pre.trainer.devices == 4 and pre.pretrain.enabled
    tune = compose_cfg(["+experiment=pretrain_study", *data, "launcher=slurm", "hydra.launcher.partition=gpu",
                        "pretrain.missing=error", "+hydra.launcher.additional_parameters.dependency=afterok:1234"],
                       tmp_path, hydra_node=True)
    assert tune.hydra.launcher.additional_parameters.dependency == "afterok:1234"
    assert tune.stage == "train" and tune.pretrain.missing == "error"
    # the same pretraining: the fine-tuning job looks up the artifact the pretraining job publishes
    assert emlm_spec(pre).path() == emlm_spec(tune).path()


def test_the_artifact_key_follows_what_changes_the_pretraining(tmp_path):
    corpus, words = tmp_path / "general.txt", tmp_path / "words.txt"
    corpus.write_text("alpha beta\ngamma delta\n")
    words.write_text("alpha beta gamma\n")
    base = [*TINY, f"pretrain.corpus={corpus}", f"vocab.corpus={words}"]

    def path(*extra):
        keys = {e.split("=")[0] for e in extra}
        return emlm_spec(compose_cfg([*(o for o in base if o.split("=")[0] not in keys), *extra], tmp_path)).path()

    first = path()
    # how and where it runs is not part of the key
    assert path("pretrain.missing=wait", "pretrain.checkpoint_every_n_steps=7", "trainer.devices=4",
                "vocab.count_processes=1", "pretrain.wait_poll_s=5") == first
    # what it computes is
    for extra in (["pretrain.lr=3.0e-4"], ["pretrain.repetition=4"], ["seed=1"], ["trainer.precision=bf16-mixed"],
                  ["vocab.size=120"], ["init.bias=zero"]):
        assert path(*extra) != first, extra
    time.sleep(0.01)
    corpus.write_text("alpha beta\ngamma delta\nepsilon\n")  # the pretraining corpus changed
    second = path()
    words.write_text("alpha beta gamma delta\n")           # the vocabulary's corpus changed
    assert len({first, second, path()}) == 3
