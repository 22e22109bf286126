"""Numbers for the split-heuristics lab (issue 5): run `python scripts/heuristics_report.py [--quick] [--out DIR]`.

Prints markdown tables:
1. shipped trained weights at 4x and 8x: each matrix's error under "top" and under the best data-free built-in;
2. loud rows at random positions: best data-free built-in vs "top" (seeded family, several seeds);
3. inputs X concentrated in a few directions: output error of "activation" vs "top";
4. each heuristic's gap to the exhaustive oracle on small matrices;
5. a custom heuristic registered in 4 lines, ranked on the leaderboard.
Timings are wall-clock on whatever machine runs this (noisy on a shared one).
"""
from __future__ import annotations

import argparse
import os
from pathlib import Path

import numpy as np
import pandas as pd
import torch

import hmf_lab as hl
from hmf_lab.factor import synthetic as S
from hmf_lab.experiments.leaderboard import pretrained_matrices, summary

DATA_FREE = ["top", "random", "row_norm", "residual", "leverage", "greedy"]


def md(df: pd.DataFrame, floatfmt=".4f") -> str:
    df = df.copy()
    for c in df.columns:
        if df[c].dtype.kind == "f":
            df[c] = df[c].map(lambda v: format(v, floatfmt))
    head = "| " + " | ".join(map(str, df.columns)) + " |"
    sep = "|" + "|".join("---" for _ in df.columns) + "|"
    rows = ["| " + " | ".join(map(str, r)) + " |" for r in df.itertuples(index=False)]
    return "\n".join([head, sep, *rows])


def trained(quick: bool, gates: bool = False):
    mats = pretrained_matrices(gates=gates)
    if not mats:
        return None, "no shipped trained weights found (hl.models.PRETRAINED checkpoints missing in data/)"
    if quick:
        mats = dict(list(mats.items())[:2])
    df = hl.leaderboard(DATA_FREE, mats, [4, 8], progress=True)
    rows = []
    for (name, c), g in df.groupby(["matrix", "compression"], sort=False):
        g = g.set_index("heuristic")
        free = g.drop(index=[h for h in ("top", "random") if h in g.index])
        best = free["weight_error"].idxmin()
        rows.append((name, f"{g.m.iloc[0]}x{g.n.iloc[0]}", f"{c:g}x", g.loc["top", "weight_error"], best,
                     free.loc[best, "weight_error"], g.loc["top", "weight_error"] / free.loc[best, "weight_error"]))
    out = pd.DataFrame(rows, columns=["matrix", "shape", "compression", "top error", "best data-free",
                                      "its error", "top / best"])
    return out, df


def loud(quick: bool):
    """Loud rows at random positions: 256 x 192, planted rank 8, n_loud loud rows (10x the typical norm)."""
    seeds = range(2 if quick else 5)
    rows = []
    for n_loud in (8, 16, 24):
        for c in (4, 8):
            ratios, best_names, tops, bests = [], [], [], []
            for seed in seeds:
                W = S.loud_rows(256, 192, n_loud=n_loud, loudness=10.0, rank=8, noise=0.05, seed=seed)
                g = hl.leaderboard(DATA_FREE, {"W": W}, [c], progress=False).set_index("heuristic")
                free = g.drop(index=["top", "random"])
                best = free["weight_error"].idxmin()
                tops.append(g.loc["top", "weight_error"]); bests.append(free.loc[best, "weight_error"])
                ratios.append(tops[-1] / bests[-1]); best_names.append(best)
            rows.append((n_loud, f"{c}x", len(ratios), np.mean(tops), np.mean(bests),
                         "/".join(sorted(set(best_names))), min(ratios), float(np.median(ratios))))
    return pd.DataFrame(rows, columns=["loud rows", "compression", "seeds", "top error (mean)",
                                       "best data-free error (mean)", "best data-free", "top / best (min)",
                                       "top / best (median)"])


def activation(quick: bool):
    """Output error of top / greedy / activation: synthetic X (8 directions) and the trained LM's real inputs."""
    from hmf_lab.experiments.leaderboard import pretrained_inputs

    cases = []
    for name, W in {"heavy_tailed(256x192)": S.heavy_tailed(256, 192, seed=0),
                    "low_rank_noise(256x192)": S.low_rank_noise(256, 192, rank=16, noise=0.3, seed=0),
                    "loud_rows(256x192)": S.loud_rows(256, 192, seed=0)}.items():
        cases.append((name, W, S.concentrated_inputs(1024, W.shape[1], directions=8, noise=0.01, seed=1),
                      "synthetic: 8 directions + 1% noise"))
    mats = pretrained_matrices()
    for name, W in list(mats.items())[: (1 if quick else len(mats))]:
        cases.append((name, W, S.concentrated_inputs(1024, W.shape[1], directions=8, noise=0.01, seed=1),
                      "synthetic: 8 directions + 1% noise"))
    real = pretrained_inputs("char_lm", length=1024 if quick else 4096)
    for name, X in real.items():
        if name in mats:
            cases.append((name, mats[name], X, f"real activations ({X.shape[0]} tokens)"))
    rows = []
    for name, W, X, kind in cases:
        df = hl.leaderboard(["top", "greedy", "activation"], {name: W}, [4, 8], X=X, progress=False)
        for c, g in df.groupby("compression"):
            g = g.set_index("heuristic")
            rows.append((name, kind, f"{c:g}x", g.loc["top", "output_error"], g.loc["greedy", "output_error"],
                         g.loc["activation", "output_error"],
                         g.loc["top", "output_error"] / g.loc["activation", "output_error"]))
    return pd.DataFrame(rows, columns=["matrix", "inputs X", "compression", "top output err",
                                       "greedy output err", "activation output err", "top / activation"])


def oracle_gaps(quick: bool):
    n_mats = 12 if quick else 30
    gaps = {h: [] for h in [*DATA_FREE, "activation"]}
    for seed in range(n_mats):
        fam = seed % 3
        W = (S.loud_rows(14, 10, n_loud=2, rank=3, seed=seed) if fam == 0 else
             S.heavy_tailed(14, 10, seed=seed) if fam == 1 else S.low_rank_noise(14, 10, rank=3, noise=0.3, seed=seed))
        for k, r in [(2, 2), (4, 2), (3, 3)]:
            best = hl.oracle(W, k, r)
            for h in DATA_FREE:
                gaps[h].append(best.gap(hl.hmf(W, k, r, heuristic=h)))
            X = S.concentrated_inputs(200, 10, directions=3, seed=seed)
            best_out = hl.oracle(W, k, r, X=X)
            gaps["activation"].append(best_out.gap(hl.hmf(W, k, r, heuristic="activation", X=X)))
    rows = [(h, "output" if h == "activation" else "weight", np.mean(g), np.median(g), np.max(g),
             100 * np.mean(np.asarray(g) < 1e-9)) for h, g in gaps.items()]
    return pd.DataFrame(rows, columns=["heuristic", "objective", "mean gap", "median gap", "max gap",
                                       "% optimal"]).sort_values("mean gap")


def custom():
    # --- a custom heuristic in 4 lines ---------------------------------------------------------
    @hl.register_heuristic("loudest_outside", overwrite=True)
    def loudest_outside(W, split, *, rank, X=None):
        V = torch.linalg.svd(W, full_matrices=False)[2][:rank]  # top-r right singular vectors
        return torch.topk(W.norm(dim=1) + (W - W @ V.T @ V).norm(dim=1), split).indices
    # ---------------------------------------------------------------------------------------------
    df = hl.leaderboard(["top", "row_norm", "greedy", "loudest_outside"], S.suite(quick=True), [4, 8], progress=False)
    del hl.HEURISTICS["loudest_outside"]
    return summary(df, by="vs_best").reset_index()


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer seeds and matrices")
    ap.add_argument("--out", type=Path, help="also write CSVs here")
    ap.add_argument("--gates", action="store_true", help="table 1 per LSTM gate block (as hl.compress does)")
    ap.add_argument("--sections", type=int, nargs="+", default=[1, 2, 3, 4, 5], help="which tables (1-5)")
    args = ap.parse_args()
    want = set(args.sections)
    torch.set_num_threads(min(2, os.cpu_count() or 1))
    parts = {}
    if 1 in want:
        print("## 1. Shipped trained weights: error under top vs the best data-free built-in\n")
        t, full = trained(args.quick, args.gates)
        if t is None:
            print(full, "\n")
        else:
            print(md(t), "\n")
            parts["trained"], parts["trained_full"] = t, full
            print("All data-free heuristics, geometric mean of error / best, over the trained matrices:\n")
            print(md(summary(full).reset_index()), "\n")
            tm = full.groupby("heuristic")["time_s"].median().sort_values().reset_index()
            print("Median time to select rows and fit (s; wall clock, noisy on a shared machine):\n")
            print(md(tm, floatfmt=".3f"), "\n")
    if 2 in want:
        print("## 2. Loud rows at random positions (256x192, planted rank 8, noise 5%): best data-free built-in vs top\n")
        parts["loud"] = loud(args.quick)
        print(md(parts["loud"]), "\n")
    if 3 in want:
        print("## 3. Output error: activation vs top, inputs concentrated in a few directions (and real LM activations)\n")
        parts["activation"] = activation(args.quick)
        print(md(parts["activation"]), "\n")
    if 4 in want:
        print("## 4. Gap to the exhaustive oracle (14x10 matrices, 3 families, (k, r) in {(2,2), (4,2), (3,3)})\n")
        parts["oracle"] = oracle_gaps(args.quick)
        print(md(parts["oracle"]), "\n")
    if 5 in want:
        print("## 5. A custom heuristic registered in 4 lines, on the leaderboard (synthetic quick suite)\n")
        parts["custom"] = custom()
        print(md(parts["custom"]), "\n")
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        for k, v in parts.items():
            v.to_csv(args.out / f"{k}.csv", index=False)


if __name__ == "__main__":
    main()
