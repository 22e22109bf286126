"""Uniform vs greedy allocation on the shipped char LM (issue 19, part 3).

For LMF, HMF and pruning at 8x and 16x: the per-matrix compression, split/rank and error of
``allocate="uniform"`` (every gate block and the decoder at c) and ``allocate="greedy"`` (the same total
stored values spread by :mod:`hmf_lab.factor.allocate`), the totals, and the bits per character right after
compression (no fine-tuning; validation text). Calibration X: 8 x 1024 training characters (``--no-x``: the
weight-error allocation instead). Deterministic.

    HMF_LAB_DATA=... python scripts/allocate_char_lm.py [--no-x] [--methods lmf hmf prune] [--c 8 16]

Measured (one thread, dense 2.175 bits/char in this evaluation; with X; per matrix: ih_l0 / hh_l0 /
decoder compression and rank; total = the summed squared relative output error, the solver's objective):

    method c    rule     stored/budget  ih_l0       hh_l0       decoder     total  bits/char
    lmf    8x   uniform  42374/43040    8.5x r6     8.0x r16    8.6x r6     2.430  5.057
    lmf    8x   greedy   42756/43040    2.8x r18    14.2x r9    13.0x r4    1.375  4.589
    lmf    16x  uniform  21187/21520    17.1x r3    16.0x r8    17.3x r3    3.638  5.982
    lmf    16x  greedy   21508/21520    4.7x r11    42.7x r3    13.0x r4    2.526  5.802
    hmf    8x   uniform  42048/43040    8.5x 0/6    8.1x 6/13   8.7x 5/2    1.880  5.067
    hmf    8x   greedy   42951/43040    2.7x 0/19   16.0x 0/8   7.4x 0/7    0.862  4.095
    hmf    16x  uniform  21067/21520    17.1x 0/3   16.1x 6/5   17.3x 0/3   3.073  6.022
    hmf    16x  greedy   21508/21520    4.7x 0/11   42.7x 0/3   13.0x 0/4   1.806  5.112
    prune  8x   uniform  43040/43040    8.0x        8.0x        8.0x        3.493  4.663
    prune  8x   greedy   42860/43040    3.4x        16.0x       2.4x        2.915  3.691
    prune  16x  uniform  21520/21520    16.0x       16.0x       16.0x       5.245  5.552
    prune  16x  greedy   21413/21520    5.7x        38.1x       5.7x        4.497  4.435

(HMF split/rank as k/r.) Without X (weight error), LMF: 8x 5.057 -> 4.334, 16x 5.982 -> 5.832 bits/char.
"""
from __future__ import annotations

import argparse

import torch

import hmf_lab as hl
from hmf_lab.nlp.tasks import LMTask
from hmf_lab.nn.compress import allocation, allocation_plan

COLS = ["layer", "matrix", "shape", "blocks", "budget", "stored", "compression", "split", "rank", "rel_error"]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--no-x", action="store_true", help="allocate by weight error (no calibration inputs)")
    ap.add_argument("--methods", nargs="+", default=["lmf", "hmf", "prune"])
    ap.add_argument("--c", nargs="+", type=float, default=[8, 16])
    ap.add_argument("--no-eval", action="store_true", help="skip the bits-per-character evaluation")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    task, model = LMTask.pretrained()
    X = None if args.no_x else task.train_ids[:8192].reshape(8, 1024)
    ev = (lambda m: task.evaluate(m)["bits_per_char"]) if not args.no_eval else (lambda m: float("nan"))
    print(f"dense bits/char {ev(model):.3f}; allocation by {'weight' if X is None else 'output'} error")
    pd_opts = {"float_format": lambda v: f"{v:.3f}"}
    for c in args.c:
        for method in args.methods:
            uni = allocation_plan(model, method, c, allocate="uniform", X=X)
            small = hl.compress(model, method, compression=c, allocate="greedy", X=X)
            gre = allocation(small)
            u_model = hl.compress(model, method, compression=c, X=X if hl.get_method(method).takes_heuristic
                                  else None)
            for rule, t, m in (("uniform", uni, u_model), ("greedy", gre, small)):
                a = t.attrs
                ranks = t["rank"].dropna()
                print(f"\n== {method} {c:g}x {rule}: stored {a['stored']} / budget {a['budget']} "
                      f"(model compression {a['compression']:.2f}), total error {a['error']:.3f}, "
                      f"smallest rank {int(ranks.min()) if len(ranks) else '-'}, bits/char {ev(m):.3f}")
                print(t[COLS].to_string(index=False, **pd_opts))


if __name__ == "__main__":
    main()
