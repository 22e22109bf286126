"""Live sliders for HMF (ipywidgets 8): split and rank in, error, size, rank and run time out.

:func:`explorer` builds an :class:`Explorer`: its sliders (``.split``, ``.rank``), compression lock
(``.lock``) and heuristic menu (``.heuristic``) drive read-out widgets (``.error_out``,
``.params_out``, ...) whose ``.value`` is what the student sees, plus ``.state`` with the numbers.
Errors come from cached spectra (``hl.HMFCache``), so a slider move costs a dictionary look-up; the
timed inference (HMF vs dense vs LMF vs pruning at the same budget, each beside its ideal speed-up from
bytes and its raw-kernel floor) follows debounced, so dragging a slider never waits for it.

Background work, made safe (see :class:`Explorer`): in a notebook kernel the timing runs on the
kernel's own event loop (``asyncio``), one measurement per loop turn, so it may set the torch thread
count and slider messages are served in between; only the SVDs behind the timed layers and the cache
warm-up run in helper threads, and they touch the shared spectrum cache under a lock. Outside a
kernel (scripts, tests) the timing runs in one helper thread that never changes process-wide state.
:meth:`Explorer.stop` ends everything with timed joins. That machinery lives in
:mod:`hmf_lab.course._live_thread` (:class:`~hmf_lab.course._live_thread.LiveTiming`, a mixin of
:class:`Explorer`); this module holds the sliders and read-outs.

The experiment helpers (``layers_at_budget``, ``tradeoff_table``) live in :mod:`hmf_lab.experiments.tradeoff`
and are re-exported here under their old names.

Example
-------
>>> import torch, hmf_lab as hl
>>> ex = hl.explorer(torch.randn(64, 64), timing=False)
>>> ex.split.value = 16; ex.rank.value = 8
>>> ex.state["params"] == 16*64 + 8*48 + 8*64, ex.rank_out.value
(True, '24')
"""
from __future__ import annotations

import math
import numbers
import threading
import time
from html import escape

import ipywidgets as W_
import numpy as np
import pandas as pd
import torch
import traitlets

from hmf_lab.factor._validation import as_int, as_matrix, check_compression
from hmf_lab.factor.budget import budget, hmf_params, largest_rank, value_budget
from hmf_lab.factor.sweep import HMFCache
from hmf_lab.factor.heuristics import HEURISTICS
from hmf_lab.course._live_thread import _LIVE, LiveTiming, _on_loop, _on_main_thread, _stop_all  # noqa: F401
from hmf_lab.course.plots import blocks_svg
from hmf_lab.experiments.tradeoff import dense_layer, layers_at_budget, lmf_layer, lmf_rank_at, time_layers, tradeoff_table

__all__ = ["Explorer", "explorer", "RunTimeExplorer", "BudgetExplorer", "HeuristicExplorer", "layers_at_budget",
           "tradeoff_table"]

#: a heuristic whose spectrum for one split takes longer than this (seconds) on the kernel thread gets a
#: note in the status line (e.g. ``greedy`` without ``precompute``)
SLOW_MOVE = 0.3


def _label(text: str, width: str = "10em") -> W_.HTML:
    return W_.HTML(f"<b>{escape(text)}</b>", layout=W_.Layout(width=width))


def _readout(css: str) -> W_.Label:
    out = W_.Label(value="", layout=W_.Layout(width="13em"))
    out.add_class(css)
    return out


class InvalidChoice(traitlets.TraitError, ValueError):
    """A menu value that is not one of its options (a ``TraitError`` and a ``ValueError``)."""


class _Menu(W_.Dropdown):
    """A Dropdown whose error for an unknown value lists the options."""

    @traitlets.validate("value")
    def _validate_value(self, proposal):
        value = proposal.value
        opts = list(self._options_values)
        if value is not None and value not in opts:
            raise InvalidChoice(f"{self.description or 'menu'}: {value!r} is not an option; choose one of {opts}")
        return value


def _fmt_us(seconds: float) -> str:
    return "–" if not math.isfinite(seconds) else f"{seconds * 1e6:,.1f} µs"


def _timing_html(table: pd.DataFrame, caption: str, warning: str = "", batch: int = 1) -> str:
    """A tiny bar chart in HTML (no matplotlib, so it redraws in microseconds), each time beside its
    references: the ideal speed-up from bytes and the raw kernels' time; the harness's warning below.

    The ideal from bytes is the memory-bandwidth limit at batch 1; at a larger ``batch`` each weight is reused
    across the inputs, the limit no longer applies, and its column says so instead of showing a number."""
    top = float(table["median"].max()) or 1.0
    has_refs = "ideal" in table.columns
    rows = []
    for r in table.itertuples():
        w = max(1, int(200 * r.median / top))
        cells = [f"<td>{escape(str(r.name))}</td><td><div style='background:#0072b2;height:10px;width:{w}px'>"
                 f"</div></td>",
                 f"<td style='text-align:right;padding:0 1em'>{_fmt_us(r.median)} ± {r.iqr * 1e6:,.1f}</td>",
                 f"<td style='text-align:right;padding:0 1em'>{r.ratio:.2f}x</td>"]
        if has_refs:
            ideal = (f"{r.ideal:.2f}x" if batch == 1 else
                     "<span title='each weight is reused by every input of the batch: no longer bytes-bound'>"
                     "n/a (batch 1 only)</span>")
            cells += [f"<td style='text-align:right;padding:0 1em'>{ideal}</td>",
                      f"<td style='text-align:right;padding:0 1em'>{_fmt_us(r.floor)}</td>"]
        rows.append("<tr>" + "".join(cells) + "</tr>")
    head = ("<tr><th>layer</th><th></th><th style='padding:0 1em'>median ± IQR</th>"
            "<th style='padding:0 1em'>speed-up vs dense</th>"
            + ("<th style='padding:0 1em' title='dense bytes / bytes this layer streams: the memory-bandwidth "
               "limit at batch 1'>ideal (bytes)</th><th style='padding:0 1em' title='the same matrix kernels "
               "called directly: what the layer costs without Python around it'>raw kernels</th>"
               if has_refs else "") + "</tr>")
    warn = (f"<div class='hmf-timing-warning' style='color:#b00;max-width:48em'>⚠ {escape(warning)}</div>"
            if warning else "")
    return (f"<table class='hmf-timing'><caption style='text-align:left'>{escape(caption)}</caption>"
            + head + "".join(rows) + "</table>" + warn)


def _check_nonneg(value, name: str, *, strict: bool) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a number of seconds, got {type(value).__name__} {value!r}")
    v = float(value)
    if not math.isfinite(v) or v < 0 or (strict and v == 0):
        need = "> 0" if strict else ">= 0"
        raise ValueError(f"{name} must be a finite number of seconds {need}, got {value!r}")
    return v


def _check_bool(value, name: str) -> bool:
    """``value`` if it is True or False (numpy bools too); anything else (a string such as "yes", 1, None) is a
    TypeError: ``bool("no")`` is True, so nothing is guessed."""
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    raise TypeError(f"{name} must be True or False, got {type(value).__name__} {value!r}; pass {name}=True or "
                    f"{name}=False")


class Explorer(LiveTiming):
    """Split/rank sliders wired to live HMF numbers, a to-scale block picture and timed inference.

    Parameters mirror :func:`explorer`. Widgets a test (or a student) can drive: ``split``, ``rank``
    (IntSlider), ``lock`` (Checkbox: keep the compression while moving either slider), ``heuristic``
    (Dropdown over ``hl.HEURISTICS``; an unknown value raises a ``ValueError`` listing the options).
    Read-outs (``Label``; ``.value`` is the shown text): ``error_out``, ``params_out``,
    ``compression_out``, ``rank_out``, ``lmf_out``; ``blocks_out`` (HTML, SVG picture) and ``timing_out``
    (HTML: median ± IQR, speed-up, ideal speed-up from bytes, raw-kernel time, and the harness's warning in
    words when the machine is too busy to trust the numbers). ``state`` holds the numbers behind them,
    ``timings`` the last timing table (``timing_warning`` its verdict), ``latencies`` the seconds each
    :meth:`update` took.

    ``lmf_only=True`` (notebook 01, before HMF is introduced): the rank slider alone, read-outs for error,
    parameters and compression only (no rank bound, no "LMF (same size)", no HMF in the picture), the
    rank slider on multiples of ``rank_step`` (default: about min(m, n) // 32, at least 2, and never a
    divisor of the break-even rank, so dragging shows where compression crosses 1x only to within a
    step: the exact break-even rank stays Exercise 1), and timing of dense vs LMF at the slider's rank.

    Threads: the timed layers are built (SVDs) in a helper thread and timed on the kernel's event loop
    in steps; without a running loop one helper thread does both, without changing the torch thread
    count (process-wide), and the read-out says which count it used. :meth:`stop` ends all of them.
    """

    def __init__(self, W, *, X=None, split: int | None = None, rank: int | None = None, heuristic: str = "top",
                 split_step: int | None = None, precompute: bool = True, timing: bool = True, batch: int = 1,
                 debounce: float = 0.5, min_run_time: float = 0.1, timing_threads: int | None = 1,
                 lmf_only: bool = False, progress: bool = True, rank_step: int | None = None,
                 timing_rounds: int = 2, timing_clock: str = "wall"):
        from hmf_lab.perf.timing import _check_threads

        timing, lmf_only = _check_bool(timing, "timing"), _check_bool(lmf_only, "lmf_only")
        precompute, progress = _check_bool(precompute, "precompute"), _check_bool(progress, "progress")
        self.W = as_matrix(W)
        m, n = self.W.shape
        self.shape = (m, n)
        step = as_int(split_step, "split_step") if split_step is not None else max(1, m // 32)
        if step < 1:
            raise ValueError(f"split_step must be an int >= 1, got {step}")
        if not isinstance(heuristic, str):
            raise TypeError(f"heuristic must be the name (str) of a registered heuristic, one of {sorted(HEURISTICS)}; "
                            f"got {type(heuristic).__name__} {heuristic!r}. Register a function first with "
                            "@hl.register_heuristic('my_rule'), then pass heuristic='my_rule'")
        self._have = frozenset({"X"} if X is not None else set())
        if heuristic not in HEURISTICS:
            raise ValueError(f"unknown heuristic {heuristic!r}; valid names are {sorted(HEURISTICS)}")
        missing = set(getattr(HEURISTICS[heuristic], "requires", ())) - self._have
        if missing:
            raise ValueError(f"heuristic {heuristic!r} needs {sorted(missing)}, which this explorer was not given; "
                             f"pass X=calibration inputs (N, n) or pick one of {self._usable()}")
        if lmf_only and split not in (None, 0):
            raise ValueError(f"lmf_only=True shows LMF (split 0), got split={split!r}; drop split or pass lmf_only=False")
        if split is None:
            k0 = 0 if lmf_only else step * round(m / 8 / step)
        else:
            k0 = as_int(split, "split")
            if not 0 <= k0 <= m:
                raise ValueError(f"split must be an int in [0, m]=[0, {m}], got {k0}")
        rmax = max(1, min(m - k0, n))
        if rank is None:
            r0 = min(max(1, min(m, n) // 8), rmax)
        else:
            r0 = as_int(rank, "rank")
            if not 1 <= r0 <= rmax:
                raise ValueError(f"rank must be an int in [1, min(m - split, n)]=[1, {rmax}] at split {k0}, got {r0}")
        if rank_step is not None:
            rstep = as_int(rank_step, "rank_step")
            if rstep < 1:
                raise ValueError(f"rank_step must be an int >= 1, got {rstep}")
        elif lmf_only:  # multiples of a step that skips the break-even rank (notebook 01's Exercise 1)
            rstep, even = max(2, min(m, n) // 32), (m * n - 1) // (m + n)
            if rstep > rmax or even < 1:  # a tiny matrix (e.g. 1x1: no rank compresses): every rank, step 1
                rstep = 1
            while even % rstep == 0 and rstep > 1:
                rstep += 1
            if rank is None:
                r0 = min(max(rstep, r0 // rstep * rstep), rmax)
        else:
            rstep = 1
        rmin = rstep if lmf_only and rank_step is None and rstep <= rmax else 1
        self.batch = as_int(batch, "batch")
        if self.batch < 1:
            raise ValueError(f"batch must be an int >= 1 (inputs per timed call), got {self.batch}")
        self.debounce = _check_nonneg(debounce, "debounce", strict=False)
        self.min_run_time = _check_nonneg(min_run_time, "min_run_time", strict=True)
        self.timing_threads = _check_threads(timing_threads)  # 1: steadier numbers, and the kernel stays responsive
        self.timing_rounds = as_int(timing_rounds, "timing_rounds")
        if self.timing_rounds < 1:
            raise ValueError(f"timing_rounds must be an int >= 1, got {self.timing_rounds}")
        from hmf_lab.perf.timing import CLOCKS

        if timing_clock not in CLOCKS:
            raise ValueError(f"timing_clock must be one of {sorted(CLOCKS)}, got {timing_clock!r}")
        self.timing_clock = timing_clock
        self.timing_enabled = bool(timing)
        self.lmf_only = bool(lmf_only)
        self._precompute = bool(precompute)

        self.cache = HMFCache(self.W, X=X)
        self._cache_lock = threading.RLock()  # self.cache: the kernel thread and the warm-up thread
        self._tcache = HMFCache(self.W, X=X, max_items=4)  # full SVDs of the timed layers
        self._tcache_lock = threading.Lock()  # self._tcache and time_now(): one timing at a time

        # continuous_update=True: a move costs a cache look-up (~1 ms kernel-side for 1024x1024, see
        # scripts/measure_latency.py), so the read-outs follow a drag; only the timing is debounced.
        cu = dict(continuous_update=True, style={"description_width": "5em"}, layout=W_.Layout(width="26em"))
        self.split = W_.IntSlider(value=k0, min=0, max=m, step=step, description="split k", **cu)
        self.rank = W_.IntSlider(value=r0, min=rmin, max=rmax, step=rstep, description="rank r", **cu)
        self.split.add_class("hmf-split")
        self.rank.add_class("hmf-rank")
        self.lock = W_.Checkbox(value=False, description="lock compression", indent=False)
        self.heuristic = _Menu(options=self._usable(), value=heuristic, description="dense rows",
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
        self.timing_out.add_class("hmf-timing-out")
        self.state: dict = {}
        self.timings: pd.DataFrame | None = None
        self.timing_warning: str = ""
        self.timing_race = None  # the last hl.timing.Race
        self.latencies: list[float] = []
        self._budget: dict[int, int] | None = None
        self._locked_compression: float | None = None
        self._busy = False
        self._init_background(heuristic)  # threads, event loop, debounce state: course._live_thread

        self.split.observe(self._on_split, names="value")
        self.rank.observe(self._on_rank, names="value")
        self.lock.observe(self._on_lock, names="value")
        self.heuristic.observe(self._on_heuristic, names="value")

        labels = {"bound": _label("rank bound k+r"), "lmf": _label("LMF (same size)")}
        readouts = W_.GridBox(
            [_label("relative error"), self.error_out, _label("parameters"), self.params_out,
             _label("compression"), self.compression_out, labels["bound"], self.rank_out,
             labels["lmf"], self.lmf_out],
            layout=W_.Layout(grid_template_columns="repeat(4, auto)", grid_gap="2px 12px"))
        if self.lmf_only:
            for w in (self.split, self.lock, self.heuristic, self.rank_out, self.lmf_out, *labels.values()):
                w.layout.display = "none"
        controls = W_.VBox([W_.HBox([self.split, self.rank]), W_.HBox([self.lock, self.heuristic])])
        self.widget = W_.VBox([controls, readouts, self.status, self.blocks_out, self.timing_out])
        self.widget.add_class("hmf-explorer")
        if precompute:
            self.warm(progress=progress)
        elif self.heuristic.value != "top" and not self.lmf_only:
            self.status.value = (f"<span style='color:#a60'>precompute=False: each new split computes the "
                                 f"'{escape(heuristic)}' rows on the kernel thread (slow heuristics such as "
                                 "'greedy' take seconds per move); pass precompute=True to fill every split "
                                 "once up front and in the background after a menu change</span>")
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

    def warm(self, progress: bool = True, _generation: int | None = None, heuristic: str | None = None) -> None:
        """Compute the spectrum of every slider position for ``heuristic`` (default: the menu's; one SVD each).

        A background warm-up (``_generation`` set) stops early when a newer one replaces it. Each SVD is
        computed under the cache lock, so a slider move waits at most for one.
        """
        from tqdm.auto import tqdm

        m, n = self.shape
        h = self.heuristic.value if heuristic is None else heuristic
        splits = [0] if self.lmf_only else self.splits
        for k in tqdm(splits, desc="caching spectra", disable=not progress or len(splits) < 8, leave=False):
            if self._closed or (_generation is not None and _generation != self._warm_generation):
                return  # stop() / interpreter exit, or a newer heuristic's warm-up took over: stop between SVDs
            r = 0 if k == m else 1
            try:
                with self._cache_lock:
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
        with self._cache_lock:
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
            with self._cache_lock:
                err = self.cache.error(k, r, h)
        except (ValueError, TypeError, RuntimeError) as e:
            self.status.value = f"<span style='color:#b00'>heuristic {escape(h)!s} failed: {escape(str(e))}</span>"
            return self.state
        took = time.perf_counter() - t0
        if took > SLOW_MOVE and not self._precompute:
            self.status.value = (f"<span style='color:#a60'>'{escape(h)}' took {took:.1f} s for this split on the "
                                 "kernel thread; pass precompute=True to compute every split once up front</span>")
        elif self.status.value and "failed" in self.status.value:
            self.status.value = ""
        params = hmf_params(m, n, k, r)
        rl = lmf_rank_at(params, m, n) if params >= m + n else 0
        lmf_err = self._lmf_error(rl)
        self.state = dict(split=k, rank=r, heuristic=h, error=err, params=params, compression=m * n / params,
                          rank_bound=min(k + r, m, n), lmf_rank=rl, lmf_error=lmf_err)
        self.error_out.value = f"{err:.4f}"
        self.params_out.value = f"{params:,} / {m * n:,}"
        self.compression_out.value = f"{m * n / params:.2f}x" + (" (locked)" if self._budget is not None else "")
        self.rank_out.value = f"{min(k + r, m, n)}"
        self.lmf_out.value = f"{lmf_err:.4f} (r={rl})" if rl >= 1 else "n/a (r<1)"
        self.blocks_out.value = blocks_svg(m, n, 0, r, r, lmf_only=True) if self.lmf_only else blocks_svg(m, n, k, r, rl)
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
                q = largest_rank((m, n), B, s)  # core's rule: largest rank with k*n + r*(m-k) + r*n <= B
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
            # thread at a time: a running one switches to the new heuristic at its next SVD (no join here)
            self._start_warm(change["new"])

    def refresh_heuristics(self) -> None:
        """Re-read ``hl.HEURISTICS`` into the menu (after registering a new heuristic)."""
        self.heuristic.options = self._usable()

    # ------------------------------------------------------------------ timing
    def _timed_layers(self, k: int, r: int, h: str) -> dict:
        """The layers to time at (k, r): dense, HMF, LMF, pruned at HMF's budget; dense and LMF(r) in lmf_only."""
        with self._tcache_lock:
            if self.lmf_only:
                return {"dense": dense_layer(self.W), "LMF": lmf_layer(self.W, r, cache=self._tcache)}
            return layers_at_budget(self.W, k, r, h, cache=self._tcache)

    def _caption(self, k: int, r: int, race) -> str:
        m, n = self.shape
        where = (f"LMF r={r}" if self.lmf_only else f"k={k}, r={r}") + f" ({m * n / hmf_params(m, n, k, r):.2f}x)"
        clock = "" if self.timing_clock == "wall" else ", thread CPU clock"
        return f"timed inference at {where}, batch {self.batch}, {race.threads} torch thread(s), eval mode{clock}"

    def _show(self, k: int, r: int, race) -> pd.DataFrame:
        df = race.to_frame()  # the table with the harness's verdict in attrs
        self.timings = df
        self.timing_race = race
        self.timing_warning = race.warning
        self.timing_out.value = _timing_html(df, self._caption(k, r, race), race.warning, batch=self.batch)
        return df

    def _time_kw(self) -> dict:
        return dict(batch=self.batch, rounds=self.timing_rounds, min_run_time=self.min_run_time,
                    threads=self.timing_threads, clock=self.timing_clock)

    def time_now(self) -> pd.DataFrame:
        """Time the layers at the current sliders now, on this thread (dense, HMF, LMF and pruning (CSR) at
        the HMF's budget; dense and LMF in ``lmf_only`` mode), each with its ideal speed-up from bytes and its
        raw-kernel floor. Returns the table (``hl.timing.race``'s, plus ideal, floor, bytes); its
        ``attrs["warning"]`` (also ``.timing_warning``) says in words when it cannot be trusted."""
        k, r = self._k_r()
        layers = self._timed_layers(k, r, self.heuristic.value)
        return self._show(k, r, time_layers(layers, **self._time_kw()))

def explorer(W, **kw) -> Explorer:
    """Split and rank sliders over ``W`` with live error, parameters, compression, rank bound and run time.

    Keyword arguments (see :class:`Explorer`): ``X`` calibration inputs for data-aware heuristics,
    ``split``/``rank`` start values (out of range raises), ``heuristic`` (a registered name),
    ``split_step`` (default m // 32), ``precompute`` (cache every slider position's spectrum up front,
    default True), ``timing`` (debounced timed inference, default True; in eval mode, with ideal and
    raw-kernel references and a warning when the machine is busy), ``batch`` (>= 1), ``debounce`` seconds
    (>= 0), ``min_run_time``, ``timing_threads`` (torch threads for the timing, default 1),
    ``timing_rounds`` (interleaved rounds, default 2), ``timing_clock`` ("wall", or "thread" on a busy
    machine), ``lmf_only`` (rank slider only: notebook 01), ``rank_step``.

    >>> import torch, hmf_lab as hl
    >>> ex = hl.explorer(torch.randn(32, 32), lmf_only=True, timing=False)
    >>> ex.rank.value = 32; ex.error_out.value
    '0.0000'
    """
    return Explorer(W, **kw)


class RunTimeExplorer:
    """Compression, batch-size and thread sliders that time dense / HMF / LMF / pruned layers of ``W``.

    HMF uses a balanced split at every compression (``hl.choose_split_rank``: k close to r, never a
    rank-1 degenerate layer) and the read-out shows the error of every timed layer, so speed and error
    are seen together. Sliders update on release (``continuous_update=False``): each change times four
    layers and their raw kernels (``hl.timing.race``, eval mode, interleaved rounds). The last table is
    ``.timings`` (name, median, iqr, ratio, ideal, floor, ...); ``.errors`` the relative errors;
    ``.table`` (HTML) shows the numbers with their references and the harness's warning; the bar chart
    is drawn in ``.plot``. ``split_fraction`` (optional): pick the budget split nearest
    ``split_fraction * m`` instead (among ranks >= 2).
    """

    def __init__(self, W, *, compressions=(2, 4, 8, 16), batches=(1, 4, 16, 64, 256), split_fraction=None,
                 min_run_time: float = 0.1, run: bool = True, rounds: int = 2):
        import os

        run = _check_bool(run, "run")
        self.W = as_matrix(W)
        self.cache = HMFCache(self.W, max_items=8)
        self.split_fraction = None if split_fraction is None else float(split_fraction)
        if self.split_fraction is not None and not 0 <= self.split_fraction <= 1:
            raise ValueError(f"split_fraction must be in [0, 1] or None (balanced split), got {split_fraction!r}")
        self.min_run_time = _check_nonneg(min_run_time, "min_run_time", strict=True)
        self.rounds = as_int(rounds, "rounds")
        if self.rounds < 1:
            raise ValueError(f"rounds must be an int >= 1, got {self.rounds}")
        comps = [check_compression(c) for c in compressions]
        bs = [as_int(b, "batches") for b in batches]
        if not comps or not bs or min(bs) < 1:
            raise ValueError(f"compressions and batches must be non-empty, batches >= 1; got {list(compressions)}, "
                             f"{list(batches)}")
        cu = dict(continuous_update=False, style={"description_width": "7em"}, layout=W_.Layout(width="24em"))
        self.compression = W_.SelectionSlider(options=[(f"{c:g}x", c) for c in comps], value=comps[min(1, len(comps) - 1)],
                                              description="compression", **cu)
        self.batch = W_.SelectionSlider(options=bs, value=bs[0], description="batch", **cu)
        self.threads = W_.IntSlider(value=1, min=1, max=max(1, os.cpu_count() or 1), description="threads", **cu)
        self.plot = W_.Output()
        self.info = W_.HTML()
        self.table = W_.HTML()
        self.table.add_class("hmf-timing-out")
        self.timings: pd.DataFrame | None = None
        self.errors: dict = {}
        self.timing_warning = ""
        for w in (self.compression, self.batch, self.threads):
            w.observe(lambda change: self.run(), names="value")
        self.widget = W_.VBox([W_.HBox([self.compression, self.batch, self.threads]), self.info, self.table, self.plot])
        if run:
            self.run()

    def _repr_mimebundle_(self, **kw):
        return self.widget._repr_mimebundle_(**kw)

    def choice(self) -> tuple[int, int]:
        """(split, rank) used for HMF: the balanced split at the slider's compression (``hl.choose_split_rank``),
        or with ``split_fraction`` the budget's split nearest ``split_fraction * m`` among ranks >= 2."""
        from hmf_lab.factor.budget import budget
        from hmf_lab.nn.lstm import choose_split_rank

        m, n = self.W.shape
        c = self.compression.value
        if self.split_fraction is None:
            return choose_split_rank((m, n), c)
        b = budget((m, n), c)
        b = b[b["rank"] >= 2] if (b["rank"] >= 2).any() else b
        i = (b["split"] - self.split_fraction * m).abs().idxmin()
        return int(b.loc[i, "split"]), int(b.loc[i, "rank"])

    def run(self) -> pd.DataFrame:
        """Time the four layers at the sliders' setting, show errors, references and warning, redraw the bars."""
        import matplotlib.pyplot as plt

        from hmf_lab.factor.core import relative_error
        from hmf_lab.course.plots import timing_bars

        k, r = self.choice()
        layers = layers_at_budget(self.W, k, r, compression=self.compression.value, cache=self.cache)
        rl = layers["LMF"].rank
        self.errors = {"dense": 0.0, "HMF": self.cache.error(k, r, "top"), "LMF": self.cache.error(0, rl, "top"),
                       "pruning (CSR)": relative_error(self.W, layers["pruning (CSR)"].to_dense())}
        race = time_layers(layers, batch=self.batch.value, rounds=self.rounds, min_run_time=self.min_run_time,
                           threads=self.threads.value)
        df = race.to_frame()  # the table with the harness's verdict in attrs
        df["error"] = [self.errors[name] for name in df["name"]]
        self.timings, self.timing_warning = df, race.warning
        m, n = self.W.shape
        self.info.value = (f"{m}x{n} at {self.compression.value:g}x: HMF k={k}, r={r} (error {self.errors['HMF']:.3f}), "
                           f"LMF r={rl} (error {self.errors['LMF']:.3f}), pruning (error "
                           f"{self.errors['pruning (CSR)']:.3f}); batch {self.batch.value}, {race.threads} thread(s)")
        self.table.value = _timing_html(df, f"batch {self.batch.value}, {race.threads} torch thread(s), eval mode",
                                        race.warning, batch=self.batch.value)
        self.plot.clear_output(wait=True)
        with self.plot:
            fig, ax = plt.subplots(figsize=(6, 2.4))
            timing_bars(df, ax=ax)
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


def _time_modules(modules: dict, batch: int, min_run_time: float) -> tuple[pd.DataFrame, str]:
    """``hl.experiments.tradeoff.time_layers`` on ``modules`` (the first is the baseline): its table (median, ratio, ideal,
    ...) and the harness's warning ('' when the numbers can be trusted)."""
    race = time_layers(modules, batch=batch, rounds=1, min_run_time=min_run_time, floors=False)
    return race.to_frame(), race.warning


def _warning_html(warning: str) -> str:
    return f"<div class='hmf-timing-warning' style='color:#D55E00'>⚠ {escape(warning)}</div>" if warning else ""


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
        time = _check_bool(time, "time")
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
        rl = lmf_rank_at(value_budget((m, n), self.compression.value), m, n)  # LMF within this compression's
        # budget floor(m*n / c): the layer that is timed (layers_at_budget at compression=c)
        st = dict(compression=self.compression.value, split=k, rank=r, params=hmf_params(m, n, k, r),
                  error=float(row["error"]), best_split=int(b.loc[ib, "split"]), best_rank=int(b.loc[ib, "rank"]),
                  best_error=float(b.loc[ib, "error"]), lmf_rank=rl, lmf_error=self.cache.error(0, rl, "top"))
        times = ""
        if self.timing_enabled:
            layers = layers_at_budget(self.W, k, r, self.heuristic, compression=self.compression.value,
                                      cache=self.cache)
            t, warning = _time_modules({"dense": layers["dense"], "HMF": layers["HMF"], "LMF": layers["LMF"]},
                                       self.batch, self.min_run_time)
            t = t.set_index("name")
            st.update(time_dense=float(t.loc["dense", "median"]), time_hmf=float(t.loc["HMF", "median"]),
                      time_lmf=float(t.loc["LMF", "median"]))
            times = (f"<tr><td>measured time (batch {self.batch}, 1 thread)</td>"
                     f"<td>{st['time_hmf'] * 1e6:,.1f} µs ({st['time_dense'] / st['time_hmf']:.2f}x dense)</td>"
                     f"<td>dense {st['time_dense'] * 1e6:,.1f} µs</td>"
                     f"<td>{st['time_lmf'] * 1e6:,.1f} µs ({st['time_dense'] / st['time_lmf']:.2f}x dense)</td></tr>"
                     f"<tr><td colspan='4'>ideal speed-up from bytes: HMF {float(t.loc['HMF', 'ideal']):.2f}x, LMF "
                     f"{float(t.loc['LMF', 'ideal']):.2f}x{_warning_html(warning)}</td></tr>")
            st["timing_warning"] = warning
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

            from hmf_lab.course.plots import budget_line

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
        time = _check_bool(time, "time")
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
        from hmf_lab.nn.layers import HMFLinear
        from hmf_lab.experiments.leaderboard import output_error

        m, n = self.W.shape
        k, r = self.choice()
        rows, warnings = [], []
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
                layer = HMFLinear.from_result(f).requires_grad_(False).eval()
                t, warning = _time_modules({"dense": dense_layer(self.W), h: layer}, self.batch, self.min_run_time)
                row["time_us"], row["speedup"] = float(t["median"].iloc[1] * 1e6), float(t["ratio"].iloc[1])
                warnings.append(warning)
            rows.append(row)
        df = pd.DataFrame(rows)
        if len(df) and df["error"].notna().any():
            df["vs_best"] = df["error"] / df["error"].min()
        self.table = df
        self.state = dict(split=k, rank=r, compression=self.compression.value, params=hmf_params(m, n, k, r))
        warning = next((w for w in warnings if w), "")  # the first timing's warning, if any
        cols = [c for c in ("heuristic", "error", "output_error", "vs_best", "params", "time_us", "speedup", "note")
                if c in df.columns]
        fmt = {"error": "{:.4f}", "output_error": "{:.4f}", "vs_best": "{:.2f}x", "params": "{:,}",
               "time_us": "{:,.1f} µs", "speedup": "{:.2f}x dense"}
        body = "".join("<tr>" + "".join(
            f"<td>{escape(fmt[c].format(v) if c in fmt and pd.notna(v) else str(v))}</td>" for c, v in
            ((c, rec[c]) for c in cols)) + "</tr>" for rec in df.to_dict("records"))
        self.readout.value = (f"<b>{m}x{n} at {self.compression.value:g}x: split k={k}, rank r={r}</b>"
                              f"<table class='hmf-heuristic-table'><tr>{''.join(f'<th>{c}</th>' for c in cols)}</tr>"
                              f"{body}</table>" + _warning_html(warning))
        self.state["timing_warning"] = warning
        return df
