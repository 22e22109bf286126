"""hmf_lab.experiments.speed: the committed speed results as one table per question, and their figures."""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import pandas as pd  # noqa: E402
import pytest  # noqa: E402

import hmf_lab as hl  # noqa: E402
from hmf_lab.experiments import speed as S  # noqa: E402


def test_load_speed_leaves_out_overloaded_runs(tmp_path):
    """A run recorded at a load average above its cores (report_char_lm: 21 on 2) is dropped, with the reason."""
    tables = S.load_speed()
    assert set(tables) == {"crossover", "regime", "never_slower", "generation"}
    assert "load average 21.21" in tables.attrs["dropped"]["report_char_lm"]
    head = "Command: x. Before: load average {} / 1.0 / 1.0 (1/5/15 min) on 2 cores.\n"
    for name, load in (("quiet", 0.5), ("busy", 3.5)):
        (tmp_path / f"{name}.csv").write_text("a,b\n1,2\n")
        (tmp_path / f"{name}.md").write_text(head.format(load))
    (tmp_path / "no_header.csv").write_text("a\n1\n")  # no Markdown copy: kept (nothing says it was busy)
    mine = S.load_speed(tmp_path)
    assert sorted(mine) == ["no_header", "quiet"] and list(mine.attrs["dropped"]) == ["busy"]


def test_load_speed_rejects_a_missing_folder(tmp_path):
    with pytest.raises(ValueError, match="expected a folder of speed results"):
        S.load_speed(tmp_path / "nope")


def test_crossover_table_is_bytes_over_time():
    cx = S.load_speed()["crossover"]
    t = S.crossover_table(cx)
    row = cx[(cx.hidden == 2048) & (cx.method == "dense")].iloc[0]
    assert t.loc[2048, "dense GB/s"] == pytest.approx(S.charlm_weight_bytes(2048) / (row.ms_per_seq / row.seq * 1e-3) / 1e9)
    # the speed-up is the bytes ratio times the bandwidth ratio (what the notebook's prose says)
    for H in t.index:
        assert t.loc[H, "speed-up"] == pytest.approx(t.loc[H, "ideal"] * t.loc[H, "hmf GB/s"] / t.loc[H, "dense GB/s"],
                                                     rel=1e-6)
    assert S.charlm_weight_bytes(1024) / 2**20 == pytest.approx(
        S.load_speed()["regime"].query("method == 'dense'").weight_MB.iloc[0])


def test_regime_and_never_slower_tables():
    sp = S.load_speed()
    r = S.regime_table(sp["regime"])
    assert set(r.index.get_level_values(0)) == {"dense", "hmf", "lmf", "prune"}
    assert r.loc[("prune", 4), "vs CSR pruning"] == pytest.approx(1.0)
    ns = S.never_slower_table(sp["never_slower"])
    assert list(ns.index) == ["char_lm", "intent", "translation"] and (ns["rows"] == 12).all()
    assert ((0 <= ns["reconstructed layers"]) & (ns["reconstructed layers"] <= 1)).all()


def test_speed_figures_and_their_errors():
    sp = S.load_speed()
    ax = hl.plots.speed_regime(S.regime_table(sp["regime"]))
    assert len(ax.patches) == 6  # dense is the reference, not a bar
    ax = hl.plots.never_slower(sp["never_slower"])
    assert len(ax.collections) == 3  # one control band per model
    ax = hl.plots.speed_crossover(sp["crossover"], ideal="ideal")
    assert sum("ideal" in line.get_label() for line in ax.get_lines()) == 3
    with pytest.raises(TypeError, match="regime_table"):
        hl.plots.speed_regime(pd.DataFrame({"x": [1]}))
    with pytest.raises(TypeError, match="never_slower.csv"):
        hl.plots.never_slower(pd.DataFrame({"x": [1]}))
