"""``hmf-lab reproduce``: HMF vs LMF vs pruning on real NLP models, post-training and trained from scratch.

The grid (tasks x regimes x methods x compressions x seeds; :mod:`hmf_lab.experiments.grid`, every cell
run by the one pipeline :func:`hmf_lab.experiments.pipeline.run_cell`): for each registered task (``lm``:
character LSTM on Tiny Shakespeare, bits per char; ``intent``: LSTM on SNIPS, accuracy; ``translation``:
LSTM encoder–decoder English -> Spanish, BLEU; and whatever :func:`hmf_lab.nlp.tasks.register_task` adds)
and compression ``c``, every ``nn.LSTM`` and every ``nn.Linear`` with both sides >= 32
(:func:`~hmf_lab.experiments.pipeline.compressed_layers`) is compressed ``c``-fold per weight matrix (for
an LSTM, per gate block):

- regime ``post``: the shipped dense model is compressed (HMF keeps the top rows dense, the paper's
  choice) and fine-tuned; pruning prunes gradually from the dense weights (Zhu & Gupta);
- regime ``scratch``: every structure is trained from initialization with the dense baseline's optimizer,
  steps and data (HMF/LMF start from the factorized default init, scale preserved: see
  :mod:`hmf_lab.experiments.pipeline`); pruning prunes gradually during training;
- ``--seeds N``: mean ± sd; HMF minus LMF in %, marked when inside the noise (paired t-test, 5%);
- the trained split sweep (one task, ``--sweep-task``): HMF from split 0 (= LMF) to the all-rows end at
  the same budget, plus a split heuristic (``--heuristic``); "HMF (best split)" takes the sweep's best;
- cells run in parallel through joblib (``--jobs N``) or on a Dask cluster (``--scheduler ADDRESS``).
- the work per task (steps, evaluation size, pruning schedule) is the task's own
  (:meth:`hmf_lab.nlp.tasks.Task.settings`).

Outputs in ``--out``: ``cells.csv`` (one row per cell), ``summary.csv``, ``hmf_vs_lmf.csv``, ``sweep.csv``,
``results.md``, ``run.json`` (command, settings, wall time, load), ``cells.jsonl`` (the raw cells, keyed)
and plots (``<task>_regimes.png``, ``sweep_<task>_<c>x.png``, drawn by the course layer). Long runs lose
nothing (:mod:`hmf_lab.experiments.runs`): Ctrl-C stops with one line saying what was kept (exit 130), the
same command resumes (finished cells with the same settings and code are reused), and a folder holding a
different run is not overwritten without ``--overwrite``.

Timing is not part of the grid (cells share busy cores); ``hmf-lab bench`` and :func:`time_side_by_side`
measure speed. :func:`run_task` / :func:`live_compare` are the single post-training run with side-by-side
timing (notebook 06's slider), its models from the same pipeline.

>>> import hmf_lab.experiments.reproduce as R
>>> R.task_markdown(R.pd.DataFrame([dict(method="dense", compression=1.0, params=10, actual_compression=1.0,
...     before=2.0, after=2.0, time_us=5.0, speedup=1.0, metric="bits_per_char")])).splitlines()[2]
'| dense | 1x (1.00x) | 10 | 2 | 2 | 5 | 1.00 |'
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import pandas as pd
import torch

from hmf_lab.experiments.pipeline import (Cell, cell_methods, compressed_layers, recipe, run_cell, shipped_task,
                                          task_names, task_settings)
from hmf_lab.experiments.tables import markdown_table
from hmf_lab.factor._validation import quick_mode
from hmf_lab.nlp.tasks import Settings

__all__ = ["RESULTS_DIR", "load_results", "live_compare", "summary", "write_outputs", "run_task",
           "time_side_by_side", "task_markdown", "add_arguments", "run", "Settings"]

#: the shipped results of the full grid run (``hmf-lab reproduce ... --out hmf_lab/assets/results``; see its README.md)
RESULTS_DIR = Path(__file__).resolve().parents[1] / "assets" / "results"  # package data (travels in the wheel)


def time_side_by_side(named_models: dict, inputs, min_run_time: float = 0.3, rounds: int = 5):
    """Time several models on the same input, interleaved: ``rounds`` rounds, each measuring every model
    once (``hl.timing.race``, the kit's one harness: one thread, eval mode, inference mode,
    ``min_run_time / rounds`` seconds per model and round). Returns the harness's
    :class:`~hmf_lab.perf.timing.Race` (the first model is the reference): ``.median(name)`` the pooled
    median seconds per call over every round, ``.table``'s ``iqr`` its spread, ``.ratio(name)`` the first
    model's median / this one's, ``.warning`` in words when the machine was too busy to trust them.

    Interleaving keeps the comparison fair on a shared, noisy machine: a burst of load from another
    process slows one round of every model, not one model.

    >>> import torch
    >>> r = time_side_by_side({"a": torch.nn.Linear(4, 4)}, (torch.randn(1, 4),), min_run_time=0.01, rounds=2)
    >>> list(r.medians), r.median("a") > 0, r.ratio("a")
    (['a'], True, 1.0)
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
    return race(fns, rounds=rounds, min_run_time=min_run_time / rounds, threads=1, warmup=0)


def _compressing_methods() -> tuple[str, ...]:
    """The methods a single run compares with its dense baseline (every cell method but the baseline)."""
    return tuple(m for m in cell_methods() if not recipe(m).is_dense)


def run_task(task: str, compressions=(4, 8), methods=None, quick: bool = False, progress: bool = True,
             heuristic=None, log=print, steps: int | None = None, eval_size: int | None = None,
             min_run_time: float | None = None, timing_rounds: int | None = None) -> pd.DataFrame:
    """One task, post-training, timed: a tidy table, one row per (method, compression), plus the dense row.

    Every model comes from the one pipeline (:func:`~hmf_lab.experiments.pipeline.run_cell`, regime
    ``post``, seed 0) with the task's settings (:meth:`~hmf_lab.nlp.tasks.Task.settings`); ``steps``
    overrides the fine-tuning steps, ``eval_size`` the evaluation size, ``min_run_time`` (per model) /
    ``timing_rounds`` the timing. Then every model is timed side by side with dense, in one race.

    Columns: task, metric, method, compression (target), params (``hl.count_params``), actual
    compression, before (metric right after compression), after (after equal fine-tuning),
    time_us / time_spread_us (per sequence, batch 1, 1 thread: the pooled median and its interquartile
    range over every round of one :func:`time_side_by_side` race holding dense and every (method,
    compression) model), dense_time_us (dense, measured in the same rounds), speedup (dense median /
    this median, the race's ``ratio``), timing_warning (the race's verdict), fine_tune_steps, fine_tune_s.
    """
    names = task_names()
    if task not in names:
        raise ValueError(f"unknown task {task!r}; expected one of {names}")
    allowed = _compressing_methods()
    methods = allowed if methods is None else tuple(methods)
    bad = [m for m in methods if m not in allowed]
    if bad:
        raise ValueError(f"methods must be among {allowed}, got {bad}")
    cs = [float(c) for c in compressions]
    if not cs or any(not c > 1 for c in cs):
        raise ValueError(f"compressions must be numbers > 1 (e.g. 2 4 8 16), got {list(compressions)}")
    st = task_settings(task, quick)
    base_method = next(m for m in cell_methods() if recipe(m).is_dense)
    kw = dict(quick=quick, steps=steps, eval_size=eval_size)
    d = run_cell(Cell(task, "post", base_method, 1.0, **kw), keep_model=True)
    dense, base, dense_params = d.pop("model"), d["value"], d["dense_params"]
    t, _ = shipped_task(task, quick, eval_size)
    inputs = t.sample_input()
    log(f"[{task}] dense {t.metric} = {base:.4f}, {dense_params} weight values in LSTM/Linear layers; "
        f"compressing {compressed_layers(dense)}")
    rows, models = [], {base_method: dense}
    for c in cs:
        for method in methods:
            cell = Cell(task, "post", method, c, heuristic=heuristic if recipe(method).takes_heuristic else None, **kw)
            r = run_cell(cell, progress=progress, keep_model=True)
            models[f"{method} {c:g}x"] = r.pop("model")
            after = r["value"] if r["steps"] else r["before"]   # no training: the model right after compression
            rows.append(dict(task=task, metric=t.metric, method=method, compression=c, params=r["params"],
                             heuristic=(cell.heuristic or "default") if recipe(method).takes_heuristic else "",
                             actual_compression=r["actual_compression"], before=r["before"], after=after,
                             fine_tune_steps=r["steps"], fine_tune_s=r["seconds"]))
            log(f"[{task}] {method} {c:g}x: {r['params']} params, {t.metric} before {r['before']:.4f} after "
                f"{after:.4f} ({r['seconds']:.0f} s)")
    # one race: dense and every compressed model side by side, interleaved (dense is the reference)
    times = time_side_by_side(models, inputs, st.min_run_time if min_run_time is None else min_run_time,
                              st.timing_rounds if timing_rounds is None else timing_rounds)
    iqr = dict(zip(times.table["name"], times.table["iqr"]))
    td = times.median(base_method)
    for r in rows:
        name = f"{r['method']} {r['compression']:g}x"
        r.update(time_us=times.median(name) * 1e6, time_spread_us=iqr[name] * 1e6, dense_time_us=td * 1e6,
                 speedup=times.ratio(name), timing_warning=times.warning)
    rows.insert(0, dict(task=task, metric=t.metric, method=base_method, compression=1.0, params=dense_params,
                        actual_compression=1.0, before=base, after=base, fine_tune_steps=0, fine_tune_s=0.0,
                        time_us=td * 1e6, time_spread_us=iqr[base_method] * 1e6, dense_time_us=td * 1e6,
                        speedup=1.0, timing_warning=times.warning))
    return pd.DataFrame(rows)


def task_markdown(df: pd.DataFrame) -> str:
    """One task's :func:`run_task` table as markdown (:func:`hmf_lab.experiments.tables.markdown_table`),
    with the timing harness's warning below it when the machine was too busy to trust the times."""
    metric = df["metric"].iloc[0]
    df = df.assign(compression=[f"{c:g}x ({a:.2f}x)" for c, a in zip(df.compression, df.actual_compression)])
    text = markdown_table(df, ["method", "compression", "params", "before", "after", "time_us", "speedup"],
                          headers={"params": "parameters", "before": f"{metric} before fine-tuning",
                                   "after": f"{metric} after fine-tuning", "time_us": "time per sequence (us)",
                                   "speedup": "speed-up vs dense"},
                          formats={"params": ",", "before": ".4g", "after": ".4g", "time_us": ".0f", "speedup": ".2f"})
    if "timing_warning" in df:  # the timing harness's verdict, next to the numbers
        warnings = [w for w in dict.fromkeys(df["timing_warning"].fillna("")) if w]
        text += "".join(["\n", *(f"**{w}**\n" for w in warnings)]) if warnings else ""
    return text


def summary(df: pd.DataFrame, hmf: str = "hmf", lmf: str = "lmf", prune: str = "prune") -> pd.DataFrame:
    """Per compression: HMF vs LMF relative metric gain (%) and HMF speed-up over CSR pruning (the paper's
    two claims; the three methods compared are parameters).

    Gain is ``(lmf - hmf) / lmf`` for lower-is-better metrics (bits per char), ``(hmf - lmf) / lmf``
    otherwise, after fine-tuning.
    """
    from hmf_lab.experiments.grid import LOWER_IS_BETTER

    lower = df.metric.iloc[0] in LOWER_IS_BETTER
    out = []
    comp = df[df.method.map(lambda m: not recipe(m).is_dense)]
    for c, g in comp.groupby("compression"):
        r = {m: g[g.method == m].iloc[0] for m in g.method}
        if not {hmf, lmf, prune} <= set(r):
            continue
        h, l = r[hmf].after, r[lmf].after
        gain = (l - h) / abs(l) if lower else (h - l) / abs(l) if l else float("nan")
        out.append(dict(task=df.task.iloc[0], compression=c, hmf_vs_lmf_gain_pct=100 * gain,
                        hmf_speedup_vs_prune=r[prune].time_us / r[hmf].time_us))
    return pd.DataFrame(out)


def write_outputs(df: pd.DataFrame, out: Path) -> list[Path]:
    """Write ``<task>.csv`` and ``<task>.md`` (table + summary) into ``out``; the two plots are drawn by
    :func:`hmf_lab.course.figures.task_figures`."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    task = df.task.iloc[0]
    files = [out / f"{task}.csv", out / f"{task}.md"]
    df.to_csv(files[0], index=False)
    s = summary(df)
    text = f"# {task}\n\n" + task_markdown(df)
    if len(s):
        text += "\n" + markdown_table(
            s, ["compression", "hmf_vs_lmf_gain_pct", "hmf_speedup_vs_prune"],
            headers={"hmf_vs_lmf_gain_pct": "HMF vs LMF (% better metric)",
                     "hmf_speedup_vs_prune": "HMF speed-up over CSR pruning"},
            formats={"compression": lambda v: f"{v:g}x", "hmf_vs_lmf_gain_pct": lambda v: f"{v:+.2f}%",
                     "hmf_speedup_vs_prune": lambda v: f"{v:.2f}x"})
    if "bleu" in set(df.get("metric", [])):
        from hmf_lab.nlp.bleu import signature
        text += f"\nBLEU: sacrebleu corpus BLEU on lower-cased word tokens, signature `{signature()}`\n"
    files[1].write_text(text)
    return files


# ------------------------------------------------------------------------------------------ CLI


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from hmf_lab.experiments._args import compression_arg, heuristic_or_none, nonnegative_int, out_dir, positive_int  # checked before the run
    from hmf_lab.experiments.grid import SWEEP_FRACS
    methods = list(cell_methods())
    parser.add_argument("--task", nargs="+", default=["lm"], choices=task_names(),
                        help="lm (char LSTM, Tiny Shakespeare), intent (SNIPS), translation (en->es), or any "
                             "registered task (hl.tasks.register_task)")
    parser.add_argument("--regime", default="both", choices=["post", "scratch", "both"],
                        help="post: compress the shipped model, fine-tune; scratch: train every structure from "
                             "initialization with the dense baseline's budget; both (default)")
    parser.add_argument("--seeds", type=positive_int, default=3, help="seeds per cell (mean ± sd over them); default 3")
    parser.add_argument("--compression", nargs="+", type=compression_arg, default=[4, 8], help="e.g. 2 4 8 16")
    parser.add_argument("--methods", nargs="+", default=methods, choices=methods)
    parser.add_argument("--out", type=out_dir, required=True,
                        help="folder for CSVs, results.md and plots; the same command on the same folder resumes")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace an earlier, different run in --out (without it such a folder is refused)")
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
    parser.add_argument("--allocate", nargs="+", default=["uniform"], choices=["uniform", "greedy"],
                        help="uniform: every matrix at the compression; greedy: the whole model's budget spread by "
                             "error per stored value (solved on the shipped model with training-text calibration "
                             "inputs; rows labelled +greedy); both: each compressing cell twice")
    parser.add_argument("--threads", type=positive_int, default=1, help="ignored: every cell runs on one torch thread")
    parser.add_argument("--no-progress", action="store_true", help="hide the tqdm progress bar")


def _run_config(args, quick: bool) -> dict:
    """What a grid run computes (its identity in ``--out``): not how many workers compute it."""
    from dataclasses import asdict

    regimes = ["post", "scratch"] if args.regime == "both" else [args.regime]
    steps = {k: v for k, v in (("post", args.fine_tune_steps), ("scratch", args.scratch_steps)) if v is not None}
    sweep = None if str(args.sweep_task).lower() == "none" else args.sweep_task
    heur = None if str(args.heuristic).lower() == "none" else args.heuristic
    return dict(tasks=list(args.task), regimes=regimes, seeds=int(args.seeds),
                compressions=[float(c) for c in args.compression], methods=list(args.methods), quick=quick,
                sweep_task=sweep, sweep_fracs=[float(f) for f in args.sweep_fracs], heuristic=heur,
                steps_override=steps, allocate=list(dict.fromkeys(getattr(args, "allocate", ["uniform"]))), settings={t: asdict(task_settings(t, quick)) for t in args.task})


def _commit() -> str | None:
    """The git commit of the code that ran (None outside a git checkout)."""
    import subprocess
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                              cwd=Path(__file__).parent).stdout.strip() or None
    except OSError:
        return None


def run(args) -> int:
    """``hmf-lab reproduce``: the grid (:func:`hmf_lab.experiments.grid.run_grid`), then its tables in ``--out``.

    Resumes an interrupted or finished run of the same configuration in ``--out``; refuses a folder with a
    different run unless ``--overwrite``; Ctrl-C stops with one line on what was kept and returns 130.
    """
    import os

    from hmf_lab.experiments import grid as G
    from hmf_lab.experiments.runs import RunFolder, run_id
    quick = bool(args.quick or quick_mode())
    cfg = _run_config(args, quick)
    if cfg["heuristic"] is not None:
        from hmf_lab.factor.heuristics import HEURISTICS
        if cfg["heuristic"] not in HEURISTICS:
            raise ValueError(f"unknown heuristic {cfg['heuristic']!r}; valid names are {sorted(HEURISTICS)} (or 'none')")
    command = "hmf-lab reproduce " + " ".join(sys.argv[2:]) if sys.argv[1:2] == ["reproduce"] else None
    folder = RunFolder(args.out)
    rid = run_id(cfg)
    folder.claim(rid, overwrite=args.overwrite, info=dict(cfg, command=command))   # RunConflict: exit 2
    reuse = folder.start()
    load0 = os.getloadavg()
    t0 = time.time()
    try:
        df = G.run_grid(cfg["tasks"], cfg["regimes"], cfg["compressions"], cfg["seeds"], jobs=args.jobs,
                        scheduler=args.scheduler, quick=quick, methods=cfg["methods"], sweep_task=cfg["sweep_task"],
                        sweep_fracs=cfg["sweep_fracs"], best_heuristic=cfg["heuristic"], steps=cfg["steps_override"],
                        progress=not args.no_progress, log_file=folder.partial, reuse=reuse,
                        allocate=cfg["allocate"])
        wall = time.time() - t0
        files = G.write_grid(df, args.out)
        keys = set(df["cell_key"]) if len(df) else set()
        info = dict(cfg, run_id=rid, commit=_commit(), command=command, jobs=args.jobs, scheduler=args.scheduler,
                    wall_s=round(wall, 1), cells=len(df), reused=len(keys & set(reuse)), ran=len(keys - set(reuse)),
                    loadavg_start=load0, loadavg_end=os.getloadavg(), cpus=os.cpu_count())
        folder.finish(keys, info)
    except KeyboardInterrupt:
        print(f"hmf-lab reproduce: interrupted; kept {len(folder.completed())} finished cells in {folder.partial}; "
              f"run the same command again to resume (they are reused)", file=sys.stderr)
        return 130
    print(G.results_markdown(df))
    print(f"{len(df)} cells in {wall:.0f} s with jobs={args.jobs}" + (f" on {args.scheduler}" if args.scheduler else "")
          + (f" (reused {info['reused']} of them)" if info["reused"] else "")
          + "; wrote " + ", ".join(str(f) for f in files + [folder.info, folder.cells_log]))
    return 0


# ------------------------------------------------------------------------------------ notebook


def load_results(folder=None) -> dict[str, pd.DataFrame]:
    """The per-task CSVs of :func:`write_outputs` (single-run format), ``{task: DataFrame}``.

    A grid run (``hmf-lab reproduce``) writes ``cells.csv`` instead: :func:`hmf_lab.experiments.grid.load_grid`
    (the shipped one: ``hmf_lab/assets/results``).

    >>> sorted(load_results())  # doctest: +SKIP
    ['intent', 'lm', 'translation']
    """
    folder = Path(folder) if folder is not None else RESULTS_DIR
    files = sorted(f for f in folder.glob("*.csv") if f.stem in task_names())
    if not files:
        raise FileNotFoundError(f"no per-task result CSVs (lm.csv, intent.csv, translation.csv) in {folder}; "
                                f"create them with `hmf-lab reproduce`'s Python twin `run_task` + `write_outputs`, "
                                f"or load a grid run with hl.experiments.grid.load_grid")
    return {f.stem: pd.read_csv(f) for f in files}


def live_compare(task: str = "lm", compression: float = 4, fine_tune_steps: int = 0, eval_size: int | None = None,
                 min_run_time: float = 0.1, progress: bool = False) -> pd.DataFrame:
    """A short live run for one compression (for a slider): post-training compression by default.

    :func:`run_task` with the task's quick settings (``eval_size`` overrides their evaluation size: characters
    for lm, sentences for intent and translation), ``fine_tune_steps`` steps and two timing rounds.

    >>> df = live_compare("lm", 4, eval_size=500, min_run_time=0.01)  # doctest: +SKIP
    """
    return run_task(task, [compression], quick=True, progress=progress, log=lambda *a: None,
                    steps=int(fine_tune_steps), eval_size=eval_size, min_run_time=min_run_time, timing_rounds=2)
