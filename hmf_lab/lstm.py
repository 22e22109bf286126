"""Compressed LSTMs with the ``nn.LSTM`` forward signature: HMF, LMF, masked pruning and CSR pruning.

An LSTM layer holds two stacked matrices, ``W_ih`` (4H, n_in) and ``W_hh`` (4H, H), one block of H rows
per gate (PyTorch's order: input i, forget f, cell g, output o). "top" on the stacked matrix would keep
only input-gate rows dense, so HMF is applied **per gate block**: every gate keeps ``split`` (k) dense
rows and factorizes its other H-k rows at ``rank`` (r) -- the paper's structure on each block:

    W_g = P_g [ D_g ; U_g V_g ]    D_g: (k, n)  U_g: (H-k, r)  V_g: (r, n)    g in (i, f, g, o)

LMF is the same with k = 0 (a rank-r factorization per gate). Parameters count stored weight values
only (biases and sparse indices excluded), the same rule for every method.

Modules
-------
- :class:`~hmf_lab.gate_hmf.GateHMFLinear` (in ``gate_hmf.py``): the (4H, n) gate-blocked HMF matrix.
- :class:`~hmf_lab.lstm_base.CompressedLSTM` (in ``lstm_base.py``): the shared ``nn.LSTM`` forward;
  its TorchScript loops are in ``lstm_engines.py``.
- here: :class:`HMFLSTM`, :class:`LMFLSTM`: trainable LSTMs on GateHMFLinear (``nn.Parameter`` D, U, V).
- :class:`PrunedLSTM`: an ``nn.LSTM`` whose weights carry ``torch.nn.utils.prune`` masks (fine-tuning,
  gradual pruning); ``.to_sparse()`` gives a :class:`SparseLSTM` (CSR kernels, inference).

Inference is fast: the input projections of all time steps are one GEMM, and the per-step loop does
one fused GEMM (every gate's D and V rows), one batched GEMM (every gate's U) and the gate arithmetic
on a gate-major (4, B, H) layout. Under ``torch.no_grad``/``inference_mode`` the packed weights are
cached (invalidated when any parameter changes); with autograd on, the plain differentiable path runs.

Example
-------
>>> import torch, hmf_lab as hl
>>> lstm = torch.nn.LSTM(8, 16, batch_first=True)
>>> same = hl.HMFLSTM.from_lstm(lstm, compression=1)       # split = H: every row dense, exact
>>> x = torch.randn(2, 5, 8)
>>> (y, (h, c)), (y0, (h0, c0)) = same(x), lstm(x)
>>> torch.allclose(y, y0, atol=1e-5) and torch.allclose(c, c0, atol=1e-5)
True
>>> small = hl.HMFLSTM.from_lstm(torch.nn.LSTM(128, 128), compression=4)   # k dense rows per gate
>>> small.split, small.rank, round(small.compression, 2)      # equal budget: LMF's size within 1%
((13, 13), (10, 10), 4.0)
"""
from __future__ import annotations


import torch
from torch import nn
from torch.nn.utils import prune as tprune

from ._validation import check_compression
from .core import choose_split_rank, lmf_rank, prune, prune_keep
from .gate_hmf import GATES, GateHMFLinear
from .layers import SparseLinear
from .lstm_base import LSTM_MODES, CompressedLSTM  # noqa: F401  (LSTM_MODES re-exported)
from .lstm_engines import _SCRIPTED, _csr_loop, _hmf_loop, _scripted  # noqa: F401  (re-exported)

__all__ = ["GateHMFLinear", "HMFLSTM", "LMFLSTM", "PrunedLSTM", "SparseLSTM", "CompressedLSTM",
           "choose_split_rank", "lmf_rank"]


# --------------------------------------------------------------------------- choosing (split, rank)


# choose_split_rank (HMF) and lmf_rank (LMF) live in core, the one home of the budget rules (issue 12);
# imported above and re-exported here for old imports.


def _sparse_gates(module: SparseLinear, x2: torch.Tensor, add: torch.Tensor | None, G: int) -> torch.Tensor:
    """(G, B, H) pre-activations of a CSR (G*H, n) matrix (no bias)."""
    y = module.matmul(x2)  # (B, G*H)
    y = y.view(x2.shape[0], G, -1).transpose(0, 1)
    return y if add is None else y + add




def _check_lstm(lstm) -> nn.LSTM:
    if not isinstance(lstm, nn.LSTM):
        raise TypeError(f"lstm must be a torch.nn.LSTM, got {type(lstm).__name__}")
    if lstm.proj_size:
        raise ValueError(f"LSTMs with proj_size > 0 are not supported, got proj_size={lstm.proj_size}; "
                         f"leave this module out (layers=...) or use proj_size=0")
    return lstm


def _lstm_weights(lstm: nn.LSTM, sfx: str):
    """Dense weights and biases of one layer/direction (pruning masks applied if any)."""
    w_ih, w_hh = getattr(lstm, "weight_ih" + sfx).detach(), getattr(lstm, "weight_hh" + sfx).detach()
    b_ih = getattr(lstm, "bias_ih" + sfx).detach() if lstm.bias else None
    b_hh = getattr(lstm, "bias_hh" + sfx).detach() if lstm.bias else None
    return w_ih, w_hh, b_ih, b_hh


def _suffixes(lstm):
    for layer in range(lstm.num_layers):
        for d in range(2 if lstm.bidirectional else 1):
            yield f"_l{layer}" + ("_reverse" if d else "")


def _per_matrix(value, sfx: str, which: str):
    """A split/rank override: an int for every matrix, or a dict keyed 'ih', 'hh', or 'ih_l0', ..."""
    if isinstance(value, dict):
        for key in (which + sfx, which):
            if key in value:
                return value[key]
        return None
    return value


class HMFLSTM(CompressedLSTM):
    """An LSTM whose W_ih and W_hh are :class:`GateHMFLinear` (HMF per gate block); trainable.

    Build it with :meth:`from_lstm`; the constructor makes a randomly initialised one.

    >>> import torch, hmf_lab as hl
    >>> m = hl.HMFLSTM(10, 8, split=2, rank=3, batch_first=True)
    >>> y, (h, c) = m(torch.randn(4, 7, 10))
    >>> tuple(y.shape), tuple(h.shape)
    ((4, 7, 8), (1, 4, 8))
    """

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, bias: bool = True,
                 batch_first: bool = False, dropout: float = 0.0, bidirectional: bool = False, *,
                 split=0, rank=1, dtype=None, _build: bool = True):
        super().__init__(input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional)
        if _build:
            for layer in range(self.num_layers):
                for _ in range(self.num_directions):
                    n = self._layer_input_size(layer)
                    self.ih.append(GateHMFLinear(n, hidden_size, split, min(rank, n), bias=bias, dtype=dtype))
                    self.hh.append(GateHMFLinear(hidden_size, hidden_size, split, rank, bias=bias, dtype=dtype))

    def _fast_loop(self, hh, h):
        if not hh._fast_ok(h):
            return None
        DV, Ut = hh._packed()
        return _hmf_loop, (DV, Ut, hh.inverse, hh.split, not hh.is_top)

    @property
    def split(self) -> tuple:
        """Dense rows per gate of each matrix: (ih_l0, hh_l0, ih_l0_reverse, ...)."""
        return tuple(m.split for pair in zip(self.ih, self.hh) for m in pair)

    @property
    def rank(self) -> tuple:
        return tuple(m.rank for pair in zip(self.ih, self.hh) for m in pair)

    @classmethod
    def from_lstm(cls, lstm: nn.LSTM, compression=None, split=None, rank=None, heuristic="top", X=None):
        """Compress every W_ih / W_hh of a trained ``nn.LSTM`` gate by gate.

        Each gate block (H, n) gets ``choose_split_rank((H, n), compression, split, rank)``: the same
        compression per matrix, so the whole LSTM is compressed ``compression``-fold. ``split``/``rank``:
        an int for every matrix or a dict with keys ``'ih'``, ``'hh'`` or ``'ih_l0'``, ``'hh_l1_reverse'``...
        ``X``: calibration inputs per matrix, a dict with the same keys (``hl.compress(..., X=batches)``
        captures them: the layer's input sequence for ``ih``, its hidden states for ``hh``); ``heuristic``
        may be such a dict too.
        """
        _check_lstm(lstm)
        self = cls(lstm.input_size, lstm.hidden_size, lstm.num_layers, lstm.bias, lstm.batch_first,
                   lstm.dropout, lstm.bidirectional, _build=False)
        H = lstm.hidden_size
        for sfx in _suffixes(lstm):
            w_ih, w_hh, b_ih, b_hh = _lstm_weights(lstm, sfx)
            for which, W, b, mods in (("ih", w_ih, b_ih, self.ih), ("hh", w_hh, b_hh, self.hh)):
                k, r = cls._config((H, W.shape[1]), compression, _per_matrix(split, sfx, which),
                                   _per_matrix(rank, sfx, which))
                h = _per_matrix(heuristic, sfx, which) if isinstance(heuristic, dict) else heuristic
                mods.append(GateHMFLinear.from_weight(W, k, r, bias=b, heuristic="top" if h is None else h,
                                                      X=_per_matrix(X, sfx, which)))
        return self.train(lstm.training)

    @staticmethod
    def _config(shape, compression, split, rank):
        return choose_split_rank(shape, compression, split, rank)


class LMFLSTM(HMFLSTM):
    """An LSTM whose W_ih and W_hh are rank-r factorized per gate block (HMF with split 0); trainable.

    >>> import torch, hmf_lab as hl
    >>> m = hl.LMFLSTM.from_lstm(torch.nn.LSTM(16, 16), compression=4)
    >>> m.split, m.rank
    ((0, 0), (2, 2))
    """

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, bias: bool = True,
                 batch_first: bool = False, dropout: float = 0.0, bidirectional: bool = False, *,
                 rank=1, dtype=None, _build: bool = True):
        super().__init__(input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional,
                         split=0, rank=rank, dtype=dtype, _build=_build)

    @classmethod
    def from_lstm(cls, lstm: nn.LSTM, compression=None, split=None, rank=None):
        """Rank ``lmf_rank((H, n), compression, rank)`` per gate block of every matrix (SVD, Eckart–Young).

        LMF keeps no dense rows, so it takes no split heuristic; ``split`` may only be None or 0.
        """
        if split not in (None, 0):
            raise ValueError(f"LMF has no dense rows: split must be None or 0, got {split!r}; use method 'hmf'")
        return super().from_lstm(lstm, compression, split=None, rank=rank, heuristic="top")

    @staticmethod
    def _config(shape, compression, split, rank):
        return 0, lmf_rank(shape, compression, rank)


class SparseLSTM(CompressedLSTM):
    """Pruned LSTM for inference: W_ih, W_hh as CSR :class:`~hmf_lab.layers.SparseLinear` (not trainable).

    >>> import torch, hmf_lab as hl
    >>> s = hl.SparseLSTM.from_lstm(torch.nn.LSTM(16, 16), compression=4)
    >>> s.n_params, s.dense_params
    (512, 2048)
    """

    def _hh_gates(self, hh, h, add):
        return _sparse_gates(hh, h, add, GATES)

    def _fast_loop(self, hh, h):
        if torch.is_grad_enabled() and h.requires_grad:
            return None
        return _csr_loop, (hh._csr32(),)

    @classmethod
    def from_lstm(cls, lstm: nn.LSTM, compression=None, count: str = "equal"):
        """CSR copy of an ``nn.LSTM``: magnitude-pruned per matrix to ``compression`` (``hl.prune``), or,
        with ``compression=None``, the zeros already there (a :class:`PrunedLSTM` or masked weights) kept out."""
        _check_lstm(lstm)
        self = cls(lstm.input_size, lstm.hidden_size, lstm.num_layers, lstm.bias, lstm.batch_first,
                   lstm.dropout, lstm.bidirectional)
        for sfx in _suffixes(lstm):
            w_ih, w_hh, b_ih, b_hh = _lstm_weights(lstm, sfx)
            masks = _masks(lstm, sfx)
            for which, W, b, mods in (("ih", w_ih, b_ih, self.ih), ("hh", w_hh, b_hh, self.hh)):
                if compression is not None:  # pruning keeps LMF's count per gate block (equal budget)
                    keep = prune_keep((lstm.hidden_size, W.shape[1]), compression, blocks=GATES, count=count)
                    mods.append(SparseLinear.from_csr(prune(W, nnz=keep).weight, b))
                else:
                    mask = masks.get(which)
                    mods.append(SparseLinear.from_dense(W, b, mask=mask))
        return self.train(False)


def _linear(W: torch.Tensor, b) -> nn.Linear:
    lin = nn.Linear(W.shape[1], W.shape[0], bias=b is not None, dtype=W.dtype)
    with torch.no_grad():
        lin.weight.copy_(W)
        if b is not None:
            lin.bias.copy_(b)
    return lin


def _masks(lstm: nn.Module, sfx: str) -> dict:
    out = {}
    for which in ("ih", "hh"):
        mask = getattr(lstm, f"weight_{which}{sfx}_mask", None)
        if mask is not None:
            out[which] = mask.bool()
    return out


class PrunedLSTM(nn.LSTM):
    """An ``nn.LSTM`` whose weights carry ``torch.nn.utils.prune`` masks: trainable, for fine-tuning.

    Each ``weight_ih_l*`` / ``weight_hh_l*`` is reparametrised by ``torch.nn.utils.prune``
    (``weight_ih_l0_orig`` parameter + ``weight_ih_l0_mask`` buffer), so gradual pruning (e.g. Zhu &
    Gupta) can keep calling ``prune.l1_unstructured(module, "weight_hh_l0", amount)`` on it.
    ``to_sparse()`` returns the :class:`SparseLSTM` (CSR kernels) for inference; ``hl.sparsify(model)``
    does it for a whole model. Its forward is ``nn.LSTM``'s, on the masked weights.

    >>> import torch, hmf_lab as hl
    >>> p = hl.PrunedLSTM.from_lstm(torch.nn.LSTM(16, 16), compression=4)
    >>> p.n_params, int(p.weight_hh_l0.count_nonzero()) <= 256, type(p.to_sparse()).__name__
    (512, True, 'SparseLSTM')
    """

    @classmethod
    def from_lstm(cls, lstm: nn.LSTM, compression, count: str = "equal") -> "PrunedLSTM":
        """Copy ``lstm`` and magnitude-prune each weight matrix to ``compression`` (``hl.prune``'s mask)."""
        _check_lstm(lstm)
        c = check_compression(compression)
        self = cls(lstm.input_size, lstm.hidden_size, lstm.num_layers, bias=lstm.bias,
                   batch_first=lstm.batch_first, dropout=lstm.dropout, bidirectional=lstm.bidirectional,
                   dtype=lstm.weight_ih_l0.dtype)
        self.load_state_dict(_plain_lstm_state(lstm))
        for sfx in _suffixes(lstm):
            for which in ("ih", "hh"):
                name = f"weight_{which}{sfx}"
                W = getattr(self, name).detach()
                keep = prune_keep((lstm.hidden_size, W.shape[1]), c, blocks=GATES, count=count)  # equal budget
                tprune.custom_from_mask(self, name, prune(W, nnz=keep).mask)
        return self.train(lstm.training)

    def _mask_names(self):
        return [n for n, _ in self.named_buffers() if n.endswith("_mask")]

    def _init_masks_like(self, state_dict) -> None:
        """Register prune masks named in ``state_dict`` so a fresh PrunedLSTM can load a saved one."""
        for key in state_dict:
            if key.endswith("_mask"):
                name = key[: -len("_mask")]
                if not hasattr(self, name + "_orig"):
                    tprune.custom_from_mask(self, name, torch.ones_like(getattr(self, name)))

    @property
    def n_params(self) -> int:
        """Kept weight values (mask ones); biases not counted."""
        total = 0
        for sfx in _suffixes(self):
            for which in ("ih", "hh"):
                mask = getattr(self, f"weight_{which}{sfx}_mask", None)
                W = getattr(self, f"weight_{which}{sfx}")
                total += int(mask.sum()) if mask is not None else W.numel()
        return total

    @property
    def dense_params(self) -> int:
        return sum(getattr(self, f"weight_{w}{s}").numel() for s in _suffixes(self) for w in ("ih", "hh"))

    @property
    def compression(self) -> float:
        return self.dense_params / self.n_params

    def to_sparse(self) -> SparseLSTM:
        """The CSR :class:`SparseLSTM` of the masked weights (inference)."""
        return SparseLSTM.from_lstm(self)


def _plain_lstm_state(lstm: nn.LSTM) -> dict:
    """State dict of an ``nn.LSTM`` with any prune reparametrisation folded in."""
    out = {}
    for sfx in _suffixes(lstm):
        for name in ("weight_ih", "weight_hh") + (("bias_ih", "bias_hh") if lstm.bias else ()):
            out[name + sfx] = getattr(lstm, name + sfx).detach().clone()
    return out
