"""Column-split HMF (issue 19, part 2) and the order-invariant default row choice (parts 1 and 4).

- property tests (hypothesis, random shapes): the parameter formula, the rank bound, exactness at k = n,
  error never increasing with the rank at a fixed split, never over the value budget;
- the layer, the LSTM form and the registry record through ``hl.compress``;
- heuristics that find planted outlier input columns;
- ``hl.compress(model, "hmf", compression=c)`` (with and without ``X=``) does not depend on the order of
  the model's outputs: a shipped model whose decoder rows are shuffled compresses to the same model.

Which characters the char LM decoder's dense rows hold (part 1): tests/test_vocab_order.py.
"""
from __future__ import annotations

import copy
import math

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from torch import nn

import hmf_lab as hl
from hmf_lab.factor.budget import choose_col_split_rank, col_params, max_col_split, value_budget
from hmf_lab.nn.methods import default_heuristic, get_method

# --------------------------------------------------------------------------- the math (property tests)

shapes = st.tuples(st.integers(1, 24), st.integers(1, 24))


def _matrix(m, n, seed):
    return torch.randn(m, n, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


@given(shapes, st.data(), st.integers(0, 2**16))
def test_parameter_formula_and_rank_bound(shape, data, seed):
    m, n = shape
    k = data.draw(st.integers(0, n), label="split")
    r = 0 if k == n else data.draw(st.integers(1, min(m, n - k)), label="rank")
    W = _matrix(m, n, seed)
    f = hl.hmf_cols(W, split=k, rank=r, heuristic=data.draw(st.sampled_from(["top", "col_norm"])))
    assert f.n_params == m * k + m * r + r * (n - k) == col_params(m, n, k, r)
    assert f.n_params == f.dense.numel() + f.U.numel() + f.V.numel()
    assert (tuple(f.dense.shape), tuple(f.U.shape), tuple(f.V.shape)) == ((m, k), (m, r), (r, n - k))
    assert f.rank_bound == min(k + r, m, n)
    assert int(torch.linalg.matrix_rank(f.to_dense())) <= f.rank_bound
    assert f.compression == pytest.approx(m * n / f.n_params)
    x = _matrix(3, n, seed + 1)
    assert torch.allclose(f(x), x @ f.to_dense().T, atol=1e-10)
    assert torch.equal(f.to_dense()[:, f.cols], W[:, f.cols])  # the dense columns are exact


@given(shapes, st.integers(0, 2**16))
def test_exact_at_every_column_dense(shape, seed):
    m, n = shape
    W = _matrix(m, n, seed)
    f = hl.hmf_cols(W, split=n, rank=0)
    assert torch.equal(f.to_dense(), W) and hl.relative_error(W, f) == 0.0 and f.compression == 1.0


@given(shapes, st.data(), st.integers(0, 2**16))
def test_error_never_increases_with_rank_at_a_fixed_split(shape, data, seed):
    m, n = shape
    k = data.draw(st.integers(0, n - 1), label="split")
    W = _matrix(m, n, seed)
    errs = [hl.relative_error(W, hl.hmf_cols(W, k, r, heuristic="col_norm")) for r in range(1, min(m, n - k) + 1)]
    assert all(b <= a + 1e-9 for a, b in zip(errs, errs[1:]))
    assert errs[-1] < 1e-9  # full rank of the factorized block: exact


@given(st.tuples(st.integers(2, 64), st.integers(2, 64)), st.floats(1.0, 12.0), st.data())
def test_compression_never_over_budget(shape, c, data):
    m, n = shape
    B = value_budget((m, n), c)
    if min(m, n) < 1 or B < m + n:  # not even rank 1 fits
        with pytest.raises(ValueError):
            choose_col_split_rank((m, n), c)
        return
    k, r = choose_col_split_rank((m, n), c)
    assert col_params(m, n, k, r) <= B
    if k < n:
        assert 1 <= r <= min(m, n - k)
    ks = max_col_split((m, n), c)
    assert col_params(m, n, ks, 1) <= B and (ks == n - 1 or col_params(m, n, ks + 1, 1) > B)
    split = data.draw(st.integers(0, ks), label="split")
    k2, r2 = choose_col_split_rank((m, n), c, split=split)
    assert k2 == split and col_params(m, n, k2, r2) <= B
    assert get_method("hmf_col").stored((m, n), c) <= B


def test_column_split_is_the_row_split_of_the_transpose():
    W = _matrix(12, 30, 0)
    f, g = hl.hmf_cols(W, 5, 4, heuristic="col_norm"), hl.hmf(W.T, 5, 4, heuristic="row_norm")
    assert torch.equal(f.cols, g.rows)
    assert torch.allclose(f.to_dense(), g.to_dense().T, atol=1e-10)
    # on a wide matrix the column split reaches a higher rank than the row split at the same budget
    assert choose_col_split_rank((65, 256), 4) == (11, 10) and hl.choose_split_rank((65, 256), 4) == (9, 5)


def test_errors_name_the_columns():
    W = torch.randn(4, 6)
    with pytest.raises(ValueError, match="unknown column heuristic 'leverage'"):
        hl.hmf_cols(W, 2, 1, heuristic="leverage")  # a row heuristic: not silently used on columns
    with pytest.raises(ValueError, match="needs calibration inputs X"):
        hl.hmf_cols(W, 2, 1, heuristic="activation")
    with pytest.raises(ValueError, match="duplicate"):
        hl.hmf_cols(W, 2, 1, heuristic=[3, 3])


# --------------------------------------------------------------------------- heuristics find planted columns


def test_heuristics_pick_planted_outlier_columns():
    g = torch.Generator().manual_seed(0)
    m, n, planted = 32, 48, [5, 17, 40]
    W = torch.randn(m, 6, generator=g) @ torch.randn(6, n, generator=g) * 0.1
    Wloud = W.clone()
    Wloud[:, planted] += 5 * torch.randn(m, 3, generator=g)  # loud weight columns
    assert hl.select_cols(Wloud, 3, 4, "col_norm").tolist() == planted
    # outlier input channels: same weights, a few inputs 30x louder (what 'activation' is for)
    X = torch.randn(256, n, generator=g)
    X[:, planted] *= 30
    assert hl.select_cols(W, 3, 4, "activation", X=X).tolist() == planted
    assert hl.select_cols(W, 3, 4, "top").tolist() == [0, 1, 2]
    assert hl.select_cols(Wloud, 3, 4, "greedy").tolist() == planted
    # keeping the outlier channels dense lowers the output error against 'top' a lot
    Y = X @ W.T
    err = {h: float((Y - hl.hmf_cols(W, 3, 4, heuristic=h, X=X)(X)).norm() / Y.norm()) for h in ("top", "activation")}
    assert err["activation"] < 0.5 * err["top"]


# --------------------------------------------------------------------------- the layer, the LSTM, the record


def test_layer_trains_round_trips_and_matches_the_result(tmp_path):
    lin = nn.Linear(40, 24)
    layer = hl.HMFColLinear.from_linear(lin, split=6, rank=5)
    f = hl.hmf_cols(lin.weight.detach(), 6, 5)
    x = torch.randn(7, 40)
    with torch.no_grad():
        fast = layer(x)
    assert torch.allclose(fast, f(x) + lin.bias, atol=1e-5)
    assert torch.allclose(layer(x), fast, atol=1e-5)  # the differentiable path gives the same numbers
    layer.mode = "reconstructed"
    with torch.no_grad():
        assert torch.allclose(layer(x), fast, atol=1e-5)
    layer.mode = "factorized"
    assert layer(torch.randn(40)).shape == (24,) and layer(torch.randn(2, 3, 40)).shape == (2, 3, 24)
    loss = layer(x).square().sum()
    loss.backward()
    assert all(p.grad is not None for p in (layer.dense, layer.U, layer.V, layer.bias))
    torch.save(layer.state_dict(), tmp_path / "l.pt")
    other = hl.HMFColLinear(40, 24, split=6, rank=5)
    other.load_state_dict(torch.load(tmp_path / "l.pt", weights_only=True))
    with torch.no_grad():
        assert torch.equal(other.cols, layer.cols) and torch.allclose(other(x), fast, atol=1e-6)
    assert layer.n_params == 24 * 6 + 24 * 5 + 5 * 34 and hl.count_params(nn.Sequential(layer)) == layer.n_params


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.inp = nn.Linear(12, 32)
        self.rnn = nn.LSTM(32, 24, batch_first=True)
        self.out = nn.Linear(24, 40)

    def forward(self, x):
        return self.out(self.rnn(torch.relu(self.inp(x)))[0])


def test_compress_hmf_col_is_exact_at_compression_1_and_runs():
    net = Net().eval()
    x = torch.randn(3, 5, 12)
    same = hl.compress(net, "hmf_col", compression=1)
    assert isinstance(same.inp, hl.HMFColLinear) and isinstance(same.rnn, hl.HMFColLSTM)
    with torch.no_grad():
        assert torch.allclose(same(x), net(x), atol=1e-5)
    small = hl.compress(net, "hmf_col", compression=3)
    with torch.no_grad():
        y = small(x)
    assert y.shape == (3, 5, 40) and torch.isfinite(y).all()
    assert hl.count_params(small) <= hl.count_params(net) / 3
    rec = get_method("hmf_col")
    assert rec.label == "HMF (columns)" and rec.layer_policy == "linear+lstm+attention"
    for name in ("inp", "out"):
        mod, dense = getattr(small, name), getattr(net, name)
        assert mod.n_params == rec.stored(tuple(dense.weight.shape), 3)
    # with calibration inputs the data-aware column choice runs through the hooks
    cal = hl.compress(net, "hmf_col", compression=3, X=x)
    with torch.no_grad():
        assert torch.isfinite(cal(x)).all()
    # the LSTM form trains (reconstructed fused path) and gives the factorized numbers at inference
    y = small(x)
    y.square().mean().backward()
    assert small.rnn.ih[0].V.grad is not None


def test_lstm_gates_share_the_column_choice():
    lstm = nn.LSTM(16, 8)
    with torch.no_grad():
        lstm.weight_ih_l0[:, 11] *= 20  # one loud input channel for every gate
    m = hl.HMFColLSTM.from_lstm(lstm, compression=2, split={"ih": 2})
    assert 11 in m.ih[0].cols.tolist()
    assert m.ih[0].D.shape == (4, 8, m.ih[0].split)


# --------------------------------------------------------------------------- the default does not depend on output order


def test_default_heuristic_is_order_invariant_and_never_top():
    assert default_heuristic() == "greedy" and default_heuristic(X=torch.ones(1)) == "activation"
    assert default_heuristic("top") == "top" and default_heuristic(axis="cols") == "col_norm"


class Unshuffle(nn.Module):
    """A char LM whose decoder rows are permuted by ``perm``; the logits are put back in the vocab order."""

    def __init__(self, model, perm):
        super().__init__()
        self.model = model
        self.register_buffer("inv", torch.argsort(perm))

    def forward(self, x):
        return self.model(x)[..., self.inv]


def _shuffled(model, perm):
    s = copy.deepcopy(model)
    with torch.no_grad():
        s.decoder.weight.copy_(model.decoder.weight[perm])
        s.decoder.bias.copy_(model.decoder.bias[perm])
    return Unshuffle(s, perm).eval()


@pytest.mark.parametrize("with_x", [False, True], ids=["no X", "X"])
@pytest.mark.parametrize("c", [4, pytest.param(8, marks=pytest.mark.slow)])
def test_compress_does_not_depend_on_the_order_of_the_outputs(with_x, c):
    model = hl.models.load_pretrained("char_lm")
    V = model.decoder.out_features
    perm = torch.randperm(V, generator=torch.Generator().manual_seed(1))
    shuffled = _shuffled(model, perm)
    x = torch.randint(0, V, (2, 64), generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        assert torch.allclose(shuffled(x), model(x), atol=1e-5)  # the same model, outputs in another order
    X = x if with_x else None
    a = hl.compress(model, "hmf", compression=c, X=X)
    b = hl.compress(shuffled.model, "hmf", compression=c, X=X)
    rows_a, rows_b = a.decoder.rows, b.decoder.rows
    assert sorted(perm[rows_b].tolist()) == rows_a.tolist()  # the same characters are kept dense
    W = model.decoder.weight.detach()
    err_a = hl.relative_error(W, a.decoder.to_dense())
    err_b = hl.relative_error(W, b.decoder.to_dense()[torch.argsort(perm)])
    assert err_a == pytest.approx(err_b, rel=1e-5, abs=1e-7)
    x2 = torch.randint(0, V, (2, 32), generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        ya, yb = a(x2), Unshuffle(b, perm)(x2)
    assert torch.allclose(ya, yb, atol=1e-4, rtol=1e-4)
    # the old default "top" does depend on the order (it keeps other characters): it is only explicit now
    ta = hl.compress(model, "hmf", compression=c, heuristic="top", layers=["decoder"]).decoder.rows
    tb = hl.compress(shuffled.model, "hmf", compression=c, heuristic="top", layers=["decoder"]).decoder.rows
    assert sorted(perm[tb].tolist()) != ta.tolist()


def test_scratch_init_rescales_the_column_split_like_the_row_split():
    from hmf_lab.experiments.pipeline import factorized_init

    net = nn.ModuleDict({"rnn": nn.LSTM(16, 32), "out": nn.Linear(32, 64)})
    small = hl.compress(net, "hmf_col", compression=4)
    kept = factorized_init(net, small, ["rnn", "out"])
    assert set(kept) == {"rnn.ih_l0", "rnn.hh_l0", "out"} and all(0 < v < 1 for v in kept.values())
    for W, mod in ((net["out"].weight, small["out"]), (net["rnn"].weight_hh_l0, small["rnn"].hh[0])):
        # the dense columns are exact, U V gets the norm of the columns it replaces: ||W_hat|| = ||W||
        assert float(mod.to_dense().detach().norm() / W.detach().norm()) == pytest.approx(1.0, abs=1e-5)
