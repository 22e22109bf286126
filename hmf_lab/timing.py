"""Wall-clock timing on ``torch.utils.benchmark``: warm-up, blocked autorange, median and IQR.

Two uses: live from a widget (a short budget, ``min_run_time=0.3`` s) and careful benchmarks
(``hmf-lab bench``, a longer budget). The thread count is set for the measurement and restored after.

Example
-------
>>> import torch, hmf_lab as hl
>>> W, x = torch.randn(64, 64), torch.randn(1, 64)
>>> t = hl.measure(torch.matmul, x, W.T, min_run_time=0.01, threads=1, label="dense")
>>> t.median > 0 and t.n >= 1 and t.threads == 1 and t.label == "dense"
True
"""
from __future__ import annotations

import math
import numbers
import time
from dataclasses import dataclass
from typing import Callable

import pandas as pd
import torch
import torch.utils.benchmark as benchmark

__all__ = ["Timing", "measure", "compare"]


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


def measure(fn: Callable, *args, min_run_time: float = 0.3, threads: int | None = None, warmup: int = 3,
            label: str = "", clock: str = "wall") -> Timing:
    """Time ``fn(*args)``: ``warmup`` untimed calls, then ``Timer.blocked_autorange(min_run_time)``.

    ``threads``: torch intra-op threads for the measurement (``None`` keeps the current count); the
    previous count is restored afterwards, also when ``fn`` raises. Runs under ``torch.inference_mode``
    only if the caller does so; wrap ``fn`` yourself to time training-mode code.
    ``clock``: ``"wall"`` (default) or ``"thread"``, the CPU time of the calling thread, which leaves out
    the time the thread waits while other processes hold the core: on a shared machine it measures what
    a quiet core would take, exactly so for ``threads=1`` (OpenMP workers' time is not counted).

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
    use = before if threads is None else threads
    try:
        torch.set_num_threads(use)
        for _ in range(int(warmup)):
            fn(*args)
        timer = benchmark.Timer(stmt="fn(*args)", globals={"fn": fn, "args": args}, num_threads=use,
                                label=label or "measure", timer=CLOCKS[clock])
        m = timer.blocked_autorange(min_run_time=float(min_run_time))
    finally:
        torch.set_num_threads(before)
    times = list(m.times)
    return Timing(median=float(m.median), iqr=float(m.iqr), n=len(times), threads=use, label=label,
                  number_per_run=int(m.number_per_run), mean=float(sum(times) / len(times)),
                  times=tuple(float(t) for t in times))


def compare(fns: dict, *args, **kw) -> pd.DataFrame:
    """Time several callables on the same ``args``; one row each, ``ratio`` = first median / this median.

    ``ratio`` is the speed-up over the first entry (the baseline): 2.0 means twice as fast.
    Keyword arguments go to :func:`measure`.

    >>> import torch, hmf_lab as hl
    >>> x = torch.randn(4, 32)
    >>> df = hl.timing.compare({"a": torch.relu, "b": torch.tanh}, x, min_run_time=0.01)
    >>> list(df.columns), list(df["name"]), float(df["ratio"].iloc[0])
    (['name', 'median', 'iqr', 'ratio'], ['a', 'b'], 1.0)
    """
    if not isinstance(fns, dict) or not fns:
        raise TypeError(f"fns must be a non-empty dict name -> callable, got {type(fns).__name__} {fns!r}"[:200])
    if "label" in kw:
        raise TypeError("compare() takes labels from the keys of fns; do not pass label=")
    rows = []
    for name, fn in fns.items():
        t = measure(fn, *args, label=str(name), **kw)
        rows.append((str(name), t.median, t.iqr))
    df = pd.DataFrame(rows, columns=["name", "median", "iqr"])
    df["ratio"] = df["median"].iloc[0] / df["median"]
    return df
