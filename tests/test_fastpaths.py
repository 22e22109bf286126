"""Every fast inference path gives the numbers of the plain (autograd) path; TorchScript == eager."""
from __future__ import annotations

import re
import copy

import pytest
import torch
from torch import nn

import hmf_lab as hl
from hmf_lab.nn.lstm import GateHMFLinear


def _close(a, b, atol=1e-5):
    return torch.allclose(a, b, atol=atol, rtol=1e-4)


def _plain(module, x):
    """The reference: the differentiable path (autograd on, x requires grad)."""
    with torch.enable_grad():
        return module(x.clone().requires_grad_(True)).detach()


@pytest.mark.parametrize("split, rank", [(0, 4), (3, 4), (5, 6), (20, 0)])
@pytest.mark.parametrize("heuristic", ["top", "row_norm"])
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("shape", [(1, 12), (7, 12), (2, 3, 12), (12,), (1, 1, 12)])
def test_hmf_linear_paths_agree(split, rank, heuristic, bias, shape):
    lin = nn.Linear(12, 20, bias=bias)
    layer = hl.HMFLinear.from_linear(lin, split=split, rank=rank, heuristic=heuristic).eval()
    x = torch.randn(*shape)
    ref = x @ layer.to_dense().T + (lin.bias.detach() if bias else 0)
    with torch.no_grad():
        fast = layer(x)
        fast_again = layer(x)  # from the cache
        layer.mode = "reconstructed"
        recon = layer(x)
    plain = _plain(layer, x)
    layer.mode = "factorized"
    assert fast.shape == ref.shape
    for y in (fast, fast_again, recon, plain):
        assert _close(y, ref)


@pytest.mark.parametrize("shape", [(1, 10), (6, 10), (2, 3, 10)])
def test_lmf_linear_paths_agree(shape):
    layer = hl.LMFLinear.from_linear(nn.Linear(10, 9), rank=3).eval()
    x = torch.randn(*shape)
    ref = x @ layer.to_dense().T + layer.bias.detach()
    with torch.no_grad():
        fast = layer(x)
        layer.mode = "reconstructed"
        recon = layer(x)
    assert _close(fast, ref) and _close(recon, ref) and _close(_plain(layer, x), ref)


def test_mode_errors_and_training_through_reconstructed():
    layer = hl.HMFLinear.from_linear(nn.Linear(8, 8), split=2, rank=2)
    with pytest.raises(ValueError, match=r"mode must be one of \('factorized', 'reconstructed'\)"):
        layer.mode = "dense"
    with pytest.raises(ValueError, match="mode must be one of"):
        hl.LMFLinear(8, 8, rank=2).mode = "x"
    layer.mode = "reconstructed"
    layer(torch.randn(3, 8)).sum().backward()
    assert layer.U.grad is not None and layer.D.grad is not None


@pytest.mark.parametrize("B", [1, 5])
def test_sparse_linear_paths_agree(B):
    layer = hl.SparseLinear.from_linear(nn.Linear(16, 24), compression=3)
    x = torch.randn(B, 16)
    ref = x @ layer.to_dense().T + layer.bias.detach()
    with torch.no_grad():
        fast = layer(x)
    assert layer._csr32().col_indices().dtype == torch.int32
    assert _close(fast, ref) and _close(_plain(layer, x), ref)


def test_caches_follow_weight_changes():
    layer = hl.HMFLinear.from_linear(nn.Linear(8, 8), split=2, rank=2).eval()
    x = torch.randn(2, 8)
    with torch.no_grad():
        before = layer(x)
        layer.D.mul_(2)  # in place: the version counter changes, the cache is rebuilt
        after = layer(x)
        want_after = x @ layer.to_dense().T + layer.bias
        layer.V.data.zero_()  # .data edits are invisible to version counters: clear_cache() is the fix
        layer.clear_cache()
        cleared = layer(x)
        want_cleared = x @ layer.to_dense().T + layer.bias
    assert not _close(before, after) and _close(after, want_after)
    assert _close(cleared, want_cleared)
    sparse = hl.SparseLinear.from_linear(nn.Linear(8, 8), compression=2)
    with torch.no_grad():
        y1 = sparse(x)
        sparse.values.mul_(3)
        assert _close(sparse(x) - sparse.bias, 3 * (y1 - sparse.bias))


@pytest.mark.parametrize("heuristic", ["top", "row_norm"])
@pytest.mark.parametrize("split, rank", [(0, 3), (2, 3), (6, 0)])
def test_gate_hmf_paths_agree(heuristic, split, rank):
    f = GateHMFLinear.from_weight(torch.randn(24, 7), split=split, rank=rank, heuristic=heuristic,
                                  bias=torch.randn(24)).eval()
    for B in (1, 4):
        x = torch.randn(B, 7)
        ref = x @ f.to_dense().T + f.bias.detach()
        add = torch.randn(4, B, 6)
        with torch.no_grad():
            fast = f(x)
            gates = f.gates(x, add)
        assert _close(fast, ref) and _close(_plain(f, x), ref)
        assert _close(gates, (x @ f.to_dense().T).view(B, 4, 6).transpose(0, 1) + add)


def _lstms():
    lstm = nn.LSTM(6, 9, num_layers=2, bidirectional=True)
    return {
        "hmf-top": hl.HMFLSTM.from_lstm(lstm, compression=2),
        "hmf-row_norm": hl.HMFLSTM.from_lstm(lstm, compression=2, heuristic="row_norm"),
        "lmf": hl.LMFLSTM.from_lstm(lstm, compression=2),
        "csr": hl.SparseLSTM.from_lstm(lstm, compression=2),
    }


@pytest.mark.slow
@pytest.mark.parametrize("name", ["hmf-top", "hmf-row_norm", "lmf", "csr"])
@pytest.mark.parametrize("B", [1, 3])
def test_lstm_engines_agree(name, B):
    base = _lstms()[name].eval()
    x = torch.randn(5, B, 6)
    hx = (torch.randn(4, B, 9), torch.randn(4, B, 9))
    outs = {}
    for engine in ("plain", "eager", "script"):
        m = copy.deepcopy(base)
        m.engine = engine
        with torch.no_grad():
            outs[engine] = m(x, hx)
    ref_lstm = base.to_lstm() if name != "csr" else None
    for engine in ("eager", "script"):
        y, (h, c) = outs[engine]
        y0, (h0, c0) = outs["plain"]
        assert _close(y, y0) and _close(h, h0) and _close(c, c0), engine
    if ref_lstm is not None:
        with torch.no_grad():
            assert _close(outs["script"][0], ref_lstm(x, hx)[0])
    if name != "csr":  # the autograd path gives the same numbers too
        with torch.enable_grad():
            y = base.train()(x, hx)[0]
        assert _close(y.detach(), outs["plain"][0])


@pytest.mark.slow
@pytest.mark.parametrize("name", ["hmf-row_norm", "lmf"])
def test_lstm_modes_agree_forward_and_gradients(name):
    x = torch.randn(4, 2, 6)
    grads, outs = {}, {}
    for mode in ("factorized", "reconstructed", "auto"):
        torch.manual_seed(0)
        m = _lstms()[name]
        m.mode = mode
        y, (h, c) = m(x)  # autograd on
        (y.pow(2).sum() + c.sum()).backward()
        grads[mode] = {k: p.grad.clone() for k, p in m.named_parameters()}
        with torch.no_grad():
            outs[mode] = m.eval()(x)[0]
    for mode in ("reconstructed", "auto"):
        assert _close(outs[mode], outs["factorized"])
        for k, g in grads["factorized"].items():
            assert _close(grads[mode][k], g, atol=1e-4), (mode, k)


@pytest.mark.slow
def test_reconstructed_eval_cache_follows_training():
    m = _lstms()["hmf-top"]
    m.mode = "reconstructed"
    x = torch.randn(3, 2, 6)
    with torch.no_grad():
        before = m.eval()(x)[0]
    m.train()
    opt = torch.optim.SGD(m.parameters(), lr=0.5)
    m(x)[0].sum().backward()
    opt.step()
    with torch.no_grad():
        after = m.eval()(x)[0]
        m.mode = "factorized"
        ref = m(x)[0]
    assert not _close(before, after) and _close(after, ref)


def test_script_falls_back_to_eager_when_torchscript_fails(monkeypatch):
    from hmf_lab.nn import lstm as L

    def loop(x):
        return x + 1

    def broken(fn):
        raise RuntimeError("no TorchScript here")

    monkeypatch.setattr(torch.jit, "script", broken)
    with pytest.warns(UserWarning, match="TorchScript unavailable"):
        assert L._scripted(loop) is loop
    L._SCRIPTED.pop(loop)


def test_one_mode_property_for_every_compressed_module():
    """Issue 18 part 6: HMFLinear/LMFLinear, SparseLinear and the compressed LSTMs share one ``mode``."""
    from hmf_lab.nn.layers import MODES, SPARSE_MODES, _Modes
    from hmf_lab.nn.lstm import LSTM_MODES

    lstm = hl.compress(nn.LSTM(4, 8), "lmf", compression=2)
    sparse = hl.SparseLinear.from_dense(torch.randn(8, 8), None, mask=torch.rand(8, 8) > 0.5)
    for mod, modes, first in [(hl.LMFLinear(8, 8, rank=2), MODES, "factorized"), (sparse, SPARSE_MODES, "csr"),
                              (lstm, LSTM_MODES, "auto")]:
        assert type(mod).mode is _Modes.mode and type(mod).MODES == modes and mod.mode == first
        for m in modes:
            mod.mode = m
            assert mod.mode == m
        with pytest.raises(ValueError, match=r"mode must be one of " + re.escape(repr(modes)) + ", got 'x'"):
            mod.mode = "x"
        assert mod.mode == modes[-1]
