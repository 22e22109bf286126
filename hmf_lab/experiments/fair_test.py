"""The fair test of issue 19: the char LM trained from scratch for its dense parent's full budget, at the paper's
compressions, every method under the greedy (whole-model) allocation, with seeds; plus a trained split sweep.

The cells are ordinary :class:`~hmf_lab.experiments.pipeline.Cell` s (regime ``scratch``, ``allocate="greedy"``,
``steps`` = the shipped model's 2600) run by the one pipeline; ``scripts/converged_lm.py`` runs them
(resumable) and this module holds what the script and notebook 07 share: the plan, the tables and the plot.

- rows: dense (same recipe, no compression), LMF, HMF by columns, pruning (gradual) and HMF by rows, each with
  the greedy allocation solved once on the **shipped, trained** model with calibration inputs from the training
  text (:func:`hmf_lab.experiments.pipeline.greedy_table`), then trained from initialization. Where HMF's
  greedy allocation equals LMF's point for point (the solver keeps no dense row), the HMF row is LMF's cells
  relabelled (:func:`with_relabelled`): the two would be the same model.
- the split sweep at 16x: HMF with each matrix at its greedy budget and its split at a fraction of the largest
  split fitting that budget (``hmf@0.5+greedy``...); fraction 0 is the LMF structure.

>>> [c.label for c in plan(1, quick=True, steps=2, relabel={8.0: True, 16.0: True, 25.0: True})[0]][:4]
['dense', 'lmf+greedy', 'lmf+greedy', 'lmf+greedy']
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from hmf_lab.experiments import grid as G
from hmf_lab.experiments.pipeline import Cell, greedy_table, recipe
from hmf_lab.experiments.tables import markdown_table

__all__ = ["METHODS", "COMPRESSIONS", "SWEEP_C", "SWEEP_FRACS", "STEPS", "RESULTS", "plan", "same_structure",
           "with_relabelled", "converged_table", "against_lmf", "sweep_summary", "report", "load", "dense_outputs",
           "GRID_PAIRS", "grid_comparison", "grid_comparison_markdown"]

METHODS = ("lmf", "hmf_col", "prune", "hmf")
COMPRESSIONS = (8.0, 16.0, 25.0)
SWEEP_C, SWEEP_FRACS = 16.0, (0.25, 0.5, 1.0)
STEPS = 2600   # the shipped char LM's training steps (hl.tasks.LMTask.base_cfg)
#: the committed run (``scripts/converged_lm.py --out hmf_lab/assets/results/converged_lm``)
RESULTS = Path(__file__).resolve().parents[1] / "assets" / "results" / "converged_lm"


def same_structure(a: pd.DataFrame, b: pd.DataFrame) -> bool:
    """Do two allocation tables build the same structure (per matrix: stored values, split 0 or none, rank)?

    >>> t = pd.DataFrame([dict(layer="l", matrix="", stored=10, split=0, rank=2)])
    >>> same_structure(t, t.assign(split=None)), same_structure(t, t.assign(rank=3))
    (True, False)
    """
    def num(v):
        return None if v is None or v != v else int(v)

    def key(t):
        return [(r["layer"], r["matrix"], int(r["stored"]), num(r.get("split")) or 0, num(r.get("rank")))
                for r in t.to_dict("records")]
    return key(a) == key(b)


def plan(seeds: int, quick: bool = False, steps: int = STEPS, relabel: dict | None = None) -> tuple[list[Cell], dict]:
    """The cells, seed-major (the sweep after every seed of the main table), and ``{compression: bool}``: the HMF
    rows that are LMF's relabelled (same greedy structure; solved here unless ``relabel`` is given)."""
    kw = dict(quick=quick, steps=steps, allocate="greedy")
    if relabel is None:
        relabel = {c: same_structure(greedy_table(Cell("lm", "scratch", "hmf", c, **kw)),
                                     greedy_table(Cell("lm", "scratch", "lmf", c, **kw))) for c in COMPRESSIONS}
    cells = []
    for seed in range(seeds):
        cells.append(Cell("lm", "scratch", "dense", 1.0, seed, quick=quick, steps=steps))
        for m in METHODS:
            for c in COMPRESSIONS:
                if recipe(m).takes_heuristic and relabel[c]:   # HMF by rows, where its allocation is LMF's
                    continue
                cells.append(Cell("lm", "scratch", m, c, seed, **kw))
    for seed in range(seeds):
        cells += [Cell("lm", "scratch", "hmf", SWEEP_C, seed, split_frac=f, **kw) for f in SWEEP_FRACS]
    return cells, relabel


def with_relabelled(df: pd.DataFrame, relabel: dict) -> pd.DataFrame:
    """Add the HMF rows that are LMF's cells (same structure), marked ``relabelled_from``."""
    extra = []
    for c, same in relabel.items():
        if same:
            rows = df[(df.label == "lmf+greedy") & (df.compression == float(c))]
            extra.append(rows.assign(method="hmf", label="hmf+greedy", relabelled_from="lmf+greedy"))
    return pd.concat([df, *extra], ignore_index=True) if extra else df


def converged_table(df: pd.DataFrame) -> pd.DataFrame:
    """Rows (dense, every method) x compressions: ``mean ± sd (n)`` of bits per character."""
    s = G.summarize(df[~df.label.str.contains("@")])
    s = s.assign(v=[f"{m:.3f} ± {sd:.3f} (n={int(n)})" for m, sd, n in zip(s["mean"], s.sd, s.n)])
    wide = s.pivot_table(index="label", columns="compression", values="v", aggfunc="first")
    wide.columns = [f"{c:g}x" for c in wide.columns]
    return wide


def against_lmf(df: pd.DataFrame) -> pd.DataFrame:
    """Every row against LMF under the same (greedy) allocation: % of LMF's mean (positive = better than LMF),
    the per-seed differences' mean and sd, the paired t-test at 5% (``inside_noise``)."""
    out = [G.hmf_vs_lmf(df, lab, "lmf+greedy") for lab in ("hmf+greedy", "hmf_col+greedy", "prune+greedy")]
    out = [o for o in out if len(o)]
    if not out:
        return pd.DataFrame()
    return pd.concat(out, ignore_index=True)[["hmf", "compression", "pct", "diff_mean", "diff_sd", "n",
                                              "inside_noise"]].rename(columns={"hmf": "row"})


def sweep_summary(df: pd.DataFrame) -> pd.DataFrame:
    """The split sweep at :data:`SWEEP_C`: mean ± sd per split fraction (``lmf+greedy`` is fraction 0)."""
    sw = df[(df.compression == SWEEP_C) & (df.label.str.startswith("hmf@") | (df.label == "lmf+greedy"))]
    if not len(sw):
        return pd.DataFrame(columns=["label", "frac", "mean", "sd", "n"])
    s = G.summarize(sw)[["label", "mean", "sd", "n"]]
    s["frac"] = [0.0 if lab == "lmf+greedy" else float(lab.split("@")[1].split("+")[0]) for lab in s.label]
    return s.sort_values("frac")[["label", "frac", "mean", "sd", "n"]].reset_index(drop=True)


def report(df: pd.DataFrame, shipped: float) -> str:
    """The whole run in Markdown: dense against the shipped model, the table, against LMF, the sweep."""
    lines = [f"dense from scratch vs the shipped model ({shipped:.3f} bits/char): "]
    d = df[df.label == "dense"]["value"]
    if len(d):
        lines[0] += (f"{d.mean():.3f} ± {d.std(ddof=1) if len(d) > 1 else 0:.3f} over {len(d)} seeds "
                     f"({100 * (d.mean() / shipped - 1):+.1f}%)")
    lines += ["", "bits per character (lower is better), mean ± sd over seeds:", "",
              converged_table(df).to_markdown()]
    a = against_lmf(df)
    if len(a):
        lines += ["", "against LMF (greedy), % of LMF's mean, positive = better than LMF; paired t-test at 5%:", "",
                  a.to_markdown(index=False, floatfmt=".3f")]
    sw = sweep_summary(df)
    if len(sw):
        lines += ["", f"split sweep at {SWEEP_C:g}x (each matrix at its greedy budget, split = fraction of the "
                      f"largest that fits; lmf+greedy = fraction 0):", "", sw.to_markdown(index=False, floatfmt=".3f")]
    return "\n".join(lines) + "\n"


#: the rerun grid's comparisons (issue 19, part 5): (column, row, against), every row against LMF under the same
#: allocation; "old default" is the shipped grid's HMF against its own LMF (sorted vocabulary, uniform)
GRID_PAIRS = (("old default: HMF rows (sorted vocab) − LMF", "hmf", "lmf"),
              ("HMF rows − LMF", "hmf", "lmf"), ("HMF cols − LMF", "hmf_col", "lmf"),
              ("prune − LMF", "prune", "lmf"),
              ("HMF rows − LMF (greedy)", "hmf+greedy", "lmf+greedy"),
              ("HMF cols − LMF (greedy)", "hmf_col+greedy", "lmf+greedy"),
              ("prune − LMF (greedy)", "prune+greedy", "lmf+greedy"))


def grid_comparison(new: pd.DataFrame, old: pd.DataFrame | None = None) -> pd.DataFrame:
    """Long table of the rerun grid: for every (task, regime, compression) and every pair of
    :data:`GRID_PAIRS`, the difference in % of the second row's mean (positive = the first is better), the
    per-seed differences' mean and sd, ``n`` and the paired t-test at 5% (``inside_noise``). ``old``: the cells
    of the grid before the fair-test fixes (its HMF against its LMF: the old default's line).

    >>> cells = pd.DataFrame(dict(task="t", regime="post", metric="accuracy", compression=4.0, seed=[0, 1] * 2,
    ...                           label=["hmf_col"] * 2 + ["lmf"] * 2, value=[0.9, 0.92, 0.8, 0.81]))
    >>> r = grid_comparison(cells).iloc[0]
    >>> r.column, round(float(r.pct), 1), bool(r.inside_noise)
    ('HMF cols − LMF', 13.0, False)
    """
    out = []
    for column, row, against in GRID_PAIRS:
        src = old if column.startswith("old default") else new
        if src is None:
            continue
        cmp = G.hmf_vs_lmf(src, row, against)
        if len(cmp):
            out.append(cmp.assign(column=column))
    if not out:
        return pd.DataFrame(columns=["task", "regime", "compression", "column", "pct", "diff_mean", "diff_sd", "n",
                                     "inside_noise"])
    return pd.concat(out, ignore_index=True)[["task", "regime", "compression", "column", "pct", "diff_mean",
                                              "diff_sd", "n", "inside_noise"]]


def grid_comparison_markdown(cmp: pd.DataFrame) -> str:
    """:func:`grid_comparison` as one Markdown table: rows (task, regime, compression), one column per pair,
    ``+x.xx%`` (positive = better than LMF), ``(noise)`` where the paired t-test cannot tell it from 0."""
    if not len(cmp):
        return "(no comparisons)\n"
    cols = [c for c, _, _ in GRID_PAIRS if c in set(cmp.column)]
    body = []
    for (task, regime, c), g in cmp.groupby(["task", "regime", "compression"], sort=False):
        by = {r.column: f"{r.pct:+.2f}%" + (" (noise)" if r.inside_noise else "") for r in g.itertuples()}
        body.append([task, regime, f"{c:g}x"] + [by.get(col, "–") for col in cols])
    return markdown_table(pd.DataFrame(body, columns=["task", "regime", "compression"] + cols))


def load(folder=None) -> pd.DataFrame:
    """The cells of a run (``cells.csv`` that ``scripts/converged_lm.py`` writes; default the committed one)."""
    folder = Path(folder) if folder is not None else RESULTS
    path = folder / "cells.csv"
    if not path.is_file():
        raise FileNotFoundError(f"no {path}; run `python scripts/converged_lm.py --out {folder}` (about 100 min on "
                                f"2 cores) or use the committed results folder")
    df = pd.read_csv(path)
    if "shipped_bits_per_char" not in df:   # written by the script since; the committed run predates the column
        df["shipped_bits_per_char"] = float("nan")
    return df


def dense_outputs(model, vocab, compression: float, heuristic=None, ids=None, layer: str = "decoder",
                  method: str = "hmf") -> dict:
    """Which outputs (characters, words) a split method keeps dense in an output layer, and how much of a text
    they cover: ``{"compression", "heuristic", "k", "dense": the symbols in vocabulary order, "share": the
    fraction of ``ids`` (token ids of ``vocab``) that fall on those rows}``.

    >>> import torch
    >>> from hmf_lab.nlp.networks import CharLM
    >>> _ = torch.manual_seed(0); m = CharLM(40, embed=8, hidden=64)
    >>> r = dense_outputs(m, [chr(48 + i) for i in range(40)], 2, heuristic="top", ids=torch.tensor([0, 1, 39]))
    >>> r["dense"][:3], r["k"] > 0, round(r["share"], 3)
    ('012', True, 0.667)
    """
    import torch

    from hmf_lab.nn.compress import compress

    small = compress(model, method, compression=compression, heuristic=heuristic, layers=[layer])
    rows = sorted(small.get_submodule(layer).rows.tolist())
    share = float(torch.isin(torch.as_tensor(ids), torch.tensor(rows, dtype=torch.long)).float().mean()) \
        if ids is not None and len(rows) else float("nan")
    return {"compression": float(compression), "heuristic": heuristic or "default", "k": len(rows),
            "dense": "".join(str(vocab[i]) for i in rows), "share": share}
