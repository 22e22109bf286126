"""The speed regime: a character LSTM LM large enough that its weights leave the cache, end to end, batch 1.

    python benchmarks/speed_regime.py [--hidden 1024] [--seq 64] [--sizes 128 256 512 1024 2048]
                                      [--crossover-seq 16] [--compression 4] [--out hmf_lab/assets/results/speed]

Part 1 (``regime.csv``/``.md``): a CharLM (vocabulary 65, embedding 64, hidden ``--hidden``) timed per
sequence of ``--seq`` characters for dense, HMF, LMF and CSR pruning at 4x and 8x (the LSTM and the
decoder compressed), on each method's own kernels (``factorized``: HMF/LMF step loops, CSR sparse
kernels) and on the engines ``hl.engines.choose`` picks (``chosen``), with the ideal speed-up from bytes
moved (dense weight bytes / compressed weight bytes; CSR counts float32 values, int32 column indices and
row pointers).

Part 2 (``crossover.csv``/``.png``): speed-up over dense against hidden size per method at
``--compression`` on the methods' own kernels, marking where HMF overtakes dense and CSR on this machine.

The models are seeded and untrained: run time does not depend on the weight values (no data-dependent
control flow; CSR keeps the same number of values per matrix), so training them would only cost CPU.
Timing: 1 thread, thread CPU clock (``hl.timing.measure(clock="thread")``), interleaved rounds of all
methods of one size, medians of pooled blocks; the load average before and after is written out.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
import warnings
from pathlib import Path

import pandas as pd
import torch
from torch import nn

import hmf_lab as hl
from hmf_lab.perf.engines import compare_models, load_note
from hmf_lab.nn.lstm import GateHMFLinear

FLOAT, INDEX = 4, 4  # bytes: float32 values, int32 CSR indices
VOCAB, EMBED = 65, 64


def _compressed_lstm(lstm: nn.LSTM, method: str, c: float) -> nn.Module:
    """HMF/LMF LSTM at the right shapes with seeded random factors (no SVD of big random matrices), CSR by
    magnitude pruning (``hl.SparseLSTM.from_lstm``)."""
    if method == "prune":
        return hl.SparseLSTM.from_lstm(lstm, c)
    cls = hl.HMFLSTM if method == "hmf" else hl.LMFLSTM
    out = cls(lstm.input_size, lstm.hidden_size, batch_first=lstm.batch_first, _build=False)
    H = lstm.hidden_size
    for n, mods in ((lstm.input_size, out.ih), (H, out.hh)):
        k, r = hl.choose_split_rank((H, n), c) if method == "hmf" else (0, hl.lmf_rank((H, n), c))
        mods.append(GateHMFLinear(n, H, k, r))
    return out.eval()


def build(hidden: int, method: str, c: float, seed: int = 0):
    """(dense CharLM, compressed copy) with seeded weights."""
    torch.manual_seed(seed)
    dense = hl.models.CharLM(VOCAB, embed=EMBED, hidden=hidden).eval()
    if method == "dense":
        return dense, dense
    comp = hl.compress(dense, method, c, layers=["decoder"], sparse=method == "prune")
    comp.lstm = _compressed_lstm(dense.lstm, method, c)
    return dense, comp.eval()


def weight_bytes(model: nn.Module) -> int:
    """Bytes of the LSTM and decoder weights as stored for inference (CSR: values + int32 indices)."""
    total = 0
    for mod in model.modules():
        if isinstance(mod, hl.SparseLinear):
            total += mod.nnz * (FLOAT + INDEX) + (mod.out_features + 1) * INDEX
        elif isinstance(mod, (hl.HMFLinear, hl.LMFLinear, GateHMFLinear)):
            total += mod.n_params * FLOAT
        elif type(mod) is nn.Linear or type(mod) is nn.LSTM:
            total += sum(p.numel() for n, p in mod.named_parameters() if n.startswith("weight")) * FLOAT
    return total


def _factorized(model: nn.Module) -> nn.Module:
    for _, mod in hl.engines.compressed_modules(model):
        hl.engines.set_engine(mod, hl.engines.engines_of(mod)[0])
    return model


def regime(hidden: int, seq: int, compressions, min_run_time: float, rounds: int, log=print) -> pd.DataFrame:
    import copy

    x = torch.randint(0, VOCAB, (1, seq), generator=torch.Generator().manual_seed(1))
    dense, _ = build(hidden, "dense", 1)
    models, info = {"dense": dense}, {"dense": ("dense", 1, "dense", weight_bytes(dense))}
    for c in compressions:
        for method in ("hmf", "lmf", "prune"):
            _, comp = build(hidden, method, c)
            own = _factorized(copy.deepcopy(comp))
            hl.engines.clear_cache()
            table = hl.engines.choose(comp, x, min_run_time=0.2, rounds=2)
            engines = ", ".join(f"{r.layer}:{r.engine}" for r in hl.engines.summary(table).itertuples())
            nb = weight_bytes(comp)
            models[f"{method} {c}x own"] = own
            info[f"{method} {c}x own"] = (method, c, "own kernels", nb)
            models[f"{method} {c}x chosen"] = comp
            info[f"{method} {c}x chosen"] = (method, c, engines, nb)
            log(f"built {method} {c}x: {engines}")
    res = compare_models(models, x, min_run_time=min_run_time, rounds=rounds)
    rows = []
    for r in res.itertuples():
        method, c, engines, nb = info[r.name]
        rows.append({"hidden": hidden, "seq": seq, "method": method, "compression": c, "engines": engines,
                     "ms_per_seq": r.median_us / 1e3, "iqr_ms": r.iqr_us / 1e3, "min_ms": r.min_us / 1e3,
                     "speedup": r.speedup, "ideal": info["dense"][3] / nb, "weight_MB": nb / 2**20,
                     "unreliable": r.unreliable})
    df = pd.DataFrame(rows)
    df["of_ideal"] = df["speedup"] / df["ideal"]
    return df


def crossover(sizes, seq: int, c: float, min_run_time: float, rounds: int, log=print) -> pd.DataFrame:
    x = torch.randint(0, VOCAB, (1, seq), generator=torch.Generator().manual_seed(1))
    rows = []
    for H in sizes:
        models = {"dense": build(H, "dense", 1)[0]}
        for method in ("hmf", "lmf", "prune"):
            models[method] = _factorized(build(H, method, c)[1])
        res = compare_models(models, x, min_run_time=min_run_time, rounds=rounds)
        for r in res.itertuples():
            rows.append({"hidden": H, "seq": seq, "compression": c, "method": r.name, "ms_per_seq": r.median_us / 1e3,
                         "iqr_ms": r.iqr_us / 1e3, "speedup": r.speedup, "ideal": weight_bytes(models["dense"]) /
                         weight_bytes(models[r.name]), "load1": os.getloadavg()[0]})
        log("  ".join(f"{r.name} {r.speedup:.2f}x" for r in res.itertuples()) + f"   (hidden {H})")
    return pd.DataFrame(rows)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--hidden", type=int, default=1024)
    p.add_argument("--seq", type=int, default=64)
    p.add_argument("--compressions", nargs="+", type=int, default=[4, 8])
    p.add_argument("--sizes", nargs="+", type=int, default=[128, 256, 512, 1024, 2048])
    p.add_argument("--crossover-seq", type=int, default=16)
    p.add_argument("--compression", type=int, default=4, help="compression of the crossover sweep")
    p.add_argument("--min-run-time", type=float, default=1.0, help="CPU seconds per model, over all rounds")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--skip-regime", action="store_true")
    p.add_argument("--skip-crossover", action="store_true")
    p.add_argument("--out", default="hmf_lab/assets/results/speed")
    a = p.parse_args(argv)
    warnings.filterwarnings("ignore")
    torch.set_num_threads(1)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    cmd = "python benchmarks/speed_regime.py " + " ".join(argv if argv is not None else sys.argv[1:])
    if not a.skip_regime:
        before, t0 = load_note(), time.time()
        df = regime(a.hidden, a.seq, a.compressions, a.min_run_time, a.rounds)
        df.to_csv(out / "regime.csv", index=False)
        md = [f"# CharLM hidden {a.hidden}, {a.seq} characters per sequence, batch 1, 1 thread (seeded, untrained)", "",
              f"Command: `{cmd.strip()}` ({time.time() - t0:.0f} s). Before: {before}. After: {load_note()}.",
              "Untrained on purpose: time does not depend on the weight values. `ideal` = dense weight bytes / "
              "compressed weight bytes (CSR: float32 values + int32 column indices + row pointers). `own kernels`: "
              "each method's own inference kernels (HMF/LMF factorized loop, CSR sparse kernels); `chosen`: the "
              "engines `hl.engines.choose` picks. Thread CPU clock, interleaved rounds, median (IQR).", "",
              "| method | compression | engines | ms/sequence (IQR) | speed-up vs dense | ideal | of ideal | weights MB |",
              "|---|---|---|---|---|---|---|---|"]
        for r in df.itertuples():
            md.append(f"| {r.method} | {r.compression} | {r.engines} | {r.ms_per_seq:.2f} ({r.iqr_ms:.2f}) | "
                      f"{r.speedup:.2f} | {r.ideal:.2f} | {r.of_ideal:.2f} | {r.weight_MB:.2f} |")
        (out / "regime.md").write_text("\n".join(md) + "\n")
        print("\n".join(md))
    if not a.skip_crossover:
        before, t0 = load_note(), time.time()
        cx = crossover(a.sizes, a.crossover_seq, a.compression, a.min_run_time, a.rounds)
        cx.to_csv(out / "crossover.csv", index=False)
        import matplotlib
        matplotlib.use("Agg")
        ax = hl.plots.speed_crossover(cx)
        ax.set_title(f"CharLM, {a.crossover_seq} chars, batch 1, 1 thread, {a.compression}x "
                     f"(load {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores)", fontsize=9)
        ax.figure.savefig(out / "crossover.png", dpi=120, bbox_inches="tight")
        marks = hl.engines.crossover_points(cx)
        print(f"crossover ({time.time() - t0:.0f} s; before: {before}; after: {load_note()}): {marks}")
        (out / "crossover.md").write_text(
            f"# Speed-up over dense against hidden size ({a.compression}x, own kernels)\n\nCommand: `{cmd.strip()}`. "
            f"Before: {before}. After: {load_note()}.\n\nCrossovers (log-linear interpolation in hidden size): "
            f"{marks}\n\n" + cx.pivot(index="hidden", columns="method", values="speedup").round(3).to_markdown() + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
