"""Input checks shared by every public function (private: not part of the API).

Every check raises ``TypeError`` or ``ValueError`` with a message that says what was
expected, what arrived, and how to fix it. Nothing is silently clipped or cast.
"""
from __future__ import annotations

import math
import numbers
import os

import numpy as np
import torch

_FLOAT_DTYPES = (torch.float32, torch.float64)


def as_matrix(W, name: str = "W") -> torch.Tensor:
    """Return ``W`` as a detached 2-D float32/float64 torch tensor, or raise.

    numpy arrays are wrapped without copying; torch tensors are detached.
    """
    if isinstance(W, np.ndarray):
        if W.dtype == object:
            raise TypeError(f"{name} must be a numeric array, got a numpy array of dtype object")
        if np.iscomplexobj(W) or W.dtype.kind in "biu":
            raise TypeError(
                f"{name} must have a real floating dtype (float32 or float64), got numpy {W.dtype}; "
                f"convert it first, e.g. {name}.astype(np.float32)"
            )
        if W.dtype not in (np.float32, np.float64):
            raise TypeError(
                f"{name} must be float32 or float64, got numpy {W.dtype}; "
                f"convert it first, e.g. {name}.astype(np.float32)"
            )
        W = torch.from_numpy(np.ascontiguousarray(W))
    elif not isinstance(W, torch.Tensor):
        raise TypeError(
            f"{name} must be a torch.Tensor or numpy.ndarray of shape (m, n), got {type(W).__name__}"
        )
    if W.dtype not in _FLOAT_DTYPES:
        raise TypeError(
            f"{name} must have dtype float32 or float64, got {W.dtype}; "
            f"convert it first, e.g. {name}.float() or {name}.double()"
        )
    if W.ndim != 2:
        raise ValueError(
            f"{name} must be a 2-D matrix of shape (m, n) (out_features, in_features), "
            f"got {W.ndim}-D shape {tuple(W.shape)}"
        )
    if W.numel() == 0:
        raise ValueError(f"{name} must be non-empty, got shape {tuple(W.shape)}")
    _not_meta(W, name)
    if W.layout != torch.strided:
        raise TypeError(f"{name} must be a dense (strided) tensor, got layout {W.layout}; use {name}.to_dense()")
    finite = torch.isfinite(W)
    if not bool(finite.all()):
        bad = int((~finite).sum())
        raise ValueError(
            f"{name} must be finite, but it contains {bad} NaN or Inf entries; "
            f"clean it first, e.g. torch.nan_to_num({name})"
        )
    return W.detach()


def as_int(value, name: str) -> int:
    """Return ``value`` as a Python int; refuse bools, floats and other types."""
    if isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be an int, got bool {value!r}")
    if isinstance(value, torch.Tensor):
        _not_meta(value, name)  # a meta tensor has no value to read
        if value.ndim == 0 and not value.is_floating_point() and not value.is_complex() and value.dtype != torch.bool:
            return int(value)
        raise TypeError(f"{name} must be an int, got tensor of dtype {value.dtype} and shape {tuple(value.shape)}")
    if isinstance(value, numbers.Integral):
        return int(value)
    raise TypeError(
        f"{name} must be an int, got {type(value).__name__} {value!r}; "
        f"pass e.g. {name}=int({value!r}) if you meant it"
    )


def check_split(split, m: int) -> int:
    k = as_int(split, "split")
    if not 0 <= k <= m:
        raise ValueError(f"split must be an int in [0, m]=[0, {m}], got {k}")
    return k


def check_rank(rank, m: int, n: int, k: int) -> int:
    r = as_int(rank, "rank")
    hi = min(m - k, n)
    if k == m:
        if r != 0:
            raise ValueError(
                f"rank must be 0 when split = m = {m} (every row is dense, nothing is left to factorize), got {r}"
            )
        return r
    if not 1 <= r <= hi:
        raise ValueError(
            f"rank must be an int in [1, min(m-split, n)]=[1, {hi}] for shape ({m}, {n}) and split {k}, got {r}"
            + ("; rank 0 is only allowed when split = m" if r == 0 else "")
        )
    return r


def check_compression(compression, name: str = "compression") -> float:
    if isinstance(compression, (bool, np.bool_)) or not isinstance(compression, numbers.Real):
        raise TypeError(f"{name} must be a real number >= 1, got {type(compression).__name__} {compression!r}")
    try:
        c = float(compression)
    except OverflowError:  # an int beyond float range, e.g. 10**400
        raise ValueError(f"{name} must be a finite number >= 1 (dense size / compressed size), "
                         f"got an int too large for a float ({len(str(abs(int(compression))))} digits)") from None
    if not math.isfinite(c) or c < 1:
        raise ValueError(f"{name} must be a finite number >= 1 (dense size / compressed size), got {compression!r}")
    return c


def as_inputs(x, n: int, name: str = "x", like: torch.Tensor | None = None) -> torch.Tensor:
    """Return inputs ``x`` of shape (..., n) as a float tensor (dtype of ``like`` if given)."""
    if isinstance(x, np.ndarray):
        if x.dtype not in (np.float32, np.float64):
            raise TypeError(f"{name} must be float32 or float64, got numpy {x.dtype}; convert it first, "
                            f"e.g. {name}.astype(np.float32)")
        x = torch.from_numpy(np.ascontiguousarray(x))
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor or numpy.ndarray of shape (..., {n}), got {type(x).__name__}")
    if x.dtype not in _FLOAT_DTYPES:
        raise TypeError(f"{name} must have dtype float32 or float64, got {x.dtype}; convert it with {name}.float()")
    if x.ndim < 1 or x.shape[-1] != n:
        raise ValueError(f"{name} must have shape (..., n) with n = {n}, got shape {tuple(x.shape)}")
    _not_meta(x, name)
    if like is not None and x.dtype != like.dtype:
        x = x.to(like.dtype)
    return x


def _not_meta(t: torch.Tensor, name: str) -> None:
    if t.device.type == "meta":
        raise ValueError(f"{name} is on the meta device (a shape without values); pass a tensor with values, "
                         f"e.g. {name}.to_empty(device='cpu') filled, or build it on 'cpu'")


def as_calibration(X, n: int, like: torch.Tensor | None = None, name: str = "X") -> torch.Tensor:
    """Calibration inputs: :func:`as_inputs` of shape (N, n) with N >= 1 (leading dims flattened), finite."""
    X = as_inputs(X, n, name=name, like=like)
    X = X.reshape(-1, n)
    if X.shape[0] == 0:
        raise ValueError(f"{name} (calibration inputs) must hold at least one row of width {n}, got shape (0, {n}); "
                         f"pass real inputs or X=None")
    if not bool(torch.isfinite(X).all()):
        raise ValueError(f"{name} (calibration inputs) must be finite, but it contains NaN or Inf entries")
    return X


# --------------------------------------------------------------------------- environment switches

def quick_mode() -> bool:
    """True when ``HMF_LAB_QUICK`` is set to anything but "", "0", "false", "no" or "off" (case-insensitive).

    Quick mode shrinks notebook, benchmark and CLI work so CI stays fast.
    """
    return os.environ.get("HMF_LAB_QUICK", "").strip().lower() not in ("", "0", "false", "no", "off")
