"""One layer, every post-training method, at equal stored values: the numbers behind notebook 08's sliders.

:func:`layer_inputs` collects the inputs one ``nn.Linear`` of a model sees on calibration inputs;
:func:`layer_methods` fits HMF by rows and by columns, LMF and today's activation-aware baselines
(``hl.METHODS``: ``aa_lmf``, ``wanda``, ``oats``) to that layer at one compression, on one half of those
inputs, and measures each one's relative output error on the other half (held out). :func:`plant_channels`
makes a few input channels louder, the controlled case where keeping columns dense can pay.

>>> import torch
>>> lin = torch.nn.Linear(32, 48); X = torch.randn(256, 32)
>>> fit = layer_methods(lin, X, 2, methods=("lmf", "aa_lmf"))
>>> list(fit.table.method), bool((fit.table.stored <= 32 * 48 // 2).all())
(['lmf', 'aa_lmf'], True)
"""
from __future__ import annotations

import time
from typing import NamedTuple

import pandas as pd
import torch
from torch import nn

from hmf_lab.factor.budget import max_col_split, max_split
from hmf_lab.nn.compress import _batches, capture_inputs, compress, count_params
from hmf_lab.nn.methods import get_method

__all__ = ["LAYER_METHODS", "LayerFit", "layer_inputs", "layer_methods", "layer_sweep", "plant_channels", "planted_sweep"]

#: the methods compared on one layer (those of :data:`hmf_lab.experiments.posttrain.POST_METHODS`)
LAYER_METHODS = ("hmf", "hmf_col", "lmf", "aa_lmf", "wanda", "oats")
#: the largest dense split of a method with one, by the axis of its split (``Method.split_axis``)
_SPLIT_BY_AXIS = {"rows": max_split, "cols": max_col_split}


def _split_rule(method: str):
    """The largest-split rule of ``method`` (None for a method without a dense split), from the registry."""
    from hmf_lab.nn.methods import get_method
    rec = get_method(method)
    return _SPLIT_BY_AXIS[rec.split_axis] if "split" in rec.options else None


#: the pair notebook 08 reads as "column HMF against activation-aware LMF" (``col_vs_aa``)
_COL, _AA = LAYER_METHODS[1], LAYER_METHODS[3]


class LayerFit(NamedTuple):
    """``table``: one row per method (``method``, ``split``, ``stored``, ``compression``, ``output_error``,
    ``fit_s``); ``modules``: method -> the compressed module (for timing)."""

    table: pd.DataFrame
    modules: dict


def layer_inputs(model: nn.Module, name: str, X) -> torch.Tensor:
    """The inputs (N, in_features) the ``nn.Linear`` ``model.<name>`` receives while ``model`` runs (eval mode)
    on ``X`` (a batch, a tuple of inputs, or a list of those, as in ``hl.compress``).

    >>> net = nn.Sequential(nn.Linear(4, 6), nn.ReLU(), nn.Linear(6, 2))
    >>> tuple(layer_inputs(net, "2", torch.randn(5, 3, 4)).shape)
    (15, 6)
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    try:
        mod = model.get_submodule(name)
    except AttributeError:
        raise ValueError(f"model has no module {name!r}; pick one of "
                         f"{[n for n, m in model.named_modules() if isinstance(m, nn.Linear)]}") from None
    if not isinstance(mod, nn.Linear):
        raise TypeError(f"module {name!r} must be an nn.Linear, got {type(mod).__name__}")
    was = model.training
    model.eval()
    try:
        calls = capture_inputs(model, [(name, mod)], _batches(X))
    finally:
        model.train(was)
    if not calls.get(name):
        raise ValueError(f"layer {name!r} never ran on the inputs X; check that X reaches it")
    return torch.cat([args[0].detach().reshape(-1, mod.in_features) for args in calls[name]])


def _split_at(method: str, shape, compression: float, split_frac):
    rule = None if split_frac is None else _split_rule(method)
    if rule is None:
        return None
    try:
        top = rule(shape, compression)
    except ValueError:
        return 0
    return int(round(float(split_frac) * top))


def layer_methods(linear: nn.Linear, X, compression: float, *, methods=LAYER_METHODS, split_frac=None,
                  holdout: float = 0.5, seed: int = 0) -> LayerFit:
    """Fit each of ``methods`` to ``linear`` at ``compression`` (every method stores at most
    ``floor(m*n / compression)`` values; OATS and Wanda count values, their indices are extra bytes) on a
    random ``1 - holdout`` share of the rows of ``X`` (N, in_features), and measure the relative output error
    ``||f(x) - W x||_F / ||W x||_F`` (bias left out) on the held-out rows.

    ``split_frac`` (0..1): HMF's dense rows (``hmf``) or columns (``hmf_col``) as a fraction of the largest
    split that fits (0: no dense part, 1: rank 1); ``None``: the balanced default of ``hl.compress``.
    HMF's dense rows/columns come from the calibration inputs (heuristic ``"activation"``) and its factorized
    part is fitted activation-aware, like ``aa_lmf``.

    >>> lin = nn.Linear(40, 24); X = torch.randn(300, 40)
    >>> t = layer_methods(lin, X, 2, methods=("hmf", "aa_lmf"), split_frac=0).table
    >>> t.split.tolist(), bool(abs(t.output_error.iloc[0] - t.output_error.iloc[1]) < 1e-4)  # split 0: HMF is AA-LMF
    ([0, <NA>], True)
    """
    if not isinstance(linear, nn.Linear):
        raise TypeError(f"linear must be an nn.Linear, got {type(linear).__name__}; take one from the model, "
                        "e.g. model.get_submodule('blocks.0.fc1')")
    X = torch.as_tensor(X)
    if X.ndim != 2 or X.shape[1] != linear.in_features:
        raise ValueError(f"X must be the layer's inputs, shape (N, {linear.in_features}), got {tuple(X.shape)}; "
                         "collect them with layer_inputs(model, name, calibration_inputs)")
    if not 0 < float(holdout) < 1:
        raise ValueError(f"holdout must be a share strictly between 0 and 1, got {holdout!r}")
    if split_frac is not None and not 0 <= float(split_frac) <= 1:
        raise ValueError(f"split_frac must be None or a fraction in [0, 1], got {split_frac!r}")
    g = torch.Generator().manual_seed(int(seed))
    perm = torch.randperm(X.shape[0], generator=g)
    n_test = max(1, int(round(float(holdout) * X.shape[0])))
    if n_test >= X.shape[0]:
        raise ValueError(f"X has {X.shape[0]} rows: too few to hold {holdout:g} of them out; pass more inputs")
    X = X.to(linear.weight.dtype)
    X_fit, X_test = X[perm[n_test:]], X[perm[:n_test]]
    W = linear.weight.detach()
    Y = X_test @ W.T
    shape = tuple(W.shape)
    rows, modules = [], {}
    for m in methods:
        rec = get_method(m)
        k = _split_at(m, shape, compression, split_frac)
        kw = {"X": X_fit} if "X" in rec.options else {}
        if k is not None:
            kw["split"] = k
        t0 = time.perf_counter()
        small = compress(linear, m, compression=compression, **kw)
        sec = time.perf_counter() - t0
        small.eval()
        with torch.no_grad():
            bias = 0 if linear.bias is None else linear.bias.detach()
            err = float((small(X_test) - bias - Y).norm() / Y.norm().clamp(min=1e-30))
        stored = count_params(small)  # stored values of the weight (biases and sparse indices excluded)
        modules[m] = small
        rows.append(dict(method=m, split=k, stored=stored, compression=W.numel() / max(stored, 1),
                         output_error=err, fit_s=sec))
    df = pd.DataFrame(rows)
    df["split"] = pd.array([r["split"] for r in rows], dtype="Int64")  # <NA>: the method has no dense split
    return LayerFit(df, modules)


def plant_channels(X, channels, strength: float) -> torch.Tensor:
    """A copy of the inputs ``X`` (N, n) with the input ``channels`` (indices) multiplied by ``strength``:
    louder channels, so that they hold a larger share of a layer's whitened energy.

    >>> X = torch.ones(4, 3)
    >>> plant_channels(X, [1], 10.0)[0].tolist()
    [1.0, 10.0, 1.0]
    """
    X = torch.as_tensor(X)
    if X.ndim != 2:
        raise ValueError(f"X must be a matrix of inputs (N, n), got shape {tuple(X.shape)}")
    idx = torch.as_tensor(list(channels), dtype=torch.long)
    if idx.numel() and (idx.min() < 0 or idx.max() >= X.shape[1]):
        raise ValueError(f"channels must be indices in [0, {X.shape[1]}), got {idx.tolist()}")
    out = X.clone()
    out[:, idx] = out[:, idx] * float(strength)
    return out


def layer_sweep(model: nn.Module, X, layers, compressions=(2, 4), *, methods=LAYER_METHODS,
                seed: int = 0) -> pd.DataFrame:
    """:func:`layer_methods` over ``layers`` (names of ``nn.Linear`` modules of ``model``) and ``compressions``,
    each row with the layer's outlier statistics (:func:`hmf_lab.factor.heuristics.outlier_stats`: ``raw_max_median``,
    ``whitened_max_median``, ``whitened_top_share``) and the winner: columns ``layer``, the statistics,
    ``compression``, one output-error column per method, ``best`` (the method with the lowest held-out error)
    and ``col_vs_aa`` (column HMF's error / AA-LMF's; below 1: column HMF wins).

    >>> net = nn.Sequential(nn.Linear(32, 48), nn.ReLU(), nn.Linear(48, 32))
    >>> df = layer_sweep(net, torch.randn(200, 32), ["0", "2"], [2], methods=("hmf_col", "aa_lmf"))
    >>> list(df.layer), "col_vs_aa" in df
    (['0', '2'], True)
    """
    from hmf_lab.factor.heuristics import outlier_stats

    rows = []
    for name in layers:
        Xl = layer_inputs(model, name, X)
        lin = model.get_submodule(name)
        st = outlier_stats(lin.weight.detach(), Xl)
        for c in compressions:
            t = layer_methods(lin, Xl, c, methods=methods, seed=seed).table.set_index("method").output_error
            row = dict(layer=name, shape=tuple(lin.weight.shape), **{k: st[k] for k in
                       ("raw_max_median", "whitened_max_median", "whitened_top_share")}, compression=float(c),
                       **t.to_dict(), best=t.idxmin())
            if _COL in t and _AA in t:
                row["col_vs_aa"] = t[_COL] / t[_AA]
            rows.append(row)
    return pd.DataFrame(rows)


def planted_sweep(linear: nn.Linear, X, channels, strengths, compression: float = 2, *,
                  methods=("hmf_col", "aa_lmf"), seed: int = 0) -> pd.DataFrame:
    """The controlled case: for each ``strength``, make the input ``channels`` of ``X`` louder
    (:func:`plant_channels`), then fit ``methods`` at ``compression`` with column HMF keeping exactly
    ``len(channels)`` columns dense. One row per strength: ``strength``, ``whitened_top_share`` (all planted
    channels together: ``planted_share``), one output-error column per method, ``col_vs_aa``.

    >>> lin = nn.Linear(64, 32); X = torch.randn(400, 64)
    >>> df = planted_sweep(lin, X, [1, 2], [1, 30])
    >>> bool(df.planted_share.iloc[1] > df.planted_share.iloc[0])
    True
    """
    from hmf_lab.factor.heuristics import channel_energy, outlier_stats

    W = linear.weight.detach()
    k = len(list(channels))
    top = max_col_split(tuple(W.shape), compression)
    if not 1 <= k <= top:
        raise ValueError(f"channels must name between 1 and {top} input channels (the largest column split at "
                         f"{compression:g}x), got {k}")
    rows = []
    for s in strengths:
        Xp = plant_channels(X, channels, s)
        _, wh = channel_energy(W, Xp)
        t = layer_methods(linear, Xp, compression, methods=methods, split_frac=k / top,
                          seed=seed).table.set_index("method").output_error
        row = dict(strength=float(s), whitened_top_share=outlier_stats(W, Xp)["whitened_top_share"],
                   planted_share=float(wh[list(channels)].sum() / wh.sum()), **t.to_dict())
        if _COL in t and _AA in t:
            row["col_vs_aa"] = t[_COL] / t[_AA]
        rows.append(row)
    return pd.DataFrame(rows)
