"""Course helpers: matrices with known spectra, and the checks behind the notebooks' exercises.

Every check **never raises**: it prints ``PASS`` (right answer), ``FAIL`` with a hint (wrong answer, of any
type), or the one "not answered yet" reminder (answer still ``None``), and returns ``True`` only for a pass.
So *Run All* always reaches the end of a notebook. :func:`reset` puts an exercise's answer back to ``None``
(after you ran its solution cell and want to try again); :func:`progress` lists what you have passed.

Example
-------
>>> import hmf_lab as hl
>>> hl.exercises.check_hmf_params(8, 6, split=2, rank=1, answer=2*6 + 1*6 + 1*6)
PASS — Correct: HMF stores k*n + r*(m-k) + r*n = 24 values.
True
>>> hl.exercises.check_hmf_params(8, 6, split=2, rank=1, answer=48)
FAIL — 48 is not the number of stored values.
  Hint: count the dense rows D (k x n), then U ((m-k) x r) and V (r x n).
False
>>> hl.exercises.check_hmf_params(8, 6, split=2, rank=1, answer=None)
Not answered yet: replace `None` in the exercise cell with your answer, then rerun this cell.
False
"""
from __future__ import annotations

import functools
import inspect
import math
import numbers
from dataclasses import dataclass

import numpy as np
import torch

from hmf_lab.factor._validation import quick_mode
from hmf_lab.factor._validation import as_int, as_matrix, check_compression
from hmf_lab.factor.synthetic import singular_values, with_spectrum  # matrices with known spectra

__all__ = ["ExerciseError", "EXERCISES", "quick", "singular_values", "with_spectrum", "spectrum_summary", "pending", "reset", "progress",
           "check_break_even_rank", "check_eckart_young", "check_hmf_params", "check_max_rank", "check_my_hmf",
           "check_csr_bytes", "check_best_at_budget", "check_rows", "check_hmf_gain", "check_hmf_beats_lmf",
           "check_rank_for_error", "check_ideal_speedup", "check_cache_fit", "check_rank_at_budget",
           "check_smallest_at_error", "check_my_heuristic", "check_oracle_subsets", "check_compressed_params",
           "check_rank_bound", "check_reconstructed_bytes", "check_effective_bandwidth"]

NOT_ANSWERED = "Not answered yet: replace `None` in the exercise cell with your answer, then rerun this cell."


class ExerciseError(AssertionError):
    """Kept for old code that caught it: no check raises it any more (checks print FAIL and return False)."""


class _Wrong(Exception):
    """Internal: a wrong answer, turned into a printed FAIL by :func:`_check`."""

    def __init__(self, msg: str, hint: str = ""):
        super().__init__(msg)
        self.msg, self.hint = msg, hint


def _require_function(f, name: str, hint: str, kind: str = "") -> None:
    """Internal: a check's answer must be a function; else a FAIL saying what came and ``hint``."""
    if not callable(f):
        raise _Wrong(f"{name} should be a function{kind}, got {type(f).__name__}.", hint)


@dataclass(frozen=True)
class Exercise:
    """One notebook exercise: where it is, and the answer variables :func:`reset` sets back to ``None``."""

    notebook: str
    title: str
    variables: tuple[str, ...]


# id -> exercise; the id is the check's name without "check_"
EXERCISES: dict[str, Exercise] = {
    "break_even_rank": Exercise("01", "the break-even rank", ("answer",)),
    "eckart_young": Exercise("01", "predict the error from the spectrum", ("predicted",)),
    "hmf_params": Exercise("02", "count the parameters", ("answer",)),
    "my_hmf": Exercise("02", "write HMF in ten lines", ("my_hmf",)),
    "max_rank": Exercise("02", "the highest rank at a budget", ("max_rank",)),
    "csr_bytes": Exercise("03", "the size of a CSR matrix", ("csr_bytes",)),
    "best_at_budget": Exercise("04", "the best structure at 10x", ("split", "rank")),
    "rows": Exercise("05", "find the best dense rows yourself", ("answer",)),
    "hmf_gain": Exercise("06", "HMF against LMF", ("my_gain",)),
    "hmf_beats_lmf": Exercise("06", "a matrix where HMF beats LMF at equal size", ("my_W",)),
    "rank_for_error": Exercise("01", "the smallest rank for an error target", ("rank_needed",)),
    "ideal_speedup": Exercise("03", "predict the speed-up from bytes", ("ideal",)),
    "cache_fit": Exercise("03", "which layers leave the cache", ("sizes_above_ideal",)),
    "rank_at_budget": Exercise("04", "the rank a split leaves", ("rank_left",)),
    "smallest_at_error": Exercise("04", "the smallest structure for an error target", ("smallest",)),
    "my_heuristic": Exercise("05", "a heuristic of your own, graded", ("my_rule",)),
    "oracle_subsets": Exercise("05", "where the oracle stops", ("m_too_big",)),
    "compressed_params": Exercise("06", "predict a compressed model's size", ("predicted_params",)),
    "rank_bound": Exercise("07", "the default split's rank bound", ("bound",)),
    "reconstructed_bytes": Exercise("07", "what the reconstructed engine holds", ("held_bytes",)),
    "effective_bandwidth": Exercise("07", "the bandwidth a model streams at", ("bandwidth",)),
}
_PASSED: dict[str, bool] = {}  # id -> result of the last check run in this kernel


def quick() -> bool:
    """True when ``HMF_LAB_QUICK=1``: notebooks shrink their work (CI).

    >>> isinstance(quick(), bool)
    True
    """
    return quick_mode()


def spectrum_summary(W, fractions=(0.1, 0.25, 0.5)) -> dict:
    """How fast a matrix's spectrum falls off, in a few numbers notebooks 01 and 05 both quote.

    ``energy@f``: the share of ``||W||_F^2`` the top ``f * min(m, n)`` singular directions carry;
    ``s1/s_median``: the top singular value over the median one; ``lmf_error@1/8``: LMF's relative error at
    rank ``min(m, n) // 8``; ``row_norm max/median``: how uneven the rows are (loud rows give a large value).

    >>> d = spectrum_summary(with_spectrum(40, 40, "flat"))
    >>> round(d["energy@0.5"], 3), round(d["s1/s_median"], 3)
    (0.5, 1.0)
    """
    W = as_matrix(W).double()
    s = torch.linalg.svdvals(W)
    p = s.numel()
    e = torch.cumsum(s**2, 0) / (s**2).sum()
    out = {f"energy@{f:g}": float(e[max(1, int(f * p)) - 1]) for f in fractions}
    out["s1/s_median"] = float(s[0] / s[p // 2])
    out["lmf_error@1/8"] = float((1 - e[max(1, p // 8) - 1]).clamp_min(0).sqrt())
    rn = W.norm(dim=1)
    out["row_norm max/median"] = float(rn.max() / rn.median())
    return out


# --------------------------------------------------------------------------- the one place for messages


def pending(*answers) -> bool:
    """True (after printing the one "not answered yet" reminder) while any answer is still ``None`` or ``...``.

    >>> pending(3, None)
    Not answered yet: replace `None` in the exercise cell with your answer, then rerun this cell.
    True
    >>> pending(3)
    False
    """
    if any(a is None or a is Ellipsis for a in answers):
        print(NOT_ANSWERED)
        return True
    return False


def _check(fn):
    """Wrap a check: a pending answer prints the reminder, ``_Wrong`` prints FAIL + hint, any other exception
    (an answer of an unexpected type) prints FAIL with what went wrong; a pass prints PASS. Never raises."""
    key = fn.__name__.removeprefix("check_")

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            msg = fn(*args, **kwargs)
        except _Wrong as w:
            print(f"FAIL — {w.msg}" + (f"\n  Hint: {w.hint}" if w.hint else ""))
            ok = False
        except Exception as err:  # noqa: BLE001 -- a check never stops Run All
            print(f"FAIL — could not check this answer ({type(err).__name__}: {err}).\n"
                  "  Hint: compare your answer's type and shape with what the exercise asks for.")
            ok = False
        else:
            if msg is None:  # pending: the reminder is already printed
                return False
            print(f"PASS — Correct: {msg}")
            ok = True
        _PASSED[key] = ok
        return ok

    return wrapper


def reset(*ids: str, namespace: dict | None = None) -> None:
    """Set the answer variables of exercises back to ``None`` (e.g. after running a solution cell), to try again.

    ``ids`` are keys of :data:`EXERCISES` (``"break_even_rank"``, ``"my_hmf"``, ...; the check's name without
    ``check_``); no ids resets every exercise. The variables live in ``namespace`` (default: the caller's
    globals, i.e. the notebook). Re-running the exercise's question cell does the same for one exercise.

    >>> answer = 42
    >>> reset("break_even_rank", namespace=globals())
    Reset break_even_rank (notebook 01): answer = None. Write your answer and rerun the check.
    >>> answer is None
    True
    """
    unknown = [i for i in ids if i not in EXERCISES]
    if unknown:
        raise ValueError(f"unknown exercise id(s) {unknown}; expected one of {sorted(EXERCISES)}, "
                         "e.g. hl.exercises.reset('break_even_rank')")
    if namespace is None:
        frame = inspect.currentframe().f_back
        namespace = frame.f_globals if frame is not None else {}
    for i in ids or tuple(EXERCISES):
        ex = EXERCISES[i]
        names = [v for v in ex.variables if v in namespace or ids]
        for v in names:
            namespace[v] = None
        _PASSED.pop(i, None)
        if ids:
            print(f"Reset {i} (notebook {ex.notebook}): {', '.join(f'{v} = None' for v in names)}. "
                  "Write your answer and rerun the check.")
    if not ids:
        print("Reset every exercise: their answer variables are None again.")


def progress() -> dict[str, bool]:
    """The exercises checked in this kernel and whether the last check passed (id -> bool).

    >>> isinstance(progress(), dict)
    True
    """
    return dict(_PASSED)


def _number(answer, what: str) -> float:
    if isinstance(answer, torch.Tensor) and answer.numel() == 1:
        answer = answer.item()
    if isinstance(answer, np.generic):
        answer = answer.item()
    if isinstance(answer, bool) or not isinstance(answer, (int, float)) or not math.isfinite(answer):
        raise _Wrong(f"{what} should be a finite number, got {type(answer).__name__} {answer!r}.",
                     "replace `None` by a number (an int or a float), not a string or a list.")
    return float(answer)


def _scale_hint(got: float, want: float, *, asked: str, tol: float) -> str:
    """A hint when ``got`` is ``want`` on the wrong scale: a fraction where a percent is asked (x100), or a
    percent where a fraction is asked (/100); "" otherwise.

    >>> _scale_hint(0.2, 20.0, asked="percent", tol=0.05)
    'your answer looks like a fraction (0.2); the exercise asks for a percentage: multiply by 100 (0.2 -> 20).'
    >>> _scale_hint(70.71, 0.7071, asked="fraction", tol=1e-3)
    'your answer looks like a percentage (70.71); the exercise asks for a fraction: divide by 100 (70.71 -> 0.7071).'
    >>> _scale_hint(3.0, 20.0, asked="percent", tol=0.05)
    ''
    """
    if want == 0:
        return ""
    if asked == "percent" and abs(got * 100 - want) <= tol:
        return (f"your answer looks like a fraction ({got:g}); the exercise asks for a percentage: multiply by 100 "
                f"({got:g} -> {got * 100:g}).")
    if asked == "fraction" and math.isclose(got / 100, want, rel_tol=tol, abs_tol=1e-6):
        return (f"your answer looks like a percentage ({got:g}); the exercise asks for a fraction: divide by 100 "
                f"({got:g} -> {got / 100:g}).")
    return ""


# --------------------------------------------------------------------------- checks


@_check
def check_break_even_rank(m: int, n: int, answer) -> bool:
    """Check the largest rank r at which LMF of an (m, n) matrix still stores fewer values than W.

    >>> check_break_even_rank(512, 128, 102)
    PASS — Correct: 102 * (512 + 128) = 65,280 < 65,536 = m*n, and rank 103 would not save anything.
    True
    """
    if pending(answer):
        return None
    a = _number(answer, "the rank")
    r = (m * n - 1) // (m + n)  # largest r with r (m + n) < m n
    if a != r:
        why = ("that rank stores at least as many values as W itself" if a * (m + n) >= m * n else
               "a larger rank still saves parameters")
        raise _Wrong(f"{answer!r} is not the break-even rank ({why}).",
                     "LMF stores r*(m+n) values; find the largest r with r*(m+n) < m*n.")
    return f"{r} * ({m} + {n}) = {r * (m + n):,} < {m * n:,} = m*n, and rank {r + 1} would not save anything."


@_check
def check_eckart_young(W, rank: int, answer, *, rtol: float = 1e-3) -> bool:
    """Check a predicted relative error of the best rank-``rank`` approximation of ``W``.

    >>> W = with_spectrum(10, 10, "flat")
    >>> check_eckart_young(W, 5, 0.5 ** 0.5)
    PASS — Correct: sqrt(sum of s_i^2 beyond rank 5 / sum of all s_i^2) = 0.7071.
    True
    """
    if pending(answer):
        return None
    W = as_matrix(W)
    s = torch.linalg.svdvals(W.double())
    r = as_int(rank, "rank")
    truth = math.sqrt(float((s[r:] ** 2).sum() / (s**2).sum()))
    a = _number(answer, "the error")
    if not math.isclose(a, truth, rel_tol=rtol, abs_tol=1e-6):
        off = {d: math.sqrt(float((s[max(r + d, 0):] ** 2).sum() / (s**2).sum())) for d in (-1, 1)}
        by_one = [d for d, v in off.items() if math.isclose(a, v, rel_tol=rtol, abs_tol=1e-6)]
        index = ("Python's indices are 0-based: s[0] is the largest value, the kept ones are s[:rank] and the "
                 f"dropped ones s[rank:] = s[{r}:] (in 1-based textbook notation s_{r + 1}, s_{r + 2}, ...).")
        raise _Wrong(f"{a:.4g} is not the relative error of the best rank-{r} approximation"
                     + (f" (it is the error at rank {r + by_one[0]}: off by one)." if by_one else "."),
                     _scale_hint(a, truth, asked="fraction", tol=rtol) or
                     (index if by_one else
                      "Eckart-Young says the error comes from the singular values you drop; use squares, and "
                      "divide by the norm of W (also from the singular values), then take the square root. "
                      + index))
    return f"sqrt(sum of s_i^2 beyond rank {r} / sum of all s_i^2) = {truth:.4f}."


@_check
def check_hmf_params(m: int, n: int, split: int, rank: int, answer) -> bool:
    """Check the number of values HMF stores for an (m, n) matrix at (split, rank).

    >>> check_hmf_params(10, 10, 2, 3, "54")  # doctest: +ELLIPSIS
    FAIL — the parameter count should be a finite number, got str '54'.
    ...
    False
    """
    if pending(answer):
        return None
    a = _number(answer, "the parameter count")
    truth = split * n + rank * (m - split) + rank * n
    if a != truth:
        raise _Wrong(f"{answer!r} is not the number of stored values.",
                     "count the dense rows D (k x n), then U ((m-k) x r) and V (r x n).")
    return f"HMF stores k*n + r*(m-k) + r*n = {truth:,} values."


@_check
def check_max_rank(shape, compression, answer) -> bool:
    """Check the highest rank bound ``split + rank`` any HMF reaches within the budget ``m*n/compression``.

    >>> check_max_rank((256, 256), 4, 63)
    PASS — Correct: at 4x, HMF reaches rank 63; LMF only 32 (1.97x; the limit (m+n)/n = 2.00x).
    True
    """
    from hmf_lab.factor.budget import budget

    if pending(answer):
        return None
    m, n = (int(v) for v in shape)
    b = budget((m, n), compression)
    truth = int(b["rank_bound"].max())
    lmf_rank = int(b.loc[b["split"] == 0, "rank"].iloc[0]) if (b["split"] == 0).any() else 0
    a = _number(answer, "the rank")
    if a != truth:
        raise _Wrong(f"{answer!r} is not the highest rank HMF reaches at {compression}x.",
                     "hl.budget(shape, compression) lists, for every split, the largest rank that fits; "
                     "HMF's rank bound is split + rank.")
    ratio = f" ({truth / lmf_rank:.2f}x; the limit (m+n)/n = {(m + n) / n:.2f}x)" if lmf_rank else ""
    return f"at {compression:g}x, HMF reaches rank {truth}; LMF only {lmf_rank}{ratio}."


@_check
def check_my_hmf(my_hmf, *, seed: int = 0) -> bool:
    """Check a hand-written HMF ``my_hmf(W, split, rank) -> (D, U, V)`` (top rows dense) against ``hl.hmf``.

    ``D`` must be the top ``split`` rows of W exactly, and ``U @ V`` a best rank-``rank`` approximation of the
    other rows (its error within 0.1% of ``hl.hmf``'s). Tried on a few shapes, including ``split = 0`` (LMF).

    >>> def my_hmf(W, split, rank):
    ...     D, rest = W[:split], W[split:]
    ...     U, S, Vh = torch.linalg.svd(rest, full_matrices=False)
    ...     return D, U[:, :rank] * S[:rank], Vh[:rank]
    >>> check_my_hmf(my_hmf)
    PASS — Correct: your HMF matches hl.hmf on 4 cases (shapes, dense rows and errors).
    True
    """
    from hmf_lab.factor.core import hmf, relative_error

    if pending(my_hmf):
        return None
    _require_function(my_hmf, "my_hmf", "define `def my_hmf(W, split, rank): ... return D, U, V`.")
    g = torch.Generator().manual_seed(seed)
    cases = [((24, 16), 4, 3), ((16, 24), 5, 2), ((20, 20), 0, 4), ((12, 10), 3, 1)]
    for (m, n), k, r in cases:
        W = torch.randn(m, n, generator=g) * torch.logspace(0, -1, n)  # a decaying spectrum, distinct values
        out = my_hmf(W.clone(), k, r)
        if pending(out):  # the template still returns None
            return None
        if not isinstance(out, (tuple, list)) or len(out) != 3:
            raise _Wrong(f"my_hmf(W, {k}, {r}) should return three tensors (D, U, V), got {type(out).__name__}.",
                         "end the function with `return D, U, V`.")
        D, U, V = (torch.as_tensor(t).to(W.dtype) for t in out)
        want = {"D": (k, n), "U": (m - k, r), "V": (r, n)}
        for name, t in zip(want, (D, U, V)):
            if tuple(t.shape) != want[name]:
                raise _Wrong(f"for a {m}x{n} W at split {k}, rank {r}, {name} has shape {tuple(t.shape)}, "
                             f"expected {want[name]}.",
                             "D: the top k rows (k x n); U: (m-k) x r; V: r x n. Slice the SVD to rank r.")
        if not torch.allclose(D, W[:k]):
            raise _Wrong(f"D is not the top {k} rows of W (split {k}).", "D = W[:split], kept exactly.")
        mine = torch.linalg.matrix_norm(W[k:] - U @ V) / torch.linalg.matrix_norm(W)
        best = relative_error(W, hmf(W, split=k, rank=r))
        if float(mine) > best * 1.001 + 1e-6:
            raise _Wrong(f"at split {k}, rank {r} your U V has relative error {float(mine):.4f}; hl.hmf reaches "
                         f"{best:.4f} on the same {m}x{n} matrix.",
                         "Eckart-Young: take the SVD of the *remaining* rows W[split:] and keep the top `rank` "
                         "singular triplets, U = U_r * S_r (scale the columns) and V = Vh_r.")
    return f"your HMF matches hl.hmf on {len(cases)} cases (shapes, dense rows and errors)."


@_check
def check_csr_bytes(m: int, nnz: int, answer, *, value_bytes: int = 4, index_bytes: int = 4) -> bool:
    """Check the bytes of a CSR matrix with m rows and nnz values (float32 values, int32 indices as the kit's
    sparse kernel uses; pass ``index_bytes=8`` for int64).

    >>> check_csr_bytes(4, 3, 3*4 + 3*4 + 5*4)
    PASS — Correct: values 12 + column indices 12 + row pointers 20 = 44 bytes.
    True
    """
    if pending(answer):
        return None
    a = _number(answer, "the byte count")
    v, c, p = nnz * value_bytes, nnz * index_bytes, (m + 1) * index_bytes
    if a != v + c + p:
        raise _Wrong(f"{answer!r} bytes is not the size of this CSR matrix.",
                     f"CSR stores the nnz values ({value_bytes} B each), a column index per value ({index_bytes} B "
                     f"each, int{8 * index_bytes}) and m+1 row pointers ({index_bytes} B each).")
    return f"values {v:,} + column indices {c:,} + row pointers {p:,} = {v + c + p:,} bytes."


@_check
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
    from hmf_lab.factor.budget import budget, hmf_params
    from hmf_lab.factor.sweep import HMFCache

    if pending(split, rank):
        return None
    W = as_matrix(W)
    m, n = W.shape
    c = check_compression(compression)
    cache = cache if cache is not None else HMFCache(W)
    k, r = int(_number(split, "split")), int(_number(rank, "rank"))
    if not (0 <= k <= m and (r == 0 if k == m else 1 <= r <= min(m - k, n))):
        raise _Wrong(f"(split={k}, rank={r}) is not a valid HMF of a {m}x{n} matrix.",
                     f"split in [0, {m}], rank in [1, min(m-split, n)].")
    if hmf_params(m, n, k, r) > m * n / c + 1e-9:
        raise _Wrong(f"(split={k}, rank={r}) stores {hmf_params(m, n, k, r):,} values, over the budget "
                     f"m*n/{c:g} = {m * n / c:,.0f}.", "hl.budget(W.shape, compression) lists what fits.")
    b = budget((m, n), c, step=step or max(1, m // 32))
    errs = [cache.error(kk, rr) for kk, rr in zip(b["split"], b["rank"])]
    best = int(np.argmin(errs))
    mine = cache.error(k, r)
    if mine > errs[best] * (1 + rtol) + 1e-9:
        raise _Wrong(f"(split={k}, rank={r}) fits, but its error {mine:.4f} is above the best {errs[best]:.4f} "
                     f"(split={int(b['split'].iloc[best])}).",
                     "evaluate the error of every row of hl.budget(...) and take the smallest.")
    return f"error {mine:.4f} at {hmf_params(m, n, k, r):,} values (best on the grid: {errs[best]:.4f})."


@_check
def check_rows(W, split, rank, answer, *, tol: float = 1e-6) -> bool:
    """Check that ``answer`` (row indices) is an optimal dense row set for W at (split, rank), by the oracle.

    >>> W = torch.diag(torch.tensor([5., 4., 3., 2., 1.]))
    >>> check_rows(W, 2, 1, [0, 1])
    PASS — Correct: rows [0, 1] reach the optimum, error 0.3015 (best of 10 subsets).
    True
    >>> check_rows(W, 2, 1, [3, 4])  # doctest: +ELLIPSIS
    FAIL — rows [3, 4] give error 0.6742, the best subset gives 0.3015 (9 of 10 subsets are better).
      Hint: keep dense the rows that a rank-1 factorization of the other rows would serve worst...
    False
    """
    from hmf_lab.factor.oracle import oracle

    if pending(answer):
        return None
    best = oracle(W, split, rank)
    if isinstance(answer, (str, bytes)):  # "45" would otherwise be read as the rows [4, 5]
        raise _Wrong(f"the answer should be {best.split} distinct row indices, got the string {answer!r}.",
                     "a list of ints, e.g. [0, 1], not a string.")
    try:
        rows = [int(i) for i in (answer.tolist() if isinstance(answer, (torch.Tensor, np.ndarray)) else answer)]
        e = best.error_of(rows)
    except (TypeError, ValueError) as err:
        raise _Wrong(f"the answer should be {best.split} distinct row indices in [0, {as_matrix(W).shape[0] - 1}], "
                     f"got {answer!r} ({err}).", "a list of ints, e.g. [0, 1].") from None
    if e > best.error * (1 + tol) + 1e-12:
        worse = int(np.sum(best.errors < e * (1 - 1e-9)))
        raise _Wrong(f"rows {sorted(rows)} give error {e:.4f}, the best subset gives {best.error:.4f} "
                     f"({worse} of {best.n_subsets} subsets are better).",
                     f"keep dense the rows that a rank-{best.rank} factorization of the other rows would serve "
                     "worst: large rows pointing in their own direction.")
    return f"rows {sorted(rows)} reach the optimum, error {e:.4f} (best of {best.n_subsets} subsets)."


@_check
def check_hmf_gain(results, compression: float, answer, *, regime: str = "post", task: str | None = None) -> bool:
    """Exercise check: HMF's relative gain over LMF (in %, positive = HMF better) at ``compression``.

    ``results``: the cells of ``hmf-lab reproduce`` (``hl.experiments.grid.load_grid``: columns ``label``, ``value``,
    mean over seeds) or one task table of the older format (``method``, ``after``). Never raises (a wrong
    answer or malformed results): prints "Correct" or FAIL with a hint and returns a bool (``False`` while
    ``answer`` is ``None``). An answer within 0.05 percentage points passes. The expected answer is whatever
    the results say, whichever way it falls.

    >>> import pandas as pd
    >>> df = pd.DataFrame({"task": "lm", "regime": "post", "metric": "bits_per_char", "label": ["hmf", "lmf"] * 2,
    ...                    "seed": [0, 0, 1, 1], "compression": 4.0, "value": [2.0, 2.5, 2.0, 2.5]})
    >>> check_hmf_gain(df, 4, 20.0)
    PASS — Correct: HMF is 20.00% better than LMF at 4x (lm, post).
    True
    >>> check_hmf_gain(df, 4, -20.0)
    FAIL — -20.0 is not HMF's gain over LMF at 4x.
      Hint: lower bits per char is better, so the gain is (lmf - hmf) / lmf * 100, on the means over seeds.
    False
    """
    import pandas as pd

    if pending(answer):
        return None
    from hmf_lab.nn.methods import get_method

    pair = [get_method("hmf").name, get_method("lmf").name]  # the two methods compared
    shape_hint = ("pass the results table: hl.experiments.grid.load_grid(...) (columns task, regime, metric, "
                  "label, seed, compression, value) or one task's table (columns task, metric, method, "
                  "compression, after)")
    if not isinstance(results, (pd.DataFrame, list, dict)):
        raise _Wrong(f"results must be a table of experiment results, got {type(results).__name__}", shape_hint)
    try:
        df = pd.DataFrame(results)
    except (TypeError, ValueError) as e:
        raise _Wrong(f"results could not be read as a table ({e})", shape_hint) from None
    if isinstance(compression, bool) or not isinstance(compression, numbers.Real):
        raise _Wrong(f"compression must be a number such as 4, got {type(compression).__name__} {compression!r}",
                     "pass the compression factor of the row you read, e.g. check_hmf_gain(results, 4, answer)")
    new_cols, old_cols = {"label", "value", "compression", "metric", "task"}, {"method", "after", "compression",
                                                                               "metric", "task"}
    if not (new_cols <= set(df.columns) or old_cols <= set(df.columns)):
        raise _Wrong(f"results lack the columns this check reads: got {sorted(map(str, df.columns))[:12]}",
                     shape_hint)
    if "label" not in df:   # older per-task format: one row per method, 'after' = after fine-tuning
        df = df[df.method.isin(pair)].assign(label=df.method, value=df["after"], seed=0,
                                                       regime=regime)
    if "seed" not in df:
        df = df.assign(seed=0)
    if "regime" not in df:
        df = df.assign(regime=regime)
    if task is not None:
        df = df[df.task == task]
    if "regime" in df:
        df = df[df.regime == regime]
    from hmf_lab.experiments.grid import hmf_vs_lmf
    comp = hmf_vs_lmf(df[df.label.isin(pair)])
    row = comp[comp.compression == float(compression)] if len(comp) else comp
    if not len(row):
        raise _Wrong(f"no HMF and LMF results at compression {compression} (regime {regime!r})",
                     f"available compressions: {sorted(set(comp.compression)) if len(comp) else []}")
    r = row.iloc[0]
    want = float(r.pct)
    try:
        got = _number(answer, "the answer (a percentage)")
    except _Wrong:
        raise _Wrong(f"the answer must be a number (a percentage), got {type(answer).__name__} {answer!r}",
                     "a number, e.g. answer = 12.5 for HMF 12.5% better than LMF (not a string).") from None
    if abs(got - want) <= 0.05:
        return (f"HMF is {abs(want):.2f}% {'better' if want >= 0 else 'worse'} than LMF at {compression:g}x "
                f"({r.task}, {regime}).")
    lower = df.metric.iloc[0] in ("bits_per_char", "perplexity")
    hint = ("lower bits per char is better, so the gain is (lmf - hmf) / lmf * 100" if lower
            else "higher is better, so the gain is (hmf - lmf) / lmf * 100")
    raise _Wrong(f"{answer} is not HMF's gain over LMF at {compression:g}x.",
                 _scale_hint(got, want, asked="percent", tol=0.05) or f"{hint}, on the means over seeds.")


@_check
def check_hmf_beats_lmf(W, compression=4, *, margin: float = 0.01) -> bool:
    """Check that HMF beats LMF on the matrix ``W`` at the same number of stored values.

    HMF at the balanced point ``hl.choose_split_rank(W.shape, compression)`` (the top ``split`` rows dense, the
    kit's default) must have a relative weight error at least ``margin`` (1%) below LMF's at rank
    ``hl.lmf_rank(W.shape, compression)``; both store about ``m*n/compression`` values. Eckart-Young makes LMF
    the best at its *rank*, not at its *size*: HMF reaches rank ``split + rank``, which pays off when a few
    rows are loud.

    >>> import hmf_lab as hl
    >>> W = hl.synthetic.loud_rows(128, 128, n_loud=16, loudness=4.0, rank=8, noise=0.3, seed=0)
    >>> W = W[W.norm(dim=1).argsort(descending=True)]  # the loud rows on top, where HMF keeps rows dense
    >>> check_hmf_beats_lmf(W, 4)  # doctest: +ELLIPSIS
    PASS — Correct: at 4x HMF (split 13, rank 10, ...) has error 0.218, LMF (rank 16, ...) 0.457...
    True
    >>> check_hmf_beats_lmf(torch.randn(128, 128, generator=torch.Generator().manual_seed(0)), 4)  # doctest: +ELLIPSIS
    FAIL — HMF's error 0.8... is not below LMF's 0.7... at 4x...
    False
    """
    from hmf_lab.factor.budget import choose_split_rank, hmf_params, lmf_rank
    from hmf_lab.factor.core import hmf, lmf, relative_error

    if pending(W):
        return None
    if not isinstance(W, (torch.Tensor, np.ndarray)):
        raise _Wrong(f"my_W should be a matrix (a torch tensor or a NumPy array), got {type(W).__name__}.",
                     "build it with torch, e.g. my_W = torch.randn(128, 128), then change its rows.")
    W = torch.as_tensor(W)
    if W.ndim != 2 or not W.is_floating_point() and W.dtype not in (torch.int32, torch.int64):
        raise _Wrong(f"my_W should be a 2-D matrix of numbers, got shape {tuple(W.shape)} ({W.dtype}).",
                     "e.g. my_W = torch.randn(128, 128).")
    W = W.float()
    m, n = W.shape
    if not (64 <= min(m, n) and max(m, n) <= 1024):
        raise _Wrong(f"my_W is {m}x{n}; use between 64 and 1024 rows and columns.",
                     "at a few dozen rows the balanced HMF point is LMF itself (split 0); 128x128 works well.")
    if not torch.isfinite(W).all() or float(W.norm()) == 0.0:
        raise _Wrong("my_W should be finite and not all zeros.", "start from torch.randn(128, 128).")
    c = check_compression(compression)
    k, r = choose_split_rank((m, n), compression=c)
    rl = lmf_rank((m, n), c)
    if k == 0:
        raise _Wrong(f"at {c:g}x a {m}x{n} matrix has its balanced HMF point at split 0, which is LMF itself.",
                     "use a larger matrix (128x128 at 4x keeps 13 rows dense).")
    e_h, e_l = relative_error(W, hmf(W, split=k, rank=r)), relative_error(W, lmf(W, rl))
    ratio = spectrum_summary(W)["row_norm max/median"]
    if not e_h < e_l * (1 - margin):
        raise _Wrong(f"HMF's error {e_h:.3f} is not below LMF's {e_l:.3f} at {c:g}x (by at least "
                     f"{100 * margin:g}%); your rows' max/median norm is {ratio:.2f}.",
                     f"HMF keeps the TOP {k} rows exact and factorizes the rest at rank {r}, LMF has rank {rl}. "
                     "Make a few rows much louder than the others (each pointing its own way, e.g. random) and put "
                     "them on top, over a matrix whose other rows are close to low rank.")
    return (f"at {c:g}x HMF (split {k}, rank {r}, {hmf_params(m, n, k, r):,} values) has error {e_h:.3f}, LMF "
            f"(rank {rl}, {rl * (m + n):,} values) {e_l:.3f}: at equal size HMF reaches rank {k + r} > {rl}. "
            f"Your rows' max/median norm: {ratio:.2f} (the shipped LSTMs: 1.26-1.65).")


def _int_answer(answer, what: str) -> int:
    a = _number(answer, what)
    if a != int(a):
        raise _Wrong(f"{what} should be a whole number, got {a:g}.", "round to the integer the question asks for.")
    return int(a)


@_check
def check_rank_for_error(W, target: float, answer) -> bool:
    """Check the smallest rank whose best approximation (Eckart-Young) has relative error at most ``target``.

    >>> W = with_spectrum(10, 10, "flat")      # ten equal singular values: error at rank r is sqrt(1 - r/10)
    >>> check_rank_for_error(W, 0.75, 5)
    PASS — Correct: rank 5 is the smallest with error <= 0.75 (0.7071); rank 4 leaves 0.7746.
    True
    >>> check_rank_for_error(W, 0.75, 6)  # doctest: +ELLIPSIS
    FAIL — rank 6 reaches the target, but a smaller rank does too...
    False
    """
    if pending(answer):
        return None
    s = torch.linalg.svdvals(as_matrix(W).double())
    err = (1 - torch.cumsum(s**2, 0) / (s**2).sum()).clamp_min(0).sqrt()   # err[i]: error at rank i + 1
    errors = [1.0] + [float(e) for e in err]                              # errors[r]: error at rank r
    t = float(target)
    truth = next(r for r, e in enumerate(errors) if e <= t + 1e-12)
    a = _int_answer(answer, "the rank")
    if not 0 <= a < len(errors):
        raise _Wrong(f"rank {a} is not a rank of a {tuple(W.shape)} matrix.", f"a rank in [0, {len(errors) - 1}].")
    if a == truth:
        return (f"rank {truth} is the smallest with error <= {t:g} ({errors[truth]:.4f}); "
                f"rank {truth - 1} leaves {errors[truth - 1]:.4f}.")
    if a > truth:
        raise _Wrong(f"rank {a} reaches the target, but a smaller rank does too (error {errors[a]:.4f}).",
                     "the error falls as the rank grows: find the FIRST rank where it drops to the target.")
    squared = next(r for r, e in enumerate(errors) if e**2 <= t + 1e-12)  # the slip: error**2 against the target
    hint = ("the dropped energy is the sum of s[r:]**2 over the sum of all s**2 (0-based); take the square root "
            "before comparing with the target." if a == squared else
            "compute the error at every rank from the singular values, e.g. with torch.cumsum, and take the first "
            "rank at or below the target.")
    raise _Wrong(f"rank {a} leaves error {errors[a]:.4f}, above the target {t:g}.", hint)


@_check
def check_ideal_speedup(shape, compression, answer, *, method: str = "prune") -> bool:
    """Check the ideal (memory-bound) speed-up over dense of an (m, n) float32 layer compressed ``compression``x:
    dense bytes / the layer's bytes. ``method``: a name of the method registry ("prune": CSR with int32 indices;
    "lmf", "hmf": 4 bytes per stored value at the method's own budget rule, ``Method.stored``).

    >>> check_ideal_speedup((512, 128), 8, 4 * 512 * 128 / (8192 * 8 + 513 * 4))
    PASS — Correct: dense 262,144 B / prune 67,588 B = 3.879x (the compression is 8x).
    True
    """
    from hmf_lab.factor.budget import csr_bytes
    from hmf_lab.nn.methods import get_method

    if pending(answer):
        return None
    m, n = (int(v) for v in shape)
    c = check_compression(compression)
    rec = get_method(method)  # the method registry: its stored values at this budget, and whether it is CSR
    stored = rec.stored((m, n), c)
    nb = csr_bytes(m, stored) if rec.sparse else 4 * stored
    truth = 4 * m * n / nb
    a = _number(answer, "the speed-up")
    if math.isclose(a, truth, rel_tol=2e-3):
        return f"dense {4 * m * n:,} B / {rec.name} {nb:,} B = {truth:.3f}x (the compression is {c:g}x)."
    if rec.sparse and math.isclose(a, c, rel_tol=2e-3):
        raise _Wrong(f"{a:g} is the compression, not the speed-up from bytes.",
                     "CSR stores an int32 column index next to every value and m+1 row pointers: count its bytes.")
    if math.isclose(a, 1 / truth, rel_tol=2e-3):
        raise _Wrong(f"{a:g} is the inverse of the speed-up.", "speed-up = dense bytes / compressed bytes (> 1).")
    raise _Wrong(f"{a:g} is not the ideal speed-up from bytes.",
                 "a memory-bound layer's time is bytes / bandwidth: divide the dense bytes (4 B per value) by the "
                 "compressed layer's bytes.")


@_check
def check_cache_fit(sizes, cache_bytes: int, compression, answer) -> bool:
    """Check which square float32 layers N x N (N from ``sizes``) do NOT fit in a cache of ``cache_bytes`` dense
    but DO fit compressed ``compression``x (``4*N*N/compression`` bytes): where the speed-up can beat the ideal.

    >>> check_cache_fit([256, 512, 1024, 2048], 8 * 2**20, 4, [2048])
    PASS — Correct: [2048] (2048: dense 16,777,216 B > 8,388,608 B >= 4,194,304 B compressed).
    True
    """
    if pending(answer):
        return None
    c = check_compression(compression)
    cache = int(cache_bytes)
    truth = sorted(int(N) for N in sizes if 4 * N * N > cache >= 4 * N * N / c)
    if isinstance(answer, (str, bytes)) or not hasattr(answer, "__iter__"):
        raise _Wrong(f"the answer should be a list of sizes, got {type(answer).__name__} {answer!r}.",
                     "a list of ints taken from `sizes`, e.g. [512] (an empty list [] if none).")
    got = sorted(int(_number(v, "a size")) for v in answer)
    if got == truth:
        parts = "; ".join(f"{N}: dense {4 * N * N:,} B > {cache:,} B >= {4 * N * N // c:,.0f} B compressed"
                          for N in truth)
        return f"{truth} ({parts or 'no size is in between'})."
    wrong = sorted(set(got) ^ set(truth))
    N = wrong[0]
    why = ("its dense matrix already fits" if 4 * N * N <= cache else
           "even compressed it does not fit" if 4 * N * N / c > cache else "it belongs in the list")
    raise _Wrong(f"{got} is not the list: check size {N} ({why}).",
                 f"dense bytes = 4*N*N, compressed = 4*N*N/{c:g}; keep N where dense > cache >= compressed.")


@_check
def check_rank_at_budget(shape, compression, split: int, answer) -> bool:
    """Check the largest rank HMF can have at ``split`` dense rows within the budget ``floor(m*n/compression)``.

    >>> check_rank_at_budget((100, 80), 4, 10, 7)
    PASS — Correct: 10*80 + 7*(90 + 80) = 1,990 <= 2,000 values; rank 8 would store 2,160.
    True
    """
    from hmf_lab.factor.budget import hmf_params, largest_rank, value_budget

    if pending(answer):
        return None
    m, n = (int(v) for v in shape)
    c = check_compression(compression)
    B = value_budget((m, n), c)
    k = int(split)
    truth = largest_rank((m, n), B, k)
    a = _int_answer(answer, "the rank")
    if a == truth:
        return (f"{k}*{n} + {truth}*({m - k} + {n}) = {hmf_params(m, n, k, truth):,} <= {B:,} values; rank "
                f"{truth + 1} would store {hmf_params(m, n, k, truth + 1):,}.")
    if a > truth:
        raise _Wrong(f"rank {a} stores {hmf_params(m, n, k, a):,} values, over the budget {B:,}.",
                     "the dense rows take k*n values first; the rest pays r*((m-k) + n) for rank r.")
    raise _Wrong(f"rank {a} fits, but rank {a + 1} fits too.",
                 "take the LARGEST r with k*n + r*((m-k) + n) <= floor(m*n / compression).")


@_check
def check_smallest_at_error(df, target: float, answer) -> bool:
    """Check the fewest stored values (``params``) of any structure in the sweep ``df`` (columns ``params``,
    ``error``) whose error is at most ``target``.

    >>> import pandas as pd
    >>> df = pd.DataFrame({"params": [100, 200, 300], "error": [0.9, 0.5, 0.2]})
    >>> check_smallest_at_error(df, 0.6, 200)
    PASS — Correct: 200 values reach error 0.5 <= 0.6 (3 structures on the sweep).
    True
    """
    import pandas as pd

    if pending(answer):
        return None
    if not isinstance(df, pd.DataFrame) or not {"params", "error"} <= set(df.columns):
        raise _Wrong("the sweep should be a DataFrame with columns params and error.", "pass the `df` of hl.sweep.")
    ok = df[df["error"] <= float(target)]
    if ok.empty:
        raise _Wrong(f"no structure of the sweep reaches error {target}.", "pick a larger target.")
    i = ok["params"].idxmin()
    truth, err = int(ok.loc[i, "params"]), float(ok.loc[i, "error"])
    a = _number(answer, "the parameter count")
    if a == truth:
        return f"{truth:,} values reach error {err:.4g} <= {target:g} ({len(df):,} structures on the sweep)."
    if a in set(df["params"]) and a > truth:
        raise _Wrong(f"{a:,.0f} values reach the target, but fewer do too.",
                     "filter the rows with error <= target, then take the SMALLEST params.")
    if a < truth:
        raise _Wrong(f"no structure with {a:,.0f} values reaches error {target:g} on the sweep.",
                     "filter on the error first (error <= target), then take the smallest params among those rows.")
    raise _Wrong(f"{a:,.0f} is not a parameter count of the sweep at error <= {target:g}.",
                 "answer with a value of df['params'] (an int), e.g. df[df.error <= target].params.min().")


def _heuristic_cases():
    """Matrices with loud rows at random positions, (split, rank) fitting 4x: where a rule must find rows."""
    from hmf_lab.factor.budget import budget
    from hmf_lab.factor.synthetic import loud_rows

    out = []
    for seed, (m, n, loud) in enumerate([(96, 64, 6), (128, 96, 8)]):
        W = loud_rows(m, n, n_loud=loud, rank=loud, seed=100 + seed)
        b = budget((m, n), 4)
        out.append((W, loud, int(b.loc[b.split == loud, "rank"].iloc[0])))
    return out


@_check
def check_my_heuristic(rule, *, tol: float = 0.05) -> bool:
    """Check a split heuristic ``rule(W, split, *, rank, X=None) -> row indices`` on matrices with loud rows at
    random positions: its HMF error must be within ``tol`` (5%) of the best built-in data-free rule
    (``row_norm``, ``leverage``, ``greedy``) on each, and so far below ``top``.

    >>> import hmf_lab as hl
    >>> check_my_heuristic(hl.HEURISTICS["greedy"])  # doctest: +ELLIPSIS
    PASS — Correct: your rule is within 5% of the best built-in on 2 loud-row matrices...
    True
    """
    from hmf_lab.factor.core import hmf, relative_error

    if pending(rule):
        return None
    _require_function(rule, "my_rule", "def my_rule(W, split, *, rank, X=None): return torch.topk(..., split).indices")
    lines = []
    for W, k, r in _heuristic_cases():
        rows = rule(W.clone(), k, rank=r)
        if rows is None:
            return pending(None) and None
        mine = relative_error(W, hmf(W, split=k, rank=r, heuristic=rule))
        best = min(relative_error(W, hmf(W, split=k, rank=r, heuristic=h)) for h in ("row_norm", "leverage", "greedy"))
        top = relative_error(W, hmf(W, split=k, rank=r, heuristic="top"))
        if mine > best * (1 + tol):
            raise _Wrong(f"on a {tuple(W.shape)} matrix with {k} loud rows (split {k}, rank {r}) your rule's error is "
                         f"{mine:.4f}; the best built-in reaches {best:.4f} and `top` {top:.4f}.",
                         "a loud row carries a lot of energy in a direction of its own: score rows by how much "
                         "the factorization would miss them (norm, leverage, or their part outside the top-r "
                         "singular subspace) and keep the highest scores.")
        lines.append(f"{mine:.3f} vs best {best:.3f}, top {top:.3f}")
    return (f"your rule is within {100 * tol:g}% of the best built-in on {len(lines)} loud-row matrices "
            f"({'; '.join(lines)}).")


@_check
def check_oracle_subsets(limit: int, answer) -> bool:
    """Check the smallest number of rows m for which the oracle, with ``split = m // 4`` dense rows, would try more
    than ``limit`` row sets (``C(m, m // 4)``).

    >>> check_oracle_subsets(10**4, 20)
    PASS — Correct: C(20, 5) = 15,504 > 10,000, while C(19, 4) = 3,876.
    True
    """
    if pending(answer):
        return None
    lim = int(limit)
    truth = next(m for m in range(1, 10_000) if math.comb(m, m // 4) > lim)
    a = _int_answer(answer, "the number of rows")
    if a == truth:
        return (f"C({truth}, {truth // 4}) = {math.comb(truth, truth // 4):,} > {lim:,}, while "
                f"C({truth - 1}, {(truth - 1) // 4}) = {math.comb(truth - 1, (truth - 1) // 4):,}.")
    if 1 <= a < 10_000 and math.comb(a, a // 4) <= lim:
        raise _Wrong(f"at m = {a} the oracle tries C({a}, {a // 4}) = {math.comb(a, a // 4):,} sets, not more than "
                     f"{lim:,}.", "math.comb(m, m // 4) counts them; increase m.")
    raise _Wrong(f"m = {a} is over the limit, but a smaller m is too.",
                 "find the SMALLEST m with math.comb(m, m // 4) > limit (try m = 1, 2, 3, ... in a loop).")


@_check
def check_compressed_params(model: str, method: str, compression, answer) -> bool:
    """Check a predicted ``hl.count_params`` of ``hl.compress(load_pretrained(model), method, compression)``.

    >>> check_compressed_params("char_lm", "prune", 8, 43040)
    PASS — Correct: hl.compress(char_lm, 'prune', 8) stores 43,040 values (dense 344,320).
    True
    """
    from hmf_lab.nlp.checkpoints import load_pretrained
    from hmf_lab.nn.compress import compress, count_params

    if pending(answer):
        return None
    dense = load_pretrained(model)
    truth = count_params(compress(dense, method, compression))
    d = count_params(dense)
    a = _number(answer, "the parameter count")
    if a == truth:
        return f"hl.compress({model}, {method!r}, {compression:g}) stores {truth:,} values (dense {d:,})."
    if abs(a - d / compression) < 1:
        raise _Wrong(f"{a:,.0f} is the budget dense / {compression:g}; {method} stores a little less.",
                     "the budget is an upper bound: each matrix takes the largest structure that fits in "
                     "floor(m*n / c) (hl.lmf_rank, hl.choose_split_rank), LSTM matrices one gate block (H rows) "
                     "at a time.")
    raise _Wrong(f"{a:,.0f} is not the number of values the compressed model stores.",
                 "list the model's weight matrices (hl.models.pretrained_weights), split each LSTM matrix into its "
                 "4 gate blocks of H rows, and add up what each block stores at this compression.")


@_check
def check_rank_bound(shape, compression, answer) -> bool:
    """Check the rank bound ``split + rank`` of HMF's default (balanced) point on an (m, n) matrix at ``compression``.

    >>> import hmf_lab as hl
    >>> check_rank_bound((128, 128), 4, 23)
    PASS — Correct: split 13 + rank 10 = 23 at 4x, against LMF's rank 16 at the same budget.
    True
    """
    from hmf_lab.factor.budget import choose_split_rank, lmf_rank

    if pending(answer):
        return None
    m, n = (int(v) for v in shape)
    c = check_compression(compression)
    k, r = choose_split_rank((m, n), c)
    rl = lmf_rank((m, n), c)
    a = _int_answer(answer, "the rank bound")
    if a == k + r:
        return f"split {k} + rank {r} = {k + r} at {c:g}x, against LMF's rank {rl} at the same budget."
    if a in (k, r):
        raise _Wrong(f"{a} is only the {'split' if a == k else 'rank'} of the default point.",
                     "the rank bound of HMF is split + rank.")
    raise _Wrong(f"{a} is not the rank bound of HMF's default point at {c:g}x.",
                 "hl.choose_split_rank(shape, compression) gives the default (split, rank); add them.")


@_check
def check_reconstructed_bytes(shape, compression, answer) -> bool:
    """Check the bytes an (m, n) float32 HMF layer (default point at ``compression``) holds on the
    ``reconstructed`` engine: its factors (D, U, V) AND the rebuilt dense W_hat (m*n values).

    >>> check_reconstructed_bytes((64, 64), 4, 4 * (1024 + 64 * 64))
    PASS — Correct: factors 4,096 B + W_hat 16,384 B = 20,480 B: 1.25x the dense layer's memory, for dense speed.
    True
    >>> check_reconstructed_bytes((64, 64), 4, 4 * 1024)  # doctest: +ELLIPSIS
    FAIL — 4,096 B are the factors alone.
    ...
    False
    """
    from hmf_lab.factor.budget import choose_split_rank, hmf_params

    if pending(answer):
        return None
    m, n = (int(v) for v in shape)
    c = check_compression(compression)
    stored = hmf_params(m, n, *choose_split_rank((m, n), c))
    truth = 4 * (stored + m * n)
    a = _number(answer, "the byte count")
    if a == truth:
        return (f"factors {4 * stored:,} B + W_hat {4 * m * n:,} B = {truth:,} B: {truth / (4 * m * n):.2f}x the dense "
                f"layer's memory, for dense speed.")
    if a == 4 * stored:
        raise _Wrong(f"{a:,.0f} B are the factors alone.",
                     "the reconstructed engine keeps the factors (to train and to rebuild) AND W_hat, m*n floats.")
    if a == 4 * m * n:
        raise _Wrong(f"{a:,.0f} B is W_hat alone.", "the factors D, U, V stay in memory next to it.")
    if a in (stored + m * n, stored, m * n):
        raise _Wrong(f"{a:,.0f} counts values, not bytes.", "a float32 value takes 4 bytes.")
    raise _Wrong(f"{a:,.0f} B is not what the layer holds.",
                 "bytes = 4 * (HMF's stored values at hl.choose_split_rank + m*n for W_hat).")


@_check
def check_effective_bandwidth(n_bytes, seconds, answer) -> bool:
    """Check an effective bandwidth in GB/s (10^9 bytes per second): ``n_bytes`` read in ``seconds``.

    >>> check_effective_bandwidth(1_000_000, 1e-4, 10.0)
    PASS — Correct: 1,000,000 B / 100 µs = 10.00 GB/s.
    True
    """
    if pending(answer):
        return None
    nb, t = float(n_bytes), float(seconds)
    truth = nb / t / 1e9
    a = _number(answer, "the bandwidth")
    if math.isclose(a, truth, rel_tol=5e-3):
        return f"{nb:,.0f} B / {t * 1e6:,.0f} µs = {truth:.2f} GB/s."
    if math.isclose(a, nb / t / 2**30, rel_tol=5e-3):
        raise _Wrong(f"{a:g} is in GiB/s (2^30 bytes).", "GB/s here means 10^9 bytes per second.")
    for f, unit in ((1e3, "ms"), (1e6, "µs"), (1e-3, "MB/s")):
        if math.isclose(a, truth * f, rel_tol=5e-3) or math.isclose(a, truth / f, rel_tol=5e-3):
            raise _Wrong(f"{a:g} is off by a factor of {f:g}: a unit slip ({unit}?).",
                         "convert the time to seconds and the result to 10^9 bytes per second.")
    raise _Wrong(f"{a:g} GB/s is not bytes / time.", "bandwidth = bytes read / seconds, then / 1e9 for GB/s.")


def __getattr__(name):
    # `hl.exercises.synthetic` was a function while `hl.synthetic` is a module: one name per thing.
    if name == "synthetic":
        import warnings

        warnings.warn("hl.exercises.synthetic is renamed: use hl.synthetic.with_spectrum(m, n, spectrum, ...) "
                      "(the same function; also hl.exercises.with_spectrum)", DeprecationWarning, stacklevel=2)
        return with_spectrum
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# --------------------------------------------------------------------------- notebook 08: HMF meets the transformer

EXERCISES.update({
    "col_params": Exercise("08", "count column HMF's values", ("answer",)),
    "my_channel_energy": Exercise("08", "the whitened channel energy", ("my_channel_energy",)),
    "best_col_split": Exercise("08", "the best column split of a layer", ("best_frac",)),
})

#: the split fractions of notebook 08's slider (0 = no dense columns, 1 = the largest split that fits)
SPLIT_FRACS = tuple(i / 8 for i in range(9))


@_check
def check_col_params(m: int, n: int, split: int, rank: int, answer) -> bool:
    """Check the number of values column HMF stores for an (m, n) weight with ``split`` dense input columns
    and rank ``rank`` (``hl.factor.budget.col_params``).

    >>> check_col_params(128, 512, 16, 40, 128 * 16 + 128 * 40 + 40 * 496)  # doctest: +ELLIPSIS
    PASS — Correct: column HMF stores m*k + m*r + r*(n-k) = 27,008 values...
    True
    >>> check_col_params(128, 512, 16, 40, 16 * 512 + 40 * 112 + 40 * 512)  # doctest: +ELLIPSIS
    FAIL — 33152 is not the number of values column HMF stores.
    ...
    False
    """
    from hmf_lab.factor.budget import col_params

    if pending(answer):
        return None
    a = _number(answer, "the number of stored values")
    truth = col_params(m, n, split, rank)
    if a != truth:
        hint = ("that is the ROW split's count (k dense rows of W); here k input COLUMNS stay dense"
                if a == split * n + rank * (m - split) + rank * n else
                "the dense part is m x k (k whole columns of W), the factorized rest U (m x r) times V (r x (n-k)).")
        raise _Wrong(f"{answer!r} is not the number of values column HMF stores.", hint)
    return (f"column HMF stores m*k + m*r + r*(n-k) = {truth:,} values ({m * n / truth:.2f}x); a dense column "
            f"costs m = {m} values, a rank costs m + n - k = {m + n - split}.")


def _energy_cases(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    W1, X1 = torch.randn(12, 20, generator=g), torch.randn(300, 20, generator=g)
    X1[:, 4] *= 15                                                     # one loud, independent channel
    base = torch.randn(400, 6, generator=g)
    X2 = base @ torch.randn(6, 24, generator=g) + 0.1 * torch.randn(400, 24, generator=g)  # correlated
    X2[:, 0] *= 8
    W2 = torch.randn(30, 24, generator=g)
    return [(W1, X1), (W2, X2), (torch.eye(5), torch.randn(50, 5, generator=g))]


@_check
def check_my_channel_energy(my_channel_energy, *, seed: int = 0) -> bool:
    """Check a function ``my_channel_energy(W, X)`` that returns the whitened energy of each input channel
    j of ``W`` (m, n) on inputs ``X`` (N, n): ``||(W C^(1/2))[:, j]||^2`` with ``C = X^T X / N`` (a vector
    of n numbers), against :func:`hmf_lab.factor.heuristics.channel_energy` on a few cases (a loud channel,
    correlated channels).

    >>> from hmf_lab.factor.heuristics import channel_energy
    >>> check_my_channel_energy(lambda W, X: channel_energy(W, X)[1])  # doctest: +ELLIPSIS
    PASS — Correct: ...
    True
    >>> check_my_channel_energy(lambda W, X: channel_energy(W, X)[0])  # doctest: +ELLIPSIS
    FAIL — ...
    False
    """
    from hmf_lab.factor.heuristics import channel_energy

    if pending(my_channel_energy):
        return None
    _require_function(my_channel_energy, "my_channel_energy", "define it with def my_channel_energy(W, X): ...",
                      kind=" (W, X) -> energies")
    for i, (W, X) in enumerate(_energy_cases(seed)):
        got = my_channel_energy(W.clone(), X.clone())
        if pending(got):  # the template still returns None
            return None
        got = torch.as_tensor(got).double().reshape(-1)
        raw, want = channel_energy(W, X)
        if got.numel() != want.numel():
            raise _Wrong(f"case {i}: expected {want.numel()} numbers (one per input channel), got {got.numel()}.",
                         "sum over the OUTPUT rows: ((W @ root) ** 2).sum(0) has one entry per column.")
        if not torch.allclose(got, want, rtol=1e-3, atol=1e-6 * float(want.abs().max())):
            hint = ("these are the RAW channel energies mean x_j^2; multiply W by the square root of C first"
                    if torch.allclose(got, raw, rtol=1e-3) else
                    "C = X.T @ X / N; its symmetric square root from torch.linalg.eigh: Q diag(sqrt(lam)) Q^T; "
                    "then the squared column norms of W @ root.")
            raise _Wrong(f"case {i} ({tuple(W.shape)}, N = {X.shape[0]}): your energies differ from the whitened ones "
                         f"(largest {float(got.max()):.4g} vs {float(want.max()):.4g}).", hint)
    return ("your whitened energies match. They sum to E||W x||^2: the channels' split of the output energy "
            "once correlated inputs are accounted for.")


def _col_split_errors(linear, X, compression, seed: int = 0) -> dict:
    from hmf_lab.experiments.layerfit import layer_methods

    return {f: float(layer_methods(linear, X, compression, methods=("hmf_col",), split_frac=f,
                                   seed=seed).table.output_error.iloc[0]) for f in SPLIT_FRACS}


@_check
def check_best_col_split(linear, X, compression, answer, *, tol: float = 0.01, seed: int = 0) -> bool:
    """Check the split fraction (one of :data:`SPLIT_FRACS`, the slider's values) at which column HMF has the
    lowest held-out output error on ``linear`` with inputs ``X`` at ``compression``
    (:func:`hmf_lab.experiments.layerfit.layer_methods`); an answer within ``tol`` (1%) of the lowest passes.

    >>> lin = torch.nn.Linear(64, 32); X = torch.randn(400, 64)
    >>> check_best_col_split(lin, X, 2, 0.3)  # doctest: +ELLIPSIS
    FAIL — 0.3 is not one of the slider's split fractions...
    False
    """
    if pending(answer):
        return None
    a = _number(answer, "the split fraction")
    if not any(math.isclose(a, f) for f in SPLIT_FRACS):
        raise _Wrong(f"{answer!r} is not one of the slider's split fractions {list(SPLIT_FRACS)}.",
                     "pick one of 0, 0.125, 0.25, ..., 1 (the split slider's positions).")
    errs = _col_split_errors(linear, X, compression, seed)
    best = min(errs, key=errs.get)
    mine = next(e for f, e in errs.items() if math.isclose(a, f))
    if mine > errs[best] * (1 + tol):
        raise _Wrong(f"at split {a:g} column HMF's output error is {mine:.4f}; another split does better.",
                     "untick 'balanced split' in the explorer and move the split slider over every position at "
                     f"{compression:g}x (or loop over hl.exercises.SPLIT_FRACS with layer_methods).")
    return (f"split {a:g}: output error {mine:.4f} (the lowest over the slider's splits: {errs[best]:.4f} at "
            f"{best:g}; no dense columns at all: {errs[0.0]:.4f}).")
