"""Never slower, for the whole model: the shipped char LM, dense vs compressed with ``hl.engines.choose`` vs
compressed on the fallback engines, side by side in one run.

    python benchmarks/never_slower_model.py [--methods lmf hmf] [--compressions 2 4] [--seq 128]
                                            [--min-run-time 1.0] [--rounds 5] [--choose-time 0.2]

Why: a layer timed alone does not predict the model. On the shipped char LM at LMF 4x, the per-layer race
once picked the factorized LSTM (1.16x faster than dense alone) and the model then ran at 0.70x dense end
to end. ``hl.engines.choose`` now confirms its per-layer choice on the whole model and falls back (every
layer ``reconstructed``: W_hat in dense's own fused kernels) when the choice does not pay.

For each method and compression, ``hl.compress(model, method, compression=c)`` is switched by
``hl.engines.choose`` (batch 1, 1 thread, thread CPU clock), then one interleaved race
(``hl.timing.race``: rounds of every configuration, medians of the pooled blocks) times, on one
``seq``-character window (batch 1):

- ``dense``: the shipped model; ``dense copy``: an identical copy, the noise control (how far from 1.00
  this run's noise alone moves a ratio);
- ``per-layer``: the compressed model on the engines the per-layer race picked (what ``choose`` did before
  the end-to-end check);
- ``choose``: the engines ``choose`` kept (its ``decision``: kept / fallback / nothing to confirm);
- ``fallback``: every compressed layer ``reconstructed``.

Columns are speed-ups over dense (dense median / that median; > 1 is faster) and the dense median in us.
Time does not depend on the weight values or the characters, so the window is seeded random ids.
``HMF_LAB_QUICK=1`` (or ``--quick``) runs a tiny version (LMF 4x, 16 characters, short timings) that only
checks the script runs: its numbers mean nothing.
"""
from __future__ import annotations

import argparse
import copy
import sys
import time
import warnings

import pandas as pd
import torch

import hmf_lab as hl
from hmf_lab.factor._validation import quick_mode
from hmf_lab.perf.engines import compressed_modules, current_engine, load_note, set_engine
from hmf_lab.perf.timing import race

FULL = dict(methods=["lmf", "hmf"], compressions=[2, 4], seq=128, min_run_time=1.0, rounds=5, choose_time=0.2)
QUICK = dict(methods=["lmf"], compressions=[4], seq=16, min_run_time=0.02, rounds=1, choose_time=0.01)


def _engines_setter(model: torch.nn.Module, configs: dict):
    """``prepare(name)`` for the race: put every compressed layer of ``model`` on ``configs[name]``'s
    engines (configurations not in ``configs`` are other models: nothing to do)."""
    layers = dict(compressed_modules(model))

    def prepare(name):
        for layer, engine in configs.get(name, {}).items():
            if current_engine(layers[layer]) != engine:
                set_engine(layers[layer], engine)
    return prepare


def run(methods, compressions, seq: int, min_run_time: float, rounds: int, choose_time: float,
        log=print) -> pd.DataFrame:
    torch.set_num_threads(1)
    dense = hl.models.load_pretrained("char_lm").eval()
    control = copy.deepcopy(dense).eval()
    vocab = dense.embedding.num_embeddings
    ids = torch.randint(0, vocab, (1, seq), generator=torch.Generator().manual_seed(0))
    rows = []
    for method in methods:
        for c in compressions:
            cm = hl.compress(dense, method, compression=c).eval()
            hl.engines.clear_cache()
            table = hl.engines.choose(cm, ids, min_run_time=choose_time, rounds=3)
            v = table.attrs["end_to_end"]
            final = {name: mod.chosen_engine for name, mod in compressed_modules(cm)}
            configs = {"per-layer": v["chosen"], "choose": final, "fallback": v["fallback"]}
            fns = {"dense": dense, "dense copy": control}
            fns.update({name: cm for name in configs})
            r = race(fns, ids, rounds=rounds, min_run_time=min_run_time / rounds, threads=1, warmup=2,
                     clock="thread", inference=True, reference="dense", prepare=_engines_setter(cm, configs))
            for name, engine in final.items():  # leave the model as choose left it
                set_engine(dict(compressed_modules(cm))[name], engine)
            row = {"method": method, "compression": c, "decision": v["decision"],
                   "per-layer engines": ", ".join(f"{k}:{e}" for k, e in v["chosen"].items()),
                   "dense_us": r.median("dense") * 1e6}
            row.update({name: r.ratios[name] for name in ("per-layer", "choose", "fallback", "dense copy")})
            row["unreliable"] = bool(r.unreliable)
            row["warning"] = r.warning
            rows.append(row)
            log(f"{method:4s} {c:>3}x  per-layer {row['per-layer']:.2f}x  choose {row['choose']:.2f}x "
                f"({v['decision']})  fallback {row['fallback']:.2f}x  control {row['dense copy']:.2f}x  "
                f"[{row['per-layer engines']}]")
    return pd.DataFrame(rows)


def to_markdown(df: pd.DataFrame, before: str, after: str, seconds: float, cmd: str, seq: int) -> str:
    lines = ["# Never slower, whole model: shipped char LM, batch 1, 1 thread", "",
             f"Command: `{cmd}` ({seconds:.0f} s). Before: {before}. After: {after}.",
             f"One {seq}-character window per call; thread CPU clock; interleaved rounds (`hl.timing.race`), "
             "medians of the pooled blocks. Columns: speed-up over dense (dense median / median).", "",
             "| method | compression | per-layer | choose (decision) | fallback | dense copy | dense_us | "
             "per-layer engines |", "|---|---|---|---|---|---|---|---|"]
    for r in df.to_dict("records"):
        lines.append(f"| {r['method']} | {r['compression']} | {r['per-layer']:.2f} | {r['choose']:.2f} "
                     f"({r['decision']}) | {r['fallback']:.2f} | {r['dense copy']:.2f} | {r['dense_us']:.0f} | "
                     f"{r['per-layer engines']} |")
    warned = sorted({w for w in df["warning"] if w})
    lines += [""] + [f"- {w}" for w in warned]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--methods", nargs="+", choices=["lmf", "hmf"])
    p.add_argument("--compressions", nargs="+", type=float)
    p.add_argument("--seq", type=int, help="characters per call (default 128)")
    p.add_argument("--min-run-time", type=float, help="seconds per configuration, over all rounds")
    p.add_argument("--rounds", type=int)
    p.add_argument("--choose-time", type=float, help="min_run_time of hl.engines.choose")
    p.add_argument("--quick", action="store_true", help="tiny run that only checks the script (also HMF_LAB_QUICK=1)")
    a = p.parse_args(argv)
    cfg = dict(QUICK if (a.quick or quick_mode()) else FULL)
    for key in cfg:
        if getattr(a, key) is not None:
            cfg[key] = getattr(a, key)
    cfg["compressions"] = [int(c) if float(c).is_integer() else c for c in cfg["compressions"]]
    warnings.filterwarnings("ignore")
    before, t0 = load_note(), time.time()
    df = run(**cfg)
    cmd = "python benchmarks/never_slower_model.py " + " ".join(argv if argv is not None else sys.argv[1:])
    print(to_markdown(df, before, load_note(), time.time() - t0, cmd.strip(), cfg["seq"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
