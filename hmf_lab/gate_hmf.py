"""The gate-blocked HMF matrix: a (G*H, n) ``nn.Linear`` look-alike with HMF applied per gate block.

An LSTM layer stacks one block of H rows per gate (PyTorch's order: input i, forget f, cell g, output
o). "top" on the stacked matrix would keep only input-gate rows dense, so every gate keeps ``split``
(k) dense rows and factorizes its other H-k rows at ``rank`` (r):

    W_g = P_g [ D_g ; U_g V_g ]    D_g: (k, n)  U_g: (H-k, r)  V_g: (r, n)    g in (i, f, g, o)

>>> import torch, hmf_lab as hl
>>> f = hl.GateHMFLinear.from_weight(torch.randn(4 * 6, 5), split=2, rank=2)
>>> f.D.shape, f.U.shape, f.V.shape
(torch.Size([4, 2, 5]), torch.Size([4, 4, 2]), torch.Size([4, 2, 5]))
"""
from __future__ import annotations

import math

import torch
from torch import nn

from ._validation import as_int, check_rank, check_split
from .core import hmf
from .layers import _differentiating, _InferenceCache, _StoredValues

__all__ = ["GateHMFLinear", "GATES"]

GATES = 4  # i, f, g, o


class GateHMFLinear(_InferenceCache, _StoredValues, nn.Module):
    """A (G*H, n) matrix in G gate blocks, each HMF with ``split`` dense rows and rank ``rank``.

    ``forward(x)`` is ``x @ W_hat.T + bias`` like ``nn.Linear``; ``gates(x, add)`` returns the
    pre-activations in the gate-major (G, B, H) layout the LSTM loop uses. Parameters: ``D`` (G, k, n),
    ``U`` (G, H-k, r), ``V`` (G, r, n), ``bias`` (G*H,); buffers ``rows`` (G, k) (dense rows of each
    gate, sorted) and ``inverse`` (G, H) (unit order of each gate's [D ; UV] rows).

    >>> import torch, hmf_lab as hl
    >>> W = torch.randn(4 * 6, 5)
    >>> f = hl.GateHMFLinear.from_weight(W, split=2, rank=2, bias=torch.randn(24))
    >>> x = torch.randn(3, 5)
    >>> torch.allclose(f(x), x @ f.to_dense().T + f.bias, atol=1e-5), f.n_params
    (True, 112)
    """

    _stored = ("D", "U", "V")  # n_params counts these

    def __init__(self, in_features: int, hidden_size: int, split: int, rank: int, bias: bool = True,
                 rows=None, gates: int = GATES, dtype=None):
        super().__init__()
        n, H, G = as_int(in_features, "in_features"), as_int(hidden_size, "hidden_size"), as_int(gates, "gates")
        if n < 1 or H < 1 or G < 1:
            raise ValueError(f"in_features, hidden_size and gates must be >= 1, got {n}, {H} and {G}")
        k = check_split(split, H)
        r = check_rank(rank, H, n, k)
        self.in_features, self.hidden_size, self.gates_, self.split, self.rank = n, H, G, k, r
        self.out_features = G * H
        self.D = nn.Parameter(torch.empty(G, k, n, dtype=dtype))  # (G, k, n)
        self.U = nn.Parameter(torch.empty(G, H - k, r, dtype=dtype))  # (G, H-k, r)
        self.V = nn.Parameter(torch.empty(G, r, n, dtype=dtype))  # (G, r, n)
        self.bias = nn.Parameter(torch.zeros(G * H, dtype=dtype)) if bias else None
        if rows is None:
            rows = torch.arange(k).expand(G, k)
        rows = torch.as_tensor(rows, dtype=torch.int64)
        if rows.shape != (G, k):
            raise ValueError(f"rows must have shape ({G}, {k}) (split {k} dense rows per gate), "
                             f"got {tuple(rows.shape)}")
        inverse = torch.empty(G, H, dtype=torch.int64)
        for g in range(G):
            keep = torch.ones(H, dtype=torch.bool)
            keep[rows[g]] = False
            if int((~keep).sum()) != k:
                raise ValueError(f"rows of gate {g} must be {k} distinct indices in [0, {H}), got {rows[g].tolist()}")
            inverse[g] = torch.argsort(torch.cat([rows[g], torch.nonzero(keep).reshape(-1)]))
        self.register_buffer("rows", rows.clone())
        self.register_buffer("inverse", inverse)
        self._refresh()
        self.register_load_state_dict_post_hook(lambda module, keys: module._refresh())
        with torch.no_grad():
            for p in (self.D, self.U, self.V):
                if p.numel():
                    nn.init.uniform_(p, -1 / math.sqrt(max(n, 1)), 1 / math.sqrt(max(n, 1)))

    def _refresh(self) -> None:
        self.clear_cache()
        H = self.hidden_size
        self._is_top = bool(torch.equal(self.inverse, torch.arange(H, device=self.inverse.device).expand_as(self.inverse)))

    @property
    def is_top(self) -> bool:
        """True when every gate's dense rows are its first k (no unit permutation)."""
        return self._is_top

    @classmethod
    def from_weight(cls, W: torch.Tensor, split: int, rank: int, bias: torch.Tensor | None = None,
                    heuristic="top", gates: int = GATES) -> "GateHMFLinear":
        """Compress a (G*H, n) weight gate block by gate block with ``hl.hmf(W_g, split, rank, heuristic)``."""
        W = W.detach()
        if W.ndim != 2 or W.shape[0] % gates:
            raise ValueError(f"W must be a (gates*H, n) matrix with gates = {gates}, got shape {tuple(W.shape)}")
        H, n = W.shape[0] // gates, W.shape[1]
        k = check_split(split, H)
        r = check_rank(rank, H, n, k)
        fs = [hmf(Wg, k, r, heuristic=heuristic) for Wg in W.split(H)]
        layer = cls(n, H, k, r, bias=bias is not None, rows=torch.stack([f.rows for f in fs]) if k else None,
                    gates=gates, dtype=W.dtype)
        with torch.no_grad():
            for g, f in enumerate(fs):
                layer.D[g].copy_(f.dense)
                layer.U[g].copy_(f.U)
                layer.V[g].copy_(f.V)
            if bias is not None:
                layer.bias.copy_(bias)
        return layer

    def to_dense(self) -> torch.Tensor:
        """The (G*H, n) reconstruction, gate blocks in order."""
        W = torch.cat([self.D, self.U @ self.V], dim=1)  # (G, H, n) in [D ; UV] order per gate
        W = torch.gather(W, 1, self.inverse.unsqueeze(-1).expand_as(W))
        return W.reshape(self.out_features, self.in_features)

    # -- forward paths ------------------------------------------------------------------------

    def _plain_gates(self, x2: torch.Tensor) -> torch.Tensor:
        """Differentiable (G, B, H) pre-activations without bias: the reference path."""
        top = torch.matmul(x2, self.D.transpose(1, 2))  # (G, B, k)
        low = torch.matmul(torch.matmul(x2, self.V.transpose(1, 2)), self.U.transpose(1, 2))  # (G, B, H-k)
        y = torch.cat([top, low], dim=2)  # (G, B, H)
        if not self._is_top:
            y = torch.gather(y, 2, self.inverse.unsqueeze(1).expand_as(y))
        return y

    def _packed(self):
        """Inference weights, cached: DV (G, k+r, n) and U^T (G, r, H-k) contiguous."""
        DV = self._cached("DV", lambda: torch.cat([self.D, self.V], dim=1).contiguous(), self.D, self.V)
        Ut = self._cached("Ut", lambda: self.U.transpose(1, 2).contiguous(), self.U)
        return DV, Ut  # (G, k+r, n), (G, r, H-k)

    def _fast_ok(self, x: torch.Tensor) -> bool:
        return not _differentiating(x, self.D, self.U, self.V)

    def gates(self, x2: torch.Tensor, add: torch.Tensor | None = None) -> torch.Tensor:
        """``add + [W_g x for each gate]`` in the gate-major (G, B, H) layout (no bias). ``x2``: (B, n)."""
        if not self._fast_ok(x2):
            y = self._plain_gates(x2)
            return y if add is None else y + add
        k, r = self.split, self.rank
        DV, Ut = self._packed()
        t = torch.matmul(x2, DV.transpose(1, 2))  # (G, B, k+r): every gate's D and V rows in one call
        if k == 0:  # LMF
            return torch.bmm(t, Ut) if add is None else torch.baddbmm(add, t, Ut)
        if r:
            t = torch.cat([t[:, :, :k], torch.bmm(t[:, :, k:], Ut)], dim=2)  # (G, B, H)
        if not self._is_top:
            t = torch.gather(t, 2, self.inverse.unsqueeze(1).expand_as(t))
        return t if add is None else t + add

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        lead = x.shape[:-1]
        x2 = x.reshape(-1, self.in_features)  # (B, n)
        if self._fast_ok(x2):
            y = self._flat_fast(x2)
        else:
            y = self._plain_gates(x2).transpose(0, 1).reshape(x2.shape[0], self.out_features)  # (B, G*H)
        if self.bias is not None:
            y = y + self.bias
        return y.reshape(*lead, self.out_features)

    def _flat_fast(self, x2: torch.Tensor) -> torch.Tensor:
        """(B, G*H) without the gate-major detour: one GEMM for all D and V rows, G GEMMs for U."""
        G, k, r, H = self.gates_, self.split, self.rank, self.hidden_size
        DV, Ut = self._packed()
        t = x2 @ DV.reshape(G * (k + r), -1).T  # (B, G*(k+r))
        t = t.view(-1, G, k + r)
        y = x2.new_empty(x2.shape[0], G, H)
        y[:, :, :k] = t[:, :, :k]
        if r:
            y[:, :, k:] = torch.bmm(t[:, :, k:].transpose(0, 1), Ut).transpose(0, 1)
        if not self._is_top:
            y = torch.gather(y, 2, self.inverse.unsqueeze(0).expand_as(y))
        return y.reshape(x2.shape[0], G * H)

    def extra_repr(self) -> str:
        return (f"in_features={self.in_features}, hidden_size={self.hidden_size}, gates={self.gates_}, "
                f"split={self.split}, rank={self.rank}, bias={self.bias is not None}")

