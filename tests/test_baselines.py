"""The post-training baselines of issue 20 (part 3): aa_lmf, wanda, oats as registered methods.

Never over the value budget floor(m*n / c) (hypothesis over shapes and compressions); exact where the
structure allows (compression 1 for wanda / oats, full rank for aa_lmf); each beats its plain counterpart
on a planted case; hl.compress runs on a Linear + LSTM model (LSTM left dense with a warning) and on
nn.TransformerEncoderLayer; missing X raises a clear ValueError.
"""
from __future__ import annotations

import io
import warnings

import pytest
import torch
from hypothesis import given, settings, strategies as st
from torch import nn

import hmf_lab as hl
from hmf_lab.factor import budget as rules
from hmf_lab.factor.baselines import aa_lmf, oats, oats_split, row_counts, wanda
from hmf_lab.nn.baseline_layers import SparseLowRankLinear

BASELINES = ("aa_lmf", "wanda", "oats")


@pytest.fixture(autouse=True)
def _quiet():
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*[Ss]parse CSR.*")
        warnings.filterwarnings("ignore", message=".*enable_nested_tensor.*")
        yield


def _loud_inputs(N, n, loud=(0, 3), scale=30.0, seed=0):
    g = torch.Generator().manual_seed(seed)
    X = torch.randn(N, n, generator=g, dtype=torch.float64)
    X[:, list(loud)] *= scale
    return X


def _out_err(W, What, X):
    return float(torch.linalg.norm(X @ (W - What).T) / torch.linalg.norm(X @ W.T))


# ------------------------------------------------------------------------------------------ budget


@settings(max_examples=40, deadline=None)
@given(m=st.integers(2, 40), n=st.integers(2, 40), c=st.floats(1.0, 12.0), seed=st.integers(0, 5))
def test_never_over_budget(m, n, c, seed):
    g = torch.Generator().manual_seed(seed)
    W = torch.randn(m, n, generator=g)
    X = torch.randn(3 * n, n, generator=g)
    B = rules.value_budget((m, n), c)
    if B < 1:
        return
    for name in BASELINES:
        rec = hl.get_method(name)
        try:
            f = rec.factorize(W, c, X=X)
        except ValueError as e:  # aa_lmf: rank 1 does not fit (LMF's rule)
            assert name == "aa_lmf" and "compression" in str(e)
            continue
        assert f.n_params <= B, (name, m, n, c)
        assert f.n_params == rec.stored((m, n), c)
        if name == "wanda":
            assert f.nnz == B  # Wanda keeps exactly the budget, like "prune"
            counts = f.mask.sum(1)
            assert int(counts.max() - counts.min()) <= 1  # the same count per row, remainder one each
        lin = nn.Linear(n, m)
        mod = rec.linear(lin, c, X=X)
        assert hl.count_params(nn.Sequential(mod)) <= B


def test_row_counts_and_oats_split():
    s = torch.tensor([[5., 4., 3.], [1., 0.5, 0.], [9., 8., 7.]])
    assert row_counts(s, 4).tolist() == [1, 1, 2]  # 4 = 3*1 + 1: the extra value to row 2 (next best 8)
    assert row_counts(s, 9).tolist() == [3, 3, 3]
    r, nnz = oats_split((64, 48), 4)
    B = rules.value_budget((64, 48), 4)
    assert r == int(0.25 * B / 112) and r * 112 + nnz == B
    assert oats_split((10, 10), 1) == (0, 100)
    with pytest.raises(ValueError, match="rank_ratio"):
        oats_split((10, 10), 2, rank_ratio=1.5)


# ------------------------------------------------------------------------------------------ exactness


def test_exact_where_the_structure_allows():
    g = torch.Generator().manual_seed(1)
    W = torch.randn(12, 9, generator=g, dtype=torch.float64)
    X = torch.randn(100, 9, generator=g, dtype=torch.float64)
    torch.testing.assert_close(aa_lmf(W, X, rank=9).to_dense(), W)
    torch.testing.assert_close(wanda(W, X, compression=1).to_dense(), W)
    f = oats(W, X, compression=1)
    assert f.rank == 0 and f.nnz == W.numel()
    torch.testing.assert_close(f.to_dense(), W)
    x = torch.randn(4, 9, generator=g, dtype=torch.float64)
    f2 = oats(W, X, compression=3)
    torch.testing.assert_close(f2(x), x @ f2.to_dense().T)
    assert f2.n_bytes > f2.n_params * 8  # indices counted in bytes, apart


def test_oats_without_room_for_a_rank_is_wanda():
    g = torch.Generator().manual_seed(6)
    W, X = torch.randn(20, 24, generator=g), torch.randn(64, 24, generator=g)
    assert oats_split((20, 24), 3)[0] == 0  # 0.25 * 160 values < m + n: no rank fits the low-rank share
    assert torch.equal(oats(W, X, compression=3).mask, wanda(W, X, compression=3).mask)


def test_aa_lmf_is_the_whitened_fit():
    from hmf_lab.factor.heuristics import whitened_fit
    g = torch.Generator().manual_seed(2)
    W, X = torch.randn(10, 8, generator=g), torch.randn(50, 8, generator=g)
    f = aa_lmf(W, X, rank=3)
    U, V = whitened_fit(W, X, 3)
    torch.testing.assert_close(f.to_dense(), U @ V)
    assert aa_lmf(W, X, compression=4).rank == hl.lmf_rank((10, 8), 4)


# ------------------------------------------------------------------------------------------ planted wins


def test_aa_lmf_beats_lmf_in_output_error_with_loud_channels():
    g = torch.Generator().manual_seed(3)
    m, n = 48, 40
    W = torch.randn(m, n, generator=g, dtype=torch.float64)
    X = _loud_inputs(400, n, loud=(1, 7, 20))
    c = 4
    e_lmf = _out_err(W, hl.lmf(W, rank=hl.lmf_rank((m, n), c)).to_dense(), X)
    e_aa = _out_err(W, aa_lmf(W, X, compression=c).to_dense(), X)
    assert e_aa < 0.8 * e_lmf, (e_aa, e_lmf)


def test_wanda_beats_magnitude_pruning_in_output_error_with_loud_inputs():
    g = torch.Generator().manual_seed(4)
    m, n = 48, 40
    W = torch.randn(m, n, generator=g, dtype=torch.float64)
    X = _loud_inputs(400, n, loud=(2, 11), scale=20.0)
    c = 4
    e_mag = _out_err(W, hl.prune(W, compression=c).to_dense(), X)
    e_w = _out_err(W, wanda(W, X, compression=c).to_dense(), X)
    assert e_w < 0.8 * e_mag, (e_w, e_mag)


def test_oats_beats_lmf_on_low_rank_plus_sparse():
    g = torch.Generator().manual_seed(5)
    m, n, r = 64, 64, 2
    L = torch.randn(m, r, generator=g, dtype=torch.float64) @ torch.randn(r, n, generator=g, dtype=torch.float64)
    S = torch.zeros(m, n, dtype=torch.float64)
    idx = torch.randperm(m * n, generator=g)[: 3 * m]  # 3 loud entries per row on average
    S.view(-1)[idx] = 8.0 * torch.randn(idx.numel(), generator=g, dtype=torch.float64)
    W = L + S
    X = torch.randn(500, n, generator=g, dtype=torch.float64)  # flat inputs: D ~ I
    c = 4
    e_lmf = _out_err(W, hl.lmf(W, rank=hl.lmf_rank((m, n), c)).to_dense(), X)
    e_oats = _out_err(W, oats(W, X, compression=c).to_dense(), X)
    assert e_oats < 0.5 * e_lmf, (e_oats, e_lmf)


# ------------------------------------------------------------------------------------------ modules, compress


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.inp = nn.Linear(12, 24)
        self.rnn = nn.LSTM(24, 20, batch_first=True)
        self.out = nn.Linear(20, 10)

    def forward(self, x):
        return self.out(self.rnn(torch.tanh(self.inp(x)))[0])


@pytest.mark.parametrize("method", BASELINES)
def test_compress_linear_lstm_model(method):
    torch.manual_seed(0)
    net, X = Net(), torch.randn(6, 5, 12)
    if method == "aa_lmf":  # per gate block: an LMFLSTM with whitened fits
        small = hl.compress(net, method, compression=3, X=X)
        assert type(small.rnn).__name__ == "LMFLSTM"
        lstm_values = 4 * sum(rules.value_budget((20, n), 3) for n in (24, 20))
    else:  # no LSTM form: left dense, with a warning
        with pytest.warns(UserWarning, match=rf"method '{method}' touches linear\+attention .* 'rnn' left dense"):
            small = hl.compress(net, method, compression=3, X=X)
        assert type(small.rnn) is nn.LSTM
        lstm_values = 4 * 20 * (24 + 20)
    assert small(X).shape == (6, 5, 10)
    budget = rules.value_budget((24, 12), 3) + rules.value_budget((10, 20), 3) + lstm_values
    assert hl.count_params(small) <= budget
    with pytest.raises(ValueError, match=rf"method '{method}' needs X="):
        hl.compress(net, method, compression=3)
    with pytest.raises(ValueError, match=r"pass X=\.\.\., or use the data-free"):
        hl.get_method(method).factorize(torch.randn(4, 4), 2)


@pytest.mark.parametrize("method", BASELINES)
def test_compress_transformer_encoder_layer(method):
    torch.manual_seed(0)
    layer = nn.TransformerEncoderLayer(16, 2, 32, dropout=0.0, batch_first=True)
    x = torch.randn(3, 6, 16)
    small = hl.compress(layer, method, compression=2, X=x)
    assert type(small.self_attn).__name__ == "CompressedMultiheadAttention"
    assert hl.count_params(small) <= hl.count_params(layer) // 2
    kpm = torch.zeros(3, 6, dtype=torch.bool)
    kpm[0, -2:] = True
    for train in (False, True):
        small.train(train), layer.train(train)
        with torch.no_grad():
            y0, y1 = layer(x, src_key_padding_mask=kpm), small(x, src_key_padding_mask=kpm)
        assert y1.shape == y0.shape and bool(torch.isfinite(y1).all())
        assert float((y1 - y0).norm() / y0.norm()) < 0.5
    if method != "aa_lmf":  # wanda / oats at compression 1 keep every value: the dense layer's outputs
        same = hl.compress(layer, method, compression=1, X=x).eval()
        with torch.no_grad():
            torch.testing.assert_close(same(x), layer.eval()(x), atol=1e-5, rtol=1e-5)


def test_aa_lmf_lstm_beats_lmf_in_output_error():
    torch.manual_seed(0)
    net = Net()
    X = torch.randn(16, 10, 12)
    X[..., 3] *= 25.0  # a loud input channel
    with torch.no_grad():
        ref = net(X)
        errs = {m: float((hl.compress(net, m, compression=4, X=X if m == "aa_lmf" else None)(X) - ref).norm()
                         / ref.norm()) for m in ("lmf", "aa_lmf")}
    assert errs["aa_lmf"] < errs["lmf"], errs


def test_wanda_sparse_true_runs_csr():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(16, 16), nn.ReLU(), nn.Linear(16, 8))
    X = torch.randn(32, 16)
    masked = hl.compress(net, "wanda", compression=4, X=X)
    csr = hl.compress(net, "wanda", compression=4, X=X, sparse=True)
    assert type(csr[0]).__name__ == "SparseLinear" and csr[0].nnz == 64
    torch.testing.assert_close(csr(X), masked(X), atol=1e-5, rtol=1e-5)


def test_sparse_low_rank_linear_state_dict_and_training():
    torch.manual_seed(0)
    lin, X = nn.Linear(48, 64), torch.randn(128, 48)
    f = SparseLowRankLinear.from_linear(lin, 3, X=X)
    assert f.rank == 2 and f.nnz >= 1 and f.n_params == rules.value_budget((64, 48), 3)
    torch.testing.assert_close(f(X), X @ f.to_dense().T + lin.bias, atol=1e-5, rtol=1e-5)
    buf = io.BytesIO()
    torch.save(f.state_dict(), buf)
    buf.seek(0)
    g = SparseLowRankLinear(48, 64, f.rank, f.nnz)
    g.load_state_dict(torch.load(buf, weights_only=True))
    torch.testing.assert_close(g(X), f(X))
    f(X).pow(2).sum().backward()  # the factors train
    assert f.U.grad is not None and f.V.grad is not None
    assert torch.equal(f.weight, f.to_dense().detach()) or torch.allclose(f.weight, f.to_dense())


def test_errors():
    W = torch.randn(6, 5)
    for fn, plain in ((lambda: aa_lmf(W, None, rank=2), "lmf"), (lambda: wanda(W, None, compression=2), "prune"),
                      (lambda: oats(W, None, compression=2), "lmf")):
        with pytest.raises(ValueError, match=rf"needs calibration inputs X .* use the data-free '{plain}'"):
            fn()
    with pytest.raises(ValueError, match="X"):
        wanda(W, torch.randn(10, 4), compression=2)  # wrong width
    with pytest.raises(TypeError, match="rank and nnz together"):
        oats(W, torch.randn(10, 5), rank=1)
    with pytest.raises(TypeError, match="method 'wanda' needs compression"):
        hl.get_method("wanda").linear(nn.Linear(5, 6), None, X=torch.randn(8, 5))


def test_report_names_the_baselines_with_X():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(32, 32), nn.ReLU(), nn.Linear(32, 16))
    X = torch.randn(24, 32)
    t = hl.report(net, compressions=(2,), X=X, methods=["lmf", *BASELINES], time=False, progress=False).table
    assert set(t.method) == {"dense", "lmf", *BASELINES}
    assert (t["values"] <= t.groupby("layer")["values"].transform("max") / 2).where(t.method != "dense", True).all()
    assert (t[t.method.isin(["wanda", "oats"])]["index_bytes"] > 0).all()
    aa, lmf = (t[(t.method == m) & (t.layer == "0")]["output_error"].item() for m in ("aa_lmf", "lmf"))
    assert aa < lmf  # activation-aware fits the outputs
    # without X (and not named) the report leaves them out: they cannot run without calibration inputs
    assert not set(BASELINES) & set(hl.report(net, compressions=(2,), time=False, progress=False).table.method)


def test_engines_choose_runs_on_sparse_low_rank():
    torch.manual_seed(0)
    lin, X = nn.Linear(48, 64), torch.randn(64, 48)
    f = SparseLowRankLinear.from_linear(lin, 3, X=X).eval()
    assert hl.engines.engines_of(f) == ("factorized", "reconstructed")
    y = f(X)
    f.mode = "reconstructed"
    with torch.no_grad():
        torch.testing.assert_close(f(X), y, atol=1e-5, rtol=1e-5)
