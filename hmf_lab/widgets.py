"""Live sliders for HMF (ipywidgets 8): split and rank in, error, size, rank and run time out.

:func:`explorer` builds an :class:`Explorer`: its sliders (``.split``, ``.rank``), compression lock
(``.lock``) and heuristic menu (``.heuristic``) drive read-out widgets (``.error_out``,
``.params_out``, ...) whose ``.value`` is what the student sees, plus ``.state`` with the numbers.
Errors come from cached spectra (``hl.HMFCache``), so a slider move costs a dictionary look-up; the
timed inference (HMF vs dense vs LMF vs pruning at the same budget) follows in a background thread,
debounced, so dragging a slider never waits for it.

Example
-------
>>> import torch, hmf_lab as hl
>>> ex = hl.explorer(torch.randn(64, 64), timing=False)
>>> ex.split.value = 16; ex.rank.value = 8
>>> ex.state["params"] == 16*64 + 8*48 + 8*64, ex.rank_out.value
(True, '24')
"""
from __future__ import annotations

import atexit
import math
import threading
import time
import weakref
from html import escape

import ipywidgets as W_
import pandas as pd
import torch
from torch import nn

from ._validation import as_int, as_matrix, check_compression
from .core import HMFCache, budget, hmf_params, prune
from .heuristics import HEURISTICS
from .layers import HMFLinear, LMFLinear, SparseLinear
from .plots import blocks_svg

__all__ = ["Explorer", "explorer", "RunTimeExplorer", "BudgetExplorer", "HeuristicExplorer", "layers_at_budget",
           "tradeoff_table"]


def _label(text: str, width: str = "10em") -> W_.HTML:
    return W_.HTML(f"<b>{escape(text)}</b>", layout=W_.Layout(width=width))


def _readout(css: str) -> W_.Label:
    out = W_.Label(value="", layout=W_.Layout(width="13em"))
    out.add_class(css)
    return out


def layers_at_budget(W, split: int, rank: int, heuristic="top", *, bias: bool = False,
                     cache: HMFCache | None = None) -> dict[str, nn.Module]:
    """Dense, HMF(split, rank), LMF and pruned (CSR) layers of ``W`` at the HMF's parameter budget.

    LMF gets the largest rank within the budget; pruning keeps as many values as HMF stores.
    Returns ``{"dense": nn.Linear, "HMF": HMFLinear, "LMF": LMFLinear, "pruned (CSR)": SparseLinear}``.

    >>> import torch
    >>> L = layers_at_budget(torch.randn(32, 32), split=4, rank=6)
    >>> {k: v.n_params for k, v in L.items() if k != "dense"}
    {'HMF': 488, 'LMF': 448, 'pruned (CSR)': 488}
    """
    W = as_matrix(W)
    m, n = W.shape
    cache = cache if cache is not None else HMFCache(W)
    f = cache.hmf(split, rank, heuristic)
    params = f.n_params
    dense = nn.Linear(n, m, bias=bias, dtype=W.dtype)
    with torch.no_grad():
        dense.weight.copy_(W)
    rl = max(1, min(params // (m + n), m, n))
    g = cache.hmf(0, rl, "top")  # split 0: the truncated SVD of W, i.e. LMF
    lm = LMFLinear(n, m, rl, bias=bias, dtype=W.dtype)
    with torch.no_grad():
        lm.U.copy_(g.U)
        lm.V.copy_(g.V)
    p = prune(W, m * n / params)
    out = {"dense": dense, "HMF": HMFLinear.from_result(f), "LMF": lm, "pruned (CSR)": SparseLinear.from_csr(p.weight)}
    for mod in out.values():
        mod.requires_grad_(False)
    return out


def tradeoff_table(W, compressions=(2, 4, 8), *, heuristic="top", cache: HMFCache | None = None,
                   step: int | None = None, time: bool = True, batch: int = 1, min_run_time: float = 0.05,
                   progress: bool = False) -> pd.DataFrame:
    """HMF (best split on the grid), LMF and pruning at each compression: error, parameters and run time.

    For each compression the HMF row is the (split, rank) of ``hl.budget`` with the lowest error over
    splits ``range(0, m+1, step)`` (default m // 32); LMF is split 0; pruning keeps as many values.
    ``time`` adds the median seconds of one layer call on ``batch`` inputs (``hl.measure``).
    Columns: method, compression, split, rank, params, error, time.

    >>> import torch
    >>> t = tradeoff_table(torch.randn(32, 32), compressions=(2,), time=False)
    >>> t["method"].tolist(), bool((t["params"] <= 512).all())
    (['HMF', 'LMF', 'pruned (CSR)'], True)
    """
    from tqdm.auto import tqdm

    from .core import relative_error
    from .timing import measure

    W = as_matrix(W)
    m, n = W.shape
    cache = cache if cache is not None else HMFCache(W)
    rows = []
    for c in tqdm(compressions, desc="trade-off", disable=not progress):
        b = budget((m, n), c, step=step or max(1, m // 32))
        errs = [cache.error(k, r, heuristic) for k, r in zip(b["split"], b["rank"])]
        i = min(range(len(errs)), key=errs.__getitem__)
        k, r = int(b["split"].iloc[i]), int(b["rank"].iloc[i])
        layers = layers_at_budget(W, k, r, heuristic, cache=cache)
        rl = layers["LMF"].rank
        p = layers["pruned (CSR)"]
        entries = [("HMF", k, r, layers["HMF"].n_params, errs[i]),
                   ("LMF", 0, rl, layers["LMF"].n_params, cache.error(0, rl, "top")),
                   ("pruned (CSR)", -1, -1, p.n_params, relative_error(W, p.to_dense()))]
        x = torch.randn(batch, n, dtype=W.dtype)
        for name, kk, rr, params, err in entries:
            t = float("nan")
            if time:
                with torch.inference_mode():
                    t = measure(layers[name], x, min_run_time=min_run_time, warmup=2).median
            rows.append((name, float(c), kk, rr, int(params), float(err), t))
    return pd.DataFrame(rows, columns=["method", "compression", "split", "rank", "params", "error", "time"])


def _timing_html(df: pd.DataFrame, caption: str) -> str:
    """A tiny bar chart in HTML (no matplotlib, so it redraws in microseconds)."""
    top = float(df["median"].max()) or 1.0
    rows = []
    for name, med, ratio in zip(df["name"], df["median"], df["ratio"]):
        w = max(1, int(200 * med / top))
        rows.append(f"<tr><td>{escape(str(name))}</td><td><div style='background:#4c72b0;height:10px;"
                    f"width:{w}px'></div></td><td style='text-align:right;padding:0 1em'>{med * 1e6:,.1f} µs</td>"
                    f"<td style='text-align:right;padding:0 1em'>{ratio:.2f}x</td></tr>")
    return (f"<table class='hmf-timing'><caption style='text-align:left'>{escape(caption)}</caption>"
            "<tr><th>layer</th><th></th><th style='padding:0 1em'>median</th>"
            "<th style='padding:0 1em'>speed-up vs dense</th></tr>" + "".join(rows) + "</table>")


class Explorer:
    """Split/rank sliders wired to live HMF numbers, a to-scale block picture and timed inference.

    Parameters mirror :func:`explorer`. Widgets a test (or a student) can drive: ``split``, ``rank``
    (IntSlider), ``lock`` (Checkbox: keep the compression while moving either slider), ``heuristic``
    (Dropdown over ``hl.HEURISTICS``). Read-outs (``Label``; ``.value`` is the shown text):
    ``error_out``, ``params_out``, ``compression_out``, ``rank_out``, ``lmf_out``; ``blocks_out``
    (HTML, SVG picture) and ``timing_out`` (HTML). ``state`` holds the numbers behind them,
    ``timings`` the last timing table, ``latencies`` the seconds each :meth:`update` took.
    """

    def __init__(self, W, *, X=None, split: int | None = None, rank: int | None = None, heuristic: str = "top",
                 split_step: int | None = None, precompute: bool = True, timing: bool = True, batch: int = 1,
                 debounce: float = 0.5, min_run_time: float = 0.1, timing_threads: int | None = 1,
                 lmf_only: bool = False, progress: bool = True):
        self.W = as_matrix(W)
        m, n = self.W.shape
        self.shape = (m, n)
        self.cache = HMFCache(self.W, X=X)
        self._tcache = HMFCache(self.W, X=X, max_items=4)  # full SVDs for the timing thread, not shared
        step = as_int(split_step, "split_step") if split_step is not None else max(1, m // 32)
        if step < 1:
            raise ValueError(f"split_step must be an int >= 1, got {step}")
        self._have = frozenset({"X"} if X is not None else set())
        if heuristic not in HEURISTICS:
            raise ValueError(f"unknown heuristic {heuristic!r}; valid names are {sorted(HEURISTICS)}")
        missing = set(getattr(HEURISTICS[heuristic], "requires", ())) - self._have
        if missing:
            raise ValueError(f"heuristic {heuristic!r} needs {sorted(missing)}, which this explorer was not given; "
                             f"pass X=calibration inputs (N, n) or pick one of {self._usable()}")
        k0 = 0 if lmf_only else (step * round(m / 8 / step) if split is None else as_int(split, "split"))
        k0 = min(max(k0, 0), m)
        r0 = max(1, min(m, n) // 8) if rank is None else as_int(rank, "rank")
        r0 = min(max(r0, 1), max(1, min(m - k0, n)))
        self.batch, self.debounce, self.min_run_time = as_int(batch, "batch"), float(debounce), float(min_run_time)
        self.timing_enabled = bool(timing) and not lmf_only
        self.timing_threads = timing_threads  # 1: steadier numbers on a busy machine, and the kernel stays responsive
        self.lmf_only = lmf_only

        # continuous_update=True: a move costs a cache look-up (~1 ms kernel-side for 1024x1024, see
        # scripts/measure_latency.py), so the read-outs follow a drag; only the timing is debounced.
        cu = dict(continuous_update=True, style={"description_width": "5em"}, layout=W_.Layout(width="26em"))
        self.split = W_.IntSlider(value=k0, min=0, max=m, step=step, description="split k", **cu)
        self.rank = W_.IntSlider(value=r0, min=1, max=max(1, min(m - k0, n)), description="rank r", **cu)
        self.split.add_class("hmf-split")
        self.rank.add_class("hmf-rank")
        self.lock = W_.Checkbox(value=False, description="lock compression", indent=False)
        self.heuristic = W_.Dropdown(options=self._usable(), value=heuristic, description="dense rows",
                                     style={"description_width": "6em"})
        self.error_out = _readout("hmf-error")
        self.params_out = _readout("hmf-params")
        self.compression_out = _readout("hmf-compression")
        self.rank_out = _readout("hmf-rank-bound")
        self.lmf_out = _readout("hmf-lmf")
        self.blocks_out = W_.HTML()
        self.status = W_.HTML()
        self.status.add_class("hmf-status")
        self.timing_out = W_.HTML("<i>timing follows a moment after the sliders stop</i>" if self.timing_enabled else "")
        self.state: dict = {}
        self.timings: pd.DataFrame | None = None
        self.latencies: list[float] = []
        self._budget: dict[int, int] | None = None
        self._locked_compression: float | None = None
        self._busy = False
        self._timer: threading.Timer | None = None
        self._timing_lock = threading.Lock()
        self._generation = 0
        self._closed = False
        self._warm_generation = 0
        _LIVE.add(self)

        self.split.observe(self._on_split, names="value")
        self.rank.observe(self._on_rank, names="value")
        self.lock.observe(self._on_lock, names="value")
        self.heuristic.observe(self._on_heuristic, names="value")

        readouts = W_.GridBox(
            [_label("relative error"), self.error_out, _label("parameters"), self.params_out,
             _label("compression"), self.compression_out, _label("rank bound k+r"), self.rank_out,
             _label("LMF (same size)"), self.lmf_out],
            layout=W_.Layout(grid_template_columns="repeat(4, auto)", grid_gap="2px 12px"))
        if lmf_only:
            for w in (self.split, self.lock, self.heuristic):
                w.layout.display = "none"
            self.lmf_out.layout.display = "none"
        controls = W_.VBox([W_.HBox([self.split, self.rank]), W_.HBox([self.lock, self.heuristic])])
        self.widget = W_.VBox([controls, readouts, self.status, self.blocks_out, self.timing_out])
        self.widget.add_class("hmf-explorer")
        self._precompute = bool(precompute)
        self._warm_thread: threading.Thread | None = None
        if precompute:
            self.warm(progress=progress)
        self.update()

    # ------------------------------------------------------------------ display
    def _repr_mimebundle_(self, **kw):
        return self.widget._repr_mimebundle_(**kw)

    # ------------------------------------------------------------------ cache
    @property
    def splits(self) -> list[int]:
        """The split values the slider can take."""
        m = self.shape[0]
        grid = list(range(0, m + 1, self.split.step))
        return grid if grid[-1] == m else grid + [m]

    def warm(self, progress: bool = True, _generation: int | None = None) -> None:
        """Compute the spectrum of every slider position for the current heuristic (one SVD each).

        A background warm-up (``_generation`` set) stops early when a newer one replaces it.
        """
        from tqdm.auto import tqdm

        m, n = self.shape
        h = self.heuristic.value
        splits = [0] if self.lmf_only else self.splits
        for k in tqdm(splits, desc="caching spectra", disable=not progress or len(splits) < 8, leave=False):
            if self._closed or (_generation is not None and _generation != self._warm_generation):
                return  # stop() / interpreter exit, or a newer heuristic's warm-up took over: stop between SVDs
            r = 0 if k == m else 1
            try:
                self.cache.tail_energy(self.cache.rows(k, r, h))
            except (ValueError, TypeError, RuntimeError):  # update() shows the heuristic's message if it is visited
                continue

    # ------------------------------------------------------------------ current values
    def _k_r(self) -> tuple[int, int]:
        m, n = self.shape
        k = int(self.split.value)
        r = 0 if k == m else min(max(int(self.rank.value), 1), min(m - k, n))
        return k, r

    def _lmf_error(self, rank: int) -> float:
        # LMF = no dense rows: the tail energy of W's own spectrum (cached once, no row selection needed)
        if rank < 1:
            return 1.0
        t = self.cache.tail_energy(torch.zeros(0, dtype=torch.int64))
        return math.sqrt(t[rank] / self.cache.norm2) if self.cache.norm2 > 0 else 0.0

    def _usable(self) -> list[str]:
        """Registered heuristics whose requirements (``requires``: "X", "grad") this explorer can meet."""
        return sorted(name for name, fn in HEURISTICS.items() if set(getattr(fn, "requires", ())) <= self._have)

    def update(self) -> dict:
        """Recompute the read-outs and the block picture from the sliders; returns :attr:`state`.

        A heuristic that fails at this (split, rank) leaves the read-outs as they were and shows its
        message in ``status`` (an exception in a slider callback would vanish into the browser log).
        """
        t0 = time.perf_counter()
        m, n = self.shape
        k, r = self._k_r()
        h = self.heuristic.value
        try:
            err = self.cache.error(k, r, h)
        except (ValueError, TypeError, RuntimeError) as e:
            self.status.value = f"<span style='color:#b00'>heuristic {escape(h)!s} failed: {escape(str(e))}</span>"
            return self.state
        if self.status.value:
            self.status.value = ""
        params = hmf_params(m, n, k, r)
        rl = min(params // (m + n), m, n)
        lmf_err = self._lmf_error(rl)
        self.state = dict(split=k, rank=r, heuristic=h, error=err, params=params, compression=m * n / params,
                          rank_bound=min(k + r, m, n), lmf_rank=rl, lmf_error=lmf_err)
        self.error_out.value = f"{err:.4f}"
        self.params_out.value = f"{params:,} / {m * n:,}"
        self.compression_out.value = f"{m * n / params:.2f}x" + (" (locked)" if self._budget is not None else "")
        self.rank_out.value = f"{min(k + r, m, n)}"
        self.lmf_out.value = f"{lmf_err:.4f} (r={rl})" if rl >= 1 else "n/a (r<1)"
        self.blocks_out.value = blocks_svg(m, n, k, r, rl)
        self.rank.disabled = k == m
        self.latencies.append(time.perf_counter() - t0)
        if self.timing_enabled:
            self._schedule_timing()
        return self.state

    # ------------------------------------------------------------------ callbacks
    def _on_split(self, change) -> None:
        if self._busy:
            return
        self._busy = True
        try:
            m, n = self.shape
            k = int(change["new"])
            if self._budget is not None:
                if k not in self._budget:  # too many dense rows for the budget: stop at the last split that fits
                    k = max(s for s in self._budget if s <= k) if any(s <= k for s in self._budget) else min(self._budget)
                    self.split.value = k
                r = self._budget[k]
                self._set_rank_range(k)
                self.rank.value = max(r, 1)
            else:
                self._set_rank_range(k)
        finally:
            self._busy = False
        self.update()

    def _on_rank(self, change) -> None:
        if self._busy:
            return
        if self._budget is not None:
            self._busy = True
            try:
                want = int(change["new"])
                # the dense-row count whose budget rank is nearest to the requested rank (fewest dense rows on ties)
                k = min(self._budget, key=lambda s: (abs(self._budget[s] - want), s))
                self.split.value = k
                self._set_rank_range(k)
                self.rank.value = max(self._budget[k], 1)
            finally:
                self._busy = False
        self.update()

    def _set_rank_range(self, k: int) -> None:
        m, n = self.shape
        hi = max(1, min(m - k, n))
        if self.rank.value > hi:
            self.rank.value = hi
        self.rank.max = hi

    def _on_lock(self, change) -> None:
        if change["new"]:
            m, n = self.shape
            k, r = self._k_r()
            B = hmf_params(m, n, k, r)  # the budget to keep (may exceed m*n: HMF can store more than W)
            self._budget = {}
            for s in self.splits:
                if s == m:
                    if m * n <= B:
                        self._budget[m] = 0
                    continue
                q = min((B - s * n) // (m - s + n), m - s, n)  # largest rank with k*n + r*(m-k) + r*n <= B
                if q >= 1:
                    self._budget[s] = int(q)
            self._budget.setdefault(k, r)
            self._locked_compression = m * n / B
        else:
            self._budget = None
            self._locked_compression = None
        self.update()

    def _on_heuristic(self, change) -> None:
        self.update()
        if self._precompute and not self._closed:
            # fill the new heuristic's spectra in the background (later moves are cache hits); one warm-up
            # thread at a time: the previous one stops at its next SVD and is joined here
            self._warm_generation += 1
            if self._warm_thread is not None:
                self._warm_thread.join()
            self._warm_thread = threading.Thread(
                target=self.warm, kwargs={"progress": False, "_generation": self._warm_generation}, daemon=True)
            self._warm_thread.start()

    def refresh_heuristics(self) -> None:
        """Re-read ``hl.HEURISTICS`` into the menu (after registering a new heuristic)."""
        self.heuristic.options = self._usable()

    # ------------------------------------------------------------------ timing
    def _schedule_timing(self) -> None:
        self._generation += 1
        if self._timer is not None:
            self._timer.cancel()
        if self._closed:
            return
        self._timer = threading.Timer(self.debounce, self._timing_job, args=(self._generation,))
        self._timer.daemon = True
        self._timer.start()

    def _timing_job(self, generation: int) -> None:
        if generation != self._generation or self._closed:
            return
        try:
            self.time_now()
        except Exception as e:  # a background thread must not die silently: show what went wrong
            self.timing_out.value = f"<span style='color:#b00'>timing failed: {escape(repr(e))}</span>"

    def time_now(self) -> pd.DataFrame:
        """Time dense, HMF, LMF and pruned (CSR) layers at the current budget on a batch of ``batch`` inputs."""
        from .timing import compare

        with self._timing_lock:
            k, r = self._k_r()
            h = self.heuristic.value
            m, n = self.shape
            if k == m:
                r = 0
            layers = layers_at_budget(self.W, k, r, h, cache=self._tcache)
            x = torch.randn(self.batch, n, dtype=self.W.dtype)
            with torch.inference_mode():
                df = compare(layers, x, min_run_time=self.min_run_time, warmup=2, threads=self.timing_threads)
            self.timings = df
            self.timing_out.value = _timing_html(
                df, f"timed inference at k={k}, r={r} ({m * n / hmf_params(m, n, k, r):.2f}x), batch {self.batch}")
            return df

    def stop(self, timeout: float = 30.0) -> None:
        """Cancel pending timing and wait for the background threads (timing, cache warm-up) to finish."""
        self._closed = True
        self._generation += 1
        for t in (self._timer, self._warm_thread):
            if t is not None:
                if isinstance(t, threading.Timer):
                    t.cancel()
                if t.is_alive() and t is not threading.current_thread():
                    t.join(timeout)

    def close(self) -> None:
        """Stop the background threads and close the widgets."""
        self.stop()
        self.widget.close()


#: explorers whose background threads must be stopped before the interpreter exits: a thread still
#: inside a torch kernel at shutdown aborts the process ("terminate called without an active exception")
_LIVE: "weakref.WeakSet[Explorer]" = weakref.WeakSet()


@atexit.register
def _stop_all() -> None:
    for ex in list(_LIVE):
        ex.stop()


def explorer(W, **kw) -> Explorer:
    """Split and rank sliders over ``W`` with live error, parameters, compression, rank bound and run time.

    Keyword arguments (see :class:`Explorer`): ``X`` calibration inputs for data-aware heuristics,
    ``split``/``rank`` start values, ``heuristic``, ``split_step`` (default m // 32), ``precompute``
    (cache every slider position's spectrum up front, default True), ``timing`` (debounced timed
    inference, default True), ``batch``, ``debounce`` seconds, ``min_run_time`` and ``timing_threads`` (torch
    threads for the timing, default 1), ``lmf_only`` (rank slider only).

    >>> import torch, hmf_lab as hl
    >>> ex = hl.explorer(torch.randn(32, 32), lmf_only=True, timing=False)
    >>> ex.rank.value = 32; ex.error_out.value
    '0.0000'
    """
    return Explorer(W, **kw)


class RunTimeExplorer:
    """Compression, batch-size and thread sliders that time dense / HMF / LMF / pruned layers of ``W``.

    Sliders update on release (``continuous_update=False``): each change times four layers. The last
    table is ``.timings`` (``hl.timing.compare``'s DataFrame); the bar chart is drawn in ``.plot``.
    """

    def __init__(self, W, *, compressions=(2, 4, 8, 16), batches=(1, 4, 16, 64, 256), split_fraction: float = 0.25,
                 min_run_time: float = 0.1, run: bool = True):
        import os

        self.W = as_matrix(W)
        self.cache = HMFCache(self.W, max_items=8)
        self.split_fraction = float(split_fraction)
        self.min_run_time = float(min_run_time)
        comps = [check_compression(c) for c in compressions]
        cu = dict(continuous_update=False, style={"description_width": "7em"}, layout=W_.Layout(width="24em"))
        self.compression = W_.SelectionSlider(options=[(f"{c:g}x", c) for c in comps], value=comps[min(1, len(comps) - 1)],
                                              description="compression", **cu)
        self.batch = W_.SelectionSlider(options=[int(b) for b in batches], value=int(batches[0]), description="batch",
                                        **cu)
        self.threads = W_.IntSlider(value=1, min=1, max=max(1, os.cpu_count() or 1), description="threads", **cu)
        self.plot = W_.Output()
        self.info = W_.HTML()
        self.timings: pd.DataFrame | None = None
        for w in (self.compression, self.batch, self.threads):
            w.observe(lambda change: self.run(), names="value")
        self.widget = W_.VBox([W_.HBox([self.compression, self.batch, self.threads]), self.info, self.plot])
        if run:
            self.run()

    def _repr_mimebundle_(self, **kw):
        return self.widget._repr_mimebundle_(**kw)

    def choice(self) -> tuple[int, int]:
        """(split, rank) used for HMF: the budget's split nearest ``split_fraction * m``."""
        m, _ = self.W.shape
        b = budget(tuple(self.W.shape), self.compression.value)
        i = (b["split"] - self.split_fraction * m).abs().idxmin()
        return int(b.loc[i, "split"]), int(b.loc[i, "rank"])

    def run(self) -> pd.DataFrame:
        """Time the four layers at the sliders' setting and redraw the bars."""
        import matplotlib.pyplot as plt

        from .plots import timing_bars
        from .timing import compare

        k, r = self.choice()
        layers = layers_at_budget(self.W, k, r, cache=self.cache)
        x = torch.randn(self.batch.value, self.W.shape[1], dtype=self.W.dtype)
        with torch.inference_mode():
            self.timings = compare(layers, x, min_run_time=self.min_run_time, threads=self.threads.value)
        m, n = self.W.shape
        self.info.value = (f"{m}x{n} at {self.compression.value:g}x: HMF k={k}, r={r}; batch {self.batch.value}, "
                           f"{self.threads.value} thread(s)")
        self.plot.clear_output(wait=True)
        with self.plot:
            fig, ax = plt.subplots(figsize=(6, 2.4))
            timing_bars(self.timings, ax=ax)
            fig.tight_layout()
            if _in_notebook():
                from IPython.display import display

                display(fig)
            plt.close(fig)
        return self.timings


def _in_notebook() -> bool:
    try:
        from IPython import get_ipython

        ip = get_ipython()
        return ip is not None and ip.__class__.__name__ == "ZMQInteractiveShell"
    except Exception:
        return False


# --------------------------------------------------------------------------- course widgets (notebooks 04, 05)
# Added by the notebook engineer: sliders only wire controls to hl.budget / HMFCache / hl.timing and plots.


def _time_modules(modules: dict, batch: int, n: int, min_run_time: float) -> pd.DataFrame:
    """Median seconds of each module on one batch (eval mode, inference mode, 1 thread), dense first."""
    from .timing import compare

    for mod in modules.values():
        mod.eval()
    x = torch.randn(batch, n)
    with torch.inference_mode():
        return compare(modules, x, min_run_time=min_run_time, warmup=2, threads=1)


class BudgetExplorer:
    """A compression slider that moves the iso-compression line of the (split, rank) map, and a split slider
    that walks along it: error, parameters and measured time of the chosen HMF beside the best one on the
    line (the budget solver), LMF and dense.

    Widgets: ``compression`` (SelectionSlider), ``split`` (SelectionSlider over the line's feasible splits),
    ``best`` (Button: jump to the budget solver's answer); read-outs ``readout`` (HTML table), ``plot``
    (Output: error along the line, current and best point marked). ``state`` holds the numbers shown.

    >>> import torch, hmf_lab as hl
    >>> bx = hl.widgets.BudgetExplorer(torch.randn(64, 64), time=False)
    >>> bx.compression.value = 8.0
    >>> bx.state["params"] <= 64 * 64 / 8 and bx.state["best_error"] <= bx.state["error"]
    True
    """

    def __init__(self, W, *, compressions=(2, 3, 4, 6, 8, 12, 16), value: float = 4, step: int | None = None,
                 cache: HMFCache | None = None, heuristic: str = "top", time: bool = True, batch: int = 1,
                 min_run_time: float = 0.05):
        self.W = as_matrix(W)
        m, n = self.W.shape
        self.cache = cache if cache is not None else HMFCache(self.W)
        self.step = as_int(step, "step") if step is not None else max(1, m // 32)
        if self.step < 1:
            raise ValueError(f"step must be an int >= 1, got {self.step}")
        if heuristic not in HEURISTICS:
            raise ValueError(f"unknown heuristic {heuristic!r}; valid names are {sorted(HEURISTICS)}")
        self.heuristic, self.timing_enabled = heuristic, bool(time)
        self.batch, self.min_run_time = as_int(batch, "batch"), float(min_run_time)
        comps = [check_compression(c) for c in compressions]
        if check_compression(value) not in comps:
            raise ValueError(f"value must be one of compressions {comps}, got {value!r}")
        cu = dict(continuous_update=False, style={"description_width": "7em"}, layout=W_.Layout(width="30em"))
        self.compression = W_.SelectionSlider(options=[(f"{c:g}x", c) for c in comps], value=float(value),
                                              description="compression", **cu)
        self.split = W_.SelectionSlider(options=[0], value=0, description="split k", **cu)
        self.best = W_.Button(description="jump to the best split", layout=W_.Layout(width="16em"))
        self.readout = W_.HTML()
        self.readout.add_class("hmf-budget-readout")
        self.plot = W_.Output()
        self.state: dict = {}
        self.table: pd.DataFrame | None = None
        self._busy = False
        self.compression.observe(lambda change: self._on_compression(), names="value")
        self.split.observe(lambda change: None if self._busy else self.update(), names="value")
        self.best.on_click(lambda _: self._jump())
        self.widget = W_.VBox([W_.HBox([self.compression, self.best]), self.split, self.readout, self.plot])
        self.widget.add_class("hmf-budget")
        self._on_compression(jump=True)

    def _repr_mimebundle_(self, **kw):
        return self.widget._repr_mimebundle_(**kw)

    def _on_compression(self, jump: bool = True) -> None:
        """New compression: recompute the line (every feasible split with its largest rank and error)."""
        m, n = self.W.shape
        b = budget((m, n), self.compression.value, step=self.step)
        b["error"] = [self.cache.error(k, r, self.heuristic) for k, r in zip(b["split"], b["rank"])]
        self.table = b.reset_index(drop=True)
        self._busy = True
        try:
            self.split.options = [int(k) for k in b["split"]]
            self.split.value = int(b.loc[b["error"].idxmin(), "split"]) if jump else self.split.options[0]
        finally:
            self._busy = False
        self.update()

    def _jump(self) -> None:
        self.split.value = int(self.table.loc[self.table["error"].idxmin(), "split"])

    def update(self) -> dict:
        """Recompute the read-outs (and time the layers) at the current slider values; returns :attr:`state`."""
        import matplotlib.pyplot as plt

        m, n = self.W.shape
        b = self.table
        row = b[b["split"] == self.split.value].iloc[0]
        k, r = int(row["split"]), int(row["rank"])
        ib = b["error"].idxmin()
        rl = int(b["rank"].iloc[0]) if int(b["split"].iloc[0]) == 0 else max(1, hmf_params(m, n, k, r) // (m + n))
        st = dict(compression=self.compression.value, split=k, rank=r, params=hmf_params(m, n, k, r),
                  error=float(row["error"]), best_split=int(b.loc[ib, "split"]), best_rank=int(b.loc[ib, "rank"]),
                  best_error=float(b.loc[ib, "error"]), lmf_rank=rl, lmf_error=self.cache.error(0, rl, "top"))
        times = ""
        if self.timing_enabled:
            layers = layers_at_budget(self.W, k, r, self.heuristic, cache=self.cache)
            t = _time_modules({"dense": layers["dense"], "HMF": layers["HMF"], "LMF": layers["LMF"]}, self.batch, n,
                              self.min_run_time).set_index("name")
            st.update(time_dense=float(t.loc["dense", "median"]), time_hmf=float(t.loc["HMF", "median"]),
                      time_lmf=float(t.loc["LMF", "median"]))
            times = (f"<tr><td>measured time (batch {self.batch}, 1 thread)</td>"
                     f"<td>{st['time_hmf'] * 1e6:,.1f} µs ({st['time_dense'] / st['time_hmf']:.2f}x dense)</td>"
                     f"<td>dense {st['time_dense'] * 1e6:,.1f} µs</td>"
                     f"<td>{st['time_lmf'] * 1e6:,.1f} µs ({st['time_dense'] / st['time_lmf']:.2f}x dense)</td></tr>")
        self.state = st
        self.readout.value = (
            "<table class='hmf-budget-table'><tr><th></th><th>HMF (your split)</th><th>best on this line</th>"
            "<th>LMF (split 0)</th></tr>"
            f"<tr><td>split k, rank r</td><td>k={k}, r={r}</td><td>k={st['best_split']}, r={st['best_rank']}</td>"
            f"<td>r={rl}</td></tr>"
            f"<tr><td>relative error</td><td>{st['error']:.4f}</td><td>{st['best_error']:.4f}</td>"
            f"<td>{st['lmf_error']:.4f}</td></tr>"
            f"<tr><td>parameters</td><td>{st['params']:,} / {m * n:,}</td><td>budget {m * n / st['compression']:,.0f}"
            f"</td><td>{rl * (m + n):,}</td></tr>" + times + "</table>")
        if _in_notebook():  # outside a kernel there is nowhere to draw (and clear_output would print escapes)
            from IPython.display import display

            from .plots import budget_line

            self.plot.clear_output(wait=True)
            with self.plot:
                fig, ax = plt.subplots(figsize=(6, 2.6))
                budget_line(b, current=k, ax=ax)
                fig.tight_layout()
                display(fig)
                plt.close(fig)
        return st


class HeuristicExplorer:
    """Compression and split sliders that compare split heuristics live: for each heuristic, the weight error
    (and the output error on calibration inputs ``X``), the parameters (equal for all: same k and r) and the
    measured time of its HMF layer (a non-top row set costs a row permutation at inference).

    Widgets: ``compression`` (SelectionSlider), ``share`` (FloatSlider: share of the budget spent on dense rows),
    ``heuristics`` (SelectMultiple); read-out ``readout`` (HTML table), ``table`` (the DataFrame shown).

    >>> import torch, hmf_lab as hl
    >>> hx = hl.widgets.HeuristicExplorer(torch.randn(48, 32), heuristics=["top", "row_norm"], time=False)
    >>> hx.share.value = 0.5
    >>> list(hx.table["heuristic"]), int(hx.table["params"].nunique())
    (['top', 'row_norm'], 1)
    """

    def __init__(self, W, *, X=None, heuristics=("top", "random", "row_norm", "residual", "leverage", "greedy"),
                 compressions=(2, 4, 8, 16), value: float = 4, share: float = 0.25, time: bool = True,
                 batch: int = 1, min_run_time: float = 0.02):
        self.W = as_matrix(W)
        self.X = X
        self.cache = HMFCache(self.W, X=X)
        have = {"X"} if X is not None else set()
        usable = [h for h in heuristics if set(getattr(HEURISTICS.get(h), "requires", ())) <= have]
        unknown = [h for h in heuristics if h not in HEURISTICS]
        if unknown or not usable:
            raise ValueError(f"heuristics must be registered names usable without gradients "
                             f"({sorted(HEURISTICS)}; 'activation' needs X), got {list(heuristics)}")
        comps = [check_compression(c) for c in compressions]
        if check_compression(value) not in comps:
            raise ValueError(f"value must be one of compressions {comps}, got {value!r}")
        if not 0 <= float(share) < 1:
            raise ValueError(f"share must be in [0, 1), got {share!r}")
        self.timing_enabled, self.batch, self.min_run_time = bool(time), as_int(batch, "batch"), float(min_run_time)
        cu = dict(continuous_update=False, style={"description_width": "9em"}, layout=W_.Layout(width="30em"))
        self.compression = W_.SelectionSlider(options=[(f"{c:g}x", c) for c in comps], value=float(value),
                                              description="compression", **cu)
        self.share = W_.FloatSlider(value=float(share), min=0.0, max=0.9, step=0.05, readout_format=".0%",
                                    description="dense-row share", **cu)
        self.heuristics = W_.SelectMultiple(options=usable, value=tuple(usable),
                                            description="heuristics", rows=min(8, len(usable)),
                                            style={"description_width": "7em"})
        self.readout = W_.HTML()
        self.readout.add_class("hmf-heuristic-readout")
        self.table: pd.DataFrame | None = None
        self.state: dict = {}
        for w in (self.compression, self.share, self.heuristics):
            w.observe(lambda change: self.update(), names="value")
        self.widget = W_.HBox([W_.VBox([self.compression, self.share, self.heuristics]), self.readout])
        self.widget.add_class("hmf-heuristics")
        self.update()

    def _repr_mimebundle_(self, **kw):
        return self.widget._repr_mimebundle_(**kw)

    def choice(self) -> tuple[int, int]:
        """(split, rank): the budget's split whose dense rows take the share closest to the slider's."""
        m, n = self.W.shape
        b = budget((m, n), self.compression.value)
        share = b["split"] * n / (m * n / self.compression.value)
        i = (share - self.share.value).abs().idxmin()
        return int(b.loc[i, "split"]), int(b.loc[i, "rank"])

    def update(self) -> pd.DataFrame:
        """Recompute every selected heuristic's errors (and time) at the sliders' (split, rank)."""
        from .layers import HMFLinear
        from .leaderboard import output_error

        m, n = self.W.shape
        k, r = self.choice()
        rows = []
        for h in self.heuristics.value:
            try:
                f = self.cache.hmf(k, r, h)
            except (ValueError, TypeError, RuntimeError) as e:  # show a failing heuristic, never raise in a callback
                rows.append(dict(heuristic=h, error=float("nan"), note=str(e)[:80]))
                continue
            row = dict(heuristic=h, split=k, rank=r, params=f.n_params, error=self.cache.error(k, r, h))
            if self.X is not None:
                row["output_error"] = output_error(self.W, f, self.X)
            if self.timing_enabled and k:
                layer = HMFLinear.from_result(f).requires_grad_(False)
                dense = nn.Linear(n, m, bias=False)
                with torch.no_grad():
                    dense.weight.copy_(self.W)
                t = _time_modules({"dense": dense, h: layer}, self.batch, n, self.min_run_time)
                row["time_us"], row["speedup"] = float(t["median"].iloc[1] * 1e6), float(t["ratio"].iloc[1])
            rows.append(row)
        df = pd.DataFrame(rows)
        if len(df) and df["error"].notna().any():
            df["vs_best"] = df["error"] / df["error"].min()
        self.table = df
        self.state = dict(split=k, rank=r, compression=self.compression.value, params=hmf_params(m, n, k, r))
        cols = [c for c in ("heuristic", "error", "output_error", "vs_best", "params", "time_us", "speedup", "note")
                if c in df.columns]
        fmt = {"error": "{:.4f}", "output_error": "{:.4f}", "vs_best": "{:.2f}x", "params": "{:,}",
               "time_us": "{:,.1f} µs", "speedup": "{:.2f}x dense"}
        body = "".join("<tr>" + "".join(
            f"<td>{escape(fmt[c].format(v) if c in fmt and pd.notna(v) else str(v))}</td>" for c, v in
            ((c, rec[c]) for c in cols)) + "</tr>" for rec in df.to_dict("records"))
        self.readout.value = (f"<b>{m}x{n} at {self.compression.value:g}x: split k={k}, rank r={r}</b>"
                              f"<table class='hmf-heuristic-table'><tr>{''.join(f'<th>{c}</th>' for c in cols)}</tr>"
                              f"{body}</table>")
        return df
