"""Plots: each function returns its Axes, and the data drawn is read back from it."""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
import torch

import hmf_lab as hl
from hmf_lab.course import plots


@pytest.fixture(autouse=True)
def _close():
    yield
    plt.close("all")


@pytest.fixture
def W():
    return hl.synthetic.with_spectrum(48, 40, "exp", decay=0.2, seed=1)


def test_spectrum_draws_singular_values_and_energy(W):
    fig, ax = plt.subplots()
    out = plots.spectrum(W, ax=ax)
    assert out is ax
    s = torch.linalg.svdvals(W.double()).numpy()
    np.testing.assert_allclose(ax.lines[0].get_ydata(), s, rtol=1e-5)
    energy = ax.energy_ax.lines[0].get_ydata()
    np.testing.assert_allclose(energy, np.cumsum(s**2) / (s**2).sum(), rtol=1e-6)
    # Eckart-Young: 1 - energy at rank r is the squared LMF error
    r = 5
    assert 1 - energy[r - 1] == pytest.approx(hl.relative_error(W, hl.lmf(W, rank=r)) ** 2, rel=1e-3)
    assert ax.get_yscale() == "log"


def test_spectrum_accepts_singular_values_and_rejects_negative():
    ax = plots.spectrum(np.array([1.0, 3.0, 2.0]), energy=False)
    assert ax.lines[0].get_ydata().tolist() == [3.0, 2.0, 1.0]
    with pytest.raises(ValueError, match="singular values must be >= 0"):
        plots.spectrum(torch.tensor([1.0, -1.0]))


def test_blocks_are_to_scale(W):
    f = hl.hmf(W, split=6, rank=7)
    ax = plots.blocks(f)
    shapes = {p.get_label(): (p.get_height(), p.get_width()) for p in ax.patches}
    m, n = W.shape
    assert shapes["W"] == (m, n)
    assert shapes["D"] == tuple(f.dense.shape)
    assert shapes["U"] == tuple(f.U.shape)
    assert shapes["V"] == tuple(f.V.shape)
    rl = f.n_params // (m + n)
    assert shapes["LMF U"] == (m, rl) and shapes["LMF V"] == (rl, n)
    # areas are parameter counts
    hmf_area = sum(h * w for name, (h, w) in shapes.items() if name in "DUV")
    assert hmf_area == f.n_params


def test_blocks_with_explicit_lmf_and_bad_input(W):
    ax = plots.blocks((48, 40, 0, 5), lmf=hl.lmf(W, rank=3))
    shapes = {p.get_label(): (p.get_height(), p.get_width()) for p in ax.patches}
    assert shapes["LMF U"] == (48, 3)
    with pytest.raises(TypeError, match="expects an hl.hmf result"):
        plots.blocks(W)


def test_blocks_svg_matches_layout():
    svg = plots.blocks_svg(100, 50, 10, 5)
    for name in ("W", "D", "U", "V", "LMF U", "LMF V"):
        assert f'data-block="{name}"' in svg
    assert "U: 90x5" in svg and "D: 10x50" in svg


def test_residual_shows_w_minus_what(W):
    f = hl.hmf(W, split=4, rank=3)
    ax = plots.residual(W, f)
    np.testing.assert_allclose(ax.images[0].get_array(), (W - f.to_dense()).double().numpy(), atol=1e-6)
    lo, hi = ax.images[0].get_clim()
    assert lo == -hi
    with pytest.raises(ValueError, match="must have the shape of W"):
        plots.residual(W, torch.zeros(3, 3))


def test_residual_strides_large_matrices():
    W = torch.randn(300, 200)
    ax = plots.residual(W, hl.lmf(W, rank=2), max_size=100)
    assert ax.images[0].get_array().shape == (100, 67)


def test_error_map_reads_back_sweep(W):
    df = hl.sweep(W, splits=range(0, 49, 8))
    ax = plots.error_map(df, compressions=(2, 4))
    grid = ax.collections[0].get_array()
    E = df[df["rank"] > 0].pivot_table(index="split", columns="rank", values="error")
    np.testing.assert_allclose(np.ma.filled(grid, np.nan), E.to_numpy(), equal_nan=True)
    assert [float(c) for c in ax.contour_set.levels] == [2.0, 4.0]
    assert ax.get_xlabel() == "rank r"


def test_error_map_infers_shape_and_rejects_bad_frames(W):
    df = hl.sweep(W, splits=[0, 10], ranks=[1, 2, 3])
    assert plots._infer_shape(df) == tuple(W.shape)
    with pytest.raises(ValueError, match="expects hl.sweep's DataFrame"):
        plots.error_map(pd.DataFrame({"a": [1]}))
    with pytest.raises(ValueError, match="at least one row with rank >= 1"):
        plots.error_map(pd.DataFrame({"split": [48], "rank": [0], "error": [0.0], "params": [1920]}))


def test_pareto_front_and_plot():
    df = pd.DataFrame({"params": [10, 20, 30, 40, 50], "error": [0.9, 0.5, 0.6, 0.1, 0.1],
                       "time": [1e-6, 2e-6, 3e-6, 4e-6, 5e-6], "method": ["hmf", "lmf", "hmf", "prune", "hmf"]})
    front = plots.pareto_front(df)
    assert front["params"].tolist() == [10, 20, 40]
    ax = plots.pareto(df)
    assert ax.lines[-1].get_xdata().tolist() == [10, 20, 40]
    offsets = np.concatenate([c.get_offsets() for c in ax.collections])
    assert len(offsets) == 5
    colors = np.concatenate([c.get_array() for c in ax.collections])
    np.testing.assert_allclose(sorted(colors), [1, 2, 3, 4, 5])  # time in µs
    with pytest.raises(ValueError, match="needs a 'error' column"):
        plots.pareto(df.drop(columns="error"))
    with pytest.raises(ValueError, match="not in the DataFrame"):
        plots.pareto_front(df, y="loss")


def test_timing_bars_from_compare_frame_and_dict():
    df = pd.DataFrame({"name": ["dense", "HMF"], "median": [4e-6, 1e-6], "iqr": [1e-7, 1e-7], "ratio": [1, 4]})
    ax = plots.timing_bars(df)
    assert [p.get_width() for p in ax.patches] == pytest.approx([4.0, 1.0])
    assert [t.get_text() for t in ax.get_yticklabels()] == ["dense", "HMF"]
    assert any("4.00x" in t.get_text() for t in ax.texts)
    t = hl.measure(lambda: None, min_run_time=0.01)
    ax = plots.timing_bars({"noop": t, "fixed": 1e-3}, unit="ms")
    assert ax.patches[1].get_width() == pytest.approx(1.0)
    with pytest.raises(ValueError, match="unit must be one of"):
        plots.timing_bars(df, unit="h")
    with pytest.raises(ValueError, match="expects a 'median' column"):
        plots.timing_bars(pd.DataFrame({"x": [1]}))
    with pytest.raises(TypeError, match="must be a Timing or seconds"):
        plots.timing_bars({"a": "slow"})
    with pytest.raises(TypeError, match="expects hl.timing.compare's DataFrame"):
        plots.timing_bars([1, 2])


def test_error_map_shape_inference_can_fail():
    df = pd.DataFrame({"split": [0, 0], "rank": [1, 2], "params": [-10, -20], "error": [0.5, 0.4]})
    with pytest.raises(ValueError, match="cannot infer the matrix shape"):
        plots.error_map(df)
    ax = plots.error_map(df.assign(params=[70, 140]), shape=(40, 30), compressions=())
    assert ax.contour_set is None


def test_regimes_by_task_draws_one_panel_per_task_and_rejects_an_empty_summary():
    s = pd.DataFrame(dict(task=["lm", "lm", "intent"], metric=["bits_per_char", "bits_per_char", "accuracy"],
                          regime=["post", "scratch", "post"], compression=4.0, label="hmf",
                          mean=[2.0, 2.5, 0.9], sd=0.1, n=3))
    axes = plots.plot_regimes_by_task(s)
    assert [ax.get_title().split(":")[0] for ax in axes] == ["lm", "intent"]
    assert tuple(axes[0].containers[0].lines[0].get_ydata()) == (2.0, 2.5)
    with pytest.raises(ValueError, match="no task rows"):
        plots.plot_regimes_by_task(s.iloc[:0])
    plt.close("all")


@pytest.mark.parametrize("shape", [(1024, 256, 128, 32), (2048, 128, 100, 10), (256, 256, 32, 32), (128, 512, 16, 16)])
def test_blocks_captions_do_not_overlap(shape):
    """Issue 21, defect 9: on the LSTM's tall (4H, H) weight the three captions above the pictures ran into
    each other (notebook 02 cell 4); their drawn boxes must be apart for tall, square and wide matrices."""
    import matplotlib.pyplot as plt

    ax = hl.plots.blocks(shape)
    fig = ax.figure
    fig.canvas.draw()
    r = fig.canvas.get_renderer()
    boxes = [t.get_window_extent(r) for t in ax.texts if "params" in t.get_text()]
    assert len(boxes) == 3
    boxes.sort(key=lambda b: b.x0)
    assert all(a.x1 < b.x0 for a, b in zip(boxes, boxes[1:])), [(b.x0, b.x1) for b in boxes]
    plt.close(fig)


def test_compression_lines_draw_mean_and_sd_per_label_and_reject_missing_columns():
    df = pd.DataFrame(dict(label=["dense", "dense", "lmf", "lmf", "lmf", "lmf", "hmf@0.5"],
                           compression=[1.0, 1.0, 2.0, 2.0, 4.0, 4.0, 2.0],
                           value=[1.0, 1.2, 2.0, 4.0, 3.0, 3.0, 9.0], seed=[0, 1, 0, 1, 0, 1, 0]))
    ax = plots.compression_lines(df, ylabel="bits")
    assert ax.get_legend_handles_labels()[1] == ["lmf"]          # the sweep point (label with @) is left out
    xs, ys = ax.containers[0].lines[0].get_data()
    assert list(xs) == [2.0, 4.0] and list(ys) == [3.0, 3.0]      # means over seeds
    band, sd = ax.patches[0], np.std([1.0, 1.2], ddof=1)
    assert band.get_y() == pytest.approx(1.1 - sd) and band.get_height() == pytest.approx(2 * sd)   # dense: mean ± sd
    assert [t.get_text() for t in ax.get_xticklabels()] == ["2x", "4x"]
    plt.close("all")
    with pytest.raises(ValueError, match=r"needs the columns.*\['value'\] missing"):
        plots.compression_lines(df.drop(columns="value"))


def test_plot_generation_draws_one_bar_per_compressed_model_with_its_ideal():
    d = pd.DataFrame({"size": ["small"] * 3 + ["large"] * 4,
                      "model": ["dense", "dense copy", "hmf 4x", "dense", "dense copy", "hmf 4x", "lmf 4x"],
                      "speedup": [1.0, 0.97, 0.9, 1.0, 1.02, 2.8, 3.1], "ideal": [1, 1, 3.9, 1, 1, 3.9, 3.95]})
    ax = plots.plot_generation(d)
    assert [round(p.get_height(), 2) for p in ax.patches] == [0.9, 2.8, 3.1]
    ticks = [line.get_ydata()[0] for line in ax.lines if len(line.get_xdata()) == 2 and line.get_color() == "black"]
    assert ticks == [3.9, 3.9, 3.95]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["hmf 4x\nsmall", "hmf 4x\nlarge", "lmf 4x\nlarge"]
    plt.close("all")
    with pytest.raises(TypeError, match=r"expects generation.csv's table.*got DataFrame \['model'\]"):
        plots.plot_generation(d[["model"]])
    with pytest.raises(TypeError, match="got list"):
        plots.plot_generation([1, 2])


def test_grid_comparison_map_colours_clip_but_numbers_do_not():
    cmp = pd.DataFrame(dict(task="lm", regime=["post", "post", "scratch"], compression=[4.0, 4.0, 8.0],
                            column=["rows", "cols", "rows"], pct=[-55.0, 2.0, 0.3], inside_noise=[False, False, True]))
    ax = plots.grid_comparison_map(cmp, clip=20)
    assert [t.get_text() for t in ax.texts] == ["-55.0", "+2.0", "~+0.3"]     # the missing cell: no text
    mesh = ax.collections[0]
    assert mesh.get_array().min() == -20 and mesh.norm.vmin == -20
    assert [t.get_text() for t in ax.get_yticklabels()] == ["lm · post · 4x", "lm · scratch · 8x"]
    plt.close("all")
    with pytest.raises(TypeError, match="grid_comparison"):
        plots.grid_comparison_map(cmp.drop(columns="pct"))
    with pytest.raises(ValueError, match="clip must be a number > 0"):
        plots.grid_comparison_map(cmp, clip=0)
