"""Shared pytest set-up: quick mode, deterministic seeds, headless matplotlib, the ``data`` marker gate.

A test that needs a real data set carries ``@pytest.mark.data("tinyshakespeare", ...)`` (no names: all
of them). Before it runs, ``hl.data.available(name)`` is asked (which fetches the data when allowed);
if it says False the test is skipped with ``hl.data.skip_note(name)``: the same one line a notebook
prints. The data folder comes from ``HMF_LAB_DATA`` (``.ci/run`` sets it), else the user cache.
"""
from __future__ import annotations

import os
from pathlib import Path

import matplotlib
import pytest
import torch
from hypothesis import settings

matplotlib.use("Agg")

REPO = Path(__file__).resolve().parents[1]
os.environ.setdefault("HMF_LAB_QUICK", "1")

# hypothesis: one profile for every property test (was loaded at import time by one test module);
# HYPOTHESIS_PROFILE=thorough runs more examples
settings.register_profile("hmf", max_examples=40, deadline=None)
settings.register_profile("thorough", max_examples=400, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "hmf"))


def load_script(relpath: str):
    """Import a script of the repository (``benchmarks/x.py``, ``scripts/y.py``) as a module, by its path."""
    import importlib.util

    path = REPO / relpath
    spec = importlib.util.spec_from_file_location(path.stem, path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def require_data(*names: str) -> None:
    """Skip the calling test unless every named data set (default: all) is available."""
    from hmf_lab.nlp import data

    for name in names or tuple(data.DATASETS):
        if not data.available(name):
            pytest.skip(data.skip_note(name))


def pytest_runtest_setup(item):
    marker = item.get_closest_marker("data")
    if marker is not None:
        require_data(*marker.args)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
    yield


@pytest.fixture
def repo() -> Path:
    return REPO
