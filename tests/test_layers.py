"""Torch layers: outputs, trainability, state_dict round trips with weights_only=True."""
from __future__ import annotations

import io

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
import torch
from torch import nn

import hmf_lab as hl


def linear(n=20, m=16, bias=True, dtype=torch.float32):
    torch.manual_seed(1)
    return nn.Linear(n, m, bias=bias, dtype=dtype)


def roundtrip(module: nn.Module, fresh: nn.Module) -> nn.Module:
    buf = io.BytesIO()
    torch.save(module.state_dict(), buf)
    buf.seek(0)
    fresh.load_state_dict(torch.load(buf, weights_only=True))
    return fresh


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("heuristic", ["top", "row_norm", [0, 5, 15]])
def test_hmf_linear_output(bias, heuristic):
    lin = linear(bias=bias)
    layer = hl.HMFLinear.from_linear(lin, split=3, rank=4, heuristic=heuristic)
    x = torch.randn(2, 5, 20)
    b = lin.bias if bias else 0
    torch.testing.assert_close(layer(x), x @ layer.to_dense().T + b)
    f = hl.hmf(lin.weight.detach(), 3, 4, heuristic=heuristic)
    torch.testing.assert_close(layer.to_dense(), f.to_dense())
    assert layer.n_params == f.n_params and layer.compression == pytest.approx(f.compression)


def test_hmf_linear_parameters_are_trainable():
    layer = hl.HMFLinear.from_linear(linear(), split=2, rank=3, heuristic="row_norm")
    names = {n for n, p in layer.named_parameters() if p.requires_grad}
    assert {"dense", "U", "V", "bias"} <= names
    layer(torch.randn(4, 20)).sum().backward()
    assert all(p.grad is not None for p in (layer.D, layer.U, layer.V, layer.bias))


@pytest.mark.parametrize("heuristic", ["top", [1, 2, 9]])
def test_hmf_linear_state_dict_roundtrip(heuristic):
    layer = hl.HMFLinear.from_linear(linear(), split=3, rank=4, heuristic=heuristic)
    fresh = roundtrip(layer, hl.HMFLinear(20, 16, split=3, rank=4))
    x = torch.randn(3, 20)
    assert torch.equal(fresh(x), layer(x))
    assert fresh.rows.tolist() == layer.rows.tolist()
    assert fresh.is_top == (heuristic == "top")


def test_lmf_linear():
    lin = linear()
    layer = hl.LMFLinear.from_linear(lin, rank=5)
    x = torch.randn(7, 20)
    torch.testing.assert_close(layer(x), x @ layer.to_dense().T + lin.bias)
    torch.testing.assert_close(layer.to_dense(), hl.lmf(lin.weight.detach(), 5).to_dense())
    assert layer.n_params == 5 * 36
    fresh = roundtrip(layer, hl.LMFLinear(20, 16, rank=5))
    assert torch.equal(fresh(x), layer(x))


@pytest.mark.parametrize("shape", [(20,), (7, 20), (2, 3, 20)])
def test_sparse_linear(shape):
    lin = linear()
    layer = hl.SparseLinear.from_linear(lin, compression=4)  # the budget floor(16*20 / 4), as hl.prune
    assert layer.nnz == 80 and layer.compression == 4.0
    assert layer.weight.layout == torch.sparse_csr
    x = torch.randn(*shape)
    torch.testing.assert_close(layer(x), x @ layer.to_dense().T + lin.bias)
    torch.testing.assert_close(layer.to_dense(), hl.prune(lin.weight.detach(), 4).to_dense())
    fair = hl.SparseLinear.from_linear(lin, compression=4, count="lmf")  # LMF's count at 4x (rank 2: 72 values)
    assert fair.nnz == hl.LMFLinear.from_linear(lin, rank=hl.lmf_rank((16, 20), 4)).n_params == 72
    fresh = roundtrip(layer, hl.SparseLinear(20, 16, nnz=80))
    assert torch.equal(fresh(x), layer(x))


def test_float64_layers():
    lin = linear(dtype=torch.float64)
    x = torch.randn(3, 20, dtype=torch.float64)
    for layer in (hl.HMFLinear.from_linear(lin, 2, 3), hl.LMFLinear.from_linear(lin, 3),
                  hl.SparseLinear.from_linear(lin, 2)):
        y = layer(x)
        assert y.dtype == torch.float64
        torch.testing.assert_close(y, x @ layer.to_dense().T + lin.bias)


def test_layers_reject_non_linear():
    for cls, kw in ((hl.HMFLinear, {"split": 1, "rank": 1}), (hl.LMFLinear, {"rank": 1}),
                    (hl.SparseLinear, {"compression": 2})):
        with pytest.raises(TypeError, match=r"linear must be a torch.nn.Linear, got Conv1d"):
            cls.from_linear(nn.Conv1d(2, 2, 1), **kw)


@pytest.mark.parametrize("make, exc, msg", [
    (lambda: hl.HMFLinear(0, 4, 0, 1), ValueError, r"in_features and out_features must be >= 1, got 0 and 4"),
    (lambda: hl.HMFLinear(4, 4, 5, 1), ValueError, r"split must be an int in \[0, m\]"),
    (lambda: hl.HMFLinear(4, 4, 1, 4), ValueError, r"rank must be an int in"),
    (lambda: hl.HMFLinear(4, 4, 2, 1, rows=[0]), ValueError, r"rows must have shape \(2,\) for split 2, got \(1,\)"),
    (lambda: hl.LMFLinear(4, 0, 1), ValueError, r"in_features and out_features must be >= 1"),
    (lambda: hl.LMFLinear(4, 4, 0), ValueError, r"rank must be an int in"),
    (lambda: hl.SparseLinear(4, 4, 17), ValueError, r"nnz must be an int in \[1, m\*n\]=\[1, 16\], got 17"),
    (lambda: hl.SparseLinear(0, 4, 1), ValueError, r"in_features and out_features must be >= 1"),
    (lambda: hl.SparseLinear(4, 4, 2.0), TypeError, r"nnz must be an int"),
])
def test_layer_constructor_errors(make, exc, msg):
    with pytest.raises(exc, match=msg):
        make()


# --------------------------------------------------------------------------- same speed path in train and eval

@pytest.mark.parametrize("make", [
    lambda lin: hl.HMFLinear.from_linear(lin, split=3, rank=4),
    lambda lin: hl.HMFLinear.from_linear(lin, split=3, rank=4, heuristic=[1, 7, 2]),
    lambda lin: hl.LMFLinear.from_linear(lin, rank=5),
    lambda lin: hl.SparseLinear.from_linear(lin, compression=3),
])
@pytest.mark.parametrize("batch", [(20,), (1, 20), (4, 20)])
def test_train_and_eval_give_the_same_output_under_inference_mode(make, batch):
    layer = make(linear())
    x = torch.randn(*batch)
    with torch.inference_mode():
        y_train = layer.train()(x)
        y_eval = layer.eval()(x)
    torch.testing.assert_close(y_train, y_eval, rtol=0, atol=0)
    torch.testing.assert_close(y_eval, x @ layer.to_dense().T + layer.bias.detach(), rtol=1e-5, atol=1e-5)


def test_cache_is_used_in_train_mode_without_autograd_and_cleared_by_mode_switch():
    layer = hl.HMFLinear.from_linear(linear(), split=3, rank=4).train()
    with torch.no_grad():
        layer(torch.randn(1, 20))
    assert "pack" in layer.__dict__.get("_inference_cache", {})  # train mode, no autograd: the fast path
    layer.eval()
    assert "_inference_cache" not in layer.__dict__  # train()/eval() and clear_cache() free it
    with torch.no_grad():
        layer(torch.randn(1, 20))
        layer.dense.mul_(2)  # the version counter changes: rebuilt, in either mode
        y = layer.train()(torch.randn(1, 20))
    assert y.shape == (1, 16)
    layer.clear_cache()
    assert "_inference_cache" not in layer.__dict__


@pytest.mark.parametrize("bias", [True, False])
def test_hmf_batch1_pack_is_reused_and_rebuilt_after_every_kind_of_weight_edit(bias):
    """HMFLinear's batch-1 path writes _cached's key out inline: it must find the same entry (no rebuild
    per call) and still see in-place edits, ``.data`` reassignment, new parameters and bias edits."""
    lin = torch.nn.Linear(20, 16, bias=bias)
    layer = hl.HMFLinear.from_linear(lin, split=3, rank=4).eval()
    x = torch.randn(1, 20)

    def pack():
        return layer.__dict__["_inference_cache"]["pack"][1][0]

    def reference():
        return x @ layer.to_dense().T + (layer.bias if bias else 0)

    with torch.no_grad():
        layer(x)
        first = pack()
        layer(x)
        assert pack() is first  # the inline key matched the entry _cached built
        for edit in (lambda: layer.U.mul_(2), lambda: setattr(layer.V, "data", torch.randn(4, 20)),
                     lambda: setattr(layer, "dense", torch.nn.Parameter(torch.randn(3, 20))),
                     lambda: layer.bias.add_(1) if bias else layer.dense.add_(1)):
            before = pack()
            edit()
            torch.testing.assert_close(layer(x), reference(), rtol=1e-5, atol=1e-5)
            assert pack() is not before
    with torch.inference_mode():  # parameters made here are inference tensors: no version counter
        fresh = hl.HMFLinear(20, 16, split=3, rank=4, bias=bias).eval()
        fresh.load_state_dict(layer.state_dict())
        torch.testing.assert_close(fresh(x), layer(x), rtol=0, atol=0)


def test_dense_is_the_name_and_D_an_alias_and_old_state_dicts_load():
    layer = hl.HMFLinear.from_linear(linear(), split=3, rank=4)
    assert layer.D is layer.dense and "dense" in layer.state_dict() and "D" not in layer.state_dict()
    f = hl.hmf(linear().weight.detach(), 3, 4)
    torch.testing.assert_close(layer.dense.detach(), f.dense)
    old = {("D" if k == "dense" else k): v for k, v in layer.state_dict().items()}  # saved before the rename
    fresh = hl.HMFLinear(20, 16, split=3, rank=4)
    fresh.load_state_dict(old)
    assert torch.equal(fresh.dense, layer.dense)


@pytest.mark.parametrize("rows, exc, match", [
    ([-1, 0], ValueError, r"rows must be row indices in \[0, m\)=\[0, 16\), got min -1"),
    ([0, 16], ValueError, r"rows must be row indices in \[0, m\)=\[0, 16\), got min 0, max 16"),
    ([0.5, 1.5], TypeError, "rows must hold integer row indices, got dtype torch.float32"),
    ([True, False], TypeError, "rows must hold integer row indices, got dtype torch.bool"),
    ([1, 1], ValueError, r"rows must be distinct, got repeated indices in \[1, 1\]"),
    ([1, 2, 3], ValueError, r"rows must have shape \(2,\) for split 2, got \(3,\)"),
    ("ab", TypeError, "rows must be a sequence of 2 distinct int row indices"),
])
def test_hmf_linear_rows_are_checked_at_construction(rows, exc, match):
    with pytest.raises(exc, match=match):
        hl.HMFLinear(20, 16, split=2, rank=3, rows=rows)


@pytest.mark.parametrize("make", [
    lambda: hl.HMFLinear.from_linear(linear(), split=3, rank=4),
    lambda: hl.LMFLinear.from_linear(linear(), rank=5),
    lambda: hl.SparseLinear.from_linear(linear(), compression=3),
])
def test_layer_forward_validates_its_input(make):
    layer = make()
    name = type(layer).__name__
    with pytest.raises(ValueError, match=rf"{name} input must have shape \(\.\.\., 20\) \(in_features=20\), got \(2, 21\)"):
        layer(torch.randn(2, 21))
    with pytest.raises(ValueError, match=rf"{name} input must have shape"):
        layer(torch.tensor(1.0))
    with pytest.raises(TypeError, match=rf"{name} input must be a torch.Tensor of shape \(\.\.\., 20\), got list"):
        layer([0.0] * 20)
    with pytest.raises(TypeError, match=rf"{name} input must have the layer's dtype torch.float32, got torch.float64"):
        layer(torch.randn(2, 20, dtype=torch.float64))
    with pytest.raises(TypeError, match="got torch.int64"):
        layer(torch.ones(2, 20, dtype=torch.int64))
    assert layer(torch.nn.Parameter(torch.randn(20))).shape == (16,)  # tensor subclasses pass


@given(data=st.data(), m=st.integers(1, 12), n=st.integers(1, 12), bias=st.booleans(),
       lead=st.sampled_from([(), (1,), (1, 1), (3,), (2, 2)]), permuted=st.booleans())
@settings(max_examples=80, deadline=None)
def test_inference_fast_path_equals_the_autograd_path(data, m, n, bias, lead, permuted):
    """The lean batch-1 / batched inference forward (cached [V ; D], one cat, one index op) gives the numbers
    of the differentiable reference path for every split 0..m, rank (0 when k = m), row order and shape."""
    k = data.draw(st.integers(0, m), label="split")
    r = 0 if k == m else data.draw(st.integers(1, min(m - k, n)), label="rank")
    rows = data.draw(st.permutations(range(m)), label="rows")[:k] if permuted else None
    torch.manual_seed(m * 13 + n)
    layer = hl.HMFLinear(n, m, split=k, rank=r, bias=bias, rows=rows)
    if bias:
        with torch.no_grad():
            layer.bias.normal_()
    x = torch.randn(*lead, n)
    reference = layer(x.requires_grad_())  # autograd records: the plain path
    with torch.no_grad():
        fast = layer(x.detach())
    assert fast.shape == (*lead, m)
    torch.testing.assert_close(fast, reference.detach(), rtol=1e-5, atol=1e-5)
