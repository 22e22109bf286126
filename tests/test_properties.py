"""Property tests over random shapes and dtypes (hypothesis)."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import example, given
from hypothesis import strategies as st

import hmf_lab as hl

DTYPES = st.sampled_from([torch.float32, torch.float64])
TOL = {torch.float32: 1e-4, torch.float64: 1e-9}


@st.composite
def matrices(draw, max_side=24):
    m = draw(st.integers(1, max_side))
    n = draw(st.integers(1, max_side))
    dtype = draw(DTYPES)
    seed = draw(st.integers(0, 2**31 - 1))
    W = torch.randn(m, n, dtype=torch.float64, generator=torch.Generator().manual_seed(seed)).to(dtype)
    return W


@st.composite
def matrix_split(draw):
    W = draw(matrices())
    m, n = W.shape
    k = draw(st.integers(0, m - 1))
    return W, k


# the hypothesis profile (max_examples, deadline) is set in tests/conftest.py


@given(matrix_split())
def test_error_never_increases_with_rank(args):
    W, k = args
    m, n = W.shape
    errs = [hl.relative_error(W, hl.hmf(W, k, r)) for r in range(1, min(m - k, n) + 1)]
    tol = TOL[W.dtype]
    assert all(b <= a + tol for a, b in zip(errs, errs[1:]))
    assert errs[-1] <= 10 * tol  # full rank of the lower block is exact


@given(matrices())
def test_split_m_is_exact(W):
    f = hl.hmf(W, W.shape[0], 0)
    assert torch.equal(f.to_dense(), W)


@given(matrix_split(), st.data())
def test_n_params_formula_and_shapes(args, data):
    W, k = args
    m, n = W.shape
    r = data.draw(st.integers(1, min(m - k, n)))
    f = hl.hmf(W, k, r)
    assert f.n_params == k * n + r * (m - k) + r * n
    assert f.compression == pytest.approx(m * n / f.n_params)
    assert f.rank_bound == min(k + r, m, n)
    assert tuple(f.dense.shape) == (k, n) and tuple(f.U.shape) == (m - k, r) and tuple(f.V.shape) == (r, n)
    assert int(torch.linalg.matrix_rank(f.to_dense(), rtol=1e-4 if W.dtype == torch.float32 else 1e-10)) <= f.rank_bound
    g = hl.lmf(W, min(r, m, n))
    assert g.n_params == g.rank * (m + n)


@given(matrix_split(), st.data())
def test_lower_block_error_is_eckart_young_optimum(args, data):
    W, k = args
    m, n = W.shape
    r = data.draw(st.integers(1, min(m - k, n)))
    rows = data.draw(st.permutations(range(m)))[:k]
    f = hl.hmf(W, k, r, heuristic=list(rows))
    lower = np.delete(W.double().numpy(), sorted(rows), axis=0)
    s = np.linalg.svd(lower, compute_uv=False)
    optimum = float(np.sqrt(np.sum(s[r:] ** 2)))
    got = torch.linalg.matrix_norm((W - f.to_dense()).double()).item()
    scale = float(np.linalg.norm(W.double().numpy()))
    # relative 1e-5 of the optimum, with an absolute floor at the dtype's precision when it is ~0
    assert abs(got - optimum) <= 1e-5 * optimum + TOL[W.dtype] * scale
    assert torch.equal(f.to_dense()[f.rows], W[f.rows])


@given(matrix_split(), st.data())
def test_split_zero_equals_lmf(args, data):
    W, _ = args
    m, n = W.shape
    r = data.draw(st.integers(1, min(m, n)))
    torch.testing.assert_close(hl.hmf(W, 0, r).to_dense(), hl.lmf(W, r).to_dense())


@given(matrix_split(), st.integers(1, 4), st.data())
def test_call_equals_dense_product(args, batch, data):
    W, k = args
    m, n = W.shape
    r = data.draw(st.integers(1, min(m - k, n)))
    x = torch.randn(batch, n, dtype=W.dtype)
    for f in (hl.hmf(W, k, r, heuristic="row_norm"), hl.lmf(W, min(r, m, n))):
        torch.testing.assert_close(f(x), x @ f.to_dense().T, rtol=1e-4, atol=1e-4)


@given(matrices(), st.floats(1.0, 8.0))
@example(torch.tensor([[1.5410, -0.2934]]), 1.0000000000000002)  # m*n/c = 1.9999999999999996: the guard keeps 2
def test_prune_budget(W, c):
    m, n = W.shape
    if int(m * n / c) < 1:
        return
    p = hl.prune(W, c)
    # the kit's one budget rule: floor(m*n / c) with a relative 1e-12 round-off guard (core.value_budget)
    assert p.nnz == hl.factor.budget.value_budget(W.shape, c)
    assert int(np.floor(m * n / c)) <= p.nnz <= m * n / c * (1 + 1e-12)
    assert p.compression >= c - 1e-9
    x = torch.randn(3, n, dtype=W.dtype)
    torch.testing.assert_close(p(x), x @ p.to_dense().T, rtol=1e-4, atol=1e-4)


@given(st.integers(2, 64), st.integers(2, 64), st.floats(1.0, 6.0))
def test_budget_pairs_are_feasible(m, n, c):
    try:
        df = hl.budget((m, n), c)
    except ValueError:
        assert m * n / c < m + n  # only when not even (0, 1) fits
        return
    assert (df["params"] <= m * n / c + 1e-9).all()
    assert (df["rank"] >= 0).all() and (df["split"] <= m).all()
