"""The decisive run of issue 19: the char LM trained from scratch for the dense parent's full budget, at the
paper's compressions, every method under the greedy (whole-model) allocation, 3 seeds; plus a trained split
sweep at 16x.

Every cell is one :class:`hmf_lab.experiments.pipeline.Cell` (regime ``scratch``, ``allocate="greedy"``,
``steps`` = the shipped model's 2600), run by the one pipeline on one torch thread and seeded, so a cell's
result does not depend on ``--jobs`` or on what ran beside it. Cells run **seed-major** (all of seed 0, then
seed 1, ...; the sweep after the main table's seeds), so an interrupted run holds complete comparisons for its
first seeds; the same command resumes
(finished cells are reused: :mod:`hmf_lab.experiments.runs`), and ``--report`` writes the tables of whatever
cells the folder holds.

- rows: dense (the same recipe, no compression), LMF, HMF by columns, pruning (gradual, Zhu & Gupta) and HMF
  by rows, each with the greedy allocation solved once on the **shipped, trained** model with calibration
  inputs from the training text (:func:`hmf_lab.experiments.pipeline.greedy_table`), then trained from
  initialization. Where HMF's greedy allocation equals LMF's point for point (the solver keeps no dense row),
  the HMF row is LMF's cells relabelled, not retrained: the two models would be the same structure.
- the split sweep at 16x: HMF with each matrix at its greedy budget and its split at a fraction of the largest
  split fitting that budget (``hmf@0.5+greedy``...); fraction 0 is the LMF structure.
- the bar for "converged": dense from scratch against the shipped model's bits per character (within 2%).

    HMF_LAB_DATA=... python scripts/converged_lm.py --out data/results/converged_lm --jobs 2
    HMF_LAB_DATA=... python scripts/converged_lm.py --out data/results/converged_lm --report   # tables only

``--quick`` (or HMF_LAB_QUICK=1): a few steps per cell, for tests.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import pandas as pd

from hmf_lab.experiments import grid as G
from hmf_lab.experiments.pipeline import Cell, greedy_table, run_cell
from hmf_lab.experiments.runs import RunFolder, run_id
from hmf_lab.factor._validation import quick_mode

METHODS = ("lmf", "hmf_col", "prune", "hmf")
COMPRESSIONS = (8.0, 16.0, 25.0)
SWEEP_C, SWEEP_FRACS = 16.0, (0.25, 0.5, 1.0)
STEPS = 2600   # the shipped char LM's training steps (hl.tasks.LMTask.base_cfg)


def same_structure(a: pd.DataFrame, b: pd.DataFrame) -> bool:
    """Do two allocation tables build the same structure (per matrix: stored values, split 0 or none, rank)?"""
    def key(t):
        return [(r["layer"], r["matrix"], int(r["stored"]), int(r["split"] or 0) if r["split"] == r["split"] else 0,
                 int(r["rank"]) if r["rank"] == r["rank"] and r["rank"] is not None else None)
                for r in t.to_dict("records")]
    return key(a) == key(b)


def plan(seeds: int, quick: bool, steps: int) -> tuple[list[Cell], dict]:
    """The cells, seed-major, and the HMF rows that are LMF's relabelled ({compression: True})."""
    kw = dict(quick=quick, steps=steps, allocate="greedy")
    relabel = {}
    for c in COMPRESSIONS:
        h = greedy_table(Cell("lm", "scratch", "hmf", c, **kw))
        lm = greedy_table(Cell("lm", "scratch", "lmf", c, **kw))
        relabel[c] = same_structure(h, lm)
    cells = []
    for seed in range(seeds):
        cells.append(Cell("lm", "scratch", "dense", 1.0, seed, quick=quick, steps=steps))
        for m in METHODS:
            for c in COMPRESSIONS:
                if m == "hmf" and relabel[c]:
                    continue
                cells.append(Cell("lm", "scratch", m, c, seed, **kw))
    for seed in range(seeds):   # the sweep after every seed of the main table
        cells += [Cell("lm", "scratch", "hmf", SWEEP_C, seed, split_frac=f, **kw) for f in SWEEP_FRACS]
    return cells, relabel


def with_relabelled(df: pd.DataFrame, relabel: dict) -> pd.DataFrame:
    """Add the HMF rows that are LMF's cells (same structure), marked ``relabelled_from``."""
    extra = []
    for c, same in relabel.items():
        if same:
            rows = df[(df.label == "lmf+greedy") & (df.compression == float(c))]
            extra.append(rows.assign(method="hmf", label="hmf+greedy", relabelled_from="lmf+greedy"))
    return pd.concat([df, *extra], ignore_index=True) if extra else df


def report(df: pd.DataFrame, shipped: float, out: Path) -> str:
    """The converged table (mean ± sd per row and compression), HMF − LMF with the paired test, the sweep."""
    s = G.summarize(df)
    lines = [f"dense from scratch vs the shipped model ({shipped:.3f} bits/char): "]
    d = df[df.label == "dense"]["value"]
    if len(d):
        lines[0] += (f"{d.mean():.3f} ± {d.std(ddof=1) if len(d) > 1 else 0:.3f} over {len(d)} seeds "
                     f"({100 * (d.mean() / shipped - 1):+.1f}%)")
    main = s[~s.label.str.contains("@")]
    table = main.assign(v=[f"{m:.3f} ± {sd:.3f} (n={int(n)})" for m, sd, n in zip(main["mean"], main.sd, main.n)])
    wide = table.pivot_table(index="label", columns="compression", values="v", aggfunc="first")
    wide.columns = [f"{c:g}x" for c in wide.columns]
    lines += ["", "bits per character (lower is better), mean ± sd over seeds:", "", wide.to_markdown()]
    comps = []
    for lab in ("hmf+greedy", "hmf_col+greedy", "prune+greedy"):
        cmp_ = G.hmf_vs_lmf(df, lab, "lmf+greedy")
        if len(cmp_):
            comps.append(cmp_)
    if comps:
        c = pd.concat(comps, ignore_index=True)
        lines += ["", "against LMF (greedy), % of LMF's mean, positive = better than LMF; paired t-test at 5%:", "",
                  c[["hmf", "compression", "pct", "diff_mean", "diff_sd", "n", "inside_noise"]].to_markdown(
                      index=False, floatfmt=".3f")]
    sw = df[(df.compression == SWEEP_C) & (df.label.str.startswith("hmf@") | (df.label == "lmf+greedy"))]
    if len(sw):
        sws = G.summarize(sw)[["label", "mean", "sd", "n"]]
        lines += ["", f"split sweep at {SWEEP_C:g}x (each matrix at its greedy budget, split = fraction of the "
                      f"largest that fits; lmf+greedy = fraction 0):", "", sws.to_markdown(index=False, floatfmt=".3f")]
    text = "\n".join(lines) + "\n"
    (out / "results.md").write_text(text)
    return text


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--steps", type=int, default=None, help=f"training steps per cell (default {STEPS}; quick: 4)")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--report", action="store_true", help="write the tables of the cells the folder holds; run none")
    args = ap.parse_args(argv)
    quick = bool(args.quick or quick_mode())
    steps = args.steps if args.steps is not None else (4 if quick else STEPS)
    cells, relabel = plan(args.seeds, quick, steps)
    cfg = dict(script="converged_lm", seeds=args.seeds, quick=quick, steps=steps, methods=METHODS,
               compressions=COMPRESSIONS, sweep=[SWEEP_C, SWEEP_FRACS])
    folder = RunFolder(args.out)
    rid = run_id(cfg)
    shipped = run_cell(Cell("lm", "post", "dense", 1.0, quick=quick))["value"]
    if not args.report:
        folder.claim(rid, info=dict(cfg, command=" ".join(sys.argv)))
        reuse = folder.start()
        print(f"{len(cells)} cells ({sum(k in reuse for k in map(G.cell_key, cells))} already done); HMF rows "
              f"relabelled from LMF (same structure) at {[c for c, s in relabel.items() if s]}", flush=True)
        t0, load0 = time.time(), os.getloadavg()
        try:
            rows = G.run_cells(cells, jobs=args.jobs, progress=True, log_file=folder.partial, reuse=reuse)
        except KeyboardInterrupt:
            print(f"interrupted; kept {len(folder.completed())} cells in {folder.partial}", file=sys.stderr)
            return 130
        folder.finish({r["cell_key"] for r in rows},
                      dict(cfg, wall_s=round(time.time() - t0, 1), loadavg_start=load0, loadavg_end=os.getloadavg(),
                           shipped_bits_per_char=shipped, relabelled=[c for c, s in relabel.items() if s]))
    done = folder.completed()
    keys = {G.cell_key(c) for c in cells}
    df = pd.DataFrame([r for k, r in done.items() if k in keys])
    if not len(df):
        print("no finished cells yet")
        return 0
    df = with_relabelled(df, relabel)
    df.to_csv(args.out / "cells.csv", index=False)
    print(report(df, shipped, args.out))
    print(f"{len(done)} of {len(cells)} cells finished", json.dumps({"folder": str(args.out)}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
