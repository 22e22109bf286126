"""The engine of every compressed LSTM: ``nn.LSTM``'s forward signature on per-layer ``ih``/``hh`` matrices.

:class:`CompressedLSTM` runs the recurrence on any matrices with ``to_dense()`` and a gate-major
``gates()`` (or a fast loop from :mod:`hmf_lab.lstm_engines`), or rebuilds W_hat and calls
``nn.LSTM``'s fused kernel. The concrete classes (:class:`~hmf_lab.lstm.HMFLSTM`, ...) live in
:mod:`hmf_lab.lstm`.

>>> import torch, hmf_lab as hl
>>> m = hl.HMFLSTM(3, 4)
>>> isinstance(m, hl.CompressedLSTM), m.mode
(True, 'auto')
"""
from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence, pad_packed_sequence

from ._validation import as_int
from .gate_hmf import GATES
from .lstm_engines import _cell, _scripted

__all__ = ["CompressedLSTM", "LSTM_MODES"]

LSTM_MODES = ("auto", "factorized", "reconstructed")


class CompressedLSTM(nn.Module):
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

    @property
    def mode(self) -> str:
        """``"auto"``, ``"factorized"`` or ``"reconstructed"`` (see the class docstring)."""
        return self._mode

    @mode.setter
    def mode(self, value: str) -> None:
        if value not in LSTM_MODES:
            raise ValueError(f"mode must be one of {LSTM_MODES}, got {value!r}")
        self._mode = value

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
        if (self._mode == "reconstructed" and not isinstance(input, PackedSequence)
                and not (torch.is_grad_enabled() and self._differentiating(input))):
            return self._forward_fused(input, hx)  # inference: the fused kernel on the cached W_hat
        diff = self._differentiating(input)
        if self._mode == "reconstructed" or (self._mode == "auto" and diff):
            from torch.func import functional_call

            args = (input,) if hx is None else (input, hx)
            return functional_call(self._template(), self._dense_weights(differentiable=diff), args)
        return self._forward_factorized(input, hx)

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
