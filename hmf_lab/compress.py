"""``hl.compress``: a copy of a model with every ``nn.Linear`` and ``nn.LSTM`` compressed (HMF, LMF, pruning).

The copy keeps every forward signature; the original model is not touched. What each method puts in:

============  ==========================================  =============================================
method        ``nn.Linear`` becomes                        ``nn.LSTM`` becomes
============  ==========================================  =============================================
``"hmf"``     :class:`~hmf_lab.layers.HMFLinear`           :class:`~hmf_lab.lstm.HMFLSTM` (HMF per gate)
``"lmf"``     :class:`~hmf_lab.layers.LMFLinear`           :class:`~hmf_lab.lstm.LMFLSTM` (LMF per gate)
``"prune"``   ``nn.Linear`` + ``torch.nn.utils.prune``    :class:`~hmf_lab.lstm.PrunedLSTM` (masked)
              mask (trainable, masked dense)
``"prune"``   :class:`~hmf_lab.layers.SparseLinear` (CSR)  :class:`~hmf_lab.lstm.SparseLSTM` (CSR)
+ sparse=True
============  ==========================================  =============================================

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

Which (split, rank)? Each matrix (for an LSTM, each gate block) is compressed ``compression``-fold:
HMF takes :func:`~hmf_lab.lstm.choose_split_rank` (the balanced point ``split ~= rank`` of
``hl.budget``'s iso-compression line; compression 1 keeps every row dense, exactly), LMF the largest
rank that fits (:func:`~hmf_lab.lstm.lmf_rank`), pruning keeps ``floor(m*n / compression)`` values.
``split``/``rank`` override: an int for every matrix, or a dict keyed by module name (and, for an LSTM,
``'ih'``/``'hh'``/``'ih_l0'``...). Parameters are counted the same way for every method: stored weight
values, biases and sparse indices excluded (:func:`count_params`).

Example
-------
>>> import torch, hmf_lab as hl
>>> model = torch.nn.Sequential(torch.nn.Linear(64, 64), torch.nn.ReLU(), torch.nn.Linear(64, 10))
>>> small = hl.compress(model, "hmf", compression=4)
>>> [type(m).__name__ for m in small], round(hl.count_params(model) / hl.count_params(small), 1)
(['HMFLinear', 'ReLU', 'HMFLinear'], 4.4)
>>> type(model[0]).__name__   # the original is untouched
'Linear'
"""
from __future__ import annotations

import copy

import torch
from torch import nn
from torch.nn.utils import prune as tprune

from ._validation import check_compression
from .layers import HMFLinear, LMFLinear, SparseLinear
from .lstm import CompressedLSTM, HMFLSTM, LMFLSTM, PrunedLSTM, SparseLSTM, choose_split_rank, lmf_rank

__all__ = ["compress", "sparsify", "count_params", "METHODS"]

METHODS = ("hmf", "lmf", "prune")


def _targets(model: nn.Module, layers) -> list[str]:
    """Qualified names of the modules to replace: every plain nn.Linear / nn.LSTM, or the ``layers`` given."""
    candidates = [name for name, mod in model.named_modules() if type(mod) in (nn.Linear, nn.LSTM)]
    if layers is None:
        return candidates
    if isinstance(layers, str):
        layers = [layers]
    layers = list(layers)
    bad = [name for name in layers if name not in candidates]
    if bad:
        raise ValueError(f"layers {bad} are not nn.Linear / nn.LSTM modules of the model; "
                         f"valid names are {candidates}")
    return layers


def _pick(value, name: str):
    """An override for module ``name``: an int (all modules) or a dict keyed by module name."""
    if isinstance(value, dict):
        if name in value:
            return value[name]
        sub = {k[len(name) + 1:]: v for k, v in value.items() if name and k.startswith(name + ".")}
        return sub or None
    return value


def _compress_linear(lin: nn.Linear, method: str, c, split, rank, heuristic, sparse: bool) -> nn.Module:
    m, n = lin.out_features, lin.in_features
    if method == "hmf":
        k, r = choose_split_rank((m, n), c, split, rank)
        return HMFLinear.from_linear(lin, split=k, rank=r, heuristic=heuristic)
    if method == "lmf":
        return LMFLinear.from_linear(lin, rank=lmf_rank((m, n), c, rank))
    from .core import prune

    if c is None:
        raise TypeError("method 'prune' needs compression, e.g. compression=4")
    if sparse:
        return SparseLinear.from_linear(lin, c)
    new = copy.deepcopy(lin)
    tprune.custom_from_mask(new, "weight", prune(lin.weight.detach(), c).mask)
    return new


def _compress_lstm(lstm: nn.LSTM, method: str, c, split, rank, heuristic, sparse: bool) -> nn.Module:
    if method == "hmf":
        return HMFLSTM.from_lstm(lstm, c, split=split, rank=rank, heuristic=heuristic)
    if method == "lmf":
        return LMFLSTM.from_lstm(lstm, c, rank=rank)
    if c is None:
        raise TypeError("method 'prune' needs compression, e.g. compression=4")
    return SparseLSTM.from_lstm(lstm, c) if sparse else PrunedLSTM.from_lstm(lstm, c)


def compress(model: nn.Module, method: str, compression=None, *, heuristic="top", split=None, rank=None,
             layers=None, sparse: bool = False) -> nn.Module:
    """A deep copy of ``model`` with its ``nn.Linear`` and ``nn.LSTM`` modules compressed by ``method``.

    ``method``: ``"hmf"``, ``"lmf"`` or ``"prune"``. ``compression``: dense size / compressed size for
    every replaced matrix (required unless ``split`` and ``rank`` fix HMF, or ``rank`` fixes LMF).
    ``heuristic``: HMF's split heuristic (a name in ``hl.HEURISTICS`` or a callable), applied per gate
    block in an LSTM. ``layers``: names (``model.named_modules()``) to replace; default all of them.
    ``sparse``: for ``"prune"``, CSR inference modules instead of trainable masked ones.

    >>> import torch, hmf_lab as hl
    >>> net = torch.nn.ModuleDict({"rnn": torch.nn.LSTM(8, 16, batch_first=True), "out": torch.nn.Linear(16, 4)})
    >>> small = hl.compress(net, "prune", compression=4, layers=["rnn"])
    >>> type(small["rnn"]).__name__, type(small["out"]).__name__
    ('PrunedLSTM', 'Linear')
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    c = None if compression is None else check_compression(compression)
    if c is None and not ((method == "hmf" and split is not None and rank is not None)
                          or (method == "lmf" and rank is not None)):
        raise TypeError(f"compression is required for method {method!r} unless "
                        + ("split and rank are both given" if method == "hmf" else
                           "rank is given" if method == "lmf" else "... (pruning always needs it)")
                        + ", e.g. compression=4")
    if split is not None and method != "hmf":
        raise ValueError(f"split (dense rows) only applies to method 'hmf', got split={split!r} with {method!r}")
    if sparse and method != "prune":
        raise ValueError(f"sparse=True only applies to method 'prune', got method {method!r}")
    names = _targets(model, layers)
    if names == [""]:
        return _replace(model, "", method, c, split, rank, heuristic, sparse)
    with torch.inference_mode(False):  # a copy made inside inference_mode would hold inference tensors
        new = copy.deepcopy(model)
    for name in names:
        parent_name, _, child = name.rpartition(".")
        parent = new.get_submodule(parent_name) if parent_name else new
        old = getattr(parent, child)
        setattr(parent, child, _replace(old, name, method, c, split, rank, heuristic, sparse))
    return new


def _replace(mod, name, method, c, split, rank, heuristic, sparse):
    s, r = _pick(split, name), _pick(rank, name)
    # inference_mode(False): compressing inside `torch.inference_mode()` would make the new parameters
    # inference tensors (not trainable, no version counter)
    with torch.inference_mode(False), torch.no_grad():
        if isinstance(mod, nn.LSTM):
            out = _compress_lstm(mod, method, c, s, r, heuristic, sparse)
        else:
            out = _compress_linear(mod, method, c, s, r, heuristic, sparse)
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

    with torch.inference_mode(False):
        top = convert(model)
        if top is not None:
            return top
        _refresh_masked_weights(model)
        new = copy.deepcopy(model)
    for name, mod in list(new.named_modules()):
        if not name:
            continue
        with torch.inference_mode(False):
            rep = convert(mod)
        if rep is not None:
            parent_name, _, child = name.rpartition(".")
            parent = new.get_submodule(parent_name) if parent_name else new
            setattr(parent, child, rep)
    return new


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
    counted = (CompressedLSTM, PrunedLSTM, HMFLinear, LMFLinear, SparseLinear)

    def walk(mod: nn.Module) -> int:
        if isinstance(mod, counted):
            return mod.n_params
        if isinstance(mod, nn.LSTM):
            return sum(p.numel() for n, p in mod.named_parameters(recurse=False) if n.startswith("weight"))
        if isinstance(mod, nn.Linear):
            mask = getattr(mod, "weight_mask", None)
            return int(mask.sum()) if mask is not None else mod.weight.numel()
        return sum(walk(child) for child in mod.children())

    return walk(model)
