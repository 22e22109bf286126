"""hmf-lab reproduce: pruning schedule, reconstructed fine-tuning, tables, plots, one quick CLI run."""
import math

import pandas as pd
import pytest
import torch
from torch import nn

import hmf_lab as hl
from hmf_lab.course import live
from hmf_lab import nlp as M
from hmf_lab.experiments import reproduce as R

HAVE_LM = M.checkpoint_path("char_lm").is_file()


def test_cubic_schedule_is_monotone_and_hits_target():
    s = [R.cubic_sparsity(t, 0.875, 0, 70) for t in range(0, 101)]
    assert s[0] == 0.0 and s[70] == pytest.approx(0.875) and s[-1] == pytest.approx(0.875)
    assert all(b >= a for a, b in zip(s, s[1:]))
    assert R.cubic_sparsity(5, 0.5, 10, 10) == 0.0 and R.cubic_sparsity(10, 0.5, 10, 10) == 0.5


def test_gradual_pruner_reaches_hl_prune_count_and_masks_only_shrink():
    torch.manual_seed(0)
    net = nn.ModuleDict({"rnn": nn.LSTM(8, 16, batch_first=True), "out": nn.Linear(16, 5)})
    masked = hl.compress(net, "prune", compression=1)
    pruner = R.GradualPruner(masked, compression=4, steps=20, end=0.5, every=2)
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
        assert int(getattr(m, n + "_mask").sum()) == hl.factor.core.prune_keep((W.shape[0] // blocks, W.shape[1]), 4,
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
        R.GradualPruner(nn.Linear(4, 4), compression=2, steps=5)


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
    md = R.markdown_table(df)
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
    from hmf_lab.cli import main
    assert main(["reproduce", "--task", "lm", "--compression", "4", "--out", str(tmp_path), "--quick",
                 "--no-progress", "--seeds", "1"]) == 0
    df = pd.read_csv(tmp_path / "cells.csv")
    assert sorted(set(zip(df.regime, df.label))) == [(r, m) for r in ("post", "scratch")
                                                     for m in ("dense", "hmf", "lmf", "prune")]
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
    assert list(df.method) == ["dense", "hmf", "lmf", "prune"]
    comp = df[df.method != "dense"]
    assert (comp.before == comp.after).all() and (comp.fine_tune_steps == 0).all()
    box = live.compression_slider("lm", eval_size=300, min_run_time=0.01, options=(4, 16), value=4)
    box.slider.value = 16   # the observer recomputes at 16x
    assert set(box.result.compression) == {1.0, 16.0}
