"""Significance tests, Holm correction, seeds and the A-vs-B comparison, against numbers worked
out by hand on small per-query tables.

The t-test p-values use three queries (2 degrees of freedom), where Student's t has a closed
form: two-sided p = 1 - |t| / sqrt(2 + t^2).
"""
from __future__ import annotations

import math
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from splade_exp.analysis import holm, load_perquery, load_results, paired_test, results_table, sd_col
from splade_exp.analysis.compare import compare_dirs
from splade_exp.analysis.significance import model_scores, paired_comparisons, table_markers

from analysis_fixtures import SEEDED_MODELS, results_dir, seeded_dir  # noqa: F401  (fixtures)

REPO = Path(__file__).resolve().parents[2]


def test_paired_t_test_by_hand():
    # d = a - b = [0.1, 0.2, 0.3]: mean 0.2, sd sqrt((0.01 + 0 + 0.01) / 2) = 0.1,
    # t = 0.2 / (0.1 / sqrt 3) = 2 sqrt 3 = 3.4641; p = 1 - 3.4641 / sqrt(14) = 1 - 0.92582 = 0.07418
    t, p = paired_test([0.3, 0.5, 0.7], [0.2, 0.3, 0.4])
    assert t == pytest.approx(3.4641016, abs=1e-6) and p == pytest.approx(0.0741799, abs=1e-6)
    t, p = paired_test([0.2, 0.3, 0.4], [0.3, 0.5, 0.7])  # two-sided: same p, opposite t
    assert t == pytest.approx(-3.4641016, abs=1e-6) and p == pytest.approx(0.0741799, abs=1e-6)


def test_wilcoxon_by_hand():
    # five positive differences of distinct sizes: W- = 0; under H0 each of the 2^5 sign patterns is
    # equally likely and only "all positive" / "all negative" are as extreme: p = 2 / 32 = 0.0625
    stat, p = paired_test([0.3, 0.5, 0.7, 0.9, 1.0], [0.2, 0.3, 0.4, 0.5, 0.6], test="wilcoxon")
    assert stat == 0 and p == pytest.approx(0.0625, abs=1e-12)


def test_degenerate_pairs():
    assert paired_test([0.5, 0.5, 0.1], [0.5, 0.5, 0.1]) == (0.0, 1.0)  # equal everywhere: no evidence
    assert paired_test([0.5, 0.5, 0.1], [0.5, 0.5, 0.1], test="wilcoxon") == (0.0, 1.0)
    assert all(math.isnan(v) for v in paired_test([0.5], [0.1]))
    with pytest.raises(ValueError, match="test must be one of"):
        paired_test([1, 2], [2, 1], test="sign")


def test_holm_by_hand():
    # sorted: 0.01 x 4 = 0.04; 0.03 x 3 = 0.09; 0.04 x 2 = 0.08 -> max(0.09, 0.08) = 0.09; 0.20 x 1 = 0.20
    np.testing.assert_allclose(holm([0.01, 0.04, 0.03, 0.20]), [0.04, 0.09, 0.09, 0.20])
    # capped at 1; NaN is not counted (m = 2): 0.6 x 2 = 1.2 -> 1
    np.testing.assert_allclose(holm([0.6, np.nan, 0.7]), [1.0, np.nan, 1.0])
    assert holm([]).shape == (0,)


def _perquery(scores: dict[str, list[list[float]]], qk=0, dk=0) -> pd.DataFrame:
    """run_id -> per-seed lists of per-query mrr@10, in the evaluation's per-query schema."""
    rows = []
    for model, seeds in scores.items():
        for seed, values in enumerate(seeds):
            rows += [{"run_id": f"{model}-s{seed}", "system": "splade", "model": model, "seed": seed, "qk": qk,
                      "dk": dk, "query_id": f"q{i}", "mrr@10": v} for i, v in enumerate(values)]
    return pd.DataFrame(rows)


# Three models on three queries. A - C = [0.5, 0.6, 0.7], B - C = [0.1, 0.3, 0.2], A - B = [0.4, 0.3, 0.5].
# A has two seeds whose per-query mean is A: seed 0 = A + e, seed 1 = A - e.
C = [0.1, 0.2, 0.0]
A = [0.6, 0.8, 0.7]
B = [0.2, 0.5, 0.2]
E = [0.1, -0.1, 0.05]
HAND = _perquery({"A": [[a + e for a, e in zip(A, E)], [a - e for a, e in zip(A, E)]], "B": [B], "C": [C]})


def test_markers_by_hand():
    # A vs C: mean 0.6, sd 0.1, t = 6 sqrt 3 = 10.3923, p = 1 - 10.3923 / sqrt(110) = 1 - 0.990867 = 0.009133
    # A vs B: mean 0.4, sd 0.1, t = 4 sqrt 3 = 6.9282,  p = 1 - 6.9282 / sqrt(50)  = 1 - 0.979796 = 0.020204
    # B vs C: mean 0.2, sd 0.1, t = 2 sqrt 3 = 3.4641,  p = 0.074180
    # Holm, m = 3: 0.009133 x 3 = 0.027399; 0.020204 x 2 = 0.040408; 0.074180 x 1 = 0.074180
    # at 0.05: A beats B and C; B vs C is not significant.
    labels = {"A-s0": "A", "A-s1": "A", "B-s0": "B", "C-s0": "C"}
    scores = model_scores(HAND, labels, ["mrr@10"])
    a_scores = scores[scores["model"] == "A"]
    np.testing.assert_allclose(a_scores["mrr@10"], A)  # seeds averaged per query, never pooled
    assert (a_scores["n_runs"] == 2).all()
    table = pd.DataFrame({"model": ["A", "B", "C"], "qk": [0, 0, 0], "dk": [0, 0, 0], "mrr@10": [0.7, 0.3, 0.1]})
    keys, markers, tests = table_markers(table, scores, ["mrr@10"])
    assert keys == {"A": "a", "B": "b", "C": "c"}
    assert list(markers["mrr@10"]) == ["bc", "", ""]
    got = tests.set_index(["a", "b"])
    assert got.loc[("A", "C"), "p"] == pytest.approx(0.009133, abs=1e-6)
    assert got.loc[("A", "B"), "p"] == pytest.approx(0.020204, abs=1e-6)
    assert got.loc[("B", "C"), "p"] == pytest.approx(0.074180, abs=1e-6)
    np.testing.assert_allclose(got.loc[[("A", "C"), ("A", "B"), ("B", "C")], "p_holm"],
                               [0.027399, 0.040408, 0.074180], atol=2e-6)
    assert list(got["n_queries"]) == [3, 3, 3]
    # a stricter level keeps only A > C (0.027399 < 0.03 <= 0.040408)
    _, markers, _ = table_markers(table, scores, ["mrr@10"], alpha=0.03)
    assert list(markers["mrr@10"]) == ["c", "", ""]
    # keys follow the table's order (here C = a, B = b, A = c); only the better model of a pair is marked
    flipped = table.assign(model=["C", "B", "A"])
    keys, markers, _ = table_markers(flipped, scores, ["mrr@10"])
    assert keys == {"C": "a", "B": "b", "A": "c"} and list(markers["mrr@10"]) == ["", "", "ab"]


def test_comparisons_use_the_queries_both_models_have(caplog):
    scores = model_scores(HAND[HAND["query_id"] != "q2"].pipe(lambda d: pd.concat([d, HAND[
        (HAND["query_id"] == "q2") & (HAND["run_id"] != "C-s0")]])), {"A-s0": "A", "A-s1": "A", "C-s0": "C"},
        ["mrr@10"])
    tests = paired_comparisons(scores, [("A", "C")], ["mrr@10"])
    # q0, q1 only: d = [0.5, 0.6], mean 0.55, sd 0.0707, t = 0.55 / (0.0707 / sqrt 2) = 11;
    # 1 degree of freedom (Cauchy): p = 1 - (2/pi) atan(11) = 0.057800
    assert tests["n_queries"].iloc[0] == 2
    assert tests["p"].iloc[0] == pytest.approx(1 - 2 / math.pi * math.atan(11), abs=1e-6)
    assert "2 queries in common of 3 and 2" in caplog.text


def test_seed_spread_in_tables(results_dir):
    df = load_results(results_dir)
    table = results_table(df[df["sweep"] == "vocab_ablation"], spread=True)
    two = table[table["model"] == "vocab=bert-30k"]
    # the two seeds differ by 0.001 in mrr@10 at every point: sd = 0.001 / sqrt 2 = 0.000707
    np.testing.assert_allclose(two[sd_col("mrr@10")], 0.001 / math.sqrt(2), atol=1e-9)
    assert table.loc[table["n_runs"] == 1, sd_col("mrr@10")].isna().all()
    from splade_exp.analysis import to_markdown

    md = to_markdown(two)
    assert "± 0.0007" in md and "mrr@10 sd" not in md


def test_load_perquery_keeps_it_out_of_the_results(seeded_dir, results_dir):
    results = load_results(seeded_dir)
    assert len(results) == 3 * 2 * 4 + 1  # 3 models x 2 seeds x 4 points + BM25; no per-query rows
    pq = load_perquery(seeded_dir)
    assert len(pq) == (3 * 2 * 4 + 1) * 60
    assert str(pq["qk"].dtype) == "Int64" and pq["query_id"].map(type).eq(str).all()
    # the results rows are the per-query means (the fixture writes them so)
    run = pq[(pq["run_id"] == "strong-s0") & (pq["qk"] == 0)]
    row = results[(results["run_id"] == "strong-s0") & (results["qk"] == 0)]
    assert run["mrr@10"].mean() == pytest.approx(float(row["mrr@10"].iloc[0]))
    assert load_perquery(Path(results_dir) / "head_scale").empty  # results written before per-query files


def _side(root: Path, name: str, model: str, per_query: list[list[float]] | None, mrr: list[float]) -> Path:
    d = root / name
    d.mkdir(parents=True)
    for seed, m in enumerate(mrr):
        rid = f"{name}-{model}-s{seed}"
        pd.DataFrame([{"run_id": rid, "sweep": name, "system": "splade", "model": model, "status": "completed",
                       "qk": 0, "dk": 0, "mrr@10": m, "recall@10": m, "flops": 1.0 + seed}]).to_parquet(
            d / f"{rid}.parquet", index=False)
        if per_query is not None:
            _perquery({model: [per_query[seed]]}).assign(run_id=rid).to_parquet(d / f"{rid}.perquery.parquet",
                                                                                  index=False)
    return d


def test_compare_dirs_by_hand(tmp_path):
    # A: one model, two seeds with per-query [0.1, 0.2, 0.3] +- [0.05, 0, -0.05] (mean 0.2 over queries);
    # B: one model (another label), per-query [0.2, 0.4, 0.6]. B - A per query = [0.1, 0.2, 0.3]:
    # t = 2 sqrt 3, p = 0.074180; one test in the table (recall@10 has no per-query column here).
    a = _side(tmp_path, "a", "base", [[0.15, 0.2, 0.25], [0.05, 0.2, 0.35]], [0.2, 0.2])
    b = _side(tmp_path, "b", "changed", [[0.2, 0.4, 0.6]], [0.4])
    table, markers, tests = compare_dirs(a, b, metrics=("mrr@10", "flops"))
    row = table.iloc[0]
    assert (row["model"], row["runs A"], row["runs B"]) == ("base", 2, 1)
    assert row["mrr@10 Δ"] == pytest.approx(0.2) and row["flops Δ"] == pytest.approx(1.0 - 1.5)
    assert row["mrr@10 p"] == pytest.approx(0.074180, abs=1e-6) and "flops p" not in table
    assert len(tests) == 1 and markers.loc[0, "mrr@10 Δ"] == ""
    _, markers, _ = compare_dirs(a, b, metrics=("mrr@10",), alpha=0.1)
    assert markers.loc[0, "mrr@10 Δ"] == "*"
    # without per-query files on one side: differences only
    c = _side(tmp_path, "c", "changed", None, [0.4])
    table, _, tests = compare_dirs(a, c, metrics=("mrr@10",))
    assert tests.empty and "mrr@10 p" not in table and table["mrr@10 Δ"].iloc[0] == pytest.approx(0.2)


def test_compare_dirs_matches_models_by_label(seeded_dir, tmp_path):
    from analysis_fixtures import build_seeded_dir

    other = build_seeded_dir(tmp_path, models={"strong": 0.0, "weak": 0.0, "other": 0.1})
    table, _, tests = compare_dirs(seeded_dir, other, metrics=("mrr@10",))
    assert set(table["model"]) == {"strong", "weak"} and len(table) == 8
    strong = tests[tests["model"] == "strong"]
    assert strong["significant"].all() and (strong["diff"] < -0.1).all()  # B's "strong" lost its lift
    assert not tests[tests["model"] == "weak"]["significant"].any()
    with pytest.raises(ValueError, match="no model in common"):
        compare_dirs(seeded_dir, build_seeded_dir(tmp_path / "x", models={"p": 0.0, "q": 0.0}))


def test_cli_compares_two_directories(seeded_dir, tmp_path):
    from analysis_fixtures import build_seeded_dir

    other = build_seeded_dir(tmp_path / "b", models={"strong": 0.0, "twin": 0.0, "weak": 0.0})
    proc = subprocess.run([sys.executable, "-m", "splade_exp.analysis", str(seeded_dir), str(other), "--out",
                           str(tmp_path / "cmp"), "--test", "wilcoxon"],
                          cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "Wilcoxon signed-rank test of B against A over 60 queries" in proc.stdout
    assert "<sup>*</sup>" in proc.stdout and "| strong " in proc.stdout
    assert (tmp_path / "cmp" / "comparison.md").read_text().startswith("# Comparison")
    assert r"$^{\mathrm{*}}$" in (tmp_path / "cmp" / "comparison.tex").read_text()
    # every model x pruning point x per-query metric of the table (mrr@10, recall@10, ndcg@10)
    assert len(pd.read_csv(tmp_path / "cmp" / "comparison.csv")) == len(SEEDED_MODELS) * 4 * 3


def test_report_of_a_two_seed_sweep_shows_error_bars_and_markers(seeded_dir, results_dir, tmp_path):
    from matplotlib.container import ErrorbarContainer

    from splade_exp.analysis import frontier_figure, write_report
    from splade_exp.analysis.report import report_model_cols

    text = write_report(seeded_dir, tmp_path / "report").read_text()
    rows = [line for line in text.splitlines() if re.match(r"\| [abc] +\| ", line)]  # key column first
    assert len(rows) == 3 * 4 and all(re.search(r"\| +2 \|", r) for r in rows)  # 3 models x 4 points, 2 runs
    # strong (key a) beats twin (b) and weak (c) at every point on both metrics; twin ~ weak
    strong = [r for r in rows if "| strong " in r]
    assert len(strong) == 4 and all(r.count("<sup>bc</sup>") == 2 for r in strong)
    assert not any("<sup>" in r for r in rows if "| strong " not in r)
    assert all(" ± " in r for r in rows)
    assert "Holm correction over the 24 comparisons of this table" in text  # 3 pairs x 4 points x 2 metrics
    tests = pd.read_csv(tmp_path / "report" / "significance.csv")
    assert len(tests) == 24 and set(tests.loc[tests["significant"], "a"]) == {"strong"}
    assert r"0.5424 $\pm$ 0.0050$^{\mathrm{bc}}$" in (tmp_path / "report" / "results_table.tex").read_text()

    df = load_results(seeded_dir)
    fig = frontier_figure(df, "mrr@10", model_cols=report_model_cols(df))
    bars = [c for c in fig.axes[0].containers if isinstance(c, ErrorbarContainer)]
    assert len(bars) == 3  # one per model: all have two seeds

    # results without per-query files still give a report, without keys or markers
    old = write_report(results_dir, tmp_path / "old").read_text()
    assert "<sup>" not in old and "Superscript" not in old and "| key " not in old
    assert not list((tmp_path / "old").glob("significance*.csv"))
