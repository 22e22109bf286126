"""The decisive run of issue 19: the char LM trained from scratch for the dense parent's full budget (2600 steps)
at 8x, 16x and 25x, dense / LMF / HMF by columns / pruning / HMF by rows, every method under the greedy
allocation, 3 seeds; plus a trained split sweep at 16x (:mod:`hmf_lab.experiments.fair_test` says what each row is).

Every cell runs on one torch thread and seeds itself, so a result does not depend on ``--jobs`` or on what ran
beside it. Cells run seed-major (the sweep last), so an interrupted run holds complete comparisons for its first
seeds; the same command resumes (finished cells are reused: :mod:`hmf_lab.experiments.runs`; a cell's key
includes ``hmf_lab/experiments/pipeline.py``'s source, so resume with the code that started the run), and
``--report`` writes the tables of whatever cells the folder holds.

    HMF_LAB_DATA=... python scripts/converged_lm.py --out hmf_lab/assets/results/converged_lm --jobs 2
    HMF_LAB_DATA=... python scripts/converged_lm.py --out hmf_lab/assets/results/converged_lm --report

``--quick`` (or HMF_LAB_QUICK=1): a few steps per cell, for tests.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import pandas as pd

from hmf_lab.experiments import fair_test as F
from hmf_lab.experiments import grid as G
from hmf_lab.experiments.pipeline import Cell, run_cell
from hmf_lab.experiments.runs import RunFolder, run_id
from hmf_lab.factor._validation import quick_mode


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--steps", type=int, default=None, help=f"training steps per cell (default {F.STEPS}; quick: 4)")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--report", action="store_true", help="write the tables of the cells the folder holds; run none")
    args = ap.parse_args(argv)
    if args.seeds < 1 or args.jobs < 1:
        ap.error(f"--seeds and --jobs must be >= 1, got {args.seeds} and {args.jobs}")
    quick = bool(args.quick or quick_mode())
    steps = args.steps if args.steps is not None else (4 if quick else F.STEPS)
    cells, relabel = F.plan(args.seeds, quick, steps)
    cfg = dict(script="converged_lm", seeds=args.seeds, quick=quick, steps=steps, methods=F.METHODS,
               compressions=F.COMPRESSIONS, sweep=[F.SWEEP_C, F.SWEEP_FRACS])
    folder = RunFolder(args.out)
    shipped = run_cell(Cell("lm", "post", "dense", 1.0, quick=quick))["value"]
    if not args.report:
        folder.claim(run_id(cfg), info=dict(cfg, command=" ".join(sys.argv)))
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
    keys = {G.cell_key(c) for c in cells}
    df = pd.DataFrame([r for k, r in folder.completed().items() if k in keys])
    if not len(df):
        print("no finished cells yet")
        return 0
    finished = len(df)
    df = F.with_relabelled(df, relabel)
    df.assign(shipped_bits_per_char=shipped).to_csv(args.out / "cells.csv", index=False)
    text = F.report(df, shipped)
    (args.out / "results.md").write_text(text)
    print(text)
    print(f"{finished} of {len(cells)} cells finished in {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
