"""The heuristics leaderboard: columns, requirements, a custom heuristic, the plot, and error paths."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import hmf_lab as hl
import importlib

LB = importlib.import_module("hmf_lab.experiments.leaderboard")  # the module (hl.leaderboard is the function)


@pytest.fixture(scope="module")
def mats():
    return {"loud": hl.synthetic.loud_rows(48, 32, n_loud=4, rank=4, seed=0),
            "heavy": hl.synthetic.heavy_tailed(40, 32, seed=1)}


@pytest.mark.slow
def test_columns_and_scores(mats):
    df = hl.leaderboard(["top", "row_norm", "greedy", "activation", "fisher"], mats, [4, 8], progress=False)
    assert list(df.columns) == LB.COLUMNS
    assert set(df["heuristic"]) == {"top", "row_norm", "greedy"}  # activation/fisher: no X, no grads
    assert len(df) == 2 * 2 * 3
    assert df["output_error"].isna().all() and (df["weight_error"] > 0).all()
    assert np.allclose(df.loc[df.heuristic == "top", "vs_top"], 1.0)
    assert (df.groupby(["matrix", "compression"])["vs_best"].min() == 1.0).all()
    assert (df["params"] <= df["m"] * df["n"] / df["compression"] + 1e-9).all()
    assert (df["rank_reached"] == df["split"] + df["rank"]).all() and (df["time_s"] >= 0).all()
    loud = df[(df.matrix == "loud")].set_index(["compression", "heuristic"])
    assert loud.loc[(4.0, "greedy"), "weight_error"] < 0.75 * loud.loc[(4.0, "top"), "weight_error"]


@pytest.mark.slow
def test_with_inputs_and_grads(mats):
    X = hl.synthetic.concentrated_inputs(200, 32, directions=3, seed=0)
    grads = {"heavy": torch.randn(40, 32)}
    df = hl.leaderboard(["top", "activation", "fisher"], mats, [4], X=X, grads=grads, progress=False)
    assert df["output_error"].notna().all()
    assert set(df.loc[df.matrix == "heavy", "heuristic"]) == {"top", "activation", "fisher"}
    assert set(df.loc[df.matrix == "loud", "heuristic"]) == {"top", "activation"}
    act = df.set_index(["matrix", "heuristic"])
    for name in mats:
        assert act.loc[(name, "activation"), "output_error"] * 2 <= act.loc[(name, "top"), "output_error"]


def test_one_X_used_only_where_it_fits():
    mats = {"a": torch.randn(20, 8), "b": torch.randn(20, 6)}
    df = hl.leaderboard(["top", "activation"], mats, [2], X=torch.randn(30, 8), progress=False)
    assert set(df.loc[df.matrix == "a", "heuristic"]) == {"top", "activation"}
    assert df.loc[df.matrix == "b", "output_error"].isna().all()


def test_custom_heuristic_in_five_lines_on_the_leaderboard(mats):
    @hl.register_heuristic("_bottom_rows")
    def bottom_rows(W, split, *, rank, X=None):
        return torch.arange(W.shape[0] - split, W.shape[0])
    try:
        df = hl.leaderboard(["top", "_bottom_rows"], mats, [4], progress=False)
        assert "_bottom_rows" in set(df["heuristic"])
        assert "_bottom_rows" in LB.summary(df).index
    finally:
        del hl.HEURISTICS["_bottom_rows"]


def test_list_and_callable_inputs():
    df = hl.leaderboard(lambda W, split, *, rank, X=None: torch.arange(split), [torch.randn(12, 10)], 2,
                        dense_share=0.25, progress=False)
    assert df["heuristic"].tolist() == ["<lambda>"] and df["matrix"].tolist() == ["W0"]
    assert math.isnan(df["vs_top"].iloc[0])  # no "top" to compare with


@pytest.mark.slow
def test_plot_reads_back(mats):
    import matplotlib.pyplot as plt
    df = hl.leaderboard(["top", "row_norm", "greedy"], mats, [4, 8], progress=False)
    fig, ax = plt.subplots()
    out = hl.plot_leaderboard(df, ax=ax, by="vs_top")
    assert out is ax
    t = LB.summary(df, by="vs_top")
    heights = sorted(round(p.get_height(), 9) for p in ax.patches if p.get_height() > 0)
    assert heights == sorted(round(v, 9) for v in t.to_numpy().ravel())
    assert [tick.get_text() for tick in ax.get_xticklabels()] == list(t.index)
    plt.close(fig)


def test_suite_picks_up_synthetic_and_pretrained(monkeypatch):
    fake = {"lstm.weight_ih_l0": torch.randn(16, 4), "fc.weight": torch.randn(3, 8), "b": torch.randn(5)}
    from hmf_lab import nlp as models
    monkeypatch.setattr(models, "PRETRAINED", {"fake": None, "missing": None})

    def weights(name):
        if name == "missing":
            raise FileNotFoundError("no checkpoint")
        return fake
    monkeypatch.setattr(models, "pretrained_weights", weights)
    s = LB.suite(quick=True)
    assert {"low_rank_noise", "loud_rows", "heavy_tailed", "fake/lstm.weight_ih_l0", "fake/fc.weight"} == set(s)
    g = LB.pretrained_matrices(gates=True)
    assert set(g) == {"fake/fc.weight", *(f"fake/lstm.weight_ih_l0[{x}]" for x in "ifgo")}
    assert torch.equal(torch.cat([g[f"fake/lstm.weight_ih_l0[{x}]"] for x in "ifgo"]), fake["lstm.weight_ih_l0"])


def test_errors(mats):
    with pytest.raises(ValueError, match=r"unknown heuristic 'nope'; valid names are"):
        hl.leaderboard(["nope"], mats, [4], progress=False)
    with pytest.raises(ValueError, match=r"matrices is empty"):
        hl.leaderboard(["top"], {}, [4], progress=False)
    with pytest.raises(ValueError, match=r"dense_share must be a float or list of floats in \(0, 1\), got 1.5"):
        hl.leaderboard(["top"], mats, [4], dense_share=1.5, progress=False)
    with pytest.raises(ValueError, match=r"X has entries only for unknown matrices \['zzz'\]"):
        hl.leaderboard(["top"], mats, [4], X={"zzz": torch.randn(3, 32)}, progress=False)
    with pytest.raises(ValueError, match=r"X for 'loud' must have shape \(\.\.\., n\) with n = 32"):
        hl.leaderboard(["top"], mats, [4], X={"loud": torch.randn(3, 7)}, progress=False)
    with pytest.raises(ValueError, match=r"compression must be a finite number >= 1"):
        hl.leaderboard(["top"], mats, [0.5], progress=False)
    with pytest.raises(TypeError, match=r"heuristics must be names or named callables"):
        hl.leaderboard([[0, 1]], mats, [4], progress=False)
    with pytest.raises(ValueError, match=r"by must be a column of the leaderboard"):
        LB.summary(hl.leaderboard(["top"], mats, [4], progress=False), by="speed")


def test_unreachable_compression_warns():
    with pytest.warns(UserWarning, match=r"compression 50.0 is out of reach for W0 \(4, 4\); skipped"):
        df = hl.leaderboard(["top"], [torch.randn(4, 4)], [50], progress=False)
    assert df.empty and list(df.columns) == LB.COLUMNS


def test_output_error_is_relative():
    W = torch.randn(10, 6); X = torch.randn(20, 6)
    f = hl.lmf(W, 2)
    expect = float((X @ W.T - X @ f.to_dense().T).norm() / (X @ W.T).norm())
    assert hl.output_error(W, f, X) == pytest.approx(expect, rel=1e-5)


def test_compare_and_plot_oracle():
    import matplotlib.pyplot as plt
    W = hl.synthetic.loud_rows(12, 9, n_loud=2, rank=2, seed=1)
    best = hl.oracle(W, 2, 2)
    t = LB.compare(W, 2, 2, ["top", "greedy", "activation", "fisher"], oracle=best)
    assert list(t["heuristic"]) == ["greedy", "top"]  # best first; activation/fisher lack X / grads
    assert t["gap"].iloc[0] == pytest.approx(0.0, abs=1e-9) and t["gap"].iloc[1] > 0
    X = torch.randn(40, 9)
    t2 = LB.compare(W, 2, 2, ["top", "activation"], X=X)
    assert t2["output_error"].notna().all() and t2["heuristic"].iloc[0] == "activation"
    fig, ax = plt.subplots()
    assert hl.plots.plot_oracle(best, dict(zip(t["heuristic"], t["rows"])), ax=ax) is ax
    xs = sorted(round(line.get_xdata()[0], 9) for line in ax.lines)
    assert xs == sorted(round(v, 9) for v in [best.error, *[best.error_of(r) for r in t["rows"]]])
    assert sum(p.get_height() for p in ax.patches) == best.n_subsets
    plt.close(fig)


@pytest.mark.slow
@pytest.mark.data("tinyshakespeare")
def test_pretrained_inputs_shapes():
    mats = LB.pretrained_matrices(["char_lm"])
    if not mats:
        pytest.skip("the char_lm checkpoint is not shipped in data/")
    X = LB.pretrained_inputs("char_lm", length=64)
    assert X, "Tiny Shakespeare is available (data marker) but gave no inputs"
    assert set(X) <= set(mats) and len(X) >= 2
    for name, x in X.items():
        assert x.ndim == 2 and x.shape[1] == mats[name].shape[1] and x.shape[0] >= 64
    gated = LB.pretrained_matrices(["char_lm"], gates=True)
    Xg = LB.pretrained_inputs("char_lm", length=64, gates=True)
    assert set(gated) <= set(Xg)


def test_pretrained_inputs_missing_model_is_empty():
    assert LB.pretrained_inputs("no_such_model") == {}
