"""The optimal dense rows of a small matrix, by exhaustive search: the yardstick for split heuristics.

For every ``split``-subset S of the m rows, the HMF error with S dense is the tail energy of the
other rows at rank r (Eckart–Young), read off the eigenvalues of the Gram block ``K[~S, ~S]`` with
``K = A A^T`` (m x m, float64): a batch of tiny symmetric eigenproblems, so all ``C(m, k)`` subsets
of a 16-row matrix take well under a second. With calibration inputs X the objective is the output
error of HMF's whitened fit, i.e. ``A = W R`` with ``R R^T = X^T X / N``.

>>> import torch, hmf_lab as hl
>>> W = hl.synthetic.loud_rows(12, 10, n_loud=2, rank=2, seed=0)
>>> best = hl.oracle(W, split=2, rank=2)
>>> best.n_subsets, round(best.gap(hl.hmf(W, 2, 2, heuristic="greedy")), 6)
(66, 0.0)
"""
from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np
import torch

from hmf_lab.factor._validation import as_inputs, as_matrix, check_rank, check_split

__all__ = ["oracle", "OracleResult", "MAX_ROWS"]  # check_rows: see hmf_lab.course.exercises

#: exhaustive search is offered up to this many rows (C(16, 8) = 12870 subsets)
MAX_ROWS = 16


@dataclass(frozen=True, eq=False)
class OracleResult:
    """Every split-subset's error, sorted; ``rows``/``error`` are the optimum."""

    rows: torch.Tensor  # (k,) sorted optimal dense rows
    error: float  # relative error of the optimum
    errors: np.ndarray  # (C(m, k),) relative error of every subset, ascending
    subsets: np.ndarray  # (C(m, k), k) the subsets in the same order
    split: int
    rank: int
    objective: str  # "weight" or "output"

    @property
    def n_subsets(self) -> int:
        return int(self.errors.size)

    def error_of(self, rows) -> float:
        """The relative error (same objective) of a given row set."""
        rows = np.sort(np.asarray(rows.tolist() if isinstance(rows, torch.Tensor) else list(rows), dtype=np.int64))
        if rows.size != self.split:
            raise ValueError(f"rows must hold split={self.split} indices, got {rows.size}")
        hit = np.nonzero((self.subsets == rows[None, :]).all(1))[0]
        if hit.size == 0:
            raise ValueError(f"rows {rows.tolist()} are not a valid subset (distinct indices in [0, m-1])")
        return float(self.errors[hit[0]])

    def gap(self, f) -> float:
        """``error(rows of f) / optimum - 1`` (0 = optimal); ``f`` is an HMF result or a row set."""
        e = self.error_of(f.rows if hasattr(f, "rows") else f)
        if self.error == 0.0:
            return 0.0 if e == 0.0 else math.inf
        return e / self.error - 1.0

    def percentile(self, f) -> float:
        """Share of all subsets strictly better than this one, in [0, 1] (0 = as good as the optimum)."""
        e = self.error_of(f.rows if hasattr(f, "rows") else f)
        return float(np.searchsorted(self.errors, e * (1 - 1e-9), side="left") / self.n_subsets)


def oracle(W, split, rank, X=None, *, batch: int = 4096) -> OracleResult:
    """The best ``split`` dense rows of W (m <= 16) at rank ``rank`` by exhaustive search.

    Objective: the weight error ``||W - W_hat||_F / ||W||_F`` with the SVD fit; with X, the output error
    ``||X W^T - X W_hat^T||_F / ||X W^T||_F`` with the whitened fit (what ``hl.hmf(..., X=X,
    fit="whitened")`` does). Raises ``ValueError`` above :data:`MAX_ROWS` rows.

    >>> import torch
    >>> W = torch.diag(torch.tensor([5., 4., 3., 2., 1.]))
    >>> r = oracle(W, split=2, rank=1)
    >>> r.rows.tolist(), r.n_subsets
    ([0, 1], 10)
    """
    W = as_matrix(W)
    m, n = W.shape
    if m > MAX_ROWS:
        raise ValueError(
            f"oracle searches all row subsets, so it needs m <= {MAX_ROWS} rows, got m = {m}; "
            f"use a smaller matrix (e.g. W[:{MAX_ROWS}]) or compare heuristics with hl.leaderboard"
        )
    k = check_split(split, m)
    r = check_rank(rank, m, n, k)
    A = W.double()
    if X is not None:
        from hmf_lab.factor.heuristics import whitening

        X = as_inputs(X, n, name="X", like=W)
        A = A @ whitening(X)
    K = A @ A.T  # (m, m)
    total = float(torch.trace(K))
    subsets = np.array(list(itertools.combinations(range(m), k)), dtype=np.int64).reshape(-1, k)
    rest = np.array([sorted(set(range(m)) - set(s)) for s in subsets], dtype=np.int64).reshape(len(subsets), m - k)
    tails = np.empty(len(subsets))
    for lo in range(0, len(subsets), batch):
        idx = torch.from_numpy(rest[lo:lo + batch])  # (B, m-k)
        if m - k == 0:
            tails[lo:lo + batch] = 0.0
            continue
        blocks = K[idx[:, :, None], idx[:, None, :]]  # (B, m-k, m-k)
        ev = torch.linalg.eigvalsh(blocks).clamp_min(0.0)  # ascending
        tails[lo:lo + batch] = ev[:, : max(m - k - r, 0)].sum(1).numpy()
    errors = np.sqrt(np.maximum(tails, 0.0) / total) if total > 0 else np.zeros_like(tails)
    order = np.argsort(errors, kind="stable")
    errors, subsets = errors[order], subsets[order]
    return OracleResult(rows=torch.from_numpy(subsets[0].copy()), error=float(errors[0]), errors=errors,
                        subsets=subsets, split=k, rank=r, objective="weight" if X is None else "output")
