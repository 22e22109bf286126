"""Synthetic weight matrices (and calibration inputs) with known structure, for testing split heuristics.

Every generator is seeded and returns a float tensor of shape (m, n) (``nn.Linear.weight`` layout).
The families are the situations where the choice of dense rows matters:

- :func:`low_rank_noise`  -- a planted rank-``rank`` matrix plus Gaussian noise (LMF's home ground);
- :func:`loud_rows`       -- low rank + noise with a few *loud* rows (large, unstructured) at random
  positions: each loud row eats a whole rank-one direction of the factorization unless kept dense;
- :func:`heavy_tailed`    -- power-law singular values ``s_i = i**-alpha`` (the heavy-tailed spectra of
  trained weights, Martin & Mahoney, 2021) with heavy-tailed row scales;
- :func:`concentrated_inputs` -- calibration inputs ``X`` that live near a few directions, the case where
  a data-aware fit beats any weight-space fit.

>>> import hmf_lab as hl
>>> W, loud = hl.synthetic.loud_rows(64, 48, n_loud=4, seed=0, return_rows=True)
>>> tuple(W.shape), len(loud)
((64, 48), 4)
>>> sorted(hl.synthetic.suite(quick=True))[:2]
['heavy_tailed', 'loud_rows']
"""
from __future__ import annotations

import math

import torch

from hmf_lab.factor._validation import quick_mode
from hmf_lab.factor._validation import as_int

__all__ = ["singular_values", "with_spectrum", "low_rank_noise", "loud_rows", "heavy_tailed", "concentrated_inputs", "suite", "random_orthonormal"]


def _gen(seed: int) -> torch.Generator:
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise TypeError(f"seed must be an int, got {type(seed).__name__} {seed!r}")
    return torch.Generator().manual_seed(seed)


def _check_shape(m, n):
    for name, v in (("m", m), ("n", n)):
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ValueError(f"{name} must be a positive int, got {v!r}")


def _check_dtype(dtype):
    if dtype not in (torch.float32, torch.float64):
        raise TypeError(f"dtype must be torch.float32 or torch.float64, got {dtype!r}")


def random_orthonormal(rows: int, cols: int, *, seed: int = 0) -> torch.Tensor:
    """A (rows, cols) matrix with orthonormal columns (cols <= rows), Haar-distributed, float64.

    >>> Q = random_orthonormal(5, 3)
    >>> torch.allclose(Q.T @ Q, torch.eye(3, dtype=torch.float64))
    True
    """
    if cols > rows:
        raise ValueError(f"random_orthonormal needs cols <= rows, got ({rows}, {cols})")
    A = torch.randn(rows, cols, generator=_gen(seed), dtype=torch.float64)
    Q, R = torch.linalg.qr(A)
    return Q * torch.sign(torch.diagonal(R))  # sign fix: Haar measure


# --------------------------------------------------------------------------- matrices with known spectra


def singular_values(count: int, kind: str = "exp", *, decay: float = 0.05, top: float = 1.0) -> torch.Tensor:
    """A designed spectrum of ``count`` values: "exp" (``top*exp(-decay*i)``), "power" (``top/(i+1)**decay``), "flat".

    >>> singular_values(3, "power", decay=1.0).tolist()
    [1.0, 0.5, 0.3333333432674408]
    """
    count = as_int(count, "count")
    if count < 1:
        raise ValueError(f"count must be an int >= 1, got {count}")
    i = torch.arange(count, dtype=torch.float64)
    if kind == "exp":
        s = top * torch.exp(-decay * i)
    elif kind == "power":
        s = top / (i + 1) ** decay
    elif kind == "flat":
        s = torch.full((count,), float(top), dtype=torch.float64)
    else:
        raise ValueError(f"kind must be one of 'exp', 'power', 'flat', got {kind!r}")
    return s.float()


def with_spectrum(m: int, n: int, spectrum="exp", *, seed: int = 0, **kw) -> torch.Tensor:
    """An (m, n) float32 matrix ``Q1 diag(s) Q2^T`` with exactly the singular values ``s`` (random orthogonal Q's).

    ``spectrum`` is a kind for :func:`singular_values` (keyword arguments go there) or the values themselves.
    (``hl.exercises.with_spectrum`` is the same function; ``hl.exercises.synthetic`` its deprecated name.)

    >>> W = with_spectrum(30, 20, "power", decay=1.0)
    >>> torch.allclose(torch.linalg.svdvals(W), singular_values(20, "power", decay=1.0), atol=1e-5)
    True
    """
    m, n = as_int(m, "m"), as_int(n, "n")
    if m < 1 or n < 1:
        raise ValueError(f"m and n must be >= 1, got ({m}, {n})")
    p = min(m, n)
    if isinstance(spectrum, str):
        s = singular_values(p, spectrum, **kw)
    else:
        s = torch.as_tensor(spectrum, dtype=torch.float32).reshape(-1)
        if s.numel() != p or bool((s < 0).any()):
            raise ValueError(f"spectrum must hold min(m, n) = {p} values >= 0, got {s.numel()} values")
        s = torch.sort(s, descending=True).values
    Q1 = random_orthonormal(m, p, seed=int(seed))  # (m, p)
    Q2 = random_orthonormal(n, p, seed=int(seed) + 1)  # (n, p)
    return ((Q1 * s.double()) @ Q2.T).float()


def low_rank_noise(m: int, n: int, rank: int = 8, noise: float = 0.05, *, seed: int = 0,
                   dtype=torch.float32) -> torch.Tensor:
    """A rank-``rank`` matrix with unit singular values plus i.i.d. noise of total relative size ``noise``.

    Spectrum: ``rank`` singular values near 1, then a noise floor; ``||noise||_F ~ noise * ||low rank||_F``.

    >>> W = low_rank_noise(32, 24, rank=4, noise=0.0)
    >>> int(torch.linalg.matrix_rank(W))
    4
    """
    _check_shape(m, n)
    _check_dtype(dtype)
    if not 1 <= rank <= min(m, n):
        raise ValueError(f"rank must lie in [1, min(m, n)]=[1, {min(m, n)}], got {rank}")
    if noise < 0:
        raise ValueError(f"noise must be >= 0, got {noise}")
    g = _gen(seed)
    U = random_orthonormal(m, rank, seed=seed + 1)
    V = random_orthonormal(n, rank, seed=seed + 2)
    L = U @ V.T  # (m, n), ||L||_F^2 = rank
    E = torch.randn(m, n, generator=g, dtype=torch.float64)
    E = E * (noise * math.sqrt(rank) / math.sqrt(m * n))
    return (L + E).to(dtype)


def loud_rows(m: int, n: int, n_loud: int = 8, loudness: float = 10.0, rank: int = 8, noise: float = 0.05, *,
              seed: int = 0, dtype=torch.float32, return_rows: bool = False):
    """Low rank + noise, with ``n_loud`` rows at random positions replaced by loud random rows.

    A loud row has norm ``loudness`` times the typical row norm and a random direction, so a low-rank
    fit must spend a whole rank-one term on each of them. Keeping them dense is the right call; "top"
    keeps them only by luck. With ``return_rows=True`` returns ``(W, rows)`` (sorted loud-row indices).

    >>> W, rows = loud_rows(40, 30, n_loud=3, seed=1, return_rows=True)
    >>> norms = W.norm(dim=1)
    >>> sorted(norms.topk(3).indices.tolist()) == rows.tolist()
    True
    """
    _check_shape(m, n)
    if not 0 <= n_loud <= m:
        raise ValueError(f"n_loud must lie in [0, m]=[0, {m}], got {n_loud}")
    W = low_rank_noise(m, n, rank=rank, noise=noise, seed=seed, dtype=torch.float64)
    g = _gen(seed + 3)
    rows = torch.randperm(m, generator=g)[:n_loud].sort().values
    typical = float(W.norm(dim=1).median())
    R = torch.randn(n_loud, n, generator=g, dtype=torch.float64)
    W[rows] = R / R.norm(dim=1, keepdim=True) * (loudness * typical)
    W = W.to(dtype)
    return (W, rows) if return_rows else W


def heavy_tailed(m: int, n: int, alpha: float = 1.0, row_tail: float = 3.0, *, seed: int = 0,
                 dtype=torch.float32) -> torch.Tensor:
    """Power-law spectrum ``s_i = i**-alpha`` with random singular vectors and Student-t row scales.

    Trained weights show heavy-tailed spectra (Martin & Mahoney, JMLR 2021) and uneven row norms;
    ``row_tail`` is the Student-t degrees of freedom of the row scales (smaller: more uneven rows;
    ``math.inf`` for none).

    >>> W = heavy_tailed(30, 20, alpha=1.0, row_tail=math.inf)
    >>> s = torch.linalg.svdvals(W.double())
    >>> round(float(s[0] / s[1]), 3)
    2.0
    """
    _check_shape(m, n)
    _check_dtype(dtype)
    q = min(m, n)
    s = torch.arange(1, q + 1, dtype=torch.float64) ** (-float(alpha))
    W = random_orthonormal(m, q, seed=seed + 1) * s @ random_orthonormal(n, q, seed=seed + 2).T
    if math.isfinite(row_tail):
        t = torch.distributions.StudentT(torch.tensor(float(row_tail), dtype=torch.float64))
        with torch.random.fork_rng():  # StudentT has no generator argument: seed a private RNG state
            torch.manual_seed(seed + 4)
            scale = 1.0 + t.sample((m,)).abs()
        W = W * scale[:, None]
    return W.to(dtype)


def concentrated_inputs(N: int, n: int, directions: int = 4, noise: float = 0.01, *, seed: int = 0,
                        dtype=torch.float32) -> torch.Tensor:
    """Calibration inputs ``X`` (N, n) near a ``directions``-dimensional subspace plus small isotropic noise.

    Models the activations of a trained network, which fill only a few directions of input space.

    >>> X = concentrated_inputs(200, 32, directions=3, noise=0.0)
    >>> int(torch.linalg.matrix_rank(X))
    3
    """
    _check_shape(N, n)
    if not 1 <= directions <= n:
        raise ValueError(f"directions must lie in [1, n]=[1, {n}], got {directions}")
    g = _gen(seed + 5)
    B = random_orthonormal(n, directions, seed=seed + 6)  # (n, d)
    scales = torch.linspace(3.0, 1.0, directions, dtype=torch.float64)
    Z = torch.randn(N, directions, generator=g, dtype=torch.float64) * scales
    X = Z @ B.T + noise * torch.randn(N, n, generator=g, dtype=torch.float64)
    return X.to(dtype)


def suite(*, seed: int = 0, quick: bool | None = None, dtype=torch.float32) -> dict[str, torch.Tensor]:
    """The synthetic families at one size each: name -> W. Quick mode (``HMF_LAB_QUICK=1``) uses 96 x 64.

    >>> {k: tuple(v.shape) for k, v in suite(quick=True).items()}["low_rank_noise"]
    (96, 64)
    """
    if quick is None:
        quick = quick_mode()
    m, n = (96, 64) if quick else (256, 192)
    r = 6 if quick else 16
    return {
        "low_rank_noise": low_rank_noise(m, n, rank=r, noise=0.3, seed=seed, dtype=dtype),
        "loud_rows": loud_rows(m, n, n_loud=r, rank=r, noise=0.05, seed=seed, dtype=dtype),
        "heavy_tailed": heavy_tailed(m, n, alpha=0.8, seed=seed, dtype=dtype),
    }
