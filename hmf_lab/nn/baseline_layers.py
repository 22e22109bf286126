"""Modules of the post-training baselines: :class:`SparseLowRankLinear` (OATS) and the builders of
``aa_lmf`` / ``wanda`` (which reuse :class:`~hmf_lab.nn.layers.LMFLinear` and the pruning modules).

``SparseLowRankLinear``: ``y = (x V^T) U^T + x S^T + b`` with trainable ``U`` (m, r), ``V`` (r, n) and a
fixed-pattern sparse ``S`` held as CSR buffers (``crow_indices``, ``col_indices``, ``values``; inference
through torch's CSR kernel, as :class:`~hmf_lab.nn.layers.SparseLinear`). ``state_dict`` round-trips into a
module built with the same (in, out, rank, nnz).

>>> import torch
>>> from hmf_lab.nn.baseline_layers import SparseLowRankLinear
>>> lin = torch.nn.Linear(24, 16); X = torch.randn(64, 24)
>>> f = SparseLowRankLinear.from_linear(lin, 3, X=X)
>>> f.n_params <= 24 * 16 // 3, torch.allclose(f(X), X @ f.to_dense().T + lin.bias, atol=1e-5)
(True, True)
"""
from __future__ import annotations

import copy
import warnings

import torch
from torch import nn
from torch.nn.utils import prune as tprune

from hmf_lab.factor._validation import as_int
from hmf_lab.factor.baselines import OATS_ITERS, OATS_RANK_RATIO, aa_lmf, oats, wanda
from hmf_lab.factor.budget import csr_bytes, csr_index_bytes
from hmf_lab.nn.lstm import HMFLSTM, LMFLSTM
from hmf_lab.nn.layers import (MODES, LMFLinear, SparseLinear, _bad_input, _check_linear, _CSRBuffers,
                               _InferenceCache, _Modes)

__all__ = ["SparseLowRankLinear", "aa_lmf_linear", "aa_lmf_lstm", "wanda_linear"]


class SparseLowRankLinear(_Modes, _InferenceCache, _CSRBuffers, nn.Module):
    """``x @ (U V + S)^T + b``: low-rank factors (trainable ``nn.Parameter``) plus a sparse CSR part (buffers).

    ``n_params`` = ``r*(m+n) + nnz`` (stored values; bias and indices not counted), ``n_bytes`` adds the CSR
    indices. Build it with :meth:`from_linear` (OATS on calibration inputs X) or :meth:`from_result`.
    ``mode``: ``"factorized"`` (two thin GEMMs + the CSR kernel, default) or ``"reconstructed"`` (one GEMM with
    the cached W_hat; same numbers), chosen by ``hl.engines``.
    """

    MODES = MODES
    _mode = "factorized"

    def __init__(self, in_features: int, out_features: int, rank: int, nnz: int, bias: bool = True, dtype=None):
        super().__init__()
        n, m, nnz = self._csr_sizes(in_features, out_features, nnz, least=0)
        r = as_int(rank, "rank")
        if not 0 <= r <= min(m, n):
            raise ValueError(f"rank must be an int in [0, min(m, n)]=[0, {min(m, n)}] for shape ({m}, {n}), got {r}")
        self.in_features, self.out_features, self.rank = n, m, r
        self.U = nn.Parameter(torch.zeros(m, r, dtype=dtype))
        self.V = nn.Parameter(torch.zeros(r, n, dtype=dtype))
        self._register_csr(m, nnz, dtype)
        self.bias = nn.Parameter(torch.zeros(m, dtype=dtype)) if bias else None

    @property
    def n_params(self) -> int:
        return self.U.numel() + self.V.numel() + self.nnz

    @property
    def compression(self) -> float:
        return self.in_features * self.out_features / self.n_params

    @property
    def n_bytes(self) -> int:
        e = self.V.element_size()
        return (self.U.numel() + self.V.numel()) * e + csr_bytes(self.out_features, self.nnz, e,
                                                                 csr_index_bytes(self.nnz))

    def weight_bytes(self) -> int:
        """Bytes one forward streams (:func:`hmf_lab.perf.timing.weight_bytes`): W_hat in ``reconstructed``
        mode, else the factors plus the CSR part with its indices (:attr:`n_bytes`)."""
        if self.mode == "reconstructed":
            return self.in_features * self.out_features * self.V.element_size()
        return self.n_bytes

    @classmethod
    def from_result(cls, f, bias: torch.Tensor | None = None) -> "SparseLowRankLinear":
        """From a :class:`~hmf_lab.factor.baselines.SparseLowRankResult` (``hl.factor.baselines.oats``)."""
        m, n = f.shape
        layer = cls(n, m, f.rank, f.nnz, bias=bias is not None, dtype=f.V.dtype)
        layer._load_csr(f.sparse)
        with torch.no_grad():
            layer.U.copy_(f.U)
            layer.V.copy_(f.V)
            if bias is not None:
                layer.bias.copy_(bias)
        return layer

    @classmethod
    def from_linear(cls, linear: nn.Linear, compression=None, *, X=None, rank_ratio: float = OATS_RANK_RATIO,
                    iters: int = OATS_ITERS) -> "SparseLowRankLinear":
        """OATS on ``linear.weight`` with calibration inputs ``X`` (N, in_features) at ``compression``."""
        _check_linear(linear)
        f = oats(linear.weight.detach(), X, compression, rank_ratio=rank_ratio, iters=iters)
        return cls.from_result(f, None if linear.bias is None else linear.bias.detach())

    def _csr(self) -> torch.Tensor:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*[Ss]parse CSR.*")
            return torch.sparse_csr_tensor(self.crow_indices, self.col_indices, self.values,
                                           (self.out_features, self.in_features), check_invariants=False)

    @property
    def weight(self) -> torch.Tensor:
        """The reconstructed dense W_hat (read-only, rebuilt at each read), for code that reads ``.weight``."""
        return self.to_dense()

    def to_dense(self) -> torch.Tensor:
        return self.U @ self.V + self._csr_dense()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        V = self.V
        if not isinstance(x, torch.Tensor) or x.dtype != V.dtype or x.shape[-1:] != (self.in_features,):
            _bad_input(self, x, V.dtype)
        if self._mode == "reconstructed":
            if torch.is_grad_enabled() and (x.requires_grad or V.requires_grad or self.U.requires_grad):
                return nn.functional.linear(x, self.to_dense(), self.bias)
            W = self._cached("W", self.to_dense, self.U, V, self.crow_indices, self.col_indices, self.values)
            return nn.functional.linear(x, W, self.bias)
        lead = x.shape[:-1]
        x2 = x.reshape(-1, self.in_features)
        y = (x2 @ V.T) @ self.U.T
        if self.nnz:
            S = self._cached("csr", self._csr, self.crow_indices, self.col_indices, self.values)
            y = y + (S @ x2.T).T
        y = y.reshape(*lead, self.out_features)
        return y if self.bias is None else y + self.bias

    def extra_repr(self) -> str:
        return (f"in_features={self.in_features}, out_features={self.out_features}, rank={self.rank}, "
                f"nnz={self.nnz}, bias={self.bias is not None}")


def aa_lmf_linear(linear: nn.Linear, compression=None, *, rank=None, X=None) -> LMFLinear:
    """An :class:`~hmf_lab.nn.layers.LMFLinear` holding the activation-aware factors (``hl.factor.baselines.aa_lmf``)."""
    _check_linear(linear)
    return LMFLinear._from_fit(linear, aa_lmf(linear.weight.detach(), X, rank, compression=compression))


def aa_lmf_lstm(lstm: nn.LSTM, compression=None, *, rank=None, X=None) -> LMFLSTM:
    """An :class:`~hmf_lab.nn.lstm.LMFLSTM` whose gate blocks hold activation-aware factors: each (H, n) gate block
    at LMF's rank, fitted on whitened inputs (``hmf`` with split 0, ``heuristic="activation"``: the whitened fit).
    ``X``: calibration inputs per matrix, ``{"ih_l0": (N, n), "hh_l0": (N, H), ...}`` (``hl.compress(..., X=...)``
    captures them: the layer's input sequence for ``ih``, its hidden states for ``hh``)."""
    if not isinstance(X, dict):
        raise ValueError("aa_lmf on an nn.LSTM needs calibration inputs per matrix, X={'ih_l0': ..., 'hh_l0': ...} "
                         "(hl.compress(model, 'aa_lmf', compression=c, X=batches) captures them), or use 'lmf'")
    # HMFLSTM's gate-by-gate build on LMFLSTM (its _config: split 0, LMF's rank), with the whitened fit
    return HMFLSTM.from_lstm.__func__(LMFLSTM, lstm, compression, split=None, rank=rank, heuristic="activation",
                                      X=X)


def wanda_linear(linear: nn.Linear, compression=None, *, X=None, sparse: bool = False) -> nn.Module:
    """Wanda-pruned ``linear``: a masked ``nn.Linear`` (``torch.nn.utils.prune``, trainable, as ``"prune"``), or a
    CSR :class:`~hmf_lab.nn.layers.SparseLinear` with ``sparse=True``."""
    _check_linear(linear)
    p = wanda(linear.weight.detach(), X, compression)
    bias = None if linear.bias is None else linear.bias.detach()
    if sparse:
        return SparseLinear.from_dense(linear.weight.detach(), bias, mask=p.mask)
    new = copy.deepcopy(linear)
    tprune.custom_from_mask(new, "weight", p.mask)
    return new
