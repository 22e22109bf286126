"""One layer, every post-training method, at equal stored values (notebook 08): hmf_lab.experiments.layerfit and
the explorer hmf_lab.course.layer_lab."""
from __future__ import annotations

import matplotlib
import pytest
import torch
from torch import nn

from hmf_lab.course import layer_lab
from hmf_lab.course.plots import plot_channel_energy
from hmf_lab.experiments import layerfit

matplotlib.use("Agg")


def _net():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(32, 64), nn.ReLU(), nn.Linear(64, 48))


def test_layer_inputs_are_what_the_layer_sees():
    net, X = _net(), torch.randn(3, 10, 32)
    net.train()
    got = layerfit.layer_inputs(net, "2", X)
    torch.testing.assert_close(got, torch.relu(net[0](X)).reshape(-1, 64).detach())
    assert net.training, "the model's mode is restored"


def test_layer_inputs_errors():
    net = _net()
    with pytest.raises(TypeError, match="model must be a torch.nn.Module"):
        layerfit.layer_inputs("net", "0", torch.randn(4, 32))
    with pytest.raises(ValueError, match=r"no module 'nope'.*\['0', '2'\]"):
        layerfit.layer_inputs(net, "nope", torch.randn(4, 32))
    with pytest.raises(TypeError, match="must be an nn.Linear, got ReLU"):
        layerfit.layer_inputs(net, "1", torch.randn(4, 32))
    class Skip(nn.Module):  # its layer b never runs
        def __init__(self):
            super().__init__()
            self.a, self.b = nn.Linear(4, 4), nn.Linear(4, 4)

        def forward(self, x):
            return self.a(x)

    with pytest.raises(ValueError, match="'b' never ran on the inputs X"):
        layerfit.layer_inputs(Skip(), "b", torch.randn(3, 4))


def test_layer_methods_equal_budget_and_held_out_error():
    net, X = _net(), torch.randn(400, 64)
    lin = net[2]
    fit = layerfit.layer_methods(lin, X, 3)
    t = fit.table
    assert list(t.method) == list(layerfit.LAYER_METHODS) and set(fit.modules) == set(t.method)
    assert (t.stored <= 48 * 64 // 3).all() and (t.compression >= 3 - 1e-9).all()
    assert ((t.output_error > 0) & (t.output_error < 1.5)).all()
    # the reported error is the held-out one: recompute it for LMF on the same split of the rows
    perm = torch.randperm(400, generator=torch.Generator().manual_seed(0))
    Xt = X[perm[:200]]
    lmf = fit.modules["lmf"]
    want = float((lmf(Xt) - lin.bias - Xt @ lin.weight.T).norm() / (Xt @ lin.weight.T).norm())
    assert t.set_index("method").output_error["lmf"] == pytest.approx(want, rel=1e-5)
    # split 1 for columns: the largest column split that fits, rank 1
    s = layerfit.layer_methods(lin, X, 3, methods=("hmf", "hmf_col"), split_frac=1).table
    from hmf_lab.factor.budget import max_col_split, max_split
    assert s.split.tolist() == [max_split((48, 64), 3), max_col_split((48, 64), 3)]


def test_layer_methods_errors():
    lin, X = nn.Linear(16, 8), torch.randn(40, 16)
    with pytest.raises(TypeError, match="linear must be an nn.Linear"):
        layerfit.layer_methods(nn.ReLU(), X, 2)
    with pytest.raises(ValueError, match=r"shape \(N, 16\), got \(40, 8\)"):
        layerfit.layer_methods(lin, torch.randn(40, 8), 2)
    with pytest.raises(ValueError, match="holdout must be a share strictly between 0 and 1"):
        layerfit.layer_methods(lin, X, 2, holdout=1.0)
    with pytest.raises(ValueError, match="split_frac must be None or a fraction"):
        layerfit.layer_methods(lin, X, 2, split_frac=1.5)
    with pytest.raises(ValueError, match="too few to hold"):
        layerfit.layer_methods(lin, X[:1], 2)


def test_plant_channels_and_its_errors():
    X = torch.randn(50, 6)
    P = layerfit.plant_channels(X, [0, 5], 3.0)
    torch.testing.assert_close(P[:, [0, 5]], 3 * X[:, [0, 5]])
    torch.testing.assert_close(P[:, 1:5], X[:, 1:5])
    with pytest.raises(ValueError, match="matrix of inputs"):
        layerfit.plant_channels(torch.randn(5), [0], 2.0)
    with pytest.raises(ValueError, match=r"indices in \[0, 6\)"):
        layerfit.plant_channels(X, [6], 2.0)


def test_layer_sweep_and_planted_sweep():
    net, X = _net(), torch.randn(300, 32)
    df = layerfit.layer_sweep(net, X, ["0", "2"], [2, 4], methods=("hmf_col", "aa_lmf"))
    assert len(df) == 4 and set(df.best) <= {"hmf_col", "aa_lmf"}
    assert (df.col_vs_aa == df.hmf_col / df.aa_lmf).all()
    lin = nn.Linear(256, 64)
    g = torch.Generator().manual_seed(0)
    Xw = torch.randn(600, 256, generator=g) @ torch.randn(256, 256, generator=g) / 16
    p = layerfit.planted_sweep(lin, Xw, list(range(24)), [1, 30], compression=2)
    assert p.planted_share.iloc[1] > p.planted_share.iloc[0]
    assert p.col_vs_aa.iloc[1] < p.col_vs_aa.iloc[0], "louder planted channels favour column HMF"
    with pytest.raises(ValueError, match="channels must name between 1 and"):
        layerfit.planted_sweep(lin, Xw, [], [1])


def test_explorer_controls_refit():
    net, X = _net(), torch.randn(200, 32)
    ex = layer_lab.layer_explorer(net, X, timing=False)
    assert ex.layer.options == ("0", "2") and ex.result.attrs["layer"] == "0"
    assert ex.default_split.value and ex.split.disabled and ex.result.split.isna().all()
    ex.default_split.value = False
    ex.split.value = 0.0
    t = ex.result.set_index("method")
    assert t.split["hmf"] == 0 and t.output_error["hmf"] == pytest.approx(t.output_error["aa_lmf"], rel=1e-4)
    ex.compression.value = 4.0
    assert (ex.result.stored <= 64 * 32 // 4).all()
    ex.layer.value = "2"
    assert ex.result.attrs["layer"] == "2" and "2</b>: 48x64" in ex.info_out.value
    assert "★" in ex.table_out.value and ex.timing_out.value == ""
    ex.timing.value = True  # timing on: dense plus every method, timed
    assert list(ex.timings.name) == ["dense", *layerfit.LAYER_METHODS] and "speed-up" in ex.timing_out.value


def test_explorer_errors():
    with pytest.raises(TypeError, match="model must be a torch.nn.Module"):
        layer_lab.layer_explorer(None, torch.randn(4, 4))
    with pytest.raises(ValueError, match="no nn.Linear layer"):
        layer_lab.layer_explorer(nn.ReLU(), torch.randn(4, 4))
    with pytest.raises(ValueError, match=r"value must be one of compressions \[1.5, 2.0\]"):
        layer_lab.layer_explorer(_net(), torch.randn(4, 32), compressions=(1.5, 2), value=4)


def test_plot_channel_energy():
    X = torch.randn(300, 16)
    X[:, 3] *= 20
    raw_ax, wh_ax = plot_channel_energy(torch.randn(8, 16), X, title="toy")
    assert raw_ax.get_yscale() == "log" and "toy" in raw_ax.get_title()
    heights = [p.get_height() for p in raw_ax.patches]
    assert max(range(16), key=heights.__getitem__) == 3
    assert sum(p.get_height() for p in wh_ax.patches) == pytest.approx(1.0)
