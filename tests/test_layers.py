"""Torch layers: outputs, trainability, state_dict round trips with weights_only=True."""
from __future__ import annotations

import io

import pytest
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
    assert {"D", "U", "V", "bias"} <= names
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
    layer = hl.SparseLinear.from_linear(lin, compression=4)
    assert layer.nnz == 80 and layer.compression == 4.0
    assert layer.weight.layout == torch.sparse_csr
    x = torch.randn(*shape)
    torch.testing.assert_close(layer(x), x @ layer.to_dense().T + lin.bias)
    torch.testing.assert_close(layer.to_dense(), hl.prune(lin.weight.detach(), 4).to_dense())
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
