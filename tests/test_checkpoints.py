"""Checkpoints: package data with a SHA-256 each; every broken or hostile file gives a clear ValueError."""
import hashlib
import io
import json
import os
import pickle

import pytest
import torch

import hmf_lab as hl
from hmf_lab.nlp import checkpoints as C


@pytest.fixture
def saved(tmp_path):
    m = hl.models.CharLM(vocab_size=7, embed=4, hidden=8)
    f = tmp_path / "m.pt"
    sha = C.save_checkpoint(m, f, extra={"vocab": "abcdefg"})
    return f, sha


def test_registry_records_the_sha256_of_every_shipped_checkpoint():
    reg = C.registry()
    assert set(reg) == set(C.PRETRAINED)
    for name in C.PRETRAINED:
        p = C.checkpoint_path(name)
        assert hashlib.sha256(p.read_bytes()).hexdigest() == reg[name]["sha256"], name
        assert reg[name]["file"] == p.name


def test_checkpoints_are_package_data():
    assert C.assets_dir().parent.name == "hmf_lab" and (C.assets_dir() / "char_lm.pt").is_file()
    assert hl.models.load_pretrained is C.load_pretrained  # old names keep working


def test_roundtrip_with_checksum(saved):
    f, sha = saved
    model, payload = C.load_checkpoint(f, hl.models.CharLM, sha256=sha)
    assert payload["vocab"] == "abcdefg" and not model.training


def test_flipped_byte_is_caught(saved, tmp_path):
    f, sha = saved
    blob = bytearray(f.read_bytes())
    blob[len(blob) // 2] ^= 0x01
    g = tmp_path / "flipped.pt"
    g.write_bytes(bytes(blob))
    with pytest.raises(ValueError, match=r"flipped\.pt is corrupt or modified: SHA-256"):
        C.load_checkpoint(g, hl.models.CharLM, sha256=sha)


def test_flipped_byte_in_a_shipped_checkpoint_is_caught(monkeypatch, tmp_path):
    src = C.checkpoint_path("char_lm")
    blob = bytearray(src.read_bytes())
    blob[-100] ^= 0x01
    (tmp_path / "char_lm.pt").write_bytes(bytes(blob))
    monkeypatch.setattr(C, "assets_dir", lambda: tmp_path)
    with pytest.raises(ValueError, match="char_lm.pt is corrupt or modified"):
        C.load_pretrained("char_lm")


@pytest.mark.parametrize("kind, match", [
    ("empty", r"bad\.pt is empty \(0 bytes\)"),
    ("text", r"bad\.pt is not a torch.save file"),
    ("truncated", r"bad\.pt is truncated or corrupt"),
    ("no_config", r"bad\.pt has no 'config' and 'state_dict' \(found \['state_dict'\]\)"),
    ("bad_config", r"bad\.pt does not fit CharLM"),
])
def test_broken_files_give_clear_errors(saved, tmp_path, kind, match):
    f, _ = saved
    bad = tmp_path / "bad.pt"
    if kind == "empty":
        bad.write_bytes(b"")
    elif kind == "text":
        bad.write_text("this is not a checkpoint\n")
    elif kind == "truncated":
        bad.write_bytes(f.read_bytes()[: f.stat().st_size // 2])
    elif kind == "no_config":
        torch.save({"state_dict": {}}, bad)
    else:
        torch.save({"config": {"nope": 1}, "state_dict": {}}, bad)
    with pytest.raises(ValueError, match=match):
        C.load_checkpoint(bad, hl.models.CharLM)


class _Evil:
    def __reduce__(self):
        return (os.system, ("echo hmf_lab-test-should-never-run",))


@pytest.mark.parametrize("container", ["zip", "raw_pickle"])
def test_malicious_pickle_is_not_a_trusted_checkpoint(tmp_path, container, capfd):
    bad = tmp_path / "evil.pt"
    if container == "zip":
        torch.save({"config": _Evil(), "state_dict": {}}, bad)
    else:
        bad.write_bytes(pickle.dumps({"config": _Evil()}, protocol=2))
    with pytest.raises(ValueError, match=r"evil\.pt is not a trusted checkpoint") as info:
        C.load_checkpoint(bad, hl.models.CharLM)
    assert "weights_only=False" not in str(info.value)
    assert "should-never-run" not in capfd.readouterr().out


def test_bad_arguments(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"checkpoint .*nope\.pt does not exist"):
        C.load_checkpoint(tmp_path / "nope.pt", hl.models.CharLM)
    with pytest.raises(TypeError, match="must be a path or a binary file object, got int"):
        C.load_checkpoint(3, hl.models.CharLM)
    with pytest.raises(ValueError, match="unknown pretrained model 'nope'"):
        C.checkpoint_path("nope")
    with pytest.raises(TypeError, match="checkpoint name must be a str"):
        C.checkpoint_path(None)


def test_file_object_is_accepted(saved):
    f, sha = saved
    with open(f, "rb") as fh:
        model, _ = C.load_checkpoint(io.BytesIO(fh.read()), hl.models.CharLM, sha256=sha)
    assert type(model).__name__ == "CharLM"


def test_checkpoints_json_is_valid_json(repo):
    json.loads((repo / "hmf_lab" / "assets" / "checkpoints.json").read_text())
