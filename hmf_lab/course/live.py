"""Live experiment sliders: each move compresses or trains real models and shows the numbers side by side.

:func:`compression_slider` (notebook 06) and :func:`regime_explorer` (notebook 07) wire ipywidgets to the
experiment functions (:func:`hmf_lab.experiments.reproduce.live_compare`,
:func:`hmf_lab.experiments.grid.live_regimes`); the computing lives there.
"""
from __future__ import annotations

from hmf_lab.experiments.reproduce import live_compare

__all__ = ["compression_slider", "regime_explorer"]


def compression_slider(task: str = "lm", fine_tune_steps: int = 0, eval_size: int | None = 2000,
                       options=(2, 4, 8, 16), value=4, min_run_time: float = 0.1):
    """A compression slider: each move compresses the shipped model with HMF, LMF and pruning and shows
    metric, parameters and time per sequence side by side (:func:`live_compare`). Returns the widget.

    >>> w = compression_slider()  # doctest: +SKIP
    """
    import ipywidgets as widgets
    from IPython.display import display

    slider = widgets.SelectionSlider(options=list(options), value=value, description="compression",
                                     continuous_update=False)
    out = widgets.Output()
    cols = ["method", "compression", "params", "before", "after", "time_us", "speedup"]

    box = widgets.VBox([slider, out])
    box.slider = slider

    def show(change=None):
        with out:
            out.clear_output(wait=True)
            box.result = live_compare(task, slider.value, fine_tune_steps=fine_tune_steps, eval_size=eval_size,
                                      min_run_time=min_run_time)   # kept for tests and for the reader
            display(box.result[cols].round(4))
    slider.observe(show, names="value")
    show()
    return box


def regime_explorer(task: str = "intent", quick: bool | None = None, steps: int | None = None,
                    compressions=(2, 4, 8, 16), value=8):
    """Sliders for compression, HMF split (fraction of the largest feasible one) and regime (post / scratch).

    Each change trains dense, HMF at that split and LMF at that compression in that regime
    (:func:`hmf_lab.experiments.grid.live_regimes`: a few steps in quick mode) and shows the metric and parameters side
    by side. Returns the widget box; ``box.result`` holds the last DataFrame.

    >>> box = regime_explorer(quick=True)  # doctest: +SKIP
    """
    import ipywidgets as widgets
    from IPython.display import display

    from hmf_lab.experiments.grid import live_regimes
    comp = widgets.SelectionSlider(options=list(compressions), value=value, description="compression",
                                   continuous_update=False)
    split = widgets.FloatSlider(value=0.5, min=0.0, max=1.0, step=0.25, description="split (frac)",
                                continuous_update=False)
    regime = widgets.ToggleButtons(options=["post", "scratch"], value="scratch", description="regime")
    out = widgets.Output()
    box = widgets.VBox([comp, split, regime, out])
    box.sliders = dict(compression=comp, split=split, regime=regime)
    cols = ["label", "compression", "params", "actual_compression", "split_hh", "rank_hh", "before", "value"]

    def show(change=None):
        with out:
            out.clear_output(wait=True)
            df = live_regimes(task, comp.value, split.value, regime.value, quick=quick, steps=steps)
            box.result = df
            print(f"{task}, {regime.value}, {comp.value}x, HMF split at {split.value:g} of the largest "
                  f"(0 = LMF's structure); metric: {df.metric.iloc[0]}")
            display(df[[c for c in cols if c in df]].round(4))
    for w in (comp, split, regime):
        w.observe(show, names="value")
    show()
    return box
