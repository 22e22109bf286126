"""The notebook 04 and 05 sliders: BudgetExplorer (compression -> iso-line, budget solver, error/params/time)
and HeuristicExplorer (split heuristics compared live)."""
from __future__ import annotations

import pytest
import torch

import hmf_lab as hl
from hmf_lab.course.widgets import BudgetExplorer, HeuristicExplorer


@pytest.fixture
def W():
    return hl.synthetic.with_spectrum(48, 40, "exp", decay=0.1, seed=2)


def test_budget_explorer_follows_the_compression_slider(W):
    bx = BudgetExplorer(W, compressions=(2, 4, 8), value=4, step=4, time=True, min_run_time=0.001)
    m, n = W.shape
    for c in (2.0, 8.0, 4.0):
        bx.compression.value = c
        st = bx.state
        assert st["compression"] == c and st["params"] <= m * n / c
        # the slider jumps to the budget solver's answer, which matches a fresh search over hl.budget
        b = hl.budget(W.shape, c, step=4)
        errs = [hl.relative_error(W, hl.hmf(W, k, r)) for k, r in zip(b["split"], b["rank"])]
        assert st["error"] == pytest.approx(min(errs), rel=1e-4) and st["split"] == st["best_split"]
        assert st["lmf_error"] == pytest.approx(hl.relative_error(W, hl.lmf(W, st["lmf_rank"])), rel=1e-4)
        assert st["time_hmf"] > 0 and st["time_dense"] > 0 and "measured time" in bx.readout.value
    # walking along the line: error and split change, the budget holds, best stays
    other = [k for k in bx.split.options if k != bx.state["split"]][0]
    bx.split.value = other
    assert bx.state["split"] == other and bx.state["error"] >= bx.state["best_error"]
    assert bx.state["params"] <= m * n / 4
    bx.best.click()
    assert bx.state["split"] == bx.state["best_split"]


def test_budget_explorer_rejects_bad_arguments(W):
    with pytest.raises(ValueError, match=r"value must be one of compressions \[2\.0, 4\.0\], got 3"):
        BudgetExplorer(W, compressions=(2, 4), value=3, time=False)
    with pytest.raises(ValueError, match="step must be an int >= 1, got 0"):
        BudgetExplorer(W, step=0, time=False)
    with pytest.raises(ValueError, match="unknown heuristic 'nope'"):
        BudgetExplorer(W, heuristic="nope", time=False)


def test_heuristic_explorer_compares_at_equal_size(W):
    hx = HeuristicExplorer(W, heuristics=["top", "row_norm", "greedy"], time=True, min_run_time=0.001)
    t = hx.table
    assert list(t["heuristic"]) == ["top", "row_norm", "greedy"] and t["params"].nunique() == 1
    k, r = hx.choice()
    for h, e in zip(t["heuristic"], t["error"]):
        assert e == pytest.approx(hl.relative_error(W, hl.hmf(W, k, r, heuristic=h)), rel=1e-4)
    assert (t["time_us"] > 0).all() and t["vs_best"].min() == pytest.approx(1.0)
    hx.share.value = 0.6
    k2, _ = hx.choice()
    assert k2 > k and hx.state["split"] == k2
    hx.heuristics.value = ("top",)
    assert list(hx.table["heuristic"]) == ["top"]


def test_heuristic_explorer_output_error_with_inputs(W):
    X = hl.synthetic.concentrated_inputs(64, W.shape[1], directions=3, seed=0)
    hx = HeuristicExplorer(W, X=X, heuristics=["top", "activation"], time=False)
    assert "output_error" in hx.table.columns and hx.table["output_error"].notna().all()


def test_heuristic_explorer_rejects_bad_arguments(W):
    with pytest.raises(ValueError, match="heuristics must be registered names"):
        HeuristicExplorer(W, heuristics=["nope"], time=False)
    with pytest.raises(ValueError, match="heuristics must be registered names"):
        HeuristicExplorer(W, heuristics=["activation"], time=False)  # needs X
    with pytest.raises(ValueError, match=r"share must be in \[0, 1\), got 1.5"):
        HeuristicExplorer(W, share=1.5, time=False)
    with pytest.raises(ValueError, match="value must be one of compressions"):
        HeuristicExplorer(W, value=3, time=False)


@pytest.mark.parametrize("size", [128])
def test_rank_doubling_demo_has_an_interior_optimum(size):
    """Notebook 02's demonstration matrix (loud rows sorted to the top + a decaying tail): at 4x the lowest-error
    split lies strictly inside the feasible range, and the rank bound reaches about (m+n)/n = 2x LMF's at the end."""
    W = hl.synthetic.loud_rows(size, size, n_loud=size // 16, loudness=4.0, rank=size // 8, noise=0.3, seed=0)
    W = W[torch.argsort(W.norm(dim=1), descending=True)]
    b = hl.budget(W.shape, compression=4, step=2)
    cache = hl.HMFCache(W)
    b["error"] = [cache.error(k, r) for k, r in zip(b["split"], b["rank"])]
    best = b.loc[b["error"].idxmin()]
    assert 0 < best["split"] < b["split"].max()
    assert best["error"] < b["error"].iloc[0] and best["error"] < b["error"].iloc[-1]
    lmf_rank = int(b["rank"].iloc[0])
    assert 1.8 <= b["rank_bound"].max() / lmf_rank <= (size + size) / size
