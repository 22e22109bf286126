"""The exhaustive oracle: correct optimum, error paths, and the exercise check."""
from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

import hmf_lab as hl
from hmf_lab.course.exercises import check_rows
from hmf_lab.factor.oracle import MAX_ROWS


def test_oracle_matches_brute_force_through_hmf():
    W = hl.synthetic.heavy_tailed(7, 5, seed=3, dtype=torch.float64)
    best = hl.oracle(W, split=2, rank=2)
    errs = {S: hl.relative_error(W, hl.hmf(W, 2, 2, heuristic=list(S))) for S in itertools.combinations(range(7), 2)}
    assert best.n_subsets == len(errs) == 21
    assert best.error == pytest.approx(min(errs.values()), rel=1e-9)
    assert tuple(best.rows.tolist()) == min(errs, key=errs.get)
    for S, e in errs.items():
        assert best.error_of(S) == pytest.approx(e, rel=1e-7, abs=1e-12)
    assert np.all(np.diff(best.errors) >= 0)


def test_oracle_output_objective_matches_whitened_hmf():
    W = hl.synthetic.heavy_tailed(8, 6, seed=0, dtype=torch.float64)
    X = hl.synthetic.concentrated_inputs(200, 6, directions=3, seed=0, dtype=torch.float64)
    best = hl.oracle(W, 2, 2, X=X)
    assert best.objective == "output"
    for S in [(0, 1), tuple(best.rows.tolist()), (3, 7)]:
        f = hl.hmf(W, 2, 2, heuristic=list(S), X=X, fit="whitened")
        assert best.error_of(S) == pytest.approx(hl.output_error(W, f, X), rel=1e-4)
    act = hl.hmf(W, 2, 2, heuristic="activation", X=X)
    assert best.gap(act) >= 0 and 0 <= best.percentile(act) <= 1


def test_gap_and_percentile():
    W = torch.diag(torch.tensor([5.0, 4.0, 3.0, 2.0, 1.0]))
    best = hl.oracle(W, 2, 1)
    assert best.rows.tolist() == [0, 1] and best.gap([0, 1]) == 0.0 and best.percentile([0, 1]) == 0.0
    assert best.gap(hl.hmf(W, 2, 1, heuristic=[3, 4])) > 1.0 and best.percentile([3, 4]) == 0.9


def test_split_m_and_zero_error():
    W = torch.randn(6, 4)
    assert hl.oracle(W, 6, 0).error == 0.0
    assert hl.oracle(torch.zeros(5, 3), 1, 1).error == 0.0


def test_oracle_too_many_rows():
    with pytest.raises(ValueError, match=rf"oracle searches all row subsets, so it needs m <= {MAX_ROWS} rows, got m = 17"):
        hl.oracle(torch.randn(17, 4), 2, 1)


def test_oracle_validates_split_and_rank():
    with pytest.raises(ValueError, match=r"split must be an int in \[0, m\]=\[0, 6\], got 7"):
        hl.oracle(torch.randn(6, 4), 7, 1)
    with pytest.raises(ValueError, match=r"rank must be an int in \[1, min\(m-split, n\)\]"):
        hl.oracle(torch.randn(6, 4), 2, 9)


def test_error_of_bad_rows():
    best = hl.oracle(torch.randn(6, 4), 2, 1)
    with pytest.raises(ValueError, match=r"rows must hold split=2 indices, got 3"):
        best.error_of([0, 1, 2])
    with pytest.raises(ValueError, match=r"rows \[1, 1\] are not a valid subset"):
        best.error_of([1, 1])


def test_check_rows_passes_on_optimum_and_fails_on_wrong_answer(capsys):
    W = hl.synthetic.loud_rows(10, 8, n_loud=2, rank=2, seed=4)
    best = hl.oracle(W, 2, 2)
    assert check_rows(W, 2, 2, best.rows) is True and "PASS" in capsys.readouterr().out
    assert check_rows(W, 2, 2, None) is False and "Not answered yet" in capsys.readouterr().out
    # wrong answers print FAIL with a hint and return False: a check never raises
    assert check_rows(W, 2, 2, best.subsets[-1]) is False
    assert "subsets are better" in capsys.readouterr().out
    assert check_rows(W, 2, 2, [1, 1]) is False
    assert "the answer should be 2 distinct row indices in [0, 9], got [1, 1]" in capsys.readouterr().out
    assert check_rows(W, 2, 2, "ab") is False
    assert "the answer should be 2 distinct row indices" in capsys.readouterr().out
