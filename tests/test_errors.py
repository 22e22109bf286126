"""Every error at the public boundary: a clear ValueError/TypeError naming the argument."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import hmf_lab as hl
from hmf_lab import _validation as v

W = torch.randn(8, 6)


@pytest.mark.parametrize("bad, exc, msg", [
    (torch.randn(5), ValueError, r"2-D matrix .* got 1-D"),
    (torch.randn(2, 3, 4), ValueError, r"got 3-D"),
    (torch.randn(0, 4), ValueError, r"non-empty"),
    (torch.tensor([[1.0, float("nan")]]), ValueError, r"NaN or Inf"),
    (torch.tensor([[1.0, float("inf")]]), ValueError, r"1 NaN or Inf"),
    (torch.ones(3, 3, dtype=torch.int64), TypeError, r"float32 or float64, got torch.int64"),
    (torch.ones(3, 3, dtype=torch.bool), TypeError, r"got torch.bool"),
    (torch.ones(3, 3, dtype=torch.complex64), TypeError, r"got torch.complex64"),
    (torch.ones(3, 3, dtype=torch.float16), TypeError, r"got torch.float16"),
    (np.ones((3, 3), dtype=np.int32), TypeError, r"real floating dtype.*int32"),
    (np.ones((3, 3), dtype=np.complex128), TypeError, r"real floating dtype"),
    (np.ones((3, 3), dtype=np.float16), TypeError, r"float32 or float64, got numpy float16"),
    (np.array([[object()]]), TypeError, r"dtype object"),
    ([[1.0, 2.0]], TypeError, r"torch.Tensor or numpy.ndarray .* got list"),
    (torch.eye(3).to_sparse(), TypeError, r"dense \(strided\)"),
])
def test_bad_matrix(bad, exc, msg):
    with pytest.raises(exc, match=msg):
        hl.hmf(bad, 1, 1)
    with pytest.raises(exc, match=msg):
        hl.lmf(bad, 1)
    with pytest.raises(exc, match=msg):
        hl.prune(bad, 2)


@pytest.mark.parametrize("split, exc, msg", [
    (-1, ValueError, r"split must be an int in \[0, m\]=\[0, 8\], got -1"),
    (9, ValueError, r"split must be an int in \[0, m\]=\[0, 8\], got 9"),
    (2.0, TypeError, r"split must be an int, got float 2.0"),
    (True, TypeError, r"split must be an int, got bool"),
    ("2", TypeError, r"split must be an int, got str"),
    (torch.tensor(2.0), TypeError, r"split must be an int, got tensor"),
])
def test_bad_split(split, exc, msg):
    with pytest.raises(exc, match=msg):
        hl.hmf(W, split, 1)


def test_integer_like_split_accepted():
    assert hl.hmf(W, np.int64(2), torch.tensor(1)).split == 2


@pytest.mark.parametrize("split, rank, exc, msg", [
    (2, 0, ValueError, r"rank must be an int in \[1, min\(m-split, n\)\]=\[1, 6\].*got 0; rank 0 is only allowed when split = m"),
    (2, 7, ValueError, r"\[1, 6\] for shape \(8, 6\) and split 2, got 7"),
    (5, 4, ValueError, r"\[1, 3\].*got 4"),
    (8, 1, ValueError, r"rank must be 0 when split = m = 8"),
    (2, 1.5, TypeError, r"rank must be an int, got float"),
])
def test_bad_rank(split, rank, exc, msg):
    with pytest.raises(exc, match=msg):
        hl.hmf(W, split, rank)


def test_lmf_bad_rank():
    with pytest.raises(ValueError, match=r"rank must be an int in \[1, min\(m-split, n\)\]=\[1, 6\]"):
        hl.lmf(W, 7)


@pytest.mark.parametrize("c, exc, msg", [
    (0.5, ValueError, r"compression must be a finite number >= 1"),
    (float("inf"), ValueError, r"finite number"),
    (float("nan"), ValueError, r"finite number"),
    ("4", TypeError, r"compression must be a real number >= 1, got str"),
    (True, TypeError, r"got bool"),
])
def test_bad_compression(c, exc, msg):
    with pytest.raises(exc, match=msg):
        hl.prune(W, c)
    with pytest.raises(exc, match=msg):
        hl.budget((8, 6), c)


def test_prune_compression_too_high():
    with pytest.raises(ValueError, match=r"leaves no stored value .* at most m\*n = 48"):
        hl.prune(W, 100)


def test_budget_unreachable_compression():
    with pytest.raises(ValueError, match=r"cannot be reached for shape \(8, 6\).*compression at most 3.429"):
        hl.budget((8, 6), compression=4)


@pytest.mark.parametrize("shape, step, exc, msg", [
    ((8,), 1, TypeError, r"shape must be a tuple \(m, n\)"),
    ((0, 6), 1, ValueError, r"positive sizes"),
    ((8, 6), 0, ValueError, r"step must be an int >= 1"),
    ((8.0, 6), 1, TypeError, r"shape\[0\] must be an int"),
])
def test_budget_bad_arguments(shape, step, exc, msg):
    with pytest.raises(exc, match=msg):
        hl.budget(shape, 2, step=step)


def test_unknown_heuristic_lists_valid_names():
    with pytest.raises(ValueError, match=r"unknown heuristic 'nope'; valid names are \[.*'top'.*\]"):
        hl.hmf(W, 2, 1, heuristic="nope")


def test_heuristic_of_wrong_type():
    with pytest.raises(TypeError, match=r"heuristic must be a registered name .* got int"):
        hl.hmf(W, 2, 1, heuristic=3)


def bad_count(W, split, *, rank, X=None):
    return torch.arange(split + 1)


def dup_rows(W, split, *, rank, X=None):
    return torch.zeros(split, dtype=torch.int64)


def out_of_range(W, split, *, rank, X=None):
    return torch.arange(W.shape[0] - split + 1, W.shape[0] + 1)


def float_rows(W, split, *, rank, X=None):
    return torch.arange(split, dtype=torch.float32)


def returns_list(W, split, *, rank, X=None):
    return "rows"


@pytest.mark.parametrize("fn, exc, msg", [
    (bad_count, ValueError, r"heuristic 'bad_count' must return split=3 row indices, got 4"),
    (dup_rows, ValueError, r"heuristic 'dup_rows' returned duplicate rows \[0\]"),
    (out_of_range, ValueError, r"heuristic 'out_of_range' returned out-of-range rows: .*\[0, 7\].*max 8"),
    (float_rows, TypeError, r"heuristic 'float_rows' must return integer row indices, got dtype torch.float32"),
    (returns_list, TypeError, r"heuristic 'returns_list' must return a LongTensor of row indices, got str"),
])
def test_bad_heuristic_output_names_the_heuristic(fn, exc, msg):
    with pytest.raises(exc, match=msg):
        hl.hmf(W, 3, 1, heuristic=fn)


def test_registered_bad_heuristic_named():
    hl.register_heuristic("_test_bad")(bad_count)
    try:
        with pytest.raises(ValueError, match=r"heuristic '_test_bad' must return split=3"):
            hl.hmf(W, 3, 1, heuristic="_test_bad")
    finally:
        del hl.HEURISTICS["_test_bad"]


@pytest.mark.parametrize("rows, exc, msg", [
    ([0, 1], ValueError, r"explicit rows must return split=3 row indices, got 2"),
    (np.array([0.0, 1.0, 2.0]), TypeError, r"explicit rows must return integer row indices, got numpy dtype float64"),
    ([0, 0, 1], ValueError, r"duplicate rows"),
])
def test_bad_explicit_rows(rows, exc, msg):
    with pytest.raises(exc, match=msg):
        hl.hmf(W, 3, 1, heuristic=rows)


def test_register_heuristic_bad_arguments():
    with pytest.raises(TypeError, match=r"heuristic name must be a non-empty str"):
        hl.register_heuristic("")
    with pytest.raises(TypeError, match=r"must decorate a callable, got int"):
        hl.register_heuristic("_test_nc")(3)


@pytest.mark.parametrize("x, exc, msg", [
    (torch.randn(3, 5), ValueError, r"x must have shape \(\.\.\., n\) with n = 6, got shape \(3, 5\)"),
    (torch.ones(3, 6, dtype=torch.int32), TypeError, r"x must have dtype float32 or float64"),
    ([1.0] * 6, TypeError, r"x must be a torch.Tensor or numpy.ndarray"),
])
def test_bad_inputs_to_call(x, exc, msg):
    with pytest.raises(exc, match=msg):
        hl.hmf(W, 2, 1)(x)


def test_bad_calibration_inputs():
    with pytest.raises(ValueError, match=r"X must have shape \(\.\.\., n\) with n = 6"):
        hl.hmf(W, 2, 1, X=torch.randn(4, 5))


def test_relative_error_shape_mismatch():
    with pytest.raises(ValueError, match=r"W_hat must have the shape of W \(8, 6\), got \(6, 8\)"):
        hl.relative_error(W, W.T.contiguous())


@pytest.mark.parametrize("kwargs, exc, msg", [
    ({"splits": [9]}, ValueError, r"split must be an int in \[0, m\]"),
    ({"ranks": [7]}, ValueError, r"ranks must lie in \[0, min\(m, n\)\]=\[0, 6\], got \[7\]"),
    ({"ranks": [1.0]}, TypeError, r"rank must be an int"),
])
def test_sweep_bad_arguments(kwargs, exc, msg):
    with pytest.raises(exc, match=msg):
        hl.sweep(W, **kwargs)


def test_as_int_rejects_float_tensor_and_accepts_numpy_int():
    assert v.as_int(np.int32(3), "n") == 3
    with pytest.raises(TypeError, match=r"n must be an int, got tensor of dtype torch.float32"):
        v.as_int(torch.tensor(3.0), "n")
