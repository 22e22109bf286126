"""The LSTM inference loops: plain functions TorchScript can compile, and the per-process compile cache.

"eager" runs a loop in Python, "script" the TorchScript compilation of the same function
(:func:`_scripted`, compiled once per process). Gate-major layout: ``xp`` (T, G, B, H) holds the input
projections plus both biases; ``h``, ``c`` are (B, H). :class:`~hmf_lab.nn.lstm.CompressedLSTM`
picks the loop; every engine gives the same numbers (tests/test_fastpaths.py).

>>> import torch
>>> from hmf_lab.nn.lstm_loops import _csr_loop
>>> W = torch.ones(8, 2).to_sparse_csr()                 # (G*H, H) with G = 4, H = 2
>>> out, h, c = _csr_loop(torch.zeros(3, 4, 1, 2), W, torch.zeros(1, 2), torch.zeros(1, 2), False)
>>> tuple(out.shape)
(3, 1, 2)
"""
from __future__ import annotations

import warnings

import torch

__all__ = []  # private machinery; the LSTM classes live in hmf_lab.nn.lstm


def _cell(g: torch.Tensor, c: torch.Tensor):
    """One LSTM step's gate arithmetic (gate order i, f, g, o as nn.LSTM): gates ``g`` (4, B, H) and cell
    ``c`` (B, H) -> ``(h, c)``. Every loop, scripted or not, calls this one function."""
    s = torch.sigmoid(g)
    c = torch.addcmul(s[1] * c, s[0], torch.tanh(g[2]))
    return s[3] * torch.tanh(c), c


def _hmf_loop(xp: torch.Tensor, DV: torch.Tensor, Ut: torch.Tensor, inverse: torch.Tensor, k: int,
              permute: bool, h: torch.Tensor, c: torch.Tensor, reverse: bool):
    """LSTM steps with a gate-blocked HMF W_hh: one (G, B, k+r) GEMM for every gate's D and V rows, one
    batched GEMM for the U blocks, then the gate arithmetic."""
    T = xp.size(0)
    r = DV.size(1) - k
    out = torch.empty([T, h.size(0), h.size(1)], dtype=h.dtype, device=h.device)
    for s in range(T):
        t = T - 1 - s if reverse else s
        z = torch.matmul(h, DV.transpose(1, 2))  # (G, B, k+r)
        if k == 0:
            g = torch.baddbmm(xp[t], z, Ut)  # LMF: (G, B, H)
        else:
            if r > 0:
                z = torch.cat([z[:, :, :k], torch.bmm(z[:, :, k:], Ut)], 2)  # (G, B, H)
            if permute:
                z = torch.gather(z, 2, inverse.unsqueeze(1).expand_as(z))
            g = z + xp[t]
        h, c = _cell(g, c)
        out[t] = h
    return out, h, c


def _csr_loop(xp: torch.Tensor, W: torch.Tensor, h: torch.Tensor, c: torch.Tensor, reverse: bool):
    """LSTM steps with a CSR W_hh (G*H, H): ``mv`` for batch 1, sparse ``mm`` otherwise."""
    T, G, B, H = xp.size(0), xp.size(1), xp.size(2), xp.size(3)
    out = torch.empty([T, B, H], dtype=h.dtype, device=h.device)
    for s in range(T):
        t = T - 1 - s if reverse else s
        if B == 1:
            y = torch.mv(W, h[0]).view(G, 1, H)
        else:
            y = torch.mm(W, h.t()).view(G, H, B).transpose(1, 2)
        h, c = _cell(y + xp[t], c)
        out[t] = h
    return out, h, c


_SCRIPTED: dict = {}


def _scripted(fn):
    """TorchScript version of a loop function, compiled once per process."""
    if fn not in _SCRIPTED:
        with warnings.catch_warnings():  # torch >= 2.10 marks TorchScript deprecated; it still runs
            warnings.simplefilter("ignore", DeprecationWarning)
            try:
                _SCRIPTED[fn] = torch.jit.script(fn)
            except Exception as e:  # a torch without TorchScript: the same loop in Python
                warnings.warn(f"TorchScript unavailable ({type(e).__name__}: {e}); using the eager loop")
                _SCRIPTED[fn] = fn
    return _SCRIPTED[fn]
