"""How long a full (split, rank) sweep of a 1024x1024 matrix takes, and a cached slider query.

Run:  .venv/bin/python benchmarks/sweep_speed.py [--size 1024] [--step 16] [--threads 2]

Target (issue 12; the foundation issue asked for 10 s): every split in steps of 16 and every rank of a
1024x1024 matrix in <= 3 s on this 2-core machine. One SVD (singular values only) per split gives the error of
every rank from tail sums of squared singular values; an ``HMFCache`` keeps them for sliders.
"""
from __future__ import annotations

import argparse

import torch

import hmf_lab as hl


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=1024)
    ap.add_argument("--step", type=int, default=16)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args(argv)
    W = torch.randn(args.size, args.size, generator=torch.Generator().manual_seed(0))
    splits = range(0, args.size + 1, args.step)

    def full_sweep():
        return hl.sweep(W, splits=splits)  # fresh cache: every SVD is computed

    cache = hl.HMFCache(W)
    hl.sweep(W, splits=splits, cache=cache)

    def cached_query():
        return cache.error(args.size // 4, args.size // 8)

    cells = len(full_sweep())
    t_full = hl.measure(full_sweep, min_run_time=0.1, warmup=0, threads=args.threads, label="full sweep")
    t_cached = hl.measure(cached_query, min_run_time=0.2, threads=args.threads, label="cached query")
    print(f"{args.size}x{args.size}, splits step {args.step}, all ranks: {cells} cells")
    print(f"  full sweep  : median {t_full.median:.2f} s (n={t_full.n}, threads={t_full.threads}); target <= 3 s")
    print(f"  cached query: median {t_cached.median * 1e6:.0f} us (what a slider move costs once swept)")


if __name__ == "__main__":
    main()
