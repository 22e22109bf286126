"""Post-training compression of a shipped model, the regime of the field: calibration batches only, no training.

:func:`post_training_cells` compresses a shipped task model (``hmf_lab.nlp.tasks``) with each method at each
compression, on the experiments' layers (:func:`~hmf_lab.experiments.pipeline.compressed_layers`), with
calibration inputs drawn from the training data (:meth:`~hmf_lab.nlp.tasks.Task.calibration_input`; one
**seed** = one calibration draw), and evaluates it without any fine-tuning. Methods that take no
calibration inputs (``lmf``, ``prune``) give the same model for every seed. :func:`post_training_tables`
summarizes (mean ± sd over seeds, :func:`~hmf_lab.experiments.grid.summarize`) and compares each method
with LMF and with OATS (paired over seeds, t-test at 5%: :func:`~hmf_lab.experiments.grid.hmf_vs_lmf`).
``scripts/transformer_post_training.py`` runs it on the two transformers.

>>> POST_METHODS
('hmf', 'hmf_col', 'lmf', 'aa_lmf', 'wanda', 'oats')
"""
from __future__ import annotations

import time

import pandas as pd
import torch

from hmf_lab.experiments.grid import LOWER_IS_BETTER, hmf_vs_lmf, summarize
from hmf_lab.experiments.pipeline import compressed_layers, shipped_task
from hmf_lab.experiments.tables import markdown_table
from hmf_lab.nn.compress import compress, count_params
from hmf_lab.nn.methods import get_method

__all__ = ["POST_METHODS", "post_training_cells", "post_training_tables"]

#: the methods compared after training: HMF by rows and by columns, LMF, and today's activation-aware baselines
POST_METHODS = ("hmf", "hmf_col", "lmf", "aa_lmf", "wanda", "oats")


def _stored(model, layers) -> int:
    return sum(count_params(model.get_submodule(name)) for name in layers)


def post_training_cells(task: str, methods=POST_METHODS, compressions=(1.5, 2, 3, 4), seeds: int = 3, *,
                        quick: bool = False, calibration: int | None = None, eval_size: int | None = None,
                        progress: bool = False) -> pd.DataFrame:
    """One row per (method, compression, calibration seed) of the shipped ``task`` model, plus the dense one.

    Columns (those of the grid's cells, so :func:`~hmf_lab.experiments.grid.summarize` reads them): ``task``,
    ``regime`` ("post"), ``metric``, ``compression``, ``label`` (the method), ``seed``, ``value`` (the task's
    metric, no fine-tuning), ``params`` (stored values of the compressed layers), ``actual_compression``,
    ``layers`` (how many modules the method replaced), ``seconds`` (compression time). ``calibration``:
    examples per draw (default: the task's :meth:`~hmf_lab.nlp.tasks.Task.calibration_input` default).

    >>> df = post_training_cells("intent_tf", ["lmf"], [2], seeds=1, quick=True, eval_size=20)  # doctest: +SKIP
    """
    if int(seeds) < 1:
        raise ValueError(f"seeds must be an int >= 1 (calibration draws), got {seeds!r}")
    cs = [float(c) for c in compressions]
    if not cs or any(not c > 1 for c in cs):
        raise ValueError(f"compressions must be numbers > 1 (e.g. 1.5 2 3 4), got {list(compressions)}")
    recs = {m: get_method(m) for m in methods}
    t, model = shipped_task(task, quick, eval_size)
    layers = compressed_layers(model)
    dense = _stored(model, layers)
    base = dict(task=task, regime="post", metric=t.metric)
    rows = [dict(base, compression=1.0, label="dense", seed=0, value=t.evaluate(model)[t.metric], params=dense,
                 actual_compression=1.0, layers=0, seconds=0.0)]
    for seed in range(int(seeds)):
        X = t.calibration_input(seed=seed) if calibration is None else t.calibration_input(seed=seed, n=int(calibration))
        for c in cs:
            for m, rec in recs.items():
                kw = {"X": X} if "X" in rec.options else {}
                t0 = time.perf_counter()
                small = compress(model, m, compression=c, layers=layers, **kw)
                sec = time.perf_counter() - t0
                with torch.no_grad():
                    value = t.evaluate(small)[t.metric]
                stored = _stored(small, layers)
                rows.append(dict(base, compression=c, label=m, seed=seed, value=value, params=stored,
                                 actual_compression=dense / stored, layers=len(layers), seconds=sec))
                if progress:
                    print(f"{task} seed {seed} {c:g}x {m}: {t.metric} {value:.4f} ({sec:.1f} s)", flush=True)
    return pd.DataFrame(rows)


def post_training_tables(df: pd.DataFrame, against=("lmf", "oats")) -> str:
    """Markdown: per task, rows (compression, method): mean ± sd over the calibration seeds, and the paired
    difference with each method of ``against`` (% of its mean, positive = better; "(noise)": inside the noise
    of a paired t-test at 5%).

    >>> df = pd.DataFrame(dict(task="t", regime="post", metric="accuracy", compression=[1.0] + [2.0] * 6,
    ...     label=["dense"] + ["hmf"] * 3 + ["lmf"] * 3, seed=[0, 0, 1, 2, 0, 1, 2],
    ...     value=[0.9, 0.8, 0.82, 0.81, 0.7, 0.7, 0.7], params=1, actual_compression=2.0))
    >>> for line in post_training_tables(df, against=("lmf",)).splitlines()[-3:]:
    ...     print(line)
    | 2 | dense | 0.9000 ± 0.0000 | – |
    | 2 | hmf | 0.8100 ± 0.0100 | +15.71% |
    | 2 | lmf | 0.7000 ± 0.0000 | – |
    """
    s = summarize(df)
    out = []
    for task, st in s.groupby("task", sort=False):
        metric = st.metric.iloc[0]
        d = df[df.task == task]
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
        out.append(f"### {task}: {metric} ({better}), mean ± sd over {int(st.n.max())} calibration seeds, "
                   f"no fine-tuning\n")
        out.append(markdown_table(pd.DataFrame(rows)))
    return "\n".join(out)
