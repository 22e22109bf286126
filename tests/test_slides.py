"""Lecture slides (`make slides`): reveal.js decks made by nbconvert from the student copies of the lessons.

`tools.course.slide_types` gives every cell its slide type (a heading starts a slide, code a sub-slide), so the
notebooks carry no slide metadata; the decks hold no solution code; reveal.js & co. load from `_static/` next to
the decks (copied from npm once) so the slides open offline, else from nbconvert's CDN with a message.
"""
from __future__ import annotations

import io
import re
import shutil
import subprocess
import tarfile
from pathlib import Path

import nbformat
import pytest

from tools import course as _course

REPO = Path(__file__).resolve().parents[1]
FIRST = _course.lessons(REPO / "notebooks")[0]


def _solution_lines(nb) -> list[str]:
    """Code lines of the solution cells that appear nowhere else in the notebook (what the slides must not show)."""
    other = "\n".join(c.source for c in nb.cells if "solution" not in c.metadata.get("tags", []))
    lines = [ln.strip() for c in nb.cells if "solution" in c.metadata.get("tags", [])
             for ln in c.source.splitlines()]
    return [ln for ln in lines if len(ln) > 12 and not ln.startswith("#") and ln not in other]


def _fake_assets(out: Path) -> None:
    """The files slide_assets() looks for, as if `make slides` had copied them from npm before."""
    for rel in ("reveal.js/dist/reveal.js", "require.js", "jquery.min.js", "mathjax/MathJax.js"):
        (out / _course.STATIC / rel).parent.mkdir(parents=True, exist_ok=True)
        (out / _course.STATIC / rel).write_text("// fake\n")


def _text(deck: Path) -> str:
    import html
    return html.unescape(re.sub(r"<[^>]+>", "", deck.read_text(encoding="utf-8")))


def test_slides_of_one_notebook_have_sections_and_no_solution(tmp_path):
    """Issue 21: the deck of notebook 01 (not executed: no kernel) has one <section> per slide and no solution code,
    and loads reveal.js from the local copy (no CDN at view time)."""
    _fake_assets(tmp_path)
    slides = _course.build_slides(REPO / "notebooks", tmp_path, only=[FIRST.stem], execute_cells=False)
    assert [p.name for p in slides.decks] == [f"{FIRST.stem}.slides.html"]
    assert slides.offline and not slides.executed and not slides.runs
    page = slides.decks[0].read_text(encoding="utf-8")
    nb = nbformat.read(FIRST, as_version=4)
    headings = [c for c in nb.cells if c.cell_type == "markdown" and 1 <= _course._heading_level(c.source) <= 2]
    sections = page.count("<section")
    assert len(headings) >= 3 and sections >= len(headings) + 2, (sections, len(headings))  # + the code sub-slides
    text = _text(slides.decks[0])
    for c in headings:
        assert c.source.splitlines()[0].lstrip("# ").strip() in text
    solution = _solution_lines(nb)
    assert solution, "notebook 01 has solution cells to leave out"
    leaked = [ln for ln in solution if ln in text]
    assert not leaked, f"solution code on the slides: {leaked[:3]}"
    assert 'src="_static/require.js"' in page and '"_static/reveal.js/dist/reveal.js"' in page
    assert "_static/mathjax/MathJax.js" in page
    assert "unpkg.com/reveal.js" not in page and "cdnjs.cloudflare.com/ajax/libs/require.js" not in page


def test_slide_types_follow_the_headings():
    nb = nbformat.read(FIRST, as_version=4)
    kinds = [(c.cell_type, c.metadata.slideshow.slide_type) for c in _course.slide_types(nb).cells]
    assert kinds[0] == ("markdown", "slide")
    assert all(k == "subslide" for t, k in kinds if t == "code" and k != "skip")
    assert {k for _, k in kinds} <= {"slide", "subslide", "-", "skip"}


@pytest.mark.notebook
def test_executed_deck_shows_figures_and_no_answer(tmp_path, capsys):
    """Executed (quick mode), the deck carries the notebook's figures; its check cells ran on the student copy,
    so they say 'Not answered yet' and never print a PASS with the answer's reasoning."""
    _fake_assets(tmp_path)
    slides = _course.build_slides(REPO / "notebooks", tmp_path, only=[FIRST.name], quick=True, timeout=300)
    run = slides.runs[FIRST.name]
    assert slides.executed and run.seconds > 0
    page = slides.decks[0].read_text(encoding="utf-8")
    assert page.count("data:image/png") >= 1
    assert "Not answered yet" in page and not re.search(r"PASS\s*\S\s*Correct", _text(slides.decks[0]))
    assert "application/vnd.jupyter.widget-view+json" not in page and "unpkg.com/@jupyter-widgets" not in page
    with capsys.disabled():
        print(f"\n[slides] {FIRST.name}: executed and exported in {slides.seconds:.1f} s (quick mode), "
              f"{page.count('<section')} sections")


def test_widgets_become_a_note():
    import nbformat.v4 as v4

    widget = v4.new_output("display_data", data={"application/vnd.jupyter.widget-view+json": {"model_id": "x"},
                                                 "text/plain": "VBox()"})
    nb = v4.new_notebook(cells=[v4.new_code_cell("w", outputs=[widget, widget, v4.new_output("stream", text="hi")])],
                         metadata={"widgets": {"state": {}}})
    out = _course._without_widgets(nb)
    assert "widgets" not in out.metadata
    assert [o.get("text") for o in out.cells[0].outputs] == [_course.LIVE_NOTE + "\n", "hi"]


def test_only_names_no_lesson_is_a_value_error(tmp_path):
    with pytest.raises(ValueError, match=r"only=\['99_nothing'\] names none of the lessons .*'01_low_rank_basics'"):
        _course.build_slides(REPO / "notebooks", tmp_path, only=["99_nothing"], execute_cells=False, fetch=False)


def test_without_npm_the_decks_use_the_cdn_and_say_so(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    log = io.StringIO()
    assert _course.slide_assets(tmp_path, log=log) is None
    assert "npm is not on PATH" in log.getvalue() and "needs the network" in log.getvalue()
    log = io.StringIO()
    slides = _course.build_slides(REPO / "notebooks", tmp_path, only=[FIRST.stem], execute_cells=False, fetch=False,
                                  log=log)
    assert not slides.offline and "--cdn was given" in log.getvalue()
    assert "https://unpkg.com/reveal.js@4.0.2/dist/reveal.js" in slides.decks[0].read_text(encoding="utf-8")


def _tgz(path: Path, files: dict) -> None:
    with tarfile.open(path, "w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(f"package/{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


def test_assets_are_copied_from_npm_packages(tmp_path, monkeypatch):
    """What `npm pack` gives is unpacked into _static/ (only the files the decks load), once; a failing npm is
    reported with its last error line and the decks fall back to the CDN."""
    calls = []

    def fake_run(cmd, **kw):
        calls.append(cmd)
        dest = Path(cmd[cmd.index("--pack-destination") + 1])
        _tgz(dest / "reveal.js-4.0.2.tgz", {"dist/reveal.js": b"R", "plugin/notes/notes.js": b"N", "test/x.js": b"-"})
        _tgz(dest / "requirejs-2.1.10.tgz", {"require.js": b"Q", "bin/r.js": b"-"})
        _tgz(dest / "jquery-2.2.4.tgz", {"dist/jquery.min.js": b"J", "src/core.js": b"-"})
        _tgz(dest / "mathjax-2.7.7.tgz", {"MathJax.js": b"M", "extensions/Safe.js": b"S", "unpacked/MathJax.js": b"-"})
        return subprocess.CompletedProcess(cmd, 0, "", "")

    monkeypatch.setattr(shutil, "which", lambda name: "/usr/bin/npm")
    monkeypatch.setattr(subprocess, "run", fake_run)
    settings = _course.slide_assets(tmp_path)
    static = tmp_path / _course.STATIC
    assert settings["reveal_url_prefix"] == "_static/reveal.js" and settings["require_js_url"] == "_static/require.js"
    assert (static / "reveal.js/plugin/notes/notes.js").read_bytes() == b"N"
    assert (static / "jquery.min.js").read_bytes() == b"J" and (static / "mathjax/extensions/Safe.js").read_bytes() == b"S"
    assert not (static / "reveal.js/test").exists() and not (static / "r.js").exists()
    assert not (static / "mathjax/unpacked").exists()
    assert _course.slide_assets(tmp_path) == settings and len(calls) == 1, "a second build reuses the copies"

    monkeypatch.setattr(subprocess, "run", lambda cmd, **kw: subprocess.CompletedProcess(
        cmd, 1, "", "npm error code E404\nnpm error 404 Not Found - GET https://registry.npmjs.org/x"))
    log = io.StringIO()
    assert _course.slide_assets(tmp_path / "other", log=log) is None
    assert "npm pack reveal.js@4.0.2" in log.getvalue() and "404 Not Found" in log.getvalue()


def test_make_slides_builds_every_deck(repo):
    makefile = (repo / "Makefile").read_text()
    rule = re.search(r"^slides:.*\n((?:\t.*\n)+)", makefile, re.M)
    assert rule and "tools.course slides --out build/slides" in rule.group(1)
    assert "make slides" in (repo / "README.md").read_text()
