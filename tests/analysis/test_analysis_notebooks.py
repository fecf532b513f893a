"""The analysis notebooks run top to bottom on the fixture results and are committed clean."""
import json
import os
import sys
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")
from jupyter_client.kernelspec import KernelSpecManager  # noqa: E402
from jupyter_client.manager import KernelManager  # noqa: E402

from analysis_fixtures import results_dir  # noqa: F401  (fixture)

REPO = Path(__file__).resolve().parents[2]
NOTEBOOK_DIR = REPO / "analysis"
NOTEBOOKS = ["frontiers.ipynb", "pretrain_study.ipynb", "head_scale.ipynb"]


@pytest.fixture(scope="module")
def kernel_dir(tmp_path_factory) -> Path:
    """A private ``python3`` kernel spec that runs this interpreter.

    Independent of kernel specs installed on the machine (user-level ones may point at another
    Python) and of what ``python`` is on PATH, so a fresh virtual environment works in CI.
    """
    root = tmp_path_factory.mktemp("kernels")
    spec = root / "python3"
    spec.mkdir()
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "Python 3 (splade-exp tests)",
        "language": "python",
    }))
    return root


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebook_is_stripped(name):
    nb = nbformat.read(NOTEBOOK_DIR / name, as_version=4)
    nbformat.validate(nb)
    assert nb.metadata.kernelspec.name == "python3"
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebook_executes(name, results_dir, kernel_dir, tmp_path, monkeypatch):
    figures = tmp_path / "figures"
    monkeypatch.setenv("SPLADE_RESULTS", str(results_dir))
    monkeypatch.setenv("SPLADE_FIGURES", str(figures))
    monkeypatch.setenv("MPLBACKEND", "Agg")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(
        p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p))
    nb = nbformat.read(NOTEBOOK_DIR / name, as_version=4)
    km = KernelManager(kernel_name="python3",
                       kernel_spec_manager=KernelSpecManager(kernel_dirs=[str(kernel_dir)]))
    client = nbclient.NotebookClient(
        nb, km=km, kernel_name="python3", timeout=120,
        resources={"metadata": {"path": str(NOTEBOOK_DIR)}},
    )
    client.execute()  # raises CellExecutionError on the first failing cell
    pngs = list(figures.glob("*.png"))
    assert pngs, "the notebook wrote no figure"
    for png in pngs:
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # the kernel ran this interpreter and this checkout
    outputs = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs)
    assert "runs," in outputs
