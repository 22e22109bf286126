"""The reproduce grid: tasks x regimes x methods x compressions x seeds, run in parallel with joblib, summarized.

Cells (:class:`~hmf_lab.experiments.pipeline.Cell`, run by the one pipeline
:func:`~hmf_lab.experiments.pipeline.run_cell`) are independent: each seeds itself and runs on one torch
thread. :func:`run_cells` hands them to joblib -- worker processes on this machine (``jobs=N``, the loky
backend), or a Dask cluster (``scheduler=ADDRESS``: ``distributed.Client(address)`` and joblib's
``"dask"`` backend). No pool of our own. The longest cells go first; a tqdm bar counts finished cells.
Each finished cell is appended to a log at once, keyed by :func:`~hmf_lab.experiments.pipeline.cell_key`;
cells already in ``reuse`` (a previous, interrupted run's log: :mod:`hmf_lab.experiments.runs`) are not run again.

Summaries: mean ± sd (``ddof=1``) over seeds per (task, regime, compression, row), and HMF minus LMF in
% (positive = HMF better, whichever direction the metric goes) with a noise mark: the seeds are paired
(same seed = same initialization and the same batches for both methods), so the rule is a **paired
t-test at the 5% level** on the per-seed differences d: inside the noise when
``|mean(d)| < t_{0.975, n-1} * sd(d) / sqrt(n)`` (for 3 seeds, t = 4.303). With all differences zero
(e.g. a BLEU of 0 for both) it is a tie, also marked.

>>> import pandas as pd
>>> d = pd.Series([0.01, -0.02, 0.015])
>>> inside_noise(d)
True
"""
from __future__ import annotations

import json
import math
import time
from contextlib import nullcontext
from pathlib import Path

import pandas as pd

from hmf_lab.experiments.pipeline import (REGIMES, Cell, cell_key, cell_methods, is_default_heuristic, recipe, run_cell,
                                         task_names, task_settings)
from hmf_lab.experiments.tables import markdown_table

__all__ = ["comparisons", "make_cells", "transfer_cells", "run_cells", "run_grid", "summarize", "hmf_vs_lmf", "inside_noise",
           "best_split", "results_markdown", "sweep_table", "write_grid", "load_grid", "T975", "SWEEP_FRACS",
           "LOWER_IS_BETTER", "live_regimes", "display_names", "COMPARED", "AGAINST"]

#: split fractions of the trained sweep (0 = LMF is the "lmf" row; 1 = the all-rows end)
SWEEP_FRACS = (0.25, 0.5, 0.75, 1.0)
#: two-sided 95% quantiles of Student's t, by degrees of freedom (the paired test's critical values)
T975 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262, 10: 2.228,
        15: 2.131, 20: 2.086, 30: 2.042}
LOWER_IS_BETTER = ("bits_per_char", "perplexity")
#: the paper's comparison in every table: HMF (default split, and the sweep's best split) against LMF
COMPARED, AGAINST = ("hmf", "hmf(best)"), "lmf"


def display_names() -> dict:
    """Table row label -> column header: the dense baseline, then every registered method (its registry
    label; a method with a dense split also gets its "(best)" row), in registry order.

    >>> display_names()["hmf(best)"], display_names()["prune"]
    ('HMF (best split in the sweep)', 'pruning (CSR)')
    """
    out = {}
    for m in cell_methods():
        rec = recipe(m)
        if rec.takes_heuristic:
            out[m] = f"{rec.label} (default split)"
            out[f"{m}(best)"] = f"{rec.label} (best split in the sweep)"
        else:
            out[m] = rec.label
    for m in cell_methods():  # the same rows under the greedy allocation (Cell.allocate)
        if not recipe(m).is_dense:
            out[f"{m}+greedy"] = f"{out[m]}, greedy allocation"
    return out


def comparisons(labels) -> list[tuple[str, str]]:
    """The (row, against) pairs the tables compare: every default or best-split row of a method with a dense
    split (HMF by rows, by columns), under each allocation, against LMF under the same allocation.

    >>> comparisons(["dense", "hmf", "hmf(best)", "lmf", "hmf_col+greedy", "lmf+greedy", "hmf@0.5", "prune"])
    [('hmf', 'lmf'), ('hmf(best)', 'lmf'), ('hmf_col+greedy', 'lmf+greedy')]
    """
    present, out = set(labels), []
    for lab in dict.fromkeys(labels):
        base, plus, alloc = str(lab).partition("+")
        method = base[:-len("(best)")] if base.endswith("(best)") else base
        try:
            rec = recipe(method)
        except ValueError:   # hmf@0.5, hmf[top]: sweep and heuristic rows
            continue
        against = AGAINST + plus + alloc
        if "split" in rec.options and method != AGAINST and against in present:
            out.append((lab, against))
    return out


def _t975(df: int) -> float:
    keys = sorted(k for k in T975 if k <= df)
    return T975[keys[-1]] if keys else float("inf")


def inside_noise(d) -> bool:
    """Paired t-test at 5%: is the mean of the per-seed differences ``d`` indistinguishable from 0?

    >>> inside_noise([0.5, 0.6, 0.55]), inside_noise([0.0, 0.0, 0.0]), inside_noise([1.0])
    (False, True, True)
    """
    d = pd.Series(list(d), dtype=float).dropna()
    n = len(d)
    if n < 2:
        return True
    sd = float(d.std(ddof=1))
    if sd == 0:
        return float(d.mean()) == 0.0
    return abs(float(d.mean())) < _t975(n - 1) * sd / math.sqrt(n)


# ------------------------------------------------------------------------------------ cells


def make_cells(tasks, regimes=REGIMES, compressions=(4, 8), seeds=3, quick=False, methods=None,
               sweep_task: str | None = "intent", sweep_fracs=SWEEP_FRACS, best_heuristic: str | None = "greedy",
               steps: dict | None = None, allocate=("uniform",)) -> list[Cell]:
    """Every cell that does not depend on another cell's result (the sweep included).

    ``steps``: ``{regime: steps}`` overrides for every task. ``methods``: default every cell method
    (:func:`~hmf_lab.experiments.pipeline.cell_methods`). Baseline (dense) cells have compression 1; post
    dense (the shipped model) is one cell per task (no seed changes it). The sweep and the heuristic cells
    are made for every method with a dense split (HMF). ``allocate``: the allocation rules of the
    compressing cells (``("uniform", "greedy")``: each twice; the sweep and heuristic cells stay uniform).

    >>> cs = make_cells(["intent"], ["scratch"], [8], seeds=2, sweep_fracs=(0.5,), best_heuristic=None)
    >>> sorted({c.label for c in cs}), len(cs)
    (['dense', 'hmf', 'hmf@0.5', 'hmf_col', 'lmf', 'prune'], 12)
    """
    tasks, regimes = list(tasks), list(regimes)
    methods = cell_methods() if methods is None else tuple(methods)
    names = task_names()
    bad = [t for t in tasks if t not in names] + [r for r in regimes if r not in REGIMES]
    if bad:
        raise ValueError(f"unknown task/regime {bad}; tasks are {names}, regimes {list(REGIMES)}")
    recipes = {m: recipe(m) for m in methods}
    n_seeds = int(seeds)
    if n_seeds < 1:
        raise ValueError(f"seeds must be an int >= 1, got {seeds!r}")
    steps = steps or {}
    allocate = list(dict.fromkeys([allocate] if isinstance(allocate, str) else allocate))
    bad = [a for a in allocate if a not in ("uniform", "greedy")]
    if bad or not allocate:
        raise ValueError(f"allocate must be 'uniform' and/or 'greedy', got {allocate!r}")
    out = []
    for task in tasks:
        for regime in regimes:
            kw = dict(quick=quick, steps=steps.get(regime))
            for seed in range(n_seeds):
                for m in methods:
                    if recipes[m].is_dense and (regime == "scratch" or seed == 0):
                        out.append(Cell(task, regime, m, 1.0, seed, **kw))
                for c in compressions:
                    c = float(c)
                    out += [Cell(task, regime, m, c, seed, allocate=a, **kw) for a in allocate
                            for m in methods if not recipes[m].is_dense]
                    if task != sweep_task:
                        continue
                    for m in methods:
                        if recipes[m].takes_heuristic:
                            out += [Cell(task, regime, m, c, seed, split_frac=float(f), **kw) for f in sweep_fracs]
                            if best_heuristic:
                                out.append(Cell(task, regime, m, c, seed, heuristic=best_heuristic, **kw))
    return out


def best_split(rows: pd.DataFrame, task: str | None = None) -> pd.DataFrame:
    """Per (task, method, regime, compression) of a sweep: the split fraction with the best mean metric
    (for every method with a dense split, i.e. HMF: ``takes_heuristic`` in its registry record).

    Candidates are the sweep points with dense rows (fraction > 0) and the default split (recorded as
    its own fraction of the largest split, ``split_hh / max``; see :func:`_default_frac`).
    """
    df = pd.DataFrame(rows)
    if task is not None:
        df = df[df.task == task]
    if df.empty:
        return pd.DataFrame(columns=["task", "method", "regime", "compression", "best_frac", "best_mean"])
    split = df.method.map(lambda m: recipe(m).takes_heuristic).astype(bool)
    sw = df[split & df.heuristic.map(is_default_heuristic).astype(bool) & (df.split_source.fillna("") == "")]
    sw = sw[sw.split_frac.isna() | (sw.split_frac > 0)]
    out = []
    for (task, method, regime, c), g in sw.groupby(["task", "method", "regime", "compression"]):
        lower = g.metric.iloc[0] in LOWER_IS_BETTER
        means = g.groupby(g.split_frac.fillna(-1.0))["value"].mean()
        f = means.idxmin() if lower else means.idxmax()
        out.append(dict(task=task, method=method, regime=regime, compression=c,
                        best_frac=None if f == -1.0 else float(f), best_mean=float(means[f])))
    return pd.DataFrame(out)


def transfer_cells(best: pd.DataFrame, tasks, seeds: int, quick=False, steps: dict | None = None) -> list[Cell]:
    """``hmf(best)`` cells of the other tasks, at the sweep's best fraction per (regime, compression).

    Where the best is the default split (``best_frac`` None/NaN) no cell is needed: :func:`run_grid`
    relabels the default HMF cells instead.
    """
    steps = steps or {}
    out = []
    for r in best.itertuples():
        if r.best_frac is None or _isnan(r.best_frac):
            continue
        for task in tasks:
            if task == r.task:
                continue
            for seed in range(int(seeds)):
                out.append(Cell(task, r.regime, r.method, float(r.compression), seed,
                                split_frac=float(r.best_frac), split_source=f"best of the {r.task} sweep",
                                quick=quick, steps=steps.get(r.regime)))
    return out


def _relabel_best(rows: list[dict], best: pd.DataFrame, sweep_task: str) -> list[dict]:
    """``hmf(best)`` rows that need no training: the sweep task's best point, and the default HMF cells of
    the other tasks where the sweep's best is the default split."""
    out = []
    for r in best.itertuples():
        default = r.best_frac is None or _isnan(r.best_frac)
        for x in rows:
            if x["regime"] != r.regime or x["compression"] != r.compression or x["method"] != r.method \
                    or not is_default_heuristic(x["heuristic"]) or x["split_source"]:
                continue
            frac = x["split_frac"]
            if x["task"] == sweep_task:
                hit = (frac is None or _isnan(frac)) if default else frac == r.best_frac
                src = "best of this sweep"
            else:
                hit = default and (frac is None or _isnan(frac))
                src = f"best of the {sweep_task} sweep (the default split)"
            if hit:
                out.append(dict(x, label=f"{r.method}(best)", split_source=src))
    return out


# ------------------------------------------------------------------------------------ running


def _run_keyed(cell: Cell, key: str, worker: bool = False) -> dict:
    """:func:`run_cell` in a worker, the row tagged with its key.

    In a worker process tqdm's lock becomes a thread lock: its default is a multiprocessing semaphore, which
    a worker stopped by Ctrl-C would leave behind (Python's resource tracker then warns about it at exit).
    """
    if worker:
        import threading

        from tqdm import tqdm
        tqdm.set_lock(threading.RLock())
    return dict(run_cell(cell), cell_key=key)


def run_cells(cells, jobs: int = 1, scheduler=None, progress: bool = True, log_file=None,
              reuse: dict | None = None) -> list[dict]:
    """Run the cells through joblib; returns one dict per cell (in the order of ``cells``), each with its ``cell_key``.

    ``jobs``: worker processes (loky) on this machine; ``scheduler``: a Dask scheduler address (or a
    ``distributed`` Client / LocalCluster) to run on instead. ``log_file``: append each finished row
    as a JSON line at once (an interrupted run keeps what it finished). ``reuse``: ``{cell_key: row}`` of
    cells already done (same cell, settings and code): returned as they are, not run again.

    >>> run_cells([], jobs=1, progress=False)
    []
    """
    if scheduler is None and (not isinstance(jobs, int) or jobs < 1):
        raise ValueError(f"jobs must be an int >= 1, got {jobs!r}")
    keyed = [(c, cell_key(c)) for c in cells]
    done = {k: reuse[k] for _, k in keyed if k in (reuse or {})}
    todo = sorted({k: (c, k) for c, k in keyed if k not in done}.values(), key=lambda ck: -ck[0].cost())
    if todo:
        _run_todo(todo, jobs, scheduler, progress, log_file, done)
    return [done[k] for _, k in keyed]   # in the order of the cells, however they ran


def _run_todo(cells, jobs, scheduler, progress, log_file, done: dict) -> None:
    """Run ``(cell, key)`` pairs through joblib, filling ``done`` and the log as each one finishes."""
    import joblib
    from tqdm.auto import tqdm

    client = None
    if scheduler is not None:
        from hmf_lab.experiments._args import cluster_client
        Client = cluster_client()   # dask/distributed are the optional `cluster` extra: a one-line error without them
        if isinstance(scheduler, Client):
            ctx = joblib.parallel_backend("dask", client=scheduler)
        else:
            client = Client(scheduler)
            ctx = joblib.parallel_backend("dask", client=client)
        n_jobs = -1
    else:
        ctx, n_jobs = nullcontext(), int(jobs)
    try:
        with ctx:
            par = joblib.Parallel(n_jobs=n_jobs, return_as="generator_unordered")
            results = par(joblib.delayed(_run_keyed)(c, k, n_jobs != 1) for c, k in cells)
            for row in tqdm(results, total=len(cells), desc="cells", disable=not progress):
                done[row["cell_key"]] = row
                if log_file is not None:
                    with open(log_file, "a") as fh:
                        fh.write(json.dumps(row, default=float) + "\n")
                        fh.flush()
    except KeyboardInterrupt:
        results.close()   # joblib stops its workers now, not at interpreter exit
        raise
    finally:
        if client is not None:
            client.close()


def run_grid(tasks, regimes=REGIMES, compressions=(4, 8), seeds=3, jobs=1, scheduler=None, quick=False,
             methods=None, sweep_task: str | None = "intent", sweep_fracs=SWEEP_FRACS,
             best_heuristic: str | None = "greedy", steps: dict | None = None, progress=True, log_file=None,
             log=print, reuse: dict | None = None, allocate=("uniform",)) -> pd.DataFrame:
    """The whole grid as a tidy DataFrame (one row per cell). Python twin of ``hmf-lab reproduce``.

    Phase 1 runs every cell that needs no other cell (the split sweep included); phase 2 the
    ``hmf(best)`` cells of the other tasks at the sweep's best fraction per (regime, compression)
    (none where the best is the default split: those rows are the default HMF cells). On the sweep task
    itself, ``hmf(best)`` is the best sweep point (chosen on the same seeds it is reported with: an
    optimistic pick). ``log_file`` / ``reuse``: see :func:`run_cells` (``hmf-lab reproduce`` resumes with them).

    >>> df = run_grid(["intent"], ["scratch"], [8], seeds=1, quick=True, sweep_fracs=(1.0,),
    ...               best_heuristic=None, progress=False, log=lambda *a: None)  # doctest: +SKIP
    """
    tasks = list(tasks)
    if sweep_task is not None and sweep_task not in tasks:
        sweep_task = None
    cells = make_cells(tasks, regimes, compressions, seeds, quick, methods, sweep_task, sweep_fracs,
                       best_heuristic, steps, allocate)
    t0 = time.time()
    reuse = reuse or {}
    log(f"phase 1: {len(cells)} cells" + (f" (the {sweep_task} sweep included)" if sweep_task else "")
        + _reuse_note(cells, reuse))
    rows = run_cells(cells, jobs, scheduler, progress, log_file, reuse)
    if sweep_task is not None and any(recipe(m).takes_heuristic for m in (methods or cell_methods())):
        best = best_split(pd.DataFrame(rows), sweep_task)
        log(f"best split fractions of the {sweep_task} sweep: {best.to_dict('records')}")
        more = transfer_cells(best, tasks, seeds, quick, steps)
        if more:
            log(f"phase 2: {len(more)} hmf(best) cells of the other tasks" + _reuse_note(more, reuse))
            rows += run_cells(more, jobs, scheduler, progress, log_file, reuse)
        rows += _relabel_best(rows, best, sweep_task)
    df = pd.DataFrame(rows)
    df.attrs["wall_s"] = time.time() - t0
    return df


def _reuse_note(cells, reuse: dict) -> str:
    """``: reused N cells, running M`` when resuming (nothing when there is nothing to reuse)."""
    if not reuse:
        return ""
    n = sum(cell_key(c) in reuse for c in cells)
    return f": reused {n} cells, running {len(cells) - n}"


def _isnan(x) -> bool:
    try:
        return math.isnan(float(x))
    except (TypeError, ValueError):
        return False


# ------------------------------------------------------------------------------------ summaries


def summarize(df: pd.DataFrame) -> pd.DataFrame:
    """mean, sd (ddof=1) and n over seeds per (task, regime, compression, label); dense repeated per compression.

    >>> df = pd.DataFrame(dict(task="t", regime="post", metric="accuracy", compression=4.0, label="hmf",
    ...                        seed=[0, 1], value=[0.5, 0.7], params=10, actual_compression=4.0))
    >>> summarize(df)[["mean", "sd", "n"]].round(3).values.tolist()
    [[0.6, 0.141, 2.0]]
    """
    keys = ["task", "regime", "metric", "compression", "label"]
    g = df.groupby(keys, dropna=False)
    s = g["value"].agg(mean="mean", sd=lambda v: float(v.std(ddof=1)) if len(v) > 1 else 0.0, n="count")
    s["params"] = g["params"].mean()
    s["actual_compression"] = g["actual_compression"].mean()
    s = s.reset_index()
    base = s.label.map(lambda lab: _is_baseline(lab)).astype(bool)
    comps = sorted(c for c in s.compression.unique() if c != 1.0)
    rep = [s[base].assign(compression=c) for c in comps]
    return pd.concat([s[~base], *rep], ignore_index=True) if rep else s


def _is_baseline(label) -> bool:
    """Is a table row label the dense baseline's (registry: the DENSE pseudo-record)?"""
    try:
        return bool(recipe(label).is_dense)
    except ValueError:   # hmf@0.5, hmf[greedy], ...: rows of a compressing method
        return False


def hmf_vs_lmf(df: pd.DataFrame, hmf_label: str = COMPARED[0], lmf_label: str = AGAINST) -> pd.DataFrame:
    """HMF minus LMF per (task, regime, compression): % of LMF's mean (positive = HMF better), paired noise mark.

    >>> df = pd.DataFrame(dict(task="t", regime="post", metric="accuracy", compression=4.0,
    ...     label=["hmf"] * 3 + ["lmf"] * 3, seed=[0, 1, 2] * 2, value=[0.8, 0.82, 0.81, 0.7, 0.71, 0.7]))
    >>> r = hmf_vs_lmf(df).iloc[0]
    >>> round(float(r.pct), 2), bool(r.inside_noise)
    (15.17, False)
    """
    out = []
    for (task, regime, c), g in df.groupby(["task", "regime", "compression"]):
        h = g[g.label == hmf_label].set_index("seed")["value"]
        l = g[g.label == lmf_label].set_index("seed")["value"]
        if not len(h) or not len(l):
            continue
        sign = -1.0 if g.metric.iloc[0] in LOWER_IS_BETTER else 1.0
        d = (sign * (h - l)).dropna()
        lm = float(l.mean())
        pct = 100.0 * sign * (float(h.mean()) - lm) / abs(lm) if lm else float("nan")
        out.append(dict(task=task, regime=regime, compression=c, hmf=hmf_label, pct=pct,
                        diff_mean=float(d.mean()) if len(d) else float("nan"),
                        diff_sd=float(d.std(ddof=1)) if len(d) > 1 else float("nan"), n=len(d),
                        inside_noise=inside_noise(d)))
    return pd.DataFrame(out)


_PAIR_HEADS = {("hmf", "lmf"): "HMF − LMF", ("hmf(best)", "lmf"): "HMF (best) − LMF"}


def _fmt(mean, sd, metric) -> str:
    digits = 2 if metric == "bleu" else 3 if metric in LOWER_IS_BETTER else 4
    return f"{mean:.{digits}f} ± {sd:.{digits}f}"


def _pct(r) -> str:
    if r is None or _isnan(r["pct"]):
        return "–"
    return f"{r['pct']:+.2f}%" + (" (noise)" if r["inside_noise"] else "")


def results_markdown(df: pd.DataFrame, value: str = "value", metric: str | None = None) -> str:
    """The main table, one per task: rows (regime, compression), columns dense, HMF (default, best split), LMF, pruning, HMF−LMF %.

    "(noise)" marks a difference inside the noise (paired t-test, 5%). ``value``/``metric``: another
    column of the cells to tabulate, e.g. ``"m_token_accuracy"`` / ``"token_accuracy"``.
    """
    if value != "value":
        df = df[df[value].notna()].assign(value=df[value], metric=metric or value)
    s = summarize(df)
    pairs = comparisons(list(s.label))
    comp = {(lab, ag): hmf_vs_lmf(df, lab, ag) for lab, ag in pairs}
    names = display_names()
    labels = [lab for lab in names if lab in set(s.label)]
    labels += [lab for lab in dict.fromkeys(s.label) if lab not in names and "@" not in str(lab)]  # e.g. hmf[top]
    text = []
    for task, st in s.groupby("task", sort=False):
        metric = st.metric.iloc[0]
        better = "lower is better" if metric in LOWER_IS_BETTER else "higher is better"
        n = int(st.n.max())
        text.append(f"### {task}: {metric} ({better}), mean ± sd over {n} seeds\n")
        head = (["regime", "compression"] + [names.get(lab, lab) for lab in labels]
                + [_PAIR_HEADS.get((lab, ag), f"{lab} − {ag}") for lab, ag in pairs])
        body = []
        for (regime, c), g in st.groupby(["regime", "compression"]):
            vals = {r.label: _fmt(r.mean, r.sd, metric) for r in g.itertuples()}
            cells = [regime, f"{c:g}x"] + [vals.get(lab, "–") for lab in labels]
            for pair in pairs:
                cd = comp[pair]
                hit = cd[(cd.task == task) & (cd.regime == regime) & (cd.compression == c)] if len(cd) else cd
                cells.append(_pct(hit.iloc[0]) if len(hit) else "–")
            body.append(cells)
        text.append(markdown_table(pd.DataFrame(body, columns=head)))
    return "\n".join(text)


def sweep_table(df: pd.DataFrame, task: str | None = None) -> pd.DataFrame:
    """The trained split sweep: mean ± sd per (regime, compression, split fraction) incl. LMF (0), default and heuristic rows."""
    methods = df.method if "method" in df else df.label.str.split(r"[@\[(]", regex=True).str[0]
    split = methods.map(lambda m: recipe(m).takes_heuristic).astype(bool)
    d = df[split | (df.label == AGAINST)]
    d = d[~d.label.str.endswith("(best)")]
    if task is not None:
        d = d[d.task == task]
    d = d.assign(frac=d.split_frac.where(d.label != AGAINST, 0.0))
    keys = ["task", "regime", "compression", "label"]
    g = d.groupby(keys, dropna=False)
    out = g["value"].agg(mean="mean", sd=lambda v: float(v.std(ddof=1)) if len(v) > 1 else 0.0, n="count")
    for col in ("frac", "split_hh", "rank_hh", "split_ih", "rank_ih", "params"):
        if col in d:
            out[col] = g[col].first()
    return out.reset_index().sort_values(["task", "regime", "compression", "frac"], na_position="last")


def write_grid(df: pd.DataFrame, out, sweep_task: str | None = None) -> list[Path]:
    """Write ``cells.csv``, ``summary.csv``, ``hmf_vs_lmf.csv``, ``sweep.csv`` and ``results.md`` into ``out``.

    Tables only: the figures of a grid are drawn by the course layer (:func:`hmf_lab.course.figures.grid_figures`,
    which ``hmf-lab reproduce`` calls after the run)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    files = {name: out / name for name in ("cells.csv", "summary.csv", "hmf_vs_lmf.csv", "sweep.csv", "results.md")}
    df.to_csv(files["cells.csv"], index=False)
    summarize(df).to_csv(files["summary.csv"], index=False)
    pairs = comparisons(list(df.label)) or [(lab, AGAINST) for lab in COMPARED]
    pd.concat([hmf_vs_lmf(df, lab, ag).assign(against=ag) for lab, ag in pairs], ignore_index=True).to_csv(
        files["hmf_vs_lmf.csv"], index=False)
    sw = sweep_table(df)
    sw.to_csv(files["sweep.csv"], index=False)
    text = "# HMF vs LMF vs pruning, post and scratch\n\n" + results_markdown(df)
    tr = df[df.task == "translation"]
    if len(tr) and "m_token_accuracy" in tr:
        text += ("\nSecondary metric (BLEU is often 0 after short training): teacher-forced token accuracy.\n\n"
                 + results_markdown(tr, "m_token_accuracy", "token_accuracy"))
    if "bleu" in set(df.metric):
        from hmf_lab.nlp.bleu import signature
        text += f"\nBLEU: corpus BLEU on lower-cased word tokens, sacrebleu signature `{signature()}`.\n"
    files["results.md"].write_text(text)
    return list(files.values())


def load_grid(folder) -> pd.DataFrame:
    """The ``cells.csv`` of a grid run (``hmf-lab reproduce --out folder``).

    >>> load_grid("/nonexistent")
    Traceback (most recent call last):
    ...
    FileNotFoundError: no cells.csv in /nonexistent; create it with `hmf-lab reproduce --task lm intent translation --regime both --out /nonexistent`
    """
    f = Path(folder) / "cells.csv"
    if not f.is_file():
        raise FileNotFoundError(f"no cells.csv in {folder}; create it with `hmf-lab reproduce --task lm intent "
                                f"translation --regime both --out {folder}`")
    return pd.read_csv(f)


def live_regimes(task: str = "intent", compression: float = 8, split_frac: float | None = None,
                 regime: str = "scratch", seeds: int = 1, quick: bool | None = None,
                 steps: int | None = None) -> pd.DataFrame:
    """A small live grid in this process: dense, HMF at ``split_frac`` (None = default split) and every other
    factorization of the registry (LMF, HMF by columns) at their default point, one regime.

    For sliders: quick mode (``HMF_LAB_QUICK=1`` or ``quick=True``) trains a few steps; otherwise
    the task's live budget (``live_post_steps`` / ``live_scratch_steps`` of its settings, a few seconds
    per model: intent scratch 150 steps, fewer than the committed run's 800, said in the notebook);
    ``steps`` overrides both.

    >>> df = live_regimes("intent", 8, 0.5, "scratch", quick=True)  # doctest: +SKIP
    >>> sorted(df.label)  # doctest: +SKIP
    ['dense', 'hmf@0.5', 'hmf_col', 'lmf']
    """
    from hmf_lab.factor._validation import quick_mode
    q = quick_mode() if quick is None else bool(quick)
    if regime not in REGIMES:
        raise ValueError(f"unknown regime {regime!r}; expected one of {REGIMES}")
    if steps is None and not q:
        steps = task_settings(task).steps(regime, live=True)
    cells = []
    for seed in range(int(seeds)):
        for m in cell_methods():
            rec = recipe(m)
            if rec.is_dense:
                cells.append(Cell(task, regime, m, 1.0, seed, quick=q, steps=steps))
            elif rec.fine_tune == "factors":   # the factorizations: HMF at the slider's split, and LMF
                frac = split_frac if rec.takes_heuristic else None
                cells.append(Cell(task, regime, m, float(compression), seed, split_frac=frac, quick=q, steps=steps))
    return pd.DataFrame(run_cells(cells, jobs=1, progress=False))
