"""The same layers in train() and eval() mode under ``torch.inference_mode``, side by side, and the explorer's
read-out against an independent measurement (issue 13).

Table 1: dense, HMF (balanced split), LMF and CSR layers of one matrix at 4x, each in train and in eval
mode, plus HMF as it ran in train mode before this change (the packed [D ; V] rebuilt on every call:
emulated here by clearing its cache before each call). Without autograd recording, train and eval
must take the same time now.

Table 2: ``hl.explorer(W).time_now()`` (the read-out a student sees) against ``hl.timing.race`` on
freshly built eval-mode layers in the same run, HMF's speed-up over dense in each, and the "before"
(train-mode) speed-up.

    python benchmarks/train_vs_eval.py                 # 1024x1024, 4x, batch 1, one thread
    python benchmarks/train_vs_eval.py --size 2048 --clock thread
"""
from __future__ import annotations

import argparse

import pandas as pd
import torch

import hmf_lab as hl
from hmf_lab.perf.timing import race
from hmf_lab.experiments.tradeoff import layers_at_budget


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", type=int, default=1024)
    p.add_argument("--compression", type=float, default=4.0)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--min-run-time", type=float, default=0.1)
    p.add_argument("--clock", choices=("wall", "thread"), default="wall")
    a = p.parse_args(argv)
    n = a.size
    W = hl.synthetic.with_spectrum(n, n, "exp", seed=0)  # timing does not depend on the values
    k, r = hl.choose_split_rank((n, n), a.compression)
    evals = layers_at_budget(W, k, r)  # eval mode
    trains = {name: m for name, m in layers_at_budget(W, k, r).items()}
    for m in trains.values():
        m.train()
    before = layers_at_budget(W, k, r)["HMF"].train()

    def old_train_path(x, h=before):
        h.clear_cache()  # what training mode did on every call before: rebuild the packed factors
        return h(x)

    fns = {}
    for name in evals:
        fns[f"{name} eval"] = evals[name]
        fns[f"{name} train"] = trains[name]
    fns["HMF train (before: rebuilt per call)"] = old_train_path
    x = torch.randn(1, n)
    res = race(fns, x, rounds=a.rounds, min_run_time=a.min_run_time, threads=1, clock=a.clock, inference=True)
    med = dict(zip(res.table["name"], res.table["median"]))
    rows = [dict(layer=name, eval_us=med[f"{name} eval"] * 1e6, train_us=med[f"{name} train"] * 1e6,
                 train_over_eval=med[f"{name} train"] / med[f"{name} eval"]) for name in evals]
    rows.append(dict(layer="HMF before (train mode rebuilt [D;V] per call)", eval_us=float("nan"),
                     train_us=med["HMF train (before: rebuilt per call)"] * 1e6,
                     train_over_eval=med["HMF train (before: rebuilt per call)"] / med["HMF eval"]))
    print(f"## {n}x{n} at {a.compression:g}x (HMF k={k}, r={r}), batch 1, {res.threads} thread, inference_mode, "
          f"clock={a.clock}")
    print(pd.DataFrame(rows).to_string(index=False, float_format=lambda v: f"{v:.3g}"))
    print(res.warning or "harness: timing looks reliable")

    ex = hl.explorer(W, split=k, rank=r, timing=False, precompute=False, timing_rounds=a.rounds,
                     min_run_time=a.min_run_time, progress=False, timing_clock=a.clock)
    shown = ex.time_now().set_index("name")
    ind = race({"dense": evals["dense"], "HMF": evals["HMF"], "HMF before": old_train_path}, x, rounds=a.rounds,
               min_run_time=a.min_run_time, threads=1, clock=a.clock, inference=True)
    im = dict(zip(ind.table["name"], ind.table["median"]))
    print(f"\n## HMF speed-up over dense, {n}x{n}, {a.compression:g}x, k={k}, r={r}: explorer vs independent")
    print(f"explorer read-out (time_now, eval-mode layers):  {shown.loc['HMF', 'ratio']:.2f}x "
          f"(ideal from bytes {shown.loc['HMF', 'ideal']:.2f}x)")
    print(f"independent race on fresh eval-mode layers:      {im['dense'] / im['HMF']:.2f}x")
    print(f"before: train-mode layers (the explorer's old path): {im['dense'] / im['HMF before']:.2f}x")
    print("explorer:", ex.timing_warning or "timing looks reliable")
    print("independent:", ind.warning or "timing looks reliable")
    ex.stop()


if __name__ == "__main__":
    main()
