import subprocess
import sys
from pathlib import Path

from splade_exp.analysis import load_results, model_label, write_report
from splade_exp.analysis.report import _groups, report_model_cols

from analysis_fixtures import results_dir  # noqa: F401  (fixture)

REPO = Path(__file__).resolve().parents[2]


def test_write_report_mentions_every_model(results_dir, tmp_path):
    out = tmp_path / "report"
    path = write_report(results_dir, out)
    assert path == out / "report.md"
    text = path.read_text()
    df = load_results(results_dir)
    for _, _, _, sub in _groups(df):
        runs = sub[sub["system"] != "bm25"]
        for label in set(model_label(runs, report_model_cols(df))):
            assert label in text, label
    assert "BM25" in text and "0.1870" in text
    assert "h-distilbert-k16" in text and "diverged" in text and "1200" in text
    assert "EMLM statistics" in text
    # pretraining settings separate models; seeds are averaged
    assert "pretrain=emlm, lr=0.0001" in text and "pretrain=emlm, lr=5e-05" in text
    assert "| vocab=bert-30k " in text
    # every embedded image exists, relative to the report
    images = [line.split("](")[1].rstrip(")") for line in text.splitlines() if line.startswith("![")]
    assert len(images) >= 8
    for rel in images:
        assert (out / rel).read_bytes()[:4] == b"\x89PNG"
    assert (out / "emlm_curves.png").exists()
    assert any(out.glob("head_scale*.png"))
    assert r"\begin{tabular}" in (out / "results_table.tex").read_text()
    assert not list(out.glob(".*"))


def test_cli_default_out_dir(results_dir, tmp_path):
    import shutil

    copy = tmp_path / "results"  # one sweep and BM25 keep this subprocess quick
    for sub in ("vocab_ablation", "baselines"):
        shutil.copytree(results_dir / sub, copy / sub)
    proc = subprocess.run(
        [sys.executable, "-m", "splade_exp.analysis", str(copy)],
        cwd=REPO, capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert str(copy / "report" / "report.md") in proc.stdout
    report = (copy / "report" / "report.md").read_text()
    assert "vocab=bert-100k" in report and "frontier_mrr@10.png" in report
    assert (copy / "report" / "results_table.tex").exists()


def test_cli_missing_directory(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "splade_exp.analysis.report", str(tmp_path / "missing")],
        cwd=REPO, capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 2
    assert "missing" in proc.stderr and "Traceback" not in proc.stderr
