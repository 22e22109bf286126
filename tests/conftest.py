"""Shared pytest set-up: quick mode, data folder, deterministic seeds, headless matplotlib."""
from __future__ import annotations

import os
from pathlib import Path

import matplotlib
import pytest
import torch

matplotlib.use("Agg")

REPO = Path(__file__).resolve().parents[1]
os.environ.setdefault("HMF_LAB_QUICK", "1")
_default_data = REPO.parent / "shared" / "data"
if _default_data.is_dir():
    os.environ.setdefault("HMF_LAB_DATA", str(_default_data))


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
    yield


@pytest.fixture
def repo() -> Path:
    return REPO
