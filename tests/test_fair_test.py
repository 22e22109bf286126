"""experiments/fair_test: the converged run's plan, relabelling and tables (synthetic cells; the run itself is
scripts/converged_lm.py)."""
import pandas as pd
import pytest

from hmf_lab.experiments import fair_test as F

ALL_SAME = {c: True for c in F.COMPRESSIONS}


def _cells(seeds=3):
    rows = []
    for s in range(seeds):
        rows.append(dict(task="lm", regime="scratch", metric="bits_per_char", compression=1.0, label="dense",
                         method="dense", seed=s, value=2.0 + 0.01 * s, params=100, actual_compression=1.0))
        for c in F.COMPRESSIONS:
            for m, v in (("lmf", 2.5), ("hmf_col", 2.4), ("prune", 2.3)):
                rows.append(dict(task="lm", regime="scratch", metric="bits_per_char", compression=c,
                                 label=f"{m}+greedy", method=m, seed=s, value=v + 0.01 * c + 0.001 * s, params=10,
                                 actual_compression=c))
        for f in F.SWEEP_FRACS:
            rows.append(dict(task="lm", regime="scratch", metric="bits_per_char", compression=F.SWEEP_C,
                             label=f"hmf@{f:g}+greedy", method="hmf", seed=s, value=2.7 + f + 0.001 * s, params=10,
                             actual_compression=F.SWEEP_C, split_frac=f))
    return pd.DataFrame(rows)


def test_plan_is_seed_major_with_the_sweep_last_and_skips_relabelled_hmf():
    cells, relabel = F.plan(3, quick=True, steps=2, relabel=ALL_SAME)
    assert relabel == ALL_SAME
    main = [c for c in cells if c.split_frac is None]
    assert [c.seed for c in main] == sorted(c.seed for c in main)          # seed-major
    assert all(c.split_frac is not None for c in cells[len(main):])        # the sweep after the main table
    assert not any(c.method == "hmf" and c.split_frac is None for c in cells)
    assert {c.allocate for c in cells if c.method != "dense"} == {"greedy"}
    assert {c.steps for c in cells} == {2}
    cells2, _ = F.plan(1, quick=True, steps=2, relabel={**ALL_SAME, 16.0: False})
    assert sum(c.method == "hmf" and c.split_frac is None for c in cells2) == 1


def test_relabelled_rows_copy_lmf_and_say_so():
    df = F.with_relabelled(_cells(), ALL_SAME)
    h = df[df.label == "hmf+greedy"]
    assert len(h) == 9 and set(h.relabelled_from) == {"lmf+greedy"}
    key = ["compression", "seed"]
    lmf = df[df.label == "lmf+greedy"].sort_values(key)
    assert list(h.sort_values(key).value) == list(lmf.value)


def test_tables_read_the_cells():
    df = F.with_relabelled(_cells(), ALL_SAME)
    wide = F.converged_table(df)
    assert list(wide.columns) == ["8x", "16x", "25x"] and "prune+greedy" in wide.index
    assert wide.loc["lmf+greedy", "8x"].startswith("2.581 ± 0.001 (n=3)")
    a = F.against_lmf(df)
    p = a[(a.row == "prune+greedy") & (a.compression == 8.0)].iloc[0]
    assert p.pct == pytest.approx(100 * (2.581 - 2.381) / 2.581, rel=1e-6) and not p.inside_noise
    h = a[a.row == "hmf+greedy"]
    assert (h.pct == 0).all() and h.inside_noise.all()
    sw = F.sweep_summary(df)
    assert list(sw.frac) == [0.0, 0.25, 0.5, 1.0] and sw.loc[0, "label"] == "lmf+greedy"
    text = F.report(df, shipped=1.99)
    assert "dense from scratch vs the shipped model (1.990 bits/char): 2.010" in text and "split sweep" in text


def test_same_structure_and_load_errors(tmp_path):
    t = pd.DataFrame([dict(layer="l", matrix="hh_l0", stored=10, split=0, rank=2)])
    assert F.same_structure(t, t) and not F.same_structure(t, t.assign(stored=11))
    with pytest.raises(FileNotFoundError, match="scripts/converged_lm.py"):
        F.load(tmp_path)
    _cells().to_csv(tmp_path / "cells.csv", index=False)
    assert len(F.load(tmp_path)) == len(_cells())


def test_grid_comparison_pairs_each_row_with_lmf_under_its_allocation_and_the_script_writes_it(tmp_path):
    from conftest import load_script

    rows = []
    for seed in range(3):
        for label, v in (("lmf", 2.0), ("hmf", 2.2), ("hmf_col", 1.9), ("lmf+greedy", 2.0), ("hmf_col+greedy", 2.0)):
            rows.append(dict(task="lm", regime="post", metric="bits_per_char", compression=4.0, seed=seed,
                             label=label, value=v + 0.01 * seed * (label == "hmf_col+greedy"),
                             allocate="greedy" if "greedy" in label else "uniform", actual_compression=4.0,
                             allocation="decoder 4.0x k0/r3" if "greedy" in label else None))
    new = pd.DataFrame(rows)
    old = new[new.label.isin(["lmf", "hmf"])].assign(value=lambda d: d.value + (d.label == "hmf") * 0.5)
    cmp = F.grid_comparison(new, old).set_index("column")
    assert cmp.loc["HMF rows − LMF", "pct"] == pytest.approx(-10.0)          # lower bits/char is better
    assert cmp.loc["HMF cols − LMF", "pct"] == pytest.approx(5.0) and not cmp.loc["HMF cols − LMF", "inside_noise"]
    assert cmp.loc["old default: HMF rows (sorted vocab) − LMF", "pct"] == pytest.approx(-35.0)
    assert bool(cmp.loc["HMF cols − LMF (greedy)", "inside_noise"])            # +0, +0.5%, +1%: the noise
    assert "prune − LMF" not in cmp.index                                      # no prune cells: no pair
    md = F.grid_comparison_markdown(cmp.reset_index())
    assert "| lm | post | 4x | -35.00% | -10.00% | +5.00% |" in md and "(noise)" in md
    assert F.grid_comparison_markdown(F.grid_comparison(new.iloc[:0])) == "(no comparisons)\n"
    new.to_csv(tmp_path / "cells.csv", index=False)
    old.to_csv(tmp_path / "old.csv", index=False)
    mod = load_script("scripts/fair_grid.py")
    assert mod.main([str(tmp_path), "--old", str(tmp_path / "old.csv")]) == 0
    text = (tmp_path / "comparison.md").read_text()
    assert "| lm | post | 4x | -35.00% |" in text and "decoder 4.0x k0/r3" in text
    assert len(pd.read_csv(tmp_path / "comparison.csv")) == 4     # old, rows, cols, cols (greedy)
