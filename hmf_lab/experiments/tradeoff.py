"""Experiment helpers: the four layers at one budget, their timing with references, the trade-off table.

No widgets here: the explorers (:mod:`hmf_lab.course.widgets`) and the notebooks call these functions.
``hl.widgets.layers_at_budget`` and ``hl.widgets.tradeoff_table`` are the same functions (re-exported).

Every helper that builds layers only to time them returns them in **eval mode** with gradients off, so
the timing is the deployed layer's (the inference caches of ``hl.HMFLinear`` are used in both modes
when autograd does not record, but a layer built for timing should not depend on that).

Example
-------
>>> import torch, hmf_lab as hl
>>> from hmf_lab.experiments.tradeoff import layers_at_budget, time_layers
>>> L = layers_at_budget(torch.randn(32, 32), split=4, rank=6)
>>> [m.training for m in L.values()]
[False, False, False, False]
>>> t = time_layers(L, batch=1, rounds=1, min_run_time=0.002)
>>> list(t.table.columns)
['name', 'median', 'iqr', 'min', 'n', 'ratio', 'ideal', 'floor', 'bytes']
"""
from __future__ import annotations

import pandas as pd
import torch
from torch import nn

from hmf_lab.factor._validation import as_matrix
from hmf_lab.factor.budget import budget
from hmf_lab.factor.core import prune
from hmf_lab.factor.sweep import HMFCache
from hmf_lab.nn.layers import HMFLinear, LMFLinear, SparseLinear

__all__ = ["layers_at_budget", "dense_layer", "lmf_layer", "time_layers", "tradeoff_table", "lmf_rank_at"]


def lmf_rank_at(params: int, m: int, n: int) -> int:
    """LMF's rank within a budget of ``params`` stored values: the largest r with r*(m+n) <= params, at most
    min(m, n) (:func:`hmf_lab.factor.budget.largest_rank`, split 0). Never over the budget: a budget below
    rank 1's m+n values raises ``ValueError``.

    >>> lmf_rank_at(488, 32, 32)
    7
    """
    from hmf_lab.factor.budget import largest_rank  # the one home of the budget rules

    r = largest_rank((m, n), params, 0)
    if r < 1:
        raise ValueError(f"params={params!r} stored values hold no LMF rank for shape ({m}, {n}): rank 1 needs "
                         f"m+n = {m + n}; give a budget of at least {m + n} values")
    return r


def _frozen(mod: nn.Module) -> nn.Module:
    mod.requires_grad_(False)
    return mod.eval()


def dense_layer(W, *, bias: bool = False) -> nn.Linear:
    """``W`` as an ``nn.Linear`` (eval mode, gradients off): the baseline every compressed layer is timed against.

    >>> import torch
    >>> dense_layer(torch.randn(4, 3)).weight.shape
    torch.Size([4, 3])
    """
    W = as_matrix(W)
    m, n = W.shape
    dense = nn.Linear(n, m, bias=bias, dtype=W.dtype)
    with torch.no_grad():
        dense.weight.copy_(W)
    return _frozen(dense)


def lmf_layer(W, rank: int, *, bias: bool = False, cache: HMFCache | None = None) -> LMFLinear:
    """The rank-``rank`` LMF (truncated SVD) of ``W`` as an :class:`~hmf_lab.nn.layers.LMFLinear`, eval mode.

    >>> import torch
    >>> lmf_layer(torch.randn(16, 12), 3).n_params
    84
    """
    W = as_matrix(W)
    m, n = W.shape
    cache = cache if cache is not None else HMFCache(W)
    g = cache.hmf(0, rank, "top")  # split 0: the truncated SVD of W, i.e. LMF
    lm = LMFLinear(n, m, rank, bias=bias, dtype=W.dtype)
    with torch.no_grad():
        lm.U.copy_(g.U)
        lm.V.copy_(g.V)
    return _frozen(lm)


def layers_at_budget(W, split: int | None = None, rank: int | None = None, heuristic="top", *,
                     compression=None, bias: bool = False, cache: HMFCache | None = None) -> dict[str, nn.Module]:
    """Dense, HMF, LMF and pruning (CSR) layers of ``W`` at one value budget, in eval mode with gradients
    off (ready to time), keyed by the methods' labels (``hl.get_method(name).label``).

    The budget is ``floor(m*n / compression)`` stored values, the one meaning of compression
    (:func:`hmf_lab.factor.budget.value_budget`); without ``compression`` it is the HMF point's own size
    (its compression ``m*n / hmf_params(split, rank)``). Every method stores at most the budget: HMF
    ``choose_split_rank(shape, compression, split, rank)`` (a given point must fit), LMF the largest rank
    that fits, pruning exactly the budget. Returns
    ``{"dense": nn.Linear, "HMF": HMFLinear, "LMF": LMFLinear, "pruning (CSR)": SparseLinear}``.

    >>> import torch
    >>> L = layers_at_budget(torch.randn(32, 32), split=4, rank=6)
    >>> {k: v.n_params for k, v in L.items() if k != "dense"}
    {'HMF': 488, 'LMF': 448, 'pruning (CSR)': 488}
    >>> L = layers_at_budget(torch.randn(64, 48), compression=4)   # budget floor(64*48 / 4) = 768
    >>> {k: v.n_params for k, v in L.items() if k != "dense"}
    {'HMF': 668, 'LMF': 672, 'pruning (CSR)': 768}
    """
    from hmf_lab.factor.budget import choose_split_rank, hmf_params, lmf_rank, prune_keep
    from hmf_lab.nn.methods import DENSE, get_method

    W = as_matrix(W)
    m, n = W.shape
    if compression is None:
        if split is None or rank is None:
            raise TypeError("layers_at_budget needs compression (e.g. compression=4) or both split and rank "
                            f"(the budget is then that HMF's size), got split={split!r}, rank={rank!r}")
        k, r = choose_split_rank((m, n), None, split, rank)
        compression = m * n / hmf_params(m, n, k, r)
    else:
        k, r = choose_split_rank((m, n), compression, split, rank)
    cache = cache if cache is not None else HMFCache(W)
    f = cache.hmf(k, r, heuristic)
    dense = dense_layer(W, bias=bias)
    lm = lmf_layer(W, lmf_rank((m, n), compression), bias=bias, cache=cache)
    p = prune(W, nnz=prune_keep((m, n), compression))
    out = {DENSE.label: dense, get_method("hmf").label: HMFLinear.from_result(f), get_method("lmf").label: lm,
           get_method("prune").label: SparseLinear.from_csr(p.weight)}
    return {name: _frozen(mod) for name, mod in out.items()}


def time_layers(layers: dict, *, batch: int = 1, rounds: int = 2, min_run_time: float = 0.1, threads="auto",
                floors: bool = True, seed: int = 0, clock: str = "wall", _steps: bool = False):
    """Time ``layers`` (name -> module, the first is the baseline) side by side with ``hl.timing.race``,
    each beside its references: ``ideal`` = baseline bytes / its bytes (``hl.timing.weight_bytes``: the
    memory-bandwidth limit of batch-1 inference) and ``floor`` = the median of its raw kernels
    (``hl.timing.raw_kernels``, same rounds). Returns the :class:`~hmf_lab.perf.timing.Race` with those columns
    (and ``bytes``) added to its table; ``threads="auto"``: one thread at batch 1; ``clock``: "wall" or
    "thread" (CPU time of the timing thread: waits for other processes left out).

    >>> import torch
    >>> L = layers_at_budget(torch.randn(24, 24), split=2, rank=3)
    >>> r = time_layers(L, rounds=1, min_run_time=0.002, floors=False)
    >>> float(r.table["ideal"].iloc[0]), r.threads
    (1.0, 1)
    """
    gen = _time_layers_steps(layers, batch=batch, rounds=rounds, min_run_time=min_run_time, threads=threads,
                             floors=floors, seed=seed, clock=clock)
    if _steps:
        return gen
    try:
        while True:
            next(gen)
    except StopIteration as stop:
        return stop.value


def _time_layers_steps(layers: dict, *, batch, rounds, min_run_time, threads, floors, seed, clock="wall"):
    """:func:`time_layers` as a generator that yields after every single measurement (the explorer runs
    it on the kernel's event loop, one step per loop turn, so slider messages are served in between)."""
    from dataclasses import replace

    from hmf_lab.perf.timing import _race_steps, raw_kernels, weight_bytes

    first = next(iter(layers.values()))
    n = first.in_features
    dtype = next(first.parameters(), None)
    dtype = dtype.dtype if dtype is not None else torch.float32
    x = torch.randn(batch, n, generator=torch.Generator().manual_seed(seed), dtype=dtype)
    fns = dict(layers)
    if floors:
        for name, mod in layers.items():
            fns["floor:" + name] = raw_kernels(mod)
    race = yield from _race_steps(fns, (x,), rounds=rounds, min_run_time=min_run_time, threads=threads,
                                  warmup=2, clock=clock, inference=True)  # ratio: vs the first layer
    t, med = race.table, race.medians
    table = t[~t["name"].str.startswith("floor:")].reset_index(drop=True)
    nbytes = [weight_bytes(layers[name]) for name in table["name"]]
    table["ideal"] = nbytes[0] / pd.Series(nbytes, dtype=float)
    table["floor"] = [med.get("floor:" + name, float("nan")) for name in table["name"]]
    table["bytes"] = nbytes
    return replace(race, table=table)


def tradeoff_table(W, compressions=(2, 4, 8), *, heuristic="top", cache: HMFCache | None = None,
                   step: int | None = None, time: bool = True, batch: int = 1, min_run_time: float = 0.05,
                   progress: bool = False) -> pd.DataFrame:
    """HMF (best split on the grid), LMF and pruning at each compression: error, parameters and run time.

    For each compression the HMF row is the (split, rank) of ``hl.budget`` with the lowest error over
    splits ``range(0, m+1, step)`` (default m // 32); LMF takes the largest rank within the budget
    ``floor(m*n / c)`` and pruning keeps exactly that budget (:func:`layers_at_budget` at ``compression=c``).
    ``time`` adds the median seconds of one layer call on ``batch`` inputs (``hl.timing.race``, eval mode,
    one thread at batch 1) and ``timing_warning``, the harness's verdict in words ('' when reliable).
    Columns: method, compression, split, rank, params, error, time, timing_warning.

    >>> import torch
    >>> t = tradeoff_table(torch.randn(32, 32), compressions=(2,), time=False)
    >>> t["method"].tolist(), bool((t["params"] <= 512).all())
    (['HMF', 'LMF', 'pruning (CSR)'], True)
    """
    from tqdm.auto import tqdm

    from hmf_lab.factor.core import relative_error
    from hmf_lab.nn.methods import get_method

    W = as_matrix(W)
    m, n = W.shape
    cache = cache if cache is not None else HMFCache(W)
    rows = []
    for c in tqdm(compressions, desc="trade-off", disable=not progress):
        b = budget((m, n), c, step=step or max(1, m // 32))
        errs = [cache.error(k, r, heuristic) for k, r in zip(b["split"], b["rank"])]
        i = min(range(len(errs)), key=errs.__getitem__)
        k, r = int(b["split"].iloc[i]), int(b["rank"].iloc[i])
        layers = layers_at_budget(W, k, r, heuristic, compression=c, cache=cache)
        H, L, P = (get_method(name).label for name in ("hmf", "lmf", "prune"))
        rl = layers[L].rank
        p = layers[P]
        entries = [(H, k, r, layers[H].n_params, errs[i]),
                   (L, 0, rl, layers[L].n_params, cache.error(0, rl, "top")),
                   (P, -1, -1, p.n_params, relative_error(W, p.to_dense()))]
        times, warning = {}, ""
        if time:
            res = time_layers({name: layers[name] for name, *_ in entries}, batch=batch, rounds=1,
                              min_run_time=min_run_time, floors=False)
            times, warning = res.medians, res.warning
        for name, kk, rr, params, err in entries:
            rows.append((name, float(c), kk, rr, int(params), float(err), times.get(name, float("nan")), warning))
    return pd.DataFrame(rows, columns=["method", "compression", "split", "rank", "params", "error", "time",
                                       "timing_warning"])
