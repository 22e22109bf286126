"""The graded assignments (assignments/, nbgrader) and their driver tools/grade.py.

Fast: the sources are jupytext pairs without outputs, every answer has autograded tests with real hidden parts,
the known-wrong edits still match the solutions, the driver's errors. Slow (one nbgrader run, about 2-3 minutes
on 2 busy cores): the student versions carry no solution and no hidden test; the grader gives the instructor's
solution every autograded point and each wrong copy fewer; the exported CSVs have the expected rows.
"""
from __future__ import annotations

import csv
import doctest
import re
from pathlib import Path

import jupytext
import nbformat
import pytest

from tools import grade as G

REPO = Path(__file__).resolve().parents[1]
SRC = REPO / "assignments"
NAMES = ["a1_hmf_layer", "a2_timing", "a3_heuristic"]
HIDDEN = re.compile(r"### BEGIN HIDDEN TESTS\n(.*?)### END HIDDEN TESTS", re.S)
SOLUTION = re.compile(r"### BEGIN SOLUTION\n(.*?)### END SOLUTION", re.S)


def _nb(name):
    return nbformat.read(SRC / f"{name}.ipynb", as_version=4)


def _meta(cell) -> dict:
    return cell.metadata.get("nbgrader", {})


def _points(name) -> tuple[float, float]:
    """(autograded points, hand-graded points) of an assignment, from its cell metadata."""
    auto = manual = 0.0
    for c in _nb(name).cells:
        m = _meta(c)
        if m.get("grade"):
            if m.get("solution") or c.cell_type == "markdown":
                manual += m["points"]
            else:
                auto += m["points"]
    return auto, manual


# ----------------------------------------------------------------------------------------------- sources
def test_the_three_assignments_exist():
    assert G.names() == NAMES


@pytest.mark.parametrize("name", NAMES)
def test_source_is_a_jupytext_pair_without_outputs(name):
    text_nb = jupytext.read(SRC / f"{name}.py", fmt="py:percent")
    json_nb = jupytext.read(SRC / f"{name}.ipynb")
    assert [(c.cell_type, c.source.strip()) for c in text_nb.cells] == \
           [(c.cell_type, c.source.strip()) for c in json_nb.cells], "run `jupytext --sync assignments/a*.py`"
    assert [_meta(c) for c in text_nb.cells] == [_meta(c) for c in json_nb.cells], "nbgrader metadata differs"
    nb = _nb(name)
    assert not [i for i, c in enumerate(nb.cells) if c.cell_type == "code" and (c.outputs or c.execution_count)]


@pytest.mark.parametrize("name", NAMES)
def test_every_answer_is_graded_with_real_hidden_tests(name):
    cells = _nb(name).cells
    ids = [_meta(c)["grade_id"] for c in cells if _meta(c)]
    assert len(ids) == len(set(ids)), f"grade ids must be unique: {ids}"
    answers = [c for c in cells if _meta(c).get("solution") and c.cell_type == "code"]
    tests = [c for c in cells if _meta(c).get("grade") and not _meta(c).get("solution")]
    assert len(answers) >= 2 and len(tests) >= 3
    assert all(SOLUTION.search(c.source) for c in answers), "answer cells mark their solution"
    assert all(_meta(c)["points"] > 0 and _meta(c)["locked"] for c in tests)
    for c in tests:
        hidden = HIDDEN.findall(c.source)
        assert len(hidden) == 1, f"{_meta(c)['grade_id']}: one hidden block per test cell"
        asserts = [ln for ln in hidden[0].splitlines() if "assert" in ln]
        assert len(asserts) >= 2 and not any(re.search(r"assert\s+(True|1)\b", ln) for ln in asserts)
    auto, manual = _points(name)
    assert auto >= 6 and (manual > 0) == (name != "a1_hmf_layer")  # the write-ups: timing and heuristic


def test_wrong_edits_match_the_solutions_once_each():
    for name, students in G.WRONG.items():
        nb = _nb(name)
        for student, edits in students.items():
            wrong = G.answered(nb, nb, edits)
            assert wrong.cells != nb.cells and not any("### BEGIN SOLUTION" in c.source for c in wrong.cells), student
    with pytest.raises(ValueError, match="exactly once.*matched 0 times"):
        G.answered(_nb("a1_hmf_layer"), _nb("a1_hmf_layer"), [("no such text", "x")])


def test_doctests_of_the_driver():
    failures, tried = doctest.testmod(G)
    assert tried >= 2 and failures == 0


# ----------------------------------------------------------------------------------------------- driver errors
def test_names_errors(tmp_path):
    with pytest.raises(ValueError, match="no such folder"):
        G.names(tmp_path / "missing")
    with pytest.raises(ValueError, match="no assignment notebooks"):
        G.names(tmp_path)
    (tmp_path / "Bad-Name.ipynb").write_text("{}")
    with pytest.raises(ValueError, match="lower-case letters.*'Bad-Name'"):
        G.names(tmp_path)


def test_course_dir_errors(tmp_path):
    with pytest.raises(ValueError, match=r"unknown assignments \['a9'\]"):
        with G.course_dir(which=["a9"]):
            pass
    nbformat.write(nbformat.v4.new_notebook(), tmp_path / "a1.ipynb")
    with pytest.raises(ValueError, match="nbgrader_config.py is missing"):
        with G.course_dir(src=tmp_path):
            pass


def test_course_dir_is_temporary_and_holds_the_sources():
    with G.course_dir(which=["a2_timing"]) as root:
        nb = nbformat.read(root / "source" / "a2_timing" / "a2_timing.ipynb", as_version=4)
        assert "jupytext" not in nb.metadata and (root / "nbgrader_config.py").is_file()
        assert not list((root / "source").glob("*/*.py"))
    assert not root.exists()


def test_submissions_errors(tmp_path):
    with pytest.raises(ValueError, match="no such folder"):
        G.grade(tmp_path / "missing", tmp_path / "out")
    (tmp_path / "subs" / "alice" / "a1_hmf_layer").mkdir(parents=True)
    with pytest.raises(ValueError, match="no submissions in .*<student>/<assignment>/<assignment>.ipynb"):
        G.grade(tmp_path / "subs", tmp_path / "out")


def test_grades_rows_error(tmp_path):
    with pytest.raises(ValueError, match="'questions' or 'grades'"):
        G.Grades(tmp_path / "g.csv", tmp_path / "q.csv", 0.0).rows("students")


def test_a_failing_nbgrader_run_raises_with_its_log(tmp_path):
    with G.course_dir(which=["a1_hmf_layer"]) as root:  # autograde before generate_assignment: nothing to grade
        with pytest.raises(RuntimeError, match=r"nbgrader autograde a1_hmf_layer failed \(exit status \d+\):\n.+"):
            G.nbgrader(root, "autograde", "a1_hmf_layer")


def test_cli_error_is_one_line(tmp_path, capsys):
    assert G.main(["grade", str(tmp_path / "missing"), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("tools.grade: error: expected a folder SUBMISSIONS/") and "Traceback" not in err


def test_make_targets_and_docs():
    makefile = (REPO / "Makefile").read_text()
    assert re.search(r"^assignments:.*\n\t\$\(PY\) -m tools.grade release --out build/assignments", makefile, re.M)
    assert re.search(r"^grade:.*\n(?:\t.*\n)*\t\$\(PY\) -m tools.grade grade \$\(SUBMISSIONS\)", makefile, re.M)
    assert "make grade SUBMISSIONS=" in (REPO / "README.md").read_text()
    syllabus = (REPO / "docs" / "syllabus.md").read_text()
    assert "## Assignments" in syllabus and "make assignments" in syllabus


# ----------------------------------------------------------------------------------------------- nbgrader runs
@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    """One release and one grading run of the instructor's solutions and the known-wrong copies."""
    tmp = tmp_path_factory.mktemp("grade")
    released = G.release(tmp / "release")
    subs = G.write_selftest_submissions(tmp / "submissions", released=released)
    return released, G.grade(subs, tmp / "out")


@pytest.mark.slow
@pytest.mark.parametrize("name", NAMES)
def test_release_has_no_solution_and_no_hidden_tests(graded, name):
    released, _ = graded
    path = next(p for p in released if p.stem == name)
    rel, src = nbformat.read(path, as_version=4), _nb(name)
    text = "\n".join(c.source for c in rel.cells)
    assert "BEGIN SOLUTION" not in text and "HIDDEN TESTS" not in text and "Model answer" not in text
    assert "jupytext" not in rel.metadata
    secret = [ln.strip() for c in src.cells for block in SOLUTION.findall(c.source) + HIDDEN.findall(c.source)
              for ln in block.splitlines() if len(ln.strip()) > 25]
    secret += [ln.strip() for c in src.cells if c.cell_type == "markdown" and _meta(c).get("solution")
               for ln in c.source.splitlines() if len(ln.strip()) > 25]
    assert secret and not [ln for ln in secret if ln in text], "solution or hidden-test lines leaked"
    stubs = [c for c in rel.cells if _meta(c).get("solution")]
    assert stubs and all("YOUR CODE HERE" in c.source or "YOUR ANSWER HERE" in c.source for c in stubs)
    assert not [c for c in rel.cells if c.cell_type == "code" and c.outputs]


@pytest.mark.slow
def test_solution_gets_every_autograded_point_and_wrong_copies_fewer(graded):
    _, grades = graded
    table = {(a, s): (auto, auto_max, manual) for a, s, auto, auto_max, manual in grades.table()}
    expected = {(n, s) for n in NAMES for s in ("solution", "blank")}
    expected |= {(n, s) for n, students in G.WRONG.items() for s in students}
    assert set(table) == expected
    for (name, student), (auto, auto_max, manual) in table.items():
        assert (auto_max, manual) == (_points(name)[0], 0 if student == "blank" else _points(name)[1])
        if student == "solution":
            assert auto == auto_max, (name, auto, auto_max)
        elif student == "blank":  # the release handed in untouched: no point for free
            assert auto == 0, (name, auto)
        else:
            assert 0 < auto < auto_max, (name, student, auto)
    q = {(r["assignment"], r["student_id"], r["question"]): r for r in grades.rows()}
    # each mistake is caught by the test of its question
    assert float(q["a1_hmf_layer", "wrong", "test_n_params"]["score"]) == 0
    assert float(q["a1_hmf_layer", "wrong", "test_forward"]["score"]) == 3  # only the count is wrong there
    assert float(q["a1_hmf_layer", "wrong_forward", "test_forward"]["score"]) == 0
    assert float(q["a1_hmf_layer", "wrong_forward", "test_n_params"]["score"]) == 2
    assert float(q["a2_timing", "wrong", "test_bytes"]["score"]) == 0
    assert float(q["a3_heuristic", "wrong", "test_my_rule_quality"]["score"]) == 0
    assert float(q["a3_heuristic", "wrong", "test_my_rule_valid"]["score"]) == 1  # still a valid heuristic
    manual = [r for r in grades.rows() if r["kind"] == "manual"]
    assert manual and all((r["needs_manual_grade"] == "True") == (r["student_id"] != "blank") for r in manual)
    assert all(float(r["score"]) == 0 for r in manual)  # nobody graded them yet; an untouched one stays 0


@pytest.mark.slow
def test_exported_csv_has_a_row_per_assignment_and_student(graded):
    _, grades = graded
    with open(grades.grades_csv, newline="") as fh:
        rows = list(csv.DictReader(fh))
    students = {"solution", "blank"} | {s for st in G.WRONG.values() for s in st}
    assert {(r["assignment"], r["student_id"]) for r in rows} == {(n, s) for n in NAMES for s in students}
    assert len(rows) == len(NAMES) * len(students)
    for r in rows:
        auto, manual = _points(r["assignment"])
        assert float(r["max_score"]) == auto + manual
        submitted = r["student_id"] in ("solution", "blank") or r["student_id"] in G.WRONG[r["assignment"]]
        if r["student_id"] == "solution":
            assert float(r["score"]) == auto  # the write-ups wait for a person: counted 0 until graded
        elif not submitted or r["student_id"] == "blank":
            assert float(r["score"]) == 0
        else:
            assert 0 < float(r["score"]) < auto
    assert (grades.grades_csv.parent / "autograded" / "solution" / "a1_hmf_layer" / "a1_hmf_layer.ipynb").is_file()
