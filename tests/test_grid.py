"""The reproduce grid: cells, regimes' initialization, noise rule, joblib (processes, Dask LocalCluster)."""
import time

import pandas as pd
import pytest
import torch
from torch import nn

import hmf_lab as hl
from hmf_lab.course import live
from hmf_lab.experiments import grid as G
from hmf_lab.experiments import pipeline as P

needs_data = pytest.mark.data("snips")   # conftest skips with hl.data.skip_note when SNIPS is not available


def test_make_cells_covers_the_grid():
    cells = G.make_cells(["intent", "lm"], ["post", "scratch"], [4, 8], seeds=3, sweep_task="intent",
                         sweep_fracs=(0.5, 1.0), best_heuristic="greedy")
    df = pd.DataFrame([dict(task=c.task, regime=c.regime, label=c.label, c=c.compression, seed=c.seed) for c in cells])
    assert not df.duplicated().any()
    # post dense: one cell per task (the shipped model); scratch dense: one per seed
    assert len(df[(df.label == "dense") & (df.regime == "post")]) == 2
    assert len(df[(df.label == "dense") & (df.regime == "scratch")]) == 6
    assert set(df[df.task == "lm"].label) == {"dense", "hmf", "lmf", "prune", "hmf_col"}
    assert set(df[df.task == "intent"].label) == {"dense", "hmf", "lmf", "prune", "hmf_col", "hmf@0.5", "hmf@1", "hmf[greedy]"}
    assert len(df[(df.task == "intent") & (df.label == "hmf@0.5")]) == 2 * 2 * 3


def test_make_cells_errors():
    with pytest.raises(ValueError, match="unknown task/regime"):
        G.make_cells(["nope"])
    with pytest.raises(ValueError, match="seeds must be an int >= 1"):
        G.make_cells(["lm"], seeds=0)
    with pytest.raises(ValueError, match="jobs must be an int >= 1"):
        G.run_cells([P.Cell("intent", "post", "dense")], jobs=0, progress=False)
    with pytest.raises(ValueError, match="unknown regime 'nope'"):
        P.run_cell(P.Cell("intent", "nope", "hmf", 4))
    with pytest.raises(ValueError, match="unknown method 'svd'"):
        P.run_cell(P.Cell("intent", "post", "svd", 4))
    with pytest.raises(ValueError, match="unknown task 'nope'"):
        P.task_settings("nope")
    with pytest.raises(ValueError, match=r"split fraction must be in \[0, 1\]"):
        P.split_for_fraction(nn.ModuleDict({"r": nn.LSTM(4, 8)}), ["r"], 2, 1.5)


def test_split_fractions_span_lmf_to_the_all_rows_end():
    net = nn.ModuleDict({"rnn": nn.LSTM(64, 128), "out": nn.Linear(128, 96)})
    assert P.split_for_fraction(net, ["rnn", "out"], 8, 0.0) == {"rnn": {"ih": 0, "hh": 0}, "out": 0}
    top = P.split_for_fraction(net, ["rnn", "out"], 8, 1.0)
    small = hl.compress(net, "hmf", compression=8, split=top)
    assert small["rnn"].rank == (1, 1) and small["out"].rank == 1
    lmf = hl.compress(net, "lmf", compression=8)
    # every point of the sweep stays within the budget of 8x (never more values than dense / 8)
    for f in (0.0, 0.25, 0.5, 0.75, 1.0):
        m = hl.compress(net, "hmf", compression=8, split=P.split_for_fraction(net, ["rnn", "out"], 8, f))
        assert hl.count_params(m) <= hl.count_params(net) / 8 + 1
    assert hl.count_params(lmf) <= hl.count_params(net) / 8


@pytest.mark.parametrize("method", ["hmf", "lmf"])
def test_factorized_init_restores_the_dense_scale(method):
    torch.manual_seed(0)
    net = nn.ModuleDict({"rnn": nn.LSTM(32, 64), "out": nn.Linear(64, 48)})
    small = hl.compress(net, method, compression=8)
    before = small["rnn"].hh[0].to_dense().norm().item()
    kept = P.factorized_init(net, small, ["rnn", "out"])
    assert set(kept) == {"rnn.ih_l0", "rnn.hh_l0", "out"} and all(0 < v < 1 for v in kept.values())
    W, W_hat = net["rnn"].weight_hh_l0.detach(), small["rnn"].hh[0].to_dense().detach()
    for g in range(4):   # every gate block has the dense init's Frobenius norm again
        blk = slice(g * 64, (g + 1) * 64)
        assert W_hat[blk].norm().item() == pytest.approx(W[blk].norm().item(), rel=1e-4)
    assert W_hat.norm().item() > before
    assert small["out"].to_dense().norm().item() == pytest.approx(net["out"].weight.norm().item(), rel=1e-4)
    if method == "hmf":   # the dense rows are the init's rows, untouched
        k = small["rnn"].hh[0].split
        torch.testing.assert_close(W_hat[:k], W[:k])


def test_noise_rule_and_percent_sign():
    assert G.inside_noise([0.01, -0.01, 0.02]) and not G.inside_noise([1.0, 1.1, 0.9])
    rows = [dict(task="lm", regime="scratch", metric="bits_per_char", compression=4.0, label=lab, seed=s, value=v)
            for lab, vals in (("hmf", (2.0, 2.1, 2.05)), ("lmf", (2.5, 2.6, 2.55))) for s, v in enumerate(vals)]
    r = G.hmf_vs_lmf(pd.DataFrame(rows)).iloc[0]
    assert r.pct == pytest.approx(100 * 0.5 / 2.55) and not r.inside_noise   # lower bits/char = HMF better: +
    md = G.results_markdown(pd.DataFrame(rows).assign(params=1, actual_compression=4.0))
    assert "+19.61%" in md and "(noise)" not in md


def _quick_cells():
    return [P.Cell("intent", "scratch", m, c, seed, quick=True)
            for seed in (0, 1) for m, c in (("dense", 1.0), ("hmf", 8.0), ("lmf", 8.0))]


def _key(rows):
    return sorted((r["label"], r["seed"], r["compression"], round(r["value"], 6), r["final_train_loss"]) for r in rows)


@pytest.mark.slow
@needs_data
def test_jobs_2_gives_the_same_metrics_as_jobs_1():
    one = G.run_cells(_quick_cells(), jobs=1, progress=False)
    two = G.run_cells(_quick_cells(), jobs=2, progress=False)
    assert _key(one) == _key(two) and len(one) == 6


@pytest.mark.slow
@needs_data
def test_quick_grid_on_a_dask_local_cluster(tmp_path):
    from distributed import Client, LocalCluster
    t0 = time.time()
    with LocalCluster(n_workers=1, threads_per_worker=2, processes=False, dashboard_address=None) as cluster, \
            Client(cluster) as client:
        df = G.run_grid(["intent"], ["post", "scratch"], [8], seeds=2, quick=True, scheduler=client,
                        sweep_fracs=(1.0,), best_heuristic=None, progress=False, log=lambda *a: None)
    print(f"LocalCluster quick grid: {len(df)} cells in {time.time() - t0:.1f} s")
    assert set(df.label) == {"dense", "hmf", "hmf@1", "hmf(best)", "lmf", "prune", "hmf_col"}
    assert df.value.between(0, 1).all() and len(df[df.label == "hmf"]) == 4
    local = G.run_cells([P.Cell("intent", "scratch", "hmf", 8.0, 1, quick=True)], jobs=1, progress=False)[0]
    dask_row = df[(df.label == "hmf") & (df.regime == "scratch") & (df.seed == 1)].iloc[0]
    assert dask_row.value == pytest.approx(local["value"]) and dask_row.final_train_loss == pytest.approx(
        local["final_train_loss"])
    files = G.write_grid(df, tmp_path)
    assert (tmp_path / "sweep.csv").is_file() and all(f.is_file() for f in files)
    from hmf_lab.course.figures import grid_figures
    pngs = grid_figures(df, tmp_path)
    assert {f.name for f in pngs} >= {"intent_regimes.png"} and all(f.stat().st_size > 1000 for f in pngs)


def test_live_regimes_rejects_an_unknown_regime():
    with pytest.raises(ValueError, match="unknown regime 'later'"):
        G.live_regimes("intent", 8, 0.5, "later")


@pytest.mark.slow
@needs_data
def test_regime_explorer_retrains_on_slider_moves():
    box = live.regime_explorer("intent", quick=True)
    assert sorted(box.result.label) == ["dense", "hmf@0.5", "hmf_col", "lmf"] and set(box.result.regime) == {"scratch"}
    box.sliders["split"].value = 0.0   # split 0: HMF has LMF's structure and the same training
    r = box.result.set_index("label")
    assert r.loc["hmf@0", "params"] == r.loc["lmf", "params"]
    assert r.loc["hmf@0", "value"] == pytest.approx(r.loc["lmf", "value"], abs=1e-6)
    box.sliders["regime"].value = "post"
    assert set(box.result.regime) == {"post"} and box.result.before.notna().sum() == len(box.result) - 1  # every method but dense


def test_best_split_transfer_and_relabel():
    base = dict(regime="post", compression=8.0, method="hmf", heuristic=None, split_source="", metric="accuracy")
    rows = [dict(base, task="intent", seed=s, label=lab, split_frac=f, value=v)
            for s in (0, 1) for lab, f, v in (("hmf", None, 0.9), ("hmf@0.5", 0.5, 0.8), ("hmf@1", 1.0, 0.7))]
    rows += [dict(base, task="lm", seed=s, label="hmf", split_frac=None, value=2.0, metric="bits_per_char")
             for s in (0, 1)]
    best = G.best_split(pd.DataFrame(rows), "intent")
    assert len(best) == 1 and (best.best_frac.isna() | best.best_frac.map(lambda v: v is None)).all()
    assert G.transfer_cells(best, ["intent", "lm"], seeds=2) == []   # the default split: nothing to train
    relab = G._relabel_best(rows, best, "intent")
    assert sorted((r["task"], r["seed"], r["label"]) for r in relab) == [
        ("intent", 0, "hmf(best)"), ("intent", 1, "hmf(best)"), ("lm", 0, "hmf(best)"), ("lm", 1, "hmf(best)")]
    rows2 = [dict(r, value=1.0) if r["label"] == "hmf@0.5" else r for r in rows]
    best2 = G.best_split(pd.DataFrame(rows2), "intent")
    cells = G.transfer_cells(best2, ["intent", "lm"], seeds=2)
    assert [(c.task, c.split_frac, c.label) for c in cells] == [("lm", 0.5, "hmf(best)")] * 2
    assert {r["task"] for r in G._relabel_best(rows2, best2, "intent")} == {"intent"}


def test_live_regimes_full_mode_uses_the_live_budget(monkeypatch):
    """A slider move in full mode trains LIVE_STEPS (seconds), not the committed run's budget; quick mode
    and an explicit ``steps`` keep theirs."""
    from hmf_lab.nlp.tasks import IntentTask

    seen = []
    monkeypatch.setattr(G, "run_cells", lambda cells, *a, **kw: seen.extend(cells) or
                        [dict(label=c.label, steps=c.steps) for c in cells])
    G.live_regimes("intent", 8, 0.5, "scratch", quick=False)
    assert {c.steps for c in seen} == {IntentTask.full_settings.live_scratch_steps} == {150}
    assert IntentTask.full_settings.live_scratch_steps < P.task_settings("intent").scratch_steps
    seen.clear()
    G.live_regimes("intent", 8, 0.5, "post", quick=True)
    assert {c.steps for c in seen} == {None} and all(c.quick for c in seen)
    seen.clear()
    G.live_regimes("intent", 8, None, "post", quick=False, steps=7)
    assert {c.steps for c in seen} == {7}



def test_cells_in_threads_of_one_process_run_one_at_a_time(monkeypatch):
    """Two cells started at once in threads (a Dask worker with threads_per_worker=2) must not share torch's
    global RNG while they train (seeds, init, dropout, batches): the pipeline runs one cell at a time per
    process, so the second enters only after the first has finished (a CI run found a threaded Dask cell
    differing from the same cell run alone: 0.617 vs 0.117)."""
    import threading

    inside, overlap, first_in = [], [], threading.Event()

    def fake_run(cell, rec, progress, keep_model):
        if inside:
            overlap.append(cell.method)
        inside.append(cell.method)
        first_in.set()
        time.sleep(0.3)   # long enough for the other thread to try to start
        inside.remove(cell.method)
        return {"method": cell.method}

    monkeypatch.setattr(P, "_run", fake_run)
    cells = [P.Cell("intent", "scratch", "hmf", 8.0, 1, quick=True), P.Cell("intent", "scratch", "lmf", 8.0, 0, quick=True)]
    t1 = threading.Thread(target=P.run_cell, args=(cells[0],))
    t1.start()
    first_in.wait(5)
    P.run_cell(cells[1])
    t1.join()
    assert overlap == []
