"""Post-training compression of a shipped model, the regime of the field: calibration batches only, no training.

:func:`post_training_cells` compresses a shipped task model (``hmf_lab.nlp.tasks``) with each method at each
compression, on the experiments' layers (:func:`~hmf_lab.experiments.pipeline.compressed_layers`), with
calibration inputs drawn from the training data (:meth:`~hmf_lab.nlp.tasks.Task.calibration_input`; one
**seed** = one calibration draw), and evaluates it without any fine-tuning (regime ``"post"``), or, with
``fine_tune_steps=N``, after N steps of fine-tuning on the training data (regime ``"post+ft"``, the dense
model fine-tuned alike as the control). Methods that take no calibration inputs (``lmf``, ``prune``) give
the same compressed model for every seed. :func:`post_training_tables` summarizes (mean ± sd over seeds,
:func:`~hmf_lab.experiments.grid.summarize`) and compares each method with LMF and with OATS (paired over
seeds within a regime, t-test at 5%: :func:`~hmf_lab.experiments.grid.hmf_vs_lmf`).
``scripts/transformer_post_training.py`` runs it on the two transformers.

>>> POST_METHODS
('hmf', 'hmf_col', 'lmf', 'aa_lmf', 'wanda', 'oats')
"""
from __future__ import annotations

import copy
import numbers
import time

import pandas as pd
import torch

from hmf_lab.experiments.grid import LOWER_IS_BETTER, hmf_vs_lmf, summarize
from hmf_lab.experiments.pipeline import compressed_layers, shipped_task, task_settings
from hmf_lab.experiments.tables import markdown_table
from hmf_lab.nn.compress import compress, count_params
from hmf_lab.nn.methods import get_method

__all__ = ["POST_METHODS", "post_training_cells", "post_training_tables"]

#: the methods compared after training: HMF by rows and by columns, LMF, and today's activation-aware baselines
POST_METHODS = ("hmf", "hmf_col", "lmf", "aa_lmf", "wanda", "oats")


#: fine-tuning seed = this + the calibration seed, as the post cells of the experiment pipeline
#: (``hmf_lab.experiments.pipeline._run``: ``1000 + cell.seed``)
FT_SEED_OFFSET = 1000


def _stored(model, layers) -> int:
    return sum(count_params(model.get_submodule(name)) for name in layers)


def _check_steps(steps) -> int:
    if isinstance(steps, bool) or not isinstance(steps, numbers.Integral) or steps < 0:
        raise ValueError(f"fine_tune_steps must be an int >= 0 (0: no fine-tuning), got {steps!r}")
    return int(steps)


def _fine_tune(t, model, steps: int, lr: float, seed: int) -> float:
    """Fine-tune ``model`` in place (the task's training loop, :meth:`~hmf_lab.nlp.tasks.Task.fine_tune`);
    returns the seconds it took (0 with no steps)."""
    if not steps:
        return 0.0
    t0 = time.perf_counter()
    t.fine_tune(model, steps, lr=lr, seed=FT_SEED_OFFSET + seed, progress=False)
    return time.perf_counter() - t0


def post_training_cells(task: str, methods=POST_METHODS, compressions=(1.5, 2, 3, 4), seeds: int = 3, *,
                        quick: bool = False, calibration: int | None = None, eval_size: int | None = None,
                        progress: bool = False, fine_tune_steps: int = 0,
                        fine_tune_lr: float | None = None) -> pd.DataFrame:
    """One row per (method, compression, calibration seed) of the shipped ``task`` model, plus the dense one.

    Columns (those of the grid's cells, so :func:`~hmf_lab.experiments.grid.summarize` reads them): ``task``,
    ``regime`` ("post", or "post+ft" with fine-tuning), ``metric``, ``compression``, ``label`` (the method),
    ``seed``, ``value`` (the task's metric), ``params`` (stored values of the compressed layers),
    ``actual_compression``, ``layers`` (how many modules the method replaced), ``seconds`` (compression time),
    ``steps`` (fine-tuning steps), ``ft_seconds`` (fine-tuning time). ``calibration``: examples per draw
    (default: the task's :meth:`~hmf_lab.nlp.tasks.Task.calibration_input` default).

    ``fine_tune_steps`` (default 0: none, one dense row): after compressing, each model (one per calibration
    seed) is fine-tuned for that many steps with the task's own training loop
    (:meth:`~hmf_lab.nlp.tasks.Task.fine_tune`: the base run's batches, Adam at the settings' ``post_lr``,
    cosine-decayed, or ``fine_tune_lr``; seed ``1000 + seed``, as the pipeline's post cells), then evaluated. The dense model is
    fine-tuned the same way once per seed (label ``dense``): the control. What trains is every parameter
    that requires a gradient: HMF/LMF/AA-LMF factors, Wanda's ``weight_orig`` under its fixed
    ``torch.nn.utils.prune`` mask (pruned weights stay zero), OATS' low-rank ``U``, ``V`` (its sparse part is
    CSR buffers: pattern **and values stay frozen**), biases, embeddings and norms. The sparse parts stay
    sparse, with the same number of nonzeros.

    >>> df = post_training_cells("intent_tf", ["lmf"], [2], seeds=1, quick=True, eval_size=20)  # doctest: +SKIP
    >>> post_training_cells("intent_tf", ["lmf"], [2], fine_tune_steps=-1)
    Traceback (most recent call last):
    ...
    ValueError: fine_tune_steps must be an int >= 0 (0: no fine-tuning), got -1
    >>> post_training_cells("intent_tf", ["lmf"], [2], fine_tune_steps=5, fine_tune_lr=0)
    Traceback (most recent call last):
    ...
    ValueError: fine_tune_lr must be a number > 0 (e.g. 2e-4), got 0
    """
    steps = _check_steps(fine_tune_steps)
    if fine_tune_lr is not None and (not isinstance(fine_tune_lr, (int, float)) or isinstance(fine_tune_lr, bool)
                                     or not fine_tune_lr > 0):
        raise ValueError(f"fine_tune_lr must be a number > 0 (e.g. 2e-4), got {fine_tune_lr!r}")
    if int(seeds) < 1:
        raise ValueError(f"seeds must be an int >= 1 (calibration draws), got {seeds!r}")
    cs = [float(c) for c in compressions]
    if not cs or any(not c > 1 for c in cs):
        raise ValueError(f"compressions must be numbers > 1 (e.g. 1.5 2 3 4), got {list(compressions)}")
    recs = {m: get_method(m) for m in methods}
    t, model = shipped_task(task, quick, eval_size)
    layers = compressed_layers(model)
    dense = _stored(model, layers)
    lr = task_settings(task, quick).post_lr if fine_tune_lr is None else fine_tune_lr
    base = dict(task=task, regime="post+ft" if steps else "post", metric=t.metric)
    tail = dict(steps=steps)
    rows = [] if steps else [dict(base, compression=1.0, label="dense", seed=0, value=t.evaluate(model)[t.metric],
                                  params=dense, actual_compression=1.0, layers=0, seconds=0.0, **tail, ft_seconds=0.0)]
    ft = f" +{steps} ft steps" if steps else ""
    for seed in range(int(seeds)):
        X = t.calibration_input(seed=seed) if calibration is None else t.calibration_input(seed=seed, n=int(calibration))
        if steps:   # the control: the dense model fine-tuned alike (never the cached shipped model itself)
            tuned = copy.deepcopy(model)
            fsec = _fine_tune(t, tuned, steps, lr, seed)
            with torch.no_grad():
                value = t.evaluate(tuned)[t.metric]
            rows.append(dict(base, compression=1.0, label="dense", seed=seed, value=value, params=dense,
                             actual_compression=1.0, layers=0, seconds=0.0, **tail, ft_seconds=fsec))
            if progress:
                print(f"{task} seed {seed} dense{ft}: {t.metric} {value:.4f} (ft {fsec:.1f} s)", flush=True)
        for c in cs:
            for m, rec in recs.items():
                kw = {"X": X} if "X" in rec.options else {}
                t0 = time.perf_counter()
                small = compress(model, m, compression=c, layers=layers, **kw)
                sec = time.perf_counter() - t0
                fsec = _fine_tune(t, small, steps, lr, seed)
                with torch.no_grad():
                    value = t.evaluate(small)[t.metric]
                stored = _stored(small, layers)
                rows.append(dict(base, compression=c, label=m, seed=seed, value=value, params=stored,
                                 actual_compression=dense / stored, layers=len(layers), seconds=sec, **tail,
                                 ft_seconds=fsec))
                if progress:
                    print(f"{task} seed {seed} {c:g}x {m}{ft}: {t.metric} {value:.4f} ({sec:.1f} s"
                          + (f", ft {fsec:.1f} s)" if steps else ")"), flush=True)
    return pd.DataFrame(rows)


def post_training_tables(df: pd.DataFrame, against=("lmf", "oats")) -> str:
    """Markdown: per task and regime (``"post"``, then ``"post+ft"`` per number of fine-tuning ``steps``: a
    table each, never pooled), rows (compression, method): mean ± sd over the calibration seeds, and the
    paired difference with each method of ``against`` within that table (% of its mean, positive = better;
    "(noise)": inside the noise of a paired t-test at 5%). Cells without a ``steps`` column count as 0.

    >>> df = pd.DataFrame(dict(task="t", regime="post", metric="accuracy", compression=[1.0] + [2.0] * 6,
    ...     label=["dense"] + ["hmf"] * 3 + ["lmf"] * 3, seed=[0, 0, 1, 2, 0, 1, 2],
    ...     value=[0.9, 0.8, 0.82, 0.81, 0.7, 0.7, 0.7], params=1, actual_compression=2.0))
    >>> for line in post_training_tables(df, against=("lmf",)).splitlines()[-3:]:
    ...     print(line)
    | 2 | dense | 0.9000 ± 0.0000 | – |
    | 2 | hmf | 0.8100 ± 0.0100 | +15.71% |
    | 2 | lmf | 0.7000 ± 0.0000 | – |
    """
    df = df.assign(steps=df["steps"].fillna(0).astype(int)) if "steps" in df else df.assign(steps=0)
    out = []
    for (task, regime, steps), d in df.groupby(["task", "regime", "steps"], sort=False):
        st = summarize(d.drop(columns="steps"))
        metric = st.metric.iloc[0]
        order = {lab: i for i, lab in enumerate(["dense", *dict.fromkeys(d.label)])}
        st = st.assign(_o=st.label.map(order)).sort_values(["compression", "_o"], kind="stable")
        rows = []
        for _, r in st.iterrows():
            row = {"compression": f"{r.compression:g}", "method": r.label, "mean ± sd": f"{r['mean']:.4f} ± {r.sd:.4f}"}
            for a in against:
                if r.label in (a, "dense"):
                    row[f"vs {a}"] = "–"
                    continue
                v = hmf_vs_lmf(d, r.label, a)
                v = v[v.compression == r.compression] if len(v) else v
                row[f"vs {a}"] = "–" if v.empty else (f"{v.pct.iloc[0]:+.2f}%"
                                                      + (" (noise)" if bool(v.inside_noise.iloc[0]) else ""))
            rows.append(row)
        better = "lower is better" if metric in LOWER_IS_BETTER else "higher is better"
        how = f"fine-tuned {steps} steps after compression (dense too)" if steps else "no fine-tuning"
        out.append(f"### {task}: {metric} ({better}), mean ± sd over {int(st.n.max())} calibration seeds, "
                   f"{how}\n")
        out.append(markdown_table(pd.DataFrame(rows)))
    return "\n".join(out)
