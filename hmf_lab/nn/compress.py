"""``hl.compress``: a copy of a model with every ``nn.Linear`` and ``nn.LSTM`` compressed (HMF, LMF, pruning).

The copy keeps every forward signature; the original model is not touched. What each method puts in:

============  ==========================================  =============================================
method        ``nn.Linear`` becomes                        ``nn.LSTM`` becomes
============  ==========================================  =============================================
``"hmf"``     :class:`~hmf_lab.nn.layers.HMFLinear`           :class:`~hmf_lab.nn.lstm.HMFLSTM` (HMF per gate)
``"lmf"``     :class:`~hmf_lab.nn.layers.LMFLinear`           :class:`~hmf_lab.nn.lstm.LMFLSTM` (LMF per gate)
``"prune"``   ``nn.Linear`` + ``torch.nn.utils.prune``    :class:`~hmf_lab.nn.lstm.PrunedLSTM` (masked)
              mask (trainable, masked dense)
``"prune"``   :class:`~hmf_lab.nn.layers.SparseLinear` (CSR)  :class:`~hmf_lab.nn.lstm.SparseLSTM` (CSR)
+ sparse=True
``"hmf_col"`` :class:`~hmf_lab.layers.HMFColLinear`        :class:`~hmf_lab.lstm.HMFColLSTM` (column split
              (k input columns dense)                     per gate, the gates share the columns)
``"aa_lmf"``  :class:`~hmf_lab.nn.layers.LMFLinear`           left dense (warning); needs ``X``
              (activation-aware factors)
``"wanda"``   masked ``nn.Linear`` / ``SparseLinear``     left dense (warning); needs ``X``
``"oats"``    :class:`~hmf_lab.nn.baseline_layers.SparseLowRankLinear`  left dense (warning); needs ``X``
============  ==========================================  =============================================

An ``nn.MultiheadAttention`` becomes a :class:`~hmf_lab.nn.attention.CompressedMultiheadAttention`: the q, k
and v blocks of its ``in_proj_weight`` and its ``out_proj`` each compressed as an ``nn.Linear`` is (the
method record's ``attention``), with the forward signature and masks unchanged; PyTorch's fused
transformer fast paths are turned off where they would skip compressed modules
(:func:`~hmf_lab.nn.attention.bypass_fast_paths`).

Fine-tuning. HMF/LMF modules hold ``nn.Parameter`` factors (D, U, V) and train with autograd like the
dense model. A compressed LSTM's default ``mode="auto"`` rebuilds W_hat differentiably and runs
``nn.LSTM``'s fused kernel while autograd records (training costs about what dense training costs), and
runs the factorized per-step loop for inference (``torch.no_grad``/``inference_mode``), which streams
only the compressed weights. Pruned models train as masked dense models: each weight is
``weight_orig * weight_mask`` (``torch.nn.utils.prune``), so gradual pruning (Zhu & Gupta) can keep
calling ``torch.nn.utils.prune.l1_unstructured(module, "weight_hh_l0", amount)``; after fine-tuning,
:func:`sparsify` turns them into CSR modules for inference (``compress(..., sparse=True)`` does both at
once). ``state_dict`` round-trips with ``torch.load(weights_only=True)`` into a model built the same way
(``compress`` the same architecture, then ``load_state_dict``).

Which (split, rank)? Each matrix (for an LSTM, each gate block) is compressed ``compression``-fold: its
value budget is ``floor(m*n / compression)`` (:func:`~hmf_lab.factor.budget.value_budget`, the one meaning
of compression) and no method stores more. Pruning keeps exactly the budget
(:func:`~hmf_lab.factor.budget.prune_keep`; its CSR indices are counted apart; ``prune_count="lmf"`` keeps
LMF's count instead), LMF takes the largest rank that fits (:func:`~hmf_lab.factor.budget.lmf_rank`; a shape
where rank 1 does not fit raises), and HMF takes :func:`~hmf_lab.factor.budget.choose_split_rank`: the
balanced point ``split ~= rank`` among the (split, rank) within 1% of LMF's size (compression 1 keeps
every row dense, exactly). Each method's rule is its registry record's ``stored`` (:mod:`hmf_lab.nn.methods`).
``split``/``rank`` override: an int for every matrix, or a dict keyed by module name (and, for an LSTM,
``'ih'``/``'hh'``/``'ih_l0'``...). Parameters are counted the same way for every method: stored weight
values, biases and sparse indices excluded (:func:`count_params`).

Example
-------
>>> import torch, hmf_lab as hl
>>> model = torch.nn.Sequential(torch.nn.Linear(128, 128), torch.nn.ReLU(), torch.nn.Linear(128, 10))
>>> small = hl.compress(model, "hmf", compression=4)
>>> [type(m).__name__ for m in small], small[0].split, small[0].rank
(['HMFLinear', 'ReLU', 'HMFLinear'], 13, 10)
>>> round(hl.count_params(model) / hl.count_params(small), 2)  # the (10, 128) head sits at 4.6x (LMF rank 2)
4.04
>>> type(model[0]).__name__   # the original is untouched
'Linear'
"""
from __future__ import annotations

import contextlib
import copy
import math
import warnings

import numpy as np
import torch
from torch import nn
from torch.nn.utils import prune as tprune

from hmf_lab.factor._validation import check_compression
from hmf_lab.factor.allocate import check_allocate, greedy_allocate
from hmf_lab.nn.attention import CompressedMultiheadAttention, attention_calibration, bypass_fast_paths
from hmf_lab.nn.layers import HMFColLinear, HMFLinear, LMFLinear, SparseLinear
from hmf_lab.nn.baseline_layers import SparseLowRankLinear
from hmf_lab.factor.budget import _prune_count
from hmf_lab.nn.lstm import CompressedLSTM, PrunedLSTM
from hmf_lab.nn.methods import METHODS, Method, get_method

__all__ = ["compress", "sparsify", "count_params", "replace_modules", "select_modules", "capture_inputs",
           "METHODS", "allocation", "allocation_plan"]


def _is_compressed(mod: nn.Module) -> bool:
    return isinstance(mod, (CompressedLSTM, PrunedLSTM, HMFLinear, HMFColLinear, LMFLinear, SparseLinear,
                            CompressedMultiheadAttention, SparseLowRankLinear)) or (
        isinstance(mod, nn.Linear) and tprune.is_pruned(mod))


def select_modules(model: nn.Module, layers=None, *, min_dim: int = 0, skip_compressed: bool = True,
                   purpose: str = "compress") -> list[str]:
    """The one module selection: qualified names of the ``nn.Linear`` / ``nn.LSTM`` modules to work on.

    ``layers=None``: every plain ``nn.Linear`` (with ``min(weight.shape) >= min_dim``) and ``nn.LSTM``, in
    ``model.named_modules()`` order; ``layers`` (a name or a list of names): those, checked. With
    ``skip_compressed`` (``hl.compress``), modules compress already made (HMF/LMF/pruned) are left out:
    with none left this raises; with some left, a warning names the ones kept as they are. ``purpose``
    words the errors (``"compress"``, ``"report on"``). Used by ``hl.compress`` (all defaults),
    ``hl.report`` (``skip_compressed=False``) and the experiments
    (:func:`~hmf_lab.experiments.pipeline.compressed_layers`: ``min_dim=MIN_LINEAR_DIM``).

    >>> import torch
    >>> net = torch.nn.ModuleDict({"rnn": torch.nn.LSTM(8, 64), "head": torch.nn.Linear(64, 7),
    ...                            "proj": torch.nn.Linear(64, 64)})
    >>> select_modules(net), select_modules(net, min_dim=32), select_modules(net, "head")
    (['rnn', 'head', 'proj'], ['rnn', 'proj'], ['head'])
    """
    done = [name for name, mod in model.named_modules() if _is_compressed(mod)] if skip_compressed else []
    candidates = [name for name, mod in model.named_modules()
                  if (type(mod) is nn.LSTM or (type(mod) is nn.Linear and min(mod.weight.shape) >= min_dim))
                  and not (skip_compressed and _is_compressed(mod))
                  and not any(name == d or name.startswith(d + ".") for d in done if d)]
    candidates = _with_attention(model, candidates, done)
    if layers is None:
        if not candidates:
            if done:
                raise ValueError(
                    f"model is already compressed: {_names(done)} hold HMF/LMF/pruned weights and no plain "
                    f"nn.Linear / nn.LSTM is left to {purpose}; {purpose} the original (dense) model instead")
            raise ValueError(f"model has no nn.Linear or nn.LSTM to {purpose} (it is a {type(model).__name__})")
        if done:
            warnings.warn(f"model is partly compressed: {_names(done)} are kept as they are; compressing "
                          f"the remaining {_names(candidates)}", UserWarning, stacklevel=3)
        return candidates
    if isinstance(layers, str):
        layers = [layers]
    if not isinstance(layers, (list, tuple, set)) or not all(isinstance(x, str) for x in layers):
        raise TypeError(f"layers must be a module name or a list of names, got {layers!r}")
    layers = list(layers)
    bad = [name for name in layers if name not in candidates]
    if bad:
        raise ValueError(f"layers {bad} are not nn.Linear / nn.LSTM modules of the model"
                         + (" (not yet compressed)" if skip_compressed else "") + f"; valid names are {candidates}")
    return layers


def _with_attention(model: nn.Module, candidates: list, done: list) -> list:
    """``candidates`` plus every ``nn.MultiheadAttention`` (compressed whole, per q/k/v block and out_proj:
    :mod:`hmf_lab.nn.attention`), without the modules inside one (its ``out_proj`` is compressed with it)."""
    inside = lambda name, outer: any(name.startswith(o + ".") or (o == "" and name) for o in outer)  # noqa: E731
    mha = [name for name, mod in model.named_modules()
           if type(mod) is nn.MultiheadAttention and not inside(name, done)]
    keep = [name for name in candidates if not inside(name, mha)]
    order = {name: i for i, (name, _) in enumerate(model.named_modules())}
    return sorted(keep + mha, key=order.get)


def _names(names) -> str:
    shown = [repr(n) if n else "the model itself" for n in names[:6]]
    return ", ".join(shown) + (f" (+{len(names) - 6} more)" if len(names) > 6 else "")


def _pick(value, name: str):
    """An override for module ``name``: an int (all modules) or a dict keyed by module name."""
    if isinstance(value, dict):
        if name in value:
            return value[name]
        sub = {k[len(name) + 1:]: v for k, v in value.items() if name and k.startswith(name + ".")}
        return sub or None
    return value


def _build(mod, method: Method, c, opts: dict) -> nn.Module:
    """``mod`` compressed by the method record: its ``linear`` or ``lstm`` builder with the options it takes."""
    if isinstance(mod, nn.LSTM):
        if method.lstm is None:
            raise TypeError(f"method {method.name!r} has no LSTM form; leave the nn.LSTM out of layers=[...]")
        return method.lstm(mod, c, **opts)
    if isinstance(mod, nn.MultiheadAttention):
        return method.attention(mod, c, **opts)
    return method.linear(mod, c, **opts)


def compress(model: nn.Module, method, compression=None, *, heuristic=None, split=None, rank=None,
             layers=None, sparse: bool = False, X=None, loss=None, prune_count: str = "budget",
             allocate: str = "uniform") -> nn.Module:
    """A deep copy of ``model`` with its ``nn.Linear`` and ``nn.LSTM`` modules compressed by ``method``.

    ``method``: a name in the method registry ``hl.METHODS`` (``"hmf"``, ``"lmf"``, ``"prune"`` and what is
    registered with ``hl.register_method``) or a ``hl.Method`` record. ``compression``: dense values /
    stored values of every replaced matrix, the value budget ``floor(m*n / compression)`` (required unless
    the method's size options fix it: ``split`` and ``rank`` for HMF, ``rank`` for LMF; given together with
    both HMF's ``split`` and ``rank``, that point must fit the budget).
    ``heuristic``: HMF's split heuristic (a name in ``hl.HEURISTICS`` or a callable), applied per gate
    block in an LSTM; ``None`` (default): the order-invariant default of the method registry
    (``"greedy"``, or ``"activation"`` with ``X``; never ``"top"`` unless named: see
    :func:`hmf_lab.factor.heuristics.default_heuristic`). ``layers``: names (``model.named_modules()``) to
    replace; default the modules the method's layer policy touches (``Method.touches``: every
    ``nn.Linear`` and ``nn.LSTM`` for the built-ins; ``nn.Linear`` only for a method without an LSTM form).
    ``sparse``: for ``"prune"``, CSR inference modules instead of trainable masked ones.
    ``prune_count``: ``"budget"`` (default) keeps exactly ``floor(m*n / compression)`` values, as
    ``hl.prune`` does; ``"lmf"`` keeps LMF's count at that compression (an explicit equal-size option).
    ``X``: calibration inputs of the **model** for data-aware heuristics (``"activation"``): one batch
    (a tensor, or a tuple of positional arguments) or a list of batches. Forward hooks capture what each
    compressed layer sees (an ``nn.Linear`` its input rows; an ``nn.LSTM`` layer its input sequence for
    ``W_ih`` and its hidden states ``h_t`` for ``W_hh``) and hand those to the heuristic and the fit.
    ``loss``: for ``heuristic="fisher"``, a callable ``loss(model, batch) -> scalar tensor``; the
    empirical Fisher row importances (squared gradients summed over the batches of ``X``) of each matrix
    (per gate block in an LSTM) drive the selection. The original model's ``.grad`` are left as they were.
    Options a method does not take (its record's ``options``) raise ``ValueError``; ``heuristic`` is
    ignored by methods without a split heuristic.
    ``allocate``: ``"uniform"`` (default) compresses every matrix (LSTM gate block, attention q/k/v/out block)
    ``compression``-fold; ``"greedy"`` keeps the same total budget (the sum of ``floor(m*n / compression)``
    over the touched matrices, never over it) and spreads it over the matrices and their per-matrix choices
    by one solver for every method (:mod:`hmf_lab.factor.allocate` on each matrix's ``Method.points``):
    calibration output error per stored value with ``X`` (taken by every method for this), relative weight
    error without. The per-matrix result is ``allocation(new_model)`` (a DataFrame; totals in ``.attrs``).
    ``allocate`` may also be such a table (``allocation(m)`` or ``allocation_plan(...)`` of the same method on a
    model of the same architecture): every matrix gets the table's point (its ``options`` column) without
    solving again, e.g. the allocation found on a trained model applied to a fresh initialization.

    >>> import torch, hmf_lab as hl
    >>> net = torch.nn.ModuleDict({"rnn": torch.nn.LSTM(8, 16, batch_first=True), "out": torch.nn.Linear(16, 4)})
    >>> small = hl.compress(net, "prune", compression=4, layers=["rnn"])
    >>> type(small["rnn"]).__name__, type(small["out"]).__name__
    ('PrunedLSTM', 'Linear')
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    meth = get_method(method)
    c = None if compression is None else check_compression(compression)
    reuse = _reused_allocation(allocate, method)
    greedy = reuse is not None or check_allocate(allocate) == "greedy"
    if greedy and (c is None or split is not None or rank is not None):
        raise ValueError("allocate='greedy' spreads the budget of compression over the matrices and picks each "
                         "one's size itself: give compression=c and no split= / rank=")
    # heuristic is not checked: methods without a split heuristic ignore it (a sweep passes one for all)
    if not isinstance(sparse, (bool, np.bool_)):
        raise TypeError(f"sparse must be True or False, got {type(sparse).__name__} {sparse!r}; pass sparse=True for "
                        f"CSR inference modules (pruning) or leave it out")
    if not isinstance(prune_count, str):
        raise TypeError(f"prune_count must be 'budget' or 'lmf', got {type(prune_count).__name__} {prune_count!r}")
    given = {"split": split, "rank": rank, "X": X, "loss": loss, "sparse": bool(sparse) or None,
             "prune_count": None if prune_count == "budget" else prune_count}
    if c is None and not (meth.fixed_by and all(given[o] is not None for o in meth.fixed_by)):
        fix = " and ".join(meth.fixed_by)
        raise TypeError(f"compression is required for method {meth.name!r} unless "
                        + (f"{fix} {'are both' if len(meth.fixed_by) > 1 else 'is'} given" if meth.fixed_by
                           else "... (it always needs it)")
                        + ", e.g. compression=4")
    missing = [o for o in meth.requires if given.get(o) is None]  # e.g. the activation-aware baselines need X
    if missing:
        raise ValueError(f"method {meth.name!r} needs {', '.join(f'{o}=' for o in missing)} (calibration inputs of "
                         f"the model: one batch or a list of batches); pass X=..., or use a data-free method such "
                         f"as 'lmf' or 'prune'")
    unused = [o for o, v in given.items() if v is not None and o not in meth.options
              and not (greedy and o == "X")]  # the allocation reads X for every method
    if unused:
        o = unused[0]
        takers = [m.name for m in METHODS.values() if o in m.options]
        shown = {"sparse": "sparse=True", "X": "X (calibration inputs)", "loss": "loss (calibration loss)"}.get(
            o, f"{o} = {given[o]!r}")
        raise ValueError(f"{shown} only applies to method {' or '.join(map(repr, takers)) or '(none registered)'}, "
                         f"got method {meth.name!r} (it takes {list(meth.options) or 'compression only'}); drop "
                         f"{o}= or pick one of those methods")
    if "prune_count" in meth.options:
        _prune_count(prune_count)
    opts = {"split": split, "rank": rank, "heuristic": heuristic, "sparse": sparse, "prune_count": prune_count}
    opts = {k: v for k, v in opts.items() if k in meth.options}
    names = select_modules(model, layers)
    if layers is None:  # the layer policy (hmf_lab.nn.methods, "Layer policy")
        left = [n for n in names if not meth.touches(model.get_submodule(n) if n else model)]
        if left:
            names = [n for n in names if n not in left]
            if not names:
                raise ValueError(f"method {meth.name!r} touches {meth.layer_policy} modules by default "
                                 f"({meth.layer_policy_why}) and the model has none; pass layers=[...]")
            warnings.warn(f"method {meth.name!r} touches {meth.layer_policy} modules by default "
                          f"({meth.layer_policy_why}): {_names(left)} left dense; pass layers=[...] to choose",
                          UserWarning, stacklevel=2)
    targets = set(names)
    attn = [n for n in names if isinstance(model.get_submodule(n), nn.MultiheadAttention)]
    if attn and heuristic == "fisher" and X is not None:
        raise ValueError(f"heuristic 'fisher' does not reach inside nn.MultiheadAttention ({_names(attn)}); leave "
                         f"them out with layers=[...] or pick another heuristic")
    calib, heur = _calibration(model, [n for n in names if n not in attn], heuristic, X, loss)
    if attn and X is not None and ("X" in meth.options or greedy):
        calib.update(attention_calibration(model, attn, _batches(X)))
    plan, table = ({}, None) if not greedy else _allocate(model, names, meth, c, calib, heuristic, prune_count,
                                                          "greedy" if reuse is None else reuse)

    def convert(name, mod):
        if name not in targets:
            return None
        kw = dict(opts)
        if "heuristic" in kw:
            kw["heuristic"] = heur.get(name, heuristic)
        if "X" in meth.options and calib.get(name) is not None:
            kw["X"] = calib.get(name)
        if name in plan:  # allocate="greedy": this module's per-matrix compression and sizes
            cm, extra = plan[name]
            kw.update(extra)
            return _replace(mod, name, meth, cm, kw)
        return _replace(mod, name, meth, c, kw)

    out = bypass_fast_paths(replace_modules(model, convert))
    if table is not None:
        out.hmf_allocation = table
    return out


# --------------------------------------------------------------------------- whole-model allocation


def _units(model: nn.Module, names, calib: dict):
    """The matrices of the modules ``names``: (module name, key, W (blocks stacked), blocks, X or None).

    key: None for an ``nn.Linear``; ``'ih_l0'``, ``'hh_l0'``... for an LSTM (4 gate blocks); ``'q_proj'``,
    ``'k_proj'``, ``'v_proj'``, ``'out_proj'`` for an ``nn.MultiheadAttention``."""
    from hmf_lab.nn.lstm import GATES, _suffixes

    out = []
    for name in names:
        mod = model.get_submodule(name) if name else model
        X = calib.get(name)
        if isinstance(mod, nn.LSTM):
            for sfx in _suffixes(mod):
                for which in ("ih", "hh"):
                    key = which + sfx
                    out.append((name, key, getattr(mod, "weight_" + key).detach(), GATES,
                                None if X is None else X.get(key)))
        elif isinstance(mod, nn.MultiheadAttention):
            if mod.in_proj_weight is not None:
                qkv = mod.in_proj_weight.detach().chunk(3)
            else:
                qkv = [getattr(mod, f"{b}_proj_weight").detach() for b in "qkv"]
            for key, W in zip(("q_proj", "k_proj", "v_proj", "out_proj"), list(qkv) + [mod.out_proj.weight.detach()]):
                out.append((name, key, W, 1, None if X is None else X.get(key)))
        else:
            out.append((name, None, mod.weight.detach(), 1, X))
    return out


def _allocate(model, names, meth: Method, c, calib: dict, heuristic, prune_count, allocate: str):
    """Per module ``(compression, options)`` for the builders and the per-matrix table, by ``allocate``."""
    from hmf_lab.factor.budget import value_budget

    if heuristic == "fisher":
        raise ValueError("allocate='greedy' does not take heuristic 'fisher' yet; pick another heuristic "
                         "(the default: 'activation' with X)")
    lopts = {k: v for k, v in {"heuristic": heuristic, "prune_count": prune_count}.items() if k in meth.options}
    units = _units(model, names, calib)
    if not isinstance(allocate, str):
        return _plan_from_table(units, meth, c, allocate)
    cands, incumbent, budget, dense = [], [], 0, 0
    for name, key, W, blocks, X in units:
        shape = (W.shape[0] // blocks, W.shape[1])
        budget += blocks * value_budget(shape, c)
        dense += W.numel()
        with torch.inference_mode(False), torch.no_grad():
            pts = meth.points(W, c, X=X, blocks=blocks, **lopts)
        if not pts:
            raise ValueError(f"method {meth.name!r} has no candidate point for {key or name!r} of shape {shape}")
        cands.append(pts)
        try:  # the uniform point: the record's own size at c
            sz = {k: v for k, v in lopts.items() if k == "prune_count"}
            st = meth.stored(shape, c, blocks=blocks, **sz)
            cfg = meth.config(shape, c, **sz) if meth.config is not None else {}
        except ValueError:
            st, cfg = None, {}
        same = [i for i, p in enumerate(pts) if p[0] == st and all(p[2].get(k, v) == v for k, v in cfg.items())]
        incumbent.append(same[0] if same else None)
    inc = None if any(i is None for i in incumbent) else incumbent
    if allocate == "uniform":
        if inc is None:
            raise ValueError(f"method {meth.name!r}: the uniform point is not among the candidate points")
        choice = inc
    else:
        choice = greedy_allocate([[(p[0], p[1]) for p in pts] for pts in cands], budget, incumbent=inc).choice
    return _plan(units, meth, c, [pts[i] for pts, i in zip(cands, choice)], allocate, budget, dense)


def _plan(units, meth: Method, c, picked, allocate, budget: int, dense: int):
    """The builders' plan ``{module: (compression(s), sizes)}`` and the per-matrix table of the points ``picked``
    (one ``(stored, error, options)`` per unit)."""
    import pandas as pd

    from hmf_lab.factor.budget import value_budget

    plan, rows = {}, []
    for (name, key, W, blocks, X), (st, err, options) in zip(units, picked):
        options = dict(options)
        row_options = dict(options)
        cm = options.pop("compression")
        sizes = {k: v for k, v in options.items() if k in meth.options}
        cm_mod, extra = plan.setdefault(name, ({} if key is not None else None, {}))
        if key is None:
            plan[name] = (cm, sizes)
        else:
            cm_mod[key] = cm
            for k, v in sizes.items():  # keyed "<module>.<matrix>": _replace_one's _pick hands the module its part
                extra.setdefault(k, {})[f"{name}.{key}" if name else key] = v  # root: wrapped below
        m, n = W.shape
        rows.append({"layer": name, "matrix": key or "", "shape": (m // blocks, n), "blocks": blocks,
                     "dense": W.numel(), "budget": blocks * value_budget((m // blocks, n), c), "stored": st,
                     "compression": W.numel() / st, "split": options.get("split"), "rank": options.get("rank"),
                     "error": err, "rel_error": math.sqrt(err / blocks) if err == err else float("nan"),
                     "options": row_options})
    if "" in plan and isinstance(plan[""][0], dict):  # the model itself is the LSTM / attention: _pick reads key ""
        plan[""] = (plan[""][0], {k: {"": v} for k, v in plan[""][1].items()})
    table = pd.DataFrame(rows)
    table.attrs.update({"allocate": allocate, "method": meth.name, "target": float(c), "budget": int(budget),
                        "stored": int(table["stored"].sum()), "dense": int(dense),
                        "compression": dense / float(table["stored"].sum()), "error": float(table["error"].sum()),
                        "by": "output error" if any(u[4] is not None for u in units) else "weight error"})
    return plan, table


def _reused_allocation(allocate, method):
    """``allocate`` when it is a table to reuse (checked against ``method``), else None (a rule name)."""
    import pandas as pd

    if not isinstance(allocate, pd.DataFrame):
        return None
    need = {"layer", "matrix", "shape", "stored", "options"}
    if not need <= set(allocate.columns):
        raise ValueError(f"allocate= as a table must be the per-matrix table of hl.compress(..., allocate='greedy') "
                         f"(allocation(model) or allocation_plan(...)) with columns {sorted(need)}; got columns "
                         f"{list(allocate.columns)}")
    made_by = allocate.attrs.get("method")
    name = get_method(method).name
    if made_by is not None and made_by != name:
        raise ValueError(f"the allocation table was made for method {made_by!r}, not {name!r}: its points "
                         f"(split, rank, keep counts) are that method's; allocate {name!r} itself "
                         f"(allocate='greedy') or pass a table of {name!r}")
    return allocate


def _plan_from_table(units, meth: Method, c, table):
    """The plan of a reused allocation table: every unit's row, matched by (layer, matrix)."""
    from hmf_lab.factor.budget import value_budget

    rows = {(str(r["layer"]), str(r["matrix"] or "")): r for r in table.to_dict("records")}
    picked, budget, dense = [], 0, 0
    for name, key, W, blocks, X in units:
        r = rows.get((name, key or ""))
        if r is None:
            raise ValueError(f"the allocation table has no row for layer {name!r}" + (f" matrix {key!r}" if key else "")
                             + f" (its rows: {sorted(rows)}); it must come from a model of the same architecture "
                               f"compressed on the same layers")
        shape = (W.shape[0] // blocks, W.shape[1])
        if tuple(r["shape"]) != shape:
            raise ValueError(f"the allocation table's {name!r} {key or ''} has shape {tuple(r['shape'])}, this model's "
                             f"is {shape}: the table comes from another architecture")
        budget += blocks * value_budget(shape, c)
        dense += W.numel()
        picked.append((int(r["stored"]), float("nan"), dict(r["options"])))
    return _plan(units, meth, c, picked, "reused", budget, dense)


def allocation(model: nn.Module):
    """The per-matrix table of a model compressed with ``allocate="greedy"``: layer, matrix (LSTM ``ih_l0``...,
    attention ``q_proj``...), shape (one block), blocks, dense, budget, stored, compression, split, rank,
    error (squared relative error summed over the blocks: the solver's objective) and rel_error (its root per
    block); ``.attrs`` holds the totals (budget, stored, compression, error, by).

    >>> import torch, hmf_lab as hl
    >>> net = torch.nn.Sequential(torch.nn.Linear(64, 64), torch.nn.Linear(64, 16))
    >>> small = hl.compress(net, "lmf", compression=4, allocate="greedy")
    >>> t = allocation(small); t.attrs["stored"] <= t.attrs["budget"], list(t["layer"])
    (True, ['0', '1'])
    """
    table = getattr(model, "hmf_allocation", None)
    if table is None:
        raise ValueError("model carries no allocation: compress it with hl.compress(..., allocate='greedy'), or "
                         "see allocation_plan(model, method, compression, allocate='uniform') for the uniform one")
    return table


def allocation_plan(model: nn.Module, method, compression, *, allocate: str = "greedy", X=None, layers=None,
                    heuristic=None, prune_count: str = "budget"):
    """The per-matrix table :func:`allocation` shows, for ``allocate="uniform"`` or ``"greedy"``, without
    building the compressed model (side-by-side comparisons of the two rules)."""
    meth = get_method(method)
    c = check_compression(compression)
    allocate = check_allocate(allocate)
    names = select_modules(model, layers)
    if layers is None:
        names = [n for n in names if meth.touches(model.get_submodule(n) if n else model)]
    attn = [n for n in names if isinstance(model.get_submodule(n), nn.MultiheadAttention)]
    calib, _ = _calibration(model, [n for n in names if n not in attn], None, X, None)
    if attn and X is not None:
        calib.update(attention_calibration(model, attn, _batches(X)))
    return _allocate(model, names, meth, c, calib, heuristic, prune_count, allocate)[1]


# --------------------------------------------------------------------------- calibration inputs (X, loss)


@contextlib.contextmanager
def recording(modules, *, kwargs: bool = False):
    """Forward pre-hooks that record every call of ``modules`` while the block runs; removed on exit.

    ``modules``: ``(name, module)`` pairs or a ``{name: module}`` dict. Yields ``{name: [call, ...]}``
    filled as the modules run: each call is its positional arguments (a tuple, tensors detached), or
    ``(args, kwargs)`` as received with ``kwargs=True``. The one calibration capture: :func:`capture_inputs`,
    ``hl.compress``'s calibration (``X``, ``loss``), ``hl.report``, the engine choice and the leaderboard's
    real inputs all record through it.
    """
    pairs = list(modules.items()) if isinstance(modules, dict) else list(modules)
    got: dict[str, list] = {name: [] for name, _ in pairs}
    handles = []

    def hook_for(name):
        if kwargs:
            def hook(mod, args, kw):
                got[name].append((args, kw))
        else:
            def hook(mod, args):
                got[name].append(tuple(a.detach() if isinstance(a, torch.Tensor) else a for a in args))
        return hook

    try:
        for name, mod in pairs:
            handles.append(mod.register_forward_pre_hook(hook_for(name), with_kwargs=kwargs))
        yield got
    finally:
        for h in handles:
            h.remove()


def capture_inputs(model: nn.Module, modules, batches, *, kwargs: bool = False) -> dict[str, list]:
    """Every call each of ``modules`` receives while ``model(*b)`` runs for each input tuple ``b`` of ``batches``.

    Runs under ``torch.no_grad`` (the model's train/eval mode is the caller's); the hooks are always removed.
    Returns ``{name: [args, ...]}`` (``[(args, kwargs), ...]`` with ``kwargs=True``), see :func:`recording`.

    >>> import torch
    >>> net = torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.ReLU())
    >>> calls = capture_inputs(net, [("0", net[0])], [(torch.zeros(4, 3),), (torch.ones(5, 3),)])
    >>> [tuple(args[0].shape) for args in calls["0"]]
    [(4, 3), (5, 3)]
    >>> len(net[0]._forward_pre_hooks)
    0
    """
    with recording(modules, kwargs=kwargs) as got, torch.no_grad():
        for b in batches:
            model(*b)
    return got


def _batches(X) -> list:
    """Model calibration inputs as a list of batches; each batch a tuple of positional arguments."""
    import numpy as np

    if isinstance(X, (torch.Tensor, np.ndarray)):
        X = [X]
    if not isinstance(X, (list, tuple)):
        raise TypeError(f"X must be a batch of model inputs (a tensor) or a list of batches, got {type(X).__name__}")
    if isinstance(X, tuple) and X and all(isinstance(b, torch.Tensor) for b in X):
        X = [X]  # a tuple of tensors: the positional arguments of one call
    if not X:
        raise ValueError("X must hold at least one batch of model inputs, got an empty list")
    out = []
    for i, b in enumerate(X):
        args = b if isinstance(b, tuple) else (b,)
        for a in args:
            if isinstance(a, np.ndarray):
                raise TypeError(f"X batch {i} must hold torch tensors, got a numpy array; use torch.from_numpy(...)")
            if isinstance(a, torch.Tensor):
                if a.device.type == "meta":
                    raise ValueError(f"X batch {i} is on the meta device (no values); pass real tensors")
                if a.ndim == 0 or a.shape[0] == 0:
                    raise ValueError(f"X batch {i} must be a non-empty batch, got shape {tuple(a.shape)}")
        out.append(args)
    return out


def _pop(stack: list) -> None:
    if stack:
        stack.pop()  # a forward hook must return None (a value would replace the output)


def _misfit(name: str, mod: nn.Module, args, i: int, err: Exception):
    """Raise a TypeError/ValueError naming X when the inputs reaching layer ``name`` do not fit it."""
    x = args[0] if args else None
    x = getattr(x, "data", x)  # a PackedSequence's data
    if not isinstance(x, torch.Tensor):
        return
    width = mod.in_features if isinstance(mod, nn.Linear) else mod.input_size
    dtype = mod.weight.dtype if isinstance(mod, nn.Linear) else mod.weight_ih_l0.dtype
    where = f"layer {name!r} ({_describe(mod)})" if name else f"the model ({_describe(mod)})"
    if x.dtype != dtype:
        raise TypeError(f"X batch {i} reaches {where} as {x.dtype} inputs of shape {tuple(x.shape)}, but that layer "
                        f"takes {dtype} inputs; pass X as {dtype} (e.g. X.to({dtype}))"
                        + (f" or convert the model (model.to({x.dtype}))" if x.is_floating_point() else "")) from err
    if x.shape[-1] != width:
        raise ValueError(f"X batch {i} reaches {where} with width {x.shape[-1]} (shape {tuple(x.shape)}), but that "
                         f"layer expects inputs of width {width} (shape (..., {width})); pass the model's own inputs "
                         f"as X, with last dimension {width}") from err


def _lstm_streams(lstm: nn.LSTM, args) -> dict:
    """Per-matrix inputs of an LSTM call: ``ih_l{k}`` the layer's input rows, ``hh_l{k}`` its hidden states."""
    from torch.nn.utils.rnn import PackedSequence

    x = args[0]
    hx = args[1] if len(args) > 1 else None
    D, H, L = (2 if lstm.bidirectional else 1), lstm.hidden_size, lstm.num_layers
    streams = {}
    inp = x
    for layer in range(L):
        one = nn.LSTM(inp.data.shape[-1] if isinstance(inp, PackedSequence) else inp.shape[-1], H, 1,
                      bias=lstm.bias, batch_first=lstm.batch_first, bidirectional=lstm.bidirectional,
                      dtype=getattr(lstm, "weight_ih_l0").dtype, device=lstm.weight_ih_l0.device)
        state = {}
        for d in range(D):
            sfx = "_reverse" if d else ""
            for w in ("weight_ih", "weight_hh") + (("bias_ih", "bias_hh") if lstm.bias else ()):
                state[f"{w}_l0{sfx}"] = getattr(lstm, f"{w}_l{layer}{sfx}").detach()
        one.load_state_dict(state)
        h0 = None if hx is None else tuple(t[layer * D:(layer + 1) * D] for t in hx)
        y, _ = one(inp, h0)
        rows_in = (inp.data if isinstance(inp, PackedSequence) else inp).reshape(-1, one.input_size)
        rows_out = (y.data if isinstance(y, PackedSequence) else y).reshape(-1, D * H)
        for d in range(D):
            sfx = f"_l{layer}" + ("_reverse" if d else "")
            streams["ih" + sfx] = rows_in
            streams["hh" + sfx] = rows_out[:, d * H:(d + 1) * H]  # h_t, the inputs of W_hh at t+1
        inp = y
    return streams


def _calibration(model: nn.Module, names, heuristic, X, loss):
    """Per-layer calibration inputs (and Fisher heuristics) for the modules ``names``, from model inputs X."""
    from hmf_lab.factor.heuristics import fisher_from

    if X is None:
        if loss is not None:
            raise ValueError("loss needs calibration batches: pass X=batch or X=[batch, ...] with loss=...")
        if heuristic == "fisher":
            raise ValueError("heuristic 'fisher' on a whole model needs X=batches and loss=callable(model, batch); "
                             "or pass heuristic=hl.heuristics.fisher_from(grad) for one layer")
        return {}, {}
    batches = _batches(X)
    fisher = heuristic == "fisher"
    if fisher and not callable(loss):
        raise TypeError(f"heuristic 'fisher' needs loss=callable(model, batch) -> scalar tensor, got {loss!r}")
    if loss is not None and not fisher:
        raise ValueError(f"loss is only used by heuristic 'fisher', got heuristic {heuristic!r}; drop loss=")
    mods = {name: model.get_submodule(name) if name else model for name in names}
    hooks = []
    entered: list = []  # (name, module, args) of the Linear/LSTM whose forward is running: names X's misfit
    for name, mod in model.named_modules():
        if type(mod) in (nn.Linear, nn.LSTM):
            hooks.append(mod.register_forward_pre_hook(
                lambda mod, args, name=name: entered.append((name, mod, args))))
            hooks.append(mod.register_forward_hook(lambda mod, args, out: _pop(entered)))
    params = {name: [p for n, p in mod.named_parameters(recurse=False) if n.startswith("weight")]
              for name, mod in mods.items()}
    saved = {id(p): p.grad for ps in params.values() for p in ps}
    imp = {id(p): torch.zeros(p.shape[0], dtype=torch.float64) for ps in params.values() for p in ps}
    was = model.training
    model.eval()  # calibration without dropout
    try:
        with torch.inference_mode(False), recording(mods) as calls:
            for i, args in enumerate(batches):
                if fisher:
                    model.zero_grad(set_to_none=True)
                    with torch.enable_grad():
                        value = loss(model, args[0] if len(args) == 1 else args)
                        if not isinstance(value, torch.Tensor) or value.numel() != 1:
                            raise TypeError(f"loss must return a scalar tensor, got {type(value).__name__} "
                                            f"{tuple(getattr(value, 'shape', ()))}")
                        value.backward()
                    for ps in params.values():
                        for p in ps:
                            if p.grad is not None:
                                imp[id(p)] += (p.grad.detach().double() ** 2).sum(1)
                else:
                    with torch.no_grad():
                        model(*args)
    except (RuntimeError, ValueError) as e:
        if entered:
            _misfit(*entered[-1], i, e)
        raise
    finally:
        for h in hooks:
            h.remove()
        model.train(was)
        if fisher:
            for ps in params.values():
                for p in ps:
                    p.grad = saved[id(p)]
    calib, heur = {}, {}
    for name, mod in mods.items():
        if not calls[name]:
            raise ValueError(f"layer {name!r} never ran on the calibration inputs X; check that X reaches it")
        with torch.inference_mode(False), torch.no_grad():
            got = [_lstm_streams(mod, args) if isinstance(mod, nn.LSTM) else args[0].reshape(-1, mod.in_features)
                   for args in calls[name]]
        if isinstance(mod, nn.LSTM):
            calib[name] = {key: torch.cat([g[key] for g in got]) for key in got[0]}
            if fisher:
                G = 4
                heur[name] = {}
                for sfx in [k[2:] for k in got[0] if k.startswith("ih")]:
                    for which in ("ih", "hh"):
                        w = getattr(mod, f"weight_{which}{sfx}")
                        heur[name][which + sfx] = tuple(fisher_from(g) for g in imp[id(w)].split(mod.hidden_size))
                        assert len(heur[name][which + sfx]) == G
        else:
            calib[name] = torch.cat(got)
            if fisher:
                heur[name] = fisher_from(imp[id(mod.weight)])
    return calib, heur


def replace_modules(model: nn.Module, convert, *, inplace: bool = False) -> nn.Module:
    """The one module-replacement walk: ``model`` with each module ``m`` replaced by ``convert(name, m)``.

    ``convert(name, module)`` returns the replacement, or ``None`` to keep the module and walk into its
    children (a replaced module is not walked into). ``name`` is the qualified name
    (``model.named_modules()``; ``""`` is ``model`` itself, and a replaced root is returned as is).
    **Shared modules stay shared**: a module reachable under several names (``nn.Sequential(lin, act,
    lin)``) is converted once, under its first name, and that one replacement goes to every place.
    ``inplace=False`` (default) works on a deep copy (made outside ``inference_mode``, so the copy holds
    ordinary tensors) and leaves ``model`` untouched; ``inplace=True`` edits ``model`` and returns it.
    Used by :func:`compress`, :func:`sparsify` and ``reproduce``.

    >>> import torch, hmf_lab as hl
    >>> lin = torch.nn.Linear(4, 4)
    >>> net = torch.nn.Sequential(lin, torch.nn.ReLU(), lin)
    >>> from hmf_lab.nn.compress import replace_modules
    >>> new = replace_modules(net, lambda name, m: torch.nn.Tanh() if isinstance(m, torch.nn.ReLU) else None)
    >>> type(new[1]).__name__, new[0] is new[2], new[0] is lin
    ('Tanh', True, False)
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    if not callable(convert):
        raise TypeError(f"convert must be a callable convert(name, module) -> module or None, "
                        f"got {type(convert).__name__}")
    top = convert("", model)
    if top is not None:
        return top
    if not inplace:
        with torch.inference_mode(False):  # a copy made inside inference_mode would hold inference tensors
            model = copy.deepcopy(model)  # deepcopy keeps sharing (one copy per shared module)
    done: dict[int, nn.Module | None] = {}  # id(original child) -> its replacement (None: kept)
    visited: set[int] = set()

    def walk(parent: nn.Module, prefix: str) -> None:
        if id(parent) in visited:
            return
        visited.add(id(parent))
        for child_name, child in list(parent._modules.items()):
            if child is None:
                continue
            name = f"{prefix}.{child_name}" if prefix else child_name
            if id(child) not in done:
                rep = convert(name, child)
                done[id(child)] = rep
                if rep is None:
                    walk(child, name)
            rep = done[id(child)]
            if rep is not None:
                setattr(parent, child_name, rep)

    walk(model, "")
    return model


def _replace(mod, name, method: Method, c, opts: dict):
    try:
        return _replace_one(mod, name, method, c, opts)
    except ValueError as e:  # name the layer: a model has many matrices
        where = f"layer {name!r}" if name else "the model itself"
        raise ValueError(f"{where} ({_describe(mod)}): {e}") from e


def _describe(mod) -> str:
    if isinstance(mod, nn.LSTM):
        return f"LSTM({mod.input_size}, {mod.hidden_size})"
    if isinstance(mod, nn.Linear):
        return f"Linear({mod.in_features}, {mod.out_features})"
    return type(mod).__name__


def _replace_one(mod, name, method: Method, c, opts: dict):
    kw = {k: (_pick(v, name) if k in ("split", "rank") else v) for k, v in opts.items()}
    # inference_mode(False): compressing inside `torch.inference_mode()` would make the new parameters
    # inference tensors (not trainable, no version counter)
    with torch.inference_mode(False), torch.no_grad():
        out = _build(mod, method, c, kw)
    out.train(mod.training)
    return out.to(device=_device(mod))


def _device(mod: nn.Module):
    p = next(mod.parameters(), None)
    return p.device if p is not None else torch.device("cpu")


def _refresh_masked_weights(model: nn.Module) -> None:
    """Recompute every ``torch.nn.utils.prune`` masked weight outside autograd.

    After a training step the masked weights (``weight = weight_orig * weight_mask``) still hold the
    last forward's graph, and ``copy.deepcopy`` refuses such non-leaf tensors.
    """
    with torch.no_grad():
        for mod in model.modules():
            for hook in list(mod._forward_pre_hooks.values()):
                if isinstance(hook, tprune.BasePruningMethod):
                    setattr(mod, hook._tensor_name, hook.apply_mask(mod))


def sparsify(model: nn.Module) -> nn.Module:
    """A copy of a pruned model for CSR inference: masked ``nn.Linear`` -> ``SparseLinear``, ``PrunedLSTM`` -> ``SparseLSTM``.

    Call it after fine-tuning a ``compress(model, "prune", c)`` model; only modules carrying a
    ``torch.nn.utils.prune`` mask (and :class:`PrunedLSTM`) are converted, the rest is copied as is.

    >>> import torch, hmf_lab as hl
    >>> pruned = hl.compress(torch.nn.Sequential(torch.nn.Linear(32, 32)), "prune", compression=4)
    >>> fast = hl.sparsify(pruned)
    >>> type(fast[0]).__name__, fast[0].nnz
    ('SparseLinear', 256)
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")

    def convert(mod):
        if isinstance(mod, PrunedLSTM):
            return mod.to_sparse()
        if isinstance(mod, nn.Linear) and tprune.is_pruned(mod) and hasattr(mod, "weight_mask"):
            b = None if mod.bias is None else mod.bias.detach()
            return SparseLinear.from_dense(mod.weight.detach(), b, mask=mod.weight_mask.bool())
        return None

    def convert_named(name, mod):
        with torch.inference_mode(False):
            return convert(mod)

    with torch.inference_mode(False):
        top = convert(model)
    if top is not None:
        return top
    _refresh_masked_weights(model)
    return bypass_fast_paths(replace_modules(model, convert_named))


def count_params(model: nn.Module) -> int:
    """Stored weight values of every Linear/LSTM-like module, counted the same way for every method.

    Dense ``nn.Linear``/``nn.LSTM``: all weight entries; HMF/LMF: factor entries; pruned (masked or
    CSR): kept entries. Biases, embeddings, norms and sparse indices are not counted.

    >>> import torch, hmf_lab as hl
    >>> hl.count_params(torch.nn.LSTM(8, 16)), hl.count_params(torch.nn.Linear(16, 4))
    (1536, 64)
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    counted = (CompressedLSTM, PrunedLSTM, HMFLinear, HMFColLinear, LMFLinear, SparseLinear, SparseLowRankLinear)
    seen: set[int] = set()  # a shared module (used twice) stores its values once

    def walk(mod: nn.Module) -> int:
        if id(mod) in seen:
            return 0
        seen.add(id(mod))
        if isinstance(mod, counted):
            return mod.n_params
        if isinstance(mod, nn.LSTM):
            return sum(p.numel() for n, p in mod.named_parameters(recurse=False) if n.startswith("weight"))
        if isinstance(mod, nn.MultiheadAttention):  # in_proj_weight (or q/k/v_proj_weight) and out_proj
            return sum(p.numel() for n, p in mod.named_parameters(recurse=False) if n.endswith("proj_weight")) \
                + walk(mod.out_proj)
        if isinstance(mod, nn.Linear):
            mask = getattr(mod, "weight_mask", None)
            return int(mask.sum()) if mask is not None else mod.weight.numel()
        return sum(walk(child) for child in mod._modules.values() if child is not None)

    return walk(model)
