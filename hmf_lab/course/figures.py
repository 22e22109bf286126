"""Figures of the experiments, written as PNG files next to their tables.

The experiments layer writes tables (CSV, Markdown); drawing belongs to the course layer, so
``hmf-lab reproduce`` calls :func:`grid_figures` after the run (``hmf_lab.cli``) and a notebook can call it
on any results folder.

>>> import pandas as pd, tempfile
>>> grid_figures(pd.DataFrame(columns=["task", "label", "compression", "frac"]), tempfile.mkdtemp())
[]
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd

__all__ = ["grid_figures", "task_figures", "save"]


def save(draw, path, figsize=(6, 3.8), dpi=80) -> Path:
    """Draw with ``draw(ax)`` on a new figure, save it to ``path`` and close it; returns the path."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=figsize)
    try:
        draw(ax)
        fig.tight_layout()
        fig.savefig(path, dpi=dpi)
    finally:
        plt.close(fig)
    return Path(path)


def grid_figures(df: pd.DataFrame, out) -> list[Path]:
    """``<task>_regimes.png`` for every task of a grid and ``sweep_<task>_<c>x.png`` for every trained split
    sweep with at least 3 points; ``df`` is a grid's cells (``hmf_lab.experiments.grid.load_grid(out)``)."""
    from hmf_lab.course import plots
    from hmf_lab.experiments.grid import summarize, sweep_table

    out = Path(out)
    written = []
    if df.empty:
        return written
    for task in df.task.unique():
        written.append(save(lambda ax: plots.plot_regimes(summarize(df[df.task == task]), ax=ax),
                            out / f"{task}_regimes.png", figsize=(7, 3.8)))
    sw = sweep_table(df)
    from hmf_lab.nn.methods import DENSE

    for (task, c), g in sw[sw.label != DENSE.name].groupby(["task", "compression"]):
        if g.frac.notna().sum() < 3:
            continue
        cells = df[(df.task == task) & (df.compression == c)]
        written.append(save(lambda ax: plots.plot_split_sweep(cells, ax=ax), out / f"sweep_{task}_{c:g}x.png"))
    return written


def task_figures(df: pd.DataFrame, out) -> list[Path]:
    """``<task>_metric.png`` and ``<task>_time.png`` of one task's compare table (``reproduce.run_task``)."""
    from hmf_lab.course.plots import plot_metric, plot_time

    out, task = Path(out), df.task.iloc[0]
    return [save(lambda ax: fn(df, ax=ax), out / f"{task}_{name}.png", figsize=(5.5, 3.8), dpi=90)
            for name, fn in (("metric", plot_metric), ("time", plot_time))]


def grid_figures_in(out) -> list[Path]:
    """:func:`grid_figures` of the grid saved in folder ``out`` (what ``hmf-lab reproduce`` calls)."""
    from hmf_lab.experiments.grid import load_grid

    return grid_figures(load_grid(out), out)
