import pandas as pd

from splade_exp.analysis import (
    bm25_budget,
    load_results,
    model_curves,
    model_label,
    pareto_frontier,
)

from analysis_fixtures import results_dir  # noqa: F401  (fixture)


def test_pareto_frontier_hand_example():
    pts = pd.DataFrame({"flops": [1, 2, 3, 4, 2], "mrr@10": [0.1, 0.3, 0.2, 0.5, 0.25]})
    front = pareto_frontier(pts, "mrr@10")
    assert list(zip(front["flops"], front["mrr@10"])) == [(1, 0.1), (2, 0.3), (4, 0.5)]


def test_pareto_frontier_ties_and_missing_values():
    pts = pd.DataFrame(
        {
            "name": ["a", "b", "c", "d", "e"],
            "flops": [2.0, 2.0, 1.0, 3.0, float("nan")],
            "mrr@10": [0.3, 0.3, 0.3, 0.4, 0.9],
        }
    )
    front = pareto_frontier(pts, "mrr@10")
    # (1, 0.3) dominates both (2, 0.3) points; NaN cost ignored
    assert list(front["name"]) == ["c", "d"]
    dup = pd.DataFrame({"name": ["x", "y"], "flops": [1.0, 1.0], "mrr@10": [0.2, 0.2]})
    assert list(pareto_frontier(dup, "mrr@10")["name"]) == ["x"]
    assert list(pareto_frontier(dup.iloc[::-1], "mrr@10")["name"]) == ["y"]


def test_model_label_skips_constant_columns_and_prefers_model():
    df = pd.DataFrame(
        {
            "backbone": ["bert", "bert", "bert"],
            "vocab": ["a", "b", "b"],
            "pretrain": ["none", "none", "emlm"],
            "model": ["", "", "My model"],
        }
    )
    assert list(model_label(df)) == ["vocab=a, pretrain=none", "vocab=b, pretrain=none", "My model"]


def test_model_curves_sorted_by_cost(results_dir):
    df = load_results(results_dir)
    vocab = df[df["sweep"] == "vocab_ablation"]
    curves = model_curves(vocab, "mrr@10")
    assert set(curves["model"]) == {
        "vocab=bert-30k", "vocab=bert-100k", "vocab=splade-en-60k", "vocab=wordpiece-old"
    }
    for _, pts in curves.groupby("model"):
        assert len(pts) == 4
        assert pts["flops"].is_monotonic_increasing
    two_seeds = curves[curves["model"] == "vocab=bert-30k"]
    assert (two_seeds["n_runs"] == 2).all()
    # diverged / failed runs never produce points
    head = model_curves(df[df["sweep"] == "head_scale"], "mrr@10", model_cols=("backbone", "head_k"))
    assert "backbone=distilbert, head_k=16" not in set(head["model"])


def test_bm25_budget(results_dir):
    bm = bm25_budget(load_results(results_dir))
    assert len(bm) == 1
    assert bm.loc[0, "flops"] == 0.8 and bm.loc[0, "mrr@10"] == 0.187
    assert bm25_budget(pd.DataFrame({"system": ["splade"], "flops": [1.0]})).empty


def test_model_label_missing_values_and_fallbacks():
    # a column only older files lack does not clutter labels already told apart
    df = pd.DataFrame({"vocab": ["a", "b", "old"], "head_k": [1.0, 1.0, float("nan")]})
    assert list(model_label(df, ("vocab", "head_k"))) == ["vocab=a", "vocab=b", "vocab=old"]
    # ... but separates runs that nothing else separates
    df = pd.DataFrame({"vocab": ["a", "a"], "head_k": [2.0, float("nan")]})
    labels = list(model_label(df, ("vocab", "head_k")))
    assert labels[0] != labels[1]
    # no identifying column at all: each run is its own model
    df = pd.DataFrame({"run_id": ["r1", "r2"], "vocab": ["", ""]})
    assert list(model_label(df)) == ["r1", "r2"]
    # one configuration only: its constant values
    df = pd.DataFrame({"backbone": ["bert", "bert"], "vocab": ["v", "v"]})
    assert list(model_label(df)) == ["backbone=bert, vocab=v"] * 2


def test_bm25_budget_keeps_each_collection():
    rows = pd.DataFrame({
        "run_id": ["b1", "b1", "b2"], "system": ["bm25"] * 3, "data": ["x", "x", "y"],
        "sweep": ["s1", "s2", "s1"], "mrr@10": [0.2, 0.2, 0.3], "flops": [1.0, 1.0, 2.0],
    })
    bm = bm25_budget(rows)
    assert list(bm["data"]) == ["x", "y"] and list(bm["flops"]) == [1.0, 2.0]
