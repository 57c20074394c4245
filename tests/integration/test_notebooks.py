"""The notebooks run headless (papermill) against the sample runs and draw their figures.

Kernel selection: the test writes a kernelspec of its own (``anycast-lab-tests``) whose argv is
this very interpreter (the venv's python, where ``analysis`` is installed), in a temporary
directory put first on JUPYTER_PATH. Whatever kernels the machine or the user have installed
(a ``python3`` spec pointing at another Python, or none at all), the notebooks run here; nothing
is installed anywhere. Needs the ``notebooks`` extra (papermill, ipykernel, nbformat); skipped
without it on a developer machine, failed in CI (where ``make setup`` installs it).
Select with ``-m slow`` or ``-k notebooks``.
"""

from __future__ import annotations

import importlib
import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
NOTEBOOKS = REPO / "notebooks"
SAMPLES = REPO / "tests" / "data" / "sample-runs"
REAL_RUNS = REPO / "tests" / "data" / "real-runs"  # written by `anylab run` on the reference lab
KERNEL = "anycast-lab-tests"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.timeout(300),
    # Older jupyter_core/jupyter_client releases warn about their own internals; the fixture
    # avoids the first (JUPYTER_PLATFORM_DIRS), these keep other versions from failing the run.
    pytest.mark.filterwarnings("ignore:Jupyter is migrating its paths:DeprecationWarning"),
    pytest.mark.filterwarnings("ignore:There is no current event loop:DeprecationWarning"),
]


def _require(module: str) -> Any:
    try:
        return importlib.import_module(module)
    except ImportError:
        message = f"{module} is missing (the `notebooks` extra: pip install -e '.[notebooks]')"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)


@pytest.fixture(scope="module")
def kernel(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    for module in ("papermill", "ipykernel", "nbformat"):
        _require(module)
    root = tmp_path_factory.mktemp("jupyter")
    spec = root / "kernels" / KERNEL
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "anycast-lab (tests)", "language": "python"}))
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("JUPYTER_PATH", str(root))
        patch.setenv("JUPYTER_PLATFORM_DIRS", "1")  # no migration warning from jupyter_core
        found = _require("jupyter_client.kernelspec").KernelSpecManager().get_kernel_spec(KERNEL)
        assert found.argv[0] == sys.executable
        yield KERNEL


def _execute(kernel: str, name: str, out: Path, parameters: dict[str, Any]) -> Any:
    papermill = _require("papermill")
    nbformat = _require("nbformat")
    papermill.execute_notebook(str(NOTEBOOKS / name), str(out), parameters=parameters,
                               kernel_name=kernel, cwd=str(NOTEBOOKS), progress_bar=False,
                               log_output=False)
    return nbformat.read(out, as_version=4)


def _figure_outputs(notebook: Any) -> list[list[str]]:
    """For each cell tagged ``figure``, the MIME types of its outputs."""
    return [[mime for output in cell.outputs for mime in output.get("data", {})]
            for cell in notebook.cells if "figure" in cell.metadata.get("tags", [])]


def _errors(notebook: Any) -> list[str]:
    return [output.get("ename", "") for cell in notebook.cells if cell.cell_type == "code"
            for output in cell.outputs if output.output_type == "error"]


def test_convergence_notebook(kernel: str, tmp_path: Path) -> None:
    run_dir = REAL_RUNS / "20261127-012226-node-crash-bfd"
    notebook = _execute(kernel, "convergence.ipynb", tmp_path / "convergence.ipynb",
                        {"run_dir": str(run_dir), "out_dir": str(tmp_path / "png")})
    assert _errors(notebook) == []
    figures = _figure_outputs(notebook)
    assert len(figures) == 7 and all("image/png" in mimes for mimes in figures)
    tables = [cell for cell in notebook.cells if "table-clients" in cell.metadata.get("tags", [])]
    assert "us-c1" in tables[0].outputs[0]["data"]["text/html"]
    saved = sorted(p.name for p in (tmp_path / "png").iterdir())
    assert saved == sorted(f"{n}.png" for n in ("timeline", "zooms", "zoom-nodes", "rtt",
                                                 "rtt-cdf", "catchment", "control-plane"))


def test_compare_notebook(kernel: str, tmp_path: Path) -> None:
    runs = sorted(str(p) for p in REAL_RUNS.iterdir() if p.is_dir())
    notebook = _execute(kernel, "compare.ipynb", tmp_path / "compare.ipynb",
                        {"run_dirs": runs, "labels": ["BFD", "hold timer", "site isolate"]})
    assert [Path(r).name.split("-", 2)[2] for r in runs] == [
        "node-crash-bfd", "site-isolation", "node-crash-holdtimer"]
    assert _errors(notebook) == []
    figures = _figure_outputs(notebook)
    assert len(figures) == 3 and all("image/png" in mimes for mimes in figures)
    assert figures[2].count("image/png") == 3  # one zoomed timeline per run
    (table,) = [c for c in notebook.cells if "table-aggregate" in c.metadata.get("tags", [])]
    assert "hold timer" in table.outputs[0]["data"]["text/html"]
