"""Compressed LSTMs with the ``nn.LSTM`` forward signature: HMF, LMF, masked pruning and CSR pruning.

An LSTM layer holds two stacked matrices, ``W_ih`` (4H, n_in) and ``W_hh`` (4H, H), one block of H rows
per gate (PyTorch's order: input i, forget f, cell g, output o). "top" on the stacked matrix would keep
only input-gate rows dense, so HMF is applied **per gate block**: every gate keeps ``split`` (k) dense
rows and factorizes its other H-k rows at ``rank`` (r) -- the paper's structure on each block:

    W_g = P_g [ D_g ; U_g V_g ]    D_g: (k, n)  U_g: (H-k, r)  V_g: (r, n)    g in (i, f, g, o)

LMF is the same with k = 0 (a rank-r factorization per gate). Parameters count stored weight values
only (biases and sparse indices excluded), the same rule for every method.

This file holds the whole forward of a compressed LSTM (its recurrent loops, plain functions that
TorchScript compiles, are in :mod:`hmf_lab.nn.lstm_loops`): read it top to bottom.

- :class:`GateHMFLinear`: the (4H, n) gate-blocked HMF matrix (LMF is k = 0).
- :class:`CompressedLSTM`: the shared ``nn.LSTM`` forward on any per-layer ``ih``/``hh`` matrices.
- :class:`HMFLSTM`, :class:`LMFLSTM`: trainable LSTMs on GateHMFLinear (``nn.Parameter`` D, U, V).
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

import math

import torch
from torch import nn
from torch.nn.utils import prune as tprune
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence, pad_packed_sequence

from hmf_lab.factor._validation import as_int, check_compression, check_rank, check_split
from hmf_lab.factor.budget import choose_split_rank, lmf_rank, prune_keep
from hmf_lab.factor.core import hmf, prune
from hmf_lab.nn.layers import SparseLinear, _differentiating, _InferenceCache, _Modes, _StoredValues
from hmf_lab.nn.lstm_loops import _SCRIPTED, _cell, _csr_loop, _hmf_loop, _scripted  # noqa: F401

__all__ = ["GATES", "GateHMFLinear", "CompressedLSTM", "LSTM_MODES", "HMFLSTM", "LMFLSTM", "PrunedLSTM",
           "SparseLSTM", "choose_split_rank", "lmf_rank", "GateColLinear", "HMFColLSTM"]


# ================================================================================================
# the gate-blocked HMF matrix
# ================================================================================================

GATES = 4  # i, f, g, o


def _refresh_on_load(module: nn.Module, incompatible_keys) -> None:
    """``load_state_dict`` post hook (a module-level function, not a lambda, so the LSTMs pickle)."""
    module._refresh()


class _GateBlocks(_InferenceCache, _StoredValues, nn.Module):
    """What the gate-blocked matrices share: the size checks, the bias, the factor init, ``from_weight``'s
    weight check and copy, the load hook and ``extra_repr``. Subclasses own the factor layout and the forward."""

    _stored = ("D", "U", "V")  # n_params counts these
    _split_note = ""  # extra_repr's note after split

    def _sizes(self, in_features, hidden_size, split, rank, gates, by_cols: bool):
        """Check and set the sizes; ``by_cols``: ``split`` counts input columns (else each gate's rows)."""
        n, H, G = as_int(in_features, "in_features"), as_int(hidden_size, "hidden_size"), as_int(gates, "gates")
        if n < 1 or H < 1 or G < 1:
            raise ValueError(f"in_features, hidden_size and gates must be >= 1, got {n}, {H} and {G}")
        k, r = _check_split_rank(split, rank, H, n, by_cols)
        self.in_features, self.hidden_size, self.gates_, self.split, self.rank = n, H, G, k, r
        self.out_features = G * H
        return n, H, G, k, r

    def _init_factors(self) -> None:
        self.register_load_state_dict_post_hook(_refresh_on_load)
        bound = 1 / math.sqrt(max(self.in_features, 1))
        with torch.no_grad():
            for p in (self.D, self.U, self.V):
                if p.numel():
                    nn.init.uniform_(p, -bound, bound)

    @staticmethod
    def _gate_weight(W: torch.Tensor, split, rank, gates: int, by_cols: bool):
        """``from_weight``'s check of a (G*H, n) weight: ``(W, H, n, k, r)``."""
        W = W.detach()
        if W.ndim != 2 or W.shape[0] % gates:
            raise ValueError(f"W must be a (gates*H, n) matrix with gates = {gates}, got shape {tuple(W.shape)}")
        H, n = W.shape[0] // gates, W.shape[1]
        k, r = _check_split_rank(split, rank, H, n, by_cols)
        return W, H, n, k, r

    def _load_fits(self, fs, bias) -> "_GateBlocks":
        """Copy each gate's factorization (``dense``, ``U``, ``V``) and the bias into this layer."""
        with torch.no_grad():
            for g, f in enumerate(fs):
                self.D[g].copy_(f.dense)
                self.U[g].copy_(f.U)
                self.V[g].copy_(f.V)
            if bias is not None:
                self.bias.copy_(bias)
        return self

    def extra_repr(self) -> str:
        return (f"in_features={self.in_features}, hidden_size={self.hidden_size}, gates={self.gates_}, "
                f"split={self.split}{self._split_note}, rank={self.rank}, bias={self.bias is not None}")


def _check_split_rank(split, rank, H: int, n: int, by_cols: bool):
    """(split, rank) of one (H, n) gate block: split counts its rows, or with ``by_cols`` its input columns."""
    if by_cols:
        k = check_split(split, n)
        return k, check_rank(rank, n, H, k)
    k = check_split(split, H)
    return k, check_rank(rank, H, n, k)


class GateHMFLinear(_GateBlocks):
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

    def __init__(self, in_features: int, hidden_size: int, split: int, rank: int, bias: bool = True,
                 rows=None, gates: int = GATES, dtype=None):
        super().__init__()
        n, H, G, k, r = self._sizes(in_features, hidden_size, split, rank, gates, by_cols=False)
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
        self._init_factors()

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
                    heuristic="top", gates: int = GATES, X=None) -> "GateHMFLinear":
        """Compress a (G*H, n) weight gate block by gate block with ``hl.hmf(W_g, split, rank, heuristic, X)``.

        ``X`` (N, n): calibration inputs of this matrix (every gate block sees the same inputs).
        ``heuristic`` may also be a tuple of G heuristics, one per gate block (e.g. Fisher importances).
        """
        W, H, n, k, r = cls._gate_weight(W, split, rank, gates, by_cols=False)
        hs = list(heuristic) if isinstance(heuristic, tuple) else [heuristic] * gates
        if len(hs) != gates:
            raise ValueError(f"heuristic as a tuple needs one entry per gate block ({gates}), got {len(hs)}")
        fs = [hmf(Wg, k, r, heuristic=h, X=X) for Wg, h in zip(W.split(H), hs)]
        layer = cls(n, H, k, r, bias=bias is not None, rows=torch.stack([f.rows for f in fs]) if k else None,
                    gates=gates, dtype=W.dtype)
        return layer._load_fits(fs, bias)

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



# ================================================================================================
# CompressedLSTM: nn.LSTM's forward on per-layer matrices
# ================================================================================================

LSTM_MODES = ("auto", "factorized", "reconstructed")


class CompressedLSTM(_Modes, nn.Module):
    """Base of the compressed LSTMs: the ``nn.LSTM`` forward signature on per-layer ``ih``/``hh`` matrices.

    ``forward(input, hx=None) -> (output, (h_n, c_n))`` with ``batch_first``, ``num_layers``,
    ``bidirectional``, inter-layer ``dropout``, unbatched 2-D input and ``PackedSequence`` input,
    like ``nn.LSTM`` (``proj_size`` is not supported). Subclasses fill ``self.ih``/``self.hh``
    (``nn.ModuleList``, index ``layer * num_directions + direction``).

    ``mode`` picks the implementation (all give the same numbers):

    - ``"factorized"``: the per-step loop on the compressed factors (streams ``n_params`` weights a step);
      ``engine`` then picks TorchScript (default), the same loop in Python, or the plain
      differentiable loop;
    - ``"reconstructed"``: W_hat rebuilt (differentiably when training, cached in eval mode) and run by
      ``nn.LSTM``'s fused kernel -- the faster choice when per-step overhead dominates (small hidden
      sizes) and for training;
    - ``"auto"`` (default): reconstructed when autograd records the forward (fine-tuning: the backward
      runs through torch's LSTM kernel, gradients reach D, U, V), factorized for inference.
    """

    MODES = LSTM_MODES  # the shared ``mode`` property (:class:`~hmf_lab.nn.layers._Modes`) checks these
    _clears_cache = False  # setting mode keeps _inference_cache, as the LSTM's own setter did

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, bias: bool = True,
                 batch_first: bool = False, dropout: float = 0.0, bidirectional: bool = False):
        super().__init__()
        self.input_size, self.hidden_size = as_int(input_size, "input_size"), as_int(hidden_size, "hidden_size")
        self.num_layers = as_int(num_layers, "num_layers")
        if self.input_size < 1 or self.hidden_size < 1 or self.num_layers < 1:
            raise ValueError(f"input_size, hidden_size and num_layers must be >= 1, got {input_size}, "
                             f"{hidden_size} and {num_layers}")
        if not 0.0 <= float(dropout) <= 1.0:
            raise ValueError(f"dropout must be a probability in [0, 1], got {dropout!r}")
        self.bias, self.batch_first, self.dropout = bool(bias), bool(batch_first), float(dropout)
        self.bidirectional = bool(bidirectional)
        self.num_directions = 2 if bidirectional else 1
        self.proj_size = 0
        self.ih = nn.ModuleList()
        self.hh = nn.ModuleList()
        self._mode = "auto"

    def __getstate__(self):
        # pickle and copy.deepcopy leave out what the forward caches (rebuilt on the next call)
        state = dict(super().__getstate__())
        state.pop("_inference_cache", None)
        state.pop("_lstm_template", None)
        return state

    def _weight(self) -> torch.Tensor:
        """One weight tensor of the first matrix (its dtype and device are the model's)."""
        m = next(iter(self.ih._modules.values()))   # self.ih[0] without ModuleList's indexing cost (per forward)
        w = m._parameters.get("V")
        return w if w is not None else m._buffers["values"]

    def _layer_input_size(self, layer: int) -> int:
        return self.input_size if layer == 0 else self.hidden_size * self.num_directions

    # every weight pair: (ih, hh) modules and the nn.LSTM names of their weights
    def _pairs(self):
        for layer in range(self.num_layers):
            for d in range(self.num_directions):
                sfx = f"_l{layer}" + ("_reverse" if d else "")
                i = layer * self.num_directions + d
                yield sfx, self.ih[i], self.hh[i]

    @property
    def n_params(self) -> int:
        """Stored weight values of every ``ih``/``hh`` matrix (biases not counted)."""
        return sum(m.n_params for m in list(self.ih) + list(self.hh))

    @property
    def dense_params(self) -> int:
        """Weight values of the equivalent ``nn.LSTM`` (biases not counted)."""
        return sum(m.in_features * m.out_features for m in list(self.ih) + list(self.hh))

    @property
    def compression(self) -> float:
        return self.dense_params / self.n_params

    def to_lstm(self) -> nn.LSTM:
        """The equivalent dense ``nn.LSTM`` (reconstructed weights)."""
        lstm = nn.LSTM(self.input_size, self.hidden_size, self.num_layers, bias=self.bias,
                       batch_first=self.batch_first, dropout=self.dropout, bidirectional=self.bidirectional)
        with torch.no_grad():
            for sfx, ih, hh in self._pairs():
                getattr(lstm, "weight_ih" + sfx).copy_(ih.to_dense())
                getattr(lstm, "weight_hh" + sfx).copy_(hh.to_dense())
                if self.bias:
                    getattr(lstm, "bias_ih" + sfx).copy_(ih.bias)
                    getattr(lstm, "bias_hh" + sfx).copy_(hh.bias)
        return lstm.to(next(self.parameters()).dtype)

    # -- the step -----------------------------------------------------------------------------

    #: the inference loop: "script" (TorchScript, no Python per step), "eager" (the same loop in Python),
    #: "plain" (the generic differentiable loop). Training (autograd on) and PackedSequence input always
    #: run "plain"; every engine gives the same numbers (tests/test_fastpaths.py).
    engine: str = "script"

    def _hh_gates(self, hh: nn.Module, h: torch.Tensor, add: torch.Tensor) -> torch.Tensor:
        return hh.gates(h, add)

    def _fast_loop(self, hh: nn.Module, h: torch.Tensor):
        """(loop function, its weight arguments) for inference, or None when autograd needs the plain loop."""
        return None

    def _run_direction(self, xp: torch.Tensor, hh: nn.Module, h: torch.Tensor, c: torch.Tensor,
                       reverse: bool, lengths: torch.Tensor | None):
        """The recurrent loop. xp: (T, G, B, H) input projections + biases; h, c: (B, H)."""
        if lengths is None and self.engine != "plain":
            fast = self._fast_loop(hh, h)
            if fast is not None:
                fn, args = fast
                if self.engine == "script":
                    fn = _scripted(fn)
                return fn(xp, *args, h, c, reverse)
        T = xp.shape[0]
        H = self.hidden_size
        out = xp.new_empty(T, h.shape[0], H)
        steps = range(T - 1, -1, -1) if reverse else range(T)
        for t in steps:
            h_new, c_new = _cell(self._hh_gates(hh, h, xp[t]), c)  # gates (4, B, H)
            if lengths is not None:
                live = (lengths > t).unsqueeze(1)  # (B, 1)
                h_new = torch.where(live, h_new, h)
                c_new = torch.where(live, c_new, c)
                out[t] = torch.where(live, h_new, torch.zeros_like(h_new))
            else:
                out[t] = h_new
            h, c = h_new, c_new
        return out, h, c

    def _project(self, ih: nn.Module, hh: nn.Module, x: torch.Tensor) -> torch.Tensor:
        """All time steps' input projections in one GEMM: (T, B, n) -> (T, G, B, H) (+ both biases)."""
        T, B, _ = x.shape
        xp = ih(x.reshape(T * B, -1))  # (T*B, 4H), includes b_ih
        if self.bias:
            xp = xp + hh.bias
        return xp.view(T, B, GATES, self.hidden_size).permute(0, 2, 1, 3).contiguous()

    # -- reconstructed: nn.LSTM's kernel on W_hat -----------------------------------------------

    def _template(self) -> nn.LSTM:
        """An ``nn.LSTM`` skeleton on the meta device (no memory) for ``torch.func.functional_call``."""
        t = self.__dict__.get("_lstm_template")
        if t is None:
            with torch.inference_mode(False):
                t = nn.LSTM(self.input_size, self.hidden_size, self.num_layers, bias=self.bias,
                            batch_first=self.batch_first, dropout=self.dropout, bidirectional=self.bidirectional,
                            device="meta")
            self.__dict__["_lstm_template"] = t  # not a submodule: no state_dict entries
        return t.train(self.training)

    def _dense_weights(self, differentiable: bool) -> dict:
        """nn.LSTM parameter name -> W_hat / bias (cached in eval mode when not differentiating)."""
        out = {}
        for sfx, ih, hh in self._pairs():
            for which, mod in (("ih", ih), ("hh", hh)):
                if differentiable:
                    out[f"weight_{which}{sfx}"] = mod.to_dense()
                else:
                    sources = tuple(mod.parameters()) + tuple(mod.buffers())
                    out[f"weight_{which}{sfx}"] = mod._cached("W", mod.to_dense, *sources)
                if self.bias:
                    out[f"bias_{which}{sfx}"] = mod.bias
        return out

    def _differentiating(self, input) -> bool:
        x = input.data if isinstance(input, PackedSequence) else input
        return torch.is_grad_enabled() and (x.requires_grad or any(p.requires_grad for p in self.parameters()))

    def _forward_fused(self, input: torch.Tensor, hx=None):
        """Inference on W_hat through torch's fused LSTM kernel (``_VF.lstm``, what ``nn.LSTM.forward``
        calls), with the cached flat weight list: no ``functional_call`` and no ``nn.LSTM`` wrapper, which
        cost about as much as the kernel itself on small LSTMs (``hl.engines`` picks this engine there)."""
        store = self.__dict__.setdefault("_inference_cache", {})
        mods = (*self.ih._modules.values(), *self.hh._modules.values())
        if store.get("dicts", (None,))[0] != mods:  # the matrices' parameter/buffer dicts, looked up once
            store["dicts"] = (mods, [d for m in mods for d in (m._parameters, m._buffers)])
        key = [(t.data_ptr(), -1 if t.is_inference() else t._version) for d in store["dicts"][1]
               for t in d.values() if t is not None]
        hit = store.get("flat")
        if hit is None or hit[0] != key:
            w = self._dense_weights(differentiable=False)
            names = [f"{kind}_{which}{sfx}" for sfx, _, _ in self._pairs() for kind in
                     (("weight", "bias") if self.bias else ("weight",)) for which in ("ih", "hh")]
            hit = store["flat"] = (key, [w[n] for n in names])
        batched = input.dim() == 3
        x = input if batched else input.unsqueeze(0 if self.batch_first else 1)
        LD, H = self.num_layers * self.num_directions, self.hidden_size
        if hx is None:
            B = x.shape[0 if self.batch_first else 1]
            h0 = c0 = x.new_zeros(LD, B, H)
        else:
            h0, c0 = hx if batched else (hx[0].unsqueeze(1), hx[1].unsqueeze(1))
        y, h, c = torch._VF.lstm(x, (h0, c0), hit[1], self.bias, self.num_layers, self.dropout, self.training,
                                 self.bidirectional, self.batch_first)
        if not batched:
            return y.squeeze(0 if self.batch_first else 1), (h.squeeze(1), c.squeeze(1))
        return y, (h, c)

    def forward(self, input, hx=None):
        self._check_input(input, hx)
        try:  # free unless a kernel fails: then _bad_input says why when it is the input's dtype or device
            if (self._mode == "reconstructed" and not isinstance(input, PackedSequence)
                    and not (torch.is_grad_enabled() and self._differentiating(input))):
                return self._forward_fused(input, hx)  # inference: the fused kernel on the cached W_hat
            diff = self._differentiating(input)
            if self._mode == "reconstructed" or (self._mode == "auto" and diff):
                from torch.func import functional_call

                args = (input,) if hx is None else (input, hx)
                return functional_call(self._template(), self._dense_weights(differentiable=diff), args)
            return self._forward_factorized(input, hx)
        except (RuntimeError, TypeError, ValueError, NotImplementedError):  # also a matrix's own message
            self._bad_input(input)
            raise

    def _bad_input(self, input) -> None:
        """After a failed forward: raise nn.LSTM's error for an input of another dtype (its ValueError, word for
        word, which the training path already gave through nn.LSTM) or a clear one for a meta-device input; else
        return (the caller re-raises the kernel's own error)."""
        x = input.data if isinstance(input, PackedSequence) else input
        w = self._weight()
        if x.dtype != w.dtype:
            raise ValueError(f"RNN input dtype ({x.dtype}) does not match weight dtype ({w.dtype}). Convert "
                             f"input: input.to({w.dtype}), or convert model: model.to({x.dtype})") from None
        if x.is_meta and not w.is_meta:
            raise ValueError(f"LSTM input is on the meta device (a shape without values); pass a tensor with "
                             f"values on the model's device {w.device}") from None

    def _check_input(self, input, hx) -> None:
        """nn.LSTM's input checks, with ValueError/TypeError messages that say what to pass."""
        if isinstance(input, PackedSequence):
            x, batched, B = input.data, True, int(input.batch_sizes[0])
        elif isinstance(input, torch.Tensor):
            x, batched = input, input.dim() == 3
            if input.dim() not in (2, 3):
                raise ValueError(f"LSTM: expected input to be 2-D or 3-D, got {input.dim()}-D shape "
                                 f"{tuple(input.shape)}")
            B = (input.shape[0] if self.batch_first else input.shape[1]) if batched else None
        else:
            raise TypeError(f"input must be a torch.Tensor or PackedSequence, got {type(input).__name__}")
        if x.shape[-1] != self.input_size:
            raise ValueError(f"input.size(-1) must be equal to input_size. Expected {self.input_size}, "
                             f"got {x.shape[-1]}")
        if hx is None:
            return
        if not (isinstance(hx, (tuple, list)) and len(hx) == 2 and all(isinstance(t, torch.Tensor) for t in hx)):
            raise TypeError(f"hx must be a tuple (h0, c0) of tensors, got {type(hx).__name__}")
        LD, H = self.num_layers * self.num_directions, self.hidden_size
        want = (LD, B, H) if batched else (LD, H)
        for name, t in zip(("h0", "c0"), hx):
            if tuple(t.shape) != want:
                raise ValueError(f"Expected hidden size {want}, got {tuple(t.shape)} for {name}")

    def _forward_factorized(self, input, hx=None):
        packed = isinstance(input, PackedSequence)
        lengths = None
        if packed:
            sorted_indices, unsorted_indices = input.sorted_indices, input.unsorted_indices
            x, lengths = pad_packed_sequence(input, batch_first=False)  # (T, B, n), original batch order
            batched = True
        else:
            batched = input.dim() == 3
            x = input if batched else input.unsqueeze(1)
            if batched and self.batch_first:
                x = x.transpose(0, 1)  # (T, B, n)
        T, B = x.shape[0], x.shape[1]
        L, Dn, H = self.num_layers, self.num_directions, self.hidden_size
        if hx is None:
            h0 = x.new_zeros(L * Dn, B, H)
            c0 = x.new_zeros(L * Dn, B, H)
        else:
            h0, c0 = hx  # in the caller's batch order, as for nn.LSTM (also for a PackedSequence); checked
            if not batched:
                h0, c0 = h0.unsqueeze(1), c0.unsqueeze(1)
        if lengths is not None:
            lengths = lengths.to(x.device)
        hs, cs = [], []
        layer_in = x
        for layer in range(L):
            outs = []
            for d in range(Dn):
                i = layer * Dn + d
                xin = layer_in
                xp = self._project(self.ih[i], self.hh[i], xin)
                out, h, c = self._run_direction(xp, self.hh[i], h0[i], c0[i], reverse=bool(d), lengths=lengths)
                outs.append(out)
                hs.append(h)
                cs.append(c)
            layer_in = outs[0] if Dn == 1 else torch.cat(outs, dim=2)
            if self.dropout and self.training and layer < L - 1:
                layer_in = nn.functional.dropout(layer_in, self.dropout, training=True)
        y = layer_in  # (T, B, Dn*H)
        h_n, c_n = torch.stack(hs), torch.stack(cs)
        if packed:
            y = pack_padded_sequence(y, lengths.cpu(), enforce_sorted=False)
            y = PackedSequence(y.data, y.batch_sizes, sorted_indices, unsorted_indices)
            return y, (h_n, c_n)
        if not batched:
            return y.squeeze(1), (h_n.squeeze(1), c_n.squeeze(1))
        if self.batch_first:
            y = y.transpose(0, 1)
        return y, (h_n, c_n)

    def extra_repr(self) -> str:
        s = f"{self.input_size}, {self.hidden_size}, num_layers={self.num_layers}"
        if not self.bias:
            s += ", bias=False"
        if self.batch_first:
            s += ", batch_first=True"
        if self.dropout:
            s += f", dropout={self.dropout}"
        if self.bidirectional:
            s += ", bidirectional=True"
        return s


# ================================================================================================
# HMF, LMF and pruned LSTMs
# ================================================================================================


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


class _GateLSTM(CompressedLSTM):
    """The LSTMs on gate-blocked HMF matrices (:class:`GateHMFLinear`, :class:`GateColLinear`): ``split`` and
    ``rank`` per matrix, and ``from_lstm``'s walk over the weights of an ``nn.LSTM``. A subclass's ``_blocks``
    makes the (ih, hh) pair of one layer and direction."""

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, bias: bool = True,
                 batch_first: bool = False, dropout: float = 0.0, bidirectional: bool = False, *,
                 split=0, rank=1, dtype=None, _build: bool = True):
        super().__init__(input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional)
        if _build:
            for layer in range(self.num_layers):
                for _ in range(self.num_directions):
                    ih, hh = self._blocks(self._layer_input_size(layer), hidden_size, split, rank, bias, dtype)
                    self.ih.append(ih)
                    self.hh.append(hh)

    def _each(self, name: str) -> tuple:
        """``name`` of every matrix: (ih_l0, hh_l0, ih_l0_reverse, ...)."""
        return tuple(getattr(m, name) for pair in zip(self.ih, self.hh) for m in pair)

    @property
    def rank(self) -> tuple:
        return self._each("rank")

    @classmethod
    def _compress(cls, lstm: nn.LSTM, block, config, compression, split, rank, heuristic, X, default=None):
        """Every W_ih / W_hh of ``lstm`` as ``block.from_weight`` at ``config((H, n), compression, split, rank)``
        (each option per matrix, :func:`_per_matrix`); a missing heuristic is ``default``."""
        _check_lstm(lstm)
        self = cls(lstm.input_size, lstm.hidden_size, lstm.num_layers, lstm.bias, lstm.batch_first,
                   lstm.dropout, lstm.bidirectional, _build=False)
        H = lstm.hidden_size
        for sfx in _suffixes(lstm):
            w_ih, w_hh, b_ih, b_hh = _lstm_weights(lstm, sfx)
            for which, W, b, mods in (("ih", w_ih, b_ih, self.ih), ("hh", w_hh, b_hh, self.hh)):
                k, r = config((H, W.shape[1]), _per_matrix(compression, sfx, which), _per_matrix(split, sfx, which),
                              _per_matrix(rank, sfx, which))
                h = _per_matrix(heuristic, sfx, which) if isinstance(heuristic, dict) else heuristic
                mods.append(block.from_weight(W, k, r, bias=b, heuristic=default if h is None else h,
                                              X=_per_matrix(X, sfx, which)))
        return self.train(lstm.training)


class HMFLSTM(_GateLSTM):
    """An LSTM whose W_ih and W_hh are :class:`GateHMFLinear` (HMF per gate block); trainable.

    Build it with :meth:`from_lstm`; the constructor makes a randomly initialised one.

    >>> import torch, hmf_lab as hl
    >>> m = hl.HMFLSTM(10, 8, split=2, rank=3, batch_first=True)
    >>> y, (h, c) = m(torch.randn(4, 7, 10))
    >>> tuple(y.shape), tuple(h.shape)
    ((4, 7, 8), (1, 4, 8))
    """

    @staticmethod
    def _blocks(n, hidden_size, split, rank, bias, dtype):
        return (GateHMFLinear(n, hidden_size, split, min(rank, n), bias=bias, dtype=dtype),
                GateHMFLinear(hidden_size, hidden_size, split, rank, bias=bias, dtype=dtype))

    def _fast_loop(self, hh, h):
        if not hh._fast_ok(h):
            return None
        DV, Ut = hh._packed()
        return _hmf_loop, (DV, Ut, hh.inverse, hh.split, not hh.is_top)

    @property
    def split(self) -> tuple:
        """Dense rows per gate of each matrix: (ih_l0, hh_l0, ih_l0_reverse, ...)."""
        return self._each("split")

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
        return cls._compress(lstm, GateHMFLinear, cls._config, compression, split, rank, heuristic, X, default="top")

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
    """Pruned LSTM for inference: W_ih, W_hh as CSR :class:`~hmf_lab.nn.layers.SparseLinear` (not trainable).

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
    def from_lstm(cls, lstm: nn.LSTM, compression=None, count: str = "budget"):
        """CSR copy of an ``nn.LSTM``: magnitude-pruned per matrix to ``compression`` (``hl.prune``), or,
        with ``compression=None``, the zeros already there (a :class:`PrunedLSTM` or masked weights) kept out."""
        _check_lstm(lstm)
        self = cls(lstm.input_size, lstm.hidden_size, lstm.num_layers, lstm.bias, lstm.batch_first,
                   lstm.dropout, lstm.bidirectional)
        for sfx in _suffixes(lstm):
            w_ih, w_hh, b_ih, b_hh = _lstm_weights(lstm, sfx)
            masks = _masks(lstm, sfx)
            for which, W, b, mods in (("ih", w_ih, b_ih, self.ih), ("hh", w_hh, b_hh, self.hh)):
                if compression is not None:  # pruning keeps the budget floor(H*n / c) per gate block
                    keep = prune_keep((lstm.hidden_size, W.shape[1]), _per_matrix(compression, sfx, which),
                                      blocks=GATES, count=count)
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
    def from_lstm(cls, lstm: nn.LSTM, compression, count: str = "budget") -> "PrunedLSTM":
        """Copy ``lstm`` and magnitude-prune each weight matrix to ``compression`` (``hl.prune``'s mask)."""
        _check_lstm(lstm)
        c = compression if isinstance(compression, dict) else check_compression(compression)  # or per matrix
        self = cls(lstm.input_size, lstm.hidden_size, lstm.num_layers, bias=lstm.bias,
                   batch_first=lstm.batch_first, dropout=lstm.dropout, bidirectional=lstm.bidirectional,
                   dtype=lstm.weight_ih_l0.dtype)
        self.load_state_dict(_plain_lstm_state(lstm))
        for sfx in _suffixes(lstm):
            for which in ("ih", "hh"):
                name = f"weight_{which}{sfx}"
                W = getattr(self, name).detach()
                keep = prune_keep((lstm.hidden_size, W.shape[1]), _per_matrix(c, sfx, which), blocks=GATES,
                                  count=count)  # the budget
                tprune.custom_from_mask(self, name, prune(W, nnz=keep).mask)
        return self.train(lstm.training)

    def _mask_names(self):
        return [n for n, _ in self.named_buffers() if n.endswith("_mask")]

    def _pruned_names(self) -> list[str]:
        """The weights that ``torch.nn.utils.prune`` recomputes (``<name>_orig * <name>_mask``) each forward."""
        return [h._tensor_name for h in self._forward_pre_hooks.values() if isinstance(h, tprune.BasePruningMethod)]

    def __getstate__(self):
        # After a forward each pruned weight is a non-leaf tensor (orig * mask), which copy.deepcopy refuses;
        # leave those out and recompute them from <name>_orig and <name>_mask on the way back in.
        state = dict(super().__getstate__())
        pruned = set(self._pruned_names())
        for name in pruned:
            state.pop(name, None)
        state["_flat_weights"] = [None if n in pruned else w
                                  for n, w in zip(state["_flat_weights_names"], state["_flat_weights"])]
        return state

    def __setstate__(self, state) -> None:
        super().__setstate__(state)
        for hook in list(self._forward_pre_hooks.values()):
            if isinstance(hook, tprune.BasePruningMethod):
                setattr(self, hook._tensor_name, hook.apply_mask(self))
        self._init_flat_weights()

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


# ================================================================================================
# column-split HMF per gate block (input columns dense, shared by the gates)
# ================================================================================================


class GateColLinear(_GateBlocks):
    """A (G*H, n) matrix in G gate blocks, each column-split HMF with the **same** ``split`` dense input columns.

    Every gate g: ``W_g = [D_g | U_g V_g] Q`` with D_g (H, k) = W_g[:, cols], U_g (H, r), V_g (r, n-k).
    The dense columns are chosen once for the stacked matrix (an input channel is loud for every gate or
    for none), so the input is split once: ``x[:, cols]`` feeds one (G*H, k) GEMM, ``x[:, rest]`` the V
    blocks. Stored values ``G * (H*k + H*r + r*(n-k))``. Parameters ``D`` (G, H, k), ``U`` (G, H, r),
    ``V`` (G, r, n-k), ``bias`` (G*H,); buffers ``cols`` (k,), ``rest`` (n-k,).

    >>> import torch, hmf_lab as hl
    >>> W = torch.randn(4 * 6, 10)
    >>> f = hl.nn.lstm.GateColLinear.from_weight(W, split=2, rank=2, bias=torch.randn(24))
    >>> x = torch.randn(3, 10)
    >>> torch.allclose(f(x), x @ f.to_dense().T + f.bias, atol=1e-5), f.n_params == 4 * (6*2 + 6*2 + 2*8)
    (True, True)
    """

    _split_note = " (columns)"

    def __init__(self, in_features: int, hidden_size: int, split: int, rank: int, bias: bool = True,
                 cols=None, gates: int = GATES, dtype=None):
        super().__init__()
        n, H, G, k, r = self._sizes(in_features, hidden_size, split, rank, gates, by_cols=True)
        self.D = nn.Parameter(torch.empty(G, H, k, dtype=dtype))  # (G, H, k)
        self.U = nn.Parameter(torch.empty(G, H, r, dtype=dtype))  # (G, H, r)
        self.V = nn.Parameter(torch.empty(G, r, n - k, dtype=dtype))  # (G, r, n-k)
        self.bias = nn.Parameter(torch.zeros(G * H, dtype=dtype)) if bias else None
        cols = torch.arange(k) if cols is None else torch.as_tensor(cols, dtype=torch.int64).reshape(-1)
        keep = torch.ones(n, dtype=torch.bool)
        keep[cols] = False
        if cols.numel() != k or int((~keep).sum()) != k:
            raise ValueError(f"cols must be {k} distinct column indices in [0, {n}), got {cols.tolist()[:16]}")
        self.register_buffer("cols", torch.sort(cols).values)
        self.register_buffer("rest", torch.nonzero(keep).reshape(-1))
        self._init_factors()

    def _refresh(self) -> None:
        self.clear_cache()

    @classmethod
    def from_weight(cls, W: torch.Tensor, split: int, rank: int, bias: torch.Tensor | None = None,
                    heuristic=None, gates: int = GATES, X=None) -> "GateColLinear":
        """Compress a (G*H, n) weight: columns chosen on the stacked W (``hl.select_cols``; default
        ``"col_norm"``, ``"activation"`` with X), then each gate's other columns fitted at ``rank``."""
        from hmf_lab.factor.core import hmf_cols
        from hmf_lab.factor.heuristics import default_heuristic, select_cols

        W, H, n, k, r = cls._gate_weight(W, split, rank, gates, by_cols=True)
        cols = select_cols(W, k, r, default_heuristic(heuristic, X, axis="cols"), X)
        fit = None
        if X is not None and not isinstance(heuristic, (list, tuple, torch.Tensor)):
            from hmf_lab.factor.heuristics import resolve_col_fit
            fit = resolve_col_fit(None, heuristic, X)
        fs = [hmf_cols(Wg, k, r, heuristic=cols, X=X, fit=fit) for Wg in W.split(H)]
        layer = cls(n, H, k, r, bias=bias is not None, cols=cols, gates=gates, dtype=W.dtype)
        return layer._load_fits(fs, bias)

    def to_dense(self) -> torch.Tensor:
        """The (G*H, n) reconstruction, gate blocks in order."""
        W = torch.cat([self.D, self.U @ self.V], dim=2)  # (G, H, n) in [cols | rest] order
        W = W[:, :, torch.argsort(torch.cat([self.cols, self.rest]))]
        return W.reshape(self.out_features, self.in_features)

    def gates(self, x2: torch.Tensor, add: torch.Tensor | None = None) -> torch.Tensor:
        """``add + [W_g x for each gate]`` in the gate-major (G, B, H) layout (no bias). ``x2``: (B, n)."""
        y = torch.matmul(x2[:, self.cols], self.D.transpose(1, 2))  # (G, B, H)
        if self.rank:
            t = torch.matmul(x2[:, self.rest], self.V.transpose(1, 2))  # (G, B, r)
            y = y + torch.bmm(t, self.U.transpose(1, 2))
        return y if add is None else y + add

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        lead = x.shape[:-1]
        x2 = x.reshape(-1, self.in_features)  # (B, n)
        y = self.gates(x2).transpose(0, 1).reshape(x2.shape[0], self.out_features)  # (B, G*H)
        if self.bias is not None:
            y = y + self.bias
        return y.reshape(*lead, self.out_features)


class HMFColLSTM(_GateLSTM):
    """An LSTM whose W_ih and W_hh are :class:`GateColLinear` (column-split HMF per gate, shared columns).

    Each gate block (H, n) gets ``choose_col_split_rank((H, n), compression, split, rank)``, so the LSTM is
    compressed ``compression``-fold like :class:`HMFLSTM`. Inference runs the plain per-step loop (no
    TorchScript loop for this structure yet) or, with ``mode="reconstructed"``, the fused kernel on W_hat.

    >>> import torch, hmf_lab as hl
    >>> lstm = torch.nn.LSTM(8, 16, batch_first=True)
    >>> same = hl.nn.lstm.HMFColLSTM.from_lstm(lstm, compression=1)   # every column dense: exact
    >>> x = torch.randn(2, 5, 8)
    >>> torch.allclose(same(x)[0], lstm(x)[0], atol=1e-5)
    True
    """

    @staticmethod
    def _blocks(n, hidden_size, split, rank, bias, dtype):
        return (GateColLinear(n, hidden_size, min(split, n), min(rank, hidden_size), bias=bias, dtype=dtype),
                GateColLinear(hidden_size, hidden_size, split, rank, bias=bias, dtype=dtype))

    @property
    def split(self) -> tuple:
        """Dense input columns of each matrix: (ih_l0, hh_l0, ...)."""
        return self._each("split")

    @classmethod
    def from_lstm(cls, lstm: nn.LSTM, compression=None, split=None, rank=None, heuristic=None, X=None):
        """Compress every W_ih / W_hh of a trained ``nn.LSTM``; options as :meth:`HMFLSTM.from_lstm`."""
        from hmf_lab.factor.budget import choose_col_split_rank

        return cls._compress(lstm, GateColLinear, choose_col_split_rank, compression, split, rank, heuristic, X)
