import math

import numpy as np
import pandas as pd
import pytest

from splade_exp.analysis import emlm_stats_table, load_results, results_table, to_latex, to_markdown

from analysis_fixtures import results_dir  # noqa: F401  (fixture)


def _rows():
    base = {"run_id": "r1", "system": "splade", "status": "completed", "vocab": "v", "flops": 2.0,
            "recall@10": 0.6, "l0_q": 20.0, "l0_d": 100.0}
    return pd.DataFrame(
        [
            {**base, "qk": 0, "dk": 0, "mrr@10": 0.40},
            {**base, "qk": 5, "dk": 10, "mrr@10": 0.30, "flops": 0.5},
        ]
    )


def test_relative_change_hand_example():
    table = results_table(_rows())
    assert list(table.columns[:4]) == ["model", "qk", "dk", "n_runs"]
    unpruned = table[(table["qk"] == 0) & (table["dk"] == 0)].iloc[0]
    pruned = table[(table["qk"] == 5) & (table["dk"] == 10)].iloc[0]
    assert unpruned["Δmrr@10 %"] == 0.0
    assert math.isclose(pruned["Δmrr@10 %"], -25.0)
    assert table.index[0] == 0 and table.iloc[0]["qk"] == 0  # unpruned first


def test_relative_change_without_unpruned_point_is_nan():
    table = results_table(_rows().iloc[[1]])
    assert table["Δmrr@10 %"].isna().all()


def test_markdown_and_latex():
    table = results_table(_rows())
    md = to_markdown(table)
    lines = md.strip().splitlines()
    assert lines[0].startswith("| model") and "Δmrr@10 %" in lines[0]
    assert set(lines[1]) <= set("|-: ")
    assert "-25.0" in md and "0.3000" in md and len(lines) == 4
    tex = to_latex(table, caption="Results 100%", label="tab:x")
    assert r"\begin{tabular}" in tex and r"\toprule" in tex and r"\bottomrule" in tex
    assert r"$\Delta$mrr@10 \%" in tex and r"Results 100\%" in tex and r"\label{tab:x}" in tex
    assert "-25.0" in tex


def test_table_on_fixture_and_emlm_stats(results_dir):
    df = load_results(results_dir)
    table = results_table(df[df["sweep"] == "vocab_ablation"])
    assert len(table) == 4 * 4
    assert (table.loc[(table["qk"] == 0) & (table["dk"] == 0), "Δmrr@10 %"] == 0).all()
    assert (table.loc[table["dk"] > 0, "Δmrr@10 %"] < 0).all()
    stats = emlm_stats_table(df)
    assert len(stats) == 2 and "accuracy" in stats.columns
    assert (stats["n_runs"] == 1).all()
    assert not any(c.endswith(" sd") for c in stats.columns)  # one run per configuration: no spread


def test_emlm_stats_spread_over_seeds():
    df = pd.DataFrame({"run_id": ["a", "b", "c"], "system": "splade", "pretrain": ["p1", "p1", "p2"],
                       "emlm.accuracy": [0.30, 0.34, 0.5]})
    stats = emlm_stats_table(df, by=["pretrain"]).set_index("pretraining")
    assert stats.loc["pretrain=p1", "n_runs"] == 2 and stats.loc["pretrain=p1", "accuracy"] == pytest.approx(0.32)
    # sample sd of (0.30, 0.34): sqrt(2 * 0.02^2 / 1) = 0.028284
    assert stats.loc["pretrain=p1", "accuracy sd"] == pytest.approx(0.028284, abs=1e-6)
    assert np.isnan(stats.loc["pretrain=p2", "accuracy sd"])  # one run: no spread
