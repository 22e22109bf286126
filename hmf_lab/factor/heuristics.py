"""Split heuristics: which k rows of W stay dense in HMF.

A heuristic is a function ``fn(W, split, *, rank, X=None) -> LongTensor`` returning ``split``
distinct row indices of ``W`` (m x n). Register your own with :func:`register_heuristic`; every
function that takes ``heuristic=`` accepts a registered name, a callable, or explicit row indices,
resolved in one place (:func:`select_rows`), whose output is validated (count, range, distinctness,
integer dtype, and that ``W`` was not modified) with errors that name the heuristic.

Built-ins (each docstring explains the idea and gives a reference):

============  ==========  =====================================================================
name          needs       keeps dense ...
============  ==========  =====================================================================
top           --          the first k rows (the paper)
random        --          k rows drawn uniformly (seeded baseline)
row_norm      --          the k rows of largest norm
residual      --          the rows worst explained by the rank-r SVD of all of W
leverage      --          the rows of largest rank-r leverage score (rows that own a direction)
greedy        --          rows moved one batch at a time, each time those whose removal most
                          lowers the factorized block's tail energy (cheap rank-one update)
activation    X           greedy in output space ``W C^(1/2)``; hmf then fits the low-rank part
                          on whitened inputs (minimises ``||X W^T - X W_hat^T||``)
fisher        grad        greedy on Fisher-weighted rows (pass gradients with :func:`fisher_from`)
============  ==========  =====================================================================

Column-split HMF (``hl.hmf_cols``) has its own registry, :data:`COL_HEURISTICS` (``top``, ``col_norm``,
``activation``: input-activation energy ``||X[:, j]||^2 ||W[:, j]||^2``), see the end of this module.

Expensive built-ins cache their answer keyed on the *content* of ``W`` (and ``X``, ``grad``), so a
slider that calls them again with the same matrix is instant; :func:`clear_cache` empties it.

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

import functools
import hashlib
import inspect
import math
from collections import OrderedDict
from typing import Callable

import numpy as np
import torch

__all__ = ["default_heuristic", 
    "HEURISTICS", "register_heuristic", "select_rows", "resolve_fit", "whitened_fit", "whitening",
    "clear_cache", "fisher_from",
    "top", "random_rows", "row_norm", "residual", "leverage", "greedy", "activation", "fisher",
    "COL_HEURISTICS", "register_col_heuristic", "select_cols", "channel_energy", "outlier_stats",
]

Heuristic = Callable[..., torch.Tensor]

#: name -> heuristic function. Add to it with :func:`register_heuristic`.
HEURISTICS: dict[str, Heuristic] = {}

_REQUIREMENTS = ("X", "grad")
_FITS = ("svd", "whitened")


def _check_signature(name: str, fn) -> None:
    """Refuse at registration a function that cannot be called as ``fn(W, split, rank=r, X=X)``."""
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):  # builtins without a signature: trust them
        return
    try:
        sig.bind(None, 0, rank=0, X=None)
    except TypeError as err:
        raise TypeError(
            f"heuristic {name!r} must accept fn(W, split, *, rank, X=None), got signature {fn.__name__}{sig} "
            f"({err}); add the missing parameters, e.g. def {fn.__name__}(W, split, *, rank, X=None)"
        ) from None


def register_heuristic(name: str, *, overwrite: bool = False, requires=(), fit: str | None = None):
    """Decorator that adds a split heuristic to :data:`HEURISTICS` under ``name``.

    The function must accept ``fn(W, split, *, rank, X=None)`` (checked here) and return ``split``
    distinct row indices. ``requires`` names what it cannot work without (``"X"``: calibration
    inputs, ``"grad"``: gradients); the leaderboard skips it where those are missing. ``fit="whitened"``
    asks :func:`hmf_lab.hmf` to fit the low-rank part on whitened inputs when ``X`` is given.

    >>> @register_heuristic("first_rows_demo")
    ... def first_rows_demo(W, split, *, rank, X=None):
    ...     return torch.arange(split)
    >>> "first_rows_demo" in HEURISTICS
    True
    >>> del HEURISTICS["first_rows_demo"]
    """
    return _registrar(HEURISTICS, "heuristic", "register_heuristic", name, overwrite, requires, fit)


def _registrar(registry: dict, kind: str, who: str, name, overwrite, requires, fit):
    """The decorator of :func:`register_heuristic` (``kind`` "heuristic") and :func:`register_col_heuristic`
    (``kind`` "column heuristic"): checks the options, then the function, and adds it to ``registry``."""
    if not isinstance(name, str) or not name:
        raise TypeError(f"{kind} name must be a non-empty str, got {name!r}")
    if name in registry and not overwrite:
        raise ValueError(f"a {kind} named {name!r} is already registered; pick another name or pass overwrite=True")
    requires = (requires,) if isinstance(requires, str) else tuple(requires)
    bad = [q for q in requires if q not in _REQUIREMENTS]
    if bad:
        raise ValueError(f"requires must be a subset of {_REQUIREMENTS}, got {bad}")
    if fit is not None and fit not in _FITS:
        raise ValueError(f"fit must be None or one of {_FITS}, got {fit!r}")

    def decorator(fn: Heuristic) -> Heuristic:
        if not callable(fn):
            raise TypeError(f"{who}({name!r}) must decorate a callable, got {type(fn).__name__}")
        _check_signature(name, fn)
        if requires:
            fn.requires = frozenset(requires)
        if fit is not None:
            fn.preferred_fit = fit
        registry[name] = fn
        return fn

    return decorator


def _describe(heuristic) -> str:
    if isinstance(heuristic, str):
        return f"heuristic {heuristic!r}"
    if callable(heuristic):
        return f"heuristic {getattr(heuristic, '__name__', repr(heuristic))!r}"
    return "the heuristic's explicit rows"  # names the argument: explicit indices come in as heuristic=


def _resolve(heuristic):
    """A registered name or a callable -> the function (None for explicit rows)."""
    if isinstance(heuristic, str):
        if heuristic not in HEURISTICS:
            raise ValueError(
                f"unknown heuristic {heuristic!r}; valid names are {sorted(HEURISTICS)} "
                f"(or pass a callable, or explicit row indices)"
            )
        return HEURISTICS[heuristic]
    if callable(heuristic):
        return heuristic
    if isinstance(heuristic, (list, tuple, range, np.ndarray, torch.Tensor)):
        return None
    raise TypeError(
        f"heuristic must be a registered name {sorted(HEURISTICS)}, a callable, or row indices, "
        f"got {type(heuristic).__name__}"
    )


def select_rows(W: torch.Tensor, split: int, rank: int, heuristic="top", X=None) -> torch.Tensor:
    """Resolve ``heuristic`` and return its ``split`` sorted, distinct row indices (int64).

    ``heuristic`` is a registered name, a callable, or explicit indices (list, numpy array or tensor).
    ``W`` (m, n) is validated here too, so callers that pick rows per block (e.g. the four gate
    blocks of an LSTM matrix) can call this directly. A heuristic that modifies ``W`` in place is
    refused.

    >>> import torch
    >>> select_rows(torch.tensor([[0., 1.], [5., 5.], [1., 0.]]), 1, 1, "row_norm").tolist()
    [1]
    """
    from hmf_lab.factor._validation import as_calibration, as_int, as_matrix, check_split

    W = as_matrix(W)
    m, n = W.shape
    split = check_split(split, m)
    rank = as_int(rank, "rank")
    if not 0 <= rank <= min(m, n):
        raise ValueError(f"rank must be an int in [0, min(m, n)]=[0, {min(m, n)}], got {rank}")
    if X is not None:
        X = as_calibration(X, n, like=W)
    return _select_rows(W, split, rank, heuristic, X)


def _select_rows(W: torch.Tensor, split: int, rank: int, heuristic="top", X=None) -> torch.Tensor:
    """:func:`select_rows` for arguments the caller has already validated (``hl.hmf``, ``HMFCache``).

    Skips the O(m n) finiteness check of W, which a sweep would otherwise repeat for every (split, rank).
    """
    m = W.shape[0]
    who = _describe(heuristic)
    fn = _resolve(heuristic)
    if fn is None:
        rows = heuristic
    else:
        builtin = getattr(fn, "__module__", None) == __name__
        if not builtin:
            _check_signature(getattr(fn, "__name__", repr(fn)), fn)
        # a user heuristic gets a copy: one that writes into W must not change the caller's tensor
        Wh = W if builtin else W.clone()
        tracked = not Wh.is_inference()  # inference tensors (torch.inference_mode) keep no version counter
        version = Wh._version if tracked else None
        snapshot = None if tracked or builtin else Wh.clone()
        rows = fn(Wh, split, rank=rank, X=X)
        changed = (Wh._version != version) if tracked else (snapshot is not None and not torch.equal(Wh, snapshot))
        if changed:
            raise ValueError(f"{who} modified W in place; a heuristic must only read W (clone it first). "
                               f"It ran on a copy, so your W is unchanged")
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
    if rows.dtype == torch.bool:
        raise TypeError(
            f"{who} must return integer row indices, got a bool mask; convert it with mask.nonzero().flatten()"
        )
    if rows.is_floating_point() or rows.is_complex():
        raise TypeError(f"{who} must return integer row indices, got dtype {rows.dtype}")
    if rows.device.type == "meta":
        raise ValueError(f"{who} returned row indices on the meta device (no values); return a CPU LongTensor")
    rows = rows.detach().cpu().reshape(-1).to(torch.int64)
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


# --------------------------------------------------------------------------- fitting the low-rank part


def resolve_fit(fit, heuristic, X) -> str:
    """How :func:`hmf_lab.hmf` fits the factorized block: ``"svd"`` or ``"whitened"``.

    ``fit=None`` (the default) means ``"svd"`` (the Eckart–Young optimum of the weight error) unless
    ``X`` is given and the heuristic prefers a whitened fit (the built-in ``"activation"`` does).
    ``"whitened"`` minimises the output error ``||X (L - U V)^T||_F`` instead and needs ``X``.

    >>> resolve_fit(None, "top", None), resolve_fit(None, "activation", torch.ones(3, 2))
    ('svd', 'whitened')
    """
    if fit is None:
        try:
            fn = _resolve(heuristic)
        except (TypeError, ValueError):
            fn = None
        pref = getattr(fn, "preferred_fit", "svd") if fn is not None else "svd"
        return "whitened" if (pref == "whitened" and X is not None) else "svd"
    if fit not in _FITS:
        raise ValueError(f"fit must be None, 'svd' or 'whitened', got {fit!r}")
    if fit == "whitened" and X is None:
        raise ValueError("fit='whitened' needs calibration inputs X of shape (N, n); pass X=..., or use fit='svd'")
    return fit


# --------------------------------------------------------------------------- caching by content

_ROW_CACHE: OrderedDict = OrderedDict()  # small: row indices and per-row scores
_BIG_CACHE: OrderedDict = OrderedDict()  # large: whitening factors (n, n)
_ROW_CACHE_SIZE, _BIG_CACHE_SIZE = 256, 8


def _fingerprint(t) -> tuple | None:
    """A content key for a tensor: shape, dtype and a 128-bit hash of its bytes (None stays None)."""
    if t is None:
        return None
    if not isinstance(t, torch.Tensor):
        return ("obj", repr(t))
    a = t.detach().cpu().contiguous()
    h = hashlib.blake2b(a.view(torch.uint8).reshape(-1).numpy().tobytes() if a.numel() else b"", digest_size=16)
    return (tuple(a.shape), str(a.dtype), h.hexdigest())


def _lookup(store: OrderedDict, size: int, key, compute):
    if key in store:
        store.move_to_end(key)
        return store[key]
    value = compute()
    store[key] = value
    if len(store) > size:
        store.popitem(last=False)
    return value


def clear_cache() -> None:
    """Forget every cached heuristic answer and whitening factor (e.g. before timing a heuristic).

    >>> clear_cache()
    """
    _ROW_CACHE.clear()
    _BIG_CACHE.clear()


def _cached(fn):
    """Cache a heuristic's rows keyed on the content of W, X and tensor keyword arguments."""

    @functools.wraps(fn)
    def wrapper(W, split, *, rank, X=None, **kw):
        key = (fn.__name__, _fingerprint(W), _fingerprint(X), int(split), int(rank),
               tuple(sorted((k, _fingerprint(v) if isinstance(v, torch.Tensor) else repr(v)) for k, v in kw.items())))
        return _lookup(_ROW_CACHE, _ROW_CACHE_SIZE, key, lambda: fn(W, split, rank=rank, X=X, **kw)).clone()

    return wrapper


# --------------------------------------------------------------------------- numerical helpers (float64)


def whitening(X, *, eps: float = 1e-6) -> torch.Tensor:
    """Lower-triangular ``R`` (n, n), float64, with ``R R^T = X^T X / N + lam I`` (regularised Cholesky).

    Then ``||X E^T||_F^2 / N ~= ||E R||_F^2`` for any E (n columns): output error becomes a weight-space
    Frobenius norm. ``lam = eps * trace / n`` and grows tenfold until the factorization succeeds.
    Cached by the content of ``X``.

    >>> X = torch.randn(50, 4, dtype=torch.float64)
    >>> R = whitening(X, eps=0.0)
    >>> torch.allclose(R @ R.T, X.T @ X / 50)
    True
    """
    X = X.detach().reshape(-1, X.shape[-1])

    def compute():
        Xd = X.double()
        N, n = Xd.shape
        C = Xd.T @ Xd / max(N, 1)  # (n, n)
        C = (C + C.T) / 2
        scale = float(torch.diagonal(C).mean()) or 1.0
        lam = eps * scale
        eye = torch.eye(n, dtype=torch.float64)
        for _ in range(12):
            R, info = torch.linalg.cholesky_ex(C + lam * eye)
            if int(info) == 0:
                return R
            lam = max(lam * 10, 1e-12 * scale)
        raise ValueError("could not factor the input covariance X^T X / N even with regularisation; check X for NaN/Inf")

    return _lookup(_BIG_CACHE, _BIG_CACHE_SIZE, ("whitening", _fingerprint(X), eps), compute)


def whitened_fit(A: torch.Tensor, X, rank: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Rank-r ``U @ V`` minimising the output error ``||X A^T - X (U V)^T||_F`` (data-aware low-rank fit).

    With ``R R^T = X^T X / N`` (:func:`whitening`) the objective is ``||(A - U V) R||_F``; its optimum
    is ``U = U_r``, ``V = U_r^T A`` where ``U_r`` are the top-r left singular vectors of ``A R``
    (a projection of A, so no inverse of R is ever formed: safe when X fills few directions).
    Computed in float64, returned in A's dtype. (SVD-LLM, Wang et al. 2024; ASVD, Yuan et al. 2023.)

    >>> A = torch.randn(6, 4, dtype=torch.float64); X = torch.randn(100, 4, dtype=torch.float64)
    >>> U, V = whitened_fit(A, X, 2)
    >>> tuple(U.shape), tuple(V.shape)
    ((6, 2), (2, 4))
    """
    R = whitening(X)
    Ad = A.double()
    Ur = torch.linalg.svd(Ad @ R, full_matrices=False)[0][:, :rank]  # (m', r)
    V = Ur.T @ Ad  # (r, n)
    return Ur.to(A.dtype).contiguous(), V.to(A.dtype).contiguous()


def _svd64(A: torch.Tensor):
    """Thin SVD in float64, cached by content (heuristics ask for it repeatedly with the same W)."""
    return _lookup(_BIG_CACHE, _BIG_CACHE_SIZE, ("svd", _fingerprint(A)),
                   lambda: torch.linalg.svd(A.double(), full_matrices=False))


def _top_right(L: torch.Tensor, q: int, Q0: torch.Tensor | None, gen: torch.Generator):
    """Top-q singular values and right singular vectors (n, q) of L (float64).

    Exact SVD for small blocks; otherwise a few steps of subspace iteration warm-started from ``Q0``
    (the previous step's subspace), which is what makes each greedy step cheap.
    """
    M, n = L.shape
    if Q0 is None or min(M, n) <= 192:
        _, S, Vh = torch.linalg.svd(L, full_matrices=False)
        return S[:q], Vh[:q].T
    p = max(8, q // 4)
    extra = torch.randn(n, p, generator=gen, dtype=L.dtype)
    Q = torch.linalg.qr(torch.cat([Q0, extra], dim=1))[0]  # (n, q+p)
    for _ in range(2):
        Q = torch.linalg.qr(L.T @ (L @ Q))[0]  # (n, q+p)
    _, S, Vbh = torch.linalg.svd(L @ Q, full_matrices=False)  # Rayleigh–Ritz
    return S[:q], Q @ Vbh[:q].T


def _secular_min(lam: torch.Tensor, C: torch.Tensor, iters: int = 40) -> torch.Tensor:
    """Smallest eigenvalue of ``diag(lam) - c c^T`` for every row c of C (vectorised bisection).

    ``lam`` (q,) descending, C (M, q). Root of ``sum_j c_j^2 / (lam_j - mu) = 1`` below ``lam[-1]``.
    """
    c2 = C**2  # (M, q)
    hi = lam[-1].expand(C.shape[0]).clone()
    lo = hi - c2.sum(1)
    for _ in range(iters):
        mid = (lo + hi) / 2
        d = (lam[None, :] - mid[:, None]).clamp_min(1e-300)
        f = (c2 / d).sum(1)
        below = f < 1
        lo = torch.where(below, mid, lo)
        hi = torch.where(below, hi, mid)
    return ((lo + hi) / 2).clamp_min(0.0)


def _greedy_rows(A: torch.Tensor, split: int, rank: int, steps: int | None = None, seed: int = 0) -> torch.Tensor:
    """Greedy dense-row selection minimising the tail energy of the factorized block of A (float64).

    Each step estimates, for every remaining row w, how much removing it lowers the rank-r tail
    energy of the factorized block L, from the top r+1 singular triplets of L alone:
    ``gain = ||w||^2 - ||c||^2 + lam_{r+1} - mu_min(diag(lam) - c c^T)`` with ``c`` the components of w
    on the top r+1 right singular vectors. This is exact for the part of L inside that subspace and a
    lower bound in general; it sees both rows far from the subspace and loud rows that *own* a
    direction (removing them frees a rank). The best rows move, the subspace is refreshed (warm
    start), repeat: ``steps`` batches in all (default one row per step up to 32 rows).
    """
    m, n = A.shape
    if split == 0:
        return torch.zeros(0, dtype=torch.int64)
    steps = min(split, 16) if steps is None else max(1, min(int(steps), split))
    gen = torch.Generator().manual_seed(seed)
    row_sq = (A**2).sum(1)
    remaining = torch.arange(m)
    chosen: list[torch.Tensor] = []
    n_chosen, Q = 0, None
    for t in range(steps):
        b = math.ceil((split - n_chosen) / (steps - t))
        L = A[remaining]  # (M, n)
        q = min(rank + 1, *L.shape)
        if q <= rank:  # the block already fits exactly at rank r: any rows will do; keep the loudest
            pick = torch.topk(row_sq[remaining], b).indices
        else:
            S, V = _top_right(L, q, Q, gen)
            Q = V
            C = L @ V  # (M, q)
            lam = S**2
            rho = (row_sq[remaining] - (C**2).sum(1)).clamp_min(0.0)
            gain = rho + lam[-1] - _secular_min(lam, C)
            pick = torch.topk(gain, b).indices
        chosen.append(remaining[pick])
        n_chosen += b
        keep = torch.ones(remaining.numel(), dtype=torch.bool)
        keep[pick] = False
        remaining = remaining[keep]
    return torch.cat(chosen)


# --------------------------------------------------------------------------- built-in heuristics


@register_heuristic("top")
def top(W, split, *, rank, X=None):
    """The paper's choice: keep the first ``split`` rows dense (Thakker et al., SustaiNLP 2020).

    The paper trains the HMF structure from scratch, so which rows are dense does not matter there:
    training moves the important directions into whichever rows are dense. On a *pretrained* matrix
    the first k rows are an arbitrary choice, so "top" is the baseline every other rule must beat.

    >>> top(torch.randn(5, 3), 2, rank=1).tolist()
    [0, 1]
    """
    return torch.arange(split, dtype=torch.int64)


@register_heuristic("random")
def random_rows(W, split, *, rank, X=None, seed: int = 0):
    """A seeded random baseline: ``split`` rows drawn uniformly without replacement.

    Any rule that does not beat random selection is not using the matrix. Same ``seed``, same rows
    (pass ``functools.partial(random_rows, seed=s)`` for other draws).

    >>> random_rows(torch.randn(6, 3), 3, rank=1).tolist() == random_rows(torch.randn(6, 3), 3, rank=1).tolist()
    True
    """
    g = torch.Generator().manual_seed(seed)
    return torch.randperm(W.shape[0], generator=g)[:split]


@register_heuristic("row_norm")
def row_norm(W, split, *, rank, X=None):
    """Keep the ``split`` rows of largest Euclidean norm dense.

    Loud rows carry most of the energy and are what a low-rank fit of the rest would miss most; a
    cheap data-free proxy in the spirit of magnitude pruning (Han et al., NeurIPS 2015), but blind to
    structure: a loud row that lies in the dominant subspace costs the factorization nothing.

    >>> row_norm(torch.tensor([[1., 0.], [3., 0.], [0., 2.]]), 2, rank=1).sort().values.tolist()
    [1, 2]
    """
    norms = torch.linalg.vector_norm(W, dim=1)
    return torch.topk(norms, split).indices


# rows that do not depend on the rank: a sweep selects them once per split (hl.sweep reads this flag)
top.rank_free = random_rows.rank_free = row_norm.rank_free = True


@register_heuristic("residual")
@_cached
def residual(W, split, *, rank, X=None):
    """Keep the rows worst explained by the rank-r SVD of all of W.

    Fit W once at rank r (Eckart–Young), and keep dense the rows with the largest residual
    ``||w_i - (W_r)_i||^2 = ||w_i||^2 - ||V_r^T w_i||^2``, i.e. the row energy outside the top-r right
    singular subspace. Those are the rows the factorization would serve worst. One SVD, then a sort;
    blind to loud rows that *define* a top direction (their residual is small, yet they waste a rank).
    Related to column/row selection by residual norms (Deshpande & Vempala, 2006; adaptive sampling).

    >>> W = torch.zeros(4, 3); W[:, 0] = 1.0; W[2, 1] = 0.5
    >>> residual(W, 1, rank=1).tolist()
    [2]
    """
    if split == 0:
        return torch.zeros(0, dtype=torch.int64)
    _, _, Vh = _svd64(W)
    Wd = W.double()
    res = (Wd**2).sum(1) - ((Wd @ Vh[:rank].T) ** 2).sum(1)
    return torch.topk(res, split).indices


@register_heuristic("leverage")
@_cached
def leverage(W, split, *, rank, X=None):
    """Keep the rows of largest rank-r statistical leverage ``||U_r[i]||^2`` (U_r: top-r left singular vectors).

    A row with leverage near 1 alone spans one of the top singular directions: a *loud* row pointing
    somewhere no other row points. Factorizing it costs a whole rank-one term for one row, so keeping
    it dense frees that rank for the rest. Leverage scores drive CUR and row-subset selection
    (Mahoney & Drineas, PNAS 2009). Complements ``residual``, which sees rows outside the subspace.

    >>> W = torch.ones(5, 4); W[3] = torch.tensor([0., 0., 0., 9.])
    >>> leverage(W, 1, rank=2).tolist()
    [3]
    """
    if split == 0:
        return torch.zeros(0, dtype=torch.int64)
    U, _, _ = _svd64(W)
    score = (U[:, : max(rank, 1)] ** 2).sum(1)
    score = score + 1e-12 * (W.double() ** 2).sum(1)  # tie-break by energy (e.g. rank beyond numerical rank)
    return torch.topk(score, split).indices


@register_heuristic("greedy")
@_cached
def greedy(W, split, *, rank, X=None, steps: int | None = None):
    """Greedily move into the dense set the rows whose removal most lowers the factorized block's tail energy.

    The error of HMF is the tail energy ``sum_{i>r} s_i(L)^2`` of the factorized block L (Eckart–Young).
    Starting from L = W, each step scores every remaining row by a cheap estimate of how much removing
    it lowers that tail, using only the top r+1 singular triplets of L and a rank-one eigenvalue
    update (secular equation, Golub 1973; Bunch, Nielsen & Sorensen 1978) instead of an SVD per
    candidate; the best rows move, the subspace is refreshed by a warm-started subspace iteration, and
    the next batch is scored. It catches rows far from the dominant subspace (like ``residual``) and
    loud rows that own a direction (like ``leverage``). Greedy forward selection in the spirit of
    column-subset selection (Farahat, Ghodsi & Kamel, 2011). ``steps``: number of batches
    (default ``min(split, 16)``).

    >>> W = torch.zeros(6, 4); W[:, 0] = 1.0; W[4] = torch.tensor([0., 0., 7., 0.]); W[1, 1] = 1.0
    >>> greedy(W, 2, rank=1).sort().values.tolist()
    [1, 4]
    """
    return _greedy_rows(W.double(), split, rank, steps=steps)


@register_heuristic("activation", requires="X", fit="whitened")
@_cached
def activation(W, split, *, rank, X=None, method: str = "greedy"):
    """Data-aware: keep the rows that matter most for the *outputs* ``X W^T`` on calibration inputs X.

    What matters is the output error ``||X W^T - X W_hat^T||_F``, not the weight error. With the
    regularised Cholesky factor ``R R^T = X^T X / N`` (float64) the output error of a row block is the
    Frobenius error of ``W R`` (output space), so rows are chosen by ``greedy`` (or, with
    ``method="residual"``, by their output-space residual) on ``W R``, and :func:`hmf_lab.hmf` fits the
    low-rank part on whitened inputs (:func:`whitened_fit`; picked automatically for this heuristic
    when X is given). When X fills only a few directions, this is where HMF gains most over a
    weight-space fit. Activation-aware / data-aware SVD: ASVD (Yuan et al., 2023), SVD-LLM
    (Wang et al., 2024); output-space error as in GPTQ/OBS (Frantar et al., 2022).

    >>> import hmf_lab as hl
    >>> W = torch.randn(12, 8); X = torch.randn(64, 8)
    >>> hl.hmf(W, split=3, rank=2, heuristic="activation", X=X).rows.numel()
    3
    """
    if X is None:
        raise ValueError(
            "heuristic 'activation' needs calibration inputs X of shape (N, n): pass X=... to hl.hmf "
            "(or use the data-free 'greedy')"
        )
    if method not in ("greedy", "residual"):
        raise ValueError(f"method must be 'greedy' or 'residual', got {method!r}")
    A = W.double() @ whitening(X)  # (m, n) output-space rows
    if method == "residual":
        return residual(A, split, rank=rank)
    return _greedy_rows(A, split, rank)


def _row_fisher(grad, m: int, n: int) -> torch.Tensor:
    if not isinstance(grad, torch.Tensor):
        if isinstance(grad, np.ndarray):
            grad = torch.from_numpy(grad)
        else:
            raise TypeError(f"grad must be a torch.Tensor of shape (m, n), (B, m, n) or (m,), got {type(grad).__name__}")
    g = grad.detach().double()
    if g.shape == (m,):
        imp = g
    elif g.shape == (m, n):
        imp = (g**2).sum(1)
    elif g.ndim == 3 and tuple(g.shape[1:]) == (m, n):
        imp = (g**2).sum(2).mean(0)
    else:
        raise ValueError(
            f"grad must have shape (m, n)=({m}, {n}), (B, {m}, {n}) (per-sample gradients) or (m,)=({m},) "
            f"(row importances), got {tuple(g.shape)}"
        )
    if not bool(torch.isfinite(imp).all()) or bool((imp < 0).any()):
        raise ValueError("grad must be finite (and row importances non-negative)")
    return imp


@register_heuristic("fisher", requires="grad")
@_cached
def fisher(W, split, *, rank, X=None, grad=None):
    """Gradient-aware: greedy selection on rows weighted by their (empirical) Fisher information.

    Rows of W do not matter equally for the loss. The empirical Fisher information of row i,
    ``I_i = E[sum_j (dL/dW_ij)^2]``, estimates how much the loss grows when that row is perturbed,
    so the loss-aware objective is the row-weighted error ``||diag(sqrt(I)) (W - W_hat)||_F``
    (Fisher-weighted SVD, Hsu et al., ICLR 2022). This heuristic runs ``greedy`` on the weighted
    rows ``sqrt(I_i) w_i``. Gradients come from the caller: ``grad`` is one gradient (m, n),
    per-sample gradients (B, m, n) or row importances (m,); through :func:`hmf_lab.hmf` pass
    ``heuristic=fisher_from(grad)``.

    >>> W = torch.randn(8, 5); G = torch.zeros(8, 5); G[6] = 1.0
    >>> 6 in fisher(W, 1, rank=2, grad=G).tolist()
    True
    """
    if grad is None:
        raise ValueError(
            "heuristic 'fisher' needs gradients: pass heuristic=hl.heuristics.fisher_from(grad) with grad of "
            "shape (m, n), (B, m, n) or (m,)"
        )
    m, n = W.shape
    imp = _row_fisher(grad, m, n)
    A = W.double() * imp.sqrt()[:, None]
    return _greedy_rows(A, split, rank)


def fisher_from(grad) -> Heuristic:
    """A heuristic named "fisher" that uses these gradients: ``hl.hmf(W, k, r, heuristic=fisher_from(G))``.

    >>> import hmf_lab as hl
    >>> W = torch.randn(8, 5); G = torch.randn(8, 5)
    >>> hl.hmf(W, split=2, rank=2, heuristic=fisher_from(G)).heuristic
    'fisher'
    """
    if not isinstance(grad, (torch.Tensor, np.ndarray)):
        raise TypeError(f"grad must be a torch.Tensor of shape (m, n), (B, m, n) or (m,), got {type(grad).__name__}")

    def fisher_with_grad(W, split, *, rank, X=None):
        return fisher(W, split, rank=rank, X=X, grad=grad)

    fisher_with_grad.__name__ = "fisher"
    fisher_with_grad.__doc__ = fisher.__doc__
    return fisher_with_grad



# --------------------------------------------------------------------------- column heuristics (column split)
#
# Column-split HMF (``hl.hmf_cols``) keeps k *input columns* of W dense. Its heuristics live in their own
# registry: a row rule applied to W^T is a column rule, but a data-aware row rule reads X (N, n) as inputs
# of W, which W^T does not have, so names must not be shared silently. Same signature, ``fn(W, split, *,
# rank, X=None) -> LongTensor`` of ``split`` distinct *column* indices of W (m, n).

#: name -> column heuristic (``hl.hmf_cols``, ``HMFColLinear``, method ``"hmf_col"``)
COL_HEURISTICS: dict[str, Heuristic] = {}


def register_col_heuristic(name: str, *, overwrite: bool = False, requires=(), fit: str | None = None):
    """Decorator that adds a column heuristic to :data:`COL_HEURISTICS` (as :func:`register_heuristic` for rows).

    >>> @register_col_heuristic("last_cols_demo")
    ... def last_cols_demo(W, split, *, rank, X=None):
    ...     return torch.arange(W.shape[1] - split, W.shape[1])
    >>> select_cols(torch.randn(3, 5), 2, 1, "last_cols_demo").tolist()
    [3, 4]
    >>> del COL_HEURISTICS["last_cols_demo"]
    """
    return _registrar(COL_HEURISTICS, "column heuristic", "register_col_heuristic", name, overwrite, requires, fit)


def _resolve_col(heuristic):
    if isinstance(heuristic, str):
        if heuristic not in COL_HEURISTICS:
            raise ValueError(f"unknown column heuristic {heuristic!r}; valid names are {sorted(COL_HEURISTICS)} "
                             f"(or pass a callable, or explicit column indices)")
        return COL_HEURISTICS[heuristic]
    if callable(heuristic):
        return heuristic
    if isinstance(heuristic, (list, tuple, range, np.ndarray, torch.Tensor)):
        return None
    raise TypeError(f"heuristic must be a registered column heuristic {sorted(COL_HEURISTICS)}, a callable, or "
                    f"column indices, got {type(heuristic).__name__}")


def _select_cols(W: torch.Tensor, split: int, rank: int, heuristic="col_norm", X=None) -> torch.Tensor:
    """Validated, sorted column indices for already validated arguments (``hl.hmf_cols``)."""
    fn = _resolve_col(heuristic)
    who = _describe(heuristic).replace("heuristic", "column heuristic", 1).replace("explicit rows",
                                                                                   "explicit columns")
    if fn is None:
        cols = heuristic
    else:
        Wh = W if getattr(fn, "__module__", None) == __name__ else W.clone()
        cols = fn(Wh, split, rank=rank, X=X)
    return _validate_rows(cols, split, W.shape[1], who)


def select_cols(W, split: int, rank: int, heuristic="col_norm", X=None) -> torch.Tensor:
    """Resolve a column heuristic and return its ``split`` sorted, distinct column indices of W (int64).

    >>> select_cols(torch.tensor([[0., 5., 1.], [0., 5., 0.]]), 1, 1, "col_norm").tolist()
    [1]
    """
    from hmf_lab.factor._validation import as_calibration, as_int, as_matrix, check_split

    W = as_matrix(W)
    m, n = W.shape
    split = check_split(split, n)
    rank = as_int(rank, "rank")
    if X is not None:
        X = as_calibration(X, n, like=W)
    return _select_cols(W, split, rank, heuristic, X)


def resolve_col_fit(fit, heuristic, X) -> str:
    """:func:`resolve_fit` for column heuristics: ``"whitened"`` by default only for a data-aware one with X."""
    if fit is None:
        try:
            fn = _resolve_col(heuristic)
        except (TypeError, ValueError):
            fn = None
        pref = getattr(fn, "preferred_fit", "svd") if fn is not None else "svd"
        return "whitened" if (pref == "whitened" and X is not None) else "svd"
    return resolve_fit(fit, "top", X)


@register_col_heuristic("top")
def top_cols(W, split, *, rank, X=None):
    """The first ``split`` input columns (meaningful only when the input order is).

    >>> top_cols(torch.randn(2, 5), 2, rank=1).tolist()
    [0, 1]
    """
    return torch.arange(split, dtype=torch.int64)


@register_col_heuristic("col_norm")
def col_norm(W, split, *, rank, X=None):
    """The ``split`` columns of largest norm ``||W[:, j]||``: input channels the layer weighs most (data-free).

    Order-invariant: permuting the inputs permutes the choice. Ties break by index (stable sort).

    >>> col_norm(torch.tensor([[1., 0., 3.], [0., 0., 4.]]), 1, rank=1).tolist()
    [2]
    """
    score = (W.double() ** 2).sum(0)
    return torch.sort(score, descending=True, stable=True).indices[:split]


@register_col_heuristic("activation", requires="X", fit="whitened")
def activation_cols(W, split, *, rank, X=None):
    """Data-aware: the ``split`` input channels of largest activation energy ``||X[:, j]||^2 * ||W[:, j]||^2``.

    Column j contributes ``X[:, j] W[:, j]^T`` to the outputs; its energy bounds that contribution, so
    channels with outlier activations (LLM.int8(), Dettmers et al. 2022; the per-channel salience of
    AWQ, Lin et al. 2023 and Wanda, Sun et al. 2023) are the ones a low-rank fit of the rest would cost
    most. ``hl.hmf_cols`` then fits the other columns on whitened inputs (their output error).

    >>> W = torch.ones(4, 6); X = torch.ones(32, 6); X[:, 4] = 50.0
    >>> activation_cols(W, 1, rank=1, X=X).tolist()
    [4]
    """
    if X is None:
        raise ValueError("column heuristic 'activation' needs calibration inputs X of shape (N, n): pass X=... "
                         "(or use the data-free 'col_norm')")
    score = (X.double() ** 2).sum(0) * (W.double() ** 2).sum(0)
    return torch.sort(score, descending=True, stable=True).indices[:split]


@register_col_heuristic("greedy")
@_cached
def greedy_cols(W, split, *, rank, X=None):
    """The row rule ``greedy`` on W^T: columns moved to the dense set while that most lowers the tail energy
    of the factorized columns' block (data-free; order-invariant up to float noise).

    >>> W = torch.zeros(4, 6); W[0, :] = 1.0; W[:, 4] = torch.tensor([0., 0., 7., 0.])
    >>> greedy_cols(W, 1, rank=1).tolist()
    [4]
    """
    return _greedy_rows(W.T.double(), split, rank)


top_cols.rank_free = col_norm.rank_free = activation_cols.rank_free = True


# --------------------------------------------------------------------------- outlier channels


def channel_energy(W, X) -> tuple[torch.Tensor, torch.Tensor]:
    """Per input channel j of a layer ``W`` (m, n) on calibration inputs ``X`` (N, n): ``(raw, whitened)``, float64.

    - ``raw[j] = mean_N x_j^2``: the channel's input energy (an *outlier channel* has a huge one);
    - ``whitened[j] = ||(W C^(1/2))[:, j]||^2`` with ``C = X^T X / N`` and ``C^(1/2)`` its symmetric square
      root: channel j's share of the output energy ``E ||W x||^2 = sum_j whitened[j]`` after whitening the
      inputs (channel j's own part, correlations with the others shared out symmetrically).

    A loud but correlated channel has a large ``raw`` and an ordinary ``whitened`` energy: the leading
    singular directions of the whitened weight ``W C^(1/2)`` (what activation-aware LMF keeps) already
    carry it. Keeping columns dense (column HMF) pays where a few channels hold a large share of the
    *whitened* energy.

    >>> W = torch.eye(3); X = torch.randn(500, 3); X[:, 2] *= 10
    >>> raw, wh = channel_energy(W, X)
    >>> int(raw.argmax()), int(wh.argmax()), bool(torch.isclose(wh.sum(), (X.double() ** 2).sum(1).mean()))
    (2, 2, True)
    """
    from hmf_lab.factor._validation import as_calibration, as_matrix

    W = as_matrix(W, "W").double()
    X = as_calibration(X, W.shape[1], like=W)
    C = X.T @ X / max(X.shape[0], 1)
    lam, Q = torch.linalg.eigh((C + C.T) / 2)
    root = (Q * lam.clamp(min=0).sqrt()) @ Q.T                   # symmetric C^(1/2)
    return torch.diagonal(C).clone(), ((W @ root) ** 2).sum(0)


def outlier_stats(W, X) -> dict:
    """Outlier summary of one layer (:func:`channel_energy`): max / median of the raw and the whitened
    channel energies, and the largest channel's share of the whitened energy (``1/n`` when all are equal).

    >>> W = torch.randn(8, 16); X = torch.randn(400, 16); X[:, 3] *= 30
    >>> s = outlier_stats(W, X)
    >>> sorted(s), s["raw_max_median"] > 100, s["whitened_top_share"] > 0.3
    (['n', 'raw_max_median', 'whitened_max_median', 'whitened_top_share'], True, True)
    """
    raw, wh = channel_energy(W, X)
    ratio = lambda e: float(e.max() / e.median().clamp(min=1e-300))  # noqa: E731
    return {"n": int(raw.numel()), "raw_max_median": ratio(raw), "whitened_max_median": ratio(wh),
            "whitened_top_share": float(wh.max() / wh.sum().clamp(min=1e-300))}


# --------------------------------------------------------------------------- the default choice

_DEFAULT_ROWS = ("greedy", "activation")
_DEFAULT_COLS = ("col_norm", "activation")


def default_heuristic(heuristic=None, X=None, *, axis: str = "rows"):
    """``heuristic`` as given, or the order-invariant default of ``hl.compress`` and the compressed modules: "greedy" ("col_norm" for ``axis="cols"``)
    without X, "activation" with X. Never "top" unless asked for by name.

    >>> default_heuristic(), default_heuristic(X=1), default_heuristic("top"), default_heuristic(axis="cols")
    ('greedy', 'activation', 'top', 'col_norm')
    """
    if heuristic is not None:
        return heuristic
    pair = _DEFAULT_COLS if axis == "cols" else _DEFAULT_ROWS
    return pair[X is not None]
