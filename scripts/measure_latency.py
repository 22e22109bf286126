"""Measure how long the Explorer takes to update after a slider move (p50 / p95), headless.

Drives the widget's callbacks the way the browser does (setting ``slider.value`` fires the observer,
which recomputes every read-out and the block picture) and times each move end to end.

    .venv/bin/python scripts/measure_latency.py            # 1024x1024, 200 moves
    .venv/bin/python scripts/measure_latency.py --size 512 --moves 100

Reported separately: moves over cached spectra (the slider grid after ``precompute``), moves with the
compression lock on (two sliders move), and cold moves (no precompute: the first visit of a split
pays one SVD). Timing numbers depend on what else runs on the machine.
"""
from __future__ import annotations

import argparse
import random
import time

import numpy as np
import torch

import hmf_lab as hl


def _moves(ex, n_moves: int, rng: random.Random, lock: bool = False) -> list[float]:
    m, n = ex.shape
    out = []
    while len(out) < n_moves:
        before = len(ex.latencies)
        t0 = time.perf_counter()
        if len(out) % 2 == 0:
            ex.split.value = rng.choice(ex.splits[:-1])
        else:
            ex.rank.value = rng.randint(1, ex.rank.max)
        if len(ex.latencies) > before:  # count only moves that changed something (a snapped no-op is free)
            out.append(time.perf_counter() - t0)
    return out


def _report(name: str, lat: list[float]) -> str:
    a = np.array(lat) * 1e3
    return f"{name:<34} n={len(a):4d}  p50 {np.percentile(a, 50):7.2f} ms  p95 {np.percentile(a, 95):7.2f} ms  max {a.max():7.2f} ms"


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", type=int, default=1024)
    p.add_argument("--moves", type=int, default=200)
    p.add_argument("--threads", type=int, default=1, help="torch threads (default 1: the machine is shared)")
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    W = hl.synthetic.with_spectrum(a.size, a.size, "power", decay=0.5)
    rng = random.Random(0)

    t0 = time.perf_counter()
    ex = hl.explorer(W, timing=False, progress=False)
    print(f"{a.size}x{a.size}: explorer built with precompute in {time.perf_counter() - t0:.1f} s "
          f"({len(ex.splits)} split positions, {torch.get_num_threads()} torch thread(s))")
    print(_report("warm moves (cached spectra)", _moves(ex, a.moves, rng)))
    ex.lock.value = True
    print(_report("warm moves, compression locked", _moves(ex, a.moves, rng)))
    ex.lock.value = False
    t0 = time.perf_counter()
    ex.heuristic.value = "row_norm"  # one cold update, then the spectra fill in the background
    print(f"{'switch heuristic to row_norm':<34} {1e3 * (time.perf_counter() - t0):7.2f} ms (one cold update)")
    ex._warm_thread.join()
    print(_report("warm moves, row_norm (after fill)", _moves(ex, a.moves, rng)))
    ex.close()

    cold = hl.explorer(W, timing=False, precompute=False)
    lat = _moves(cold, min(a.moves, 2 * len(cold.splits)), rng)
    print(_report("cold moves (no precompute)", lat))
    cold.close()


if __name__ == "__main__":
    main()
