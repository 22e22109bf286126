"""Notebook 08's layer explorer: one layer of a real model, every post-training method, at equal stored values.

:class:`LayerMethodExplorer` (made by :func:`layer_explorer`) takes a model, calibration inputs and the
names of its ``nn.Linear`` layers. Controls: ``.layer`` (Dropdown, the layer picker), ``.compression``
(SelectionSlider), ``.split`` (FloatSlider: HMF's dense rows / columns as a fraction of the largest split
that fits; 0 = no dense part), ``.timing`` (Checkbox: time batch-1 inference of each method's layer beside
dense). Each change fits HMF by rows and by columns, LMF, AA-LMF, Wanda and OATS to the layer
(:func:`hmf_lab.experiments.layerfit.layer_methods`: fitted on half of the layer's calibration inputs,
output error on the other half) and shows a table (``.table_out``), the error bars, parameters and the
timing (``.timing_out``). ``.result`` holds the last table, ``.timings`` the last timing table.

>>> import torch
>>> net = torch.nn.Sequential(torch.nn.Linear(32, 64), torch.nn.ReLU(), torch.nn.Linear(64, 32))
>>> ex = layer_explorer(net, torch.randn(128, 32), timing=False)
>>> ex.layer.value = "2"; list(ex.result.method)[:3], ex.result.attrs["layer"]
(['hmf', 'hmf_col', 'lmf'], '2')
"""
from __future__ import annotations

from html import escape

import ipywidgets as W_
import pandas as pd
from torch import nn

from hmf_lab.course.widgets import _timing_html
from hmf_lab.experiments.layerfit import LAYER_METHODS, layer_inputs, layer_methods
from hmf_lab.experiments.tradeoff import time_layers
from hmf_lab.factor.heuristics import outlier_stats

__all__ = ["LayerMethodExplorer", "layer_explorer"]


def _table_html(df: pd.DataFrame, caption: str) -> str:
    """The methods as an HTML table with a bar per output error (drawn in HTML: redraws instantly)."""
    top = float(df.output_error.max()) or 1.0
    best = float(df.output_error.min())
    rows = []
    for r in df.itertuples():
        w = max(1, int(180 * r.output_error / top))
        star = " ★" if r.output_error == best else ""
        split = "–" if pd.isna(r.split) else str(int(r.split))
        rows.append(f"<tr><td>{escape(r.method)}{star}</td><td style='text-align:right;padding:0 1em'>{split}</td>"
                    f"<td style='text-align:right;padding:0 1em'>{r.stored:,}</td>"
                    f"<td style='text-align:right;padding:0 1em'>{r.compression:.2f}x</td>"
                    f"<td style='text-align:right;padding:0 1em'>{r.output_error:.4f}</td>"
                    f"<td><div style='background:#d55e00;height:10px;width:{w}px'></div></td></tr>")
    head = ("<tr><th>method</th><th style='padding:0 1em'>split</th><th style='padding:0 1em'>stored values</th>"
            "<th style='padding:0 1em'>compression</th><th style='padding:0 1em'>output error (held out)</th>"
            "<th></th></tr>")
    return (f"<table class='hmf-layer-methods'><caption style='text-align:left'>{escape(caption)}</caption>"
            + head + "".join(rows) + "</table>")


class LayerMethodExplorer:
    """Layer picker, compression and split sliders over the post-training methods of one model (see the module
    docstring). Parameters: see :func:`layer_explorer`."""

    def __init__(self, model: nn.Module, X, layers=None, *, compressions=(1.5, 2, 3, 4), value=2,
                 split: float | None = None, methods=LAYER_METHODS, timing: bool = True, min_run_time: float = 0.05,
                 seed: int = 0):
        if not isinstance(model, nn.Module):
            raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
        names = [n for n, m in model.named_modules() if isinstance(m, nn.Linear)] if layers is None else list(layers)
        if not names:
            raise ValueError("the model has no nn.Linear layer to explore; pass layers=[names of nn.Linear modules]")
        comps = [float(c) for c in compressions]
        if float(value) not in comps:
            raise ValueError(f"value must be one of compressions {comps}, got {value!r}")
        self.model, self.X, self.methods, self.seed = model, X, tuple(methods), int(seed)
        self.min_run_time = float(min_run_time)
        self._inputs: dict[str, object] = {}
        style = {"description_width": "7em"}
        self.layer = W_.Dropdown(options=names, value=names[0], description="layer", style=style)
        self.compression = W_.SelectionSlider(options=comps, value=float(value), description="compression",
                                              continuous_update=False, style=style)
        self.split = W_.FloatSlider(value=0.0 if split is None else float(split), min=0.0, max=1.0, step=0.125,
                                    description="split (frac)", continuous_update=False, style=style)
        self.default_split = W_.Checkbox(value=split is None, description="balanced split (default)", indent=False)
        self.split.disabled = split is None
        self.timing = W_.Checkbox(value=bool(timing), description="time inference", indent=False)
        self.info_out = W_.HTML()
        self.table_out = W_.HTML()
        self.timing_out = W_.HTML()
        self.result: pd.DataFrame | None = None
        self._modules: dict = {}
        self.timings: pd.DataFrame | None = None
        for w in (self.layer, self.compression, self.split, self.timing):
            w.observe(self._changed, names="value")
        self.default_split.observe(self._on_default, names="value")
        self.widget = W_.VBox([W_.HBox([self.layer, self.compression]),
                               W_.HBox([self.split, self.default_split, self.timing]),
                               self.info_out, self.table_out, self.timing_out])
        self.widget.add_class("hmf-layer-explorer")
        self.update()

    def _repr_mimebundle_(self, **kw):
        return self.widget._repr_mimebundle_(**kw)

    def _on_default(self, change) -> None:
        self.split.disabled = bool(change["new"])
        self.update()

    def _changed(self, change) -> None:
        self.update()

    def inputs(self, name: str):
        """The calibration inputs (N, n) layer ``name`` sees (cached)."""
        if name not in self._inputs:
            self._inputs[name] = layer_inputs(self.model, name, self.X)
        return self._inputs[name]

    def update(self) -> pd.DataFrame:
        """Fit every method at the controls' values; refresh the read-outs; return the table (also ``.result``)."""
        name = self.layer.value
        lin = self.model.get_submodule(name)
        Xl = self.inputs(name)
        frac = None if self.default_split.value else float(self.split.value)
        fit = layer_methods(lin, Xl, self.compression.value, methods=self.methods, split_frac=frac, seed=self.seed)
        df = fit.table
        self._modules = fit.modules
        st = outlier_stats(lin.weight.detach(), Xl)
        df.attrs.update(layer=name, **st)
        self.result = df
        m, n = lin.weight.shape
        self.info_out.value = (f"<b>{escape(name)}</b>: {m}x{n} ({m * n:,} values), {Xl.shape[0]:,} calibration rows; "
                               f"input-channel energy max/median raw {st['raw_max_median']:.1f}, whitened "
                               f"{st['whitened_max_median']:.1f}; the largest channel holds "
                               f"{100 * st['whitened_top_share']:.1f}% of the whitened energy")
        where = "balanced split" if frac is None else f"split {frac:g} of the largest"
        self.table_out.value = _table_html(df, f"at {self.compression.value:g}x ({where}); output error on the "
                                               "held-out half of the calibration rows, ★ = lowest")
        if self.timing.value:
            self.time_now()
        else:
            self.timing_out.value = ""
        return df

    def time_now(self) -> pd.DataFrame:
        """Time batch-1 inference of dense and of each method's layer (one thread, eval mode); returns the table."""
        name = self.layer.value
        lin = self.model.get_submodule(name)
        race = time_layers({"dense": lin, **self._modules}, rounds=1, min_run_time=self.min_run_time, threads=1,
                           floors=False)
        df = race.to_frame()
        self.timings = df
        self.timing_out.value = _timing_html(df, f"timed inference of {name} at {self.compression.value:g}x, batch 1, "
                                                 "1 torch thread (Wanda's layer is stored dense with zeros)",
                                             race.warning)
        return df


def layer_explorer(model: nn.Module, X, layers=None, **kw) -> LayerMethodExplorer:
    """Notebook 08's explorer over ``model``'s ``nn.Linear`` layers (``layers``: their names; default all) on
    calibration inputs ``X`` (as in ``hl.compress``). Keyword arguments: ``compressions`` (the slider's
    values), ``value`` (the start), ``split`` (start fraction; ``None``: the balanced default), ``methods``,
    ``timing`` (time inference after each change), ``min_run_time``, ``seed`` (the held-out half).

    >>> import torch
    >>> ex = layer_explorer(torch.nn.Linear(16, 16), torch.randn(64, 16), layers=[""], timing=False)
    >>> bool((ex.result.stored <= 128).all())
    True
    """
    return LayerMethodExplorer(model, X, layers, **kw)
