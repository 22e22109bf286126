"""One meaning of compression (issue 18 part 5): every entry point gives the same stored-value budget rule.

``compression=c`` on an (m, n) matrix means the value budget ``B = floor(m*n / c)``: pruning keeps exactly B
(``hl.prune``, ``hl.SparseLinear.from_linear``, ``hl.compress(..., "prune")``, the LSTM modules,
``tradeoff.layers_at_budget``, the registry's ``Method.stored``), LMF the largest rank inside B, HMF its
balanced point inside B; nothing ever stores more than B. LMF's count for pruning is only the explicit
``count="lmf"`` / ``prune_count="lmf"``.
"""
from __future__ import annotations

import math
import warnings

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

import hmf_lab as hl
from hmf_lab.experiments.tradeoff import layers_at_budget
from hmf_lab.factor import budget as rules  # the size rules

SIZES = st.integers(2, 64)
COMPRESSIONS = st.one_of(st.integers(1, 40), st.floats(1.0, 40.0, allow_nan=False))


def _linear(m, n, seed=0):
    torch.manual_seed(seed)
    return nn.Linear(n, m)


def _count(model) -> int:
    return hl.count_params(model)


@settings(max_examples=80, deadline=None)
@given(SIZES, SIZES, COMPRESSIONS)
def test_every_entry_point_follows_one_budget(m, n, c):
    B = math.floor(m * n / c * (1 + 1e-12))
    assert rules.value_budget((m, n), c) == B
    lin = _linear(m, n)
    W = lin.weight.detach()
    seq = nn.Sequential(lin)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch's "sparse CSR support is in beta"
        if B < 1:
            with pytest.raises(ValueError, match="leaves no stored value"):
                hl.prune(W, compression=c)
            return
        # pruning: exactly the budget, everywhere
        assert hl.prune(W, compression=c).nnz == B
        assert hl.SparseLinear.from_linear(lin, compression=c).nnz == B
        assert _count(hl.compress(seq, "prune", compression=c)) == B
        assert _count(hl.compress(seq, "prune", compression=c, sparse=True)) == B
        assert hl.get_method("prune").stored((m, n), c) == B == rules.prune_keep((m, n), c)
    reachable = B >= m + n or (c == 1)
    if not reachable:  # not even rank 1 fits: factorizations refuse instead of going over budget
        for method in ("lmf", "hmf"):
            with pytest.raises(ValueError, match=r"cannot be reached|does not fit|no room"):
                hl.compress(seq, method, compression=c)
        return
    # LMF: the largest rank inside the budget
    r = hl.lmf_rank((m, n), c)
    lmf_model = hl.compress(seq, "lmf", compression=c)
    assert _count(lmf_model) == r * (m + n) == hl.get_method("lmf").stored((m, n), c) <= B
    assert r == min(m, n) or (r + 1) * (m + n) > B
    # HMF: its balanced point, never over the budget, the same through every door
    k, rh = hl.choose_split_rank((m, n), c)
    hmf_model = hl.compress(seq, "hmf", compression=c)
    assert _count(hmf_model) == hl.hmf_params(m, n, k, rh) == hl.get_method("hmf").stored((m, n), c) <= B
    assert hl.get_method("hmf").factorize(W, c).n_params == _count(hmf_model)
    # the explicit equal-size option: pruning as big as LMF
    assert _count(hl.compress(seq, "prune", compression=c, prune_count="lmf")) == r * (m + n) \
        or B >= m * n
    # the timing helpers: one budget for all four layers
    L = layers_at_budget(W, compression=c)
    assert L["pruning (CSR)"].n_params == B
    assert L["LMF"].n_params == r * (m + n) and L["HMF"].n_params == _count(hmf_model)
    assert max(mod.n_params for name, mod in L.items() if name != "dense") <= B


@settings(max_examples=25, deadline=None)
@given(st.integers(2, 24), st.integers(2, 24), COMPRESSIONS)
def test_lstm_modules_follow_the_budget_per_gate_block(H, n, c):
    lstm = nn.LSTM(n, H)
    B_ih, B_hh = rules.value_budget((H, n), c), rules.value_budget((H, H), c)
    if min(B_ih, B_hh) < 1:
        return
    want = 4 * (B_ih + B_hh)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert hl.PrunedLSTM.from_lstm(lstm, c).n_params == want
        assert hl.SparseLSTM.from_lstm(lstm, c).n_params == want
        assert _count(hl.compress(lstm, "prune", compression=c)) == want
    for name in ("hmf", "lmf"):
        rec = hl.get_method(name)
        try:
            model = hl.compress(lstm, name, compression=c)
        except ValueError:
            assert min(B_ih, B_hh) < H + max(n, H)  # a gate block where rank 1 does not fit
            continue
        assert _count(model) == rec.stored((H, n), c, blocks=4) + rec.stored((H, H), c, blocks=4) <= want


def test_the_numbers_the_issue_names():
    """hl.prune and SparseLinear used to disagree: (64, 48) at 4x kept 768 and 672 values."""
    lin = _linear(64, 48)
    assert hl.prune(lin.weight.detach(), compression=4).nnz == 768
    assert hl.SparseLinear.from_linear(lin, compression=4).nnz == 768
    assert hl.SparseLinear.from_linear(lin, compression=4, count="lmf").nnz == 672  # the explicit option
    assert hl.factor.budget.prune_keep((64, 48), 4, count="equal") == 672  # the older names still work
    assert hl.factor.budget.prune_keep((64, 48), 4, count="floor") == 768
    L = layers_at_budget(lin.weight.detach(), compression=4)
    assert {k: v.n_params for k, v in L.items() if k != "dense"} == {"HMF": 668, "LMF": 672, "pruning (CSR)": 768}


def test_tradeoff_and_budget_helpers_never_exceed_the_budget():
    from hmf_lab.experiments.tradeoff import lmf_rank_at, tradeoff_table

    W = torch.randn(40, 24)
    t = tradeoff_table(W, compressions=(2, 3.5), time=False)
    for c, g in t.groupby("compression"):
        assert (g["params"] <= rules.value_budget((40, 24), c)).all()
        assert int(g[g["method"] == "pruning (CSR)"]["params"].iloc[0]) == rules.value_budget((40, 24), c)
    assert lmf_rank_at(64, 32, 32) == 1
    with pytest.raises(ValueError, match=r"params=63 stored values hold no LMF rank for shape \(32, 32\)"):
        lmf_rank_at(63, 32, 32)
    with pytest.raises(TypeError, match=r"layers_at_budget needs compression .* or both split and rank"):
        layers_at_budget(W, split=2)
    with pytest.raises(ValueError, match=r"split=30, rank=10 store .* allows at most"):
        layers_at_budget(W, split=30, rank=10, compression=4)
    assert rules.max_split((128, 64), 8) == 13
    with pytest.raises(ValueError, match=r"cannot be reached for shape \(4, 4\) by any split"):
        rules.max_split((4, 4), 3)
