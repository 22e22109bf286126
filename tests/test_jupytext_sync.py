"""Every notebook is a jupytext pair (NN_name.py in py:percent + NN_name.ipynb), the two are in sync, and the
committed .ipynb carry no outputs. Fix a failure with `jupytext --sync notebooks/*.py` (see CONTRIBUTING.md)."""
from __future__ import annotations

import tomllib
from pathlib import Path

import jupytext
import nbformat
import pytest

REPO = Path(__file__).resolve().parents[1]
NB_DIR = REPO / "notebooks"
IPYNB = sorted(NB_DIR.glob("[0-9][0-9]_*.ipynb"))
PY = sorted(NB_DIR.glob("[0-9][0-9]_*.py"))
STEMS = sorted({p.stem for p in IPYNB} | {p.stem for p in PY})
FIX = "run `jupytext --sync notebooks/*.py` and commit both files"


def _cells(nb) -> list[tuple[str, str]]:
    return [(c.cell_type, c.source.strip()) for c in nb.cells]


def test_config_pairs_notebooks_with_percent_scripts():
    cfg = tomllib.loads((REPO / "jupytext.toml").read_text())
    formats = cfg["formats"].replace(" ", "").split(",")
    assert "notebooks///ipynb" in formats and "notebooks///py:percent" in formats, cfg["formats"]


def test_every_notebook_has_both_halves():
    assert len(STEMS) >= 6, f"expected notebooks 01-06, found {STEMS}"
    missing = [s + ext for s in STEMS for ext in (".py", ".ipynb") if not (NB_DIR / (s + ext)).exists()]
    assert not missing, f"unpaired notebooks, missing {missing}: {FIX}"


@pytest.mark.parametrize("stem", STEMS)
def test_pair_in_sync(stem):
    py, ipynb = NB_DIR / f"{stem}.py", NB_DIR / f"{stem}.ipynb"
    text_nb = jupytext.read(py, fmt="py:percent")
    json_nb = jupytext.read(ipynb)
    a, b = _cells(text_nb), _cells(json_nb)
    assert len(a) == len(b), f"{stem}: {len(a)} cells in the .py, {len(b)} in the .ipynb: {FIX}"
    for i, (ca, cb) in enumerate(zip(a, b)):
        assert ca == cb, f"{stem} cell {i} differs between .py and .ipynb:\n{ca[1][:200]!r}\nvs\n{cb[1][:200]!r}\n{FIX}"
    # tags (solution cells) and the collapsed state travel with the pair too
    tags_a = [sorted(c.metadata.get("tags", [])) for c in text_nb.cells]
    tags_b = [sorted(c.metadata.get("tags", [])) for c in json_nb.cells]
    assert tags_a == tags_b, f"{stem}: cell tags differ between .py and .ipynb: {FIX}"


@pytest.mark.parametrize("path", IPYNB, ids=[p.name for p in IPYNB])
def test_committed_ipynb_has_no_outputs(path):
    nb = nbformat.read(path, as_version=4)
    dirty = [i for i, c in enumerate(nb.cells) if c.cell_type == "code" and (c.outputs or c.execution_count)]
    assert not dirty, f"{path.name}: cells {dirty} carry outputs; clear them (Edit > Clear Outputs of All Cells) or {FIX}"


@pytest.mark.parametrize("path", IPYNB, ids=[p.name for p in IPYNB])
def test_solution_cells_are_collapsed(path):
    nb = nbformat.read(path, as_version=4)
    open_ = [i for i, c in enumerate(nb.cells) if "solution" in c.metadata.get("tags", [])
             and not c.metadata.get("jupyter", {}).get("source_hidden")]
    assert not open_, (f"{path.name}: solution cells {open_} are in plain view; add "
                       '`jupyter={"source_hidden": true}` to their `# %%` line in the .py and sync')
