"""The method registry: one :class:`Method` record per compression method (``"hmf"``, ``"lmf"``, ``"prune"``).

Everything that depends on *which* method runs reads the record instead of comparing method names:
``hl.compress`` builds layers with ``method.linear`` / ``method.lstm``, ``hl.report`` and the benchmarks
count stored values with ``method.stored``, the plots take ``method.label`` / ``method.color``, the
experiments ask the flags. Outside this module no code compares method strings
(``tests/test_methods.py`` checks the source).

How to use it (e.g. in an experiment cell)::

    from hmf_lab.nn.methods import get_method, DENSE, label_of

    m = get_method(cell.method)           # a name or a Method; unknown names raise ValueError listing the valid ones
    m.takes_heuristic                     # HMF: a split heuristic (and calibration X / loss) applies
    m.sparse                              # pruning: CSR inference exists, ``hl.sparsify`` / ``sparse=True`` apply
    m.fine_tune                           # "factors" (train the factors) or "gradual_prune" (Zhu & Gupta masks)
    m.stored((m_rows, n_cols), 4)         # stored values at compression 4 (the one budget rule, never over it)
    m.config((m_rows, n_cols), 4)         # {"split": k, "rank": r} / {"rank": r} / {"nnz": keep}
    m.factorize(W, 4)                     # hl.hmf / hl.lmf / hl.prune result at compression 4
    m.linear(nn.Linear(...), 4)           # HMFLinear / LMFLinear / masked Linear (SparseLinear with sparse=True)
    m.lstm(nn.LSTM(...), 4)               # HMFLSTM / LMFLSTM / PrunedLSTM (SparseLSTM with sparse=True)
    m.attention(nn.MultiheadAttention(...), 4)  # CompressedMultiheadAttention: q, k, v, out blocks by m.linear
    m.label, m.color, m.engines           # "HMF", a hex colour, ("factorized", "reconstructed")
    m.points(W, 4, X=None, blocks=1)      # candidate (stored, error, options) of one matrix: allocate="greedy"
    label_of("dense"), DENSE.color        # table rows of the uncompressed model: the DENSE pseudo-record

**Compression** has one meaning for every method (see :func:`hmf_lab.factor.budget.value_budget`): dense
values / stored values; the value budget of an (m, n) matrix at compression c is ``floor(m*n / c)`` and
every method stores at most that, as close to it as its structure allows: pruning keeps exactly the
budget, LMF the largest rank that fits, HMF the balanced (split, rank) of ``choose_split_rank``.

The experiments read the registry (:mod:`hmf_lab.experiments.pipeline`, ``reproduce``, ``grid``): a cell's
method list is ``[DENSE.name, *METHODS]``; instead of ``method == "prune"`` they ask the record
(``get_method(name).sparse``, ``.fine_tune == "gradual_prune"``, ``.takes_heuristic``); the largest feasible
split is :func:`hmf_lab.factor.budget.max_split` (``pipeline.max_split`` wraps it, 0 where nothing fits);
pruning keeps the budget ``floor(m*n / c)`` by default, pass ``prune_count="lmf"`` to ``hl.compress``
(``count="lmf"`` to ``prune_keep``) where a table needs pruning exactly as big as LMF.

**Layer policy** (the one place that says which layers a method touches by default, and why):
``hl.compress(model, method, compression=c)`` without ``layers=`` replaces every plain ``nn.Linear`` and
``nn.LSTM`` whose kind is in the record's ``policy`` (``Method.touches(module)``); the experiments start
from :func:`hmf_lab.experiments.pipeline.compressed_layers` (tiny heads under ``MIN_LINEAR_DIM`` stay dense
for every method) and keep what the method touches, and record both per cell (``layers``, ``layer_policy``).

- ``"hmf"``, ``"lmf"``, ``"prune"``, ``"hmf_col"``: ``("linear", "lstm", "attention")``: every matrix of the
  model, LSTM gate blocks one by one (hmf_col: the gates of a matrix share its dense input columns),
  ``nn.MultiheadAttention`` by its q, k, v and out blocks, so methods compare at the same compression of the
  same matrices;
- ``"aa_lmf"`` (activation-aware LMF, LSTM gate blocks fitted on their captured inputs), ``"wanda"`` and
  ``"oats"`` (no LSTM form: ``("linear", "attention")``) are the post-training baselines of issue 20
  (:mod:`hmf_lab.factor.baselines`): they need calibration inputs ``X`` (``requires=("X",)``), so ``hl.report``
  and the grid's cells leave them out unless named with X;
- a record without an LSTM builder (``lstm=None``) touches ``("linear", "attention")``: ``hl.compress`` leaves the
  ``nn.LSTM`` dense and warns (its values count in ``count_params``, so the model's compression is lower:
  the grid records ``actual_compression``). Pass ``layers=[...]`` to choose yourself.

**Default row choice** (``heuristic=None``, the default of ``hl.compress`` and of the records' callables):
it must not depend on the order of a model's outputs (vocabularies and class lists come sorted by
anything, e.g. alphabetically), so it is never ``"top"`` (which stays available by name): ``"greedy"``
without calibration inputs, ``"activation"`` with ``X`` (:func:`default_heuristic`; column split:
``"col_norm"`` / ``"activation"``). Both are order-invariant up to float noise (tests/test_hmf_cols.py
shuffles a shipped decoder's rows). Measured on the shipped output layers (``scripts/default_heuristic.py``,
deterministic, held-out inputs): the char LM decoder (65x256) at 4x (split 9, rank 5) has weight error
0.792 "top", 0.719 "row_norm", 0.717 "greedy", 0.734 "activation", and output error 0.324 / 0.301 / 0.296 /
0.253; translation's ``combine`` (192x384) output error 0.728 / 0.711 / 0.708 / 0.234. Bits per character
of the whole char LM right after ``hl.compress(model, "hmf", compression=4)`` (quick evaluation, no
fine-tuning; dense 1.873): "top" 4.368, "row_norm" 4.461, "greedy" 4.160, "activation" (X: 8x1024 training
characters) 3.921, LMF 4.256. "greedy" costs more time than "row_norm" (translation: 2.3 s against 0.1 s
on one thread), which is why it is not the choice for sweeps and sliders.

**DENSE** is a pseudo-record for the uncompressed reference rows of tables and plots (``label_of``,
``color_of``, ``lookup``): it is *not* in :data:`METHODS` (``hl.compress(model, "dense")`` is refused;
``copy.deepcopy(model)`` is the dense model), but ``lookup("dense")`` returns it.

Register a method of your own with :func:`register_method` (the record's callables take the options
listed in ``options``; ``hl.compress`` passes only those):

>>> import torch, hmf_lab as hl
>>> from hmf_lab.nn.methods import Method, register_method, unregister_method, get_method
>>> lmf = get_method("lmf")
>>> rounded = Method(name="lmf_even", label="LMF (even rank)", color="#8c564b",
...                  factorize=lambda W, compression=None: hl.lmf(W, rank=2),
...                  linear=lambda lin, compression=None: hl.LMFLinear.from_linear(lin, rank=2),
...                  stored=lambda shape, compression, blocks=1: blocks * 2 * sum(shape))
>>> _ = register_method(rounded)
>>> small = hl.compress(torch.nn.Sequential(torch.nn.Linear(16, 16)), "lmf_even", compression=4)
>>> small[0].rank, "lmf_even" in hl.METHODS
(2, True)
>>> unregister_method("lmf_even")
>>> sorted(hl.METHODS)
['aa_lmf', 'hmf', 'hmf_col', 'lmf', 'oats', 'prune', 'wanda']
"""
from __future__ import annotations

import copy
import math
import warnings

import torch
from dataclasses import dataclass, field
from typing import Callable

from torch import nn
from torch.nn.utils import prune as tprune

from hmf_lab.nn.attention import attention_from_linear
from hmf_lab.factor.baselines import aa_lmf, oats, oats_split, wanda
from hmf_lab.nn.baseline_layers import SparseLowRankLinear, aa_lmf_linear, aa_lmf_lstm, wanda_linear
from hmf_lab.factor.allocate import MAX_SPREAD, ladder_compressions, point_error
from hmf_lab.factor.budget import (choose_col_split_rank, choose_split_rank, col_params, hmf_params, lmf_params,
                                   lmf_rank, max_split, prune_keep, value_budget)
from hmf_lab.factor.core import hmf, hmf_cols, lmf, prune
from hmf_lab.factor.heuristics import default_heuristic, resolve_fit
from hmf_lab.nn.layers import HMFColLinear, HMFLinear, LMFLinear, SparseLinear
from hmf_lab.nn.lstm import HMFLSTM, LMFLSTM, HMFColLSTM, PrunedLSTM, SparseLSTM

__all__ = ["Method", "METHODS", "DENSE", "register_method", "unregister_method", "get_method", "lookup",
           "label_of", "color_of", "method_names", "default_heuristic", "POLICY_KINDS"]

#: the option names ``hl.compress`` knows; a method's ``options`` is a subset
KNOWN_OPTIONS = ("split", "rank", "heuristic", "X", "loss", "sparse", "prune_count")
FINE_TUNE_KINDS = ("factors", "gradual_prune", "none")
#: the module kinds a layer policy names (``Method.policy``)
POLICY_KINDS = ("linear", "lstm", "attention")

#: the default row / column choice without and with calibration inputs X (see "Default row choice" above)
def _not_for_lstm(name):
    def lstm(lstm, compression=None, **kw):
        raise TypeError(f"method {name!r} has no LSTM form (its record's lstm is None); compress only the "
                        f"nn.Linear layers with layers=[...]")
    return lstm


@dataclass(frozen=True)
class Method:
    """One compression method: its math, its modules, its budget rule, its engines and the flags.

    ``factorize(W, compression=None, **opts)`` -> the result of ``hl.hmf``/``hl.lmf``/``hl.prune``;
    ``linear(linear, compression=None, **opts)`` / ``lstm(lstm, compression=None, **opts)`` -> an ``nn.Module``
    (``lstm=None``: no LSTM form); ``stored(shape, compression, blocks=1, **opts)`` -> the stored weight
    values of ``blocks`` blocks of ``shape`` at ``compression`` (never over ``blocks * floor(m*n / c)``);
    ``config(shape, compression, **opts)`` -> the size parameters chosen there (a dict).
    ``attention(mha, compression=None, **opts)`` -> the compressed ``nn.MultiheadAttention``; left out (None),
    it is built from ``linear``: :func:`hmf_lab.nn.attention.attention_from_linear` compresses each q, k, v
    block of ``in_proj_weight`` and ``out_proj`` with ``linear`` (a new method gets attention for free).
    ``options``: the keyword options its callables take (a subset of ``split, rank, heuristic, X, loss,
    sparse, prune_count``); ``fixed_by``: options that fix the size without ``compression`` (HMF: split and
    rank, LMF: rank). Flags: ``takes_heuristic`` (split heuristics and calibration ``X``/``loss`` apply),
    ``sparse`` (CSR inference exists: ``sparse=True``, ``hl.sparsify``), ``fine_tune`` (``"factors"``,
    ``"gradual_prune"`` or ``"none"``). ``engines``: the inference forms of its modules
    (``hl.engines.ENGINES`` names). ``for_timing(module, compression)``: a module of the method's structure
    for an ``nn.Linear``/``nn.LSTM`` at ``compression`` without fitting it (random factors: run time does not
    depend on the values; benchmarks use it); None: :meth:`timing_module` falls back to ``linear``/``lstm``.
    ``policy``: the module kinds (``"linear"``, ``"lstm"``) ``hl.compress`` touches by default (None: every
    kind the record builds), ``policy_why`` the reason in words (see "Layer policy" in the module docstring).
    ``requires``: options the method cannot run without (``("X",)``: calibration inputs, the activation-aware
    baselines ``aa_lmf``, ``wanda``, ``oats``); tables and sweeps without ``X`` leave such methods out.
    """

    name: str
    label: str
    factorize: Callable
    linear: Callable
    stored: Callable
    lstm: Callable | None = None
    config: Callable | None = None
    color: str = "#7f7f7f"
    engines: tuple = ("reconstructed",)
    options: tuple = ()
    fixed_by: tuple = ()
    takes_heuristic: bool = False
    sparse: bool = False
    fine_tune: str = "factors"
    doc: str = ""
    for_timing: Callable | None = None
    attention: Callable | None = None
    policy: tuple | None = None
    policy_why: str = ""
    requires: tuple = ()
    is_dense: bool = field(default=False, repr=False)
    #: the candidate points of one matrix for ``allocate="greedy"`` (see :meth:`points`); None: the default ladder
    ladder: Callable | None = None
    #: the axis of a method's dense split: ``"rows"`` (HMF) or ``"cols"`` (column HMF); picks the data-free
    #: default heuristic (:meth:`data_free_heuristic`)
    split_axis: str = "rows"

    def data_free_heuristic(self):
        """The split heuristic the method's builders use without calibration inputs (None for a method without
        one): comparisons that give every method the same inputs name it, so that ``X`` given for one purpose
        (e.g. the allocation's error) does not also switch one method to a data-aware fit.

        >>> [get_method(m).data_free_heuristic() for m in ("hmf", "hmf_col", "lmf")]
        ['greedy', 'col_norm', None]
        """
        return default_heuristic(None, None, axis=self.split_axis) if "heuristic" in self.options else None

    def __post_init__(self):
        if not isinstance(self.name, str) or not self.name.isidentifier() or self.name != self.name.lower():
            raise ValueError(f"Method.name must be a lower-case identifier such as 'hmf' or 'my_rule', got "
                             f"{self.name!r}")
        if not isinstance(self.label, str) or not self.label:
            raise ValueError(f"Method.label must be a non-empty str (shown in tables and plots), got {self.label!r}")
        for attr in ("factorize", "linear", "stored"):
            if not callable(getattr(self, attr)):
                raise TypeError(f"Method.{attr} must be callable, got {type(getattr(self, attr)).__name__} "
                                f"for method {self.name!r}")
        att = self.attention
        if att is None or getattr(att, "_from_linear", self.linear) is not self.linear:  # the default, on `linear`
            object.__setattr__(self, "attention", attention_from_linear(self.linear))
        for attr in ("lstm", "config", "for_timing", "attention", "ladder"):
            if getattr(self, attr) is not None and not callable(getattr(self, attr)):
                raise TypeError(f"Method.{attr} must be callable or None, got "
                                f"{type(getattr(self, attr)).__name__} for method {self.name!r}")
        bad = [o for o in tuple(self.options) + tuple(self.fixed_by) if o not in KNOWN_OPTIONS]
        if bad:
            raise ValueError(f"Method.options / fixed_by must name options of hl.compress {KNOWN_OPTIONS}, got "
                             f"{bad} for method {self.name!r}")
        if self.fine_tune not in FINE_TUNE_KINDS:
            raise ValueError(f"Method.fine_tune must be one of {FINE_TUNE_KINDS}, got {self.fine_tune!r}")
        if self.policy is not None:  # None: every module kind the record builds (see ``layer_kinds``)
            pol = (self.policy,) if isinstance(self.policy, str) else tuple(self.policy)
            if not pol or any(p not in POLICY_KINDS for p in pol):
                raise ValueError(f"Method.policy must name module kinds from {POLICY_KINDS}, got {self.policy!r} "
                                 f"for method {self.name!r}")
            if "lstm" in pol and self.lstm is None:
                raise ValueError(f"Method.policy of {self.name!r} names 'lstm' but the record has no lstm builder; "
                                 f"use policy=('linear',)")
            object.__setattr__(self, "policy", pol)
        object.__setattr__(self, "options", tuple(self.options))
        object.__setattr__(self, "fixed_by", tuple(self.fixed_by))
        req = (self.requires,) if isinstance(self.requires, str) else tuple(self.requires)
        if any(o not in self.options for o in req):
            raise ValueError(f"Method.requires must name options the method takes {self.options}, got "
                             f"{self.requires!r} for method {self.name!r}")
        object.__setattr__(self, "requires", req)
        object.__setattr__(self, "engines", tuple(self.engines))

    @property
    def has_lstm(self) -> bool:
        return self.lstm is not None

    def touches(self, module: nn.Module) -> bool:
        """Does the layer policy compress ``module`` by default (an ``nn.Linear`` / ``nn.LSTM``)?

        >>> import torch
        >>> from hmf_lab.nn.methods import get_method
        >>> get_method("hmf").touches(torch.nn.LSTM(4, 4)), get_method("hmf").touches(torch.nn.Embedding(4, 4))
        (True, False)
        """
        kind = ("lstm" if isinstance(module, nn.LSTM) else "attention" if isinstance(module, nn.MultiheadAttention)
                else "linear" if isinstance(module, nn.Linear) else None)
        return kind in self.layer_kinds

    @property
    def layer_kinds(self) -> tuple:
        """The module kinds touched by default: ``policy``, or every kind the record has a builder for."""
        if self.policy is not None:
            return self.policy
        return POLICY_KINDS if self.lstm is not None else ("linear", "attention")

    @property
    def layer_policy(self) -> str:
        """The policy in words, for tables: e.g. ``"linear+lstm+attention"``."""
        return "+".join(self.layer_kinds)

    @property
    def layer_policy_why(self) -> str:
        """Why the policy is what it is (``policy_why``, or the default reason)."""
        return self.policy_why or ("every matrix of the model (LSTM gate blocks one by one)"
                                   if "lstm" in self.layer_kinds else "nn.Linear only (no LSTM form)")

    def points(self, W, compression, *, X=None, blocks: int = 1, **opts) -> list:
        """Candidate points of one matrix for the whole-model allocation (``hl.compress(..., allocate="greedy")``).

        ``W``: the matrix, ``blocks`` row blocks of one shape stacked (an LSTM weight: 4 gate blocks);
        ``X``: its calibration inputs (N, n) or None. Returns ``[(stored_values, error, options), ...]``:
        ``error`` is :func:`hmf_lab.factor.allocate.point_error` (summed over the blocks) and ``options`` the
        keyword arguments (``compression`` and, e.g., ``split``) with which the record's builders make exactly
        that point. The record's ``ladder`` when it has one, else the default: ``factorize`` per block at the
        compressions of :func:`~hmf_lab.factor.allocate.ladder_compressions` around ``compression``.

        >>> import torch
        >>> from hmf_lab.nn.methods import get_method
        >>> pts = get_method("lmf").points(torch.randn(16, 8), 4)
        >>> pts[0][:1], pts[0][2]["rank"], all(a[1] >= b[1] for a, b in zip(pts, pts[1:]))
        ((24,), 1, True)
        """
        ladder = self.ladder if self.ladder is not None else _default_ladder(self)
        return ladder(W, compression, X=X, blocks=blocks, **opts)

    def timing_module(self, module: nn.Module, compression) -> nn.Module:
        """The method's module for ``module`` (an ``nn.Linear``/``nn.LSTM``) at ``compression``, eval mode,
        built for timing: ``for_timing`` when the record has it (no SVD), else the fitted ``linear``/``lstm``.

        >>> import torch
        >>> from hmf_lab.nn.methods import get_method
        >>> get_method("hmf").timing_module(torch.nn.Linear(64, 64), 4).n_params <= 64 * 64 // 4
        True
        """
        if self.for_timing is not None:
            return self.for_timing(module, compression).eval()
        build = self.lstm if isinstance(module, nn.LSTM) else self.linear
        if build is None:
            raise TypeError(f"method {self.name!r} has no LSTM form to time")
        return build(module, compression).eval()


# ----------------------------------------------------------------------------- HMF


def _shape_of(W):
    return tuple(W.shape)


def _hmf_factorize(W, compression=None, *, split=None, rank=None, heuristic=None, X=None):
    k, r = choose_split_rank(_shape_of(W), compression, split, rank)
    return hmf(W, split=k, rank=r, heuristic=default_heuristic(heuristic, X), X=X)


def _hmf_linear(linear, compression=None, *, split=None, rank=None, heuristic=None, X=None, loss=None):
    k, r = choose_split_rank((linear.out_features, linear.in_features), compression, split, rank)
    return HMFLinear.from_linear(linear, split=k, rank=r, heuristic=default_heuristic(heuristic, X), X=X)


def _hmf_lstm(lstm, compression=None, *, split=None, rank=None, heuristic=None, X=None, loss=None):
    return HMFLSTM.from_lstm(lstm, compression, split=split, rank=rank, heuristic=default_heuristic(heuristic, X),
                             X=X)


def _hmf_config(shape, compression=None, *, split=None, rank=None, **_):
    k, r = choose_split_rank(tuple(shape), compression, split, rank)
    return {"split": k, "rank": r}


def _hmf_stored(shape, compression=None, blocks: int = 1, *, split=None, rank=None, **_):
    k, r = choose_split_rank(tuple(shape), compression, split, rank)
    return int(blocks) * hmf_params(*tuple(shape), k, r)


def _square_lstm(lstm, what: str):
    if lstm.input_size != lstm.hidden_size or lstm.num_layers != 1 or lstm.bidirectional:
        raise ValueError(f"{what} for timing builds one-layer square LSTMs (input_size == hidden_size), got "
                         f"LSTM({lstm.input_size}, {lstm.hidden_size}, num_layers={lstm.num_layers}); use "
                         f"the method's lstm() (fitted) instead")
    return lstm.hidden_size


def _hmf_for_timing(module, compression):
    if isinstance(module, nn.LSTM):
        H = _square_lstm(module, "HMF")
        k, r = choose_split_rank((H, H), compression)
        return HMFLSTM(H, H, split=k, rank=r, bias=module.bias)
    m, n = module.out_features, module.in_features
    k, r = choose_split_rank((m, n), compression)
    return HMFLinear(n, m, k, r, bias=module.bias is not None)


# ----------------------------------------------------------------------------- HMF, column split


def _col_factorize(W, compression=None, *, split=None, rank=None, heuristic=None, X=None):
    k, r = choose_col_split_rank(_shape_of(W), compression, split, rank)
    return hmf_cols(W, split=k, rank=r, heuristic=default_heuristic(heuristic, X, axis="cols"), X=X)


def _col_linear(linear, compression=None, *, split=None, rank=None, heuristic=None, X=None):
    k, r = choose_col_split_rank((linear.out_features, linear.in_features), compression, split, rank)
    return HMFColLinear.from_linear(linear, split=k, rank=r, heuristic=default_heuristic(heuristic, X, axis="cols"),
                                    X=X)


def _col_lstm(lstm, compression=None, *, split=None, rank=None, heuristic=None, X=None):
    return HMFColLSTM.from_lstm(lstm, compression, split=split, rank=rank, heuristic=heuristic, X=X)


def _col_config(shape, compression=None, *, split=None, rank=None, **_):
    k, r = choose_col_split_rank(tuple(shape), compression, split, rank)
    return {"split": k, "rank": r}


def _col_stored(shape, compression=None, blocks: int = 1, *, split=None, rank=None, **_):
    k, r = choose_col_split_rank(tuple(shape), compression, split, rank)
    return int(blocks) * col_params(*tuple(shape), k, r)


def _col_for_timing(module, compression):
    if isinstance(module, nn.LSTM):
        H = _square_lstm(module, "HMF (columns)")
        k, r = choose_col_split_rank((H, H), compression)
        return HMFColLSTM(H, H, split=k, rank=r, bias=module.bias)
    m, n = module.out_features, module.in_features
    k, r = choose_col_split_rank((m, n), compression)
    return HMFColLinear(n, m, k, r, bias=module.bias is not None)


# ----------------------------------------------------------------------------- LMF


def _lmf_factorize(W, compression=None, *, rank=None):
    return lmf(W, rank=lmf_rank(_shape_of(W), compression, rank))


def _lmf_linear(linear, compression=None, *, rank=None):
    return LMFLinear.from_linear(linear, rank=lmf_rank((linear.out_features, linear.in_features), compression, rank))


def _lmf_lstm(lstm, compression=None, *, rank=None):
    return LMFLSTM.from_lstm(lstm, compression, rank=rank)


def _lmf_config(shape, compression=None, *, rank=None, **_):
    return {"rank": lmf_rank(tuple(shape), compression, rank)}


def _lmf_stored(shape, compression=None, blocks: int = 1, *, rank=None, **_):
    return int(blocks) * lmf_params(*tuple(shape), lmf_rank(tuple(shape), compression, rank))


def _lmf_for_timing(module, compression):
    if isinstance(module, nn.LSTM):
        H = _square_lstm(module, "LMF")
        return LMFLSTM(H, H, rank=lmf_rank((H, H), compression), bias=module.bias)
    m, n = module.out_features, module.in_features
    return LMFLinear(n, m, lmf_rank((m, n), compression), bias=module.bias is not None)


# ----------------------------------------------------------------------------- pruning


def _need_compression(compression, name: str = "prune"):
    if compression is None:
        raise TypeError(f"method {name!r} needs compression, e.g. compression=4")


def _prune_factorize(W, compression=None, *, prune_count="budget"):
    _need_compression(compression)
    return prune(W, nnz=prune_keep(_shape_of(W), compression, count=prune_count))


def _prune_linear(linear, compression=None, *, sparse=False, prune_count="budget"):
    _need_compression(compression)
    if sparse:
        return SparseLinear.from_linear(linear, compression, count=prune_count)
    p = _prune_factorize(linear.weight.detach(), compression, prune_count=prune_count)
    new = copy.deepcopy(linear)
    tprune.custom_from_mask(new, "weight", p.mask)
    return new


def _prune_lstm(lstm, compression=None, *, sparse=False, prune_count="budget"):
    _need_compression(compression)
    return (SparseLSTM if sparse else PrunedLSTM).from_lstm(lstm, compression, count=prune_count)


def _prune_config(shape, compression=None, *, prune_count="budget", **_):
    _need_compression(compression)
    return {"nnz": prune_keep(tuple(shape), compression, count=prune_count)}


def _prune_stored(shape, compression=None, blocks: int = 1, *, prune_count="budget", **_):
    _need_compression(compression)
    return prune_keep(tuple(shape), compression, blocks=blocks, count=prune_count)


def _prune_for_timing(module, compression):  # magnitude pruning is cheap: the module's own weights, CSR
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch's "sparse CSR support is in beta"
        return _prune_lstm(module, compression, sparse=True) if isinstance(module, nn.LSTM) else \
            _prune_linear(module, compression, sparse=True)


# ----------------------------------------------------------------------------- ladders (allocate="greedy")


def _block_shape(W, blocks):
    m, n = _shape_of(W)
    if blocks < 1 or m % blocks:
        raise ValueError(f"W of shape {(m, n)} does not split into {blocks} row blocks")
    return m // blocks, n


def _most(shape, compression):
    """The most compressed point of a ladder: LMF's rank 1 (m + n values per block), or ``MAX_SPREAD`` times the
    target compression if that comes first (:data:`hmf_lab.factor.allocate.MAX_SPREAD`)."""
    m, n = shape
    return min(m * n / (m + n), MAX_SPREAD * float(compression))


def _default_ladder(method):
    def ladder(W, compression, *, X=None, blocks=1, **opts):
        shape = _block_shape(W, blocks)
        opts = {k: v for k, v in opts.items() if k in method.options and k not in ("X", "loss", "sparse")}
        if "X" in method.options and X is not None:
            opts["X"] = X
        out = []
        for c in ladder_compressions(compression, _most(shape, compression)):
            try:
                st = method.stored(shape, c, blocks=blocks, **{k: v for k, v in opts.items() if k != "X"})
                W_hat = torch.cat([method.factorize(Wg, c, **opts).to_dense() for Wg in W.chunk(blocks)])
            except ValueError:
                continue
            out.append((int(st), point_error(W, W_hat, X, blocks), {"compression": c}))
        return out
    return ladder


def _lmf_ladder(W, compression, *, X=None, blocks=1, whitened=False, **_):
    """Every rank from 1 to the one at compression/16, errors read off one SVD per block (``whitened``: the
    output-error optimum of ``hmf``'s whitened fit, off the eigenvalues of ``W_g X^T X W_g^T``)."""
    (m, n) = shape = _block_shape(W, blocks)
    lo = max(1.0, compression / 16)
    r_hi = max(1, min(m, n, int(m * n / lo) // (m + n)))
    tails = torch.zeros(r_hi + 1, dtype=torch.float64)
    Xd = None if X is None else torch.as_tensor(X).detach().double().reshape(-1, n)
    for Wg in W.detach().double().chunk(blocks):
        if whitened:
            B = Wg @ Xd.T  # (m, N): the block's outputs; the fit keeps their top-r left singular directions
            e = torch.linalg.eigvalsh(B @ B.T).flip(0).clamp_min(0)
        else:
            _, S, Vh = torch.linalg.svd(Wg, full_matrices=False)
            e = S ** 2 if Xd is None else S ** 2 * ((Xd @ Vh.T) ** 2).sum(0)
        tail = torch.flip(torch.cumsum(torch.flip(e, [0]), 0), [0])  # tail[r] = sum_{i >= r} e_i
        tail = torch.cat([tail, tail.new_zeros(1)])
        tails += tail[:r_hi + 1] / max(float(e.sum()), 1e-300)
    r_lo = max(1, min(r_hi, math.ceil(m * n / _most(shape, compression) / (m + n) - 1e-9)))
    return [(blocks * lmf_params(m, n, r), float(tails[r]), {"compression": m * n / lmf_params(m, n, r), "rank": r})
            for r in range(r_lo, r_hi + 1)]


def _hmf_ladder(W, compression, *, X=None, blocks=1, heuristic=None, **_):
    """At each compression of a coarse grid (half octaves, compression/8 .. 8x, to rank 1), several splits: 0,
    the balanced default, 1/4 and 1/2 of the largest, and split 0 at every rank; each point fitted per block by ``hmf``."""
    (m, n) = shape = _block_shape(W, blocks)
    out, seen = [], set()
    for c in ladder_compressions(compression, _most(shape, compression), span=8, steps_per_octave=2):
        try:
            kmax = max_split(shape, c)
            default = choose_split_rank(shape, c)[0] if value_budget(shape, c) < m * n else m
        except ValueError:
            continue
        for k in sorted({0, default, kmax // 4, kmax // 2}):
            if k >= m:
                continue
            k, r = choose_split_rank(shape, c, split=k)
            if (k, r) in seen:
                continue
            seen.add((k, r))
            W_hat = torch.cat([hmf(Wg, k, r, heuristic=default_heuristic(heuristic, X), X=X).to_dense()
                               for Wg in W.chunk(blocks)])
            out.append((blocks * hmf_params(m, n, k, r), point_error(W, W_hat, X, blocks),
                        {"compression": m * n / hmf_params(m, n, k, r), "split": k, "rank": r}))
    # split 0 at every rank (read off one decomposition per block, as hmf fits it): fine steps for the budget
    white = X is not None and resolve_fit(None, default_heuristic(heuristic, X), X) == "whitened"
    for st, err, opt in _lmf_ladder(W, compression, X=X, blocks=blocks, whitened=white):
        if (0, opt["rank"]) not in seen:
            out.append((st, err, {**opt, "split": 0}))
    return out


def _prune_ladder(W, compression, *, X=None, blocks=1, prune_count="budget", **_):
    """Keep counts at quarter octaves (compression/16 .. 16x, to LMF's rank-1 size), the whole stacked matrix
    pruned at once as the LSTM builders do."""
    shape = _block_shape(W, blocks)
    out = []
    for c in ladder_compressions(compression, _most(shape, compression)):
        keep = prune_keep(shape, c, blocks=blocks, count=prune_count)
        W_hat = prune(W, nnz=keep).to_dense() if keep < W.numel() else W
        out.append((keep, point_error(W, W_hat, X, blocks), {"compression": c}))
    return out


# ----------------------------------------------------------------------------- dense (pseudo-record)


def _dense_factorize(W, compression=None):
    m = _shape_of(W)[0]
    return hmf(W, split=m, rank=0)


def _dense_stored(shape, compression=None, blocks: int = 1, **_):
    m, n = tuple(shape)
    return int(blocks) * m * n


def _copy(module, compression=None, **_):
    return copy.deepcopy(module)


#: the uncompressed reference (table rows ``method="dense"``); not registered, see the module docstring
DENSE = Method(name="dense", label="dense", color="#000000", factorize=_dense_factorize, linear=_copy, lstm=_copy,
               stored=_dense_stored, config=lambda shape, compression=None, **_: {}, engines=("dense",),
               for_timing=_copy, attention=_copy,
               fine_tune="none", doc="the uncompressed model", is_dense=True)

_PALETTE = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442")  # Okabe-Ito

HMF = Method(name="hmf", label="HMF", color=_PALETTE[0], factorize=_hmf_factorize, linear=_hmf_linear,
             lstm=_hmf_lstm, stored=_hmf_stored, config=_hmf_config, engines=("factorized", "reconstructed"),
             for_timing=_hmf_for_timing,
             options=("split", "rank", "heuristic", "X", "loss"), fixed_by=("split", "rank"),
             takes_heuristic=True, fine_tune="factors", ladder=_hmf_ladder,
             doc="hybrid: `split` rows dense, the rest factorized at `rank`")
LMF = Method(name="lmf", label="LMF", color=_PALETTE[1], factorize=_lmf_factorize, linear=_lmf_linear,
             lstm=_lmf_lstm, stored=_lmf_stored, config=_lmf_config, engines=("factorized", "reconstructed"),
             for_timing=_lmf_for_timing,
             options=("rank",), fixed_by=("rank",), fine_tune="factors", ladder=_lmf_ladder,
             doc="low-rank factorization (truncated SVD)")
PRUNE = Method(name="prune", label="pruning (CSR)", color=_PALETTE[2], factorize=_prune_factorize,
               linear=_prune_linear, lstm=_prune_lstm, stored=_prune_stored, config=_prune_config,
               engines=("csr", "reconstructed"), options=("sparse", "prune_count"), sparse=True,
               for_timing=_prune_for_timing,
               fine_tune="gradual_prune", ladder=_prune_ladder, doc="magnitude pruning, CSR inference")

HMF_COL = Method(name="hmf_col", label="HMF (columns)", color=_PALETTE[3], factorize=_col_factorize,
                 linear=_col_linear, lstm=_col_lstm, stored=_col_stored, config=_col_config,
                 engines=("factorized", "reconstructed"), for_timing=_col_for_timing,
                 options=("split", "rank", "heuristic", "X"), fixed_by=("split", "rank"),
                 # False: the row-heuristic machinery of the experiments (split sweeps, report's heuristic
                 # columns, hmf[greedy] cells) does not apply; a column heuristic still goes through heuristic=
                 takes_heuristic=False, fine_tune="factors", split_axis="cols",
                 doc="hybrid by columns: `split` input columns dense, the rest factorized at `rank`")

# ----------------------------------------------------------------------------- post-training baselines (issue 20)
# activation-aware LMF, Wanda, OATS: math in hmf_lab.factor.baselines, modules in hmf_lab.nn.baseline_layers.
# Each needs calibration inputs X (``requires=("X",)``). aa_lmf compresses LSTMs per gate block (LMFLSTM with whitened
# fits); wanda and oats have no LSTM form (lstm=None: LSTMs stay dense, with a warning).


def _aa_factorize(W, compression=None, *, rank=None, X=None):
    return aa_lmf(W, X, rank, compression=compression)


def _wanda_factorize(W, compression=None, *, X=None, sparse=False):
    _need_compression(compression, "wanda")
    return wanda(W, X, compression)


def _wanda_linear(linear, compression=None, *, X=None, sparse=False):
    _need_compression(compression, "wanda")
    return wanda_linear(linear, compression, X=X, sparse=sparse)


def _oats_factorize(W, compression=None, *, X=None):
    _need_compression(compression, "oats")
    return oats(W, X, compression)


def _oats_linear(linear, compression=None, *, X=None):
    _need_compression(compression, "oats")
    return SparseLowRankLinear.from_linear(linear, compression, X=X)


def _oats_config(shape, compression=None, **_):
    _need_compression(compression, "oats")
    r, s = oats_split(tuple(shape), compression)
    return {"rank": r, "nnz": s}


def _oats_stored(shape, compression=None, blocks: int = 1, **_):
    _need_compression(compression, "oats")
    r, s = oats_split(tuple(shape), compression)
    m, n = tuple(shape)
    return int(blocks) * (r * (m + n) + s)


def _oats_for_timing(module, compression):
    if isinstance(module, nn.LSTM):
        raise TypeError("method 'oats' has no LSTM form to time")
    import torch
    m, n = module.out_features, module.in_features
    X = torch.randn(max(4 * n, 64), n, generator=torch.Generator().manual_seed(0), dtype=module.weight.dtype)
    return SparseLowRankLinear.from_linear(module, compression, X=X, iters=1)


_BASELINE_POLICY = ("linear", "attention")
_BASELINE_WHY = "nn.Linear and attention blocks (no LSTM form yet: nn.LSTM left dense)"

AA_LMF = Method(name="aa_lmf", label="AA-LMF", color=_PALETTE[4], factorize=_aa_factorize, linear=aa_lmf_linear,
                lstm=aa_lmf_lstm, stored=_lmf_stored, config=_lmf_config, engines=("factorized", "reconstructed"),
                for_timing=_lmf_for_timing, options=("rank", "X"), fixed_by=("rank",), requires=("X",),
                fine_tune="factors",
                doc="activation-aware LMF (ASVD / SVD-LLM): truncated SVD of W R, R R^T = X^T X / N + eps I")
WANDA = Method(name="wanda", label="Wanda", color=_PALETTE[5], factorize=_wanda_factorize, linear=_wanda_linear,
               stored=_prune_stored, config=_prune_config, engines=("csr", "reconstructed"),
               for_timing=_prune_for_timing, options=("X", "sparse"), requires=("X",), sparse=True,
               fine_tune="factors", policy=_BASELINE_POLICY, policy_why=_BASELINE_WHY,
               doc="Wanda pruning: |W_ij| ||X_j||_2, the same count per output row; CSR inference")
OATS = Method(name="oats", label="OATS (sparse + low rank)", color=_PALETTE[6], factorize=_oats_factorize,
              linear=_oats_linear, stored=_oats_stored, config=_oats_config, engines=("factorized", "reconstructed"),
              for_timing=_oats_for_timing, options=("X",), requires=("X",), fine_tune="factors",
              policy=_BASELINE_POLICY, policy_why=_BASELINE_WHY,
              doc="OATS: columns scaled by sqrt(diag(X^T X / N)), alternating truncated SVD and row-wise hard "
                  "thresholding; rank ratio 0.25 of the value budget")

#: name -> Method; ``hl.METHODS``. Add with :func:`register_method`, never by assignment.
METHODS: dict[str, Method] = {}


def register_method(method: Method, *, replace: bool = False) -> Method:
    """Add ``method`` to :data:`METHODS` (``replace=True`` to swap a record of the same name); returns it.

    >>> from hmf_lab.nn.methods import register_method, get_method
    >>> try:
    ...     register_method(get_method("hmf"))
    ... except ValueError as e:
    ...     print(str(e)[:40])
    method 'hmf' is already registered; pass
    """
    if not isinstance(method, Method):
        raise TypeError(f"method must be a hmf_lab Method record (hmf_lab.nn.methods.Method), got "
                        f"{type(method).__name__}; build one with Method(name=..., label=..., factorize=..., "
                        f"linear=..., stored=...)")
    if method.is_dense or method.name == DENSE.name:
        raise ValueError(f"method name {method.name!r} is reserved for the uncompressed reference (DENSE); "
                         f"pick another name")
    if method.name in METHODS and not replace:
        raise ValueError(f"method {method.name!r} is already registered; pass replace=True to swap it, or "
                         f"pick another name (registered: {sorted(METHODS)})")
    METHODS[method.name] = method
    return method


def unregister_method(name: str) -> None:
    """Remove a registered method (e.g. a test's); the built-ins ``hmf``, ``lmf``, ``prune`` stay."""
    m = get_method(name)
    if m.name in _BUILTIN:
        raise ValueError(f"method {m.name!r} is built in and cannot be removed; register your own under "
                         f"another name (or replace=True)")
    del METHODS[m.name]


def method_names() -> list[str]:
    """Registered method names, in registration order (built-ins first)."""
    return list(METHODS)


def get_method(method) -> Method:
    """The registered :class:`Method` for a name (or the record itself, passed through).

    >>> from hmf_lab.nn.methods import get_method
    >>> get_method("lmf").label, get_method(get_method("prune")).sparse
    ('LMF', True)
    """
    if isinstance(method, Method):
        return method
    if not isinstance(method, str):
        raise TypeError(f"method must be a method name (a str, one of {sorted(METHODS)}) or a Method record, "
                        f"got {type(method).__name__}")
    try:
        return METHODS[method]
    except KeyError:
        hint = " ('dense' is the uncompressed reference, not a method: use copy.deepcopy(model))" \
            if method == DENSE.name else ""
        raise ValueError(f"method must be one of {sorted(METHODS)}, got {method!r}{hint}; register new ones "
                         f"with hl.register_method") from None


def lookup(name) -> Method | None:
    """The record for a table's ``method`` value: a registered method, :data:`DENSE` for ``"dense"``, else None."""
    if isinstance(name, Method):
        return name
    if name == DENSE.name:
        return DENSE
    return METHODS.get(name) if isinstance(name, str) else None


def label_of(name) -> str:
    """Display label for a table's ``method`` value (``"hmf"`` -> ``"HMF"``); unknown values as they are."""
    rec = lookup(name)
    return rec.label if rec is not None else str(name)


def color_of(name, default: str | None = None):
    """Colour of a method in every figure; ``default`` for values without a record."""
    rec = lookup(name)
    return rec.color if rec is not None else default


for _m in (HMF, LMF, PRUNE, HMF_COL, AA_LMF, WANDA, OATS):
    register_method(_m)
_BUILTIN = frozenset(METHODS)
