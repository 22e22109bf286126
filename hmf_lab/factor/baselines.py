"""Modern post-training baselines as pure functions: activation-aware LMF, Wanda pruning, OATS sparse + low rank.

Each needs calibration inputs ``X`` (N, n) (the rows the layer sees) and stores at most the value budget
``floor(m*n / compression)`` (:func:`hmf_lab.factor.budget.value_budget`; sparse indices counted apart, in
bytes). Without ``X`` each raises a ``ValueError`` that names the data-free counterpart.

- :func:`aa_lmf` (ASVD / SVD-LLM style): rank-r ``U V`` minimising the output error ``||X W^T - X (U V)^T||_F``:
  with the regularised Cholesky factor ``R R^T = X^T X / N + lam I`` (:func:`~hmf_lab.factor.heuristics.whitening`)
  ``U`` = top-r left singular vectors of ``W R``, ``V = U^T W`` (:func:`~hmf_lab.factor.heuristics.whitened_fit`,
  the one home of the whitened fit). Rank: the largest that fits the budget, as for LMF.
- :func:`wanda` (Sun et al., 2023): score ``|W_ij| * ||X_j||_2``; keep, **per output row**, the same count
  ``floor(B / m)`` of top-scoring entries; the ``B mod m`` remaining values go one each to the rows whose
  next-best score is largest (ties: lower row index). Result: a :class:`~hmf_lab.factor.core.PruneResult` (CSR).
- :func:`oats` (Zhang & Papyan, ICLR 2025): scale the columns by ``D = sqrt(diag(X^T X / N))`` (clamped away from
  0), then alternate ``iters`` times ``L = SVD_r(W D - S)``, ``S = top-s per row of (W D - L)`` (row-wise hard
  threshold, the Wanda structure OATS uses; ``s`` spread over rows as :func:`wanda` does); unscale:
  ``W_hat = (L + S) D^-1``. The budget is split by a fixed ``rank_ratio`` (default 0.25, the fraction of
  the value budget spent on the low-rank part): ``r = floor(rank_ratio * B / (m + n))``, ``s = B - r (m + n)``.
  At compression 1 (``B = m*n``) the rank is 0 and S keeps every entry: exact.

>>> import torch, hmf_lab as hl
>>> from hmf_lab.factor.baselines import aa_lmf, wanda, oats
>>> W, X = torch.randn(12, 10), torch.randn(64, 10)
>>> [f.n_params <= 12 * 10 // 3 for f in (aa_lmf(W, X, compression=3), wanda(W, X, compression=3),
...                                       oats(W, X, compression=3))]
[True, True, True]
"""
from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import torch

from hmf_lab.factor._validation import as_calibration, as_int, as_inputs, as_matrix, check_compression, check_rank
from hmf_lab.factor.budget import csr_bytes, csr_index_bytes, lmf_params, lmf_rank, value_budget
from hmf_lab.factor.core import LMFResult, PruneResult, _LowRank, _truncated
from hmf_lab.factor.heuristics import whitened_fit

__all__ = ["aa_lmf", "wanda", "oats", "row_counts", "oats_split", "SparseLowRankResult", "OATS_RANK_RATIO",
           "OATS_ITERS"]

#: OATS' default share of the value budget spent on the low-rank part (its "rank ratio")
OATS_RANK_RATIO = 0.25
#: alternating iterations of :func:`oats` (OATS runs tens; the error has flattened by 20 on our layers)
OATS_ITERS = 20


def _need_X(X, who: str, plain: str):
    if X is None:
        raise ValueError(f"{who} is activation-aware and needs calibration inputs X of shape (N, n) (the rows the "
                         f"layer sees): pass X=..., or use the data-free {plain!r}")


def _budget(shape, compression, nnz=None) -> int:
    m, n = shape
    if nnz is not None:
        B = int(nnz)
    else:
        check_compression(compression)
        B = value_budget((m, n), compression)
    if not 1 <= B <= m * n:
        raise ValueError(f"compression {compression!r} leaves {B} stored values for shape ({m}, {n}); it must keep "
                         f"between 1 and m*n = {m * n}")
    return B


def row_counts(scores: torch.Tensor, budget: int) -> torch.Tensor:
    """How many entries each row keeps: ``floor(B / m)`` each, the ``B mod m`` extra values one each to the rows
    whose next-best score (the ``floor(B/m)+1``-th largest) is largest (ties: lower row). ``scores`` (m, n).

    >>> row_counts(torch.tensor([[3., 2., 1.], [9., 8., 0.]]), 3).tolist()
    [1, 2]
    """
    m, n = scores.shape
    base = min(budget // m, n)
    counts = torch.full((m,), base, dtype=torch.long)
    extra = budget - base * m
    if extra > 0 and base < n:
        nxt = torch.sort(scores, dim=1, descending=True, stable=True).values[:, base]  # (m,)
        order = torch.sort(nxt, descending=True, stable=True).indices[:extra]
        counts[order] += 1
    return counts


def _row_mask(scores: torch.Tensor, counts: torch.Tensor) -> torch.Tensor:
    """Bool (m, n): the ``counts[i]`` largest scores of each row i (stable: ties to the lower column)."""
    m, n = scores.shape
    rank = torch.empty_like(scores, dtype=torch.long)
    order = torch.sort(scores, dim=1, descending=True, stable=True).indices
    rank.scatter_(1, order, torch.arange(n).expand(m, n).contiguous())
    return rank < counts[:, None]


def _csr(W: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    m, n = W.shape
    idx = mask.nonzero()  # row-major: CSR order
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Sparse CSR tensor support")
        return torch.sparse_coo_tensor(idx.T, W[mask], (m, n), check_invariants=True).coalesce().to_sparse_csr()


def _input_norms(X: torch.Tensor) -> torch.Tensor:
    """``sqrt(mean_N x_j^2)`` per input channel, float64 (n,)."""
    return (X.double() ** 2).mean(0).sqrt()


# --------------------------------------------------------------------------- activation-aware LMF


def aa_lmf(W, X, rank=None, *, compression=None) -> LMFResult:
    """Activation-aware LMF: the rank-r ``U V`` of least output error on calibration inputs X (ASVD / SVD-LLM).

    ``rank`` or ``compression`` (the largest rank within ``floor(m*n / c)``, as LMF). Exact at full rank when
    X spans the inputs. Returns an :class:`~hmf_lab.factor.core.LMFResult` (``U`` orthonormal, ``V = U^T W``).

    >>> import torch
    >>> W = torch.randn(8, 6, dtype=torch.float64); X = torch.randn(100, 6, dtype=torch.float64)
    >>> torch.allclose(aa_lmf(W, X, rank=6).to_dense(), W)
    True
    """
    W = as_matrix(W)
    m, n = W.shape
    _need_X(X, "aa_lmf", "lmf")
    X = as_calibration(X, n, like=W)
    r = lmf_rank((m, n), compression, rank) if rank is None else check_rank(rank, m, n, 0)
    if r == 0:
        return LMFResult(U=W.new_zeros(m, 0), V=W.new_zeros(0, n))
    U, V = whitened_fit(W, X, r)
    return LMFResult(U=U, V=V)


# --------------------------------------------------------------------------- Wanda


def wanda(W, X, compression=None, *, nnz=None) -> PruneResult:
    """Wanda pruning: keep the entries of largest ``|W_ij| * ||X_j||_2``, the same count per output row.

    Keeps exactly ``floor(m*n / compression)`` (or ``nnz``) values: ``floor(B/m)`` per row, the remainder one
    each to the rows with the best next score (:func:`row_counts`). Returns a CSR
    :class:`~hmf_lab.factor.core.PruneResult` (``.mask``, ``.n_bytes`` with the indices).

    >>> import torch
    >>> W = torch.ones(2, 4); X = torch.ones(10, 4); X[:, 3] = 100.0
    >>> wanda(W, X, compression=4).mask.tolist()
    [[False, False, False, True], [False, False, False, True]]
    """
    W = as_matrix(W).contiguous()
    m, n = W.shape
    _need_X(X, "wanda", "prune")
    X = as_calibration(X, n, like=W)
    B = _budget((m, n), compression, nnz)
    scores = W.double().abs() * _input_norms(X)[None, :]
    mask = _row_mask(scores, row_counts(scores, B))
    return PruneResult(weight=_csr(W, mask), mask=mask)


# --------------------------------------------------------------------------- OATS: sparse + low rank


@dataclass(frozen=True, eq=False)
class SparseLowRankResult(_LowRank):
    """``W_hat = U V + S``: rank-r ``U`` (m, r), ``V`` (r, n) and a sparse CSR ``S`` (m, n) (all unscaled)."""

    U: torch.Tensor
    V: torch.Tensor
    sparse: torch.Tensor  # (m, n) sparse CSR
    mask: torch.Tensor  # (m, n) bool: where S stores a value

    @property
    def shape(self) -> tuple[int, int]:
        return tuple(self.sparse.shape)

    @property
    def nnz(self) -> int:
        return int(self.sparse.values().numel())

    @property
    def n_params(self) -> int:
        """Stored values: ``r*(m+n) + nnz`` (CSR indices not counted: see :attr:`n_bytes`)."""
        return self.U.numel() + self.V.numel() + self.nnz

    @property
    def n_bytes(self) -> int:
        """Bytes: the factors' values plus the CSR bytes of S (values, int32 column indices, row pointers)."""
        e = self.U.element_size()
        return (self.U.numel() + self.V.numel()) * e + csr_bytes(self.shape[0], self.nnz, e,
                                                                 csr_index_bytes(self.nnz))

    @property
    def rank_bound(self) -> int:
        return min(self.rank + self.nnz, *self.shape)

    def to_dense(self) -> torch.Tensor:
        return self.U @ self.V + self.sparse.to_dense()

    def __call__(self, x) -> torch.Tensor:
        """``x @ W_hat.T`` without forming W_hat: two thin GEMMs plus the CSR kernel. ``x``: (..., n)."""
        m, n = self.shape
        x = as_inputs(x, n, like=self.V)
        lead = x.shape[:-1]
        x2 = x.reshape(-1, n)
        y = (x2 @ self.V.T) @ self.U.T + (self.sparse @ x2.T).T
        return y.reshape(*lead, m)


def oats_split(shape, compression, rank_ratio: float = OATS_RANK_RATIO) -> tuple[int, int]:
    """OATS' (rank, nnz) at ``compression``: ``r = floor(rank_ratio * B / (m+n))`` (at most min(m, n)),
    ``s = B - r*(m+n)``, with ``B = floor(m*n / c)``; compression 1 gives (0, m*n) (exact).

    >>> oats_split((64, 64), 4), oats_split((64, 64), 1)
    ((2, 768), (0, 4096))
    """
    m, n = shape
    if not 0.0 <= float(rank_ratio) <= 1.0:
        raise ValueError(f"rank_ratio must be in [0, 1] (the share of the values spent on the low-rank part), "
                         f"got {rank_ratio!r}")
    B = _budget((m, n), compression)
    if B >= m * n:
        return 0, m * n
    r = min(int(math.floor(rank_ratio * B / (m + n))), m, n)
    s = B - lmf_params(m, n, r)
    if s < 1:  # a budget too small for any sparse value next to the rank: give one rank back
        r = max(r - 1, 0)
        s = B - lmf_params(m, n, r)
    return r, s


def oats(W, X, compression=None, *, rank_ratio: float = OATS_RANK_RATIO, iters: int = OATS_ITERS,
         rank=None, nnz=None) -> SparseLowRankResult:
    """Sparse + low rank in the OATS style: alternating thresholding on the second-moment-scaled weight.

    ``D = sqrt(diag(X^T X / N))`` (clamped at 1e-8 times its mean); ``A = W D``; from ``S = 0``, ``iters`` times:
    ``L = SVD_r(A - S)``, ``S = top-s per row of (A - L)`` (:func:`row_counts`); ``W_hat = (L + S) D^-1``.
    Size: :func:`oats_split` (or ``rank`` and ``nnz`` given together). Stored: ``r*(m+n) + s <= floor(m*n/c)``.

    >>> import torch
    >>> W = torch.randn(16, 12, dtype=torch.float64); X = torch.randn(50, 12, dtype=torch.float64)
    >>> f = oats(W, X, compression=1)
    >>> f.rank, f.nnz, torch.allclose(f.to_dense(), W)
    (0, 192, True)
    """
    W = as_matrix(W)
    m, n = W.shape
    _need_X(X, "oats", "lmf")
    X = as_calibration(X, n, like=W)
    if (rank is None) != (nnz is None):
        raise TypeError(f"oats takes rank and nnz together (or neither: compression with rank_ratio), got "
                        f"rank={rank!r}, nnz={nnz!r}")
    if rank is not None:
        r = as_int(rank, "rank")
        if not 0 <= r <= min(m, n):
            raise ValueError(f"rank must be an int in [0, min(m, n)]=[0, {min(m, n)}] for shape ({m}, {n}), got {r}")
        s = _budget((m, n), None, nnz)
    else:
        r, s = oats_split((m, n), compression, rank_ratio)
    if not isinstance(iters, int) or iters < 1:
        raise ValueError(f"iters must be an int >= 1, got {iters!r}")
    d = _input_norms(X)
    d = d.clamp_min(1e-8 * float(d.mean()) if float(d.mean()) > 0 else 1e-30)
    A = W.double() * d[None, :]
    S = torch.zeros_like(A)
    U, V = A.new_zeros(m, 0), A.new_zeros(0, n)
    mask = torch.zeros(m, n, dtype=torch.bool)
    for _ in range(iters if r else 1):
        if r:
            U, V = _truncated(A - S, r)
        R = A - U @ V
        mask = _row_mask(R.abs(), row_counts(R.abs(), s))
        S = R * mask
    Sw = (S / d[None, :]).to(W.dtype)
    return SparseLowRankResult(U=U.to(W.dtype).contiguous(), V=(V / d[None, :]).to(W.dtype).contiguous(),
                               sparse=_csr(Sw, mask), mask=mask)
