"""Sweeps over (split, rank): :class:`HMFCache` (one SVD per split, every rank read from it) and
:func:`sweep` (a tidy table of error, parameters and compression for a grid of points).

>>> import torch
>>> W = torch.randn(32, 24, generator=torch.Generator().manual_seed(0))
>>> df = sweep(W, splits=[0, 8], ranks=[2, 4])
>>> list(df.columns[:4]), len(df)
(['split', 'rank', 'params', 'compression'], 4)
"""
from __future__ import annotations

import math
import threading

import numpy as np
import pandas as pd
import torch

from hmf_lab.factor._validation import as_calibration, as_int, as_matrix, check_rank, check_split
from hmf_lab.factor.core import HMFResult, _fold, _svd_scale
from hmf_lab.factor.heuristics import _select_rows, resolve_fit

__all__ = ["HMFCache", "sweep"]


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
