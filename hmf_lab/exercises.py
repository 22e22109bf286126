"""Course helpers: matrices with known spectra, and the check functions behind the notebooks' exercises.

A check returns ``True`` (and says so) for a right answer, raises :class:`ExerciseError` with a hint
for a wrong one, and returns ``False`` with a reminder while the answer is still ``None``.

Example
-------
>>> import hmf_lab as hl
>>> hl.exercises.check_hmf_params(8, 6, split=2, rank=1, answer=2*6 + 1*6 + 1*6)
Correct: HMF stores k*n + r*(m-k) + r*n = 24 values.
True
>>> hl.exercises.check_hmf_params(8, 6, split=2, rank=1, answer=48)
Traceback (most recent call last):
...
hmf_lab.exercises.ExerciseError: not quite: 48 is not the number of stored values. Hint: count the dense rows D (k x n), then U ((m-k) x r) and V (r x n).
"""
from __future__ import annotations

import math

import numpy as np
import torch

from ._env import quick_mode
from .synthetic import singular_values, with_spectrum  # matrices with known spectra
from ._validation import as_int, as_matrix, check_compression

__all__ = ["ExerciseError", "quick", "singular_values", "with_spectrum", "check_break_even_rank", "check_eckart_young",
           "check_hmf_params", "check_max_rank", "check_csr_bytes", "check_best_at_budget", "check_rows",
           "check_hmf_gain"]


class ExerciseError(AssertionError):
    """A wrong answer to a notebook exercise (the message carries a hint)."""


def quick() -> bool:
    """True when ``HMF_LAB_QUICK=1``: notebooks shrink their work (CI).

    >>> isinstance(quick(), bool)
    True
    """
    return quick_mode()


# --------------------------------------------------------------------------- checks


def _pending(answer) -> bool:
    if answer is None or answer is Ellipsis:
        print("Not answered yet: replace `None` in the exercise cell with your answer, then rerun this cell.")
        return True
    return False


def _ok(msg: str) -> bool:
    print(f"Correct: {msg}")
    return True


def _number(answer, what: str) -> float:
    if isinstance(answer, torch.Tensor) and answer.numel() == 1:
        answer = answer.item()
    if isinstance(answer, (np.generic,)):
        answer = answer.item()
    if isinstance(answer, bool) or not isinstance(answer, (int, float)):
        raise ExerciseError(f"{what} should be a number, got {type(answer).__name__} {answer!r}")
    return float(answer)


def check_break_even_rank(m: int, n: int, answer) -> bool:
    """Check the largest rank r at which LMF of an (m, n) matrix still stores fewer values than W.

    >>> check_break_even_rank(512, 128, 102)
    Correct: 102 * (512 + 128) = 65,280 < 65,536 = m*n, and rank 103 would not save anything.
    True
    """
    if _pending(answer):
        return False
    a = _number(answer, "the rank")
    r = (m * n - 1) // (m + n)  # largest r with r (m + n) < m n
    if a != r:
        hint = ("that rank stores at least as many values as W itself" if a * (m + n) >= m * n else
                "a larger rank still saves parameters")
        raise ExerciseError(f"not quite: {answer!r} is not the break-even rank ({hint}). "
                            f"Hint: LMF stores r*(m+n) values; find the largest r with r*(m+n) < m*n.")
    return _ok(f"{r} * ({m} + {n}) = {r * (m + n):,} < {m * n:,} = m*n, and rank {r + 1} would not save anything.")


def check_eckart_young(W, rank: int, answer, *, rtol: float = 1e-3) -> bool:
    """Check a predicted relative error of the best rank-``rank`` approximation of ``W``.

    >>> W = with_spectrum(10, 10, "flat")
    >>> check_eckart_young(W, 5, 0.5 ** 0.5)
    Correct: sqrt(sum of s_i^2 beyond rank 5 / sum of all s_i^2) = 0.7071.
    True
    """
    if _pending(answer):
        return False
    W = as_matrix(W)
    s = torch.linalg.svdvals(W.double())
    r = as_int(rank, "rank")
    truth = math.sqrt(float((s[r:] ** 2).sum() / (s**2).sum()))
    a = _number(answer, "the error")
    if not math.isclose(a, truth, rel_tol=rtol, abs_tol=1e-6):
        raise ExerciseError(f"not quite: {a:.4g} is not the relative error of the best rank-{r} approximation. "
                            "Hint: Eckart-Young says the error comes from the singular values you drop; "
                            "use squares, and divide by the norm of W (also from the singular values).")
    return _ok(f"sqrt(sum of s_i^2 beyond rank {r} / sum of all s_i^2) = {truth:.4f}.")


def check_hmf_params(m: int, n: int, split: int, rank: int, answer) -> bool:
    """Check the number of values HMF stores for an (m, n) matrix at (split, rank)."""
    if _pending(answer):
        return False
    a = _number(answer, "the parameter count")
    truth = split * n + rank * (m - split) + rank * n
    if a != truth:
        raise ExerciseError(f"not quite: {answer!r} is not the number of stored values. Hint: count the dense rows "
                            "D (k x n), then U ((m-k) x r) and V (r x n).")
    return _ok(f"HMF stores k*n + r*(m-k) + r*n = {truth:,} values.")


def check_max_rank(shape, compression, answer) -> bool:
    """Check the highest rank bound ``split + rank`` any HMF reaches within the budget ``m*n/compression``.

    >>> check_max_rank((512, 512), 4, 127)
    Correct: at 4x, HMF reaches rank 127; LMF only 64 (1.98x).
    True
    """
    from .core import budget

    if _pending(answer):
        return False
    b = budget(tuple(shape), compression)
    truth = int(b["rank_bound"].max())
    lmf_rank = int(b.loc[b["split"] == 0, "rank"].iloc[0]) if (b["split"] == 0).any() else 0
    a = _number(answer, "the rank")
    if a != truth:
        raise ExerciseError(f"not quite: {answer!r} is not the highest rank HMF reaches at {compression}x. Hint: "
                            "hl.budget(shape, compression) lists, for every split, the largest rank that fits; "
                            "HMF's rank bound is split + rank.")
    ratio = f" ({truth / lmf_rank:.2f}x)" if lmf_rank else ""
    return _ok(f"at {compression:g}x, HMF reaches rank {truth}; LMF only {lmf_rank}{ratio}.")


def check_csr_bytes(m: int, nnz: int, answer, *, value_bytes: int = 4, index_bytes: int = 8) -> bool:
    """Check the bytes of a CSR matrix with m rows and nnz stored values (float32 values, int64 indices).

    >>> check_csr_bytes(4, 3, 3*4 + 3*8 + 5*8)
    Correct: values 12 + column indices 24 + row pointers 40 = 76 bytes.
    True
    """
    if _pending(answer):
        return False
    a = _number(answer, "the byte count")
    v, c, p = nnz * value_bytes, nnz * index_bytes, (m + 1) * index_bytes
    if a != v + c + p:
        raise ExerciseError(f"not quite: {answer!r} bytes. Hint: CSR stores the nnz values ({value_bytes} B each), a "
                            f"column index per value ({index_bytes} B each) and m+1 row pointers ({index_bytes} B each).")
    return _ok(f"values {v:,} + column indices {c:,} + row pointers {p:,} = {v + c + p:,} bytes.")


def check_best_at_budget(W, compression, split, rank, *, cache=None, step: int | None = None,
                         rtol: float = 0.02) -> bool:
    """Check a (split, rank) fits the budget ``m*n/compression`` and has the lowest error there ("top" rows).

    The optimum is searched over splits ``range(0, m+1, step)`` (default ``max(1, m // 32)``); an answer
    within ``rtol`` of it passes. Pass the ``hl.HMFCache`` you used to reuse its SVDs.

    >>> W = with_spectrum(32, 32, "exp", decay=0.3)
    >>> check_best_at_budget(W, 4, split=0, rank=None)
    Not answered yet: replace `None` in the exercise cell with your answer, then rerun this cell.
    False
    """
    from .core import HMFCache, budget, hmf_params

    if _pending(split) or _pending(rank):
        return False
    W = as_matrix(W)
    m, n = W.shape
    c = check_compression(compression)
    cache = cache if cache is not None else HMFCache(W)
    k, r = int(_number(split, "split")), int(_number(rank, "rank"))
    if not (0 <= k <= m and (r == 0 if k == m else 1 <= r <= min(m - k, n))):
        raise ExerciseError(f"(split={k}, rank={r}) is not a valid HMF of a {m}x{n} matrix: "
                            f"split in [0, {m}], rank in [1, min(m-split, n)].")
    if hmf_params(m, n, k, r) > m * n / c + 1e-9:
        raise ExerciseError(f"(split={k}, rank={r}) stores {hmf_params(m, n, k, r):,} values, over the budget "
                            f"m*n/{c:g} = {m * n / c:,.0f}. Hint: hl.budget(W.shape, compression) lists what fits.")
    b = budget((m, n), c, step=step or max(1, m // 32))
    errs = [cache.error(kk, rr) for kk, rr in zip(b["split"], b["rank"])]
    best = int(np.argmin(errs))
    mine = cache.error(k, r)
    if mine > errs[best] * (1 + rtol) + 1e-9:
        raise ExerciseError(f"(split={k}, rank={r}) fits, but its error {mine:.4f} is above the best "
                            f"{errs[best]:.4f} (split={int(b['split'].iloc[best])}). Hint: evaluate the error of "
                            f"every row of hl.budget(...) and take the smallest.")
    return _ok(f"error {mine:.4f} at {hmf_params(m, n, k, r):,} values (best on the grid: {errs[best]:.4f}).")


def check_rows(W, split, rank, answer, *, tol: float = 1e-6) -> bool:
    """Exercise check: are ``answer`` (row indices) an optimal dense set for W at (split, rank)?

    Prints "Correct" and returns True for an optimal set, returns False while ``answer`` is None,
    and raises :class:`ExerciseError` (an AssertionError) with a hint otherwise. The yardstick is
    :func:`hmf_lab.oracle` (exhaustive search over every dense-row subset).

    >>> import torch
    >>> W = torch.diag(torch.tensor([5., 4., 3., 2., 1.]))
    >>> check_rows(W, 2, 1, [0, 1])
    Correct: rows [0, 1] reach the optimum, error 0.3015 (best of 10 subsets).
    True
    >>> check_rows(W, 2, 1, [3, 4])  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    hmf_lab.exercises.ExerciseError: not optimal: rows [3, 4] give error 0.6742, the best subset gives 0.3015 (9 of 10 subsets are better); ...
    """
    from .oracle import oracle

    if _pending(answer):
        return False
    best = oracle(W, split, rank)
    try:
        rows = [int(i) for i in (answer.tolist() if isinstance(answer, (torch.Tensor, np.ndarray)) else answer)]
        e = best.error_of(rows)
    except (TypeError, ValueError) as err:
        raise ExerciseError(f"the answer should be {best.split} distinct row indices in [0, {W.shape[0] - 1}], "
                            f"got {answer!r} ({err})") from None
    if e > best.error * (1 + tol) + 1e-12:
        worse = int(np.sum(best.errors < e * (1 - 1e-9)))
        raise ExerciseError(
            f"not optimal: rows {sorted(rows)} give error {e:.4f}, the best subset gives {best.error:.4f} "
            f"({worse} of {best.n_subsets} subsets are better); hint: keep dense the rows that a rank-{best.rank} "
            f"factorization of the other rows would serve worst"
        )
    print(f"Correct: rows {sorted(rows)} reach the optimum, error {e:.4f} (best of {best.n_subsets} subsets).")
    return True


# --------------------------------------------------------------------------- notebook 06 (moved from reproduce.py)


def check_hmf_gain(results, compression: float, answer, *, regime: str = "post", task: str | None = None) -> bool:
    """Exercise check: HMF's relative gain over LMF (in %, positive = HMF better) at ``compression``.

    ``results``: the cells of ``hmf-lab reproduce`` (``hl.grid.load_grid``: columns ``label``, ``value``,
    mean over seeds) or one task table of the older format (``method``, ``after``). Never raises for a
    wrong answer: prints "Correct" or FAIL with a hint and returns a bool (``False`` while ``answer`` is ``None``).
    An answer within 0.05 percentage points passes. The expected answer is whatever the results say,
    whichever way it falls.

    >>> import pandas as pd
    >>> df = pd.DataFrame({"task": "lm", "regime": "post", "metric": "bits_per_char", "label": ["hmf", "lmf"] * 2,
    ...                    "seed": [0, 0, 1, 1], "compression": 4.0, "value": [2.0, 2.5, 2.0, 2.5]})
    >>> check_hmf_gain(df, 4, 20.0)
    Correct: HMF is 20.00% better than LMF at 4x (lm, post).
    True
    >>> check_hmf_gain(df, 4, -20.0)
    FAIL: -20.0 is not HMF's gain over LMF at 4x. Hint: lower bits per char is better, so the gain is (lmf - hmf) / lmf * 100, on the means over seeds.
    False
    """
    import pandas as pd

    if _pending(answer):
        return False
    df = pd.DataFrame(results)
    if "label" not in df:   # older per-task format: one row per method, 'after' = after fine-tuning
        df = df[df.method.isin(["hmf", "lmf"])].assign(label=df.method, value=df["after"], seed=0,
                                                       regime=regime)
    if task is not None:
        df = df[df.task == task]
    if "regime" in df:
        df = df[df.regime == regime]
    from .grid import hmf_vs_lmf
    comp = hmf_vs_lmf(df[df.label.isin(["hmf", "lmf"])])
    row = comp[comp.compression == float(compression)] if len(comp) else comp
    if not len(row):
        print(f"FAIL: no HMF and LMF results at compression {compression} (regime {regime!r}); "
              f"available: {sorted(set(comp.compression)) if len(comp) else []}")
        return False
    r = row.iloc[0]
    want = float(r.pct)
    try:
        got = float(answer)
    except (TypeError, ValueError):
        print(f"FAIL: the answer must be a number (a percentage), got {answer!r}")
        return False
    if abs(got - want) <= 0.05:
        return _ok(f"HMF is {abs(want):.2f}% {'better' if want >= 0 else 'worse'} than LMF at {compression:g}x "
                   f"({r.task}, {regime}).")
    lower = df.metric.iloc[0] in ("bits_per_char", "perplexity")
    hint = ("lower bits per char is better, so the gain is (lmf - hmf) / lmf * 100" if lower
            else "higher is better, so the gain is (hmf - lmf) / lmf * 100")
    print(f"FAIL: {answer} is not HMF's gain over LMF at {compression:g}x. Hint: {hint}, on the means over seeds.")
    return False


def __getattr__(name):
    # `hl.exercises.synthetic` was a function while `hl.synthetic` is a module: one name per thing.
    if name == "synthetic":
        import warnings

        warnings.warn("hl.exercises.synthetic is renamed: use hl.synthetic.with_spectrum(m, n, spectrum, ...) "
                      "(the same function; also hl.exercises.with_spectrum)", DeprecationWarning, stacklevel=2)
        return with_spectrum
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
