"""Uniform vs greedy allocation on the shipped char LM (issue 19, part 3).

For LMF, HMF and pruning at 8x and 16x: the per-matrix compression, split/rank and error of
``allocate="uniform"`` (every gate block and the decoder at c) and ``allocate="greedy"`` (the same total
stored values spread by :mod:`hmf_lab.factor.allocate`), the totals, and the bits per character right after
compression (no fine-tuning; validation text). Calibration X: 8 x 1024 training characters (``--no-x``: the
weight-error allocation instead). Deterministic.

    HMF_LAB_DATA=... python scripts/allocate_char_lm.py [--no-x] [--methods lmf hmf prune] [--c 8 16]
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
