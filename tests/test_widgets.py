"""Widgets driven headless: set slider values, read the shown numbers back, hit every extreme."""
from __future__ import annotations

import itertools
import math

import pytest
import torch

import hmf_lab as hl
from hmf_lab.widgets import Explorer, RunTimeExplorer, layers_at_budget


@pytest.fixture
def W():
    return hl.exercises.synthetic(64, 48, "power", decay=0.7, seed=2)


def shown(ex: Explorer) -> dict:
    return {"error": float(ex.error_out.value), "params": int(ex.params_out.value.split("/")[0].replace(",", "")),
            "compression": float(ex.compression_out.value.split("x")[0]), "rank_bound": int(ex.rank_out.value)}


def test_readouts_follow_the_sliders(W):
    ex = hl.explorer(W, timing=False)
    m, n = W.shape
    ex.split.value = 16
    ex.rank.value = 10
    f = hl.hmf(W, split=16, rank=10)
    s = shown(ex)
    assert s["error"] == pytest.approx(hl.relative_error(W, f), abs=1e-4)
    assert s["params"] == f.n_params
    assert s["compression"] == pytest.approx(f.compression, abs=0.01)
    assert s["rank_bound"] == f.rank_bound == 26
    # more rank: error drops, parameters grow
    before = s
    ex.rank.value = 20
    after = shown(ex)
    assert after["error"] < before["error"] and after["params"] > before["params"]
    assert 'data-block="U"' in ex.blocks_out.value and "U: 48x20" in ex.blocks_out.value
    # LMF at the same budget
    rl = ex.state["lmf_rank"]
    assert rl == ex.state["params"] // (m + n)
    assert float(ex.lmf_out.value.split()[0]) == pytest.approx(hl.relative_error(W, hl.lmf(W, rank=rl)), abs=1e-4)


@pytest.mark.parametrize("heuristic", sorted(hl.HEURISTICS))
def test_every_slider_extreme_and_every_heuristic(W, heuristic):
    X = torch.randn(40, W.shape[1], generator=torch.Generator().manual_seed(0))
    ex = hl.explorer(W, X=X, timing=False, split_step=8)
    if heuristic not in ex.heuristic.options:  # needs what a weight matrix alone cannot give (e.g. gradients)
        assert set(hl.HEURISTICS[heuristic].requires) - {"X"}
        with pytest.raises(ValueError, match="which this explorer was not given"):
            hl.explorer(W, X=X, heuristic=heuristic)
        return
    ex.heuristic.value = heuristic
    if ex._warm_thread is not None:
        ex._warm_thread.join(timeout=60)  # the new heuristic's spectra, filled in the background
    m, n = W.shape
    for k, r in itertools.product([ex.split.min, ex.split.max, m - 1], [ex.rank.min, 10_000]):
        ex.split.value = k
        ex.rank.value = min(r, ex.rank.max)
        st = ex.state
        assert 0.0 <= st["error"] <= 1.0 + 1e-9
        assert st["rank_bound"] <= min(m, n)
        ref = hl.hmf(W, split=st["split"], rank=st["rank"], heuristic=heuristic, X=X, fit="svd")
        assert st["error"] == pytest.approx(hl.relative_error(W, ref), abs=1e-4)
    ex.split.value = m
    assert ex.state["error"] == 0.0 and ex.state["rank"] == 0 and ex.rank.disabled
    assert ex.compression_out.value.startswith("1.00x")


def test_rank_slider_range_follows_split(W):
    ex = hl.explorer(W, timing=False, split_step=8)
    ex.rank.value = ex.rank.max  # 48 = n
    ex.split.value = 56
    assert ex.rank.max == 8 and ex.rank.value == 8 and ex.state["rank"] == 8


def test_compression_lock_keeps_the_budget(W):
    ex = hl.explorer(W, timing=False, split_step=4, split=8, rank=12)
    target = ex.state["compression"]
    ex.lock.value = True
    assert "(locked)" in ex.compression_out.value
    for k in (0, 4, 16, 24):
        ex.split.value = k
        st = ex.state
        m, n = W.shape
        assert st["split"] == k
        # the rank is the largest that fits the locked budget
        assert st["params"] <= m * n / target + 1e-9
        assert hl.hmf_params(m, n, k, st["rank"] + 1) > m * n / target
    ex.rank.value = 3  # moving the rank moves the split
    assert ex.state["params"] <= 64 * 48 / target + 1e-9 and ex.state["split"] > 16
    ex.split.value = 64  # past what the budget allows: stops at the last split that fits
    assert ex.state["params"] <= 64 * 48 / target + 1e-9 and ex.state["split"] < 64
    ex.lock.value = False
    ex.rank.value = 1
    assert ex.state["compression"] > target


def test_failing_heuristic_shows_its_message(W):
    @hl.register_heuristic("widget_test_fails")
    def fails(W, split, *, rank, X=None):
        if split > 8:
            raise ValueError("too many rows for this rule")
        return torch.arange(split)

    try:
        ex = hl.explorer(W, timing=False, split=8, heuristic="widget_test_fails")
        before = dict(ex.state)
        ex.split.value = 16
        assert "too many rows for this rule" in ex.status.value
        assert ex.state == before  # read-outs kept
        ex.split.value = 0
        assert ex.status.value == "" and ex.state["split"] == 0
    finally:
        del hl.HEURISTICS["widget_test_fails"]


def test_lock_above_the_dense_size(W):
    m, n = W.shape
    ex = hl.explorer(W, timing=False, split_step=8, split=56, rank=8)
    assert ex.state["compression"] < 1  # 56*48 + 8*8 + 8*48 > 64*48
    ex.lock.value = True
    B = ex.state["params"]
    ex.split.value = 0
    assert ex.state["params"] <= B and hl.hmf_params(m, n, 0, ex.state["rank"] + 1) > B or ex.state["rank"] == n


def test_lmf_only_mode(W):
    ex = hl.explorer(W, lmf_only=True)
    assert ex.split.layout.display == "none" and ex.state["split"] == 0 and not ex.timing_enabled
    ex.rank.value = 7
    assert float(ex.error_out.value) == pytest.approx(hl.relative_error(W, hl.lmf(W, rank=7)), abs=1e-4)


def test_refresh_heuristics_sees_new_registrations(W):
    ex = hl.explorer(W, timing=False)

    @hl.register_heuristic("widget_test_last")
    def last(W, split, *, rank, X=None):
        return torch.arange(W.shape[0] - split, W.shape[0])

    try:
        ex.refresh_heuristics()
        ex.heuristic.value = "widget_test_last"
        ex.split.value = 8
        assert ex.state["error"] == pytest.approx(
            hl.relative_error(W, hl.hmf(W, split=8, rank=ex.state["rank"], heuristic="widget_test_last")), abs=1e-4)
    finally:
        del hl.HEURISTICS["widget_test_last"]


def test_timing_readout_and_debounce(W):
    ex = hl.explorer(W, timing=True, debounce=0.05, min_run_time=0.01)
    ex._timer.join(timeout=30)  # the debounced job started by the first update
    with ex._timing_lock:
        pass
    assert ex.timings is not None
    assert list(ex.timings["name"]) == ["dense", "HMF", "LMF", "pruned (CSR)"]
    assert "hmf-timing" in ex.timing_out.value and "µs" in ex.timing_out.value
    df = ex.time_now()
    assert (df["median"] > 0).all()
    ex.close()


def test_layers_at_budget_same_size_and_same_outputs(W):
    L = layers_at_budget(W, split=8, rank=6)
    m, n = W.shape
    assert L["HMF"].n_params == L["pruned (CSR)"].n_params == hl.hmf_params(m, n, 8, 6)
    assert L["LMF"].n_params <= L["HMF"].n_params
    x = torch.randn(3, n)
    torch.testing.assert_close(L["dense"](x), x @ W.T)
    torch.testing.assert_close(L["HMF"](x), hl.hmf(W, split=8, rank=6)(x), atol=1e-5, rtol=1e-5)


def test_runtime_explorer_times_four_layers(W):
    rt = RunTimeExplorer(W, min_run_time=0.01, compressions=(2, 4), batches=(1, 8))
    assert list(rt.timings["name"]) == ["dense", "HMF", "LMF", "pruned (CSR)"]
    k, r = rt.choice()
    assert hl.hmf_params(64, 48, k, r) <= 64 * 48 / rt.compression.value
    first = rt.timings
    rt.batch.value = 8  # the observer reruns the timing
    assert rt.timings is not first and "batch 8" in rt.info.value


def test_explorer_argument_errors(W):
    with pytest.raises(ValueError, match="split_step must be an int >= 1"):
        Explorer(W, split_step=0)
    with pytest.raises(ValueError, match="unknown heuristic 'nope'"):
        Explorer(W, heuristic="nope")


def test_update_latency_is_recorded(W):
    ex = hl.explorer(W, timing=False)
    n0 = len(ex.latencies)
    ex.split.value = 24
    assert len(ex.latencies) == n0 + 1 and all(math.isfinite(t) and t >= 0 for t in ex.latencies)


def test_tradeoff_table_same_budget_per_compression(W):
    from hmf_lab.widgets import tradeoff_table

    m, n = W.shape
    t = tradeoff_table(W, compressions=(2, 4), min_run_time=0.01, step=8)
    assert t["method"].tolist() == ["HMF", "LMF", "pruned (CSR)"] * 2
    for c, g in t.groupby("compression"):
        assert (g["params"] <= m * n / c + 1e-9).all()
        hmf_row = g[g["method"] == "HMF"].iloc[0]
        b = hl.budget((m, n), c, step=8)
        best = min(hl.relative_error(W, hl.hmf(W, split=k, rank=r)) for k, r in zip(b["split"], b["rank"]))
        assert hmf_row["error"] == pytest.approx(best, abs=1e-4)
        lmf_row = g[g["method"] == "LMF"].iloc[0]
        assert lmf_row["error"] == pytest.approx(hl.relative_error(W, hl.lmf(W, rank=int(lmf_row["rank"]))), abs=1e-4)
    assert (t["time"] > 0).all()


def test_stop_waits_for_background_threads(W):
    """Background work (cache warm-up, debounced timing) is stopped and joined: nothing runs at exit."""
    ex = hl.explorer(W, debounce=0.05, min_run_time=0.01, split_step=8)
    ex.heuristic.value = "row_norm"  # starts a warm-up thread
    ex.split.value = 8  # schedules a timing job
    ex.stop()
    assert ex._closed
    for t in (ex._timer, ex._warm_thread):
        assert t is None or not t.is_alive()
    ex.split.value = 16  # after stop(): read-outs still update, no new timing job starts
    assert ex._timer is None or not ex._timer.is_alive()
    assert ex in hl.widgets._LIVE


@pytest.mark.slow
def test_process_exits_cleanly_after_heuristic_changes(tmp_path):
    """Changing the menu twice (refresh_heuristics, then a pick) used to leave an unjoined warm-up thread
    inside a torch kernel at exit, which aborted the interpreter ("terminate called ...")."""
    import subprocess
    import sys

    script = tmp_path / "run.py"
    script.write_text(
        "import torch, hmf_lab as hl\n"
        "W = hl.exercises.synthetic(64, 48, 'power', decay=0.7, seed=2)\n"
        "ex = hl.explorer(W, timing=False, progress=False)\n"
        "@hl.register_heuristic('exit_test_last')\n"
        "def last(W, split, *, rank, X=None):\n"
        "    return torch.arange(W.shape[0] - split, W.shape[0])\n"
        "ex.refresh_heuristics()\n"
        "ex.heuristic.value = 'exit_test_last'\n"
        "ex.heuristic.value = 'row_norm'\n"
        "print('done')\n")
    proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "done" in proc.stdout and "terminate called" not in proc.stderr
