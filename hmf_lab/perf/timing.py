"""The kit's one timing harness: interleaved rounds, median and spread, and a flag when it cannot be trusted.

:func:`measure` times one callable (``torch.utils.benchmark``'s blocked-autorange rule after a warm-up);
:func:`race` times several side by side in interleaved rounds (a burst of load from another process
slows one round of every method, not one method) and returns a :class:`Race`, the kit's one timing
result: the table (median, IQR, fastest block, speed-up over a reference), the thread count, the clock,
the load average and a :class:`Reliability` verdict, read with ``medians`` / ``ratios`` / ``noise`` and
``to_frame()``. Everything that compares speeds goes through it: ``hl.engines.choose`` (per layer and
end to end), ``hl.engines.compare_models``, ``hmf-lab bench``, the trade-off tables and the explorers
(``time_layers``), :func:`compare`, the benchmarks. The verdict is ``unreliable`` with a reason in words
when

- the spread is large (a method's middle half of blocks spans more than 30% of its median),
- medians sit on multiples of the scheduler tick (1, 4 or 10 ms): threads waiting for a core, not
  kernels computing (a matrix-vector product does not take exactly 8.000 ms),
- the timing thread got a core only part of the time (its CPU time is well below the wall time), or
- other processes hold the cores: the run queue (``/proc/stat`` ``procs_running``) or the 1-minute
  load average (``os.getloadavg``) is above the cores this measurement leaves free (``os.cpu_count``).

Every read-out of the kit (explorers, ``hmf-lab bench``, ``reproduce``) prints :attr:`Race.warning`
next to its numbers. Batch-1 timings default to one torch thread (``threads="auto"``): a matrix-vector
product is memory-bound, a second thread adds synchronisation and, on a shared machine, waits for a
descheduled partner. The thread count is process-wide in torch, so it is set (and restored) only when
the harness runs on the main thread; on another thread the current count is used and reported.

References for every timed number: :func:`weight_bytes` (the bytes a batch-1 forward streams: the ideal
speed-up is dense bytes / compressed bytes; CSR counts its values and int32 indices, as the timed kernel
uses) and :func:`raw_kernels` (the same matrix-vector kernels the layer runs, called directly on
pre-packed tensors: the floor a Python layer can approach).

Example
-------
>>> import torch, hmf_lab as hl
>>> W, x = torch.randn(64, 64), torch.randn(1, 64)
>>> t = hl.measure(torch.matmul, x, W.T, min_run_time=0.01, threads=1, label="dense")
>>> t.median > 0 and t.n >= 1 and t.threads == 1 and t.label == "dense"
True
>>> r = hl.timing.race({"a": torch.relu, "b": torch.tanh}, x, rounds=2, min_run_time=0.005)
>>> list(r.table["name"]), r.threads, isinstance(r.warning, str)
(['a', 'b'], 1, True)
"""
from __future__ import annotations

import math
import numbers
import os
import threading
import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import pandas as pd
import torch

from hmf_lab.factor.budget import csr_bytes, csr_index_bytes  # the one CSR byte count lives with the other size rules

__all__ = ["Timing", "measure", "compare", "race", "Race", "Reliability", "reliability", "machine_load",
           "weight_bytes", "model_weight_bytes", "csr_bytes", "raw_kernels"]

#: scheduler ticks (seconds) of common Linux kernels (HZ = 1000, 250, 100)
TICKS = (1e-3, 4e-3, 1e-2)
#: a method's IQR above this share of its median makes the measurement unreliable
MAX_SPREAD = 0.30
#: the timing thread must hold a core at least this share of the wall time
MIN_ON_CORE = 0.80


@dataclass(frozen=True)
class Timing:
    """One measurement: per-call median and IQR (seconds) over ``n`` blocks of ``number_per_run`` calls."""

    median: float  # seconds per call, median over blocks
    iqr: float  # seconds, interquartile range over blocks
    n: int  # number of measured blocks
    threads: int  # torch threads used
    label: str = ""
    number_per_run: int = 1  # calls per block
    mean: float = math.nan  # seconds per call, mean over blocks
    times: tuple = ()  # seconds per call of every block (pool them across repeated measurements)
    wall: float = math.nan  # wall seconds the measurement took (warm-up and autorange)
    cpu: float = math.nan  # CPU seconds of the timing thread over the same span
    note: str = ""  # e.g. why the requested thread count was not applied

    @property
    def median_us(self) -> float:
        """The median in microseconds."""
        return self.median * 1e6

    def __str__(self) -> str:
        name = f"{self.label}: " if self.label else ""
        return f"{name}{_fmt(self.median)} (IQR {_fmt(self.iqr)}, n={self.n}, threads={self.threads})"


def _fmt(seconds: float) -> str:
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("us", 1e-6)):
        if seconds >= scale:
            return f"{seconds / scale:.3g} {unit}"
    return f"{seconds / 1e-9:.3g} ns"


def _check_threads(threads) -> int | None:
    if threads is None:
        return None
    if isinstance(threads, bool) or not isinstance(threads, numbers.Integral):
        raise TypeError(f"threads must be an int >= 1 or None (keep the current count), got {threads!r}")
    if threads < 1:
        raise ValueError(f"threads must be an int >= 1 or None (keep the current count), got {threads}")
    return int(threads)


#: clock name -> timer function: wall-clock time, or the CPU time of the calling thread
CLOCKS = {"wall": time.perf_counter, "thread": time.thread_time}


def _on_main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


def measure(fn: Callable, *args, min_run_time: float = 0.3, threads: int | None = None, warmup: int = 3,
            label: str = "", clock: str = "wall") -> Timing:
    """Time ``fn(*args)``: ``warmup`` untimed calls, then blocks of calls until ``min_run_time`` has passed
    (``torch.utils.benchmark``'s blocked-autorange rule: a block size whose loop overhead is negligible).

    ``threads``: torch intra-op threads for the measurement (``None`` keeps the current count); the
    previous count is restored afterwards, also when ``fn`` raises. The count is process-wide state, so
    it is only changed on the main thread: called from another thread, ``measure`` uses the current count
    and says so in ``Timing.note``. Runs under ``torch.inference_mode`` only if the caller does so; wrap
    ``fn`` yourself to time training-mode code.
    ``clock``: ``"wall"`` (default) or ``"thread"``, the CPU time of the calling thread, which leaves out
    the time the thread waits while other processes hold the core: on a shared machine it measures what
    a quiet core would take, exactly so for ``threads=1`` (OpenMP workers' time is not counted).
    ``Timing.wall`` and ``Timing.cpu`` (the whole measurement's wall and thread-CPU seconds) let
    :func:`reliability` see a thread that waited for a core.

    >>> import torch, hmf_lab as hl
    >>> t = hl.measure(lambda: sum(range(100)), min_run_time=0.01)
    >>> isinstance(t, hl.timing.Timing), t.iqr >= 0
    (True, True)
    """
    if not callable(fn):
        raise TypeError(f"fn must be callable, got {type(fn).__name__}")
    if isinstance(min_run_time, bool) or not isinstance(min_run_time, numbers.Real) or not min_run_time > 0:
        raise ValueError(f"min_run_time must be a positive number of seconds, got {min_run_time!r}")
    if isinstance(warmup, bool) or not isinstance(warmup, numbers.Integral) or warmup < 0:
        raise ValueError(f"warmup must be an int >= 0 (untimed calls before measuring), got {warmup!r}")
    threads = _check_threads(threads)
    if clock not in CLOCKS:
        raise ValueError(f"clock must be one of {sorted(CLOCKS)}, got {clock!r}")
    before = torch.get_num_threads()
    note = ""
    if threads is None or threads == before:
        use, change = before, False
    elif _on_main_thread():
        use, change = threads, True
    else:
        use, change = before, False
        note = (f"ran with {before} torch threads, not the {threads} requested: the thread count is "
                "process-wide, so the harness sets it only on the main thread")
    w0, c0 = time.perf_counter(), time.thread_time()
    try:
        if change:
            torch.set_num_threads(use)
        for _ in range(int(warmup)):
            fn(*args)
        number, times = _blocked_autorange(fn, args, float(min_run_time), CLOCKS[clock])
    finally:
        if change:
            torch.set_num_threads(before)
    wall, cpu = time.perf_counter() - w0, time.thread_time() - c0
    q1, med, q3 = np.percentile(times, [25, 50, 75])
    return Timing(median=float(med), iqr=float(q3 - q1), n=len(times), threads=use, label=label,
                  number_per_run=number, mean=float(sum(times) / len(times)),
                  times=tuple(float(t) for t in times), wall=wall, cpu=cpu, note=note)


def _timeit(fn, args, number: int, timer) -> float:
    t0 = timer()
    for _ in range(number):
        fn(*args)
    return timer() - t0


def _blocked_autorange(fn, args, min_run_time: float, timer) -> tuple[int, list]:
    """``torch.utils.benchmark.Timer.blocked_autorange``'s algorithm, without its thread-count context
    (which calls the process-wide ``torch.set_num_threads`` on whatever thread it runs): find a block
    size whose loop overhead is negligible, then time blocks until ``min_run_time`` has passed.
    Returns (calls per block, seconds per call of every block)."""
    overhead = float(np.median([_timeit(fn, args, 0, timer) for _ in range(5)]))
    number = 1
    while True:  # same rule as torch.utils.benchmark: overhead <= 1e-4 of a block, block >= min_run_time / 1000
        taken = _timeit(fn, args, number, timer)
        if (overhead <= 1e-4 * taken and taken >= min_run_time / 1000) or taken > min_run_time or number * 10 > 2**31 - 1:
            break
        number *= 10
    times, total = [], 0.0
    while total < min_run_time or not times:
        taken = _timeit(fn, args, number, timer)
        total += taken
        times.append(taken / number)
    return number, times


# --------------------------------------------------------------------------- is the machine quiet?


def _procs_running() -> int | None:
    """Runnable tasks right now (``procs_running`` of /proc/stat, Linux), this one included; None elsewhere."""
    try:
        with open("/proc/stat") as fh:
            for line in fh:
                if line.startswith("procs_running"):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return None


def machine_load() -> dict:
    """The machine right now: ``cores`` (``os.cpu_count``), ``load_1min`` (``os.getloadavg``, NaN where
    unavailable) and ``running`` (runnable tasks, this one included; None off Linux).

    >>> import hmf_lab as hl
    >>> sorted(hl.timing.machine_load())
    ['cores', 'load_1min', 'running']
    """
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else math.nan
    return {"cores": os.cpu_count() or 1, "load_1min": float(load), "running": _procs_running()}


@dataclass(frozen=True)
class Reliability:
    """Whether a set of timings can be trusted, and if not, why (in words a student can read)."""

    unreliable: bool
    reasons: tuple = ()  # one sentence each
    threads: int = 1
    cores: int = 1
    load_1min: float = math.nan
    others_running: float = math.nan  # median count of other runnable tasks seen during the measurement
    on_core: float = math.nan  # the timing thread's CPU time / wall time
    notes: tuple = ()  # caveats that do not make the numbers unreliable (e.g. the thread count used)
    clock: str = "wall"  # the clock the timings used

    @property
    def warning(self) -> str:
        """'' when reliable and nothing to note, else 'Unreliable timing: <reasons>. ...' and/or the notes."""
        text = ""
        if self.unreliable:
            advice = ("rerun when the machine is quiet (or compare with clock='thread')" if self.clock == "wall" else
                      "the thread clock leaves out waiting, but other processes still share the caches and memory "
                      "bandwidth: rerun when the machine is quiet")
            text = ("Unreliable timing: " + "; ".join(self.reasons) + ". Treat these numbers as an upper bound, "
                    "not a result: " + advice + ".")
        if self.notes:
            text += (" " if text else "") + "Note: " + "; ".join(self.notes) + "."
        return text

    def __str__(self) -> str:
        return self.warning or (f"timing looks reliable ({self.threads} thread(s), load {self.load_1min:.2f} "
                                f"on {self.cores} cores)")


def _tick_hits(values: dict) -> tuple[float, list[str]] | None:
    """The scheduler tick that at least two (or the only) positive values sit on multiples of, with them."""
    vals = {k: v for k, v in values.items() if v > 0 and math.isfinite(v)}
    need = min(2, len(vals))
    for tick in sorted(TICKS, reverse=True):
        hits = [k for k, v in vals.items() if v >= 0.95 * tick and abs(v / tick - round(v / tick)) <= 0.02]
        if need and len(hits) >= need:
            return tick, hits
    return None


def reliability(timings: dict, *, threads: int = 1, running: list | None = None,
                load: dict | None = None, clock: str = "wall") -> Reliability:
    """Judge ``timings`` (name -> list of :class:`Timing`, e.g. the rounds of :func:`race`).

    ``running``: runnable-task counts sampled during the measurement (this thread included);
    ``load``: :func:`machine_load` (read now if not given). See the module docstring for the rules.

    >>> import hmf_lab as hl
    >>> t = hl.timing.Timing(median=8e-3, iqr=1e-5, n=5, threads=2)
    >>> u = hl.timing.Timing(median=16e-3, iqr=1e-5, n=5, threads=2)
    >>> r = hl.timing.reliability({"dense": [t], "HMF": [u]}, threads=2, load={"cores": 64, "load_1min": 0.0})
    >>> r.unreliable, "scheduler tick" in r.warning
    (True, True)
    """
    load = dict(machine_load() if load is None else load)
    cores = int(load.get("cores") or 1)
    reasons = []
    pooled = {}
    for name, ts in timings.items():
        times = np.concatenate([np.asarray(t.times or (t.median,), dtype=float) for t in ts]) if ts else np.array([])
        if times.size:
            q1, med, q3 = np.percentile(times, [25, 50, 75])
            pooled[name] = (float(med), float(q3 - q1), max(t.number_per_run for t in ts))
    wide = {n: iqr / med for n, (med, iqr, _) in pooled.items() if med > 0 and iqr / med > MAX_SPREAD}
    if wide:
        worst = max(wide, key=wide.get)
        reasons.append(f"the spread is large ({worst}: the middle half of its runs spans {wide[worst]:.0%} of "
                       f"its median)")
    for values in ({n: med for n, (med, _, _) in pooled.items()},
                   {n: med * k for n, (med, _, k) in pooled.items() if k > 1}):
        hit = _tick_hits(values)
        if hit:
            tick, names = hit
            shown = ", ".join(f"{n} {values[n] * 1e3:.1f} ms" for n in names[:3])
            reasons.append(f"times sit on multiples of the {tick * 1e3:g} ms scheduler tick ({shown}): threads "
                           "waited for a core instead of computing")
            break
    wall = sum(t.wall for ts in timings.values() for t in ts if math.isfinite(t.wall))
    cpu = sum(t.cpu for ts in timings.values() for t in ts if math.isfinite(t.cpu))
    on_core = cpu / wall if wall > 0 else math.nan
    if math.isfinite(on_core) and on_core < MIN_ON_CORE:
        reasons.append(f"the timing thread held a core only {on_core:.0%} of the time")
    free = max(0, cores - threads)  # cores this measurement leaves to everything else
    samples = [max(0, s - threads) for s in (running or []) if s is not None]  # less this measurement's threads
    others = float(np.median(samples)) if samples else math.nan
    l1 = float(load.get("load_1min", math.nan))
    if math.isfinite(others) and others > free:
        reasons.append(f"other processes held the cores ({others:g} other runnable tasks for the {free} core(s) "
                       f"this {threads}-thread measurement leaves free on {cores})")
    elif math.isfinite(l1) and l1 - threads > free + 0.5:
        reasons.append(f"other processes held the cores (load average {l1:.1f} on {cores} cores, "
                       f"{threads} used here)")
    notes = tuple(sorted({t.note for ts in timings.values() for t in ts if t.note}))
    return Reliability(unreliable=bool(reasons), reasons=tuple(reasons), threads=threads, cores=cores,
                       load_1min=l1, others_running=others, on_core=on_core, notes=notes, clock=clock)


# --------------------------------------------------------------------------- side by side


@dataclass(frozen=True)
class Race:
    """The kit's one timing result, returned by :func:`race` (and built on by every read-out: bench, engines,
    the trade-off tables, the explorers).

    ``table``: one row per candidate, in the order given: ``name, median, iqr, min, n, ratio`` (seconds per
    call; ``ratio`` = the reference's median / this median, 2.0: twice as fast as the reference);
    ``threads``: the torch threads used; ``timings``: every :class:`Timing` (name -> one per round);
    ``reliability``: the :class:`Reliability` verdict (``unreliable``, ``warning``, ``load_1min``);
    ``reference``: the name the ratios divide by (the first candidate unless :func:`race` was told);
    ``clock``: ``"wall"`` or ``"thread"``. Read single numbers with :meth:`median`, :meth:`ratio`,
    ``medians`` / ``ratios`` / ``noise`` (name -> value) and the whole thing with :meth:`to_frame`.

    >>> import hmf_lab as hl
    >>> T = hl.timing.Timing
    >>> r = hl.timing.Race.from_timings({"dense": [T(median=2e-3, iqr=1e-4, n=3, threads=1)],
    ...                                  "hmf": [T(median=1e-3, iqr=1e-4, n=3, threads=1)]},
    ...                                 load={"cores": 64, "load_1min": 0.0})
    >>> r.median("hmf"), r.ratios, r.ratio("dense", over="hmf"), r.reference
    (0.001, {'dense': 1.0, 'hmf': 2.0}, 0.5, 'dense')
    >>> list(r.to_frame(unit="us").columns), r.to_frame().attrs["threads"]
    (['name', 'median_us', 'iqr_us', 'min_us', 'n', 'ratio'], 1)
    """

    table: pd.DataFrame
    threads: int
    timings: dict = field(repr=False, default_factory=dict)
    reliability: Reliability = field(default_factory=lambda: Reliability(False))
    reference: object = None  # the name ``ratio`` divides by; None: the first row
    clock: str = "wall"

    @classmethod
    def from_timings(cls, timings: dict, *, reference=None, running: list | None = None, load: dict | None = None,
                     clock: str = "wall") -> "Race":
        """The result for ``timings`` (name -> list of :class:`Timing`, one per round): every block of every
        round pooled into one median / IQR / min per name; the verdict from :func:`reliability`
        (``running`` and ``load`` as there). What :func:`race` returns; also how tests build a result with
        chosen numbers (a fake clock)."""
        if not isinstance(timings, dict) or not timings or not all(timings.values()):
            raise TypeError("timings must be a non-empty dict name -> non-empty list of Timing, got "
                            f"{type(timings).__name__}")
        if reference is not None and reference not in timings:
            raise ValueError(f"reference must be one of the names {list(timings)}, got {reference!r}")
        rows = []
        for name, ts in timings.items():
            times = np.concatenate([np.asarray(t.times or (t.median,), dtype=float) for t in ts])
            q1, med, q3 = np.percentile(times, [25, 50, 75])
            rows.append((name, float(med), float(q3 - q1), float(times.min()), int(times.size)))
        table = pd.DataFrame(rows, columns=["name", "median", "iqr", "min", "n"])
        ref = next(iter(timings)) if reference is None else reference
        table["ratio"] = dict(zip(table["name"], table["median"]))[ref] / table["median"]
        threads = next(iter(timings.values()))[0].threads
        verdict = reliability(timings, threads=threads, running=running, load=load, clock=clock)
        return cls(table=table, threads=threads, timings=timings, reliability=verdict, reference=ref, clock=clock)

    @property
    def unreliable(self) -> bool:
        return self.reliability.unreliable

    @property
    def warning(self) -> str:
        """'' when the numbers can be trusted, else the reasons in words (show it next to the numbers)."""
        return self.reliability.warning

    @property
    def load_1min(self) -> float:
        """The 1-minute load average during the race (the larger of before and after)."""
        return self.reliability.load_1min

    def _column(self, col: str) -> dict:
        return dict(zip(self.table["name"], self.table[col].astype(float)))

    @property
    def medians(self) -> dict:
        """name -> median seconds per call."""
        return self._column("median")

    @property
    def ratios(self) -> dict:
        """name -> the reference's median / this median."""
        return self._column("ratio")

    @property
    def noise(self) -> dict:
        """name -> IQR / median (the relative spread of its blocks; above 0.3 the verdict says so)."""
        return {n: (i / m if m > 0 else math.nan) for (n, m), i in zip(self.medians.items(), self.table["iqr"])}

    def median(self, name) -> float:
        """The median seconds per call of ``name``."""
        medians = self.medians
        if name not in medians:
            raise ValueError(f"name must be one of this race's candidates {list(medians)}, got {name!r}")
        return medians[name]

    def ratio(self, name, over=None) -> float:
        """``over``'s median / ``name``'s median (``over`` defaults to the reference): > 1 means ``name`` is faster."""
        return self.median(self.reference if over is None else over) / self.median(name)

    def to_frame(self, unit: str = "s") -> pd.DataFrame:
        """The table as a new DataFrame (``unit="us"``: ``median_us, iqr_us, min_us``) with the verdict in
        ``attrs``: ``warning``, ``unreliable``, ``threads``, ``clock``, ``load_1min``, ``reference``."""
        if unit not in ("s", "us"):
            raise ValueError(f"unit must be 's' (seconds) or 'us' (microseconds), got {unit!r}")
        df = self.table.copy()
        if unit == "us":
            for col in ("median", "iqr", "min"):
                df[col] = df[col] * 1e6
            df = df.rename(columns={c: c + "_us" for c in ("median", "iqr", "min")})
        df.attrs.update(warning=self.warning, unreliable=bool(self.unreliable), threads=int(self.threads),
                        clock=self.clock, load_1min=float(self.load_1min), reference=self.reference)
        return df

    def __str__(self) -> str:
        lines = [f"{r.name}: {_fmt(r.median)} (IQR {_fmt(r.iqr)}), {r.ratio:.2f}x" for r in self.table.itertuples()]
        lines.append(f"{self.threads} torch thread(s)")
        if self.warning:
            lines.append(self.warning)
        return "\n".join(lines)


def _single_row(args) -> bool:
    tensors = [a for a in args if isinstance(a, torch.Tensor)]
    return bool(tensors) and all(a.ndim == 0 or a.numel() == a.shape[-1] for a in tensors)


def _resolve_threads(threads, args) -> int:
    if threads == "auto":
        return 1 if _single_row(args) else torch.get_num_threads()
    got = _check_threads(threads)
    return torch.get_num_threads() if got is None else got


def race(fns: dict, *args, rounds: int = 3, min_run_time: float = 0.1, threads="auto", warmup: int = 2,
         clock: str = "wall", inference: bool = False, reference=None, prepare: Callable | None = None) -> Race:
    """Time every callable in ``fns`` on ``args``, interleaved: ``rounds`` rounds, each measuring every
    callable once (:func:`measure`, ``min_run_time`` seconds each); medians and IQRs pool every block of
    every round. ``ratio`` = the reference's median / this median (2.0: twice as fast as the reference;
    ``reference``: a name of ``fns``, default the first).

    ``threads="auto"``: one thread when every tensor argument is a single row (batch 1), else the current
    count; an int sets it (main thread only, see :func:`measure`). The first round warms up with
    ``warmup + 1`` calls (TorchScript specialises on its first calls), later rounds with one.
    ``inference=True`` runs each measurement under ``torch.inference_mode``. ``prepare``: called as
    ``prepare(name)`` before each measurement of ``name``, untimed (and before its warm-up): put shared
    state in place, e.g. switch a model's layers to the engines that candidate stands for.

    >>> import torch, hmf_lab as hl
    >>> r = hl.timing.race({"relu": torch.relu, "tanh": torch.tanh}, torch.randn(8, 8), rounds=2,
    ...                    min_run_time=0.005, threads=1)
    >>> list(r.table.columns), float(r.table["ratio"].iloc[0])
    (['name', 'median', 'iqr', 'min', 'n', 'ratio'], 1.0)
    >>> seen = []
    >>> r = hl.timing.race({"a": torch.relu, "b": torch.tanh}, torch.randn(1, 8), rounds=2, min_run_time=0.002,
    ...                    reference="b", prepare=seen.append)
    >>> seen, r.reference, r.ratio("b")
    (['a', 'b', 'a', 'b'], 'b', 1.0)
    """
    gen = _race_steps(fns, args, rounds=rounds, min_run_time=min_run_time, threads=threads, warmup=warmup,
                      clock=clock, inference=inference, reference=reference, prepare=prepare)
    try:
        while True:
            next(gen)
    except StopIteration as stop:
        return stop.value


def _race_steps(fns: dict, args: tuple, *, rounds, min_run_time, threads, warmup, clock, inference,
                reference=None, prepare=None):
    """:func:`race` as a generator: yields after every measurement, returns the :class:`Race`. Nothing
    (thread count, inference mode) stays changed across a ``yield``."""
    import contextlib

    if not isinstance(fns, dict) or not fns:
        raise TypeError(f"fns must be a non-empty dict name -> callable, got {type(fns).__name__} {fns!r}"[:200])
    bad = [name for name, fn in fns.items() if not callable(fn)]
    if bad:
        raise TypeError(f"every value of fns must be callable; not callable: {bad}")
    if isinstance(rounds, bool) or not isinstance(rounds, numbers.Integral) or rounds < 1:
        raise ValueError(f"rounds must be an int >= 1 (interleaved rounds), got {rounds!r}")
    if reference is not None and reference not in fns:
        raise ValueError(f"reference must be one of the names in fns {list(fns)}, got {reference!r}")
    if prepare is not None and not callable(prepare):
        raise TypeError(f"prepare must be a callable prepare(name) or None, got {type(prepare).__name__}")
    use = _resolve_threads(threads, args)
    got = {name: [] for name in fns}
    running = []
    load = machine_load()
    for rnd in range(int(rounds)):
        for name, fn in fns.items():
            if prepare is not None:
                prepare(name)
            running.append(_procs_running())
            with torch.inference_mode() if inference else contextlib.nullcontext():
                t = measure(fn, *args, min_run_time=min_run_time, threads=use,
                            warmup=warmup + 1 if rnd == 0 else 1, label=str(name), clock=clock)
            got[name].append(t)
            yield
    load_after = machine_load()
    load["load_1min"] = max(load["load_1min"], load_after["load_1min"])
    return Race.from_timings(got, reference=reference, running=running, load=load, clock=clock)


def compare(fns: dict, *args, **kw) -> pd.DataFrame:
    """Time several callables on the same ``args`` (one round of :func:`race`); one row each, ``ratio`` =
    first median / this median. The verdict travels in ``df.attrs`` (``"warning"``, ``"unreliable"``,
    ``"threads"``). Keyword arguments go to :func:`measure` (``threads=None`` keeps the current count).

    >>> import torch, hmf_lab as hl
    >>> x = torch.randn(4, 32)
    >>> df = hl.timing.compare({"a": torch.relu, "b": torch.tanh}, x, min_run_time=0.01)
    >>> list(df.columns), list(df["name"]), float(df["ratio"].iloc[0]), "warning" in df.attrs
    (['name', 'median', 'iqr', 'ratio'], ['a', 'b'], 1.0, True)
    """
    if "label" in kw:
        raise TypeError("compare() takes labels from the keys of fns; do not pass label=")
    threads = kw.pop("threads", None)
    warmup = kw.pop("warmup", 3)
    r = race(fns, *args, rounds=1, threads=threads, warmup=max(0, warmup - 1), **kw)
    return r.to_frame()[["name", "median", "iqr", "ratio"]]


# --------------------------------------------------------------------------- references: bytes and floor

FLOAT_BYTES = 4


def weight_bytes(module) -> int:
    """Bytes of weights a forward of ``module`` streams (bias excluded): dense m*n values, HMF/LMF their
    stored values, CSR its values and int32 indices (:func:`csr_bytes`), a reconstructed-mode layer W_hat;
    an LSTM (``nn.LSTM`` or compressed) the sum over its input-hidden and hidden-hidden matrices.

    A layer class that defines its own ``weight_bytes()`` method is asked first (a new layer kind needs
    no change here).

    >>> import torch, hmf_lab as hl
    >>> weight_bytes = hl.timing.weight_bytes
    >>> weight_bytes(torch.nn.Linear(8, 4)), weight_bytes(hl.LMFLinear(8, 4, rank=2))
    (128, 96)
    >>> lstm = torch.nn.LSTM(8, 16)
    >>> weight_bytes(lstm) == (64 * 8 + 64 * 16) * 4, weight_bytes(hl.LMFLSTM.from_lstm(lstm, compression=2))
    (True, 2816)
    """
    from hmf_lab.nn.layers import SparseLinear
    from hmf_lab.nn.lstm import CompressedLSTM

    own = getattr(module, "weight_bytes", None)
    if callable(own):
        return int(own())
    if isinstance(module, torch.nn.Linear):
        return module.weight.numel() * module.weight.element_size()
    if isinstance(module, torch.nn.LSTM):
        return sum(p.numel() * p.element_size() for n, p in module.named_parameters() if n.startswith("weight_"))
    if isinstance(module, CompressedLSTM):
        mats = list(module.ih) + list(module.hh)
        if module.mode == "reconstructed":
            return sum(m.in_features * m.out_features * _element_size(m) for m in mats)
        return sum(weight_bytes(m) for m in mats)
    if isinstance(module, SparseLinear) and module.mode != "reconstructed":
        return csr_bytes(module.out_features, module.nnz, module.values.element_size(), csr_index_bytes(module.nnz))
    if getattr(module, "mode", "factorized") == "reconstructed" and hasattr(module, "in_features"):
        return module.in_features * module.out_features * _element_size(module)
    if hasattr(module, "n_params"):
        return int(module.n_params) * _element_size(module)
    raise TypeError(f"weight_bytes() knows nn.Linear, nn.LSTM and the kit's layers (or a module with a "
                    f"weight_bytes() method), got {type(module).__name__}")


def model_weight_bytes(model) -> int:
    """Bytes of weights one forward of a whole ``model`` streams at batch 1: :func:`weight_bytes` of every
    layer it knows, outermost first (a compressed layer counts once, not again through its parts), plus
    ``nn.MultiheadAttention``'s packed ``in_proj_weight``. Embedding tables are left out (a lookup reads one
    row per token), as are biases and norms.

    >>> import torch, hmf_lab as hl
    >>> net = torch.nn.Sequential(torch.nn.Embedding(100, 8), torch.nn.Linear(8, 16), torch.nn.ReLU(),
    ...                           hl.LMFLinear(16, 4, rank=2))
    >>> hl.timing.model_weight_bytes(net) == (8 * 16 + 2 * (16 + 4)) * 4
    True
    """
    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"model_weight_bytes() takes an nn.Module, got {type(model).__name__}")
    total, counted = 0, []
    for name, mod in model.named_modules():
        if any(name == c or name.startswith(c + ".") or c == "" for c in counted):
            continue
        if isinstance(mod, torch.nn.MultiheadAttention) and getattr(mod, "in_proj_weight", None) is not None:
            total += mod.in_proj_weight.numel() * mod.in_proj_weight.element_size()   # its out_proj: a Linear
            continue
        try:
            b = weight_bytes(mod)
        except TypeError:
            continue
        total += b
        counted.append(name)
    return total


def _element_size(module) -> int:
    p = next(iter(module.parameters()), None)
    if p is None:
        p = next(iter(module.buffers()), None)
    return p.element_size() if p is not None else FLOAT_BYTES


def raw_kernels(module) -> Callable:
    """The floor for ``module``: a function ``fn(x)`` that runs the same matrix kernels its inference
    forward runs (matrix-vector at batch 1), on tensors packed once beforehand, with no module, checks or
    bias: what the layer would cost without Python around it. Use it beside the layer in :func:`race`.
    A layer class that defines its own ``raw_kernels()`` method is asked first.

    >>> import torch, hmf_lab as hl
    >>> h = hl.HMFLinear(16, 16, split=2, rank=3)
    >>> hl.timing.raw_kernels(h)(torch.randn(1, 16)).shape
    torch.Size([14])
    """
    from hmf_lab.nn.layers import HMFLinear, LMFLinear, SparseLinear

    own = getattr(module, "raw_kernels", None)
    if callable(own):
        return own()
    with torch.no_grad():
        if isinstance(module, torch.nn.Linear):
            W = module.weight.detach()
            return lambda x: torch.mv(W, x.reshape(-1)) if x.numel() == W.shape[1] else x @ W.T
        if isinstance(module, SparseLinear):
            w = module._csr32()
            return lambda x: torch.mv(w, x.reshape(-1)) if x.numel() == module.in_features else (w @ x.T).T
        if getattr(module, "mode", "factorized") == "reconstructed":
            Wh = module.to_dense().detach().contiguous()
            return lambda x: torch.mv(Wh, x.reshape(-1)) if x.numel() == Wh.shape[1] else x @ Wh.T
        if isinstance(module, HMFLinear):
            r = module.rank
            VD = torch.cat([module.V, module.dense]).detach().contiguous()  # (r+k, n)
            U = module.U.detach()

            def hmf_floor(x):
                if x.numel() == VD.shape[1]:
                    t = torch.mv(VD, x.reshape(-1))  # (r+k,)
                    return torch.mv(U, t[:r]) if r else t  # (m-k,): the U V rows; D x sits in t[r:]
                t = x @ VD.T
                return t[:, :r] @ U.T
            return hmf_floor
        if isinstance(module, LMFLinear):
            U, V = module.U.detach(), module.V.detach()
            return lambda x: torch.mv(U, torch.mv(V, x.reshape(-1))) if x.numel() == V.shape[1] else (x @ V.T) @ U.T
    raise TypeError(f"raw_kernels() knows nn.Linear and the kit's layers, got {type(module).__name__}")
