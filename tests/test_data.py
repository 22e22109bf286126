"""Data sets: registry, checksums, clear errors, availability notes, loaders, the fallback corpus."""
import json
import os

import pytest

import hmf_lab as hl
from hmf_lab.nlp import data


@pytest.fixture
def offline_empty(monkeypatch, tmp_path):
    """An empty data folder with downloads off."""
    monkeypatch.setenv("HMF_LAB_DATA", str(tmp_path))
    monkeypatch.setenv("HMF_LAB_OFFLINE", "1")
    monkeypatch.delenv("HMF_LAB_DATA_URL", raising=False)
    return tmp_path


def test_registry_matches_sha256sums_and_json(repo):
    sums_file = data.data_dir() / "SHA256SUMS"
    if sums_file.is_file():
        sums = dict(reversed(line.split()) for line in sums_file.read_text().splitlines() if line.strip())
        for ds in data.DATASETS.values():
            for rel, sha in ds.files.items():
                assert sums[rel] == sha
    shipped = json.loads((repo / "hmf_lab" / "assets" / "datasets.json").read_text())
    assert shipped == json.loads(data.registry_json())
    for ds in data.DATASETS.values():
        assert ds.source and ds.licence and ds.raw


def test_data_dir_follows_env(monkeypatch, tmp_path):
    monkeypatch.setenv("HMF_LAB_DATA", str(tmp_path))
    assert data.data_dir() == tmp_path
    monkeypatch.delenv("HMF_LAB_DATA")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    assert data.data_dir() == tmp_path / "cache" / "hmf_lab" / "data"


def test_the_code_never_names_shared(repo):
    for p in (repo / "hmf_lab").rglob("*.py"):
        assert "shared" + "/data" not in p.read_text(), p


def test_missing_file_names_the_source(offline_empty):
    with pytest.raises(FileNotFoundError, match="karpathy/char-rnn.*hl.data.fetch"):
        data.path("tinyshakespeare")
    assert data.verify("snips") == {"snips/train.tsv": False, "snips/test.tsv": False}


def test_available_and_skip_note_when_missing(offline_empty):
    assert data.available("snips") is False
    note = data.skip_note("snips")
    assert "\n" not in note and note.startswith("Skipped the live cells that need the 'snips' data set")
    for hint in ("hl.data.fetch('snips')", "HMF_LAB_DATA", "HMF_LAB_DATA_URL", "is missing"):
        assert hint in note, hint


def test_available_when_present(monkeypatch, tmp_path):
    text = "First Citizen:\nBefore we proceed any further, hear me speak.\n"
    (tmp_path / "tiny").mkdir()
    (tmp_path / "tiny" / "input.txt").write_text(text)
    fake = data.Dataset(name="tinyshakespeare", task="t", files={"tiny/input.txt": data._sha256(tmp_path / "tiny" / "input.txt")})
    monkeypatch.setitem(data.DATASETS, "tinyshakespeare", fake)
    monkeypatch.setenv("HMF_LAB_DATA", str(tmp_path))
    assert data.available("tinyshakespeare") is True
    assert data.load_text() == text


def test_corrupt_file_is_rejected(offline_empty):
    (offline_empty / "tinyshakespeare").mkdir()
    (offline_empty / "tinyshakespeare" / "input.txt").write_text("not shakespeare")
    with pytest.raises(ValueError, match="corrupt or a different version.*hl.data.fetch"):
        data.path("tinyshakespeare")
    assert data.available("tinyshakespeare") is False
    assert "corrupt" in data.skip_note("tinyshakespeare")


def test_edited_file_with_restored_mtime_is_caught(monkeypatch, tmp_path):
    """Issue 12 (j): the checksum is not cached by (path, mtime)."""
    f = tmp_path / "tiny" / "input.txt"
    f.parent.mkdir()
    f.write_text("abcdef\n")
    fake = data.Dataset(name="tinyshakespeare", task="t", files={"tiny/input.txt": data._sha256(f)})
    monkeypatch.setitem(data.DATASETS, "tinyshakespeare", fake)
    monkeypatch.setenv("HMF_LAB_DATA", str(tmp_path))
    assert data.path("tinyshakespeare") == f
    st = os.stat(f)
    f.write_text("abcdeX\n")                                 # same size
    os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns))        # mtime restored
    with pytest.raises(ValueError, match="corrupt or a different version"):
        data.path("tinyshakespeare")


def test_bad_names():
    with pytest.raises(ValueError, match="unknown data set 'nope'"):
        data.path("nope")
    with pytest.raises(TypeError, match="must be a str"):
        data.path(3)
    with pytest.raises(ValueError, match="unknown data set 'nope'"):
        data.available("nope")
    with pytest.raises(ValueError, match="unknown data set 'nope'"):
        data.skip_note("nope")
    with pytest.raises(ValueError, match="has no file"):
        data.path("snips", "snips/dev.tsv")
    with pytest.raises(ValueError, match="split must be 'train' or 'test'"):
        data.load_snips("dev")
    with pytest.raises(ValueError, match="load_text reads plain-text"):
        data.load_text("snips")


def test_fallback_corpus():
    text = hl.data.fallback_text()
    assert len(text) > 100_000 and "def" in text


@pytest.mark.data
def test_loaders_read_the_real_data():
    assert len(data.load_text()) == 1_115_394
    train, test = data.load_snips("train"), data.load_snips("test")
    assert (len(train), len(test)) == (13_784, 700)
    assert len({i for i, _ in train}) == 7
    pairs = data.load_translation()
    assert len(pairs) == 7982 and all(e and s for e, s in pairs)
