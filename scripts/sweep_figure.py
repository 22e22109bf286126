"""Draw the error map of HMF over every (split, rank) of a 1024x1024 matrix -> docs/sweep_1024.png.

Run:  .venv/bin/python scripts/sweep_figure.py [--size 1024] [--step 16] [--out docs/sweep_1024.png]

The matrix has a power-law spectrum and uneven row norms (``hl.synthetic.heavy_tailed``), like
trained weights. Each split needs one SVD of its factorized block; every rank's error comes from
that block's tail energies (``hl.sweep``).
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

import hmf_lab as hl  # noqa: E402


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=1024)
    ap.add_argument("--step", type=int, default=16)
    ap.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[1] / "docs" / "sweep_1024.png")
    args = ap.parse_args(argv)
    W = hl.synthetic.heavy_tailed(args.size, args.size, alpha=0.5, seed=0)
    t0 = time.perf_counter()
    df = hl.sweep(W, splits=range(0, args.size + 1, args.step), heuristic="top", progress=True)
    took = time.perf_counter() - t0
    fig, (a, b) = plt.subplots(1, 2, figsize=(12, 4.8))
    hl.plots.error_map(df, ax=a, compressions=(2, 4, 8, 16))
    a.set_title(f"HMF relative error, {args.size}x{args.size} (heavy-tailed spectrum)")
    for c in (2, 4, 8):
        line = hl.budget(W.shape, c, step=args.step)
        errs = [df[(df.split == k) & (df["rank"] == r)]["error"].iloc[0] for k, r in zip(line.split, line["rank"])]
        b.plot(line.split, errs, marker=".", label=f"{c}x")
    b.set_xlabel("split k (dense rows), rank chosen to fill the budget")
    b.set_ylabel("relative error")
    b.set_title("along iso-compression lines (split 0 = LMF)")
    b.legend(title="compression")
    fig.tight_layout()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out, dpi=110)
    print(f"{len(df)} (split, rank) cells in {took:.1f} s -> {args.out}")


if __name__ == "__main__":
    main()
