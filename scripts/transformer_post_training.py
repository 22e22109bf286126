"""Post-training results on the two shipped transformers (issue 20, part 4): `python scripts/transformer_post_training.py`.

Dense, HMF (rows), HMF (columns), LMF, activation-aware LMF, Wanda and OATS at 1.5x, 2x, 3x and 4x on
``char_tf`` (validation bits/char) and ``intent_tf`` (test accuracy), 3 calibration draws (seeds), no
fine-tuning (:mod:`hmf_lab.experiments.posttrain`). Writes ``cells.csv`` and ``results.md`` (mean ± sd, paired
difference vs LMF and vs OATS) to ``--out`` (default ``hmf_lab/assets/results/transformers/``, where the
shipped run is, with its README). One torch thread. ``--quick`` (or ``HMF_LAB_QUICK=1``): tiny
evaluation sets, one seed, 2x only. ``--fine-tune-steps N`` (default 0): the short fine-tuning variant,
every compressed model and the dense control fine-tuned N steps before evaluation (regime ``post+ft``,
tables apart from the no-fine-tuning ones).
"""
from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import pandas as pd
import torch

from hmf_lab.experiments.posttrain import POST_METHODS, post_training_cells, post_training_tables
from hmf_lab.nlp.checkpoints import assets_dir


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--task", nargs="+", default=["char_tf", "intent_tf"])
    p.add_argument("--methods", nargs="+", default=list(POST_METHODS))
    p.add_argument("--compression", nargs="+", type=float, default=None)
    p.add_argument("--seeds", type=int, default=None)
    p.add_argument("--fine-tune-steps", type=int, default=0,
                   help="fine-tuning steps after compression, dense too (default 0: none)")
    p.add_argument("--fine-tune-lr", type=float, default=None,
                   help="learning rate of the fine-tuning (default: the task's post_lr, 0.002)")
    p.add_argument("--quick", action="store_true", default=os.environ.get("HMF_LAB_QUICK") == "1")
    p.add_argument("--out", type=Path, default=assets_dir() / "results" / "transformers")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    cs = args.compression or ([2.0] if args.quick else [1.5, 2.0, 3.0, 4.0])
    seeds = args.seeds or (1 if args.quick else 3)
    t0 = time.time()
    df = pd.concat([post_training_cells(t, args.methods, cs, seeds, quick=args.quick, progress=True,
                                        fine_tune_steps=args.fine_tune_steps, fine_tune_lr=args.fine_tune_lr)
                    for t in args.task], ignore_index=True)
    args.out.mkdir(parents=True, exist_ok=True)
    df.to_csv(args.out / "cells.csv", index=False)
    md = post_training_tables(df)
    (args.out / "results.md").write_text(md + f"\nWall time {time.time() - t0:.0f} s, one torch thread.\n")
    print(md)
    return df


if __name__ == "__main__":
    main()
