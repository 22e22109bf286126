"""Data-set registry: files, checksums, clear errors, loaders, the fallback corpus, data/datasets.json."""
import json
import os
from pathlib import Path

import pytest

import hmf_lab as hl
from hmf_lab import data

HAVE_DATA = all(data.verify().values()) if Path(os.environ.get("HMF_LAB_DATA", "/nonexistent")).is_dir() else False
needs_data = pytest.mark.skipif(not HAVE_DATA, reason="HMF_LAB_DATA does not hold the data sets")


def test_registry_matches_sha256sums_and_json(repo):
    sums_file = data.data_dir() / "SHA256SUMS"
    if sums_file.is_file():
        sums = dict(reversed(line.split()) for line in sums_file.read_text().splitlines() if line.strip())
        for ds in data.DATASETS.values():
            for rel, sha in ds.files.items():
                assert sums[rel] == sha
    shipped = json.loads((repo / "data" / "datasets.json").read_text())
    assert shipped == json.loads(data.registry_json())
    for ds in data.DATASETS.values():
        assert ds.source and ds.licence


def test_data_dir_follows_env(monkeypatch, tmp_path):
    monkeypatch.setenv("HMF_LAB_DATA", str(tmp_path))
    assert data.data_dir() == tmp_path
    monkeypatch.delenv("HMF_LAB_DATA")
    assert data.data_dir().name == "data"


def test_missing_file_names_the_source(monkeypatch, tmp_path):
    monkeypatch.setenv("HMF_LAB_DATA", str(tmp_path))
    with pytest.raises(FileNotFoundError, match="karpathy/char-rnn"):
        data.path("tinyshakespeare")
    assert data.verify("snips") == {"snips/train.tsv": False, "snips/test.tsv": False}


def test_corrupt_file_is_rejected(monkeypatch, tmp_path):
    (tmp_path / "tinyshakespeare").mkdir()
    (tmp_path / "tinyshakespeare" / "input.txt").write_text("not shakespeare")
    monkeypatch.setenv("HMF_LAB_DATA", str(tmp_path))
    with pytest.raises(ValueError, match="corrupt or a different version.*Download it again from https://"):
        data.path("tinyshakespeare")


def test_bad_names():
    with pytest.raises(ValueError, match="unknown data set 'nope'"):
        data.path("nope")
    with pytest.raises(TypeError, match="must be a str"):
        data.path(3)
    with pytest.raises(ValueError, match="has no file"):
        data.path("snips", "snips/dev.tsv")
    with pytest.raises(ValueError, match="split must be 'train' or 'test'"):
        data.load_snips("dev")
    with pytest.raises(ValueError, match="load_text reads plain-text"):
        data.load_text("snips")


def test_fallback_corpus():
    text = hl.data.fallback_text()
    assert len(text) > 100_000 and "def" in text


@needs_data
def test_loaders_read_the_real_data():
    assert len(data.load_text()) == 1_115_394
    train, test = data.load_snips("train"), data.load_snips("test")
    assert (len(train), len(test)) == (13_784, 700)
    assert len({i for i, _ in train}) == 7
    pairs = data.load_translation()
    assert len(pairs) == 7982 and all(e and s for e, s in pairs)
