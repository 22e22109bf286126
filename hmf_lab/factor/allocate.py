"""A budget for the whole model: one solver spreads the stored values over matrices, alike for every method.

Each matrix (an ``nn.Linear``, an LSTM weight with its gate blocks, an attention q/k/v/out block) offers a
list of candidate points ``(stored values, error)`` -- its method's *ladder* (``Method.points`` in
:mod:`hmf_lab.nn.methods`: ranks for LMF, (split, rank) pairs for HMF, keep counts for pruning). The solver
picks one point per matrix so that the total stored values stay within ``budget`` and the summed error is as
small as it can find:

1. every matrix starts at its cheapest point (rank 1 / the smallest keep; the ladders stop at
   :data:`MAX_SPREAD` times the target compression);
2. **greedy on the lower convex hull**: repeatedly grant the step with the largest error reduction per extra
   stored value (a heap over each matrix's next hull step); a step that does not fit freezes that matrix's
   hull walk;
3. **fill**: while values are left, move the matrix whose best affordable point lowers the error most;
4. **exchange**: take values from one matrix and give them to another while that lowers the total error.

Steps 1-2 are the classic marginal-analysis greedy (optimal whenever the budget lands on a hull breakpoint,
and monotone in the budget); 3-4 use the rest of the budget and repair what the hull's granularity misses.
Cost: O(P log P) for the hull greedy (P candidate points in all), O(U * P log P) per fill / exchange round
(U matrices). :func:`brute_force` is the exhaustive reference for small cases (tests).

The errors are additive: :func:`point_error` is the squared *relative* error of a matrix, summed over its gate
blocks: ``||X (W - W_hat)^T||^2 / ||X W^T||^2`` with calibration inputs X, ``||W - W_hat||^2 / ||W||^2``
without. Relative, so that every block counts alike whatever the scale of its outputs (an absolute output
error would hand the budget to the layer with the loudest outputs).

>>> alloc = greedy_allocate([[(1, 1.0), (2, 0.5), (3, 0.4)], [(1, 2.0), (2, 0.6), (3, 0.1)]], budget=4)
>>> alloc.choice, alloc.stored, round(alloc.error, 3)
((1, 1), 4, 1.1)
"""
from __future__ import annotations

import bisect
import heapq
import itertools
import math
from dataclasses import dataclass

import torch

__all__ = ["Allocation", "greedy_allocate", "brute_force", "point_error", "ALLOCATE", "MAX_SPREAD", "check_allocate",
           "ladder_compressions"]

#: the allocation rules ``hl.compress(..., allocate=)`` knows
ALLOCATE = ("uniform", "greedy")
#: no matrix is allocated more than this times the target compression. The errors are proxies (relative
#: per matrix): a matrix that is hard to compress (flat spectrum, e.g. an LSTM's W_hh judged by weight error)
#: looks worth little per value, and without a floor the solver would cut it to rank 1, which the model's
#: loss does not forgive (char LM, LMF 16x by weight error: 6.21 bits/char against uniform's 5.98)
MAX_SPREAD = 4.0


def check_allocate(allocate) -> str:
    """``allocate`` checked: one of :data:`ALLOCATE`, else ``ValueError`` listing them.

    >>> check_allocate("greedy")
    'greedy'
    """
    if not isinstance(allocate, str) or allocate not in ALLOCATE:
        raise ValueError(f"allocate must be one of {list(ALLOCATE)} ('uniform': every matrix at the compression, "
                         f"'greedy': the same total spread over the matrices by error per stored value), "
                         f"got {allocate!r}")
    return allocate


@dataclass(frozen=True)
class Allocation:
    """The solver's answer: ``choice[u]`` indexes matrix u's candidate list; totals of stored values and error."""

    choice: tuple
    stored: int
    error: float
    budget: int


def _frontier(points):
    """Indices of the Pareto points of one candidate list (cost up, error strictly down), sorted by cost."""
    order = sorted(range(len(points)), key=lambda i: (points[i][0], points[i][1]))
    out, best = [], math.inf
    for i in order:
        if points[i][1] < best:
            out.append(i)
            best = points[i][1]
    return out


def _hull(points, front):
    """The lower convex hull of the Pareto points ``front`` (indices), cheapest first."""
    hull = []
    for i in front:
        c, e = points[i]
        while len(hull) >= 2:
            c1, e1 = points[hull[-2]]
            c2, e2 = points[hull[-1]]
            # drop hull[-1] if it lies on or above the segment hull[-2] -> i
            if (e2 - e1) * (c - c1) >= (e - e1) * (c2 - c1):
                hull.pop()
            else:
                break
        hull.append(i)
    return hull


def _check(candidates, budget):
    cands = [[(int(c), float(e)) for c, e in pts] for pts in candidates]
    if not cands or any(not pts for pts in cands):
        raise ValueError("candidates must be a non-empty list of non-empty lists of (stored values, error) points")
    if any(c < 0 or not math.isfinite(e) for pts in cands for c, e in pts):
        raise ValueError("candidate points must have stored values >= 0 and finite errors")
    budget = int(math.floor(budget))
    least = sum(min(c for c, _ in pts) for pts in cands)
    if least > budget:
        raise ValueError(f"the budget of {budget} stored values is below the cheapest point of every matrix "
                         f"together ({least}); use a smaller compression")
    return cands, budget


def greedy_allocate(candidates, budget, *, incumbent=None, polish: bool = True) -> Allocation:
    """One point per matrix, total stored values <= ``budget``, summed error small (see the module docstring).

    ``candidates``: per matrix, a list of ``(stored_values, error)``. ``incumbent``: an optional feasible
    choice (indices, e.g. the uniform allocation); the answer is never worse than it. ``polish=False``
    stops after the hull greedy (steps 1-2, monotone in ``budget``).
    """
    cands, budget = _check(candidates, budget)
    fronts = [_frontier(pts) for pts in cands]
    hulls = [_hull(pts, f) for pts, f in zip(cands, fronts)]
    cur = [h[0] for h in hulls]  # the cheapest Pareto point = the cheapest point
    pos = [0] * len(cands)
    left = budget - sum(cands[u][cur[u]][0] for u in range(len(cands)))

    def step(u):
        a, b = cands[u][hulls[u][pos[u]]], cands[u][hulls[u][pos[u] + 1]]
        return (a[1] - b[1]) / max(b[0] - a[0], 1e-300)

    heap = [(-step(u), u) for u in range(len(cands)) if len(hulls[u]) > 1]
    heapq.heapify(heap)
    while heap:
        _, u = heapq.heappop(heap)
        nxt = hulls[u][pos[u] + 1]
        extra = cands[u][nxt][0] - cands[u][cur[u]][0]
        if extra > left:
            continue  # frozen: its later hull steps build on this one
        left -= extra
        cur[u], pos[u] = nxt, pos[u] + 1
        if pos[u] + 1 < len(hulls[u]):
            heapq.heappush(heap, (-step(u), u))
    if polish:
        cur, left = _polish(cands, fronts, cur, left)
    best = _result(cands, cur, budget)
    if incumbent is not None:
        inc = tuple(int(i) for i in incumbent)
        if len(inc) != len(cands):
            raise ValueError(f"incumbent must pick one point per matrix ({len(cands)}), got {len(inc)}")
        alt = _result(cands, inc, budget)
        if alt.stored <= budget:
            if polish:
                c2, _ = _polish(cands, fronts, list(inc), budget - alt.stored)
                alt = _result(cands, c2, budget)
            if alt.error < best.error:
                best = alt
    return best


def _result(cands, choice, budget) -> Allocation:
    return Allocation(choice=tuple(choice), stored=int(sum(cands[u][i][0] for u, i in enumerate(choice))),
                      error=float(sum(cands[u][i][1] for u, i in enumerate(choice))), budget=budget)


def _polish(cands, fronts, cur, left, max_rounds: int = 1000):
    """Fill (best affordable upgrade) and pairwise exchange until neither lowers the total error."""
    costs = [[cands[u][i][0] for i in f] for u, f in enumerate(fronts)]

    def best_within(u, limit):  # the most expensive Pareto point with cost <= limit (= the lowest error there)
        j = bisect.bisect_right(costs[u], limit) - 1
        return fronts[u][j] if j >= 0 else None

    U = len(cands)
    for _ in range(max_rounds):
        err = [cands[u][cur[u]][1] for u in range(U)]
        cost = [cands[u][cur[u]][0] for u in range(U)]
        move, gain = None, 1e-15 * (1 + sum(err))
        for u in range(U):  # fill
            j = best_within(u, cost[u] + left)
            if j is not None and err[u] - cands[u][j][1] > gain:
                move, gain = ((u, j),), err[u] - cands[u][j][1]
        if move is None:  # exchange: u gives values, v takes them
            for u in range(U):
                for a in fronts[u]:
                    ca, ea = cands[u][a]
                    if ca >= cost[u]:
                        break
                    for v in range(U):
                        if v == u:
                            continue
                        b = best_within(v, cost[v] + left + cost[u] - ca)
                        if b is None:
                            continue
                        g = (err[u] - ea) + (err[v] - cands[v][b][1])
                        if g > gain:
                            move, gain = ((u, a), (v, b)), g
        if move is None:
            break
        for u, j in move:
            left -= cands[u][j][0] - cands[u][cur[u]][0]
            cur[u] = j
    return cur, left


def brute_force(candidates, budget) -> Allocation:
    """The exact optimum by trying every combination (small cases only: the reference in tests)."""
    cands, budget = _check(candidates, budget)
    best = None
    for choice in itertools.product(*[range(len(p)) for p in cands]):
        r = _result(cands, choice, budget)
        if r.stored <= budget and (best is None or r.error < best.error - 1e-12):
            best = r
    return best


def point_error(W, W_hat, X=None, blocks: int = 1) -> float:
    """Squared relative error of ``W_hat``, summed over ``blocks`` row blocks (LSTM gates): with X (N, n)
    ``sum_g ||X (W_g - W_hat_g)^T||^2 / ||X W_g^T||^2``, without ``sum_g ||W_g - W_hat_g||^2 / ||W_g||^2``.

    >>> import torch
    >>> W = torch.eye(4)
    >>> point_error(W, torch.zeros(4, 4), blocks=2), point_error(W, W)
    (2.0, 0.0)
    """
    W = torch.as_tensor(W).detach().double()
    D = W - torch.as_tensor(W_hat).detach().double()
    if X is not None:
        Xd = torch.as_tensor(X).detach().double().reshape(-1, W.shape[1])
        W, D = W @ Xd.T, D @ Xd.T  # (m, N): the outputs, row blocks kept
    total = 0.0
    for Wg, Dg in zip(W.chunk(blocks), D.chunk(blocks)):
        den = float((Wg ** 2).sum())
        num = float((Dg ** 2).sum())
        total += (num / den) if den > 0 else (0.0 if num == 0 else math.inf)
    return total


def ladder_compressions(compression, most: float, *, span: float = 16.0, steps_per_octave: int = 4) -> list:
    """The compressions a default ladder visits: geometric steps (``2**(1/steps_per_octave)``) from
    ``compression / span`` to ``compression * span``, clipped to ``[1, most]``, with ``most`` (the most
    compressed feasible point) and ``compression`` itself always in.

    >>> ladder_compressions(4, 8, span=2, steps_per_octave=1)
    [2.0, 4.0, 8.0]
    """
    c, most = float(compression), float(most)
    lo, hi = max(1.0, c / span), min(most, c * span)
    out = {min(c, most), most}
    j = -int(math.ceil(math.log2(span) * steps_per_octave)) - 1
    while True:
        j += 1
        x = c * 2.0 ** (j / steps_per_octave)
        if x > hi * (1 + 1e-9):
            break
        if x >= lo * (1 - 1e-9):
            out.add(x)
    return sorted(out)
