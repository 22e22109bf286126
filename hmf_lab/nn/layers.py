"""Drop-in ``nn.Linear`` replacements: :class:`HMFLinear`, :class:`LMFLinear`, :class:`SparseLinear`.

Each is built from a trained ``nn.Linear`` with ``from_linear``; the bias is kept. ``state_dict``
round-trips exactly and loads with ``torch.load(weights_only=True)``.

Example
-------
>>> import torch, hmf_lab as hl
>>> lin = torch.nn.Linear(32, 24)
>>> h = hl.HMFLinear.from_linear(lin, split=4, rank=6)
>>> x = torch.randn(3, 32)
>>> torch.allclose(h(x), x @ h.to_dense().T + lin.bias, atol=1e-5)
True
"""
from __future__ import annotations

import torch
from torch import nn

from hmf_lab.factor._validation import as_int, check_rank, check_split
from hmf_lab.factor.budget import prune_keep
from hmf_lab.factor.core import hmf, hmf_cols, lmf, prune

__all__ = ["HMFLinear", "HMFColLinear", "LMFLinear", "SparseLinear"]


def _check_linear(linear) -> nn.Linear:
    if not isinstance(linear, nn.Linear):
        raise TypeError(f"linear must be a torch.nn.Linear, got {type(linear).__name__}")
    return linear


def _copy_bias(module: nn.Module, linear: nn.Linear) -> None:
    if linear.bias is not None:
        with torch.no_grad():
            module.bias.copy_(linear.bias)


MODES = ("factorized", "reconstructed")
SPARSE_MODES = ("csr", "reconstructed")  # SparseLinear: sparse kernel, or the masked dense weight


class _Modes:
    """The one ``mode`` property of the compressed modules: one of the class's ``MODES``, checked when set.

    ``HMFLinear``/``LMFLinear`` (:data:`MODES`), ``SparseLinear`` (:data:`SPARSE_MODES`) and the compressed
    LSTMs (``LSTM_MODES``) share it. Setting it drops the module's inference cache where it keeps one
    (``_clears_cache``): every mode gives the same numbers through a different kernel.
    """

    MODES: tuple[str, ...] = ()
    _clears_cache = True

    @property
    def mode(self) -> str:
        """The forward's implementation, one of the class's ``MODES`` (same numbers, different kernels)."""
        return self._mode

    @mode.setter
    def mode(self, value: str) -> None:
        if value not in self.MODES:
            raise ValueError(f"mode must be one of {self.MODES}, got {value!r}")
        self._mode = value
        if self._clears_cache:
            self.clear_cache()


def _differentiating(x: torch.Tensor, *params: torch.Tensor) -> bool:
    """True when autograd will record this forward (then the plain differentiable path runs)."""
    return torch.is_grad_enabled() and (x.requires_grad or any(p.requires_grad for p in params))


class _InferenceCache:
    """Inference weights (packed factors, W_hat, int32 CSR) cached on the module, in train and eval mode.

    Entries are keyed on the storage and version counter of the tensors they are built from, so optimizer
    steps, ``load_state_dict`` and ``copy_`` rebuild them, whatever ``module.training`` says: a layer runs
    at the same speed in ``train()`` and ``eval()`` mode whenever autograd is not recording (the
    differentiable path never reads the cache). ``train()``/``eval()`` and :meth:`clear_cache` drop the
    entries (call it after editing weights through ``.data``, which autograd's version counter does not
    see). The price: a packed copy of the factors (e.g. [V ; D]) sits beside the parameters once the layer
    has run without autograd; ``clear_cache()`` frees it.
    """

    def _cached(self, name: str, build, *sources: torch.Tensor, always: bool = False) -> torch.Tensor:
        # ``always`` is accepted for callers written when training mode skipped the cache (it no longer does)
        # the key: each source's version, then each source's storage, in one flat list (HMFLinear's batch-1
        # path writes the same list out inline, so both find the same entry)
        try:
            key = [t._version for t in sources]
        except RuntimeError:  # inference tensors carry no version counter
            key = [-1 if t.is_inference() else t._version for t in sources]
        key += [t.data_ptr() for t in sources]
        store = self.__dict__.get("_inference_cache")
        if store is None:
            store = self.__dict__["_inference_cache"] = {}
        hit = store.get(name)
        if hit is None or hit[0] != key:
            with torch.no_grad():
                hit = (key, build())
            store[name] = hit
        return hit[1]

    def clear_cache(self) -> None:
        """Drop the cached inference weights (they are rebuilt on the next forward without autograd)."""
        self.__dict__.pop("_inference_cache", None)

    def __getstate__(self):
        # pickle and copy.deepcopy leave the cache out: it is rebuilt on the next forward, and a cached
        # sparse CSR tensor cannot be deep-copied (torch: "Cannot access storage of SparseCsrTensorImpl")
        state = dict(super().__getstate__())
        state.pop("_inference_cache", None)
        return state

    def train(self, mode: bool = True):
        self.clear_cache()
        return super().train(mode)


def _bad_input(layer: nn.Module, x, dtype: torch.dtype) -> None:
    """Raise the error that says what is wrong with a layer's input ``x`` (called only when the cheap
    check in ``forward`` failed)."""
    n, name = layer.in_features, type(layer).__name__
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} input must be a torch.Tensor of shape (..., {n}), got {type(x).__name__}; "
                        f"convert it first, e.g. torch.as_tensor(x, dtype={dtype})")
    if x.dtype != dtype:
        raise TypeError(f"{name} input must have the layer's dtype {dtype}, got {x.dtype}; convert it first, "
                        f"e.g. x.to({dtype}) (or the layer with .to({x.dtype}) if it is floating)")
    if x.ndim == 0 or x.shape[-1] != n:
        raise ValueError(f"{name} input must have shape (..., {n}) (in_features={n}), got {tuple(x.shape)}")


def _bad_device(layer: nn.Module, x: torch.Tensor, weight: torch.Tensor) -> None:
    """After a kernel failed: raise the error that says the input and the layer sit on different devices
    (the meta device included), or return (the caller re-raises the kernel's own error). Called only from
    ``except`` blocks, so the forward pays nothing for it."""
    if not isinstance(x, torch.Tensor) or x.device == weight.device:
        return
    name = type(layer).__name__
    if x.device.type == "meta":
        raise ValueError(f"{name} input is on the meta device (a shape without values); pass a tensor with "
                         f"values on the layer's device {weight.device}, e.g. torch.randn(..., "
                         f"device='{weight.device}')") from None
    if weight.device.type == "meta":
        raise ValueError(f"{name} is on the meta device (a shape without values), its input on {x.device}; "
                         f"give the layer values first, e.g. layer.to_empty(device='{x.device}') then "
                         f"load_state_dict(...)") from None
    raise ValueError(f"{name} input is on {x.device}, the layer on {weight.device}; move one of them, "
                     f"e.g. x.to('{weight.device}') or layer.to('{x.device}')") from None


def _refresh_on_load(module: nn.Module, incompatible_keys) -> None:
    """``load_state_dict`` post hook (a module-level function, not a lambda, so the layer pickles)."""
    module._refresh_order()


def _batch1_shape(y: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """The (m,) result of a batch-1 forward in ``x``'s leading shape (cheapest op for the common shapes)."""
    d = x.ndim
    if d == 1:
        return y
    if d == 2:
        return y.unsqueeze(0)
    return y.view(*x.shape[:-1], y.shape[0])


class _StoredValues:
    """Size bookkeeping of the compressed layers: the weight values named in ``_stored`` (bias not counted,
    as for the dense layer's m*n), and the compression m*n / n_params."""

    _stored: tuple[str, ...] = ()

    @property
    def n_params(self) -> int:
        """Stored weight values (bias not counted)."""
        return sum(getattr(self, name).numel() for name in self._stored)

    @property
    def compression(self) -> float:
        return self.in_features * self.out_features / self.n_params


class _ModeSwitch(_Modes, _InferenceCache):
    """The factorized layers' forward switch: ``"factorized"`` (thin GEMMs) or ``"reconstructed"`` (W_hat)."""

    MODES = MODES

    @property
    def weight(self) -> torch.Tensor:
        """The reconstructed dense W_hat (m, n), for code that reads ``layer.weight`` (``nn.MultiheadAttention``
        reads ``out_proj.weight``, tied or hand-written layers read theirs): read-only, rebuilt at each read
        (``to_dense()``; differentiable, gradients reach the factors). The numbers are right; the compression
        is not used on that path (it forms the full m x n matrix). To keep such a layer dense instead, leave it
        out of ``hl.compress(..., layers=[...])``.

        >>> import torch, hmf_lab as hl
        >>> f = hl.HMFLinear.from_linear(torch.nn.Linear(6, 4), split=1, rank=2)
        >>> torch.equal(f.weight, f.to_dense()), f.weight.requires_grad
        (True, True)
        """
        return self.to_dense()

    @weight.setter
    def weight(self, value) -> None:
        raise AttributeError(f"{type(self).__name__}.weight is read-only: it is the W_hat reconstructed from the "
                             f"factors (to_dense()); change the factors, or keep this layer a dense nn.Linear by "
                             f"leaving it out of hl.compress(..., layers=[...])")


def _check_rows(rows, m: int, k: int) -> torch.Tensor:
    """``rows`` as a (k,) int64 tensor of distinct indices in [0, m), or raise (nothing cast or clipped)."""
    if rows is None:
        return torch.arange(k)
    if isinstance(rows, torch.Tensor):
        t = rows.detach()
    else:
        try:
            t = torch.as_tensor(rows)
        except (TypeError, ValueError, RuntimeError) as e:
            raise TypeError(f"rows must be a sequence of {k} distinct int row indices in [0, {m}), "
                            f"got {type(rows).__name__} ({e})") from None
    if t.numel() == 0 and not isinstance(rows, torch.Tensor):
        t = t.to(torch.int64)  # an empty list (split 0) has no dtype to check
    if t.dtype == torch.bool or t.is_floating_point() or t.is_complex():
        raise TypeError(f"rows must hold integer row indices, got dtype {t.dtype} ({t.reshape(-1)[:4].tolist()}...); "
                        "pass ints, e.g. rows=[0, 5, 9]")
    t = t.to(torch.int64).cpu()
    if tuple(t.shape) != (k,):
        raise ValueError(f"rows must have shape ({k},) for split {k}, got {tuple(t.shape)}")
    if k and (int(t.min()) < 0 or int(t.max()) >= m):
        raise ValueError(f"rows must be row indices in [0, m)=[0, {m}), got min {int(t.min())}, max {int(t.max())}")
    if torch.unique(t).numel() != k:
        raise ValueError(f"rows must be distinct, got repeated indices in {t.tolist()[:16]}")
    return t


class _HybridLinear(_ModeSwitch, _StoredValues, nn.Module):
    """What :class:`HMFLinear` (dense rows) and :class:`HMFColLinear` (dense columns) share: the size checks,
    the init, the copy of a fitted result and ``extra_repr``. Each owns its layout, buffers and forward."""

    _stored = ("dense", "U", "V")  # n_params counts these
    _split_note = ""  # extra_repr's note after split

    def _sizes(self, in_features, out_features, split, rank, by_cols: bool):
        """Check and set the sizes; ``by_cols``: ``split`` counts input columns (else output rows)."""
        n, m = as_int(in_features, "in_features"), as_int(out_features, "out_features")
        if n < 1 or m < 1:
            raise ValueError(f"in_features and out_features must be >= 1, got {n} and {m}")
        if by_cols:
            k = check_split(split, n)
            r = check_rank(rank, n, m, k)
        else:
            k = check_split(split, m)
            r = check_rank(rank, m, n, k)
        self.in_features, self.out_features, self.split, self.rank = n, m, k, r
        return n, m, k, r

    def reset_parameters(self) -> None:
        for p in (self.dense, self.U, self.V):
            if p.numel():
                nn.init.kaiming_uniform_(p, a=5 ** 0.5)

    def _load_result(self, f, bias):
        """Copy a fitted result's ``dense``, ``U``, ``V`` (and the bias) into this layer."""
        with torch.no_grad():
            self.dense.copy_(f.dense)
            self.U.copy_(f.U)
            self.V.copy_(f.V)
            if bias is not None:
                self.bias.copy_(bias)
        return self

    def extra_repr(self) -> str:
        return (f"in_features={self.in_features}, out_features={self.out_features}, split={self.split}"
                f"{self._split_note}, rank={self.rank}, bias={self.bias is not None}")


class HMFLinear(_HybridLinear):
    """``y = x @ W_hat.T + b`` with ``W_hat = P [D ; U V]``: ``dense`` (D), ``U``, ``V`` trainable ``nn.Parameter``s.

    The names follow :class:`~hmf_lab.factor.core.HMFResult`: ``dense`` (k, n) are the rows kept exactly
    (``D`` is an alias), ``U`` (m-k, r) and ``V`` (r, n) the factorization of the others. ``rows`` (buffer)
    are the output positions of the dense rows; ``inverse`` (buffer) maps ``[D ; U V]`` order back to the
    output order. ``mode`` switches the forward: ``"factorized"`` (default: one matrix-vector pass over
    the stacked [V ; D], one over U, no W_hat) or ``"reconstructed"`` (a dense GEMM with W_hat, cached),
    as in tensorly-torch; ``hmf-lab bench`` shows when each wins. Both give the same numbers. Without
    autograd recording, train and eval mode run the same cached kernels.

    >>> import torch, hmf_lab as hl
    >>> layer = hl.HMFLinear(in_features=16, out_features=8, split=2, rank=3)
    >>> tuple(layer.dense.shape), tuple(layer.U.shape), tuple(layer.V.shape), layer.n_params
    ((2, 16), (6, 3), (3, 16), 98)
    """

    def __init__(self, in_features: int, out_features: int, split: int, rank: int, bias: bool = True,
                 rows=None, dtype=None):
        super().__init__()
        n, m, k, r = self._sizes(in_features, out_features, split, rank, by_cols=False)
        kw = {"dtype": dtype}
        self.dense = nn.Parameter(torch.empty(k, n, **kw))  # (k, n): D
        self.U = nn.Parameter(torch.empty(m - k, r, **kw))  # (m-k, r)
        self.V = nn.Parameter(torch.empty(r, n, **kw))  # (r, n)
        self.bias = nn.Parameter(torch.zeros(m, **kw)) if bias else None
        rows = _check_rows(rows, m, k)
        keep = torch.ones(m, dtype=torch.bool)
        keep[rows] = False
        # output position of each [D-rows ; UV-rows] entry; identity when the dense rows are the top k
        order = torch.cat([rows, torch.nonzero(keep).reshape(-1)])
        self.register_buffer("rows", rows)
        self.register_buffer("inverse", torch.argsort(order))
        self.mode = "factorized"
        self._refresh_order()
        self.register_load_state_dict_post_hook(_refresh_on_load)
        self.reset_parameters()

    # ``D``: the older name of ``dense`` (state dicts saved with a "D" key still load)
    @property
    def D(self) -> nn.Parameter:
        """Alias of :attr:`dense` (the k dense rows, (k, n))."""
        return self.dense

    def _load_from_state_dict(self, state_dict, prefix, *args, **kw):
        if prefix + "D" in state_dict and prefix + "dense" not in state_dict:
            state_dict[prefix + "dense"] = state_dict.pop(prefix + "D")
        super()._load_from_state_dict(state_dict, prefix, *args, **kw)

    def _refresh_order(self) -> None:
        # cached Python bool so forward skips the output permutation when rows are the top k
        self._is_top = bool(torch.equal(self.inverse, torch.arange(self.out_features, device=self.inverse.device)))
        self.clear_cache()

    @property
    def is_top(self) -> bool:
        """True when the dense rows are the first k (no output permutation)."""
        return self._is_top

    @classmethod
    def from_result(cls, f, bias: torch.Tensor | None = None) -> "HMFLinear":
        """Build the layer from an :class:`~hmf_lab.factor.core.HMFResult` (and an optional bias (m,))."""
        m, n = f.shape
        layer = cls(n, m, f.split, f.rank, bias=bias is not None, rows=f.rows, dtype=f.V.dtype)
        return layer._load_result(f, bias)

    @classmethod
    def from_linear(cls, linear: nn.Linear, split: int, rank: int, heuristic="top", X=None) -> "HMFLinear":
        """Compress a trained ``nn.Linear``: ``hl.hmf(linear.weight, split, rank, heuristic, X)``."""
        _check_linear(linear)
        f = hmf(linear.weight.detach(), split, rank, heuristic=heuristic, X=X)
        return cls.from_result(f, None if linear.bias is None else linear.bias.detach())

    def to_dense(self) -> torch.Tensor:
        """The (m, n) reconstruction ``W_hat``."""
        W = torch.cat([self.dense, self.U @ self.V], dim=0)  # (m, n) in [D ; UV] order
        return W[self.inverse]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        p = self._parameters  # direct dict access: this runs per token, keep it lean
        V = p["V"]
        # cheap check first (one attribute compare each); the full one only when it fails or x is a subclass
        if type(x) is not torch.Tensor or x.dtype is not V.dtype or not x.ndim or x.shape[-1] != self.in_features:
            if not isinstance(x, torch.Tensor) or x.dtype != V.dtype or x.shape[-1:] != V.shape[1:]:
                _bad_input(self, x, V.dtype)
        try:  # free unless a kernel fails (then: input and layer on different devices, meta included?)
            if torch.is_grad_enabled() and (x.requires_grad or V.requires_grad or p["U"].requires_grad
                                            or p["dense"].requires_grad):
                if self._mode == "reconstructed":
                    return nn.functional.linear(x, self.to_dense(), self.bias)
                return self._forward_plain(x)
            if self._mode == "reconstructed":
                return nn.functional.linear(x, self._cached("W", self.to_dense, p["dense"], p["U"], V),
                                            p.get("bias"))
            return self._forward_fast(x)
        except (RuntimeError, NotImplementedError):
            _bad_device(self, x, V)
            raise

    def _forward_plain(self, x: torch.Tensor) -> torch.Tensor:
        """The reference path (autograd): three GEMMs and a concatenation."""
        top = x @ self.dense.T  # (..., k)
        low = (x @ self.V.T) @ self.U.T  # (..., r) -> (..., m-k)
        y = torch.cat([top, low], dim=-1)
        if not self._is_top:
            y = y[..., self.inverse]
        return y if self.bias is None else y + self.bias

    def _pack(self):
        """(VD, b_vd, b_low): the stacked [V ; D] (r+k, n), its bias ([0 ; b_D], (r+k,)) and the U rows' bias
        (m-k,), with the bias in [D ; UV] order (so a permuted layer adds it before the row order is undone)."""
        p = self._parameters
        D, V, bias = p["dense"], p["V"], p.get("bias")
        VD = torch.cat([V, D]).contiguous()  # (r+k, n)
        if bias is None:
            return VD, None, None
        b = bias[self.inverse.argsort()] if not self._is_top else bias  # [D ; UV] order
        k, r = self.split, self.rank
        b_vd = torch.cat([b.new_zeros(r), b[:k]])  # (r+k,)
        return VD, b_vd, b[k:].contiguous()

    def _forward_fast(self, x: torch.Tensor) -> torch.Tensor:
        """Inference without autograd: x reads the stacked [V ; D] (r+k, n) in one pass (bias of the dense
        rows fused), then U (m-k, r) in one more (its bias fused). At batch 1 both are matrix-vector kernels
        and one concatenation assembles the output (cheaper here than writing both into slices of one buffer
        with ``out=``, measured: benchmarks/layer_overhead.py); a permuted layer pays one more index op. The
        packed factors are cached (see :class:`_InferenceCache`)."""
        p = self._parameters
        D, U, V, bias = p["dense"], p["U"], p["V"], p.get("bias")
        store = self.__dict__.get("_inference_cache")
        hit = None if store is None else store.get("pack")
        try:  # _cached's key written out for this layer (it runs per token; the generic call costs ~0.5 µs more)
            key = ([D._version, U._version, V._version, D.data_ptr(), U.data_ptr(), V.data_ptr()] if bias is None
                   else [D._version, U._version, V._version, bias._version,
                         D.data_ptr(), U.data_ptr(), V.data_ptr(), bias.data_ptr()])
        except RuntimeError:  # inference tensors carry no version counter: _cached handles them
            key = None
        if hit is not None and hit[0] == key:
            VD, b_vd, b_low = hit[1]
        else:  # first call, stale entry, or inference tensors
            VD, b_vd, b_low = self._cached("pack", self._pack, D, U, V, *(() if bias is None else (bias,)))
        k, r, m, n = self.split, self.rank, self.out_features, self.in_features
        if x.numel() == n:  # batch 1 (any leading shape of ones)
            xv = x.reshape(n)  # a view when x is contiguous (as cheap as .view)
            t = torch.mv(VD, xv) if b_vd is None else torch.addmv(b_vd, VD, xv)  # [V x (r) ; D x + b_D (k)]
            if not r:
                y = t  # k = m: every row dense
            else:
                low = torch.mv(U, t[:r]) if b_low is None else torch.addmv(b_low, U, t[:r])  # U V x + b_U
                if self._is_top:
                    y = torch.cat((t[r:], low)) if k else low  # [D x + b_D ; U V x + b_U]
                else:
                    y = torch.cat((t, low))  # [V x ; D x + b_D ; U V x + b_U]
            if not self._is_top:  # one index op drops V x and undoes the row order
                y = y.index_select(0, self._cached("inv", lambda: self.inverse + r, self.inverse))
            return _batch1_shape(y, x)
        lead = x.shape[:-1]
        x2 = x.reshape(-1, n)  # (B, n)
        t = x2 @ VD.T if b_vd is None else torch.addmm(b_vd, x2, VD.T)  # (B, r+k)
        if r == 0:
            y = t
        else:
            low = t[:, :r] @ U.T if b_low is None else torch.addmm(b_low, t[:, :r], U.T)  # (B, m-k)
            y = low if k == 0 else torch.cat([t[:, r:], low], dim=1)  # (B, m) in [D ; UV] order
        if not self._is_top:
            y = y.index_select(1, self.inverse)
        return y.reshape(*lead, m)


class HMFColLinear(_HybridLinear):
    """``y = x @ W_hat.T + b`` with the column split ``W_hat = [D | U V] Q``: k input columns kept dense.

    Trainable ``nn.Parameter``s ``dense`` D (m, k), ``U`` (m, r), ``V`` (r, n-k); buffers ``cols`` (k,) (the
    dense input columns, sorted) and ``rest`` (n-k,) (the factorized ones). Forward
    ``y = x[..., cols] @ D.T + (x[..., rest] @ V.T) @ U.T + b``: three thin GEMMs, W_hat never formed
    (``mode="reconstructed"``: one GEMM with the cached W_hat). Built by :meth:`from_linear`
    (``hl.hmf_cols``); ``state_dict`` round-trips (the column choice is in the buffers).

    >>> import torch, hmf_lab as hl
    >>> layer = hl.HMFColLinear(in_features=16, out_features=8, split=2, rank=3)
    >>> tuple(layer.dense.shape), tuple(layer.U.shape), tuple(layer.V.shape), layer.n_params
    ((8, 2), (8, 3), (3, 14), 82)
    """

    _split_note = " (columns)"

    def __init__(self, in_features: int, out_features: int, split: int, rank: int, bias: bool = True,
                 cols=None, dtype=None):
        super().__init__()
        n, m, k, r = self._sizes(in_features, out_features, split, rank, by_cols=True)
        kw = {"dtype": dtype}
        self.dense = nn.Parameter(torch.empty(m, k, **kw))  # (m, k): D
        self.U = nn.Parameter(torch.empty(m, r, **kw))  # (m, r)
        self.V = nn.Parameter(torch.empty(r, n - k, **kw))  # (r, n-k)
        self.bias = nn.Parameter(torch.zeros(m, **kw)) if bias else None
        cols = _check_rows(cols, n, k)
        keep = torch.ones(n, dtype=torch.bool)
        keep[cols] = False
        self.register_buffer("cols", torch.sort(cols).values)
        self.register_buffer("rest", torch.nonzero(keep).reshape(-1))
        self.mode = "factorized"
        self.register_load_state_dict_post_hook(_refresh_on_load)
        self.reset_parameters()

    @property
    def D(self) -> nn.Parameter:
        """Alias of :attr:`dense` (the k dense columns, (m, k)), as for :class:`HMFLinear`."""
        return self.dense

    def _refresh_order(self) -> None:
        self.clear_cache()

    @classmethod
    def from_result(cls, f, bias: torch.Tensor | None = None) -> "HMFColLinear":
        """Build the layer from an :class:`~hmf_lab.factor.core.HMFColResult` (and an optional bias (m,))."""
        m, n = f.shape
        layer = cls(n, m, f.split, f.rank, bias=bias is not None, cols=f.cols, dtype=f.V.dtype)
        return layer._load_result(f, bias)

    @classmethod
    def from_linear(cls, linear: nn.Linear, split: int, rank: int, heuristic="col_norm", X=None) -> "HMFColLinear":
        """Compress a trained ``nn.Linear``: ``hl.hmf_cols(linear.weight, split, rank, heuristic, X)``."""
        _check_linear(linear)
        f = hmf_cols(linear.weight.detach(), split, rank, heuristic=heuristic, X=X)
        return cls.from_result(f, None if linear.bias is None else linear.bias.detach())

    def to_dense(self) -> torch.Tensor:
        """The (m, n) reconstruction ``W_hat``."""
        W = torch.cat([self.dense, self.U @ self.V], dim=1)  # (m, n) in [cols | rest] order
        return W[:, torch.argsort(torch.cat([self.cols, self.rest]))]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        p = self._parameters
        D, U, V, bias = p["dense"], p["U"], p["V"], p.get("bias")
        if not isinstance(x, torch.Tensor) or x.dtype != V.dtype or not x.ndim or x.shape[-1] != self.in_features:
            _bad_input(self, x, V.dtype)
        try:
            if self._mode == "reconstructed":
                W = self.to_dense() if _differentiating(x, D, U, V) else self._cached("W", self.to_dense, D, U, V)
                return nn.functional.linear(x, W, bias)
            if _differentiating(x, D, U, V, *(() if bias is None else (bias,))):
                y = x[..., self.cols] @ D.T  # (..., m)
                if self.rank:
                    y = y + (x[..., self.rest] @ V.T) @ U.T
                return y if bias is None else y + bias
            return self._forward_fast(x)
        except (RuntimeError, NotImplementedError):
            _bad_device(self, x, V)
            raise

    def _forward_fast(self, x: torch.Tensor) -> torch.Tensor:
        """Inference without autograd: ``addmm(b, x[:, cols], D.T)`` then ``addmm(., x[:, rest] V.T, U.T)``."""
        p = self._parameters
        D, U, V, bias = p["dense"], p["U"], p["V"], p.get("bias")
        m, n = self.out_features, self.in_features
        lead = x.shape[:-1]
        x2 = x.reshape(-1, n)  # (B, n)
        xc = x2.index_select(1, self.cols)  # (B, k)
        y = xc @ D.T if bias is None else torch.addmm(bias, xc, D.T)  # (B, m)
        if self.rank:
            t = x2.index_select(1, self.rest) @ V.T  # (B, r)
            y = torch.addmm(y, t, U.T)
        return y.reshape(*lead, m)


class LMFLinear(_ModeSwitch, _StoredValues, nn.Module):
    """``y = (x @ V.T) @ U.T + b``: rank-r factorization with trainable U (m, r) and V (r, n).

    ``mode``: ``"factorized"`` (two thin GEMMs, default) or ``"reconstructed"`` (one GEMM with U V).

    >>> import torch, hmf_lab as hl
    >>> f = hl.LMFLinear.from_linear(torch.nn.Linear(16, 12), rank=4)
    >>> x = torch.randn(2, 16)
    >>> y = f(x); f.mode = "reconstructed"
    >>> torch.allclose(f(x), y, atol=1e-5)
    True
    """

    _stored = ("U", "V")  # n_params counts these

    def __init__(self, in_features: int, out_features: int, rank: int, bias: bool = True, dtype=None):
        super().__init__()
        n, m = as_int(in_features, "in_features"), as_int(out_features, "out_features")
        if n < 1 or m < 1:
            raise ValueError(f"in_features and out_features must be >= 1, got {n} and {m}")
        r = check_rank(rank, m, n, 0)
        self.in_features, self.out_features, self.rank = n, m, r
        self.U = nn.Parameter(torch.empty(m, r, dtype=dtype))
        self.V = nn.Parameter(torch.empty(r, n, dtype=dtype))
        self.bias = nn.Parameter(torch.zeros(m, dtype=dtype)) if bias else None
        nn.init.kaiming_uniform_(self.U, a=5 ** 0.5)
        nn.init.kaiming_uniform_(self.V, a=5 ** 0.5)
        self.mode = "factorized"

    @classmethod
    def from_linear(cls, linear: nn.Linear, rank: int) -> "LMFLinear":
        _check_linear(linear)
        return cls._from_fit(linear, lmf(linear.weight.detach(), rank))

    @classmethod
    def _from_fit(cls, linear: nn.Linear, f) -> "LMFLinear":
        """The layer holding the factors ``f`` (an :class:`~hmf_lab.factor.core.LMFResult`) of ``linear``, with its
        bias."""
        layer = cls(linear.in_features, linear.out_features, f.rank, bias=linear.bias is not None,
                    dtype=linear.weight.dtype)
        with torch.no_grad():
            layer.U.copy_(f.U)
            layer.V.copy_(f.V)
        _copy_bias(layer, linear)
        return layer

    def to_dense(self) -> torch.Tensor:
        return self.U @ self.V

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        p = self._parameters  # direct dict access: this runs per token, keep it lean
        U, V, bias = p["U"], p["V"], p.get("bias")
        if type(x) is not torch.Tensor or x.dtype is not V.dtype or not x.ndim or x.shape[-1] != self.in_features:
            if not isinstance(x, torch.Tensor) or x.dtype != V.dtype or x.shape[-1:] != V.shape[1:]:
                _bad_input(self, x, V.dtype)
        try:  # free unless a kernel fails (then: input and layer on different devices, meta included?)
            if self._mode == "reconstructed":
                diff = _differentiating(x, U, V)
                W = self.to_dense() if diff else self._cached("W", self.to_dense, U, V)
                return nn.functional.linear(x, W, bias)
            n = self.in_features
            if x.numel() == n:  # batch 1: two matrix-vector kernels (differentiable too)
                t = torch.mv(V, x.reshape(n))  # (r,); reshape is a view when x is contiguous
                y = torch.mv(U, t) if bias is None else torch.addmv(bias, U, t)  # (m,), bias fused
                return _batch1_shape(y, x)
            if bias is not None and x.ndim == 2:
                return torch.addmm(bias, x @ V.T, U.T)  # bias fused into the second GEMM
            y = (x @ V.T) @ U.T  # (..., r) -> (..., m)
            return y if bias is None else y + bias
        except (RuntimeError, NotImplementedError):
            _bad_device(self, x, V)
            raise

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, rank={self.rank}"


class _CSRBuffers:
    """A sparse weight part held as CSR buffers ``crow_indices``, ``col_indices``, ``values`` (plain dense
    tensors, so ``state_dict`` loads with ``weights_only=True``): their registration, ``nnz``, the copy of a CSR
    tensor into them and their dense (m, n) form. Shared by :class:`SparseLinear` and the OATS layer."""

    @staticmethod
    def _csr_sizes(in_features, out_features, nnz, least: int) -> tuple[int, int, int]:
        """Checked ``(n, m, nnz)``: both sizes >= 1, ``nnz`` in ``[least, m*n]``."""
        n, m = as_int(in_features, "in_features"), as_int(out_features, "out_features")
        nnz = as_int(nnz, "nnz")
        if n < 1 or m < 1:
            raise ValueError(f"in_features and out_features must be >= 1, got {n} and {m}")
        if not least <= nnz <= m * n:
            raise ValueError(f"nnz must be an int in [{least}, m*n]=[{least}, {m * n}], got {nnz}")
        return n, m, nnz

    def _register_csr(self, m: int, nnz: int, dtype) -> None:
        self.register_buffer("crow_indices", torch.zeros(m + 1, dtype=torch.int64))
        self.register_buffer("col_indices", torch.zeros(nnz, dtype=torch.int64))
        self.register_buffer("values", torch.zeros(nnz, dtype=dtype))

    @property
    def nnz(self) -> int:
        return self.values.numel()

    def _load_csr(self, S: torch.Tensor) -> None:
        """Copy the arrays of a sparse CSR tensor ``S`` (this layer's shape and nnz) into the buffers."""
        with torch.no_grad():
            self.crow_indices.copy_(S.crow_indices())
            self.col_indices.copy_(S.col_indices())
            self.values.copy_(S.values())

    def _csr_dense(self) -> torch.Tensor:
        """The (m, n) dense form, zeros off the pattern (built by indexing: the CSR tensor's own ``to_dense``
        bumps the buffers' version counters, which would defeat the inference cache)."""
        m, n = self.out_features, self.in_features
        rows = torch.repeat_interleave(torch.arange(m, device=self.values.device), self.crow_indices.diff())
        W = self.values.new_zeros(m, n)
        W[rows, self.col_indices] = self.values
        return W


class SparseLinear(_Modes, _InferenceCache, _CSRBuffers, _StoredValues, nn.Module):
    """Magnitude-pruned linear layer run with torch's sparse CSR kernel (inference).

    The CSR arrays are buffers (``crow_indices``, ``col_indices``, ``values``) so ``state_dict`` holds
    plain dense tensors and loads with ``weights_only=True``.
    """

    _stored = ("values",)  # n_params counts these
    #: ``mode``: ``"csr"`` (sparse kernel, default) or ``"reconstructed"`` (the masked dense weight, cached,
    #: through ``F.linear``): same numbers; :mod:`hmf_lab.perf.engines` picks the faster one by measuring
    MODES = SPARSE_MODES
    _mode = "csr"

    def __init__(self, in_features: int, out_features: int, nnz: int, bias: bool = True, dtype=None):
        super().__init__()
        n, m, nnz = self._csr_sizes(in_features, out_features, nnz, least=1)
        self.in_features, self.out_features = n, m
        self._register_csr(m, nnz, dtype)
        self.bias = nn.Parameter(torch.zeros(m, dtype=dtype)) if bias else None

    @classmethod
    def from_linear(cls, linear: nn.Linear, compression: float, count: str = "budget") -> "SparseLinear":
        """Keep the largest-magnitude weights (``hl.prune``): exactly the value budget
        ``floor(m*n / compression)`` (``count="budget"``, what compression means everywhere, as in
        ``hl.prune``, ``hl.compress`` and ``SparseLSTM``), or LMF's count there (``count="lmf"``, an explicit
        equal-size option); see ``hl.factor.budget.prune_keep``.

        >>> import torch, hmf_lab as hl
        >>> lin = torch.nn.Linear(20, 16)
        >>> hl.SparseLinear.from_linear(lin, 4).nnz, hl.SparseLinear.from_linear(lin, 4, count="lmf").nnz
        (80, 72)
        """
        _check_linear(linear)
        W = linear.weight.detach()
        p = prune(W, nnz=prune_keep(tuple(W.shape), compression, count=count))
        return cls.from_csr(p.weight, None if linear.bias is None else linear.bias.detach())

    @classmethod
    def from_csr(cls, weight: torch.Tensor, bias: torch.Tensor | None = None) -> "SparseLinear":
        m, n = weight.shape
        layer = cls(n, m, weight.values().numel(), bias=bias is not None, dtype=weight.values().dtype)
        layer._load_csr(weight)
        if bias is not None:
            with torch.no_grad():
                layer.bias.copy_(bias)
        return layer

    @property
    def weight(self) -> torch.Tensor:
        """The (m, n) sparse CSR weight (a view on the buffers, no copy)."""
        return torch.sparse_csr_tensor(self.crow_indices, self.col_indices, self.values,
                                       (self.out_features, self.in_features), check_invariants=False)

    def to_dense(self) -> torch.Tensor:
        """The (m, n) dense weight, zeros where pruned (built by indexing: the CSR tensor's own ``to_dense``
        bumps the buffers' version counters, which would defeat the inference cache)."""
        return self._csr_dense()

    @classmethod
    def from_dense(cls, weight: torch.Tensor, bias: torch.Tensor | None = None, mask=None) -> "SparseLinear":
        """CSR copy of a dense (m, n) ``weight``: the entries where ``mask`` is True (default: the non-zeros)."""
        W = weight.detach()
        mask = (W != 0) if mask is None else torch.as_tensor(mask, dtype=torch.bool)
        if mask.shape != W.shape:
            raise ValueError(f"mask must have the shape of weight {tuple(W.shape)}, got {tuple(mask.shape)}")
        if not bool(mask.any()):
            raise ValueError("mask keeps no entry of weight; a SparseLinear needs at least one stored value")
        m, n = W.shape
        idx = mask.nonzero()  # row-major order: what CSR needs
        crow = torch.zeros(m + 1, dtype=torch.int64)
        crow[1:] = torch.cumsum(mask.sum(1), 0)
        layer = cls(n, m, idx.shape[0], bias=bias is not None, dtype=W.dtype)
        with torch.no_grad():
            layer.crow_indices.copy_(crow)
            layer.col_indices.copy_(idx[:, 1])
            layer.values.copy_(W[mask])
            if bias is not None:
                layer.bias.copy_(bias)
        return layer

    def _csr32(self) -> torch.Tensor:
        """The weight as CSR with int32 indices, cached: MKL's sparse kernels take int32 (int64 indices are
        converted on every call). Rebuilt when a buffer changes, e.g. after ``load_state_dict``."""
        def build():
            itype = torch.int32 if self.nnz < 2**31 - 1 else torch.int64
            return torch.sparse_csr_tensor(self.crow_indices.to(itype), self.col_indices.to(itype), self.values,
                                           (self.out_features, self.in_features), check_invariants=False)

        return self._cached("csr32", build, self.crow_indices, self.col_indices, self.values, always=True)

    def matmul(self, x2: torch.Tensor) -> torch.Tensor:
        """``x2 @ W.T`` (no bias) for x2 (B, n), with the fastest CSR path: ``mv`` for B = 1, else ``mm``."""
        if torch.is_grad_enabled() and (x2.requires_grad or self.values.requires_grad):
            return (self.weight @ x2.T).T  # (m, n) @ (n, B) -> (B, m), differentiable in x
        w = self._csr32()
        if x2.shape[0] == 1:
            return torch.mv(w, x2[0]).unsqueeze(0)  # (1, m)
        return (w @ x2.T).T  # (B, m)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        vals = self._buffers["values"]
        if not isinstance(x, torch.Tensor) or x.dtype != vals.dtype or x.shape[-1:] != (self.in_features,):
            _bad_input(self, x, vals.dtype)
        try:  # free unless a kernel fails (then: input and layer on different devices, meta included?)
            if self._mode == "reconstructed":
                W = self._cached("W", self.to_dense, self.crow_indices, self.col_indices, self.values, always=True)
                return nn.functional.linear(x, W, self.bias)
            lead = x.shape[:-1]
            x2 = x.reshape(-1, self.in_features)  # (B, n)
            y = self.matmul(x2)
            y = y.reshape(*lead, self.out_features)
            return y if self.bias is None else y + self.bias
        except (RuntimeError, NotImplementedError):
            _bad_device(self, x, vals)
            raise

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, nnz={self.nnz}"
