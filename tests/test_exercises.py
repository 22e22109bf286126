"""Exercise checks pass right answers, fail wrong ones (with a hint), and wait for unanswered ones."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import hmf_lab as hl
from hmf_lab import exercises as ex


def test_synthetic_has_the_designed_spectrum():
    for kind in ("exp", "power", "flat"):
        W = ex.with_spectrum(40, 25, kind, decay=0.3, seed=3)
        assert W.shape == (40, 25) and W.dtype == torch.float32
        torch.testing.assert_close(torch.linalg.svdvals(W), ex.singular_values(25, kind, decay=0.3), atol=1e-5,
                                   rtol=1e-4)
    s = np.linspace(1, 0, 5)
    torch.testing.assert_close(torch.linalg.svdvals(ex.with_spectrum(5, 8, s)), torch.tensor(s, dtype=torch.float32),
                               atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(ex.with_spectrum(6, 6, seed=1), ex.with_spectrum(6, 6, seed=1))


def test_synthetic_errors():
    with pytest.raises(ValueError, match="kind must be one of"):
        ex.singular_values(4, "zipf")
    with pytest.raises(ValueError, match="count must be an int >= 1"):
        ex.singular_values(0)
    with pytest.raises(ValueError, match="spectrum must hold min"):
        ex.with_spectrum(4, 4, [1.0, 2.0])
    with pytest.raises(ValueError, match="m and n must be >= 1"):
        ex.with_spectrum(0, 4)


def test_old_name_synthetic_still_works_and_says_its_new_name():
    with pytest.warns(DeprecationWarning, match=r"use hl.synthetic.with_spectrum"):
        old = ex.synthetic
    assert old is ex.with_spectrum is hl.synthetic.with_spectrum
    with pytest.raises(AttributeError, match="has no attribute 'nope'"):
        ex.nope


def test_quick_reads_the_environment(monkeypatch):
    monkeypatch.setenv("HMF_LAB_QUICK", "1")
    assert ex.quick()
    monkeypatch.setenv("HMF_LAB_QUICK", "0")
    assert not ex.quick()


def test_unanswered_is_not_a_failure(capsys):
    assert ex.check_break_even_rank(10, 10, None) is False
    assert "Not answered yet" in capsys.readouterr().out


def test_break_even_rank():
    m, n = 300, 200
    r = (m * n - 1) // (m + n)
    assert r * (m + n) < m * n <= (r + 1) * (m + n)
    assert ex.check_break_even_rank(m, n, r)
    assert ex.check_break_even_rank(m, n, np.int64(r))
    with pytest.raises(ex.ExerciseError, match="a larger rank still saves"):
        ex.check_break_even_rank(m, n, r - 1)
    with pytest.raises(ex.ExerciseError, match="stores at least as many values"):
        ex.check_break_even_rank(m, n, r + 1)
    with pytest.raises(ex.ExerciseError, match="should be a number"):
        ex.check_break_even_rank(m, n, "120")


def test_eckart_young():
    W = ex.with_spectrum(30, 20, "exp", decay=0.2)
    truth = hl.relative_error(W, hl.lmf(W, rank=6))
    assert ex.check_eckart_young(W, 6, truth)
    assert ex.check_eckart_young(W, 6, torch.tensor(truth))
    with pytest.raises(ex.ExerciseError, match="Eckart-Young"):
        ex.check_eckart_young(W, 6, truth ** 2)  # forgot the square root


def test_hmf_params():
    f = hl.hmf(torch.randn(40, 30), split=5, rank=7)
    assert ex.check_hmf_params(40, 30, 5, 7, f.n_params)
    with pytest.raises(ex.ExerciseError, match="count the dense rows"):
        ex.check_hmf_params(40, 30, 5, 7, 7 * (40 + 30))


def test_max_rank():
    b = hl.budget((256, 128), 4)
    truth = int(b["rank_bound"].max())
    assert ex.check_max_rank((256, 128), 4, truth)
    with pytest.raises(ex.ExerciseError, match="highest rank HMF reaches"):
        ex.check_max_rank((256, 128), 4, int(b["rank"].iloc[0]))  # the LMF rank


def test_csr_bytes():
    W = torch.randn(20, 30)
    p = hl.prune(W, compression=4)
    assert ex.check_csr_bytes(20, p.nnz, p.n_bytes)  # agrees with the library's own count
    with pytest.raises(ex.ExerciseError, match="row pointers"):
        ex.check_csr_bytes(20, p.nnz, p.nnz * 4)


def test_best_at_budget():
    W = ex.with_spectrum(32, 32, "exp", decay=0.15)
    cache = hl.HMFCache(W)
    b = hl.budget((32, 32), 4, step=1)
    errs = [cache.error(k, r) for k, r in zip(b["split"], b["rank"])]
    i = int(np.argmin(errs))
    k, r = int(b["split"].iloc[i]), int(b["rank"].iloc[i])
    assert ex.check_best_at_budget(W, 4, k, r, cache=cache, step=1)
    worst = int(np.argmax(errs))
    if errs[worst] > errs[i] * 1.05:
        with pytest.raises(ex.ExerciseError, match="above the best"):
            ex.check_best_at_budget(W, 4, int(b["split"].iloc[worst]), int(b["rank"].iloc[worst]), step=1)
    with pytest.raises(ex.ExerciseError, match="over the budget"):
        ex.check_best_at_budget(W, 4, k, r + 5)
    with pytest.raises(ex.ExerciseError, match="is not a valid HMF"):
        ex.check_best_at_budget(W, 4, 40, 1)
    assert not math.isnan(errs[i])
