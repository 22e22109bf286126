"""Accessibility of the course material: one colour-blind-safe palette, block pictures labelled by text (not
only colour), alt text on every markdown image and a caption after every figure of notebooks 01-05."""
from __future__ import annotations

import re
from pathlib import Path

import jupytext
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import pytest
from matplotlib.colors import to_hex

import hmf_lab as hl
from hmf_lab.course import plots

REPO = Path(__file__).resolve().parents[1]
OKABE_ITO = ["#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442", "#000000"]
COURSE = sorted((REPO / "notebooks").glob("0[1-5]_*.py"))  # notebooks 06-07 belong to the reproduction work
FIGURE_CALL = re.compile(r"hl\.plots\.\w+\(|plot_leaderboard\(|plot_oracle\(|\.plot\(|plt\.subplots\(")


def test_one_colour_blind_safe_palette():
    assert [c.upper() for c in plots.PALETTE] == OKABE_ITO
    cycle = [to_hex(c).upper() for c in matplotlib.rcParams["axes.prop_cycle"].by_key()["color"]]
    assert cycle == OKABE_ITO  # pandas and plain matplotlib plots in the notebooks use it too
    assert {to_hex(c).upper() for c in plots.COLORS.values()} - {"#BBBBBB"} <= set(OKABE_ITO)
    ax = plots.timing_bars({"dense": 2e-3, "HMF": 1e-3, "LMF": 1e-3, "pruned (CSR)": 3e-3})
    assert [to_hex(p.get_facecolor()).upper() for p in ax.patches] == [
        plots.METHOD_PALETTE[k].upper() for k in ("dense", "HMF", "LMF", "pruned (CSR)")]
    plt.close("all")


def test_block_pictures_name_every_block():
    ax = plots.blocks((64, 48, 8, 6))
    texts = {t.get_text() for t in ax.texts}
    assert {"W", "D", "U", "V", "LMF U", "LMF V"} <= texts
    hatches = {p.get_label(): p.get_hatch() for p in ax.patches}
    assert len({hatches[k] for k in ("U", "V", "LMF U", "LMF V")}) == 4  # told apart without colour
    plt.close("all")
    svg = plots.blocks_svg(64, 64, 16, 8)
    assert 'role="img"' in svg and 'aria-label="To-scale blocks' in svg
    labels = re.findall(r'font-weight="bold" fill="black">([^<]+)<', svg)
    assert {"W", "D", "U", "V"} <= set(labels)


def _markdown_images(text: str):
    return re.findall(r"!\[([^\]]*)\]\(([^)]+)\)", text)


@pytest.mark.parametrize("path", [REPO / "README.md", REPO / "CONTRIBUTING.md", *sorted((REPO / "docs").glob("*.md")),
                                  *sorted((REPO / "notebooks").glob("*.py"))], ids=lambda p: p.name)
def test_every_markdown_image_has_alt_text(path):
    if not path.exists():
        pytest.skip(f"{path.name} not present")
    missing = [src for alt, src in _markdown_images(path.read_text()) if len(alt.strip()) < 10]
    assert not missing, f"{path.name}: images without a descriptive alt text: {missing}"


@pytest.mark.parametrize("path", COURSE, ids=lambda p: p.name)
def test_every_figure_has_a_caption(path):
    cells = jupytext.read(path).cells
    missing = []
    for i, c in enumerate(cells):
        if c.cell_type == "code" and FIGURE_CALL.search(c.source) and "solution" not in c.metadata.get("tags", []):
            nxt = cells[i + 1] if i + 1 < len(cells) else None
            if nxt is None or nxt.cell_type != "markdown" or not nxt.source.lstrip().startswith("*Figure"):
                missing.append(c.source.splitlines()[0][:60])
    assert not missing, f"{path.name}: figure cells without a '*Figure: ...*' caption after them: {missing}"
