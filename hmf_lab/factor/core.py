"""HMF, LMF and magnitude pruning as pure functions on 2-D float matrices.

Symbols follow the paper (Thakker et al., SustaiNLP 2020): W is m x n (``nn.Linear.weight``
layout, out x in), ``split`` = k dense rows, ``rank`` = r of the factorization of the other m-k rows.

    W_hat = P [ D ; U V ]     D: (k, n)   U: (m-k, r)   V: (r, n)
    params = k*n + r*(m-k) + r*n,  compression = m*n / params,  rank(W_hat) <= k + r

The size rules (parameter counts, the value budget of a compression, the (split, rank) HMF takes,
pruning's keep-count, CSR bytes) live in :mod:`hmf_lab.factor.budget`, with the one meaning of
compression (dense values / stored values, budget ``floor(m*n / c)``); sweeps and the per-split SVD cache
in :mod:`hmf_lab.factor.sweep`.

Example
-------
>>> import torch, hmf_lab as hl
>>> W = torch.randn(64, 48, generator=torch.Generator().manual_seed(0))
>>> f = hl.hmf(W, split=8, rank=12)
>>> f.n_params == 8*48 + 12*(64-8) + 12*48
True
>>> x = torch.randn(5, 48)
>>> torch.allclose(f(x), x @ f.to_dense().T, atol=1e-5)
True
>>> hl.relative_error(W, hl.hmf(W, split=64, rank=0))
0.0
"""
from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field

import torch

from hmf_lab.factor._validation import as_calibration, as_inputs, as_int, as_matrix, check_compression, check_rank, check_split
from hmf_lab.factor.heuristics import _select_cols, _select_rows, resolve_col_fit, resolve_fit, whitened_fit

from hmf_lab.factor.budget import col_params, csr_bytes, csr_index_bytes, hmf_params, lmf_params, value_budget

__all__ = ["LMFResult", "HMFResult", "HMFColResult", "PruneResult", "lmf", "hmf", "hmf_cols", "prune",
           "relative_error"]


# --------------------------------------------------------------------------- results


class _Compression:
    """``compression``: dense values m*n / stored values ``n_params`` (as in :mod:`~hmf_lab.factor.budget`)."""

    @property
    def compression(self) -> float:
        m, n = self.shape
        return m * n / self.n_params


class _LowRank(_Compression):
    """A result with a low-rank part ``U @ V``: ``rank`` is r, the rows of V (r, ...)."""

    @property
    def rank(self) -> int:
        return self.V.shape[0]


@dataclass(frozen=True, eq=False)
class LMFResult(_LowRank):
    """Rank-r factorization ``W_hat = U @ V`` (singular values folded into ``U``)."""

    U: torch.Tensor  # (m, r)
    V: torch.Tensor  # (r, n)

    @property
    def shape(self) -> tuple[int, int]:
        return (self.U.shape[0], self.V.shape[1])

    @property
    def n_params(self) -> int:
        m, n = self.shape
        return lmf_params(m, n, self.rank)

    @property
    def rank_bound(self) -> int:
        return min(self.rank, *self.shape)

    def to_dense(self) -> torch.Tensor:
        return self.U @ self.V  # (m, r) @ (r, n)

    def __call__(self, x) -> torch.Tensor:
        """``x @ W_hat.T`` without forming W_hat: two thin GEMMs. ``x``: (..., n) -> (..., m)."""
        x = as_inputs(x, self.shape[1], like=self.V)
        return (x @ self.V.T) @ self.U.T  # (..., r) -> (..., m)


def _complement(size: int, idx: torch.Tensor) -> torch.Tensor:
    """The sorted indices in ``range(size)`` that are not in ``idx``."""
    keep = torch.ones(size, dtype=torch.bool)
    keep[idx] = False
    return torch.nonzero(keep).reshape(-1)


class _HybridSizes(_LowRank):
    """Sizes shared by the row- and column-split results: ``split`` exact rows/columns plus a rank-r ``U @ V``.

    A subclass gives ``shape``, ``split``, ``V`` and ``_count`` (its budget rule, ``(m, n, split, rank) -> values``).
    """

    @property
    def n_params(self) -> int:
        m, n = self.shape
        return self._count(m, n, self.split, self.rank)

    @property
    def rank_bound(self) -> int:
        return min(self.split + self.rank, *self.shape)


@dataclass(frozen=True, eq=False)
class HMFResult(_HybridSizes):
    """Hybrid factorization: dense rows ``rows`` kept exactly, the others as ``U @ V``."""

    rows: torch.Tensor  # (k,) sorted dense-row indices
    dense: torch.Tensor  # (k, n)
    U: torch.Tensor  # (m-k, r)
    V: torch.Tensor  # (r, n)
    m: int
    heuristic: str = "top"
    lower_rows: torch.Tensor = field(init=False)  # (m-k,) the factorized rows, sorted

    _count = staticmethod(hmf_params)

    def __post_init__(self):
        object.__setattr__(self, "lower_rows", _complement(self.m, self.rows))

    @property
    def shape(self) -> tuple[int, int]:
        return (self.m, self.V.shape[1])

    @property
    def split(self) -> int:
        return self.rows.numel()

    @property
    def is_top(self) -> bool:
        """True when the dense rows are exactly the first k (no permutation needed)."""
        return bool(self.split == 0 or int(self.rows[-1]) == self.split - 1)

    def to_dense(self) -> torch.Tensor:
        out = self.dense.new_empty(self.shape)  # (m, n)
        out[self.rows] = self.dense
        out[self.lower_rows] = self.U @ self.V  # (m-k, r) @ (r, n)
        return out

    def __call__(self, x) -> torch.Tensor:
        """``x @ W_hat.T`` without forming W_hat. ``x``: (..., n) -> (..., m)."""
        x = as_inputs(x, self.shape[1], like=self.V)
        y = x.new_empty(*x.shape[:-1], self.m)
        y[..., self.rows] = x @ self.dense.T  # (..., k)
        y[..., self.lower_rows] = (x @ self.V.T) @ self.U.T  # (..., r) -> (..., m-k)
        return y


@dataclass(frozen=True, eq=False)
class HMFColResult(_HybridSizes):
    """Column-split hybrid factorization ``W_hat = [D | U V] Q``: input columns ``cols`` kept exactly.

    ``dense`` D (m, k) are the columns ``cols`` of W; the other columns ``rest`` (n-k) are ``U @ V`` with
    U (m, r), V (r, n-k); Q puts the columns back in input order. Stored values ``m*k + m*r + r*(n-k)``
    (:func:`~hmf_lab.factor.budget.col_params`), rank bound ``min(k + r, m, n)``.
    """

    cols: torch.Tensor  # (k,) sorted dense-column indices
    dense: torch.Tensor  # (m, k)
    U: torch.Tensor  # (m, r)
    V: torch.Tensor  # (r, n-k)
    n: int
    heuristic: str = "col_norm"
    rest: torch.Tensor = field(init=False)  # (n-k,) the factorized columns, sorted

    _count = staticmethod(col_params)

    def __post_init__(self):
        object.__setattr__(self, "rest", _complement(self.n, self.cols))

    @property
    def shape(self) -> tuple[int, int]:
        return (self.dense.shape[0], self.n)

    @property
    def split(self) -> int:
        return self.cols.numel()

    def to_dense(self) -> torch.Tensor:
        out = self.dense.new_empty(self.shape)  # (m, n)
        out[:, self.cols] = self.dense
        out[:, self.rest] = self.U @ self.V  # (m, r) @ (r, n-k)
        return out

    def __call__(self, x) -> torch.Tensor:
        """``x @ W_hat.T`` without forming W_hat: ``x[..., cols] @ D.T + (x[..., rest] @ V.T) @ U.T``."""
        x = as_inputs(x, self.shape[1], like=self.V)
        y = x[..., self.cols] @ self.dense.T  # (..., m)
        if self.rank:
            y = y + (x[..., self.rest] @ self.V.T) @ self.U.T  # (..., r) -> (..., m)
        return y


@dataclass(frozen=True, eq=False)
class PruneResult(_Compression):
    """Magnitude pruning: the ``nnz`` largest-magnitude entries of W, stored as CSR."""

    weight: torch.Tensor  # (m, n) sparse CSR
    mask: torch.Tensor  # (m, n) bool

    @property
    def shape(self) -> tuple[int, int]:
        return tuple(self.weight.shape)

    @property
    def nnz(self) -> int:
        return int(self.weight.values().numel())

    @property
    def n_params(self) -> int:
        """Stored values (not counting indices), comparable to HMF/LMF ``n_params``."""
        return self.nnz

    @property
    def n_bytes(self) -> int:
        """CSR bytes the sparse kernel streams: values + column indices + row pointers, with the int32 indices
        ``SparseLinear`` runs on (int64 only past 2**31 values), whatever dtype ``weight`` holds them in."""
        return csr_bytes(self.shape[0], self.nnz, self.weight.values().element_size(), csr_index_bytes(self.nnz))

    @property
    def dense_bytes(self) -> int:
        m, n = self.shape
        return m * n * self.weight.values().element_size()

    @property
    def byte_compression(self) -> float:
        """Dense bytes / CSR bytes, index overhead included (what memory traffic sees)."""
        return self.dense_bytes / self.n_bytes

    @property
    def rank_bound(self) -> int:
        return min(self.nnz, *self.shape)

    def to_dense(self) -> torch.Tensor:
        return self.weight.to_dense()

    def __call__(self, x) -> torch.Tensor:
        """``x @ W_hat.T`` with torch's sparse CSR kernel. ``x``: (..., n) -> (..., m)."""
        x = as_inputs(x, self.shape[1], like=self.weight.values())
        lead = x.shape[:-1]
        x2 = x.reshape(-1, self.shape[1])  # (B, n)
        y = (self.weight @ x2.T).T  # (m, n) @ (n, B) -> (B, m)
        return y.reshape(*lead, self.shape[0])


# --------------------------------------------------------------------------- functions


def _truncated(A: torch.Tensor, rank: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Eckart–Young: the best rank-r approximation of A as (U*S, Vh)."""
    U, S, Vh = torch.linalg.svd(_finite_svd_input(A), full_matrices=False)
    return _fold(U[:, :rank], S[:rank], Vh[:rank], _svd_scale(A))


def _svd_scale(A: torch.Tensor) -> float:
    """A power of two near max|A| when A's entries are so large that its SVD would overflow, else 1."""
    big = float(A.abs().max()) if A.numel() else 0.0
    if big > 1e18 and A.dtype == torch.float32 or big > 1e150:
        return 2.0 ** math.floor(math.log2(big))
    return 1.0


def _finite_svd_input(A: torch.Tensor) -> torch.Tensor:
    sc = _svd_scale(A)
    return A if sc == 1.0 else A / sc


def _fold(U: torch.Tensor, S: torch.Tensor, Vh: torch.Tensor, scale: float = 1.0):
    """(U*S, Vh) (singular values folded into U), or the balanced (U*sqrt(S), sqrt(S)*Vh) when U*S would
    overflow the dtype (a float32 W near 3e38): ``to_dense()`` then stays finite. ``scale``: A was divided by it."""
    US = U * (S * scale)
    if bool(torch.isfinite(US).all()):
        return US, Vh.contiguous()
    r = S.sqrt() * math.sqrt(scale)
    return U * r, (r[:, None] * Vh).contiguous()


def lmf(W, rank) -> LMFResult:
    """Low-rank matrix factorization: truncated SVD, the Eckart–Young optimum at rank r.

    >>> import torch, hmf_lab as hl
    >>> f = hl.lmf(torch.eye(4), rank=2)
    >>> f.n_params, f.compression
    (16, 1.0)
    """
    W = as_matrix(W)
    m, n = W.shape
    r = check_rank(rank, m, n, 0)
    U, V = _truncated(W, r)
    return LMFResult(U=U, V=V)


def hmf(W, split, rank, heuristic="top", X=None, fit=None) -> HMFResult:
    """Hybrid matrix factorization: ``split`` rows kept dense, the rest at rank ``rank``.

    ``heuristic`` picks the dense rows: a name in ``hl.HEURISTICS`` ("top" is the paper's choice),
    a callable ``fn(W, split, *, rank, X=None)``, or explicit row indices. ``X`` (N, n) are optional
    calibration inputs handed to data-aware heuristics.
    ``fit`` fits the factorized rows: "svd" (truncated SVD, the weight-error optimum) or "whitened"
    (minimises the output error ``||X W^T - X W_hat^T||``, needs X; see ``hl.heuristics.whitened_fit``).
    The default ``None`` is "svd", except "whitened" when X is given and the heuristic asks for it
    (the data-aware "activation" does).

    >>> import torch, hmf_lab as hl
    >>> W = torch.randn(6, 5, dtype=torch.float64)
    >>> f = hl.hmf(W, split=2, rank=1, heuristic=[0, 5])
    >>> f.rows.tolist(), tuple(f.U.shape), tuple(f.V.shape), f.rank_bound
    ([0, 5], (4, 1), (1, 5), 3)
    """
    W = as_matrix(W)
    m, n = W.shape
    k = check_split(split, m)
    r = check_rank(rank, m, n, k)
    if X is not None:
        X = as_calibration(X, n, like=W)
    how = resolve_fit(fit, heuristic, X)  # "svd" | "whitened"
    rows = _select_rows(W, k, r, heuristic, X)
    keep = torch.ones(m, dtype=torch.bool)
    keep[rows] = False
    lower = W[keep]  # (m-k, n)
    if r == 0:
        U, V = W.new_zeros(m - k, 0), W.new_zeros(0, n)
    elif how == "whitened":
        U, V = whitened_fit(lower, X, r)
    else:
        U, V = _truncated(lower, r)
    name = heuristic if isinstance(heuristic, str) else getattr(heuristic, "__name__", "explicit")
    return HMFResult(rows=rows, dense=W[rows].clone(), U=U, V=V, m=m, heuristic=name)


def hmf_cols(W, split, rank, heuristic="col_norm", X=None, fit=None) -> HMFColResult:
    """Column-split HMF: ``split`` input columns kept dense, the other columns factorized at ``rank``.

    ``W_hat = [D | U V] Q`` with D = W[:, cols] (m, k), U (m, r), V (r, n-k); the strong form for wide
    matrices (output layers): its rank bound ``k + r`` costs ``m`` values per dense column instead of
    ``n`` per dense row. ``heuristic`` picks the columns: a name in ``hl.COL_HEURISTICS`` (``"col_norm"``,
    the default, is order-invariant; ``"top"`` = the first k; ``"activation"`` needs X), a callable
    ``fn(W, split, *, rank, X=None)`` or explicit column indices. ``fit``: ``"svd"`` (weight error) or
    ``"whitened"`` (output error on ``X[:, rest]``; the default with X and ``"activation"``).
    Exact at ``split = n``; the same as ``hl.hmf(W.T, ...)`` transposed for the data-free heuristics.

    >>> import torch, hmf_lab as hl
    >>> W = torch.randn(6, 10, dtype=torch.float64)
    >>> f = hl.hmf_cols(W, split=2, rank=1, heuristic=[3, 7])
    >>> f.cols.tolist(), tuple(f.dense.shape), tuple(f.U.shape), tuple(f.V.shape), f.n_params, f.rank_bound
    ([3, 7], (6, 2), (6, 1), (1, 8), 26, 3)
    >>> x = torch.randn(4, 10, dtype=torch.float64)
    >>> torch.allclose(f(x), x @ f.to_dense().T)
    True
    """
    W = as_matrix(W)
    m, n = W.shape
    k = check_split(split, n)
    r = check_rank(rank, n, m, k)  # the factorized block is (m, n-k): rank <= min(m, n-k)
    if X is not None:
        X = as_calibration(X, n, like=W)
    how = resolve_col_fit(fit, heuristic, X)
    cols = _select_cols(W, k, r, heuristic, X)
    keep = torch.ones(n, dtype=torch.bool)
    keep[cols] = False
    rest = W[:, keep]  # (m, n-k)
    if r == 0:
        U, V = W.new_zeros(m, 0), W.new_zeros(0, n - k)
    elif how == "whitened":
        U, V = whitened_fit(rest, X[:, keep], r)
    else:
        U, V = _truncated(rest, r)
    name = heuristic if isinstance(heuristic, str) else getattr(heuristic, "__name__", "explicit")
    return HMFColResult(cols=cols, dense=W[:, cols].clone(), U=U, V=V, n=n, heuristic=name)


def prune(W, compression=None, *, nnz=None) -> PruneResult:
    """Magnitude pruning to ``floor(m*n / compression)`` stored values (or exactly ``nnz``), kept as sparse CSR.

    The mask comes from ``torch.nn.utils.prune.L1Unstructured``. ``n_params``/``compression``
    count values only (as for HMF/LMF); ``n_bytes``/``byte_compression`` include CSR indices.
    ``compression`` keeps exactly the budget ``floor(m*n / compression)`` (the one meaning of compression, as in
    ``hl.compress``); for LMF's count (a same-size comparison) pass
    ``nnz=hl.factor.budget.prune_keep(W.shape, compression, count="lmf")``.

    >>> import torch, hmf_lab as hl
    >>> p = hl.prune(torch.arange(1., 9.).reshape(2, 4), compression=4)
    >>> p.nnz, p.to_dense().tolist()
    (2, [[0.0, 0.0, 0.0, 0.0], [0.0, 0.0, 7.0, 8.0]])
    """
    from torch.nn.utils import prune as tprune

    W = as_matrix(W).contiguous()  # L1Unstructured views W flat: a transposed W would fail there
    m, n = W.shape
    if (compression is None) == (nnz is None):
        raise TypeError("prune needs exactly one of compression (e.g. compression=4) or nnz (values to keep), "
                        f"got compression={compression!r}, nnz={nnz!r}")
    if nnz is not None:
        nnz = as_int(nnz, "nnz")
        if not 1 <= nnz <= m * n:
            raise ValueError(f"nnz must be an int in [1, m*n]=[1, {m * n}] for shape ({m}, {n}), got {nnz}")
    else:
        check_compression(compression)
        nnz = value_budget((m, n), compression)
        if nnz < 1:
            raise ValueError(
                f"compression {compression!r} leaves no stored value for shape ({m}, {n}); "
                f"it must be at most m*n = {m * n}"
            )
    method = tprune.L1Unstructured(amount=m * n - nnz)
    mask = method.compute_mask(W, default_mask=torch.ones_like(W)).bool()
    with warnings.catch_warnings():  # "Sparse CSR tensor support is in beta state"
        warnings.filterwarnings("ignore", message="Sparse CSR tensor support")
        csr = (W * mask).to_sparse_csr()
    if csr.values().numel() != nnz:  # exact zeros in W among the kept entries: store them explicitly
        idx = mask.nonzero()
        csr = torch.sparse_coo_tensor(idx.T, W[mask], (m, n), check_invariants=True).coalesce().to_sparse_csr()
    return PruneResult(weight=csr, mask=mask)


def relative_error(W, f) -> float:
    """``||W - W_hat||_F / ||W||_F`` for a result (``.to_dense()``) or a matrix ``W_hat``.

    Returns 0.0 when both are zero.
    """
    W = as_matrix(W)
    if hasattr(f, "to_dense") and not isinstance(f, torch.Tensor):
        W_hat = f.to_dense()
    else:
        W_hat = as_matrix(f, name="W_hat")
    if tuple(W_hat.shape) != tuple(W.shape):
        raise ValueError(f"W_hat must have the shape of W {tuple(W.shape)}, got {tuple(W_hat.shape)}")
    return _relative(W, W_hat)


def _relative(A: torch.Tensor, B: torch.Tensor) -> float:
    """``||A - B||_F / ||A||_F`` computed scale-safely: float64, both divided by their largest entry.

    Plain norms square the entries, which overflows for |A| ~ 1e18 in float32 (nan) and underflows for
    |A| ~ 1e-30 (0.0); dividing by the largest magnitude first keeps every square in range.
    """
    A64, B64 = A.detach().double(), B.detach().double()
    s = float(torch.maximum(A64.abs().max(), B64.abs().max())) if A64.numel() else 0.0
    if s == 0.0:
        return 0.0
    if not math.isfinite(s):  # W_hat overflowed (A is validated finite)
        return math.inf
    num = float(torch.linalg.vector_norm((A64 / s - B64 / s).reshape(-1)))
    den = float(torch.linalg.vector_norm((A64 / s).reshape(-1)))
    if den == 0.0:
        return 0.0 if num == 0.0 else math.inf
    return num / den
