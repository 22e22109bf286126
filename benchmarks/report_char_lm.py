"""``hl.report`` on the shipped char_lm: the per-layer table, the recommended plan at 4x, its speed and metric.

    python benchmarks/report_char_lm.py [--target 4] [--eval-chars 20000] [--out hmf_lab/assets/results/speed]

Calibration inputs X: 8 windows of 128 characters from the training split (seeded). The plan's model and,
for reference, every uniform 4x model (HMF, LMF, pruning as CSR) are evaluated with the char_lm task's
evaluation (bits per character on the first ``--eval-chars`` validation characters, no fine-tuning) and
timed end to end against dense (the task's timing input, batch 1, 1 thread, thread CPU clock,
interleaved rounds) on the engines ``hl.engines.choose`` picks. Writes ``report_char_lm.{csv,md}``.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from pathlib import Path

import torch

import hmf_lab as hl
from hmf_lab.perf.engines import compare_models, load_note


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--target", type=float, default=4)
    p.add_argument("--compressions", nargs="+", type=int, default=[2, 4, 8])
    p.add_argument("--eval-chars", type=int, default=20000)
    p.add_argument("--min-run-time", type=float, default=0.6)
    p.add_argument("--out", default="hmf_lab/assets/results/speed")
    a = p.parse_args(argv)
    warnings.filterwarnings("ignore")
    torch.set_num_threads(1)
    before, t0 = load_note(), time.time()
    task, model = hl.models.LMTask.pretrained(eval_chars=a.eval_chars)  # ids in the checkpoint's vocabulary
    g = torch.Generator().manual_seed(0)
    starts = torch.randint(0, task.train_ids.numel() - 129, (8,), generator=g)
    X = torch.stack([task.train_ids[s:s + 128] for s in starts.tolist()])  # (8, 128)
    rep = hl.report(model, a.compressions, X=X)
    plan = rep.plan(a.target)
    models = {"dense": model, f"plan {a.target:g}x": hl.report_apply_plan(model, plan)}
    for method in ("hmf", "lmf", "prune"):
        models[f"{method} {a.target:g}x uniform"] = hl.compress(model, method, a.target, sparse=method == "prune")
    inputs = task.sample_input()
    engines = {}
    for name, m in models.items():
        if name != "dense":
            s = hl.engines.summary(hl.engines.choose(m, *inputs, min_run_time=0.2))
            engines[name] = ", ".join(f"{r.layer}:{r.engine}" for r in s.itertuples())
    speed = compare_models(models, *inputs, min_run_time=a.min_run_time, rounds=3).set_index("name")
    rows = []
    for name, m in models.items():
        metric = task.evaluate(m)["bits_per_char"]
        rows.append((name, hl.count_params(model) / hl.count_params(m), metric, speed.loc[name, "median_us"],
                     speed.loc[name, "iqr_us"], speed.loc[name, "speedup"], engines.get(name, "dense")))
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    rep.table.to_csv(out / "report_char_lm.csv", index=False)
    (out / "report_char_lm_plan.json").write_text(json.dumps(plan, indent=2, default=str))
    cmd = "python benchmarks/report_char_lm.py " + " ".join(argv if argv is not None else sys.argv[1:])
    md = ["# hl.report on the shipped char_lm (LSTM 64->256, decoder 256->65)", "",
          f"Command: `{cmd.strip()}` ({time.time() - t0:.0f} s). Before: {before}. After: {load_note()}.",
          "X: 8 seeded windows of 128 training characters. Errors: relative Frobenius weight error and relative "
          "output error of the layer alone on its captured inputs. Times: per call, batch 1, 1 thread (LSTM: one "
          "128-character window), the engine hl.engines.choose picks.", "", rep.to_markdown(),
          f"## Recommended plan at {a.target:g}x (rule: {plan['rule']}; by {plan['by']})", "",
          f"achieved compression {plan['achieved']:.3f}x ({plan['values']} of {plan['dense_values']} values)", ""]
    md += [f"- `{n}`: `{kw}`" for n, kw in plan["layers"].items()]
    md += ["", f"## End to end: bits/char on the first {a.eval_chars} validation characters (no fine-tuning), "
           "time per 128-character sequence (batch 1, 1 thread)", "",
           "| model | compression | bits/char | us/sequence (IQR) | speed vs dense | engines |", "|---|---|---|---|---|---|"]
    md += [f"| {n} | {c:.2f} | {b:.3f} | {t:.0f} ({i:.0f}) | {s:.2f} | {e} |" for n, c, b, t, i, s, e in rows]
    (out / "report_char_lm.md").write_text("\n".join(md) + "\n")
    print("\n".join(md))
    return 0


if __name__ == "__main__":
    sys.exit(main())
