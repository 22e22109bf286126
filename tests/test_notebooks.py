"""Every notebook runs top to bottom from a clean kernel (HMF_LAB_QUICK=1), and is committed without outputs."""
from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import nbformat
import pytest

REPO = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((REPO / "notebooks").glob("*.ipynb"))
TIMES: dict[str, float] = {}


def test_there_are_notebooks():
    names = [p.name for p in NOTEBOOKS]
    for prefix in ("01_", "02_", "03_", "04_"):
        assert any(n.startswith(prefix) for n in names), f"notebook {prefix}* missing from {names}"


def test_kernel_is_this_interpreter():
    from jupyter_client import KernelManager

    cmd = KernelManager(kernel_name="python3").format_kernel_cmd()
    assert Path(cmd[0]).resolve() == Path(sys.executable).resolve(), f"kernel python3 runs {cmd[0]}, not {sys.executable}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_committed_without_outputs(path):
    nb = nbformat.read(path, as_version=4)
    dirty = [i for i, c in enumerate(nb.cells) if c.cell_type == "code" and (c.outputs or c.execution_count)]
    assert not dirty, f"{path.name}: cells {dirty} carry outputs or execution counts; clear them before committing"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebook_runs(path, tmp_path, capsys):
    from nbclient import NotebookClient

    nb = nbformat.read(path, as_version=4)
    env_before = {k: os.environ.get(k) for k in ("HMF_LAB_QUICK", "MPLBACKEND")}
    os.environ["HMF_LAB_QUICK"] = "1"  # the kernel inherits it
    os.environ["MPLBACKEND"] = "module://matplotlib_inline.backend_inline"
    try:
        # kernel "python3" resolved from this interpreter's environment (the venv)
        client = NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}})
        t0 = time.perf_counter()
        client.execute()
        TIMES[path.name] = time.perf_counter() - t0
    finally:
        for k, v in env_before.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    with capsys.disabled():
        print(f"\n[notebook time] {path.name}: {TIMES[path.name]:.1f} s (quick mode)", file=sys.stderr)
    # exercise check cells that ran a worked solution must have passed
    for c in nb.cells:
        if c.cell_type == "code" and "solution" in c.metadata.get("tags", []):
            text = "".join(o.get("text", "") for o in c.outputs if o.get("output_type") == "stream")
            assert "Correct" in text, f"{path.name}: a solution cell did not pass its check: {c.source[:80]!r}"
