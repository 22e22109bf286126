"""Graded assignments with nbgrader: student versions, autograding, grade export (private, not in the wheel).

``assignments/NAME.py`` (py:percent, the source) and ``assignments/NAME.ipynb`` (its jupytext pair, no outputs)
are the instructor's notebooks. nbgrader cell metadata marks the **autograded answer** cells (code between
``### BEGIN SOLUTION`` / ``### END SOLUTION``), the **autograder tests** (visible asserts, then
``### BEGIN HIDDEN TESTS`` ... ``### END HIDDEN TESTS``) and the **manually graded** write-up cells. This tool
runs nbgrader offline in a throw-away course directory (``source/``, ``release/``, ``submitted/``,
``autograded/`` and a sqlite gradebook), so nothing is installed or served and nothing is left behind
unless ``--course DIR`` asks to keep it (to grade the write-ups later in nbgrader's formgrader).

Command line (what ``make assignments`` and ``make grade SUBMISSIONS=...`` call)::

    python -m tools.grade release  [--out build/assignments]          # student versions: no solutions, no hidden tests
    python -m tools.grade grade SUBMISSIONS [--out build/grades]      # autograde, export grades.csv + questions.csv
    python -m tools.grade selftest [--out build/grades-selftest]      # grade the solutions, wrong and blank copies

``SUBMISSIONS`` has nbgrader's ``submitted/`` layout: ``SUBMISSIONS/<student>/<assignment>/<assignment>.ipynb``
(the released notebook with the student's answers). Grading runs every kernel with ``HMF_LAB_QUICK=1``
(``--full`` for the full sizes) and one thread; the hidden tests build their own small synthetic matrices.

>>> names()
['a1_hmf_layer', 'a2_timing', 'a3_heuristic']
>>> strip_markers("x = 1\\n    ### BEGIN SOLUTION\\n    y = 2\\n    ### END SOLUTION\\n")
'x = 1\\n    y = 2\\n'
"""
from __future__ import annotations

import argparse
import copy
import csv
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SRC = REPO / "assignments"
CONFIG = "nbgrader_config.py"
_NAME = re.compile(r"^[a-z][a-z0-9_]*$")  # an assignment's name: its notebook's stem, a valid nbgrader id
_MARKER = re.compile(r"^[ \t]*### (?:BEGIN|END) SOLUTION[ \t]*\n?", re.M)

#: Known-wrong submissions for ``selftest`` (and tests/test_assignments.py): assignment -> student -> edits
#: ``(solution text, wrong text)`` applied to the instructor's answers. Each text must occur exactly once.
WRONG = {
    "a1_hmf_layer": {
        "wrong": [("return split * n + rank * (m - split) + rank * n",  # the parameter count off by one
                   "return split * n + rank * (m - split) + rank * n + 1")],
        "wrong_forward": [("top = x @ self.D.T  # (..., k)",  # a forward that ignores the dense rows
                           "top = torch.zeros(*x.shape[:-1], self.D.shape[0])  # (..., k)")],
    },
    "a2_timing": {
        "wrong": [("return (split * n + rank * (m - split) + rank * n) * value_bytes",  # U counted with all m rows
                   "return (split * n + rank * m + rank * n) * value_bytes")],
    },
    "a3_heuristic": {
        "wrong": [("return torch.topk(score, split, largest=True).indices",  # keeps the best-explained rows
                   "return torch.topk(score, split, largest=False).indices")],
    },
}


def names(src=SRC) -> list[str]:
    """The assignments in ``src``: the stems of its ``*.ipynb`` notebooks, sorted."""
    src = Path(src)
    if not src.is_dir():
        raise ValueError(f"expected a folder of assignment notebooks NAME.ipynb, got {str(src)!r} (no such folder); "
                         "pass --src with the assignments/ folder of the repository")
    found = sorted(p.stem for p in src.glob("*.ipynb"))
    bad = [s for s in found if not _NAME.match(s)]
    if bad:
        raise ValueError(f"assignment names must be lower-case letters, digits and _ (nbgrader ids), got {bad}; "
                         "rename the notebooks (and their .py pairs)")
    if not found:
        raise ValueError(f"no assignment notebooks NAME.ipynb in {src}; run `jupytext --sync assignments/*.py`")
    return found


def strip_markers(text: str) -> str:
    """``text`` without its ``### BEGIN SOLUTION`` / ``### END SOLUTION`` lines (the solution stays)."""
    return _MARKER.sub("", text)


# ----------------------------------------------------------------------------------------------- nbgrader
def kernel_env(root: Path, quick: bool = True) -> dict:
    """The environment of nbgrader and of every kernel it starts: this checkout's ``hmf_lab`` first on
    ``PYTHONPATH``, ``HMF_LAB_QUICK``, one thread, a private Jupyter config folder (no user config leaks in)."""
    path = [str(REPO), *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
    # this interpreter's scripts first: nbgrader runs `alembic` (its gradebook migrations) as a command
    bins = [str(Path(sys.executable).parent), *filter(None, os.environ.get("PATH", "").split(os.pathsep))]
    one = {k: "1" for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")}
    return dict(os.environ, PYTHONPATH=os.pathsep.join(path), PATH=os.pathsep.join(bins),
                HMF_LAB_QUICK="1" if quick else "0",
                JUPYTER_CONFIG_DIR=str(root / ".jupyter"), MPLBACKEND="Agg", PYTHONHASHSEED="0", **one)


def nbgrader(root: Path, *args: str, quick: bool = True, log=None) -> str:
    """Run ``nbgrader ARGS`` in the course directory ``root``; return its log; raise ``RuntimeError`` if it fails."""
    cmd = [sys.executable, "-m", "nbgrader", *args, f"--CourseDirectory.root={root}"]
    p = subprocess.run(cmd, cwd=root, env=kernel_env(root, quick), capture_output=True, text=True)
    text = p.stdout + p.stderr
    if log is not None:
        log.write(f"$ nbgrader {' '.join(args)}\n{text}\n")
    # nbgrader logs a failed notebook and goes on with exit status 0: its ERROR lines count as failures too
    errors = [ln for ln in text.splitlines() if "[ERROR]" in ln]
    if p.returncode != 0 or errors:
        tail = "\n".join((errors or text.splitlines())[-15:])
        raise RuntimeError(f"nbgrader {' '.join(args)} failed (exit status {p.returncode}):\n{tail}")
    return text


@contextmanager
def course_dir(keep=None, src=SRC, which=None):
    """A course directory with ``source/NAME/NAME.ipynb`` for each assignment in ``which`` (default: all) and
    the course's ``nbgrader_config.py``; a temporary folder removed afterwards unless ``keep`` names one."""
    import nbformat

    src = Path(src)
    all_names = names(src)
    which = all_names if which is None else list(which)
    unknown = sorted(set(which) - set(all_names))
    if unknown:
        raise ValueError(f"unknown assignments {unknown}; the assignments are {all_names}")
    if not (src / CONFIG).is_file():
        raise ValueError(f"{src / CONFIG} is missing: the course's nbgrader settings live there")
    tmp = None
    if keep is None:
        tmp = tempfile.mkdtemp(prefix="hmf_lab_grade_")
        root = Path(tmp)
    else:
        root = Path(keep).resolve()
        root.mkdir(parents=True, exist_ok=True)
    try:
        shutil.copy(src / CONFIG, root / CONFIG)
        (root / ".jupyter").mkdir(exist_ok=True)
        for name in which:
            nb = nbformat.read(src / f"{name}.ipynb", as_version=4)
            nb.metadata.pop("jupytext", None)  # a released copy is not a jupytext pair
            (root / "source" / name).mkdir(parents=True, exist_ok=True)
            nbformat.write(nb, root / "source" / name / f"{name}.ipynb")
        yield root
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)


def release(out=None, src=SRC, which=None, *, log=None) -> list[Path]:
    """Write the student version of each assignment (``nbgrader generate_assignment``: solutions replaced by
    stubs, hidden tests removed, outputs cleared) to ``out/NAME/NAME.ipynb``; return the paths."""
    out = Path(out if out is not None else REPO / "build" / "assignments")
    written = []
    with course_dir(src=src, which=which) as root:
        for name in sorted(p.name for p in (root / "source").iterdir()):
            nbgrader(root, "generate_assignment", name, "--force", log=log)
            target = out / name
            if target.exists():
                shutil.rmtree(target)
            shutil.copytree(root / "release" / name, target)
            written.append(target / f"{name}.ipynb")
    return written


# ----------------------------------------------------------------------------------------------- grading
@dataclass
class Grades:
    """What :func:`grade` wrote: nbgrader's export (one row per assignment x student) and one row per question."""

    grades_csv: Path  # assignment, ..., student_id, ..., raw_score, score, max_score (nbgrader export)
    questions_csv: Path  # assignment, student_id, question, kind (auto / manual), score, max_score, needs_manual_grade
    seconds: float

    def rows(self, which: str = "questions") -> list[dict]:
        """The rows of ``questions.csv`` (or ``"grades"``: of ``grades.csv``) as dicts."""
        if which not in ("questions", "grades"):
            raise ValueError(f"which must be 'questions' or 'grades', got {which!r}")
        path = self.questions_csv if which == "questions" else self.grades_csv
        with open(path, newline="") as fh:
            return list(csv.DictReader(fh))

    def table(self) -> list[tuple]:
        """(assignment, student, autograded points, their maximum, points left to grade by hand) per submission."""
        acc: dict = {}
        for r in self.rows():
            a = acc.setdefault((r["assignment"], r["student_id"]), [0.0, 0.0, 0.0])
            if r["kind"] == "auto":
                a[0] += float(r["score"])
                a[1] += float(r["max_score"])
            elif r["needs_manual_grade"] == "True":  # an untouched write-up scores 0 and waits for nobody
                a[2] += float(r["max_score"])
        return [(k[0], k[1], *v) for k, v in sorted(acc.items())]


def _submissions(folder: Path) -> dict[str, list[str]]:
    """assignment -> students, from ``folder/<student>/<assignment>/<assignment>.ipynb``."""
    if not folder.is_dir():
        raise ValueError(f"expected a folder SUBMISSIONS/<student>/<assignment>/<assignment>.ipynb, got "
                         f"{str(folder)!r} (no such folder)")
    found: dict[str, list[str]] = {}
    for nb in sorted(folder.glob("*/*/*.ipynb")):
        student, assignment = nb.parts[-3], nb.parts[-2]
        if nb.stem == assignment and not student.startswith("."):
            found.setdefault(assignment, []).append(student)
    if not found:
        raise ValueError(f"no submissions in {folder}: expected <student>/<assignment>/<assignment>.ipynb, "
                         f"e.g. {folder}/alice/a1_hmf_layer/a1_hmf_layer.ipynb")
    return found


def _question_rows(root: Path) -> list[dict]:
    from nbgrader.api import Gradebook

    rows = []
    with Gradebook(f"sqlite:///{root / 'gradebook.db'}") as gb:
        for assignment in gb.assignments:
            for sub in gb.assignment_submissions(assignment.name):
                for nb in sub.notebooks:
                    for g in sorted(nb.grades, key=lambda g: g.cell.name):
                        manual = g.cell.cell_type == "markdown" or g.auto_score is None and g.needs_manual_grade
                        rows.append({"assignment": assignment.name, "student_id": sub.student.id, "notebook": nb.name,
                                     "question": g.name, "kind": "manual" if manual else "auto",
                                     "score": g.score, "max_score": g.max_score,
                                     "needs_manual_grade": g.needs_manual_grade})
    return rows


def grade(submissions, out=None, src=SRC, *, quick: bool = True, course=None, log=None) -> Grades:
    """Autograde every submission in ``submissions`` and export the grades to ``out``.

    Writes ``out/grades.csv`` (``nbgrader export``: one row per assignment and student, ``score`` counting
    the write-ups not yet graded by hand as 0), ``out/questions.csv`` (one row per graded cell: ``kind`` auto or
    manual, ``needs_manual_grade``), the autograded notebooks under ``out/autograded/`` and nbgrader's log.
    The hidden tests come back from the gradebook that ``generate_assignment`` fills, so a student's copy
    never had them. ``course``: keep the course directory there (for nbgrader's formgrader); default temporary.
    """
    t0 = time.perf_counter()
    submissions = Path(submissions)
    found = _submissions(submissions)
    out = Path(out if out is not None else REPO / "build" / "grades")
    out.mkdir(parents=True, exist_ok=True)
    own_log = log is None
    log = open(out / "nbgrader.log", "w") if own_log else log
    try:
        with course_dir(course, src=src, which=sorted(found)) as root:
            for assignment, students in sorted(found.items()):
                nbgrader(root, "generate_assignment", assignment, "--force", quick=quick, log=log)
                for student in students:
                    dest = root / "submitted" / student / assignment
                    if dest.exists():
                        shutil.rmtree(dest)
                    shutil.copytree(submissions / student / assignment, dest)
                nbgrader(root, "autograde", assignment, "--force", quick=quick, log=log)
            nbgrader(root, "export", f"--to={(out / 'grades.csv').resolve()}", quick=quick, log=log)
            rows = _question_rows(root)
            if (out / "autograded").exists():
                shutil.rmtree(out / "autograded")
            shutil.copytree(root / "autograded", out / "autograded")
    finally:
        if own_log:
            log.close()
    with open(out / "questions.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=["assignment", "student_id", "notebook", "question", "kind", "score",
                                           "max_score", "needs_manual_grade"])
        w.writeheader()
        w.writerows(rows)
    return Grades(out / "grades.csv", out / "questions.csv", time.perf_counter() - t0)


# ----------------------------------------------------------------------------------------------- self-test
def answered(release_nb, source_nb, edits=()):
    """The released notebook ``release_nb`` with every answer cell filled from the instructor's ``source_nb``
    (markers removed), then ``edits`` ``(old, new)`` applied: what a student would hand in."""
    by_id = {c.metadata.get("nbgrader", {}).get("grade_id"): c for c in source_nb.cells}
    nb = copy.deepcopy(release_nb)
    for cell in nb.cells:
        meta = cell.metadata.get("nbgrader", {})
        if meta.get("solution"):
            cell.source = strip_markers(by_id[meta["grade_id"]].source)
    for old, new in edits:
        hits = [c for c in nb.cells if old in c.source]
        if len(hits) != 1 or hits[0].source.count(old) != 1:
            raise ValueError(f"a wrong-submission edit must match the solution exactly once, {old!r} matched "
                             f"{sum(c.source.count(old) for c in nb.cells)} times; update WRONG in tools/grade.py")
        hits[0].source = hits[0].source.replace(old, new)
    return nb


def write_selftest_submissions(folder, src=SRC, which=None, wrong=None, released=None) -> Path:
    """Write the submissions of the self-test under ``folder``: per assignment ``solution`` (the instructor's
    answers in the released notebook), each student of :data:`WRONG` (the same with that student's edits) and
    ``blank`` (the released notebook handed in untouched: the stubs raise, so it must score 0).
    ``released``: the paths :func:`release` returned (default: released here, in a temporary folder)."""
    import nbformat

    folder = Path(folder)
    wrong = WRONG if wrong is None else wrong
    with tempfile.TemporaryDirectory() as tmp:
        paths = released if released is not None else release(Path(tmp) / "release", src=src, which=which)
        for path in paths:
            name = Path(path).stem
            rel, source = nbformat.read(path, as_version=4), nbformat.read(Path(src) / f"{name}.ipynb", as_version=4)
            for student, edits in (("solution", ()), *wrong.get(name, {}).items(), ("blank", None)):
                (folder / student / name).mkdir(parents=True, exist_ok=True)
                nb = rel if edits is None else answered(rel, source, edits)  # blank: handed in untouched
                nbformat.write(nb, folder / student / name / f"{name}.ipynb")
    return folder


def _print_table(grades: Grades, file=sys.stdout) -> None:
    """One line per submission: autograded points, and the points of write-ups left to grade by hand."""
    print(f"{'assignment':14s} {'student':14s} {'autograded':>12s}   by hand (to grade)", file=file)
    for a, s, auto, auto_max, manual in grades.table():
        print(f"{a:14s} {s:14s} {auto:5g} of {auto_max:<4g}   {manual:g} points" if manual else
              f"{a:14s} {s:14s} {auto:5g} of {auto_max:<4g}   -", file=file)
    print(f"grades: {grades.grades_csv}\nper question: {grades.questions_csv}\n({grades.seconds:.0f} s)", file=file)


# ----------------------------------------------------------------------------------------------- CLI
def main(argv=None) -> int:
    """``python -m tools.grade {release,grade,selftest}``; returns the exit status."""
    ap = argparse.ArgumentParser(prog="python -m tools.grade", description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="what", required=True)
    for what, default in (("release", "build/assignments"), ("grade", "build/grades"),
                          ("selftest", "build/grades-selftest")):
        p = sub.add_parser(what)
        if what == "grade":
            p.add_argument("submissions", help="SUBMISSIONS/<student>/<assignment>/<assignment>.ipynb")
        p.add_argument("--out", default=str(REPO / default), help=f"output folder (default: {default})")
        p.add_argument("--src", default=str(SRC), help="folder of the assignment sources (default: assignments/)")
        if what != "release":
            p.add_argument("--full", action="store_true", help="grade with the full sizes (default: HMF_LAB_QUICK=1)")
            p.add_argument("--course", default=None, help="keep the nbgrader course directory (and its gradebook) here")
    a = ap.parse_args(argv)
    try:
        if a.what == "release":
            paths = release(a.out, a.src)
            print(f"wrote {len(paths)} student assignments (no solutions, no hidden tests) to {Path(a.out)}:")
            for p in paths:
                print(f"  {p.relative_to(Path(a.out))}")
            return 0
        if a.what == "grade":
            grades = grade(a.submissions, a.out, a.src, quick=not a.full, course=a.course)
        else:
            subs = write_selftest_submissions(Path(a.out) / "submissions", a.src)
            grades = grade(subs, a.out, a.src, quick=not a.full, course=a.course)
    except (ValueError, RuntimeError) as e:
        print(f"tools.grade: error: {e}", file=sys.stderr)
        return 2
    _print_table(grades)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
