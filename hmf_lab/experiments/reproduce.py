"""``hmf-lab reproduce``: HMF vs LMF vs pruning on real NLP models, post-training and trained from scratch.

The grid (tasks x regimes x methods x compressions x seeds; :mod:`hmf_lab.grid`, cells in
:mod:`hmf_lab.regimes`): for each task (``lm``: character LSTM on Tiny Shakespeare, bits per char;
``intent``: LSTM on SNIPS, accuracy; ``translation``: LSTM encoder–decoder English -> Spanish, BLEU) and
compression ``c``, every ``nn.LSTM`` and every ``nn.Linear`` with both sides >= 32
(:func:`compressed_layers`) is compressed ``c``-fold per weight matrix (for an LSTM, per gate block):

- regime ``post``: the shipped dense model is compressed (HMF keeps the top rows dense, the paper's
  choice) and fine-tuned; pruning prunes gradually from the dense weights (Zhu & Gupta, :class:`GradualPruner`);
- regime ``scratch``: every structure is trained from initialization with the dense baseline's optimizer,
  steps and data (HMF/LMF start from the factorized default init, scale preserved: see
  :mod:`hmf_lab.regimes`); pruning prunes gradually during training;
- ``--seeds N``: mean ± sd; HMF minus LMF in %, marked when inside the noise (paired t-test, 5%);
- the trained split sweep (one task, ``--sweep-task``): HMF from split 0 (= LMF) to the all-rows end at
  the same budget, plus a split heuristic (``--heuristic``); "HMF (best split)" takes the sweep's best;
- cells run in parallel through joblib (``--jobs N``) or on a Dask cluster (``--scheduler ADDRESS``).

Outputs in ``--out``: ``cells.csv`` (one row per cell), ``summary.csv``, ``hmf_vs_lmf.csv``, ``sweep.csv``,
``results.md``, ``run.json`` (command, settings, wall time, load) and plots (``<task>_regimes.png``,
``sweep_<task>_<c>x.png``). Timing is not part of the grid (cells share busy cores); ``hmf-lab bench`` and
:func:`time_side_by_side` measure speed. :func:`run_task` / :func:`live_compare` keep the single-run
post-training path with side-by-side timing (notebook 06's slider).

>>> import hmf_lab.experiments.reproduce as R
>>> [round(R.cubic_sparsity(t, 0.75, 0, 10), 3) for t in (0, 5, 10, 20)]
[0.0, 0.656, 0.75, 0.75]
"""
from __future__ import annotations

import argparse
import copy
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import torch
from torch import nn

from hmf_lab import nlp as M
from hmf_lab.factor._validation import quick_mode

__all__ = ["RESULTS_DIR", "load_results", "live_compare", "compressed_layers", "fine_tune",
           "summary", "write_outputs", "TASKS", "Settings", "FULL", "QUICK", "load_task", "cubic_sparsity", "GradualPruner",
           "run_task", "time_side_by_side", "markdown_table", "add_arguments", "run"]

#: the shipped results of the full grid run (``hmf-lab reproduce ... --out hmf_lab/assets/results``; see its README.md)
RESULTS_DIR = Path(__file__).resolve().parent / "assets" / "results"  # package data (travels in the wheel)

#: CLI task name -> shipped checkpoint name
TASKS = {t.cli_name: name for name, t in M.TASKS.items()}  # derived from the one registry, hmf_lab.tasks
METHODS = ("hmf", "lmf", "prune")


@dataclass
class Settings:
    """Work done per task: fine-tuning budget (same for every method), evaluation size, timing budget."""

    fine_tune_steps: int       # optimizer steps of fine-tuning, for every method
    lr: float = 2e-3           # Adam learning rate (cosine-decayed), for every method
    eval_kw: dict = field(default_factory=dict)   # passed to the task (eval size)
    min_run_time: float = 1.0  # seconds of timing per model and compression, split over the rounds
    timing_rounds: int = 5     # interleaved rounds (dense, hmf, lmf, prune, dense, ...); the best round counts
    prune_end: float = 0.7     # fraction of the fine-tuning steps at which pruning reaches its target
    prune_every: int = 10      # steps between mask updates


FULL = {
    "lm": Settings(fine_tune_steps=150, eval_kw={"eval_chars": 30_000}),
    "intent": Settings(fine_tune_steps=200, eval_kw={}),
    "translation": Settings(fine_tune_steps=120, eval_kw={"eval_n": 200}),
}
QUICK = {
    "lm": Settings(fine_tune_steps=6, eval_kw={"eval_chars": 3_000}, min_run_time=0.04, timing_rounds=2, prune_every=2),
    "intent": Settings(fine_tune_steps=6, eval_kw={"eval_n": 100}, min_run_time=0.04, timing_rounds=2,
                       prune_every=2),
    "translation": Settings(fine_tune_steps=4, eval_kw={"eval_n": 12}, min_run_time=0.04, timing_rounds=2,
                            prune_every=1),
}


def load_task(task: str, **eval_kw):
    """``(task object, shipped dense model)`` with the vocabulary the checkpoint was trained with.

    >>> load_task("nope")
    Traceback (most recent call last):
    ...
    ValueError: unknown task 'nope'; expected one of ['intent', 'lm', 'translation']
    """
    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}; expected one of {sorted(TASKS)}")
    from hmf_lab.nlp.tasks import TASKS as REGISTRY
    return REGISTRY[TASKS[task]].pretrained(**eval_kw)


# ------------------------------------------------------------------------------------ pruning


def cubic_sparsity(step: int, final: float, begin: int, end: int, initial: float = 0.0) -> float:
    """Zhu & Gupta (2017) schedule: ``s_t = s_f + (s_i - s_f) (1 - (t - t0) / (t1 - t0))^3``, clamped.

    >>> cubic_sparsity(0, 0.9, 0, 100), cubic_sparsity(100, 0.9, 0, 100)
    (0.0, 0.9)
    """
    if end <= begin:
        return final if step >= begin else initial
    frac = min(max((step - begin) / (end - begin), 0.0), 1.0)
    return final + (initial - final) * (1.0 - frac) ** 3


def _final_keep(mod: nn.Module, mask: torch.Tensor, c: float) -> int:
    """The values a masked weight keeps at compression c: core's equal-budget rule (per gate block in an LSTM)."""
    from hmf_lab.factor.core import prune_keep

    if isinstance(mod, nn.LSTM):
        return prune_keep((mod.hidden_size, mask.shape[1]), c, blocks=4)
    return prune_keep(tuple(mask.shape), c)


class GradualPruner:
    """Gradual magnitude pruning of a ``hl.compress(model, "prune", compression=1)`` model.

    Every masked weight (``torch.nn.utils.prune`` ``*_mask`` buffers) ends with the equal-budget count
    ``hl.compress(model, "prune", c)`` keeps (``hl.factor.core.prune_keep``: LMF's size); in between, the sparsity follows :func:`cubic_sparsity`.
    Masks only shrink: a pruned weight never comes back. Call it as the training-loop callback.

    >>> import torch, hmf_lab as hl
    >>> net = hl.compress(torch.nn.Sequential(torch.nn.Linear(8, 8)), "prune", compression=1)
    >>> p = GradualPruner(net, compression=4, steps=10)
    >>> p(10); int(net[0].weight_mask.sum()), int((net[0].weight != 0).sum())
    (16, 16)
    """

    def __init__(self, model: nn.Module, compression: float, steps: int, end: float = 0.7, every: int = 10):
        self.model, self.c, self.steps = model, float(compression), int(steps)
        self.end = max(1, int(round(end * steps)))
        self.every = max(1, int(every))
        self.masks = []  # (module, weight name)
        for mod in model.modules():
            for bname, _ in mod.named_buffers(recurse=False):
                if bname.endswith("_mask") and hasattr(mod, bname[:-5] + "_orig"):
                    self.masks.append((mod, bname[:-5]))
        if not self.masks:
            raise ValueError("model has no torch.nn.utils.prune masks; build it with "
                             "hl.compress(model, 'prune', compression=1)")

    @torch.no_grad()
    def __call__(self, step: int) -> None:
        if step % self.every and step < self.end:
            return
        for mod, name in self.masks:
            mask, orig = getattr(mod, name + "_mask"), getattr(mod, name + "_orig")
            n = mask.numel()
            final = _final_keep(mod, mask, self.c)
            s = cubic_sparsity(step, 1.0 - final / n, 0, self.end)
            keep = max(final, int(math.ceil(n * (1.0 - s))))
            keep = min(keep, int(mask.sum()))
            score = (orig.abs() * mask).flatten()
            new = torch.zeros(n, dtype=mask.dtype)
            new[torch.topk(score, keep, sorted=False).indices] = 1
            mask.copy_(new.view_as(mask))
            setattr(mod, name, orig * mask)   # the masked weight now (prune's hook redoes it each forward)


# ------------------------------------------------------------------------------- fine-tuning


def fine_tune(task, model: nn.Module, steps: int, lr: float, progress: bool = True, callback=None):
    """``task.fine_tune``, then drop the factors' inference caches.

    Compressed LSTMs train in ``mode="auto"`` (:class:`~hmf_lab.lstm.CompressedLSTM`): while autograd
    records, W_hat is rebuilt differentiably and torch's fused LSTM kernel runs it.
    """
    losses = task.fine_tune(model, steps, lr=lr, progress=progress, callback=callback)
    for mod in model.modules():   # drop inference caches of the factors
        if hasattr(mod, "clear_cache"):
            mod.clear_cache()
    return losses


# ------------------------------------------------------------------------------------ pipeline

#: an nn.Linear is compressed only when both its dimensions are at least this (tiny output heads,
#: e.g. the 7-intent classifier, cannot reach 8x with any factorization and stay dense for every method)
MIN_LINEAR_DIM = 32


def compressed_layers(model: nn.Module) -> list[str]:
    """Names of the modules ``reproduce`` compresses: every ``nn.LSTM``, every big enough ``nn.Linear``.

    >>> net = nn.ModuleDict({"rnn": nn.LSTM(8, 64), "head": nn.Linear(64, 7), "proj": nn.Linear(64, 64)})
    >>> compressed_layers(net)
    ['rnn', 'proj']
    """
    return [name for name, mod in model.named_modules()
            if type(mod) is nn.LSTM or (type(mod) is nn.Linear and min(mod.weight.shape) >= MIN_LINEAR_DIM)]


def time_side_by_side(named_models: dict, inputs, min_run_time: float = 0.3, rounds: int = 5) -> dict:
    """Time several models on the same input, interleaved: ``rounds`` rounds, each measuring every model
    once (``hl.timing.race``, the kit's one harness: one thread, eval mode, ``min_run_time / rounds``
    seconds). Returns ``{name: (best, spread)}`` in seconds per call: the fastest per-round median and the
    range of the per-round medians; ``.warning`` says in words when the machine was too busy to trust them.

    Interleaving and taking the best round keep the comparison fair on a shared, noisy machine: a burst
    of load from another process slows one round of every model, not one model.

    >>> import torch
    >>> r = time_side_by_side({"a": torch.nn.Linear(4, 4)}, (torch.randn(1, 4),), min_run_time=0.01, rounds=2)
    >>> sorted(r), r["a"][0] > 0
    (['a'], True)
    """
    from hmf_lab.perf.timing import race

    fns = {}
    for name, model in named_models.items():
        model.eval()  # inference caches and dropout off: the speed of the deployed model

        def fn(model=model):
            with torch.inference_mode():
                return model(*inputs)
        fns[name] = fn
    rounds = max(1, int(rounds))
    r = race(fns, rounds=rounds, min_run_time=min_run_time / rounds, threads=1, warmup=0)
    out = _SideBySide({name: (min(t.median for t in ts), max(t.median for t in ts) - min(t.median for t in ts))
                       for name, ts in r.timings.items()})
    out.race = r
    return out


class _SideBySide(dict):
    """``time_side_by_side``'s {name: (best, spread)}; ``.race`` is the ``hl.timing.Race`` behind it and
    ``.warning`` its verdict in words ('' when the timing can be trusted)."""

    race = None

    @property
    def warning(self) -> str:
        return self.race.warning if self.race is not None else ""


def run_task(task: str, compressions=(4, 8), methods=METHODS, quick: bool = False, progress: bool = True,
             settings: Settings | None = None, heuristic="top", log=print) -> pd.DataFrame:
    """Run one task; returns a tidy table, one row per (method, compression), plus the dense row.

    Columns: task, metric, method, compression (target), params (``hl.count_params``), actual
    compression, before (metric right after compression), after (after equal fine-tuning),
    time_us / time_spread_us (per sequence, batch 1, 1 thread: best and range of the interleaved
    rounds of :func:`time_side_by_side`), dense_time_us (dense, measured in the same rounds),
    speedup (dense time / this time), fine_tune_steps, fine_tune_s.
    """
    from hmf_lab.nn.compress import compress, count_params, sparsify

    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}; expected one of {sorted(TASKS)}")
    bad = [m for m in methods if m not in METHODS]
    if bad:
        raise ValueError(f"methods must be among {METHODS}, got {bad}")
    cs = [float(c) for c in compressions]
    if not cs or any(not c > 1 for c in cs):
        raise ValueError(f"compressions must be numbers > 1 (e.g. 2 4 8 16), got {list(compressions)}")
    st = settings or (QUICK if quick else FULL)[task]
    t, dense = load_task(task, **st.eval_kw)
    inputs = t.sample_input()
    dense_params = count_params(dense)
    layers = compressed_layers(dense)
    base = t.evaluate(dense)[t.metric]
    log(f"[{task}] dense {t.metric} = {base:.4f}, {dense_params} weight values in LSTM/Linear layers; "
        f"compressing {layers}")
    rows = []
    dense_times = []
    for c in cs:
        block = {}
        for method in methods:
            t0 = time.time()
            if method == "prune" and st.fine_tune_steps == 0:   # post-training only: one-shot pruning
                oneshot = compress(dense, "prune", compression=c, layers=layers)
                before = t.evaluate(oneshot)[t.metric]
                final = sparsify(oneshot)
            elif method == "prune":
                oneshot = compress(dense, "prune", compression=c, layers=layers)
                before = t.evaluate(oneshot)[t.metric]
                ft = compress(dense, "prune", compression=1, layers=layers)
                pruner = GradualPruner(ft, c, st.fine_tune_steps, end=st.prune_end, every=st.prune_every)
                fine_tune(t, ft, st.fine_tune_steps, lr=st.lr, progress=progress, callback=pruner)
                with torch.no_grad():   # the schedule's last step: exactly the target sparsity
                    pruner(st.fine_tune_steps)
                final = sparsify(ft)
            else:
                final = compress(dense, method, compression=c, layers=layers, heuristic=heuristic)
                before = t.evaluate(final)[t.metric]
                if st.fine_tune_steps:
                    fine_tune(t, final, st.fine_tune_steps, lr=st.lr, progress=progress)
            secs = time.time() - t0
            after = t.evaluate(final)[t.metric] if st.fine_tune_steps else before
            params = count_params(final)
            block[method] = final
            rows.append(dict(task=task, metric=t.metric, method=method, compression=c, params=params,
                             heuristic=heuristic if method == "hmf" else "",
                             actual_compression=dense_params / params, before=before, after=after,
                             fine_tune_steps=st.fine_tune_steps, fine_tune_s=secs))
            log(f"[{task}] {method} {c:g}x: {params} params, {t.metric} before {before:.4f} after {after:.4f} "
                f"({secs:.0f} s)")
        # time dense and the compressed models side by side, interleaved
        times = time_side_by_side({"dense": dense, **block}, inputs, st.min_run_time, st.timing_rounds)
        td = times["dense"][0]
        dense_times.append(td)
        for r in rows[-len(methods):]:
            tm, spread = times[r["method"]]
            r.update(time_us=tm * 1e6, time_spread_us=spread * 1e6, dense_time_us=td * 1e6, speedup=td / tm,
                     timing_warning=times.warning)
    dt = min(dense_times)
    rows.insert(0, dict(task=task, metric=t.metric, method="dense", compression=1.0, params=dense_params,
                        actual_compression=1.0, before=base, after=base, fine_tune_steps=0, fine_tune_s=0.0,
                        time_us=dt * 1e6, time_spread_us=max(dense_times) * 1e6 - dt * 1e6,
                        dense_time_us=dt * 1e6, speedup=1.0,
                        timing_warning=next((r["timing_warning"] for r in rows if r.get("timing_warning")), "")))
    return pd.DataFrame(rows)


def markdown_table(df: pd.DataFrame) -> str:
    """The results as a markdown table (one task).

    >>> df = pd.DataFrame([dict(task="lm", metric="bits_per_char", method="dense", compression=1.0,
    ...     params=10, actual_compression=1.0, before=2.0, after=2.0, time_us=5.0, speedup=1.0)])
    >>> print(markdown_table(df).splitlines()[0])
    | method | compression | parameters | bits_per_char before fine-tuning | bits_per_char after fine-tuning | time per sequence (us) | speed-up vs dense |
    """
    metric = df["metric"].iloc[0]
    lines = [f"| method | compression | parameters | {metric} before fine-tuning | {metric} after fine-tuning "
             "| time per sequence (us) | speed-up vs dense |", "|---|---|---|---|---|---|---|"]
    for r in df.itertuples():
        lines.append(f"| {r.method} | {r.compression:g}x ({r.actual_compression:.2f}x) | {r.params:,} | "
                     f"{r.before:.4g} | {r.after:.4g} | {r.time_us:.0f} | {r.speedup:.2f} |")
    if "timing_warning" in df:  # the timing harness's verdict, next to the numbers
        lines += ["", *(f"**{w}**" for w in dict.fromkeys(df["timing_warning"].fillna("")) if w)]
    return "\n".join(lines) + "\n"


def summary(df: pd.DataFrame) -> pd.DataFrame:
    """Per compression: HMF vs LMF relative metric gain (%) and HMF speed-up over CSR pruning.

    Gain is ``(lmf - hmf) / lmf`` for lower-is-better metrics (bits per char), ``(hmf - lmf) / lmf``
    otherwise, after fine-tuning.
    """
    lower = df.metric.iloc[0] in ("bits_per_char", "perplexity")
    out = []
    for c, g in df[df.method != "dense"].groupby("compression"):
        r = {m: g[g.method == m].iloc[0] for m in g.method}
        if not {"hmf", "lmf", "prune"} <= set(r):
            continue
        h, l = r["hmf"].after, r["lmf"].after
        gain = (l - h) / abs(l) if lower else (h - l) / abs(l) if l else float("nan")
        out.append(dict(task=df.task.iloc[0], compression=c, hmf_vs_lmf_gain_pct=100 * gain,
                        hmf_speedup_vs_prune=r["prune"].time_us / r["hmf"].time_us))
    return pd.DataFrame(out)


def write_outputs(df: pd.DataFrame, out: Path) -> list[Path]:
    """Write ``<task>.csv`` and ``<task>.md`` (table + summary) into ``out``; the two plots are drawn by
    :func:`hmf_lab.course.figures.task_figures`."""
    out.mkdir(parents=True, exist_ok=True)
    task = df.task.iloc[0]
    files = [out / f"{task}.csv", out / f"{task}.md"]
    df.to_csv(files[0], index=False)
    s = summary(df)
    text = f"# {task}\n\n" + markdown_table(df)
    if len(s):
        text += "\n" + "| compression | HMF vs LMF (% better metric) | HMF speed-up over CSR pruning |\n|---|---|---|\n"
        text += "".join(f"| {r.compression:g}x | {r.hmf_vs_lmf_gain_pct:+.2f}% | {r.hmf_speedup_vs_prune:.2f}x |\n"
                        for r in s.itertuples())
    if "bleu" in set(df.get("metric", [])) or task == "translation":
        from hmf_lab.nlp.bleu import signature
        text += f"\nBLEU: sacrebleu corpus BLEU on lower-cased word tokens, signature `{signature()}`\n"
    files[1].write_text(text)
    return files


# ------------------------------------------------------------------------------------------ CLI


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from hmf_lab.experiments._args import compression_arg, heuristic_or_none, nonnegative_int, out_dir, positive_int  # checked before the run
    from hmf_lab.experiments.grid import SWEEP_FRACS
    parser.add_argument("--task", nargs="+", default=["lm"], choices=sorted(TASKS),
                        help="lm (char LSTM, Tiny Shakespeare), intent (SNIPS), translation (en->es)")
    parser.add_argument("--regime", default="both", choices=["post", "scratch", "both"],
                        help="post: compress the shipped model, fine-tune; scratch: train every structure from "
                             "initialization with the dense baseline's budget; both (default)")
    parser.add_argument("--seeds", type=positive_int, default=3, help="seeds per cell (mean ± sd over them); default 3")
    parser.add_argument("--compression", nargs="+", type=compression_arg, default=[4, 8], help="e.g. 2 4 8 16")
    parser.add_argument("--methods", nargs="+", default=["dense", *METHODS], choices=["dense", *METHODS])
    parser.add_argument("--out", type=out_dir, required=True, help="folder for CSVs, results.md and plots")
    parser.add_argument("--jobs", type=positive_int, default=1, help="worker processes on this machine (joblib)")
    parser.add_argument("--scheduler", default=None,
                        help="a Dask scheduler address (e.g. tcp://127.0.0.1:8786): run the cells there "
                             "(joblib's dask backend) instead of local processes")
    parser.add_argument("--quick", action="store_true",
                        help="tiny training/evaluation budget (for CI and trying things; also HMF_LAB_QUICK=1)")
    parser.add_argument("--sweep-task", default="intent",
                        help="task of the trained split sweep (if among --task; 'none' for no sweep)")
    parser.add_argument("--sweep-fracs", nargs="+", type=float, default=list(SWEEP_FRACS),
                        help="split fractions of the sweep (of the largest feasible split; 0 is the LMF row)")
    parser.add_argument("--heuristic", default="greedy", type=heuristic_or_none,
                        help="split heuristic compared on the sweep task (a name in hl.HEURISTICS; 'none' to skip)")
    parser.add_argument("--fine-tune-steps", type=nonnegative_int, default=None, help="override the post fine-tuning steps")
    parser.add_argument("--scratch-steps", type=nonnegative_int, default=None, help="override the scratch training steps")
    parser.add_argument("--threads", type=positive_int, default=1, help="ignored: every cell runs on one torch thread")
    parser.add_argument("--no-progress", action="store_true", help="hide the tqdm progress bar")


def run(args) -> int:
    """``hmf-lab reproduce``: the grid (:func:`hmf_lab.grid.run_grid`), then its tables and plots in ``--out``."""
    import json
    import os
    import sys

    from hmf_lab.experiments import grid as G
    quick = bool(args.quick or quick_mode())
    regimes = ["post", "scratch"] if args.regime == "both" else [args.regime]
    steps = {k: v for k, v in (("post", args.fine_tune_steps), ("scratch", args.scratch_steps)) if v is not None}
    sweep = None if str(args.sweep_task).lower() == "none" else args.sweep_task
    heur = None if str(args.heuristic).lower() == "none" else args.heuristic
    if heur is not None:
        from hmf_lab.factor.heuristics import HEURISTICS
        if heur not in HEURISTICS:
            raise ValueError(f"unknown heuristic {heur!r}; valid names are {sorted(HEURISTICS)} (or 'none')")
    load0 = os.getloadavg()
    t0 = time.time()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    df = G.run_grid(args.task, regimes, args.compression, args.seeds, jobs=args.jobs, scheduler=args.scheduler,
                    quick=quick, methods=args.methods, sweep_task=sweep, sweep_fracs=args.sweep_fracs,
                    best_heuristic=heur, steps=steps, progress=not args.no_progress,
                    log_file=out / "cells_partial.jsonl")
    wall = time.time() - t0
    files = G.write_grid(df, out)
    (out / "cells_partial.jsonl").unlink(missing_ok=True)
    import subprocess
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                                cwd=Path(__file__).parent).stdout.strip() or None
    except OSError:
        commit = None
    info = dict(commit=commit, command="hmf-lab reproduce " + " ".join(sys.argv[2:]) if sys.argv[1:2] == ["reproduce"] else None,
                tasks=list(args.task), regimes=regimes, seeds=args.seeds, compressions=list(args.compression),
                jobs=args.jobs, scheduler=args.scheduler, quick=quick, wall_s=round(wall, 1), cells=len(df),
                loadavg_start=load0, loadavg_end=os.getloadavg(), cpus=os.cpu_count(),
                settings={t: vars(G.settings_for(t, quick)) for t in args.task}, steps_override=steps,
                sweep_task=sweep, sweep_fracs=list(args.sweep_fracs), heuristic=heur)
    (out / "run.json").write_text(json.dumps(info, indent=1, default=str))
    print(G.results_markdown(df))
    print(f"{len(df)} cells in {wall:.0f} s with jobs={args.jobs}" + (f" on {args.scheduler}" if args.scheduler else "")
          + "; wrote " + ", ".join(str(f) for f in files + [out / "run.json"]))
    return 0


# ------------------------------------------------------------------------------------ notebook


def load_results(folder=None) -> dict[str, pd.DataFrame]:
    """The per-task CSVs of :func:`write_outputs` (single-run format), ``{task: DataFrame}``.

    A grid run (``hmf-lab reproduce``) writes ``cells.csv`` instead: :func:`hmf_lab.grid.load_grid`
    (the shipped one: ``hmf_lab/assets/results``).

    >>> sorted(load_results())  # doctest: +SKIP
    ['intent', 'lm', 'translation']
    """
    folder = Path(folder) if folder is not None else RESULTS_DIR
    files = sorted(f for f in folder.glob("*.csv") if f.stem in TASKS)
    if not files:
        raise FileNotFoundError(f"no per-task result CSVs (lm.csv, intent.csv, translation.csv) in {folder}; "
                                f"create them with `hmf-lab reproduce`'s Python twin `run_task` + `write_outputs`, "
                                f"or load a grid run with hl.experiments.grid.load_grid")
    return {f.stem: pd.read_csv(f) for f in files}


def live_compare(task: str = "lm", compression: float = 4, fine_tune_steps: int = 0, eval_size: int | None = None,
                 min_run_time: float = 0.1, progress: bool = False) -> pd.DataFrame:
    """A short live run for one compression (for a slider): post-training compression by default.

    ``eval_size``: characters (lm) or sentences (intent, translation) to evaluate on.

    >>> df = live_compare("lm", 4, eval_size=500, min_run_time=0.01)  # doctest: +SKIP
    """
    key = {"lm": "eval_chars"}.get(task, "eval_n")
    base = QUICK[task] if task in QUICK else Settings(0)
    st = Settings(fine_tune_steps=int(fine_tune_steps), lr=base.lr, min_run_time=min_run_time, timing_rounds=2,
                  eval_kw={key: eval_size} if eval_size else dict(base.eval_kw),
                  prune_every=max(1, int(fine_tune_steps) // 10))
    return run_task(task, [compression], settings=st, progress=progress, log=lambda *a: None)
