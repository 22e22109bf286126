"""The size rules: how many values each structure stores, and which (split, rank) or keep-count a
compression asks for. Every other module asks these functions; none counts on its own.

**Compression has one meaning**: dense values / stored values. Asked for compression ``c``, an (m, n)
matrix gets the value budget ``B = floor(m*n / c)`` (:func:`value_budget`; floor, so nothing is ever over
budget) and every method stores at most B, as close to it as its structure allows:

- pruning keeps exactly B values (:func:`prune_keep`; CSR index bytes are counted apart, :func:`csr_bytes`);
- LMF takes the largest rank r with ``r*(m+n) <= B`` (:func:`lmf_rank`; no rank fits -> ``ValueError``);
- HMF takes :func:`choose_split_rank`: the balanced (split, rank) within 1% of LMF's size, never over B
  (given split and rank must fit B too); :func:`max_split` is the largest split with a rank >= 1 in B.
  HMF's structure could come closer to B than LMF's steps of m+n allow; its default stays at LMF's size
  so that the HMF-vs-LMF comparison is at equal stored values (pass ``split=`` or ``rank=`` to fill B).

The same rule runs in ``hl.prune``, ``hl.SparseLinear.from_linear``, ``hl.compress``, the LSTM modules,
``tradeoff.layers_at_budget`` and the method registry's ``Method.stored`` (:mod:`hmf_lab.nn.methods`).
Pruning exactly as big as LMF (a same-size comparison) is the explicit option ``count="lmf"`` /
``prune_count="lmf"`` (or :func:`equal_budget`), never the default.

>>> value_budget((64, 48), 4), lmf_rank((64, 48), 4), prune_keep((64, 48), 4)
(768, 6, 768)
>>> hmf_params(64, 48, 8, 12) == 8*48 + 12*(64-8) + 12*48
True
"""
from __future__ import annotations

import math
import numbers
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from hmf_lab.factor._validation import as_int, check_compression, check_rank, check_split

__all__ = ["hmf_params", "lmf_params", "csr_index_bytes", "csr_bytes", "value_budget", "largest_rank", "lmf_rank",
           "max_split", "choose_split_rank", "EqualBudget", "equal_budget", "equal_budget_splits", "prune_keep",
           "PRUNE_COUNTS", "budget", "col_params", "choose_col_split_rank", "max_col_split"]


def hmf_params(m: int, n: int, split: int, rank: int) -> int:
    """Stored values of HMF: ``k*n + r*(m-k) + r*n`` (LMF is ``split=0``)."""
    return split * n + rank * (m - split) + rank * n


def col_params(m: int, n: int, split: int, rank: int) -> int:
    """Stored values of column-split HMF (``split`` input columns dense): ``m*k + m*r + r*(n-k)``.

    The column split of W is the row split of W^T, so this is ``hmf_params(n, m, k, r)``.

    >>> col_params(64, 48, 8, 12) == 64*8 + 64*12 + 12*(48-8) == hmf_params(48, 64, 8, 12)
    True
    """
    return hmf_params(n, m, split, rank)


def lmf_params(m: int, n: int, rank: int) -> int:
    """Stored values of LMF: ``r*(m+n)``."""
    return rank * (m + n)


def csr_index_bytes(nnz: int) -> int:
    """Bytes per CSR index in the kit's sparse kernel: int32 (4) below 2**31 - 1 stored values, else int64 (8)."""
    return 4 if int(nnz) < 2**31 - 1 else 8


def csr_bytes(m: int, nnz: int, value_bytes: int = 4, index_bytes: int = 4) -> int:
    """Bytes of an (m, n) CSR matrix with ``nnz`` stored values: values + column indices + m+1 row pointers.

    The kit's one CSR byte count (``hl.timing.csr_bytes`` is this function); ``index_bytes=4`` matches the
    timed kernel (int32 indices, see ``SparseLinear._csr32`` and :func:`csr_index_bytes`).

    >>> import hmf_lab as hl
    >>> hl.factor.budget.csr_bytes(4, 3)
    44
    """
    return int(nnz) * (int(value_bytes) + int(index_bytes)) + (int(m) + 1) * int(index_bytes)


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
    >>> hl.factor.budget.value_budget((512, 512), 4), hl.factor.budget.value_budget((3, 7), 2)
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
    >>> hl.factor.budget.largest_rank((1024, 1024), 262144), hl.factor.budget.largest_rank((1024, 1024), 262144, split=87)
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
    >>> hl.factor.budget.max_split((128, 64), 8)
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
    >>> df = hl.factor.budget.equal_budget_splits((128, 128), compression=16)
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
    >>> e = hl.factor.budget.equal_budget((128, 128), compression=16)
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
                f"(all: hl.factor.budget.equal_budget_splits({(m, n)}, {compression!r}))")
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
    >>> hl.factor.budget.prune_keep((64, 48), 4), hl.factor.budget.prune_keep((64, 48), 4, count="lmf")
    (768, 672)
    >>> hl.factor.budget.prune_keep((128, 128), 1), hl.factor.budget.prune_keep((8, 1), 2)
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


# --------------------------------------------------------------------------- column split

def choose_col_split_rank(shape, compression=None, split=None, rank=None) -> tuple[int, int]:
    """The (split, rank) of column-split HMF for an (m, n) matrix: ``split`` input columns dense.

    The same rules as :func:`choose_split_rank` on the transposed shape (n, m): the column split of W is
    the row split of W^T, the value budget ``floor(m*n / compression)`` is symmetric, and so is LMF's size
    ``r*(m+n)`` (the default stays within 1% of it, never over the budget).

    >>> choose_col_split_rank((65, 256), 4)   # a wide decoder: 11 dense columns + rank 10 (LMF: rank 12)
    (11, 10)
    >>> choose_col_split_rank((65, 256), 1)
    (256, 0)
    """
    m, n = _shape(shape)
    return choose_split_rank((n, m), compression, split, rank)


def max_col_split(shape, compression) -> int:
    """The largest column split of an (m, n) matrix with a rank >= 1 inside ``floor(m*n / compression)``.

    >>> max_col_split((64, 128), 8), max_split((128, 64), 8)
    (13, 13)
    """
    m, n = _shape(shape)
    return max_split((n, m), compression)
