"""Every lesson notebooks/NN_*.ipynb runs top to bottom from a clean kernel, in quick AND full mode.

Quick mode (HMF_LAB_QUICK=1) is what CI iterates on; full mode is what a student runs, so it is run
too (marked `slow`; `make test` and CI run it). Each run goes through ``tools.course.execute``:
nbclient with a per-cell timeout and one fresh retry if a cell times out or the kernel dies (a lost
kernel message once stalled a notebook for 600 s; a cell that *raises* is never retried). Also here:
notebooks are committed without outputs, the student build holds no solution and still runs, and the
static book has every page with its figures.
"""
from __future__ import annotations

import json
import re
import sys
from html.parser import HTMLParser
from pathlib import Path

import nbformat
import pytest

import hmf_lab as hl
from tools import course as _course

REPO = Path(__file__).resolve().parents[1]
NOTEBOOKS = _course.lessons(REPO / "notebooks")
ALL_IPYNB = sorted({*(REPO / "notebooks").rglob("*.ipynb"), *(REPO / "apps").rglob("*.ipynb")}
                   - set((REPO / "notebooks").rglob(".ipynb_checkpoints/*.ipynb")))
CELL_TIMEOUT = {"quick": 300, "full": 1200}  # seconds per cell (nbclient); a timed-out cell gets one fresh rerun
TEST_TIMEOUT = {"quick": 1200, "full": 3600}  # seconds per test (pytest-timeout; the project default is 900)
QUICK_RUNS: dict[str, object] = {}  # file name -> executed notebook (quick), reused by the book test


def _ids(paths):
    return [p.name for p in paths]


def test_lessons_are_numbered_01_to_n():
    numbers = [int(p.name[:2]) for p in NOTEBOOKS]
    assert numbers and numbers == list(range(1, len(numbers) + 1)), \
        f"lessons must be notebooks/01_*.ipynb, 02_*, ... without gaps; found {_ids(NOTEBOOKS)}"


def test_kernel_is_this_interpreter():
    from jupyter_client import KernelManager

    cmd = KernelManager(kernel_name="python3").format_kernel_cmd()
    assert Path(cmd[0]).resolve() == Path(sys.executable).resolve(), f"kernel python3 runs {cmd[0]}, not {sys.executable}"


@pytest.mark.parametrize("path", ALL_IPYNB, ids=[str(p.relative_to(REPO)) for p in ALL_IPYNB])
def test_committed_without_outputs(path):
    nb = nbformat.read(path, as_version=4)
    dirty = [i for i, c in enumerate(nb.cells) if c.cell_type == "code" and (c.outputs or c.execution_count)]
    assert not dirty, f"{path.name}: cells {dirty} carry outputs or execution counts; clear them before committing"


APPS = sorted((REPO / "apps").glob("*.ipynb"))


@pytest.mark.parametrize("path", APPS, ids=_ids(APPS))
def test_app_notebook_matches_its_text_source(path):
    """apps/NAME.ipynb and apps/NAME.py (py:percent, the source) hold the same cells (`jupytext --sync apps/*.py`)."""
    import jupytext

    cells = lambda nb: [(c.cell_type, c.source.strip()) for c in nb.cells]  # noqa: E731
    assert cells(jupytext.read(path.with_suffix(".py"))) == cells(nbformat.read(path, 4)), \
        f"{path.name} and {path.with_suffix('.py').name} differ: run `jupytext --sync apps/*.py`"


def _check_solutions_pass(name: str, nb) -> None:
    """Cells tagged `solution` that ran an exercise check must have printed a pass, never a FAIL."""
    for c in nb.cells:
        if c.cell_type == "code" and "solution" in c.metadata.get("tags", []):
            text = "".join(o.get("text", "") for o in c.outputs if o.get("output_type") == "stream")
            if "check" not in c.source:
                continue
            skipped = re.search(r"Skipped the live cells that need the '(\w+)' data set", text)
            if skipped and not hl.data.available(skipped.group(1), download=False):
                continue   # a fresh clone without the data: the solution cannot run, and says so
            assert "FAIL" not in text and re.search(r"\b(PASS|Correct)\b", text), \
                f"{name}: a solution cell did not pass its check: {c.source[:80]!r} printed {text[:300]!r}"


def _run(path, mode, tmp_path, capsys):
    run = _course.execute(path, quick=mode == "quick", timeout=CELL_TIMEOUT[mode], cwd=tmp_path)
    slow = ", ".join(f"cell {i} {s:.1f} s" for s, i in run.slowest)
    with capsys.disabled():
        print(f"\n[notebook time] {path.name}: {run.seconds:.1f} s wall, {run.cpu:.1f} s kernel CPU ({mode} mode; slowest {slow}"
              f"{'; needed a retry' if run.tries > 1 else ''})", file=sys.stderr)
    _check_solutions_pass(path.name, run.nb)
    return run


@pytest.mark.notebook
@pytest.mark.timeout(TEST_TIMEOUT["quick"])
@pytest.mark.parametrize("path", NOTEBOOKS, ids=_ids(NOTEBOOKS))
def test_notebook_runs_quick(path, tmp_path, capsys):
    QUICK_RUNS[path.name] = _run(path, "quick", tmp_path, capsys).nb


def _tiny_notebook(path: Path, source: str) -> Path:
    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(source)],
                                            metadata={"kernelspec": {"name": "python3", "display_name": "Python 3",
                                                                     "language": "python"}}), path)
    return path


@pytest.mark.notebook
def test_execute_retries_a_stalled_cell_once(tmp_path):
    """A cell that outlives its timeout gets one fresh run (the stall seen once); a second stall is an error."""
    from nbclient.exceptions import CellTimeoutError

    src = ("from pathlib import Path; import time\n"
           "log = Path('tries.log'); n = len(log.read_text()) if log.exists() else 0; log.write_text('x' * (n + 1))\n"
           "time.sleep(30 if n < LIMIT else 0)")
    once = _tiny_notebook(tmp_path / "once.ipynb", src.replace("LIMIT", "1"))
    run = _course.execute(once, quick=True, timeout=3, cwd=tmp_path)
    assert run.tries == 2 and (tmp_path / "tries.log").read_text() == "xx"
    (tmp_path / "tries.log").unlink()
    always = _tiny_notebook(tmp_path / "always.ipynb", src.replace("LIMIT", "99"))
    with pytest.raises(CellTimeoutError, match="timed out"):
        _course.execute(always, quick=True, timeout=3, cwd=tmp_path)
    assert (tmp_path / "tries.log").read_text() == "xx", "exactly one retry"


@pytest.mark.notebook
def test_execute_does_not_retry_a_cell_that_raises(tmp_path):
    from nbclient.exceptions import CellExecutionError

    nb = _tiny_notebook(tmp_path / "raises.ipynb", "from pathlib import Path\n"
                        "p = Path('tries.log'); p.write_text(p.read_text() + 'x' if p.exists() else 'x')\n"
                        "raise ValueError('a real failure')")
    with pytest.raises(CellExecutionError, match="a real failure"):
        _course.execute(nb, quick=True, timeout=60, cwd=tmp_path)
    assert (tmp_path / "tries.log").read_text() == "x"


@pytest.mark.notebook
def test_kernel_sees_the_mode(tmp_path):
    nb = _tiny_notebook(tmp_path / "mode.ipynb", "import hmf_lab, os\nprint(os.environ['HMF_LAB_QUICK'], hmf_lab.__file__)")
    for quick, flag in ((True, "1"), (False, "0")):
        run = _course.execute(nb, quick=quick, timeout=60, cwd=tmp_path)
        assert len(run.nb.cells) == 1, "the CPU probe cell must be removed from the executed notebook"
        assert run.cpu is not None and run.cpu > 0
        out = run.nb.cells[0].outputs[0]["text"]
        assert out.split()[0] == flag
        assert Path(out.split()[1]).resolve() == (REPO / "hmf_lab" / "__init__.py").resolve(), "the kernel imports this checkout"


# ------------------------------------------------------------------------------------ student / instructor
def _solution_lines(nb) -> list[str]:
    """Lines of the solution cells that appear nowhere else in the notebook (what a student must not see)."""
    other = "\n".join(c.source for c in nb.cells if "solution" not in c.metadata.get("tags", []))
    lines = []
    for c in nb.cells:
        if "solution" in c.metadata.get("tags", []):
            lines += [ln.strip() for ln in c.source.splitlines()
                      if len(ln.strip()) > 12 and ln.strip() not in other]
    return lines


@pytest.fixture(scope="module")
def builds(tmp_path_factory):
    root = tmp_path_factory.mktemp("course")
    return {kind: _course.build_copies(kind, REPO / "notebooks", root / kind) for kind in _course.KINDS}


def test_student_and_instructor_builds_cover_every_lesson(builds):
    for kind, paths in builds.items():
        assert _ids(paths) == _ids(NOTEBOOKS), kind


def test_student_build_holds_no_solution(builds):
    n_solution_cells = 0
    for student, instructor in zip(builds["student"], builds["instructor"]):
        s_nb, i_nb = nbformat.read(student, 4), nbformat.read(instructor, 4)
        tagged = [i for i, c in enumerate(s_nb.cells) if "solution" in c.metadata.get("tags", [])]
        assert not tagged, f"{student.name}: cells {tagged} are tagged `solution` in the student build"
        sol = [c for c in i_nb.cells if "solution" in c.metadata.get("tags", [])]
        n_solution_cells += len(sol)
        # the instructor copy is the lesson itself (minus outputs), the student copy that minus solutions
        assert len(i_nb.cells) == len(nbformat.read(REPO / "notebooks" / student.name, 4).cells)
        assert len(s_nb.cells) == len(i_nb.cells) - len(sol)
        text = student.read_text()
        leaked = [ln for ln in _solution_lines(i_nb) if json.dumps(ln)[1:-1] in text]
        assert not leaked, f"{student.name}: solution text in the student build: {leaked[:3]}"
        assert "jupytext" not in s_nb.metadata, "a build copy must not be paired with a text source"
    assert n_solution_cells > 0, "no cell in the series is tagged `solution`: nothing to strip, nothing tested"


def test_course_copy_rejects_an_unknown_kind():
    with pytest.raises(ValueError, match=r"kind must be one of \('student', 'instructor'\), got 'teacher'"):
        _course.course_copy(nbformat.v4.new_notebook(), "teacher")
    with pytest.raises(ValueError, match="kind must be one of"):
        _course.build_copies("teacher")


def test_lessons_rejects_a_missing_folder(tmp_path):
    with pytest.raises(ValueError, match="no such folder"):
        _course.lessons(tmp_path / "nope")
    with pytest.raises(ValueError, match=r"no notebooks \[0-9\]\[0-9\]_\*.ipynb in"):
        _course.build_copies("student", tmp_path, tmp_path / "out")


@pytest.mark.notebook
@pytest.mark.timeout(TEST_TIMEOUT["quick"])
@pytest.mark.parametrize("i", range(len(NOTEBOOKS)), ids=_ids(NOTEBOOKS))
def test_student_build_runs(builds, i, tmp_path):
    """With the solutions gone, every student notebook still runs top to bottom (quick mode)."""
    path = builds["student"][i]
    run = _course.execute(path, quick=True, timeout=CELL_TIMEOUT["quick"], cwd=tmp_path)
    code = [c for c in run.nb.cells if c.cell_type == "code"]
    assert code and all(c.execution_count for c in code), f"{path.name}: not every cell ran"
    errors = [o for c in code for o in c.outputs if o.get("output_type") == "error"]
    assert not errors, f"{path.name}: {errors[0].get('ename')}: {errors[0].get('evalue')}"


# ------------------------------------------------------------------------------------ the book
class _Links(HTMLParser):
    def __init__(self):
        super().__init__()
        self.hrefs, self.pngs = [], 0

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "a" and a.get("href"):
            self.hrefs.append(a["href"])
        if tag == "img" and (a.get("src") or "").startswith("data:image/png;base64,"):
            self.pngs += 1
            assert a.get("alt") and "No description" not in a["alt"], f"a figure without alt text: {a.get('alt')!r}"


def _parse(page: Path) -> _Links:
    p = _Links()
    p.feed(page.read_text(encoding="utf-8"))
    return p


def _pngs_in(nb) -> int:
    return sum("image/png" in o.get("data", {}) for c in nb.cells if c.cell_type == "code" for o in c.outputs)


@pytest.mark.slow  # six nbconvert exports, no kernel
def test_book_links_resolve_inside_the_book(tmp_path):
    """The syllabus's links to lessons, Markdown files and images work in the book folder (no execution here)."""
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "pic.png").write_bytes(b"\x89PNG fake")
    (tmp_path / "NOTES.md").write_text("# Notes\n\nBack to [the first lesson](notebooks/01_low_rank_basics.ipynb).\n")
    first = NOTEBOOKS[0]
    (docs / "syllabus.md").write_text(
        f"# Syllabus\n\n[lesson one](../notebooks/{first.name}#top), [notes](../NOTES.md), "
        "[web](https://example.org), [gone](missing.md)\n\n![a picture](pic.png)\n")
    fake = {p.name: nbformat.read(p, 4) for p in NOTEBOOKS}  # "executed": skips the kernels
    book = _course.build_book(REPO / "notebooks", tmp_path / "book", syllabus=docs / "syllabus.md", executed=fake)
    assert not book.runs
    index = (tmp_path / "book" / "index.html").read_text()
    assert f'href="{first.stem}.html#top"' in index
    assert 'href="NOTES.html"' in index and (tmp_path / "book" / "NOTES.html").is_file()
    assert 'src="files/pic.png"' in index and (tmp_path / "book" / "files" / "pic.png").read_bytes() == b"\x89PNG fake"
    assert 'href="https://example.org"' in index and 'href="missing.md"' in index  # left alone
    assert 'href="01_low_rank_basics.html"' in (tmp_path / "book" / "NOTES.html").read_text()
    assert [p.name for p in book.pages][-1] == "NOTES.html"


@pytest.mark.notebook
@pytest.mark.timeout(2 * TEST_TIMEOUT["quick"])
def test_book_quick(tmp_path, capsys):
    out = tmp_path / "book"
    book = _course.build_book(REPO / "notebooks", out, quick=True, timeout=CELL_TIMEOUT["quick"],
                              executed=dict(QUICK_RUNS))
    names = [p.name for p in book.pages]
    assert names[:len(NOTEBOOKS) + 1] == ["index.html"] + [f"{p.stem}.html" for p in NOTEBOOKS]
    for page in book.pages:
        assert page.is_file() and page.stat().st_size > 1000, page
    index = _parse(out / "index.html")
    local = [h for h in index.hrefs if not re.match(r"^([a-z][a-z0-9+.-]*:|#)", h)]
    missing = [h for h in local if not (out / h.split("#")[0]).is_file()]
    assert not missing, f"links in index.html that do not resolve: {missing}"
    assert {f"{p.stem}.html" for p in NOTEBOOKS} <= {h.split("#")[0] for h in local}, "index must link every page"
    executed = {**QUICK_RUNS, **{k: r.nb for k, r in book.runs.items()}}
    for p in NOTEBOOKS:
        page = _parse(out / f"{p.stem}.html")
        made = _pngs_in(executed[p.name])
        plots = made or re.search(r"\bplot|plt\.", "".join(c.source for c in executed[p.name].cells))
        assert page.pngs >= made, f"{p.stem}.html shows {page.pngs} of the notebook's {made} figures"
        if plots:
            assert page.pngs > 0, f"{p.stem}.html: the notebook plots, but the page shows no figure"
        assert "index.html" in page.hrefs, f"{p.stem}.html does not link back to the index"
    with capsys.disabled():
        print(f"\n[book] {len(names)} pages in {book.seconds:.1f} s (quick mode, {len(book.runs)} notebooks "
              f"executed here, {len(NOTEBOOKS) - len(book.runs)} reused): {', '.join(names)}", file=sys.stderr)


# ------------------------------------------------------------------------------------ full mode (last: slowest)
@pytest.mark.slow
@pytest.mark.notebook
@pytest.mark.timeout(TEST_TIMEOUT["full"])
@pytest.mark.parametrize("path", NOTEBOOKS, ids=_ids(NOTEBOOKS))
def test_notebook_runs_full(path, tmp_path, capsys):
    """Full mode is what a student runs: the same checks, the real sizes."""
    _run(path, "full", tmp_path, capsys)
