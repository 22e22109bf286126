"""Split heuristics: which k rows of W stay dense in HMF.

A heuristic is a function ``fn(W, split, *, rank, X=None) -> LongTensor`` returning ``split``
distinct row indices of ``W`` (m x n). Register your own with :func:`register_heuristic`; every
function that takes ``heuristic=`` accepts a registered name, a callable, or explicit row indices,
resolved in one place (:func:`select_rows`), whose output is validated.

Example
-------
>>> import torch, hmf_lab as hl
>>> @hl.register_heuristic("last_rows")
... def last_rows(W, split, *, rank, X=None):
...     return torch.arange(W.shape[0] - split, W.shape[0])
>>> hl.hmf(torch.randn(8, 6), split=2, rank=2, heuristic="last_rows").rows.tolist()
[6, 7]
>>> del hl.HEURISTICS["last_rows"]
"""
from __future__ import annotations

from typing import Callable

import numpy as np
import torch

__all__ = ["HEURISTICS", "register_heuristic", "select_rows", "top", "random_rows", "row_norm"]

Heuristic = Callable[..., torch.Tensor]

#: name -> heuristic function. Add to it with :func:`register_heuristic`.
HEURISTICS: dict[str, Heuristic] = {}


def register_heuristic(name: str, *, overwrite: bool = False):
    """Decorator that adds a split heuristic to :data:`HEURISTICS` under ``name``.

    >>> @register_heuristic("first_rows_demo")
    ... def first_rows_demo(W, split, *, rank, X=None):
    ...     return torch.arange(split)
    >>> "first_rows_demo" in HEURISTICS
    True
    >>> del HEURISTICS["first_rows_demo"]
    """
    if not isinstance(name, str) or not name:
        raise TypeError(f"heuristic name must be a non-empty str, got {name!r}")
    if name in HEURISTICS and not overwrite:
        raise ValueError(
            f"a heuristic named {name!r} is already registered; pick another name or pass overwrite=True"
        )

    def decorator(fn: Heuristic) -> Heuristic:
        if not callable(fn):
            raise TypeError(f"register_heuristic({name!r}) must decorate a callable, got {type(fn).__name__}")
        HEURISTICS[name] = fn
        return fn

    return decorator


def _describe(heuristic) -> str:
    if isinstance(heuristic, str):
        return f"heuristic {heuristic!r}"
    if callable(heuristic):
        return f"heuristic {getattr(heuristic, '__name__', repr(heuristic))!r}"
    return "explicit rows"


def select_rows(W: torch.Tensor, split: int, rank: int, heuristic="top", X=None) -> torch.Tensor:
    """Resolve ``heuristic`` and return its ``split`` sorted, distinct row indices (int64).

    ``heuristic`` is a registered name, a callable, or explicit indices (list, numpy array or tensor).
    ``W`` must already be validated (2-D float tensor) and ``split``/``rank`` checked.
    """
    m = W.shape[0]
    who = _describe(heuristic)
    if isinstance(heuristic, str):
        if heuristic not in HEURISTICS:
            raise ValueError(
                f"unknown heuristic {heuristic!r}; valid names are {sorted(HEURISTICS)} "
                f"(or pass a callable, or explicit row indices)"
            )
        rows = HEURISTICS[heuristic](W, split, rank=rank, X=X)
    elif callable(heuristic):
        rows = heuristic(W, split, rank=rank, X=X)
    elif isinstance(heuristic, (list, tuple, range, np.ndarray, torch.Tensor)):
        rows = heuristic
    else:
        raise TypeError(
            f"heuristic must be a registered name {sorted(HEURISTICS)}, a callable, or row indices, "
            f"got {type(heuristic).__name__}"
        )
    return _validate_rows(rows, split, m, who)


def _validate_rows(rows, split: int, m: int, who: str) -> torch.Tensor:
    if isinstance(rows, (list, tuple, range)):
        rows = np.asarray(list(rows))
        if rows.size == 0:
            rows = rows.astype(np.int64)
    if isinstance(rows, np.ndarray):
        if rows.dtype.kind not in "iu":
            raise TypeError(f"{who} must return integer row indices, got numpy dtype {rows.dtype}")
        rows = torch.from_numpy(rows.astype(np.int64))
    if not isinstance(rows, torch.Tensor):
        raise TypeError(f"{who} must return a LongTensor of row indices, got {type(rows).__name__}")
    if rows.dtype == torch.bool or rows.is_floating_point() or rows.is_complex():
        raise TypeError(f"{who} must return integer row indices, got dtype {rows.dtype}")
    rows = rows.reshape(-1).to(torch.int64)
    if rows.numel() != split:
        raise ValueError(f"{who} must return split={split} row indices, got {rows.numel()}")
    if rows.numel():
        lo, hi = int(rows.min()), int(rows.max())
        if lo < 0 or hi >= m:
            raise ValueError(f"{who} returned out-of-range rows: indices must lie in [0, m-1]=[0, {m - 1}], got min {lo}, max {hi}")
    rows = torch.sort(rows).values
    if rows.numel() > 1 and bool((rows[1:] == rows[:-1]).any()):
        dup = rows[1:][rows[1:] == rows[:-1]].unique().tolist()[:5]
        raise ValueError(f"{who} returned duplicate rows {dup}; the {split} dense rows must be distinct")
    return rows


@register_heuristic("top")
def top(W, split, *, rank, X=None):
    """The paper's choice: keep the first ``split`` rows dense (Thakker et al., 2020).

    The paper trains the HMF structure from scratch, so which rows are dense does not matter there;
    on a pretrained matrix it is an arbitrary choice and a baseline for the others.
    """
    return torch.arange(split, dtype=torch.int64)


@register_heuristic("random")
def random_rows(W, split, *, rank, X=None, seed: int = 0):
    """A seeded random baseline: ``split`` rows drawn uniformly without replacement."""
    g = torch.Generator().manual_seed(seed)
    return torch.randperm(W.shape[0], generator=g)[:split]


@register_heuristic("row_norm")
def row_norm(W, split, *, rank, X=None):
    """Keep the ``split`` rows of largest Euclidean norm dense.

    Loud rows carry most of the energy and are what a low-rank fit of the rest would miss most;
    a cheap data-free proxy (compare magnitude pruning, Han et al., 2015).
    """
    norms = torch.linalg.vector_norm(W, dim=1)
    return torch.topk(norms, split).indices
