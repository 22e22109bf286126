"""Core math: HMF, LMF, pruning, relative error, budget and sweep."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import hmf_lab as hl


def randn(m, n, dtype=torch.float64, seed=0):
    return torch.randn(m, n, dtype=dtype, generator=torch.Generator().manual_seed(seed))


def eckart_young(A: np.ndarray, r: int) -> float:
    """||A - A_r||_F from numpy's singular values."""
    s = np.linalg.svd(A, compute_uv=False)
    return float(np.sqrt(np.sum(s[r:] ** 2)))


def test_hmf_split_zero_equals_lmf():
    W = randn(40, 30)
    f, g = hl.hmf(W, split=0, rank=7), hl.lmf(W, rank=7)
    torch.testing.assert_close(f.to_dense(), g.to_dense())
    assert f.n_params == g.n_params == 7 * (40 + 30)
    assert f.compression == pytest.approx(g.compression)


def test_hmf_split_m_is_exact():
    W = randn(12, 20)
    f = hl.hmf(W, split=12, rank=0)
    assert torch.equal(f.to_dense(), W)
    assert hl.relative_error(W, f) == 0.0
    assert f.n_params == 12 * 20 and f.compression == 1.0


def test_dense_rows_are_kept_exactly_and_lower_block_is_eckart_young():
    W = randn(50, 35, seed=3)
    rows = [1, 7, 20, 49]
    f = hl.hmf(W, split=4, rank=5, heuristic=rows)
    W_hat = f.to_dense()
    assert f.rows.tolist() == rows
    assert torch.equal(W_hat[rows], W[rows])
    lower = np.delete(W.numpy(), rows, axis=0)
    got = torch.linalg.matrix_norm(W - W_hat).item()
    assert got == pytest.approx(eckart_young(lower, 5), rel=1e-5)


def test_top_heuristic_keeps_first_rows():
    W = randn(10, 8)
    f = hl.hmf(W, split=3, rank=2)
    assert f.rows.tolist() == [0, 1, 2] and f.is_top
    assert f.lower_rows.tolist() == list(range(3, 10))


def test_call_matches_dense_product_for_batched_inputs():
    W = randn(24, 16)
    x = randn(3 * 5, 16, seed=1).reshape(3, 5, 16)
    for f in (hl.hmf(W, 5, 4, heuristic=[0, 3, 8, 9, 23]), hl.lmf(W, 6), hl.prune(W, 3)):
        torch.testing.assert_close(f(x), x @ f.to_dense().T)


def test_numpy_input_accepted():
    W = randn(9, 7).numpy()
    f = hl.hmf(W, 2, 3)
    assert f.to_dense().dtype == torch.float64
    assert hl.relative_error(W, f) < 1


def test_prune_keeps_largest_magnitudes_and_reports_bytes():
    W = randn(32, 32, seed=5)
    p = hl.prune(W, compression=4)
    assert p.nnz == 256 and p.n_params == 256 and p.compression == 4.0
    kept = W.abs()[p.mask]
    dropped = W.abs()[~p.mask]
    assert kept.min() >= dropped.max()
    assert torch.equal(p.to_dense(), W * p.mask)
    # float64 values (8 B) + the kernel's int32 column indices (4 B) per entry + (m+1) int32 row pointers
    assert p.n_bytes == 256 * 12 + 33 * 4 == hl.timing.weight_bytes(hl.SparseLinear.from_csr(p.weight).double())
    assert p.byte_compression == pytest.approx(32 * 32 * 8 / p.n_bytes)
    assert p.byte_compression < p.compression  # index overhead is real


def test_prune_with_exact_zeros_keeps_budget():
    W = torch.zeros(4, 4)
    W[0, 0] = 1.0
    p = hl.prune(W, compression=2)
    assert p.nnz == 8


def test_relative_error_values():
    W = randn(6, 6)
    assert hl.relative_error(W, W.clone()) == 0.0
    assert hl.relative_error(W, torch.zeros_like(W)) == pytest.approx(1.0)
    assert hl.relative_error(torch.zeros(2, 2), torch.zeros(2, 2)) == 0.0
    assert math.isinf(hl.relative_error(torch.zeros(2, 2), torch.ones(2, 2)))


def test_budget_pairs_fit_and_are_maximal():
    m, n, c = 96, 64, 3.0
    df = hl.budget((m, n), compression=c)
    B = m * n / c
    assert (df["params"] <= B + 1e-9).all()
    for k, r in zip(df["split"], df["rank"]):
        if r < min(m - k, n):  # one more rank would break the budget
            assert hl.hmf_params(m, n, k, r + 1) > B
    assert df["split"].iloc[0] == 0
    assert df["rank"].iloc[0] == int(B // (m + n))


def test_budget_compression_one_includes_dense():
    df = hl.budget((8, 8), compression=1)
    assert (df["split"] == 8).any() and int(df.loc[df["split"] == 8, "rank"].iloc[0]) == 0


def test_sweep_matches_direct_hmf_and_is_tidy():
    W = randn(48, 40, seed=2)
    df = hl.sweep(W, splits=[0, 8, 48], ranks=[0, 1, 5, 40])
    assert set(df.columns) >= {"split", "rank", "params", "compression", "error"}
    for _, row in df.iterrows():
        k, r = int(row["split"]), int(row["rank"])
        assert row["error"] == pytest.approx(hl.relative_error(W, hl.hmf(W, k, r)), rel=1e-6, abs=1e-9)
    assert df[(df["split"] == 48)]["rank"].tolist() == [0]
    assert 40 in df[df["split"] == 8]["rank"].tolist()
    assert 40 in df[df["split"] == 0]["rank"].tolist()


def test_sweep_reuses_cached_svd():
    W = randn(30, 20)
    cache = hl.HMFCache(W)
    hl.sweep(W, splits=[0, 10], cache=cache)
    assert len(cache._spectra) == 2
    hl.sweep(W, splits=[0, 10], cache=cache)
    assert len(cache._spectra) == 2


def test_cache_hmf_equals_hmf():
    W = randn(20, 15)
    cache = hl.HMFCache(W)
    a, b = cache.hmf(4, 3, heuristic="row_norm"), hl.hmf(W, 4, 3, heuristic="row_norm")
    torch.testing.assert_close(a.to_dense(), b.to_dense())
    assert cache.error(4, 3, "row_norm") == pytest.approx(hl.relative_error(W, b), rel=1e-9)


@pytest.mark.parametrize("size", [64, pytest.param(256, marks=pytest.mark.slow)])
def test_sweep_grid_shape_at_split_step_16(size):
    """The full size x size grid (splits every 16, every rank) has one row per feasible (split, rank).

    The sweep's run time at 1024 is measured in benchmarks/sweep_speed.py, not asserted here.
    """
    W = torch.randn(size, size)
    df = hl.sweep(W, splits=range(0, size + 1, 16))
    expected = sum(min(size - k, size) for k in range(0, size, 16)) + 1  # + split = m at rank 0
    assert len(df) == expected
    assert df.groupby("split")["rank"].max().loc[16] == size - 16


def test_heuristic_callable_and_random_seeded():
    W = randn(20, 10)
    f = hl.hmf(W, 3, 2, heuristic=lambda W, split, *, rank, X=None: torch.tensor([19, 0, 5]))
    assert f.rows.tolist() == [0, 5, 19]
    a, b = hl.hmf(W, 5, 2, heuristic="random"), hl.hmf(W, 5, 2, heuristic="random")
    assert torch.equal(a.rows, b.rows)


def test_row_norm_picks_loud_rows():
    W = randn(20, 10) * 0.01
    W[[3, 11]] *= 1000
    assert hl.hmf(W, 2, 1, heuristic="row_norm").rows.tolist() == [3, 11]


def test_register_heuristic_roundtrip():
    @hl.register_heuristic("_test_last")
    def last(W, split, *, rank, X=None):
        return torch.arange(W.shape[0] - split, W.shape[0])

    try:
        assert hl.HEURISTICS["_test_last"] is last
        assert hl.hmf(randn(6, 4), 2, 1, heuristic="_test_last").rows.tolist() == [4, 5]
        with pytest.raises(ValueError, match="already registered"):
            hl.register_heuristic("_test_last")(last)
    finally:
        del hl.HEURISTICS["_test_last"]


def test_hmf_inside_inference_mode():
    with torch.inference_mode():
        W = torch.randn(12, 9)
        for h in ("top", "row_norm", [0, 4, 11]):
            f = hl.hmf(W, 3, 2, heuristic=h)
            torch.testing.assert_close(f.to_dense()[f.rows], W[f.rows])
