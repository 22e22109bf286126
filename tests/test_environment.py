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
    required = [_name(d) for d in project["dependencies"]] + [_name(d) for d in project["optional-dependencies"]["dev"]]
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
    for req in project["dependencies"] + project["optional-dependencies"]["dev"]:
        name = _name(req)
        assert spec[CONDA_NAME.get(name, name)] == req[len(name):].strip(), req


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
