"""Set-up files agree: environment.yml declares what pyproject.toml needs; the Makefile pins CPU torch."""
from __future__ import annotations

import re
import tomllib

import pytest

import yaml

# pip name -> conda name where they differ
CONDA_NAME = {"torch": "pytorch"}


def _name(req: str) -> str:
    return re.split(r"[<>=!~\[ ;]", req.strip(), maxsplit=1)[0].lower()


def _extra(project: dict, name: str) -> list[str]:
    """The requirements of optional-dependency ``name``, with self-references (``hmf_lab[cluster]``) expanded."""
    out = []
    for req in project["optional-dependencies"][name]:
        m = re.fullmatch(r"hmf_lab\[([\w,\s-]+)\]", req.strip())
        out += [r for x in m.group(1).split(",") for r in _extra(project, x.strip())] if m else [req]
    return out


def _conda_deps(env: dict) -> tuple[set[str], set[str]]:
    conda, pip = set(), set()
    for dep in env["dependencies"]:
        if isinstance(dep, dict):
            pip |= {_name(d) for d in dep.get("pip", [])}
        else:
            conda.add(_name(dep))
    return conda, pip


def test_environment_yml_matches_pyproject(repo):
    project = tomllib.loads((repo / "pyproject.toml").read_text())["project"]
    env = yaml.safe_load((repo / "environment.yml").read_text())
    conda, pip = _conda_deps(env)
    declared = conda | pip
    required = [_name(d) for d in project["dependencies"] + _extra(project, "dev")]   # dev includes every extra
    missing = [r for r in required if CONDA_NAME.get(r, r) not in declared]
    assert not missing, f"environment.yml lacks {missing} (declared in pyproject.toml)"
    known = {CONDA_NAME.get(r, r) for r in required} | {"python", "pip", "cpuonly"}
    extra = sorted(declared - known)
    assert not extra, f"environment.yml declares {extra}, which pyproject.toml does not"
    assert any(str(d).startswith("python=3.11") for d in env["dependencies"] if isinstance(d, str))


def test_environment_yml_versions_match_pyproject(repo):
    project = tomllib.loads((repo / "pyproject.toml").read_text())["project"]
    env = yaml.safe_load((repo / "environment.yml").read_text())
    flat = [d for d in env["dependencies"] if isinstance(d, str)]
    flat += [d for x in env["dependencies"] if isinstance(x, dict) for d in x.get("pip", [])]
    spec = {_name(d): d[len(_name(d)):].strip() for d in flat}
    for req in project["dependencies"] + _extra(project, "dev"):
        name = _name(req)
        assert spec[CONDA_NAME.get(name, name)] == req[len(name):].strip(), req


def test_cluster_parts_are_an_optional_extra_that_dev_installs(repo):
    """Issue 18 (11): dask/distributed only for --scheduler: the `cluster` extra, not a core dependency; `dev`
    (what `make lab` / `make test` install) includes it, and so does environment.yml (checked above)."""
    project = tomllib.loads((repo / "pyproject.toml").read_text())["project"]
    core = {_name(d) for d in project["dependencies"]}
    cluster = {_name(d) for d in project["optional-dependencies"]["cluster"]}
    assert cluster == {"dask", "distributed"} and not core & cluster
    assert "hmf_lab[cluster]" in project["optional-dependencies"]["dev"]
    assert cluster <= {_name(d) for d in _extra(project, "dev")}
    assert set(project["optional-dependencies"]) <= {"cluster", "dev"}, "a new extra: include it in dev"
    assert "'.[dev]'" in (repo / "Makefile").read_text()


@pytest.fixture
def no_dask(monkeypatch):
    """dask and distributed as if not installed: importing either raises ImportError."""
    import sys
    for mod in [m for m in sys.modules if m.split(".")[0] in ("dask", "distributed")]:
        monkeypatch.delitem(sys.modules, mod)
    monkeypatch.setitem(sys.modules, "dask", None)
    monkeypatch.setitem(sys.modules, "distributed", None)


def test_scheduler_without_dask_is_one_line_saying_what_to_install(no_dask, tmp_path, capsys):
    from hmf_lab import cli
    from hmf_lab.experiments import grid
    from hmf_lab.experiments._args import MissingExtra
    from hmf_lab.experiments.pipeline import Cell

    with pytest.raises(MissingExtra, match=r"--scheduler .*needs the optional packages dask and distributed "
                                           r"\(dask is not installed\): pip install 'hmf_lab\[cluster\]'") as e:
        grid.run_cells([Cell("intent", "scratch", "lmf", 8.0, 0, quick=True)], scheduler="tcp://127.0.0.1:1",
                       progress=False)
    assert isinstance(e.value, ImportError) and isinstance(e.value, ValueError) and e.value.name == "dask"
    code = cli.main(["reproduce", "--task", "lm", "--regime", "post", "--seeds", "1", "--compression", "4",
                     "--methods", "lmf", "--sweep-task", "none", "--heuristic", "none", "--quick", "--no-progress",
                     "--scheduler", "tcp://127.0.0.1:1", "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 2, err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert err.startswith("hmf-lab: error: --scheduler") and "pip install 'hmf_lab[cluster]'" in err


def test_local_runs_need_no_dask(no_dask):
    from hmf_lab.experiments import grid
    assert grid.run_cells([], scheduler=None, progress=False) == []


def test_makefile_pins_cpu_torch(repo):
    makefile = (repo / "Makefile").read_text()
    assert "torch==2.13.0" in makefile
    assert re.search(r"^lab:", makefile, re.M) and re.search(r"^test:", makefile, re.M)
    assert "make test" in (repo / ".ci" / "run").read_text()


@pytest.mark.parametrize("value, expected", [("1", True), ("true", True), ("yes", True), ("", False), ("0", False),
                                             ("False", False), ("off", False), (None, False)])
def test_quick_mode_is_read_in_one_place(monkeypatch, value, expected):
    from hmf_lab.factor._validation import quick_mode
    from hmf_lab.course.exercises import quick

    if value is None:
        monkeypatch.delenv("HMF_LAB_QUICK", raising=False)
    else:
        monkeypatch.setenv("HMF_LAB_QUICK", value)
    assert quick_mode() is expected and quick() is expected


def test_make_lab_opens_the_student_build(repo):
    """Issue 21, defect 2: `make lab` (what students run) serves the student build, which has no solution cells;
    `make lab-instructor` serves notebooks/ with the solutions."""
    makefile = (repo / "Makefile").read_text()
    lab = re.search(r"^lab:.*\n((?:\t.*\n)+)", makefile, re.M).group(1)
    assert "tools.course student --out build/student" in lab and "jupyter lab build/student/" in lab
    assert "notebooks/" not in lab.replace("build/student", "")
    instructor = re.search(r"^lab-instructor:.*\n((?:\t.*\n)+)", makefile, re.M).group(1)
    assert "jupyter lab notebooks/" in instructor
    readme = (repo / "README.md").read_text()
    assert "## Two commands for a fresh machine" in readme and "make lab-instructor" in readme
