"""HMF, LMF and magnitude pruning as pure functions on 2-D float matrices.

Symbols follow the paper (Thakker et al., SustaiNLP 2020): W is m x n (``nn.Linear.weight``
layout, out x in), ``split`` = k dense rows, ``rank`` = r of the factorization of the other m-k rows.

    W_hat = P [ D ; U V ]     D: (k, n)   U: (m-k, r)   V: (r, n)
    params = k*n + r*(m-k) + r*n,  compression = m*n / params,  rank(W_hat) <= k + r

**Compression has one meaning** (issue 18 part 5): dense values / stored values. Asked for compression
``c``, an (m, n) matrix gets the value budget ``B = floor(m*n / c)`` (:func:`value_budget`; floor, so
nothing is ever over budget) and every method stores at most B, as close to it as its structure allows:

- pruning keeps exactly B values (:func:`prune`, :func:`prune_keep`; CSR index bytes are counted apart,
  :func:`csr_bytes`);
- LMF takes the largest rank r with ``r*(m+n) <= B`` (:func:`lmf_rank`; no rank fits -> ``ValueError``);
- HMF takes :func:`choose_split_rank`: the balanced (split, rank) within 1% of LMF's size, never over B
  (given split and rank must fit B too); :func:`max_split` is the largest split with a rank >= 1 in B.
  HMF's structure could come closer to B than LMF's steps of m+n allow; its default stays at LMF's size
  so that the HMF-vs-LMF comparison is at equal stored values (pass ``split=`` or ``rank=`` to fill B).

The same rule runs in ``hl.prune``, ``hl.SparseLinear.from_linear``, ``hl.compress``, the LSTM modules,
``tradeoff.layers_at_budget`` and the method registry's ``Method.stored`` (:mod:`hmf_lab.nn.methods`).
Pruning exactly as big as LMF (a same-size comparison) is the explicit option ``count="lmf"`` /
``prune_count="lmf"`` (or :func:`equal_budget`), never the default.

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
import numbers
import threading
import warnings
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch

from hmf_lab.factor._validation import as_calibration, as_inputs, as_int, as_matrix, check_compression, check_rank, check_split
from hmf_lab.factor.heuristics import _select_rows, resolve_fit, whitened_fit

__all__ = [
    "LMFResult", "HMFResult", "PruneResult", "HMFCache",
    "lmf", "hmf", "prune", "relative_error", "budget", "sweep", "hmf_params", "lmf_params",
    "value_budget", "largest_rank", "lmf_rank", "choose_split_rank", "EqualBudget", "equal_budget",
    "equal_budget_splits", "prune_keep", "PRUNE_COUNTS", "max_split",
]


def hmf_params(m: int, n: int, split: int, rank: int) -> int:
    """Stored values of HMF: ``k*n + r*(m-k) + r*n`` (LMF is ``split=0``)."""
    return split * n + rank * (m - split) + rank * n


def lmf_params(m: int, n: int, rank: int) -> int:
    """Stored values of LMF: ``r*(m+n)``."""
    return rank * (m + n)


# --------------------------------------------------------------------------- results


@dataclass(frozen=True, eq=False)
class LMFResult:
    """Rank-r factorization ``W_hat = U @ V`` (singular values folded into ``U``)."""

    U: torch.Tensor  # (m, r)
    V: torch.Tensor  # (r, n)

    @property
    def shape(self) -> tuple[int, int]:
        return (self.U.shape[0], self.V.shape[1])

    @property
    def rank(self) -> int:
        return self.V.shape[0]

    @property
    def n_params(self) -> int:
        m, n = self.shape
        return lmf_params(m, n, self.rank)

    @property
    def compression(self) -> float:
        m, n = self.shape
        return m * n / self.n_params

    @property
    def rank_bound(self) -> int:
        return min(self.rank, *self.shape)

    def to_dense(self) -> torch.Tensor:
        return self.U @ self.V  # (m, r) @ (r, n)

    def __call__(self, x) -> torch.Tensor:
        """``x @ W_hat.T`` without forming W_hat: two thin GEMMs. ``x``: (..., n) -> (..., m)."""
        x = as_inputs(x, self.shape[1], like=self.V)
        return (x @ self.V.T) @ self.U.T  # (..., r) -> (..., m)


@dataclass(frozen=True, eq=False)
class HMFResult:
    """Hybrid factorization: dense rows ``rows`` kept exactly, the others as ``U @ V``."""

    rows: torch.Tensor  # (k,) sorted dense-row indices
    dense: torch.Tensor  # (k, n)
    U: torch.Tensor  # (m-k, r)
    V: torch.Tensor  # (r, n)
    m: int
    heuristic: str = "top"
    lower_rows: torch.Tensor = field(init=False)  # (m-k,) the factorized rows, sorted

    def __post_init__(self):
        keep = torch.ones(self.m, dtype=torch.bool)
        keep[self.rows] = False
        object.__setattr__(self, "lower_rows", torch.nonzero(keep).reshape(-1))

    @property
    def shape(self) -> tuple[int, int]:
        return (self.m, self.V.shape[1])

    @property
    def split(self) -> int:
        return self.rows.numel()

    @property
    def rank(self) -> int:
        return self.V.shape[0]

    @property
    def n_params(self) -> int:
        m, n = self.shape
        return hmf_params(m, n, self.split, self.rank)

    @property
    def compression(self) -> float:
        m, n = self.shape
        return m * n / self.n_params

    @property
    def rank_bound(self) -> int:
        return min(self.split + self.rank, *self.shape)

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


def csr_index_bytes(nnz: int) -> int:
    """Bytes per CSR index in the kit's sparse kernel: int32 (4) below 2**31 - 1 stored values, else int64 (8)."""
    return 4 if int(nnz) < 2**31 - 1 else 8


def csr_bytes(m: int, nnz: int, value_bytes: int = 4, index_bytes: int = 4) -> int:
    """Bytes of an (m, n) CSR matrix with ``nnz`` stored values: values + column indices + m+1 row pointers.

    The kit's one CSR byte count (``hl.timing.csr_bytes`` is this function); ``index_bytes=4`` matches the
    timed kernel (int32 indices, see ``SparseLinear._csr32`` and :func:`csr_index_bytes`).

    >>> import hmf_lab as hl
    >>> hl.factor.core.csr_bytes(4, 3)
    44
    """
    return int(nnz) * (int(value_bytes) + int(index_bytes)) + (int(m) + 1) * int(index_bytes)


@dataclass(frozen=True, eq=False)
class PruneResult:
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
    def compression(self) -> float:
        m, n = self.shape
        return m * n / self.n_params

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


def prune(W, compression=None, *, nnz=None) -> PruneResult:
    """Magnitude pruning to ``floor(m*n / compression)`` stored values (or exactly ``nnz``), kept as sparse CSR.

    The mask comes from ``torch.nn.utils.prune.L1Unstructured``. ``n_params``/``compression``
    count values only (as for HMF/LMF); ``n_bytes``/``byte_compression`` include CSR indices.
    ``compression`` keeps exactly the budget ``floor(m*n / compression)`` (the one meaning of compression, as in
    ``hl.compress``); for LMF's count (a same-size comparison) pass
    ``nnz=hl.factor.core.prune_keep(W.shape, compression, count="lmf")``.

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


def _shape(shape, name: str = "shape") -> tuple[int, int]:
    if isinstance(shape, torch.Size):
        shape = tuple(shape)
    if not (isinstance(shape, (tuple, list)) and len(shape) == 2):
        raise TypeError(f"{name} must be a tuple (m, n), got {shape!r}")
    m, n = as_int(shape[0], f"{name}[0]"), as_int(shape[1], f"{name}[1]")
    if m < 1 or n < 1:
        raise ValueError(f"{name} must have positive sizes, got ({m}, {n})")
    return m, n


def value_budget(shape, compression) -> int:
    """The budget in stored values, ``floor(m*n / compression)`` (a relative 1e-12 guards round-off).

    >>> import hmf_lab as hl
    >>> hl.factor.core.value_budget((512, 512), 4), hl.factor.core.value_budget((3, 7), 2)
    (65536, 10)
    """
    m, n = _shape(shape)
    c = check_compression(compression)
    return int(math.floor(m * n / c * (1 + 1e-12)))


def largest_rank(shape, values, split: int = 0) -> int:
    """The largest rank r with ``hmf_params(m, n, split, r) <= values``, at most ``min(m-split, n)``; 0 if none.

    ``values`` is a budget in stored values (an int, or a float that is floored). ``split=0`` is LMF's
    rule, any other split HMF's; ``split = m`` returns 0 (rank 0 is the only rank there).

    >>> import hmf_lab as hl
    >>> hl.factor.core.largest_rank((1024, 1024), 262144), hl.factor.core.largest_rank((1024, 1024), 262144, split=87)
    (128, 88)
    """
    m, n = _shape(shape)
    k = check_split(split, m)
    if isinstance(values, (bool, np.bool_)) or not isinstance(values, numbers.Real):
        raise TypeError(f"values must be a number of stored values, got {type(values).__name__} {values!r}")
    if not math.isfinite(float(values)):
        raise ValueError(f"values must be a finite number of stored values, got {values!r}")
    v = int(math.floor(values))
    if k == m:
        return 0
    r = (v - k * n) // (m - k + n)
    return int(max(0, min(r, m - k, n)))


def _unreachable(m: int, n: int, compression, what: str) -> ValueError:
    best = m * n / (m + n)
    return ValueError(
        f"compression {compression!r} cannot be reached for shape ({m}, {n}) by {what}: the smallest "
        f"factorization (rank 1) stores m+n = {m + n} values, i.e. compression at most {best:.4g}; "
        f"use a smaller compression"
    )


def lmf_rank(shape, compression=None, rank=None) -> int:
    """LMF's rank at ``compression``: the largest r with ``r*(m+n) <= m*n / compression``; raises if none.

    ``rank`` given: checked and returned as it is. Nothing is rounded up: a shape whose rank-1
    factorization already exceeds the budget raises ``ValueError`` naming the shape.

    >>> import hmf_lab as hl
    >>> hl.lmf_rank((1024, 1024), compression=4)
    128
    """
    m, n = _shape(shape)
    if rank is not None:
        return check_rank(rank, m, n, 0)
    if compression is None:
        raise TypeError("compression is required unless rank is given, e.g. compression=4 or rank=32")
    r = largest_rank((m, n), value_budget((m, n), compression), 0)
    if r < 1:
        raise _unreachable(m, n, compression, "LMF")
    return r


def max_split(shape, compression) -> int:
    """The largest HMF split of an (m, n) matrix with a rank >= 1 inside the budget ``floor(m*n / compression)``.

    The kit's one max-split rule (``ValueError`` if not even LMF's rank 1 fits).

    >>> import hmf_lab as hl
    >>> hl.factor.core.max_split((128, 64), 8)
    13
    """
    m, n = _shape(shape)
    k = _max_split(m, n, value_budget((m, n), compression))
    if k < 0:
        raise _unreachable(m, n, compression, "any split with rank >= 1")
    return k


def _max_split(m: int, n: int, B: int) -> int:
    """The largest split with a rank >= 1 inside B values (-1 if none)."""
    # hmf_params(m, n, k, 1) = k*(n-1) + m + n grows with k (n >= 1)
    if n == 1:
        return m - 1 if m + 1 <= B else -1
    k = (B - m - n) // (n - 1)
    return int(min(k, m - 1)) if k >= 0 else -1


def choose_split_rank(shape, compression=None, split=None, rank=None) -> tuple[int, int]:
    """The (split, rank) HMF uses for an (m, n) matrix at ``compression``.

    Rules (documented defaults, every one overridable):

    - ``split`` and ``rank`` both given: used as they are; with ``compression`` too, the point must fit its
      budget (``ValueError`` saying what fits otherwise: the three must not contradict each other);
    - ``split`` given: the largest rank that fits the budget ``floor(m*n / compression)`` at that split;
    - ``rank`` given: the largest split that fits the budget at that rank;
    - neither: if the budget allows every row dense (compression 1) that exact point, ``(m, 0)``;
      otherwise the **equal-budget balanced** point of :func:`equal_budget`: stored values within 1% of
      LMF's (so HMF, LMF and pruning compare at the same size), ``split`` closest to ``rank`` (ties: the
      larger rank bound, then the size closest to LMF's). It sits between LMF (split 0) and the
      almost-all-dense end and has about 1.3x LMF's rank bound for square matrices.

    >>> import hmf_lab as hl
    >>> hl.choose_split_rank((1024, 1024), compression=4)
    (87, 88)
    >>> hl.choose_split_rank((1024, 1024), compression=4, split=0)  # LMF's rank
    (0, 128)
    >>> hl.choose_split_rank((1024, 1024), compression=1)
    (1024, 0)
    """
    m, n = _shape(shape)
    if split is not None and rank is not None:
        k = check_split(split, m)
        r = check_rank(rank, m, n, k)
        if compression is not None:  # all three given: they must agree (the point fits the budget)
            B = value_budget((m, n), compression)
            p = hmf_params(m, n, k, r)
            if p > B:
                fit = largest_rank((m, n), B, k)
                ks = _max_split(m, n, B)
                hint = (f"rank={fit} fits at split={k}" if fit >= 1 else
                        f"split={k} leaves no room for a rank >= 1; the largest split that does is {ks}" if ks >= 0
                        else f"no split fits: rank 1 alone stores m+n = {m + n} values; use a smaller compression")
                raise ValueError(
                    f"split={k}, rank={r} store {p} values but compression {compression!r} allows at most "
                    f"floor({m}*{n} / {compression!r}) = {B} for shape ({m}, {n}); give compression alone, "
                    f"split and rank alone, or a point that fits ({hint})")
        return k, r
    if compression is None:
        raise TypeError("compression is required unless both split and rank are given, "
                        "e.g. compression=4 or split=64, rank=32")
    B = value_budget((m, n), compression)
    if split is not None:
        k = check_split(split, m)
        if k == m:
            if m * n > B:
                raise ValueError(f"split {k} = m keeps every row dense (compression 1), which does not fit "
                                 f"compression {compression!r} for shape ({m}, {n}); pick a smaller split")
            return m, 0
        r = largest_rank((m, n), B, k)
        if r < 1:
            raise ValueError(f"split {k} leaves no room for a rank >= 1 at compression {compression!r} for "
                             f"shape ({m}, {n}); the largest feasible split is {_max_split(m, n, B)}")
        return k, r
    if rank is not None:
        r = as_int(rank, "rank")
        if r < 1 or r > min(m, n):
            raise ValueError(f"rank must be an int in [1, min(m, n)]=[1, {min(m, n)}] for shape ({m}, {n}), got {r}")
        # hmf_params(k, r) = k*(n - r) + r*(m + n): non-decreasing in k (r <= n)
        if hmf_params(m, n, 0, r) > B:
            raise ValueError(f"rank {r} does not fit compression {compression!r} for shape ({m}, {n}) even with "
                             f"split 0 (LMF needs rank <= {B // (m + n)})")
        kmax = m - r  # rank <= m - split
        if r < n:
            kmax = min(kmax, (B - r * (m + n)) // (n - r))
        return int(kmax), r
    if m * n <= B:
        return m, 0
    eb = equal_budget((m, n), compression)
    return eb.split, eb.rank


@dataclass(frozen=True)
class EqualBudget:
    """HMF (split, rank), LMF rank and pruning's kept count at one compression, all at the same size.

    Sizes are stored weight values per block (``blocks`` gate blocks of ``shape`` each, e.g. 4 for an
    LSTM matrix); pruning's CSR indices are counted apart (``prune_index_values``).
    """

    shape: tuple  # (m, n) of one block
    compression: float
    blocks: int
    split: int
    rank: int
    lmf_rank: int
    budget: int  # floor(m*n / compression) per block: nothing exceeds it
    tol: float

    @property
    def hmf_params(self) -> int:
        return self.blocks * hmf_params(*self.shape, self.split, self.rank)

    @property
    def lmf_params(self) -> int:
        return self.blocks * lmf_params(*self.shape, self.lmf_rank)

    @property
    def prune_nnz(self) -> int:
        """Pruning's count in this equal-size comparison: exactly LMF's (``prune_keep(..., count="lmf")``).

        Not the default meaning of compression: ``hl.prune``/``hl.compress`` keep ``blocks * budget``."""
        return self.lmf_params

    @property
    def prune_index_values(self) -> int:
        """CSR indices pruning also stores (column index per value + m+1 row pointers per matrix)."""
        m, _ = self.shape
        return self.prune_nnz + self.blocks * m + 1

    @property
    def gap(self) -> float:
        """``|HMF - LMF| / LMF`` stored values (pruning keeps exactly LMF's count)."""
        return abs(self.hmf_params - self.lmf_params) / self.lmf_params


def equal_budget_splits(shape, compression, *, tol: float = 0.01) -> pd.DataFrame:
    """Every split whose largest fitting rank stores within ``tol`` of LMF's values: the iso-budget line.

    Columns split, rank, params, lmf_params, gap, rank_bound. Use it to sweep splits from 0 (= LMF)
    to the all-rows end at one fair budget; split 0 is always there (it is LMF).

    >>> import hmf_lab as hl
    >>> df = hl.factor.core.equal_budget_splits((128, 128), compression=16)
    >>> df[["split", "rank", "params"]].values.tolist()
    [[0, 4, 1024], [2, 3, 1018], [4, 2, 1016], [6, 1, 1018]]
    """
    m, n = _shape(shape)
    tol = _check_tol(tol)
    B = value_budget((m, n), compression)
    if largest_rank((m, n), B, 0) < 1:
        raise _unreachable(m, n, compression, "HMF or LMF (at an equal budget)")
    rl = lmf_rank((m, n), compression)
    T = lmf_params(m, n, rl)
    hi = min(B, int(math.floor(T * (1 + tol))))
    lo = T * (1 - tol)
    rows = []
    for k in range(0, m):
        r = largest_rank((m, n), hi, k)
        if r < 1:
            break  # hmf_params(k, 1) grows with k: no larger split fits either
        p = hmf_params(m, n, k, r)
        if p >= lo:
            rows.append((k, r, p))
    df = pd.DataFrame(rows, columns=["split", "rank", "params"]).astype("int64")
    df["lmf_params"] = T
    df["gap"] = (df["params"] - T).abs() / T
    df["rank_bound"] = [min(k + r, m, n) for k, r, _ in rows]
    return df


def _check_tol(tol) -> float:
    if isinstance(tol, (bool, np.bool_)) or not isinstance(tol, numbers.Real):
        raise TypeError(f"tol must be a number in [0, 1), got {type(tol).__name__} {tol!r}")
    if not 0 <= float(tol) < 1:
        raise ValueError(f"tol must be a number in [0, 1) (relative size gap), got {tol!r}")
    return float(tol)


def equal_budget(shape, compression, *, split=None, blocks: int = 1, tol: float = 0.01) -> EqualBudget:
    """HMF (split, rank), LMF's rank and pruning's kept count with equal stored values (within ``tol``).

    The named equal-size comparison (not the default meaning of compression, which is the budget
    ``floor(m*n / compression)``, kept exactly by ``hl.prune``): LMF takes the largest rank that fits the
    budget; its size T is the target. ``prune_nnz`` is exactly T (``prune_keep(..., count="lmf")``; its CSR
    indices are counted apart). HMF takes a (split, rank) whose
    size lies in ``[T*(1-tol), min(budget, T*(1+tol))]``: by default the balanced one (split closest to
    rank; ties: larger rank bound, then closer to T), or the largest fitting rank at a given ``split``
    (``ValueError`` listing the reachable splits if that split cannot come within ``tol``).
    ``blocks``: gate blocks of ``shape`` in one matrix (an LSTM's W is 4 blocks of (H, n)); sizes scale.
    Nothing exceeds the budget; a shape where rank 1 already does raises ``ValueError`` naming the shape.

    >>> import hmf_lab as hl
    >>> e = hl.factor.core.equal_budget((128, 128), compression=16)
    >>> (e.split, e.rank), e.lmf_rank, e.hmf_params, e.lmf_params, e.prune_nnz
    ((2, 3), 4, 1018, 1024, 1024)
    """
    m, n = _shape(shape)
    c = check_compression(compression)
    G = as_int(blocks, "blocks")
    if G < 1:
        raise ValueError(f"blocks must be an int >= 1 (gate blocks per matrix), got {G}")
    tol = _check_tol(tol)
    B = value_budget((m, n), c)
    df = equal_budget_splits((m, n), c, tol=tol)  # raises for unreachable shapes
    rl = lmf_rank((m, n), c)
    if split is not None:
        k = check_split(split, m)
        hit = df[df["split"] == k]
        if hit.empty:
            ks = df["split"].tolist()
            near = sorted(ks, key=lambda s: abs(s - k))[:5]
            raise ValueError(
                f"split {k} cannot store within {tol:.0%} of LMF's {lmf_params(m, n, rl)} values for shape "
                f"({m}, {n}) at compression {compression!r}; splits that can: {sorted(near)} "
                f"(all: hl.factor.core.equal_budget_splits({(m, n)}, {compression!r}))")
        k, r = int(hit["split"].iloc[0]), int(hit["rank"].iloc[0])
    else:
        T = lmf_params(m, n, rl)
        key = (df["split"] - df["rank"]).abs() * 1.0
        best = df.assign(_gap=key, _rb=-df["rank_bound"], _t=(df["params"] - T).abs()).sort_values(
            ["_gap", "_rb", "_t", "split"], kind="stable").iloc[0]
        k, r = int(best["split"]), int(best["rank"])
    return EqualBudget(shape=(m, n), compression=c, blocks=G, split=k, rank=r, lmf_rank=rl, budget=B, tol=tol)


PRUNE_COUNTS = ("budget", "lmf")
_PRUNE_COUNT_ALIASES = {"floor": "budget", "equal": "lmf"}  # the names before the one rule (kept working)


def _prune_count(count) -> str:
    if not isinstance(count, str) or _PRUNE_COUNT_ALIASES.get(count, count) not in PRUNE_COUNTS:
        raise ValueError(f"count must be 'budget' (floor(m*n / compression), the one meaning of compression) or "
                         f"'lmf' (LMF's count at that compression, the equal-size comparison), got {count!r}")
    return _PRUNE_COUNT_ALIASES.get(count, count)


def prune_keep(shape, compression, *, blocks: int = 1, count: str = "budget") -> int:
    """Values pruning keeps at ``compression``: exactly the budget ``floor(m*n / compression)`` per block.

    ``count="lmf"`` (an explicit option, never the default) keeps LMF's count instead (the largest
    ``r*(m+n)`` within the budget: pruning exactly as big as LMF); shapes LMF cannot reach fall back to the
    budget. ``shape`` is one block (an LSTM matrix is 4 gate blocks of (H, n): ``blocks=4``). Compression 1
    keeps every value. ``"floor"`` and ``"equal"`` are the older names of ``"budget"`` and ``"lmf"``.

    >>> import hmf_lab as hl
    >>> hl.factor.core.prune_keep((64, 48), 4), hl.factor.core.prune_keep((64, 48), 4, count="lmf")
    (768, 672)
    >>> hl.factor.core.prune_keep((128, 128), 1), hl.factor.core.prune_keep((8, 1), 2)
    (16384, 4)
    """
    m, n = _shape(shape)
    G = as_int(blocks, "blocks")
    if G < 1:
        raise ValueError(f"blocks must be an int >= 1 (gate blocks per matrix), got {G}")
    count = _prune_count(count)
    B = value_budget((m, n), compression)
    if B >= m * n:
        return G * m * n
    if B < 1:
        raise ValueError(f"compression {compression!r} leaves no stored value for shape ({m}, {n}); "
                         f"it must be at most m*n = {m * n}")
    if count == "budget":
        return G * B
    r = largest_rank((m, n), B, 0)
    return G * (lmf_params(m, n, r) if r >= 1 else B)


def budget(shape, compression, *, step: int = 1) -> pd.DataFrame:
    """Feasible (split, rank) pairs at a compression: for each split, the largest rank that fits.

    Returns a DataFrame with columns split, rank, params, compression, rank_bound (one row per
    split in ``range(0, m+1, step)`` that can reach the budget ``m*n / compression``).

    >>> import hmf_lab as hl
    >>> b = hl.budget((512, 512), compression=4)
    >>> b[["split", "rank"]].iloc[0].tolist(), int(b["rank_bound"].max())
    ([0, 64], 127)
    """
    m, n = _shape(shape)
    step = as_int(step, "step")
    if step < 1:
        raise ValueError(f"step must be an int >= 1, got {step}")
    B = value_budget((m, n), compression)
    rows = []
    for k in range(0, m + 1, step):
        if k == m:
            if m * n <= B:
                rows.append((m, 0))
            continue
        r = largest_rank((m, n), B, k)
        if r >= 1:
            rows.append((k, r))
    if not rows:
        raise _unreachable(m, n, compression, "any (split, rank)")
    df = pd.DataFrame(rows, columns=["split", "rank"]).astype("int64")
    df["params"] = [hmf_params(m, n, k, r) for k, r in rows]
    df["compression"] = m * n / df["params"]
    df["rank_bound"] = [min(k + r, m, n) for k, r in rows]
    return df


class HMFCache:
    """Caches the SVDs of the factorized block per dense-row set, so sliders and sweeps reuse them.

    ``error`` and ``hmf`` give what :func:`relative_error` of :func:`hmf` would, with the same fit: the
    plain SVD, or, when ``X`` is given and the heuristic prefers it (``"activation"``), the whitened fit
    (that one is computed per call, not from the cached SVD). Thread-safe: one lock guards the caches
    (the explorer's warm-up thread shares them). ``max_items``: entries kept per cache (an int >= 1).

    >>> import torch, hmf_lab as hl
    >>> cache = hl.HMFCache(torch.randn(32, 16))
    >>> e1 = cache.error(split=4, rank=3); e2 = cache.error(split=4, rank=8)
    >>> e2 <= e1 and len(cache._spectra) == 1
    True
    """

    def __init__(self, W, X=None, max_items: int = 256):
        self.W = as_matrix(W)
        self.X = None if X is None else as_calibration(X, self.W.shape[1], like=self.W)
        mi = as_int(max_items, "max_items")
        if mi < 1:
            raise ValueError(f"max_items must be an int >= 1 (entries kept per cache), got {mi}")
        self.max_items = mi
        self._scale = _svd_scale(self.W)
        self._Ws = self.W if self._scale == 1.0 else self.W / self._scale  # SVDs on a safely scaled copy
        self.norm2 = float(torch.linalg.vector_norm(self._Ws.double().reshape(-1)) ** 2)
        self._lock = threading.RLock()
        self._spectra: dict[bytes, np.ndarray] = {}  # rows -> tail energies (float64)
        self._svds: dict[bytes, tuple] = {}
        self._rows: dict[tuple, torch.Tensor] = {}

    @staticmethod
    def _key(rows: torch.Tensor) -> bytes:
        return rows.numpy().tobytes()

    def _remember(self, store: dict, key, value):
        with self._lock:
            while len(store) >= self.max_items:
                store.pop(next(iter(store)))
            store[key] = value
        return value

    def _get(self, store: dict, key):
        with self._lock:
            return store.get(key)

    def rows(self, split, rank, heuristic="top") -> torch.Tensor:
        m, n = self.W.shape
        k = check_split(split, m)
        r = check_rank(rank, m, n, k)
        hkey = (k, r, heuristic) if isinstance(heuristic, (str,)) or callable(heuristic) else None
        if hkey is not None:
            hit = self._get(self._rows, hkey)
            if hit is not None:
                return hit
        rows = _select_rows(self.W, k, r, heuristic, self.X)
        if hkey is not None:
            self._remember(self._rows, hkey, rows)
        return rows

    def _lower(self, rows: torch.Tensor, scaled: bool = True) -> torch.Tensor:
        keep = torch.ones(self.W.shape[0], dtype=torch.bool)
        keep[rows] = False
        return (self._Ws if scaled else self.W)[keep]

    def tail_energy(self, rows: torch.Tensor) -> np.ndarray:
        """``t[r] = sum_{i >= r} s_i^2`` of the factorized block (t[0] = its whole energy), of W / scale."""
        key = self._key(rows)
        t = self._get(self._spectra, key)
        if t is None:
            lower = self._lower(rows)
            if lower.shape[0] == 0:
                t = np.zeros(1)
            else:
                s2 = self._squared_singular_values(rows, lower)  # descending
                t = np.concatenate([np.cumsum(s2[::-1])[::-1], [0.0]])
                t = np.maximum(t, 0.0)
            self._remember(self._spectra, key, t)
        return t

    #: the Gram matrices (float64) are kept for matrices up to this side; larger ones use svdvals
    GRAM_MAX_SIDE = 4096

    def _squared_singular_values(self, rows: torch.Tensor, lower: torch.Tensor) -> np.ndarray:
        """s_i^2 of the factorized block, descending: eigenvalues of its smaller Gram matrix in float64.

        Both Grams come from one GEMM each, cached: the block's row Gram is a submatrix of ``W W^T``;
        its column Gram is ``W^T W - D^T D`` (D the dense rows). ``eigvalsh`` of the smaller one costs
        less than ``svdvals`` of the block, and float64 keeps tail sums accurate (~1e-13 of ||W||^2).
        """
        m, n = self.W.shape
        p, q = lower.shape
        if max(m, n) > self.GRAM_MAX_SIDE:
            return (torch.linalg.svdvals(lower).double() ** 2).numpy()
        with self._lock:
            if p <= n:
                if getattr(self, "_gram_rows", None) is None:
                    Wd = self._Ws.double()
                    self._gram_rows = Wd @ Wd.T  # (m, m)
                G = self._gram_rows
            else:
                if getattr(self, "_gram_cols", None) is None:
                    Wd = self._Ws.double()
                    self._gram_cols = Wd.T @ Wd  # (n, n)
                G = self._gram_cols
        if p <= n:
            keep = torch.ones(m, dtype=torch.bool)
            keep[rows] = False
            idx = torch.nonzero(keep).reshape(-1)
            B = G.index_select(0, idx).index_select(1, idx)  # (m-k, m-k) = L L^T
        else:
            D = self._Ws[rows].double()  # (k, n)
            B = G - D.T @ D  # (n, n) = L^T L
        ev = torch.linalg.eigvalsh(B).clamp_min(0.0).flip(0)  # descending
        return ev.numpy()

    def _whitened_tail(self, rows: torch.Tensor):
        """(U of svd(A R), A in float64, t) for the whitened fit of block A: ``t[r]`` = its squared weight
        error at rank r, ``||A||^2 - sum_{i<r} ||u_i^T A||^2`` (every rank from one SVD)."""
        key = b"w" + self._key(rows)
        hit = self._get(self._svds, key)
        if hit is None:
            from hmf_lab.factor.heuristics import whitening

            Ad = self._lower(rows).double()  # (m-k, n), scaled
            if Ad.shape[0] == 0:
                hit = (Ad.new_zeros(0, 0), Ad, np.zeros(1))
            else:
                Uall = torch.linalg.svd(Ad @ whitening(self.X), full_matrices=False)[0]  # (m-k, q)
                got = ((Uall.T @ Ad) ** 2).sum(1).numpy()  # energy captured per direction
                total = float((Ad**2).sum())
                t = np.maximum(total - np.concatenate([[0.0], np.cumsum(got)]), 0.0)
                hit = (Uall, Ad, t)
            self._remember(self._svds, key, hit)
        return hit

    def _whitened(self, heuristic) -> bool:
        return self.X is not None and resolve_fit(None, heuristic, self.X) == "whitened"

    def error(self, split, rank, heuristic="top") -> float:
        """Relative Frobenius error of ``hmf(W, split, rank, heuristic, X)``: from the cached spectrum for
        the SVD fit, from the whitened result itself when that is the fit ``hmf`` uses."""
        rows = self.rows(split, rank, heuristic)
        t = self._whitened_tail(rows)[2] if self._whitened(heuristic) else self.tail_energy(rows)
        if self.norm2 == 0.0:
            return 0.0
        return math.sqrt(t[as_int(rank, "rank")] / self.norm2)

    def _errors(self, split: int, ranks: np.ndarray, heuristic="top") -> np.ndarray:
        """Errors of every rank in ``ranks`` at one split, for a heuristic whose rows ignore the rank."""
        rows = self.rows(split, int(ranks[0]), heuristic)
        t = self._whitened_tail(rows)[2] if self._whitened(heuristic) else self.tail_energy(rows)
        if self.norm2 == 0.0:
            return np.zeros(len(ranks))
        return np.sqrt(t[ranks] / self.norm2)

    def hmf(self, split, rank, heuristic="top") -> HMFResult:
        """The result of :func:`hmf` ``(W, split, rank, heuristic, X)``, reusing the cached SVD of the block
        for the SVD fit (the whitened fit, used with X and "activation", is computed as ``hmf`` does)."""
        rows = self.rows(split, rank, heuristic)
        m, n = self.W.shape
        r = as_int(rank, "rank")
        name = heuristic if isinstance(heuristic, str) else getattr(heuristic, "__name__", "explicit")
        if self._whitened(heuristic) and r > 0:  # whitened_fit's U_r, V = U_r^T A from the cached SVD of A R
            Uall, Ad, _ = self._whitened_tail(rows)
            Ur = Uall[:, :r]
            V = (Ur.T @ Ad) * self._scale  # (r, n)
            return HMFResult(rows=rows, dense=self.W[rows].clone(), U=Ur.to(self.W.dtype).contiguous(),
                             V=V.to(self.W.dtype).contiguous(), m=m, heuristic=name)
        key = self._key(rows)
        svd = self._get(self._svds, key)
        if svd is None:
            lower = self._lower(rows)
            if lower.shape[0] == 0:
                svd = (lower.new_zeros(0, 0), lower.new_zeros(0), lower.new_zeros(0, n))
            else:
                svd = torch.linalg.svd(lower, full_matrices=False)
            self._remember(self._svds, key, svd)
        U, S, Vh = svd
        Uf, Vf = _fold(U[:, :r], S[:r], Vh[:r], self._scale)
        return HMFResult(rows=rows, dense=self.W[rows].clone(), U=Uf, V=Vf, m=m, heuristic=name)


def sweep(W, splits=None, ranks=None, heuristic="top", X=None, *, cache: HMFCache | None = None,
          progress: bool = False) -> pd.DataFrame:
    """Error, parameters and compression over a grid of (split, rank): a tidy DataFrame.

    For each split one SVD of the factorized block gives the error of every rank (tail sums of
    squared singular values), cached in ``cache`` for later calls. Pairs outside the valid region
    (rank > min(m-split, n)) are left out; split = m appears once with rank 0 (exact).
    Defaults: splits ``range(0, m+1, max(1, m // 32))``, ranks all of ``1..min(m-split, n)``.

    >>> import torch, hmf_lab as hl
    >>> df = hl.sweep(torch.randn(16, 12), splits=[0, 8, 16], ranks=[1, 4])
    >>> list(df.columns)
    ['split', 'rank', 'params', 'compression', 'rank_bound', 'error', 'heuristic']
    >>> len(df)  # split 16 = m needs rank 0, which ranks=[1, 4] leaves out
    4
    """
    from tqdm.auto import tqdm

    cache = cache if cache is not None else HMFCache(W, X=X)
    W = cache.W
    m, n = W.shape
    if splits is None:
        splits = range(0, m + 1, max(1, m // 32))
    for what, seq in (("splits", splits), ("ranks", ranks)):
        if seq is not None and (isinstance(seq, (str, bytes)) or not hasattr(seq, "__iter__")
                                or getattr(seq, "ndim", 1) != 1):  # a 0-d tensor/array has __iter__ but no items
            raise TypeError(f"{what} must be a list or range of ints (e.g. {what}=[{seq!r}] or range(0, {m + 1}, 8)), "
                            f"got {type(seq).__name__} {seq!r}")
    splits = [check_split(k, m) for k in splits]
    if ranks is not None:
        ranks = [as_int(r, "rank") for r in ranks]
        bad = [r for r in ranks if not 0 <= r <= min(m, n)]
        if bad:
            raise ValueError(f"ranks must lie in [0, min(m, n)]=[0, {min(m, n)}], got {bad}")
    hname = heuristic if isinstance(heuristic, str) else getattr(heuristic, "__name__", "explicit")
    rank_free = _rank_free(heuristic)
    ranks_arr = None if ranks is None else np.asarray(ranks, dtype=np.int64)
    cols = {"split": [], "rank": [], "error": []}
    for k in tqdm(splits, desc="sweep", disable=not progress):
        if k == m:
            if ranks is None or 0 in ranks:
                cols["split"].append(np.array([m])); cols["rank"].append(np.array([0]))
                cols["error"].append(np.array([0.0]))
            continue
        hi = min(m - k, n)
        rs = np.arange(1, hi + 1) if ranks_arr is None else ranks_arr[(ranks_arr >= 1) & (ranks_arr <= hi)]
        if rs.size == 0:
            continue
        if rank_free:  # one row selection and one spectrum per split give every rank
            err = cache._errors(k, rs, heuristic)
        else:
            err = np.array([cache.error(k, int(r), heuristic) for r in rs])
        cols["split"].append(np.full(rs.size, k)); cols["rank"].append(rs); cols["error"].append(err)
    cat = {c: (np.concatenate(v) if v else np.zeros(0)) for c, v in cols.items()}
    k = cat["split"].astype(np.int64)
    r = cat["rank"].astype(np.int64)
    params = k * n + r * (m - k) + r * n
    return pd.DataFrame({
        "split": k, "rank": r, "params": params, "compression": m * n / np.maximum(params, 1),
        "rank_bound": np.minimum(np.minimum(k + r, m), n), "error": cat["error"].astype(np.float64),
        "heuristic": hname,
    })


def _rank_free(heuristic) -> bool:
    """True when the heuristic's rows do not depend on the rank (explicit rows, "top", "row_norm", ...)."""
    if isinstance(heuristic, str):
        from hmf_lab.factor.heuristics import HEURISTICS

        return bool(getattr(HEURISTICS.get(heuristic), "rank_free", False))
    if callable(heuristic):
        return bool(getattr(heuristic, "rank_free", False))
    return True  # explicit row indices
