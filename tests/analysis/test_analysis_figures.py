import logging

import pandas as pd
import pytest

from splade_exp.analysis import (
    load_curves,
    load_results,
    plot_emlm_curves,
    plot_frontier,
    plot_head_scale,
    plot_posting_variance,
    strictest_point,
)

from analysis_fixtures import results_dir  # noqa: F401  (fixture)

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def assert_png(path):
    assert path is not None and path.exists()
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE and len(data) > 1000
    assert not list(path.parent.glob(".*.tmp"))


@pytest.fixture(scope="module")
def df(results_dir):
    return load_results(results_dir)


@pytest.mark.parametrize("metric", ["mrr@10", "recall@10"])
def test_plot_frontier(df, tmp_path, metric):
    assert_png(plot_frontier(df[df["sweep"].isin(["vocab_ablation", "baselines"])], metric,
                             tmp_path / f"frontier_{metric}.png"))


def test_plot_emlm_curves(results_dir, tmp_path):
    assert_png(plot_emlm_curves(load_curves(results_dir), tmp_path / "emlm.png"))


def test_plot_posting_variance(df, tmp_path):
    assert strictest_point(df) == (5, 10)
    assert_png(plot_posting_variance(df[df["sweep"] == "vocab_ablation"], "mrr@10",
                                     tmp_path / "posting.png"))


def test_plot_head_scale(df, tmp_path):
    assert_png(plot_head_scale(df[df["sweep"] == "head_scale"], "mrr@10", tmp_path / "head.png"))


def test_strictest_point_rule():
    pts = pd.DataFrame({"qk": [0, 7, 5, 0, 3], "dk": [0, 20, 10, 10, 40]})
    assert strictest_point(pts) == (5, 10)
    assert strictest_point(pd.DataFrame({"qk": [0, 0], "dk": [0, 10]})) == (0, 10)
    assert strictest_point(pd.DataFrame({"qk": [0], "dk": [0]})) is None


def test_figures_skip_without_data(tmp_path, caplog):
    empty = pd.DataFrame({"run_id": ["a"], "system": ["splade"], "status": ["completed"],
                          "qk": [0], "dk": [0], "mrr@10": [0.3]})
    with caplog.at_level(logging.INFO, logger="splade_exp.analysis"):
        assert plot_frontier(empty, "mrr@10", tmp_path / "a.png") is None
        assert plot_emlm_curves(pd.DataFrame(), tmp_path / "b.png") is None
        assert plot_posting_variance(empty, "mrr@10", tmp_path / "c.png") is None
        assert plot_head_scale(empty, "mrr@10", tmp_path / "d.png") is None
    assert not list(tmp_path.iterdir())
    assert "skipped" in caplog.text


def test_head_scale_draws_an_inflated_backbone_as_a_line_of_its_own():
    from splade_exp.analysis.figures import head_scale_line

    df = pd.DataFrame({"backbone": ["tiny", "tiny", "minilm"], "cfg.head.inflate_norm": [4.0, None, None]})
    assert list(head_scale_line(df)) == ["tiny (head norm 4)", "tiny", "minilm"]
    assert list(head_scale_line(df.drop(columns="cfg.head.inflate_norm"))) == ["tiny", "tiny", "minilm"]


def test_emlm_curves_draw_the_context_free_bound(tmp_path):
    curves = pd.DataFrame({"artifact_id": ["emlm-a", "emlm-a", "emlm-b"], "pretrain": ["p", "p", "q"],
                           "split": "val", "step": [0, 100, 0], "loss": [5.0, 3.0, 5.0],
                           "accuracy": [0.2, 0.6, 0.2], "val_prior_accuracy": [0.25, 0.25, None],
                           "val_prior_loss": [4.5, 4.5, None]})
    path = plot_emlm_curves(curves, tmp_path / "bound.png")
    plain = plot_emlm_curves(curves.drop(columns=["val_prior_accuracy", "val_prior_loss"]), tmp_path / "plain.png")
    assert_png(path)
    assert_png(plain)
    assert path.read_bytes() != plain.read_bytes()  # the dotted bound and its legend entry are drawn
