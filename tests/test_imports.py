"""The package's layers hold: import-linter's contract (pyproject.toml), zero import circles, light imports.

Function-level imports count: grimp (import-linter's graph) reads every import statement of every module.
"""
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import hmf_lab as hl

PKG = Path(hl.__file__).resolve().parent
ROOT = PKG.parent
HEAVY = ["ipywidgets", "matplotlib", "seaborn", "IPython", "hmf_lab.course.plots", "hmf_lab.course.widgets",
         "hmf_lab.course.exercises"]
LAYERS = ["factor", "nn", "perf", "nlp", "experiments", "course"]


def _lint_imports():
    exe = Path(sys.executable).parent / "lint-imports"
    cmd = [str(exe)] if exe.exists() else [shutil.which("lint-imports") or "lint-imports"]
    return subprocess.run(cmd + ["--no-cache"], capture_output=True, text=True, cwd=ROOT, timeout=300)


def test_import_linter_contract_is_kept():
    out = _lint_imports()
    assert out.returncode == 0 and "1 kept, 0 broken" in out.stdout, out.stdout + out.stderr


def test_the_contract_catches_a_violation(tmp_path):
    """A copy of the package with one function-level upward import breaks the contract."""
    shutil.copytree(PKG, tmp_path / "hmf_lab", ignore=shutil.ignore_patterns("assets", "__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    bad = tmp_path / "hmf_lab" / "factor" / "core.py"
    bad.write_text(bad.read_text() + "\n\ndef _sneaky():\n    from hmf_lab.course import plots  # noqa\n")
    exe = Path(sys.executable).parent / "lint-imports"
    out = subprocess.run([str(exe), "--no-cache"], capture_output=True, text=True, cwd=tmp_path, timeout=300,
                         env={"PYTHONPATH": str(tmp_path), "PATH": ""})
    assert out.returncode != 0 and "hmf_lab.factor.core -> hmf_lab.course.plots" in out.stdout, out.stdout


def _cycles(graph, skip=()) -> list[set[str]]:
    """Strongly connected components with more than one module (Tarjan), over every module of the graph
    but ``skip``."""
    index, low, stack, on, comps = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph.find_modules_directly_imported_by(v) - set(skip):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = set()
            while True:
                w = stack.pop()
                on.discard(w)
                comp.add(w)
                if w == v:
                    break
            if len(comp) > 1:
                comps.append(comp)

    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10_000))
    for v in sorted(graph.modules - set(skip)):
        if v not in index:
            visit(v)
    return comps


def test_no_import_circles_anywhere_in_the_package():
    grimp = pytest.importorskip("grimp")
    graph = grimp.build_graph("hmf_lab")
    # the root package re-exports the public API (it imports everything); it is nobody's dependency
    assert graph.find_modules_that_directly_import("hmf_lab") == set(), "a module imports the root package"
    assert _cycles(graph, skip={"hmf_lab"}) == []
    assert len(graph.modules) >= 35  # every module was read (the layers' packages and their modules)


def test_cycle_finder_finds_a_circle():
    grimp = pytest.importorskip("grimp")
    g = grimp.ImportGraph()
    for a, b in [("p.a", "p.b"), ("p.b", "p.c"), ("p.c", "p.a"), ("p.c", "p.d")]:
        g.add_import(importer=a, imported=b)
    assert _cycles(g) == [{"p.a", "p.b", "p.c"}]


def _loaded_after(code: str) -> list[str]:
    """Which of HEAVY a fresh interpreter has imported after running ``code``."""
    probe = f"import sys\n{code}\nimport json; print(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=ROOT, timeout=300)
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
    assert {"hmf_lab.course.plots", "ipywidgets", "hmf_lab.course.widgets"} <= set(loaded)


def test_lazy_attributes_are_the_real_objects():
    from hmf_lab.course import exercises, plots, widgets

    assert hl.plot_leaderboard is plots.plot_leaderboard
    assert hl.explorer is widgets.explorer and hl.exercises is exercises
    assert {"plots", "widgets", "explorer"} <= set(dir(hl))
    with pytest.raises(AttributeError, match="module 'hmf_lab' has no attribute 'nope'"):
        hl.nope


@pytest.mark.parametrize("layer", LAYERS)
def test_every_layer_is_a_package_with_a_docstring(layer):
    import importlib

    mod = importlib.import_module(f"hmf_lab.{layer}")
    assert mod.__doc__ and mod.__doc__.startswith("Layer"), mod.__doc__
