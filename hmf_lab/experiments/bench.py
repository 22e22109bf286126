"""``hmf-lab bench``: dense vs HMF vs LMF vs CSR pruning at equal compression, layers and LSTMs, one table.

Every row is one (kind, size, batch, threads, compression, method) with its median time, the speed-up
over dense and the **ideal** speed-up ``dense bytes / compressed bytes`` (weights only; CSR counts its
values, int32 column indices and row pointers): inference at batch 1 streams the weights once, so the
ideal is the memory-bandwidth limit, and ``of_ideal`` = speed-up / ideal shows the gap to it.

Run time does not depend on the weight values, so the modules are built at the right shapes with random
weights (CSR: magnitude pruning of a random matrix, a uniformly scattered pattern). The methods of one
group are measured in interleaved rounds (``rounds``), so slow phases of a shared machine hit all of them;
the median and IQR pool every block of every round. Parameter counts follow one rule for every method:
stored weight values (biases and indices excluded), at ``hl.choose_split_rank`` (HMF), ``hl.lmf_rank``
(LMF) and ``floor(m*n / compression)`` kept values (pruning).

Example
-------
>>> import hmf_lab as hl
>>> from hmf_lab.experiments.bench import BenchConfig, run_bench
>>> cfg = BenchConfig(sizes=(64,), batches=(1,), threads=(1,), compressions=(4,), lstm_hidden=(16,),
...                   seq=4, min_run_time=0.002, lstm_min_run_time=0.002, rounds=1, progress=False)
>>> df = run_bench(cfg)
>>> sorted(df["method"].unique())
['dense', 'hmf', 'hmf-eager', 'hmf-reconstructed', 'lmf', 'prune']
>>> list(df.columns[:6])
['kind', 'size', 'batch', 'threads', 'compression', 'method']
"""
from __future__ import annotations

import argparse
import dataclasses
import os
import platform
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn

from hmf_lab.factor._validation import quick_mode
from hmf_lab.nn.methods import DENSE, get_method
from hmf_lab.perf.timing import race, raw_kernels, weight_bytes

__all__ = ["BenchConfig", "run_bench", "summary", "to_markdown", "add_arguments", "run", "QUICK", "FULL"]


@dataclass
class BenchConfig:
    """What ``hmf-lab bench`` measures (the defaults are the full table of the issue)."""

    sizes: tuple = (512, 1024, 2048, 4096)  # square layers m = n
    batches: tuple = (1, 32)  # layer batch sizes
    threads: tuple = (1, 2)  # torch intra-op threads, layers
    compressions: tuple = (2, 4, 8, 16)  # equal compression for every method
    lstm_hidden: tuple = (512, 1024)  # LSTM hidden size (= input size); () skips LSTMs
    seq: int = 64  # LSTM sequence length
    lstm_batch: int = 1
    lstm_threads: tuple = (1,)
    min_run_time: float = 0.06  # seconds per layer measurement per round
    lstm_min_run_time: float = 0.25  # seconds per LSTM measurement per round
    rounds: int = 5  # interleaved rounds per group (noise on a shared machine)
    seed: int = 0
    clock: str = "wall"  # "wall", or "thread": CPU time of the timing thread (robust on a busy machine, 1 thread)
    progress: bool = True
    layers: bool = True  # False skips the layer table
    floors: bool = True  # time each layer's raw kernels (hl.timing.raw_kernels) in the same rounds


FULL = BenchConfig()
QUICK = BenchConfig(sizes=(256,), batches=(1,), threads=(1,), compressions=(4,), lstm_hidden=(64,), seq=16,
                    min_run_time=0.01, lstm_min_run_time=0.01, rounds=1)


#: the methods benchmarked, from the registry (``Method.timing_module`` builds each at a compression)
BENCHED = ("hmf", "lmf", "prune")
#: the variant rows of a method: (suffix, engine note); HMF's reconstructed (layers) and eager (LSTMs) forms
RECONSTRUCTED, EAGER = "-reconstructed", "-eager"


def _layer_modules(n: int, c: float, gen: torch.Generator, dense: nn.Linear):
    """{method name: (module, params, bytes, note)} for one square size and compression (the registry's
    ``timing_module``; bytes: ``hl.timing.weight_bytes``, what the forward streams)."""
    out = {}
    for name in BENCHED:
        method = get_method(name)
        mod = method.timing_module(dense, c)
        note = " ".join(f"{k}={v}" for k, v in method.config((n, n), c).items())
        note += ", int32 indices" if method.sparse else ""
        out[method.name] = (mod, _stored(mod), weight_bytes(mod), note)
        if "reconstructed" in method.engines and "factorized" in method.engines and method.takes_heuristic:
            recon = method.timing_module(dense, c)
            recon.mode = "reconstructed"
            out[method.name + RECONSTRUCTED] = (recon, _stored(recon), weight_bytes(recon), note + ", W_hat dense")
    return out


def _csr_name() -> str:
    """The benchmarked method with CSR inference: the reference of the ``vs_csr`` column."""
    return next(get_method(name).name for name in BENCHED if get_method(name).sparse)


def _method_order(name: str):
    """Row order: dense, then the benchmarked methods in BENCHED order, each followed by its variants."""
    if name == DENSE.name:
        return (0, "")
    base = [get_method(b).name for b in BENCHED]
    for i, b in enumerate(base):
        if name == b or name.startswith(b + "-"):
            return (1 + i, name[len(b):])
    return (len(base) + 1, name)


def _stored(mod) -> int:
    """Stored weight values, one rule for every method (``hl.count_params``)."""
    from hmf_lab.nn.compress import count_params

    return count_params(mod)


#: the columns of ``hl.timing.race``'s table a row of the bench reads (seconds; every block of every round
#: pooled; ``min`` is the fastest block)
RACE_COLUMNS = ["name", "median", "iqr", "n", "min"]


def _bench_layers(cfg: BenchConfig, rows: list, bar) -> None:
    gen = torch.Generator().manual_seed(cfg.seed)
    for n in cfg.sizes:
        torch.manual_seed(cfg.seed)
        dense = nn.Linear(n, n).eval()
        mods = {c: _layer_modules(n, c, gen, dense) for c in cfg.compressions}
        # W_hat has the dense shape whatever the compression: time the reconstructed forward once
        recon_at = 4 if 4 in cfg.compressions else cfg.compressions[0]
        for c in cfg.compressions:
            if c != recon_at:
                del mods[c]["hmf-reconstructed"]
        dense_bytes = weight_bytes(dense)
        for batch in cfg.batches:
            x = torch.randn(batch, n, generator=gen)
            for threads in cfg.threads:
                fns = {(DENSE.name, 1.0): dense}
                for c, ms in mods.items():
                    for method, (mod, *_rest) in ms.items():
                        fns[(method, c)] = mod
                if cfg.floors:  # the raw kernels of every layer, timed in the same rounds
                    for (method, c), mod in list(fns.items()):
                        fns[("floor:" + method, c)] = raw_kernels(mod)
                with torch.inference_mode():
                    res = race(fns, x, rounds=cfg.rounds, min_run_time=cfg.min_run_time, threads=threads,
                               warmup=2, clock=cfg.clock, reference=(DENSE.name, 1.0))
                warning, csr = res.warning, _csr_name()
                for (method, c), med, iqr, nblocks, fastest in res.table[RACE_COLUMNS].itertuples(index=False, name=None):
                    if method.startswith("floor:"):
                        continue
                    floor = res.median(("floor:" + method, c)) if cfg.floors else np.nan
                    is_dense = method == DENSE.name
                    if is_dense:
                        params, nbytes, note = n * n, dense_bytes, "nn.Linear"
                    else:
                        _, params, nbytes, note = mods[c][method]
                    rows.append(dict(kind="layer", size=n, batch=batch, threads=threads, compression=c,
                                     method=method, params=params, bytes=nbytes,
                                     median_us=med * 1e6, iqr_us=iqr * 1e6, min_us=fastest * 1e6, n=nblocks,
                                     speedup=res.ratio((method, c)), ideal=dense_bytes / nbytes,
                                     vs_csr=res.ratio((method, c), over=(csr, c)) if not is_dense else np.nan,
                                     floor_us=floor * 1e6, of_floor=floor / med, unreliable=res.unreliable,
                                     config=note, warning=warning))
                bar.update(1)


def _bench_lstms(cfg: BenchConfig, rows: list, bar) -> None:
    gen = torch.Generator().manual_seed(cfg.seed + 1)
    for H in cfg.lstm_hidden:
        torch.manual_seed(cfg.seed)
        dense = nn.LSTM(H, H).eval()
        dense_params = _stored(dense)
        dense_bytes = weight_bytes(dense)
        mods = {}
        for c in cfg.compressions:
            mods[c] = {}
            for name in BENCHED:
                method = get_method(name)
                mod = method.timing_module(dense, c)
                note = " ".join(f"{k}={v}" for k, v in method.config((H, H), c).items()) + " per gate"
                note += ", CSR int32" if method.sparse else ""
                mods[c][method.name] = (mod, _stored(mod), weight_bytes(mod), note + ", TorchScript loop")
                if method.takes_heuristic:  # HMF's per-step loop in Python too
                    eager = method.timing_module(dense, c)
                    eager.engine = "eager"
                    mods[c][method.name + EAGER] = (eager, _stored(eager), weight_bytes(eager), note + ", Python loop")
        x = torch.randn(cfg.seq, cfg.lstm_batch, H, generator=gen)
        for threads in cfg.lstm_threads:
            fns = {(DENSE.name, 1.0): dense}
            for c, ms in mods.items():
                for method, (mod, *_rest) in ms.items():
                    fns[(method, c)] = mod
            with torch.inference_mode():
                res = race(fns, x, rounds=cfg.rounds, min_run_time=cfg.lstm_min_run_time, threads=threads,
                           warmup=2, clock=cfg.clock, reference=(DENSE.name, 1.0))
            csr = _csr_name()
            for (method, c), med, iqr, nblocks, fastest in res.table[RACE_COLUMNS].itertuples(index=False, name=None):
                is_dense = method == DENSE.name
                if is_dense:
                    params, nbytes, note = dense_params, dense_bytes, "nn.LSTM"
                else:
                    _, params, nbytes, note = mods[c][method]
                rows.append(dict(kind="lstm", size=H, batch=cfg.lstm_batch, threads=threads, compression=c,
                                 method=method, params=params, bytes=nbytes,
                                 median_us=med * 1e6, iqr_us=iqr * 1e6, min_us=fastest * 1e6, n=nblocks,
                                 speedup=res.ratio((method, c)), ideal=dense_bytes / nbytes,
                                 vs_csr=res.ratio((method, c), over=(csr, c)) if not is_dense else np.nan,
                                 floor_us=np.nan, of_floor=np.nan, unreliable=res.unreliable,
                                 config=note + (f", seq={cfg.seq}" if is_dense else ""),
                                 warning=res.warning))
            bar.update(1)


def run_bench(cfg: BenchConfig = FULL) -> pd.DataFrame:
    """Measure everything in ``cfg``; one tidy DataFrame (one row per measurement, ratios included).

    Columns: kind, size, batch, threads, compression, method, params, bytes, median_us, iqr_us, min_us
    (fastest block: what a quiet machine approaches), n (blocks),
    speedup (dense median / median), ideal (dense bytes / bytes), of_ideal (speedup / ideal),
    vs_csr (CSR median / median at the same compression), floor_us (the layer's raw kernels,
    ``hl.timing.raw_kernels``, same rounds; layers only), of_floor (floor / median: 1.0 = no overhead),
    unreliable and warning (``hl.timing.race``'s verdict for the group, in words), config.
    """
    from tqdm.auto import tqdm

    if not isinstance(cfg, BenchConfig):
        raise TypeError(f"cfg must be a BenchConfig, got {type(cfg).__name__}")
    if cfg.clock not in ("wall", "thread"):
        raise ValueError(f"clock must be 'wall' or 'thread', got {cfg.clock!r}")
    if cfg.rounds < 1:
        raise ValueError(f"rounds must be an int >= 1, got {cfg.rounds}")
    bad = [c for c in cfg.compressions if not (isinstance(c, (int, float)) and c > 1)]
    if bad or not cfg.compressions:
        raise ValueError(f"compressions must be numbers > 1, got {list(cfg.compressions)}")
    torch.manual_seed(cfg.seed)
    groups = (len(cfg.sizes) * len(cfg.batches) * len(cfg.threads) if cfg.layers else 0) \
        + len(cfg.lstm_hidden) * len(cfg.lstm_threads)
    rows: list = []
    with tqdm(total=groups, desc="bench", disable=not cfg.progress, file=sys.stderr) as bar:
        if cfg.layers:
            _bench_layers(cfg, rows, bar)
        if cfg.lstm_hidden:
            _bench_lstms(cfg, rows, bar)
    df = pd.DataFrame(rows)
    df["of_ideal"] = df["speedup"] / df["ideal"]
    cols = ["kind", "size", "batch", "threads", "compression", "method", "params", "bytes", "median_us", "iqr_us",
            "min_us", "n", "speedup", "ideal", "of_ideal", "vs_csr", "floor_us", "of_floor", "unreliable", "config",
            "warning"]
    order = {name: i for i, name in enumerate(sorted(df["method"].unique(), key=_method_order))}
    df = df[cols].sort_values(["kind", "size", "batch", "threads", "compression", "method"],
                              key=lambda s: s.map(order) if s.name == "method" else s, kind="stable")
    return df.reset_index(drop=True)


# --------------------------------------------------------------------------- the targets of the issue

#: (what, selector, column, target): the "Must show" checks of issue 3
TARGETS = [
    ("HMF layer 2048, 4x, batch 1, 1 thread: faster than CSR", dict(kind="layer", size=2048, batch=1, threads=1,
                                                                    compression=4, method="hmf"), "vs_csr", 3.0),
    ("HMF layer 2048, 4x, batch 1, 1 thread: share of the ideal speed-up", dict(
        kind="layer", size=2048, batch=1, threads=1, compression=4, method="hmf"), "of_ideal", 0.85),
    ("HMF-LSTM 1024, 4x, batch 1, seq 64, 1 thread: faster than nn.LSTM", dict(
        kind="lstm", size=1024, batch=1, threads=1, compression=4, method="hmf"), "speedup", 2.0),
    ("HMF-LSTM 1024, 4x, batch 1, seq 64, 1 thread: faster than the pruned LSTM (CSR)", dict(
        kind="lstm", size=1024, batch=1, threads=1, compression=4, method="hmf"), "vs_csr", 2.32),
]


def summary(df: pd.DataFrame) -> pd.DataFrame:
    """The issue's targets against the table: what, target, measured (medians), met, shortfall, and the
    same ratio from the fastest blocks (``from_min``: what a quiet machine approaches). Rows present only."""
    out = []
    for what, sel, col, target in TARGETS:
        m = df
        for key, val in sel.items():
            m = m[m[key] == val]
        if not len(m):
            continue
        row = m.iloc[0]
        group = df[(df["kind"] == row["kind"]) & (df["size"] == row["size"]) & (df["batch"] == row["batch"])
                   & (df["threads"] == row["threads"])]
        dense_min = float(group[group["method"] == DENSE.name]["min_us"].iloc[0])
        csr = group[(group["method"] == _csr_name()) & (group["compression"] == row["compression"])]
        from_min = {"speedup": dense_min / row["min_us"],
                    "of_ideal": dense_min / row["min_us"] / row["ideal"],
                    "vs_csr": float(csr["min_us"].iloc[0]) / row["min_us"] if len(csr) else np.nan}[col]
        got = float(row[col])
        out.append(dict(what=what, target=target, measured=round(got, 3), met=bool(got >= target),
                        shortfall=round(max(0.0, target - got), 3), from_min=round(float(from_min), 3)))
    return pd.DataFrame(out, columns=["what", "target", "measured", "met", "shortfall", "from_min"])


def to_markdown(df: pd.DataFrame, floatfmt: str = "{:.3g}") -> str:
    """A GitHub markdown table of ``df`` (:func:`~hmf_lab.experiments.tables.markdown_table`; floats as
    ``floatfmt``, NaN empty; no trailing newline)."""
    from hmf_lab.experiments.tables import markdown_table

    return markdown_table(df, float_format=floatfmt.format, missing="").rstrip("\n")


def _machine() -> dict:
    load = os.getloadavg() if hasattr(os, "getloadavg") else (float("nan"),) * 3
    return dict(torch=torch.__version__, python=platform.python_version(), cpu=platform.processor() or platform.machine(),
                cores=os.cpu_count(), load_1min=round(load[0], 2))


def _report(df: pd.DataFrame, cfg: BenchConfig, before: dict, after: dict, seconds: float) -> str:
    show = ["size", "batch", "threads", "compression", "method", "params", "median_us", "iqr_us", "min_us", "speedup",
            "ideal", "of_ideal", "vs_csr", "floor_us", "of_floor", "trust", "config"]
    df = df.assign(trust=np.where(df["unreliable"], "UNRELIABLE", "ok"))
    parts = ["# hmf-lab bench", "",
             f"torch {before['torch']}, Python {before['python']}, {before['cores']} CPU cores; load average "
             f"(1 min) {before['load_1min']} before, {after['load_1min']} after; {seconds:.0f} s; clock: "
             + ("wall time" if cfg.clock == "wall" else "CPU time of the timing thread (waits for other "
                "processes left out)") + ". "
             f"Config: {dataclasses.asdict(cfg)}.", ""]
    busy = max(before["load_1min"], after["load_1min"])
    if busy > max(1.5, 0.75 * (before["cores"] or 1)):  # the benchmark itself keeps about one core busy
        parts += [f"**Busy machine** (load {busy:g} on {before['cores']} cores): other processes shared the CPU, "
                  "so medians are inflated and noisy (compare `min_us`), and rows with more threads than idle "
                  "cores mostly measure OpenMP threads waiting for a descheduled partner. Rerun on a quiet "
                  "machine for the real table.", ""]
    parts += ["speedup = dense median / median; ideal = dense bytes / compressed bytes (weights; CSR with "
              "int32 indices); of_ideal = speedup / ideal; vs_csr = CSR median / median at the same compression; "
              "min_us = the fastest block; floor_us = the same matrix kernels called directly on pre-packed "
              "tensors (`hl.timing.raw_kernels`, timed in the same rounds), of_floor = floor_us / median_us "
              "(1.0: no Python overhead); trust = the harness's verdict for the group (reasons below).", ""]
    for kind, title in (("layer", "## Layers (square m = n, y = x W^T + b)"),
                        ("lstm", "## LSTMs (input = hidden, nn.LSTM signature)")):
        part = df[df["kind"] == kind]
        if len(part):
            parts += [title, "", to_markdown(part[show]), ""]
            flagged = part[part["unreliable"]].drop_duplicates(["size", "batch", "threads"])
            for r in flagged.itertuples():
                parts += [f"- size {r.size}, batch {r.batch}, {r.threads} thread(s): {r.warning}"]
            if len(flagged):
                parts += [""]
    s = summary(df)
    if len(s):
        parts += ["## Targets (issue 3)", "", to_markdown(s), ""]
    return "\n".join(parts)


# --------------------------------------------------------------------------- command line


def _ints(text):
    return tuple(int(v) for v in text)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``hmf-lab bench``."""
    from hmf_lab.experiments._args import compression_arg, out_dir, positive_float, positive_int  # argument checks (before the run)

    parser.add_argument("--quick", action="store_true",
                        help="tiny sizes and short budgets (CI, a few seconds); HMF_LAB_QUICK=1 does the same")
    parser.add_argument("--out", default=None, type=out_dir, help="folder for bench.csv and bench.md "
                        "(default benchmarks/results, or benchmarks/results/quick with --quick)")
    parser.add_argument("--sizes", nargs="+", type=positive_int, help=f"layer sizes (default {FULL.sizes})")
    parser.add_argument("--batches", nargs="+", type=positive_int, help=f"layer batch sizes (default {FULL.batches})")
    parser.add_argument("--threads", nargs="+", type=positive_int, help=f"thread counts for layers (default {FULL.threads})")
    parser.add_argument("--compressions", nargs="+", type=compression_arg, help=f"(default {FULL.compressions})")
    parser.add_argument("--lstm-hidden", nargs="*", type=positive_int, help=f"LSTM hidden sizes (default {FULL.lstm_hidden}); "
                        "give none to skip LSTMs")
    parser.add_argument("--lstm-threads", nargs="+", type=positive_int, help=f"(default {FULL.lstm_threads})")
    parser.add_argument("--seq", type=positive_int, help=f"LSTM sequence length (default {FULL.seq})")
    parser.add_argument("--no-layers", action="store_true", help="LSTMs only")
    parser.add_argument("--rounds", type=positive_int, help=f"interleaved rounds per group (default {FULL.rounds})")
    parser.add_argument("--min-run-time", type=positive_float, help=f"seconds per layer measurement and round "
                        f"(default {FULL.min_run_time})")
    parser.add_argument("--clock", choices=("wall", "thread"), help="wall-clock time (default) or the CPU time "
                        "of the timing thread, which leaves out waits for other processes (busy machine, 1 thread)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def config_from_args(args) -> BenchConfig:
    quick = args.quick or quick_mode()
    cfg = dataclasses.replace(QUICK if quick else FULL)
    for name in ("sizes", "batches", "threads", "compressions", "lstm_hidden", "lstm_threads"):
        val = getattr(args, name, None)
        if val is not None:
            setattr(cfg, name, tuple(val))
    for name in ("seq", "rounds", "min_run_time", "clock"):
        val = getattr(args, name, None)
        if val is not None:
            setattr(cfg, name, val)
    cfg.layers = not args.no_layers
    cfg.progress = not args.no_progress
    return cfg


def run(args) -> int:
    """Run the benchmark, print the table and the targets, write ``bench.csv`` and ``bench.md``."""
    cfg = config_from_args(args)
    quick = cfg == dataclasses.replace(QUICK, layers=cfg.layers, progress=cfg.progress) or args.quick
    out = Path(args.out) if args.out else Path("benchmarks/results") / ("quick" if quick else "")
    before, t0 = _machine(), time.perf_counter()
    df = run_bench(cfg)
    after, seconds = _machine(), time.perf_counter() - t0
    report = _report(df, cfg, before, after, seconds)
    out.mkdir(parents=True, exist_ok=True)
    df.to_csv(out / "bench.csv", index=False)
    (out / "bench.md").write_text(report + "\n")
    print(report)
    print(f"\nwrote {out / 'bench.csv'} and {out / 'bench.md'}")
    return 0
