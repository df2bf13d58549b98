"""Every notebook in notebooks/ runs top to bottom in quick mode, is stored clean, and keeps its logic in the package.

Each notebook is executed with nbclient in a fresh ``python3`` kernel (this virtual environment's Python:
jupyter_client starts kernelspecs whose command is ``python`` with ``sys.executable``), with
``CARTOONKIT_QUICK=1`` and the test session's models folder in its environment. A cell that raises
fails the test, naming the notebook and the cell.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from cartoonkit import paths

NOTEBOOK_DIR = paths.project_root() / "notebooks"
NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("*.ipynb"))
CELL_TIMEOUT = int(__import__("os").environ.get("CARTOONKIT_NOTEBOOK_CELL_TIMEOUT", "300"))
# A function or class defined in a notebook is logic that only the notebook has: it belongs in the package.
DEFINITION = re.compile(r"^\s*(async\s+def|def|class)\s", re.MULTILINE)


def _ids(path: Path) -> str:
    return path.stem


def _execute(notebook, monkeypatch, models_dir: Path, cwd: Path):
    monkeypatch.setenv("CARTOONKIT_QUICK", "1")
    monkeypatch.setenv("CARTOONKIT_MODELS", str(models_dir))  # the kernel inherits os.environ
    client = NotebookClient(notebook, timeout=CELL_TIMEOUT, kernel_name="python3",
                            resources={"metadata": {"path": str(cwd)}})
    return client.execute()


def test_there_are_notebooks():
    assert len(NOTEBOOKS) >= 3, NOTEBOOKS


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=_ids)
def test_notebook_runs_in_quick_mode(path, models_dir, monkeypatch):
    notebook = nbformat.read(path, as_version=4)
    _execute(notebook, monkeypatch, models_dir, path.parent)  # raises CellExecutionError on a failing cell
    ran = [c for c in notebook.cells if c.cell_type == "code" and c.source.strip()]
    assert all(c.execution_count is not None for c in ran)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=_ids)
def test_notebook_is_stored_without_outputs(path):
    notebook = nbformat.read(path, as_version=4)
    nbformat.validate(notebook)
    assert notebook.metadata.get("kernelspec", {}).get("name") == "python3"
    for index, cell in enumerate(notebook.cells):
        if cell.cell_type == "code":
            assert cell.outputs == [], f"{path.name} cell {index} is stored with outputs"
            assert cell.execution_count is None, f"{path.name} cell {index} is stored with an execution count"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=_ids)
def test_notebook_defines_no_functions_or_classes(path):
    notebook = nbformat.read(path, as_version=4)
    assert notebook.cells[0].cell_type == "markdown", f"{path.name} should start with a markdown introduction"
    for index, cell in enumerate(notebook.cells):
        if cell.cell_type == "code":
            assert not DEFINITION.search(cell.source), (
                f"{path.name} cell {index} defines a function or class; move it into cartoonkit")


def test_kernel_is_this_environments_python(models_dir, monkeypatch, tmp_path):
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("import sys; print(sys.executable)")])
    _execute(notebook, monkeypatch, models_dir, tmp_path)
    printed = notebook.cells[0].outputs[0]["text"].strip()
    assert Path(printed).resolve() == Path(sys.executable).resolve()
