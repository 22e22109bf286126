"""The one home of the budget rules (core): largest rank, LMF's rank, HMF's split, the equal budget.

Issue 9 item 2: HMF's stored values within 1% of LMF's, nothing over budget;
issue 12 item 1: every module calls these rules; issue 18 part 5: pruning keeps exactly the budget
floor(m*n / c) (LMF's count only as the explicit count="lmf" / prune_count="lmf").
"""
from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

import hmf_lab as hl
from hmf_lab.factor import budget as core  # the size rules

SHAPES = st.tuples(st.integers(1, 600), st.integers(1, 600))
COMPRESSIONS = st.floats(1.01, 40, allow_nan=False)


def _reachable(m, n, c):
    return core.value_budget((m, n), c) >= m + n


@settings(max_examples=200, deadline=None)
@given(SHAPES, COMPRESSIONS)
def test_equal_budget_within_one_percent_and_never_over(shape, c):
    m, n = shape
    B = math.floor(m * n / c * (1 + 1e-12))
    if not _reachable(m, n, c):
        with pytest.raises(ValueError, match=rf"cannot be reached for shape \({m}, {n}\)"):
            core.equal_budget(shape, c)
        with pytest.raises(ValueError, match=rf"cannot be reached for shape \({m}, {n}\)"):
            hl.lmf_rank(shape, c)
        return
    e = core.equal_budget(shape, c)
    assert e.hmf_params <= B and e.lmf_params <= B and e.prune_nnz <= B  # never over budget
    assert abs(e.hmf_params - e.lmf_params) <= 0.01 * e.lmf_params  # within 1% of LMF
    assert abs(e.hmf_params - e.prune_nnz) <= 0.01 * e.prune_nnz  # and of pruning's equal-size count
    assert e.lmf_rank == hl.lmf_rank(shape, c) and hl.lmf_params(m, n, e.lmf_rank + 1) > B  # LMF: largest fit
    assert (e.split, e.rank) == hl.choose_split_rank(shape, c)  # HMF's default is the equal-budget point
    assert core.prune_keep(shape, c, count="lmf") == e.prune_nnz  # the explicit equal-size count
    assert core.prune_keep(shape, c) == B == e.budget  # the default: exactly the value budget
    k, r = e.split, e.rank
    assert 1 <= r <= min(m - k, n) and core.largest_rank(shape, min(B, math.floor(e.lmf_params * 1.01)), k) == r


@settings(max_examples=100, deadline=None)
@given(SHAPES, COMPRESSIONS, st.integers(0, 600))
def test_equal_budget_given_split(shape, c, k):
    m, n = shape
    if not _reachable(m, n, c):
        return
    k = k % m
    splits = core.equal_budget_splits(shape, c)
    if k in set(splits["split"]):
        e = core.equal_budget(shape, c, split=k)
        assert e.split == k and abs(e.hmf_params - e.lmf_params) <= 0.01 * e.lmf_params
    else:
        with pytest.raises(ValueError, match=rf"split {k} cannot store within 1% .* for shape \({m}, {n}\)"):
            core.equal_budget(shape, c, split=k)


@settings(max_examples=100, deadline=None)
@given(SHAPES, st.integers(0, 10**6), st.integers(0, 600))
def test_largest_rank_is_the_largest_that_fits(shape, values, k):
    m, n = shape
    k = k % (m + 1)
    r = core.largest_rank(shape, values, k)
    if k == m:
        assert r == 0
        return
    assert 0 <= r <= min(m - k, n)
    if r >= 1:
        assert hl.hmf_params(m, n, k, r) <= values
    if r < min(m - k, n):
        assert hl.hmf_params(m, n, k, r + 1) > values


def test_gate_blocked_lstm_equal_budget():
    """An LSTM's matrix is 4 gate blocks: pruning keeps each block's budget, HMF within 1% of LMF, none over."""
    lstm = nn.LSTM(48, 128)
    sizes = {m: hl.count_params(hl.compress(lstm, m, compression=8)) for m in ("hmf", "lmf", "prune")}
    sizes["sparse"] = hl.count_params(hl.compress(lstm, "prune", compression=8, sparse=True))
    ih, hh = core.equal_budget((128, 48), 8, blocks=4), core.equal_budget((128, 128), 8, blocks=4)
    assert sizes["prune"] == sizes["sparse"] == 4 * (ih.budget + hh.budget)  # floor(H*n / 8) per gate block
    assert hl.count_params(hl.compress(lstm, "prune", compression=8, prune_count="lmf")) == sizes["lmf"]
    assert abs(sizes["hmf"] - sizes["lmf"]) <= 0.01 * sizes["lmf"]
    assert max(sizes.values()) <= hl.count_params(lstm) / 8
    assert sizes["lmf"] == ih.lmf_params + hh.lmf_params and sizes["hmf"] == ih.hmf_params + hh.hmf_params


def test_linear_model_equal_budget():
    model = nn.Sequential(nn.Linear(96, 200), nn.ReLU(), nn.Linear(200, 64))
    sizes = {m: hl.count_params(hl.compress(model, m, compression=6)) for m in ("hmf", "lmf", "prune")}
    assert sizes["prune"] == 96 * 200 // 6 + 200 * 64 // 6  # exactly the budget of each layer
    assert hl.count_params(hl.compress(model, "prune", compression=6, prune_count="lmf")) == sizes["lmf"]
    assert abs(sizes["hmf"] - sizes["lmf"]) <= 0.01 * sizes["lmf"]


def test_lmf_never_silently_over_budget():
    """Issue 12 5(d): LMF raised nothing and stored more than the budget; now it names the shape."""
    with pytest.raises(ValueError, match=r"the model itself \(Linear\(1, 8\)\).*cannot be reached for shape \(8, 1\)"):
        hl.compress(nn.Linear(1, 8), "lmf", compression=2)
    net = nn.Sequential(nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 1))
    with pytest.raises(ValueError, match=r"layer '2' \(Linear\(64, 1\)\).*shape \(1, 64\)"):
        hl.compress(net, "hmf", compression=2)
    with pytest.raises(ValueError, match=r"cannot be reached for shape \(2, 2\)"):
        hl.compress(nn.LSTM(2, 2), "lmf", compression=8)
    with pytest.raises(ValueError, match=r"cannot be reached for shape \(2, 2\)"):
        hl.LMFLSTM.from_lstm(nn.LSTM(2, 2), compression=8)


def test_compression_one_keeps_everything():
    assert hl.choose_split_rank((6, 5), 1) == (6, 0)
    assert core.prune_keep((6, 5), 1, blocks=4) == 120


def test_budget_rule_errors():
    with pytest.raises(TypeError, match=r"shape must be a tuple \(m, n\), got 5"):
        core.largest_rank(5, 10)
    with pytest.raises(ValueError, match=r"shape must have positive sizes, got \(0, 3\)"):
        core.value_budget((0, 3), 2)
    with pytest.raises(TypeError, match="values must be a number of stored values, got str"):
        core.largest_rank((4, 4), "10")
    with pytest.raises(ValueError, match="values must be a finite number"):
        core.largest_rank((4, 4), math.inf)
    with pytest.raises(ValueError, match=r"tol must be a number in \[0, 1\)"):
        core.equal_budget((64, 64), 2, tol=1.5)
    with pytest.raises(TypeError, match="tol must be a number"):
        core.equal_budget((64, 64), 2, tol="x")
    with pytest.raises(ValueError, match="blocks must be an int >= 1"):
        core.equal_budget((64, 64), 2, blocks=0)
    with pytest.raises(ValueError, match="blocks must be an int >= 1"):
        core.prune_keep((64, 64), 2, blocks=0)
    with pytest.raises(ValueError, match=r"compression 1e\+300 leaves no stored value for shape \(4, 4\)"):
        core.prune_keep((4, 4), 1e300)
    with pytest.raises(ValueError, match=r"int too large for a float \(401 digits\)"):
        core.value_budget((4, 4), 10**400)


def test_prune_nnz_and_transposed():
    W = torch.randn(4, 6).T  # non-contiguous (issue 12 5(f))
    p = hl.prune(W, 2)
    assert p.nnz == 12 and torch.equal(p.to_dense()[p.mask], W[p.mask])
    assert hl.prune(W, nnz=5).nnz == 5
    with pytest.raises(TypeError, match="exactly one of compression"):
        hl.prune(W)
    with pytest.raises(TypeError, match="exactly one of compression"):
        hl.prune(W, 2, nnz=3)
    with pytest.raises(ValueError, match=r"nnz must be an int in \[1, m\*n\]=\[1, 24\]"):
        hl.prune(W, nnz=25)
