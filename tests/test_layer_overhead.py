"""benchmarks/layer_overhead.py: its ceiling rows compute what HMFLinear computes, and a tiny run prints the
table with every row (no timed asserts: the numbers themselves are in benchmarks/results/)."""
from __future__ import annotations

import shutil
import sysconfig
from pathlib import Path

import pytest
import torch

import hmf_lab as hl

from conftest import load_script


@pytest.fixture(scope="module")
def lo():
    return load_script("benchmarks/layer_overhead.py")


@pytest.mark.parametrize("n, c", [(32, 4.0), (48, 8.0)])
def test_bare_module_and_previous_forward_match_the_layer(lo, n, c):
    torch.manual_seed(0)
    k, r = hl.choose_split_rank((n, n), c)
    h = hl.HMFLinear(n, n, k, r).eval()
    torch.nn.init.normal_(h.bias)
    prev = lo.PreviousHMFLinear(n, n, k, r).eval()
    prev.load_state_dict(h.state_dict())
    x = torch.randn(1, n)
    with torch.inference_mode():
        want = h(x)
        torch.testing.assert_close(lo.BareHMF(h)(x), want, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(prev(x), want, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(want, x @ h.to_dense().T + h.bias, rtol=1e-5, atol=1e-5)
        f = hl.LMFLinear(n, n, hl.lmf_rank((n, n), c)).eval()
        torch.nn.init.normal_(f.bias)
        torch.testing.assert_close(lo.BareLMF(f)(x), f(x), rtol=1e-5, atol=1e-5)


def test_tiny_run_prints_every_row_and_the_noise_control(lo, capsys):
    lo.main(["--sizes", "32", "--rounds", "1", "--min-run-time", "0.001", "--no-parts"])
    out = capsys.readouterr().out
    for row in ("dense", "HMF (previous forward)", "LMF", "HMF bare module (ceiling)", "LMF bare module (ceiling)",
                "floor:HMF twin copy (noise control)", "of_floor"):
        assert row in out
    assert "C++ op" not in out  # only with --compiled


@pytest.mark.slow
@pytest.mark.skipif(not (shutil.which("c++") and shutil.which("ninja")
                         and (Path(sysconfig.get_paths()["include"]) / "Python.h").exists()),
                    reason="--compiled needs a C++ compiler, ninja and Python's headers (the benchmark skips "
                           "the row and says why)")
def test_compiled_op_matches_the_layer(lo):
    op = lo.compiled_op()
    assert op is not None
    torch.manual_seed(1)
    h = hl.HMFLinear(40, 40, 5, 6).eval()
    torch.nn.init.normal_(h.bias)
    x = torch.randn(1, 40)
    with torch.inference_mode():
        torch.testing.assert_close(lo.BareHMF(h, op)(x), h(x), rtol=1e-5, atol=1e-5)
