"""Never slower than dense: every shipped model x method x compression, end-to-end speed relative to dense.

    python benchmarks/never_slower.py [--models char_lm intent translation] [--compressions 2 4 8 16]
                                      [--min-run-time 1.0] [--rounds 5] [--out hmf_lab/assets/results/speed]

For each shipped model (``hl.models.load_pretrained``) and method ("hmf", "lmf", "prune" as CSR modules)
at each compression, the layers ``hmf-lab reproduce`` compresses are compressed, ``hl.engines.choose``
picks each layer's fastest correct engine on the task's timing input (batch 1, 1 thread) and confirms
it on the whole model (falling back to ``reconstructed`` where it does not pay), and then the
dense model, the compressed model on its default engines (factorized / CSR) and the compressed model on
the chosen engines are timed end to end in interleaved rounds (thread CPU clock, 1 thread). ``speed`` =
dense median / chosen median (>= 0.95 is the target); ``speed_default`` the same without the chooser.
Writes ``never_slower.csv`` and ``never_slower.md`` (with the load average before and after) to ``--out``.
Timing does not depend on the weight values, but the inputs are the tasks' real timing inputs when the
data sets are available (else seeded random ids of the same lengths, said in the output).
"""
from __future__ import annotations

import argparse
import copy
import os
import sys
import time
import warnings
from pathlib import Path

import pandas as pd
import torch

import hmf_lab as hl
from hmf_lab.perf.engines import compare_models, load_note, summary
from hmf_lab.experiments.pipeline import compressed_layers

MODELS = ("char_lm", "intent", "translation")
FALLBACK_LENGTHS = {"char_lm": (128,), "intent": (10,), "translation": (12, 11)}


def timing_inputs(name: str, model) -> tuple[tuple, str]:
    """The task's batch-1 timing input (``task.sample_input()``), or seeded random ids of typical lengths."""
    try:
        task = hl.tasks.task_class(name).pretrained()[0]  # ids in the checkpoint's vocabulary
        inputs = task.sample_input()
        return inputs, "task.sample_input()"
    except Exception as e:  # no data here: lengths are what matter for time
        g = torch.Generator().manual_seed(0)
        embs = [m for m in model.modules() if isinstance(m, torch.nn.Embedding)]
        inputs = tuple(torch.randint(3, embs[min(i, len(embs) - 1)].num_embeddings, (1, n), generator=g)
                       for i, n in enumerate(FALLBACK_LENGTHS[name]))
        return inputs, f"seeded random ids (data unavailable: {type(e).__name__})"


def run(models=MODELS, compressions=(2, 4, 8, 16), methods=("hmf", "lmf", "prune"), min_run_time=1.0,
        rounds=5, choose_time=0.15, log=print) -> tuple[pd.DataFrame, dict]:
    torch.set_num_threads(1)
    rows, notes = [], {}
    for name in models:
        model = hl.models.load_pretrained(name).eval()
        inputs, source = timing_inputs(name, model)
        notes[name] = f"{name}: input {[tuple(x.shape) for x in inputs]} from {source}"
        layers = compressed_layers(model)
        dense_params = hl.count_params(model)
        twin = copy.deepcopy(model).eval()  # the control: dense against itself shows the noise of this run
        for method in methods:
            for c in compressions:
                cm = hl.compress(model, method, c, layers=layers, sparse=method == "prune").eval()
                default = copy.deepcopy(cm).eval()
                hl.engines.clear_cache()
                table = hl.engines.choose(cm, *inputs, min_run_time=choose_time, rounds=3)
                s = summary(table)
                res = compare_models({"dense": model, "dense twin": twin, "default": default, "chosen": cm}, *inputs,
                                     min_run_time=min_run_time, rounds=rounds).set_index("name")
                row = {"model": name, "method": method, "compression": c,
                       "actual_compression": round(dense_params / hl.count_params(cm), 3),
                       "speed": res.loc["chosen", "speedup"], "speed_default": res.loc["default", "speedup"],
                       "control": res.loc["dense twin", "speedup"],
                       "engines": ", ".join(f"{l}:{e}" for l, e in zip(s["layer"], s["engine"]))
                       + f" ({table.attrs['end_to_end']['decision']})",
                       "dense_us": res.loc["dense", "median_us"], "chosen_us": res.loc["chosen", "median_us"],
                       "chosen_iqr_us": res.loc["chosen", "iqr_us"], "dense_iqr_us": res.loc["dense", "iqr_us"],
                       "default_us": res.loc["default", "median_us"],
                       "unreliable": bool(res["unreliable"].any()), "load1": os.getloadavg()[0]}
                rows.append(row)
                log(f"{name:12s} {method:6s} {c:>3}x  speed {row['speed']:.2f}x (default {row['speed_default']:.2f}x, "
                    f"control {row['control']:.2f}x)"
                    f"  {row['engines']}")
    return pd.DataFrame(rows), notes


def to_markdown(df: pd.DataFrame, notes: dict, before: str, after: str, seconds: float, cmd: str) -> str:
    lines = ["# Never slower than dense: compressed shipped models, end to end, batch 1, 1 thread", "",
             f"Command: `{cmd}` ({seconds:.0f} s). Before: {before}. After: {after}.",
             "Clock: thread CPU time (`hl.timing.measure(clock='thread')`), interleaved rounds of dense / default"
             " engines / chosen engines; medians of the pooled blocks.",
             "`speed` = dense median / compressed median with `hl.engines.choose`'s engines; `speed_default` ="
             " the same on the default engines (factorized, CSR). Target: speed >= 0.95.",
             "`control` = dense median / the median of an identical copy of the dense model timed in the same rounds:"
             " how far 1.00 this run's noise alone moves a ratio. A row below 0.95 whose distance from 1 is within"
             " the largest control deviation of its model is marked *(noise)*; a row whose engines are all"
             " `reconstructed` runs dense's own kernels on W_hat.", ""]
    lines += [f"- {v}" for v in notes.values()]
    lines += ["", "| model | method | compression | actual | speed | control | speed_default | engines | dense_us | "
                  "chosen_us (IQR) |", "|---|---|---|---|---|---|---|---|---|---|"]
    noise = (df["control"] - 1).abs().groupby(df["model"]).transform("max")
    low = df["speed"] < 0.95
    in_noise = low & ((1 - df["speed"]) <= noise)
    for r, n in zip(df.itertuples(), in_noise):
        mark = (" **< 0.95** *(noise)*" if n else " **< 0.95**") if r.speed < 0.95 else ""
        lines.append(f"| {r.model} | {r.method} | {r.compression} | {r.actual_compression:.2f} | {r.speed:.2f}{mark} | "
                     f"{r.control:.2f} | {r.speed_default:.2f} | {r.engines} | {r.dense_us:.0f} | {r.chosen_us:.0f} "
                     f"({r.chosen_iqr_us:.0f}) |")
    lines += ["", f"Rows below 0.95x: {int(low.sum())} of {len(df)} ({int(in_noise.sum())} of them within the dense-twin "
              f"control's deviation); minimum speed {df['speed'].min():.2f}x, median {df['speed'].median():.2f}x; "
              f"control (dense vs its copy) from {df['control'].min():.2f}x to {df['control'].max():.2f}x."]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS)
    p.add_argument("--compressions", nargs="+", type=float, default=[2, 4, 8, 16])
    p.add_argument("--methods", nargs="+", default=["hmf", "lmf", "prune"], choices=["hmf", "lmf", "prune"])
    p.add_argument("--min-run-time", type=float, default=1.0, help="seconds per model, over all rounds")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--out", default="hmf_lab/assets/results/speed")
    a = p.parse_args(argv)
    warnings.filterwarnings("ignore")
    comps = [int(c) if float(c).is_integer() else c for c in a.compressions]
    before, t0 = load_note(), time.time()
    df, notes = run(a.models, comps, a.methods, a.min_run_time, a.rounds)
    seconds, after = time.time() - t0, load_note()
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    df.to_csv(out / "never_slower.csv", index=False)
    cmd = "python benchmarks/never_slower.py " + " ".join(argv if argv is not None else sys.argv[1:])
    (out / "never_slower.md").write_text(to_markdown(df, notes, before, after, seconds, cmd.strip()))
    print((out / "never_slower.md").read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
