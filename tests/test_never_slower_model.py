"""benchmarks/never_slower_model.py: a tiny quick-mode run prints dense vs choose vs fallback side by side for
the shipped char LM (no timed asserts: the numbers of a quick run mean nothing)."""
from __future__ import annotations

import pytest

from conftest import load_script


@pytest.fixture(scope="module")
def nsm():
    return load_script("benchmarks/never_slower_model.py")


def test_quick_run_prints_every_configuration(nsm, monkeypatch, capsys):
    monkeypatch.setenv("HMF_LAB_QUICK", "1")
    assert nsm.main([]) == 0
    out = capsys.readouterr().out
    assert "| method | compression | per-layer | choose (decision) | fallback | dense copy |" in out
    row = next(line for line in out.splitlines() if line.startswith("| lmf | 4 |"))
    assert any(f"({d})" in row for d in ("kept", "fallback", "nothing to confirm"))
    assert "lstm:" in row and "decoder:" in row


def test_engine_configurations_are_applied(nsm):
    import torch

    import hmf_lab as hl

    model = hl.compress(torch.nn.Sequential(torch.nn.Linear(8, 8), torch.nn.Linear(8, 8)), "lmf", compression=2)
    prepare = nsm._engines_setter(model, {"fallback": {"0": "reconstructed", "1": "reconstructed"},
                                          "mixed": {"0": "factorized", "1": "reconstructed"}})
    prepare("fallback")
    assert [m.mode for m in model] == ["reconstructed", "reconstructed"]
    prepare("mixed")
    assert [m.mode for m in model] == ["factorized", "reconstructed"]
    prepare("dense")  # another model in the race: nothing changes
    assert [m.mode for m in model] == ["factorized", "reconstructed"]
