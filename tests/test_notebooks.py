"""Every notebook runs top to bottom, on a home with a trained tiny agent.

On a home without one a notebook trains a tiny agent first (`pipeline.agent_home`, tested
apart in test_control_commands.py): the tests give them the session's trained home instead of
spending a tiny pipeline run (about 80 s of CI) on it.
"""

import shutil
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOKS = sorted((Path(__file__).resolve().parent.parent / "notebooks").glob("*.ipynb"))


def test_there_are_notebooks():
    assert [n.name.split("-")[0] for n in NOTEBOOKS] == ["01", "02", "03", "04", "05"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[n.name for n in NOTEBOOKS])
def test_notebook_executes(path, trained_controller_home, tmp_path, monkeypatch):
    home = tmp_path / "home"
    shutil.copytree(trained_controller_home, home)  # notebooks may write into it
    monkeypatch.setenv("WORLD_MODELS_HOME", str(home))
    notebook = nbformat.read(path, as_version=4)
    NotebookClient(
        notebook,
        timeout=900,
        kernel_name="python3",
        resources={"metadata": {"path": str(tmp_path)}},
    ).execute()
    outputs = [o for cell in notebook.cells if cell.cell_type == "code" for o in cell.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    assert any("image/png" in o.get("data", {}) for o in outputs)  # it drew something


def test_the_vae_notebook_runs_on_a_pretrained_agents_home_which_has_no_episodes(
    tmp_path, monkeypatch
):
    from worldmodels.agent_archive import install_agent

    repository = Path(__file__).resolve().parent.parent
    install_agent(str(repository / "pretrained" / "agent.tar.gz"), tmp_path / "home")
    monkeypatch.setenv("WORLD_MODELS_HOME", str(tmp_path / "home"))
    notebook = nbformat.read(repository / "notebooks" / "02-vae.ipynb", as_version=4)
    NotebookClient(notebook, timeout=900, kernel_name="python3").execute()
    outputs = [o for cell in notebook.cells if cell.cell_type == "code" for o in cell.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    assert str(tmp_path / "home") in str(notebook.cells[1].outputs)  # not a tiny home
