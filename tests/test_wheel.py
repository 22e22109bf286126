"""The package installs anywhere: build a wheel, install it into a fresh venv with no source tree, use it.

The fresh venv sees the dev venv's dependencies (torch, pandas, ...) through a one-line ``.pth`` file
(no network); ``hmf_lab`` itself must come from the wheel, and the shipped checkpoint, registry and
results must be found as package data from a temporary working directory.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

SNIPPET = """
import hmf_lab as hl, hmf_lab.experiments.reproduce, hmf_lab.experiments.grid, pathlib, sys
m = hl.models.load_pretrained("char_lm")
print("hmf_lab from", pathlib.Path(hl.__file__).parent)
print("load_pretrained('char_lm'):", type(m).__name__, sum(p.numel() for p in m.parameters()), "parameters")
print("registry:", sorted(hl.data.DATASETS), "| shipped results:",
      sorted(hmf_lab.experiments.grid.load_grid(hmf_lab.experiments.reproduce.RESULTS_DIR).task.unique()))
"""


def _run(cmd, cwd, env):
    out = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, f"{cmd} failed:\n{out.stdout}\n{out.stderr}"
    return out.stdout


def test_wheel_installs_into_a_fresh_venv_and_runs(repo, tmp_path):
    # 1. build the wheel from a copy of the sources (the build leaves nothing in the repository)
    src = tmp_path / "src"
    shutil.copytree(repo, src, ignore=shutil.ignore_patterns(".git", ".venv", "build", "*.egg-info", "__pycache__",
                                                             ".pytest_cache", ".hypothesis", "notebooks", "tests"))
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "HMF_LAB_DATA")}
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w",
          str(tmp_path / "dist"), str(src)], cwd=tmp_path, env=env)
    wheel, = (tmp_path / "dist").glob("hmf_lab-*.whl")
    shutil.rmtree(src)
    # the six layers are in the wheel; the course-build tool (tools/) is not
    names = zipfile.ZipFile(wheel).namelist()
    assert not [n for n in names if n.startswith("tools/") or "/tools/" in n], "tools/ must not be in the wheel"
    for layer in ("factor", "nn", "perf", "nlp", "experiments", "course"):
        assert f"hmf_lab/{layer}/__init__.py" in names, f"hmf_lab/{layer} is missing from the wheel"

    # 2. a fresh venv (its own pip, from ensurepip: offline) that sees the dev venv's dependencies
    target = tmp_path / "venv"
    venv.create(target, with_pip=True)
    py = target / "bin" / "python"
    purelib = Path(_run([str(py), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                        cwd=tmp_path, env=env).strip())
    # every site-packages folder this interpreter sees (the dev venv may itself reach its deps through a .pth)
    dev_sites = [p for p in sys.path if p.rstrip("/").endswith(("site-packages", "dist-packages")) and Path(p).is_dir()]
    (purelib / "zz_dev_dependencies.pth").write_text("\n".join(dev_sites) + "\n")
    _run([str(py), "-m", "pip", "install", "--no-deps", "--no-index", "-q", str(wheel)], cwd=tmp_path, env=env)

    # 3. from an empty working directory: the checkpoint loads, and one hmf-lab command runs
    work = tmp_path / "elsewhere"
    work.mkdir()
    out = _run([str(py), "-c", SNIPPET], cwd=work, env=env)
    print(out)
    assert f"hmf_lab from {purelib / 'hmf_lab'}" in out and "CharLM" in out
    assert "'lm'" in out and "translation" in out
    cli = _run([str(target / "bin" / "hmf-lab"), "bench", "--quick", "--no-progress", "--sizes", "64",
                "--batches", "1", "--threads", "1", "--compressions", "2", "--lstm-hidden", "--rounds", "1",
                "--out", str(work / "bench")], cwd=work, env=env)
    print(cli[-600:])
    assert (work / "bench" / "bench.csv").is_file()
    assert not (repo / "build").exists() or (repo / "build").stat().st_mtime < wheel.stat().st_mtime
