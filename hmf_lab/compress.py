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

Which (split, rank)? Each matrix (for an LSTM, each gate block) is compressed ``compression``-fold at an
**equal budget** (:func:`~hmf_lab.core.equal_budget`): LMF takes the largest rank that fits
``floor(m*n / compression)`` (:func:`~hmf_lab.core.lmf_rank`; a shape where rank 1 does not fit raises),
pruning keeps exactly LMF's number of values (:func:`~hmf_lab.core.prune_keep`; its CSR indices are
counted apart), and HMF takes :func:`~hmf_lab.core.choose_split_rank`: the balanced point ``split ~=
rank`` among the (split, rank) within 1% of LMF's size (compression 1 keeps every row dense, exactly).
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

import copy
import warnings

import torch
from torch import nn
from torch.nn.utils import prune as tprune

from ._validation import check_compression
from .layers import HMFLinear, LMFLinear, SparseLinear
from .core import choose_split_rank, lmf_rank, prune, prune_keep
from .lstm import CompressedLSTM, HMFLSTM, LMFLSTM, PrunedLSTM, SparseLSTM

__all__ = ["compress", "sparsify", "count_params", "replace_modules", "METHODS"]

METHODS = ("hmf", "lmf", "prune")


def _is_compressed(mod: nn.Module) -> bool:
    return isinstance(mod, (CompressedLSTM, PrunedLSTM, HMFLinear, LMFLinear, SparseLinear)) or (
        isinstance(mod, nn.Linear) and tprune.is_pruned(mod))


def _targets(model: nn.Module, layers) -> list[str]:
    """Qualified names of the modules to replace: every plain nn.Linear / nn.LSTM, or the ``layers`` given.

    Modules compress already made (HMF/LMF/pruned) are not compressed again: with none left to compress
    this raises; with some left, they are compressed and a warning names the ones kept as they are.
    """
    done = [name for name, mod in model.named_modules() if _is_compressed(mod)]
    candidates = [name for name, mod in model.named_modules()
                  if type(mod) in (nn.Linear, nn.LSTM) and not _is_compressed(mod)
                  and not any(name == d or name.startswith(d + ".") for d in done if d)]
    if layers is None:
        if not candidates:
            if done:
                raise ValueError(
                    f"model is already compressed: {_names(done)} hold HMF/LMF/pruned weights and no plain "
                    f"nn.Linear / nn.LSTM is left to compress; compress the original (dense) model instead")
            raise ValueError(f"model has no nn.Linear or nn.LSTM to compress (it is a {type(model).__name__})")
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
        raise ValueError(f"layers {bad} are not nn.Linear / nn.LSTM modules of the model (not yet compressed); "
                         f"valid names are {candidates}")
    return layers


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


def _compress_linear(lin: nn.Linear, method: str, c, split, rank, heuristic, sparse: bool) -> nn.Module:
    m, n = lin.out_features, lin.in_features
    if method == "hmf":
        k, r = choose_split_rank((m, n), c, split, rank)
        return HMFLinear.from_linear(lin, split=k, rank=r, heuristic=heuristic)
    if method == "lmf":
        return LMFLinear.from_linear(lin, rank=lmf_rank((m, n), c, rank))
    if c is None:
        raise TypeError("method 'prune' needs compression, e.g. compression=4")
    p = prune(lin.weight.detach(), nnz=prune_keep((m, n), c))  # LMF's count: the equal budget
    if sparse:
        return SparseLinear.from_csr(p.weight, None if lin.bias is None else lin.bias.detach())
    new = copy.deepcopy(lin)
    tprune.custom_from_mask(new, "weight", p.mask)
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
    targets = set(names)

    def convert(name, mod):
        return _replace(mod, name, method, c, split, rank, heuristic, sparse) if name in targets else None

    return replace_modules(model, convert)


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
    >>> from hmf_lab.compress import replace_modules
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


def _replace(mod, name, method, c, split, rank, heuristic, sparse):
    try:
        return _replace_one(mod, name, method, c, split, rank, heuristic, sparse)
    except ValueError as e:  # name the layer: a model has many matrices
        where = f"layer {name!r}" if name else "the model itself"
        raise ValueError(f"{where} ({_describe(mod)}): {e}") from e


def _describe(mod) -> str:
    if isinstance(mod, nn.LSTM):
        return f"LSTM({mod.input_size}, {mod.hidden_size})"
    if isinstance(mod, nn.Linear):
        return f"Linear({mod.in_features}, {mod.out_features})"
    return type(mod).__name__


def _replace_one(mod, name, method, c, split, rank, heuristic, sparse):
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

    def convert_named(name, mod):
        with torch.inference_mode(False):
            return convert(mod)

    with torch.inference_mode(False):
        top = convert(model)
    if top is not None:
        return top
    _refresh_masked_weights(model)
    return replace_modules(model, convert_named)


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
    seen: set[int] = set()  # a shared module (used twice) stores its values once

    def walk(mod: nn.Module) -> int:
        if id(mod) in seen:
            return 0
        seen.add(id(mod))
        if isinstance(mod, counted):
            return mod.n_params
        if isinstance(mod, nn.LSTM):
            return sum(p.numel() for n, p in mod.named_parameters(recurse=False) if n.startswith("weight"))
        if isinstance(mod, nn.Linear):
            mask = getattr(mod, "weight_mask", None)
            return int(mask.sum()) if mask is not None else mod.weight.numel()
        return sum(walk(child) for child in mod._modules.values() if child is not None)

    return walk(model)
