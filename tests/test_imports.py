"""Layering: math never imports teaching or plotting code, and ``import hmf_lab`` stays light."""
import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

import hmf_lab as hl

PKG = Path(hl.__file__).resolve().parent
HEAVY = ["ipywidgets", "matplotlib", "seaborn", "IPython", "hmf_lab.plots", "hmf_lab.widgets", "hmf_lab.exercises"]
#: the math, layers, models and data modules: they may not import the course layer (plots, widgets, exercises)
MATH = ["_env", "_validation", "core", "heuristics", "synthetic", "oracle", "leaderboard", "layers", "gate_hmf",
        "lstm_engines", "lstm_base", "lstm", "compress", "timing", "vocab", "networks", "training", "tasks",
        "models", "checkpoints", "data", "bleu", "tradeoff"]
COURSE = {"plots", "widgets", "exercises"}


def _loaded_after(code: str) -> list[str]:
    """Which of HEAVY a fresh interpreter has imported after running ``code``."""
    probe = f"import sys\n{code}\nimport json; print(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=PKG.parent, timeout=300)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_import_hmf_lab_loads_no_plotting_or_widgets():
    assert _loaded_after("import hmf_lab") == []


@pytest.mark.slow
def test_cli_parser_stays_lazy():
    assert _loaded_after("from hmf_lab.cli import build_parser; build_parser()") == []


@pytest.mark.slow
def test_lazy_names_load_on_first_use():
    loaded = _loaded_after("import hmf_lab as hl; hl.plot_leaderboard; hl.explorer")
    assert {"hmf_lab.plots", "ipywidgets", "hmf_lab.widgets"} <= set(loaded)


def test_lazy_attributes_are_the_real_objects():
    from hmf_lab import exercises, plots, widgets

    leaderboard = sys.modules["hmf_lab.leaderboard"]  # hl.leaderboard / hl.oracle are the functions
    assert hl.plot_leaderboard is plots.plot_leaderboard is leaderboard.plot_leaderboard
    assert leaderboard.plot_oracle is plots.plot_oracle
    assert hl.explorer is widgets.explorer and hl.exercises is exercises
    assert sys.modules["hmf_lab.oracle"].check_rows is exercises.check_rows
    assert {"plots", "widgets", "explorer"} <= set(dir(hl))
    with pytest.raises(AttributeError, match="module 'hmf_lab' has no attribute 'nope'"):
        hl.nope
    with pytest.raises(AttributeError, match="has no attribute 'nope'"):
        sys.modules["hmf_lab.leaderboard"].nope
    with pytest.raises(AttributeError, match="has no attribute 'nope'"):
        sys.modules["hmf_lab.oracle"].nope


def _course_imports(path: Path) -> list[str]:
    """Imports of the course layer outside a module ``__getattr__`` (the compatibility re-exports)."""
    bad = []

    def visit(node, in_getattr=False):
        for child in ast.iter_child_nodes(node):
            inside = in_getattr or (isinstance(child, ast.FunctionDef) and child.name == "__getattr__")
            if isinstance(child, ast.ImportFrom) and not inside:
                mod = (child.module or "").removeprefix("hmf_lab").lstrip(".")
                names = {a.name for a in child.names}
                if mod.split(".")[0] in COURSE or (not mod and names & COURSE) \
                        or mod.split(".")[0] in ("ipywidgets", "matplotlib", "seaborn"):
                    bad.append(f"{path.name}:{child.lineno}")
            if isinstance(child, ast.Import) and not inside:
                bad.extend(f"{path.name}:{child.lineno}" for a in child.names
                           if a.name.split(".")[0] in ("ipywidgets", "matplotlib", "seaborn"))
            visit(child, inside)

    visit(ast.parse(path.read_text()))
    return bad


@pytest.mark.parametrize("name", MATH)
def test_math_does_not_import_the_course_layer(name):
    assert _course_imports(PKG / f"{name}.py") == []


def test_the_layering_check_catches_a_violation(tmp_path):
    f = tmp_path / "bad.py"
    f.write_text("from .exercises import ExerciseError\ndef f():\n    import matplotlib.pyplot as plt\n"
                 "def __getattr__(name):\n    from . import plots\n")
    assert _course_imports(f) == ["bad.py:1", "bad.py:3"]
