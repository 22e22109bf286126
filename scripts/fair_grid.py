"""Issue 19, part 5: the grid rerun on the fixed protocol, read against LMF.

The cells come from one ``hmf-lab reproduce`` run (frequency-ordered vocabularies, the order-invariant default
split heuristic, HMF by rows and by columns, LMF, pruning, uniform and greedy allocation):

    HMF_LAB_DATA=... hmf-lab reproduce --task lm intent translation --regime both --seeds 3 --compression 4 8 \\
        --methods dense hmf hmf_col lmf prune --allocate uniform greedy --sweep-task none --heuristic none \\
        --jobs 2 --out hmf_lab/assets/results/fair_grid
    python scripts/fair_grid.py hmf_lab/assets/results/fair_grid

This script writes ``comparison.csv`` / ``comparison.md`` into the run folder: every row against LMF under the same
allocation (% of LMF's mean, positive = better than LMF; paired t-test over the seeds at 5%), beside the old
default's line (the grid before the fix, ``hmf_lab/assets/results/cells.csv``: HMF keeping the first rows of an
alphabetically sorted vocabulary, against that grid's own LMF). Translation is read twice: BLEU, and token
accuracy (400 scratch steps leave BLEU near 0, where a percentage means nothing). ``allocation.md``: the
per-matrix compression each greedy allocation reached, and every cell's total.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

from hmf_lab.experiments import fair_test as F
from hmf_lab.experiments.grid import load_grid
from hmf_lab.experiments.tables import markdown_table

OLD = Path(__file__).resolve().parents[1] / "hmf_lab" / "assets" / "results" / "cells.csv"


def token_accuracy(df: pd.DataFrame) -> pd.DataFrame:
    """Translation cells with their token accuracy as the value (metric ``token_accuracy``)."""
    if "m_token_accuracy" not in df:
        return df.iloc[:0]
    t = df[(df.task == "translation") & df["m_token_accuracy"].notna()]
    return t.assign(value=t["m_token_accuracy"], metric="token_accuracy", task="translation (token accuracy)")


def allocation_table(df: pd.DataFrame) -> pd.DataFrame:
    """Per (task, compression, label) under greedy allocation: the per-matrix allocation (one seed's record: it
    does not depend on the seed) and the whole model's compression (mean over the cells)."""
    g = df[(df.get("allocate", "uniform") == "greedy") & df.label.ne("dense")]
    rows = []
    for (task, c, label), h in g.groupby(["task", "compression", "label"]):
        alloc = h["allocation"].dropna().iloc[0] if "allocation" in h and h["allocation"].notna().any() else ""
        rows.append(dict(task=task, compression=f"{c:g}x", label=label,
                         reached=f"{h.actual_compression.mean():.3f}x", per_matrix=alloc))
    return pd.DataFrame(rows)


def reached(df: pd.DataFrame) -> pd.DataFrame:
    """The whole model's compression each row reached (mean over its cells): rows (task, compression), one
    column per label."""
    r = df[df.label != "dense"].groupby(["task", "compression", "label"]).actual_compression.mean().round(3)
    wide = r.unstack("label").reset_index()
    wide["compression"] = [f"{c:g}x" for c in wide["compression"]]
    wide.columns.name = None
    return wide


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("folder", type=Path, help="a reproduce run folder (its cells.csv)")
    p.add_argument("--old", type=Path, default=OLD, help="cells of the grid before the fix (the old default's line)")
    a = p.parse_args(argv)
    new = load_grid(a.folder)
    old = pd.read_csv(a.old) if a.old and a.old.is_file() else None
    if old is None:
        print(f"no {a.old}: the old default's line is left out", file=sys.stderr)
    cmp = pd.concat([F.grid_comparison(new, old),
                     F.grid_comparison(token_accuracy(new), None if old is None else token_accuracy(old))],
                    ignore_index=True)
    cmp.to_csv(a.folder / "comparison.csv", index=False)
    seeds = int(new.seed.nunique())
    md = ["# The grid on the fixed protocol: every row against LMF under the same allocation", "",
          f"% of LMF's mean (positive = better than LMF), paired t-test over {seeds} seeds at 5% "
          "(\"(noise)\": not distinguishable from 0). Command and protocol: `scripts/fair_grid.py`'s docstring.", "",
          F.grid_comparison_markdown(cmp), "",
          "## Whole-model compression reached (uniform: every matrix at c; greedy: per matrix below)", "",
          markdown_table(reached(new)), "",
          "## Greedy allocation per matrix (k = dense rows or columns, r = rank)", "",
          markdown_table(allocation_table(new))]
    (a.folder / "comparison.md").write_text("\n".join(md) + "\n")
    print("\n".join(md))
    print(f"\nwrote {a.folder / 'comparison.csv'} and {a.folder / 'comparison.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
