"""hmf-lab reproduce: pruning schedule, reconstructed fine-tuning, tables, plots, quick CLI runs; the one
pipeline on a toy task registered here; long runs lose nothing (interrupt, resume, no silent overwrite)."""
import json
import numpy as np

import pandas as pd
import pytest
import torch
from torch import nn
from torch.nn import functional as F

import hmf_lab as hl
from hmf_lab import nlp as M
from hmf_lab.cli import main
from hmf_lab.course import live
from hmf_lab.experiments import grid as G
from hmf_lab.experiments import pipeline as P
from hmf_lab.experiments import reproduce as R
from hmf_lab.nlp import tasks as T
from hmf_lab.nlp.training import TrainConfig

HAVE_LM = M.checkpoint_path("char_lm").is_file()


def test_cubic_schedule_is_monotone_and_hits_target():
    s = [P.cubic_sparsity(t, 0.875, 0, 70) for t in range(0, 101)]
    assert s[0] == 0.0 and s[70] == pytest.approx(0.875) and s[-1] == pytest.approx(0.875)
    assert all(b >= a for a, b in zip(s, s[1:]))
    assert P.cubic_sparsity(5, 0.5, 10, 10) == 0.0 and P.cubic_sparsity(10, 0.5, 10, 10) == 0.5


def test_gradual_pruner_reaches_hl_prune_count_and_masks_only_shrink():
    torch.manual_seed(0)
    net = nn.ModuleDict({"rnn": nn.LSTM(8, 16, batch_first=True), "out": nn.Linear(16, 5)})
    masked = hl.compress(net, "prune", compression=1)
    pruner = P.GradualPruner(masked, compression=4, steps=20, end=0.5, every=2)
    prev = {id(m) + hash(n): getattr(m, n + "_mask").clone() for m, n in pruner.masks}
    for step in range(21):
        pruner(step)
        for m, n in pruner.masks:
            cur = getattr(m, n + "_mask")
            assert bool((cur <= prev[id(m) + hash(n)]).all())
            prev[id(m) + hash(n)] = cur.clone()
    for m, n in pruner.masks:
        W = getattr(m, n)
        blocks = 4 if isinstance(m, nn.LSTM) else 1  # compress's count: the budget floor(H*n / c) per gate block
        assert int(getattr(m, n + "_mask").sum()) == hl.factor.budget.prune_keep((W.shape[0] // blocks, W.shape[1]), 4,
                                                                        blocks=blocks)
    assert hl.count_params(masked) == hl.count_params(hl.compress(net, "prune", compression=4))
    x = torch.randn(2, 3, 8)
    y, _ = masked["rnn"](x)   # the LSTM runs on the masked weights
    ref = nn.LSTM(8, 16, batch_first=True)
    with torch.no_grad():
        for name in ("weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0"):
            getattr(ref, name).copy_(getattr(masked["rnn"], name))
    torch.testing.assert_close(y, ref(x)[0])


def test_gradual_pruner_needs_masks():
    with pytest.raises(ValueError, match="no torch.nn.utils.prune masks"):
        P.GradualPruner(nn.Linear(4, 4), compression=2, steps=5)


@pytest.mark.parametrize("method", ["hmf", "lmf"])
def test_auto_mode_training_matches_the_factorized_lstm(method):
    """reproduce trains compressed LSTMs in mode="auto" (fused kernel on W_hat): same outputs and gradients."""
    torch.manual_seed(0)
    comp = hl.compress(nn.LSTM(8, 16, batch_first=True), method, compression=2)
    x = torch.randn(2, 5, 8)
    y1, (h1, _) = comp(x)
    y1.square().sum().backward()
    g1 = [p.grad.clone() for p in comp.parameters()]
    comp.zero_grad()
    comp.mode = "factorized"
    y2, (h2, _) = comp(x)
    y2.square().sum().backward()
    torch.testing.assert_close(y1, y2, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(h1, h2, atol=1e-5, rtol=1e-5)
    for a, b in zip(g1, [p.grad for p in comp.parameters()]):
        torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-4)


def _fake_results():
    rows = [dict(task="lm", metric="bits_per_char", method="dense", compression=1.0, params=100,
                 actual_compression=1.0, before=2.0, after=2.0, time_us=10.0, speedup=1.0)]
    for c, (h, l, p) in {4.0: (2.2, 2.5, 2.3), 8.0: (2.6, 2.6, 2.9)}.items():
        for m, v, t in (("hmf", h, 5.0), ("lmf", l, 4.0), ("prune", p, 20.0)):
            rows.append(dict(task="lm", metric="bits_per_char", method=m, compression=c, params=int(100 / c),
                             actual_compression=c, before=v + 1, after=v, time_us=t, speedup=10.0 / t))
    return pd.DataFrame(rows)


def test_summary_and_markdown():
    df = _fake_results()
    s = R.summary(df)
    assert s.hmf_vs_lmf_gain_pct.tolist() == pytest.approx([100 * 0.3 / 2.5, 0.0])
    assert s.hmf_speedup_vs_prune.tolist() == pytest.approx([4.0, 4.0])
    acc = df.assign(metric="accuracy")
    assert R.summary(acc).hmf_vs_lmf_gain_pct.iloc[0] == pytest.approx(100 * -0.3 / 2.5)
    md = R.task_markdown(df)
    assert md.count("\n") == 2 + len(df) and "| hmf | 4x (4.00x) | 25 | 3.2 | 2.2 |" in md


def test_plots_show_the_results():
    import matplotlib.pyplot as plt
    df = _fake_results()
    ax = hl.plots.plot_metric(df, before=False)
    ys = {line.get_label(): list(line.get_ydata()) for line in ax.get_lines()}
    assert ys["hmf (fine-tuned)"] == [2.2, 2.6] and ys["dense"] == [2.0, 2.0]
    ax2 = hl.plots.plot_time(df, ax=plt.subplots()[1])
    ys = {line.get_label(): list(line.get_ydata()) for line in ax2.get_lines()}
    assert ys["prune"] == pytest.approx([0.02, 0.02])
    plt.close("all")


def test_errors():
    with pytest.raises(ValueError, match="unknown task 'nope'"):
        R.run_task("nope")
    with pytest.raises(ValueError, match="methods must be among"):
        R.run_task("lm", methods=["svd"])
    with pytest.raises(ValueError, match="compressions must be numbers > 1"):
        R.run_task("lm", compressions=[1])


@pytest.mark.slow
@pytest.mark.data("tinyshakespeare")
@pytest.mark.skipif(not HAVE_LM, reason="needs hmf_lab/assets/char_lm.pt")
def test_cli_quick_run_writes_table_and_plots(tmp_path):
    assert main(["reproduce", "--task", "lm", "--compression", "4", "--out", str(tmp_path), "--quick",
                 "--no-progress", "--seeds", "1"]) == 0
    df = pd.read_csv(tmp_path / "cells.csv")
    assert sorted(set(zip(df.regime, df.label))) == [(r, m) for r in ("post", "scratch")
                                                     for m in ("dense", "hmf", "hmf_col", "lmf", "prune")]
    comp = df[df.method != "dense"]
    dense_params = df.dense_params.iloc[0]
    # equal parameter budget: every method within 5% of dense / 4
    assert ((comp.params - dense_params / 4).abs() / (dense_params / 4) < 0.05).all()
    post = comp[comp.regime == "post"]
    dense_post = df[(df.regime == "post") & (df.method == "dense")].value.iloc[0]
    # every compressed model is worse than the shipped dense one before fine-tuning (post-training compression)
    assert (post.before > dense_post).all()
    md = (tmp_path / "results.md").read_text()
    assert "| post | 4x |" in md and "| scratch | 4x |" in md
    assert (tmp_path / "lm_regimes.png").stat().st_size > 1000
    assert (tmp_path / "run.json").is_file() and not (tmp_path / "cells_partial.jsonl").exists()
    assert (tmp_path / "cells.jsonl").is_file()


def test_check_hmf_gain_exercise(capsys):
    df = _fake_results()

    assert hl.exercises.check_hmf_gain(df, 4, None) is False
    assert hl.exercises.check_hmf_gain(df, 4, 12.0) is True
    assert hl.exercises.check_hmf_gain(df, 4, 30.0) is False
    assert "Hint: lower bits per char is better" in capsys.readouterr().out
    assert hl.exercises.check_hmf_gain(df, 16, 1.0) is False
    assert "no HMF and LMF results at compression 16" in capsys.readouterr().out
    assert hl.exercises.check_hmf_gain(df, 4, "twelve") is False
    assert "must be a number" in capsys.readouterr().out


def test_load_results_missing_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match="no per-task result CSVs"):
        R.load_results(tmp_path)


@pytest.mark.slow
@pytest.mark.data("tinyshakespeare")
@pytest.mark.skipif(not HAVE_LM, reason="needs hmf_lab/assets/char_lm.pt")
def test_live_compare_post_training_and_slider():
    df = R.live_compare("lm", 4, eval_size=500, min_run_time=0.01)
    assert list(df.method) == ["dense", "hmf", "lmf", "prune", "hmf_col"]
    comp = df[df.method != "dense"]
    assert (comp.before == comp.after).all() and (comp.fine_tune_steps == 0).all()
    box = live.compression_slider("lm", eval_size=300, min_run_time=0.01, options=(4, 16), value=4)
    box.slider.value = 16   # the observer recomputes at 16x
    assert set(box.result.compression) == {1.0, 16.0}


# ------------------------------------------------------------------ a toy task, registered only for these tests


class ToyTask(T.Task):
    """A tiny synthetic classification task: 32 features, 4 classes, a 2-layer MLP (its 32x32 layer is compressed)."""

    name = "toy"
    metric = "accuracy"
    higher_is_better = True
    base_cfg = TrainConfig(steps=40, batch_size=16, lr=1e-2, seed=0)
    full_settings = T.Settings(post_steps=4, scratch_steps=6, prune_every=1, step_cost=0.001)
    quick_settings = T.Settings(post_steps=2, scratch_steps=3, eval_kw={"eval_n": 24}, prune_every=1,
                                min_run_time=0.01, timing_rounds=2, step_cost=0.001)

    def __init__(self, eval_n=None):
        g = torch.Generator().manual_seed(0)
        x = torch.randn(160, 32, generator=g)
        y = (x @ torch.randn(32, 4, generator=g)).argmax(1)
        self.x_train, self.y_train = x[:128], y[:128]
        self.x_test, self.y_test = x[128:128 + (eval_n or 32)], y[128:128 + (eval_n or 32)]

    def build(self, **arch):
        return nn.Sequential(nn.Linear(32, 32), nn.Tanh(), nn.Linear(32, 4))

    def batch_loss(self, model, generator, cfg):
        idx = torch.randint(0, len(self.x_train), (cfg.batch_size,), generator=generator)
        return F.cross_entropy(model(self.x_train[idx]), self.y_train[idx])

    def evaluate(self, model):
        with torch.no_grad():
            return {"accuracy": float((model(self.x_test).argmax(1) == self.y_test).float().mean())}

    def sample_input(self):
        return (self.x_test[:1],)

    @classmethod
    def pretrained(cls, quick=False, **kwargs):
        task = cls(**kwargs)
        torch.manual_seed(0)
        model = task.build()
        task.train(model, task.base_cfg, progress=False)
        return task, model


@pytest.fixture
def toy():
    """Register the toy task for one test, then remove it (and the pipeline's cached copy)."""
    T.register_task(ToyTask)
    P._task_cached.cache_clear()
    yield "toy"
    T.TASKS.pop("toy", None)
    P._task_cached.cache_clear()


def test_a_new_task_runs_post_and_scratch_through_the_one_pipeline(toy):
    st = T.task_class("toy").settings(quick=True)
    for regime in ("post", "scratch"):
        for method in P.cell_methods():
            base = P.recipe(method).is_dense
            row = P.run_cell(P.Cell(toy, regime, method, 1.0 if base else 2.0, quick=True))
            assert 0.0 <= row["value"] <= 1.0 and row["metric"] == "accuracy" and row["task"] == "toy"
            assert row["steps"] == (0 if base and regime == "post" else st.steps(regime))
            if not base:   # every method within the budget of 2x on the compressed 32x32 layer (the 32x4 head stays)
                assert row["params"] <= 32 * 32 / 2 + 32 * 4 + 1 and row["dense_params"] == 32 * 32 + 32 * 4
    df = R.run_task(toy, [2], quick=True, log=lambda *a: None)
    assert list(df.method) == ["dense", "hmf", "lmf", "prune", "hmf_col"] and (df.time_us > 0).all()
    # one race (dense first, the reference): pooled medians, their IQR as the spread, speedup = its ratio
    assert (df.time_spread_us >= 0).all() and (df.dense_time_us == df.time_us.iloc[0]).all()
    assert df.speedup.iloc[0] == 1.0 and np.allclose(df.speedup, df.dense_time_us / df.time_us)
    two = R.run_task(toy, [2, 3], methods=["lmf"], quick=True, log=lambda *a: None)
    assert list(zip(two.method, two.compression)) == [("dense", 1.0), ("lmf", 2.0), ("lmf", 3.0)]
    r = R.time_side_by_side({"a": nn.Linear(4, 4), "b": nn.Linear(4, 4)}, (torch.randn(1, 4),), 0.01, 2)
    assert list(r.medians) == ["a", "b"] and r.ratio("a") == 1.0 and list(r.table.iqr >= 0) == [True, True]
    assert "| hmf | 2x" in R.task_markdown(df)


TOY_ARGS = ["reproduce", "--task", "toy", "--compression", "2", "--seeds", "2", "--quick", "--no-progress",
            "--sweep-task", "toy", "--sweep-fracs", "1.0", "--heuristic", "none"]


def test_a_new_task_runs_in_the_cli_grid_and_figures(toy, tmp_path, capsys):
    assert main([*TOY_ARGS, "--out", str(tmp_path)]) == 0
    df = pd.read_csv(tmp_path / "cells.csv")
    assert set(df.task) == {"toy"} and set(df.regime) == {"post", "scratch"}
    assert {"dense", "hmf", "lmf", "prune", "hmf@1", "hmf(best)"} <= set(df.label)
    assert "### toy: accuracy" in (tmp_path / "results.md").read_text()
    assert (tmp_path / "toy_regimes.png").is_file()
    info = json.loads((tmp_path / "run.json").read_text())
    assert info["status"] == "finished" and info["settings"]["toy"]["post_steps"] == 2


def _counting(monkeypatch, fail_after=None):
    """Count the cells the grid runs; raise KeyboardInterrupt (a Ctrl-C) before cell number ``fail_after + 1``."""
    calls, real = [], G.run_cell

    def fake(cell, *a, **kw):
        if fail_after is not None and len(calls) >= fail_after:
            raise KeyboardInterrupt
        calls.append(cell)
        return real(cell, *a, **kw)
    monkeypatch.setattr(G, "run_cell", fake)
    return calls


def test_an_interrupted_run_stops_cleanly_and_the_same_command_resumes(toy, tmp_path, capsys, monkeypatch):
    args = [*TOY_ARGS, "--out", str(tmp_path)]
    calls = _counting(monkeypatch, fail_after=3)
    assert main(args) == 130
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "interrupted; kept 3 finished cells in" in err[0] and "cells_partial.jsonl" in err[0]
    assert "run the same command again to resume" in err[0]
    assert len((tmp_path / "cells_partial.jsonl").read_text().splitlines()) == 3 and len(calls) == 3
    assert not (tmp_path / "cells.csv").exists()

    monkeypatch.setattr(G, "run_cell", P.run_cell)
    calls = _counting(monkeypatch)
    assert main(args) == 0
    out = capsys.readouterr().out
    n_phase1 = len(G.make_cells(["toy"], P.REGIMES, [2.0], 2, True, None, "toy", (1.0,), None))
    assert f"reused 3 cells, running {n_phase1 - 3}" in out and len(calls) == n_phase1 - 3
    assert not (tmp_path / "cells_partial.jsonl").exists() and (tmp_path / "cells.jsonl").is_file()
    resumed = pd.read_csv(tmp_path / "cells.csv")

    calls.clear()   # a finished run: the same command reuses every cell, runs none, writes the same table
    assert main(args) == 0
    assert f"reused {n_phase1} cells, running 0" in capsys.readouterr().out and calls == []
    again = pd.read_csv(tmp_path / "cells.csv")
    pd.testing.assert_frame_equal(resumed.drop(columns="seconds"), again.drop(columns="seconds"))

    # the resumed run computed what an uninterrupted run computes (cells seed themselves)
    fresh = tmp_path / "fresh"
    assert main([*TOY_ARGS, "--out", str(fresh)]) == 0
    key = ["regime", "label", "seed", "compression"]
    a = resumed.sort_values(key).reset_index(drop=True)
    b = pd.read_csv(fresh / "cells.csv").sort_values(key).reset_index(drop=True)
    pd.testing.assert_series_equal(a.value, b.value)


def test_a_different_earlier_run_is_not_overwritten_without_overwrite(toy, tmp_path, capsys):
    assert main([*TOY_ARGS, "--out", str(tmp_path)]) == 0
    before = (tmp_path / "cells.csv").read_text()
    capsys.readouterr()
    other = [a if a != "2" else "4" for a in TOY_ARGS]   # --compression 4: a different run
    assert main([*other, "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "holds an earlier, different run" in err[0] and "--overwrite" in err[0]
    assert (tmp_path / "cells.csv").read_text() == before
    assert main([*other, "--out", str(tmp_path), "--overwrite"]) == 0
    assert set(pd.read_csv(tmp_path / "cells.csv").compression) == {1.0, 4.0}


def test_a_folder_with_files_of_an_unknown_run_is_refused(tmp_path, capsys):
    (tmp_path / "results.md").write_text("# someone's results\n")
    assert main(["reproduce", "--task", "intent", "--out", str(tmp_path), "--quick"]) == 2
    assert "holds an earlier, different run" in capsys.readouterr().err
    assert (tmp_path / "results.md").read_text() == "# someone's results\n"


def test_a_newly_registered_method_runs_in_the_grid_without_editing_it(toy):
    """One registration (hmf_lab.nn.methods) and the experiments take the method: cells, pipeline, table."""
    from hmf_lab.nn.methods import Method, register_method, unregister_method

    even = Method(name="lmf_even", label="LMF (rank 2)", factorize=lambda W, compression=None: hl.lmf(W, rank=2),
                  linear=lambda lin, compression=None: hl.LMFLinear.from_linear(lin, rank=2),
                  stored=lambda shape, compression, blocks=1: blocks * 2 * sum(shape))
    register_method(even)
    try:
        assert "lmf_even" in P.cell_methods()
        cells = G.make_cells([toy], ["post", "scratch"], [2], seeds=1, quick=True, sweep_task=None)
        df = pd.DataFrame(G.run_cells(cells, progress=False))
        new = df[df.method == "lmf_even"]
        assert set(new.regime) == {"post", "scratch"} and (new.params == 2 * 64 + 32 * 4).all()
        assert "lmf_even" in set(G.summarize(df).label)
        assert " LMF (rank 2) |" in G.results_markdown(df)   # its column, headed by its registry label
    finally:
        unregister_method("lmf_even")


def test_run_folder_survives_a_torn_last_line_and_merges_logs(tmp_path):
    from hmf_lab.experiments.runs import RunFolder
    f = RunFolder(tmp_path)
    assert f.claim("run-a") == "empty" and json.loads(f.info.read_text())["status"] == "running"
    f.cells_log.write_text(json.dumps({"cell_key": "k1", "value": 1.0}) + "\n")
    f.partial.write_text(json.dumps({"cell_key": "k2", "value": 2.0}) + '\n{"cell_key": "k3", "val')  # Ctrl-C mid-write
    assert sorted(f.start()) == ["k1", "k2"] and not f.cells_log.exists()
    assert f.state("run-a") == "same" and f.state("run-b") == "different"
    f.finish({"k2"}, {"run_id": "run-a"})
    assert [json.loads(x)["cell_key"] for x in f.cells_log.read_text().splitlines()] == ["k2"]
    assert not f.partial.exists() and json.loads(f.info.read_text())["status"] == "finished"


def test_a_cell_key_changes_with_the_settings_and_the_code(toy, monkeypatch):
    import dataclasses
    cell = P.Cell(toy, "post", "hmf", 2.0, quick=True)
    key = P.cell_key(cell)
    assert P.cell_key(P.Cell(toy, "post", "hmf", 2.0, quick=True)) == key and P.cell_key(cell.__class__(
        toy, "post", "hmf", 2.0, seed=1, quick=True)) != key
    monkeypatch.setattr(ToyTask, "quick_settings", dataclasses.replace(ToyTask.quick_settings, post_steps=5))
    assert P.cell_key(cell) != key   # other settings: not reused
    monkeypatch.undo()
    monkeypatch.setattr(P, "code_fingerprint", lambda: "other code")
    assert P.cell_key(cell) != key   # other code: not reused


def test_ctrl_c_while_drawing_figures_is_one_line_too(toy, tmp_path, capsys, monkeypatch):
    """The grid and its tables are complete; Ctrl-C in the course layer's figures step: one line, 130."""
    from hmf_lab.course import figures

    def interrupted(out):
        raise KeyboardInterrupt
    monkeypatch.setattr(figures, "grid_figures_in", interrupted)
    assert main([*TOY_ARGS, "--out", str(tmp_path)]) == 130
    assert capsys.readouterr().err.strip().splitlines() == ["hmf-lab reproduce: interrupted"]
    assert json.loads((tmp_path / "run.json").read_text())["status"] == "finished"
