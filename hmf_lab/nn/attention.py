"""Compressed multi-head attention with ``nn.MultiheadAttention``'s forward: :class:`CompressedMultiheadAttention`.

``nn.MultiheadAttention`` holds its query/key/value projections packed in one ``in_proj_weight`` (3E, E)
(or three ``q/k/v_proj_weight`` when key and value have other widths) and an ``out_proj``. As the LSTM's
gate blocks (:mod:`hmf_lab.nn.lstm`), the packed matrix is compressed **per block**: q, k and v each become
one compressed linear layer (``q_proj``, ``k_proj``, ``v_proj``), so every block, and the whole in-projection,
is compressed ``compression``-fold; ``out_proj`` is compressed the same way. Any method of the registry
works: the blocks are built by a ``build(linear, block)`` callable, by default the record's ``linear``
builder (:meth:`hmf_lab.nn.methods.Method.attention`), so a newly registered method compresses attention
for free. The attention itself is PyTorch's: the same steps as ``F.multi_head_attention_forward`` after the
in-projection (``F.scaled_dot_product_attention`` when no weights are returned), with the projections run by
the compressed layers. The forward signature and semantics are ``nn.MultiheadAttention``'s: ``batch_first``,
unbatched 2-D input, ``key_padding_mask``, ``attn_mask`` (bool or float, 2-D or 3-D), ``need_weights``,
``average_attn_weights``, ``is_causal``, ``add_bias_kv`` (``bias_k``/``bias_v``), ``add_zero_attn`` and
attention dropout.

**PyTorch's fast paths.** ``nn.TransformerEncoderLayer`` (eval mode, no autograd) and ``nn.TransformerEncoder``
(nested tensors from a padding mask) call fused kernels on ``self_attn.in_proj_weight``, ``linear1.weight``...
directly, skipping the modules' forwards: a compressed layer there would be run dense, or crash (CSR weights).
They are bypassed by PyTorch's own checks: a :class:`CompressedMultiheadAttention` says
``_qkv_same_embed_dim = False`` (its projections are separate modules, not one packed dense parameter), which
turns the layer's fast path off, and :func:`bypass_fast_paths` (``hl.compress`` and ``hl.sparsify`` call it)
sets ``use_nested_tensor = False`` on every ``nn.TransformerEncoder`` holding compressed modules (what the
encoder's own ``__init__`` decides for such a layer) and ``activation_relu_or_gelu = 0`` (the flag only the
fast path reads) on a ``nn.TransformerEncoderLayer`` whose feed-forward layers are compressed while its
attention is not.

**Dense weights.** Code that reads ``in_proj_weight``, ``in_proj_bias``, ``q_proj_weight``... or
``out_proj.weight`` of a compressed attention gets the reconstructed dense W_hat (read-only, rebuilt at each
read, differentiable): the numbers are right, the compression is not used on that path.

>>> import torch, hmf_lab as hl
>>> from hmf_lab.nn.attention import CompressedMultiheadAttention
>>> mha = torch.nn.MultiheadAttention(16, 4, batch_first=True).eval()
>>> same = CompressedMultiheadAttention.from_mha(mha)        # no build: plain nn.Linear blocks, exact
>>> x = torch.randn(2, 5, 16)
>>> torch.allclose(same(x, x, x)[0], mha(x, x, x)[0], atol=1e-6)
True
>>> small = hl.compress(torch.nn.Sequential(mha), "hmf", compression=4)[0]
>>> type(small).__name__, type(small.q_proj).__name__, tuple(small.in_proj_weight.shape)
('CompressedMultiheadAttention', 'HMFLinear', (48, 16))
"""
from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from hmf_lab.factor._validation import as_int

__all__ = ["CompressedMultiheadAttention", "BLOCKS", "attention_from_linear", "bypass_fast_paths",
           "attention_calibration", "dense_weight"]

#: the four projections of an attention module, in ``nn.MultiheadAttention``'s order
BLOCKS = ("q_proj", "k_proj", "v_proj", "out_proj")


def dense_weight(module: nn.Module) -> torch.Tensor:
    """The (m, n) dense weight a linear-like module applies: ``to_dense()`` (HMF, LMF, CSR) or ``weight``."""
    to_dense = getattr(module, "to_dense", None)
    return to_dense() if callable(to_dense) else module.weight


def _linear(W: torch.Tensor, b: torch.Tensor | None) -> nn.Linear:
    lin = nn.Linear(W.shape[1], W.shape[0], bias=b is not None, dtype=W.dtype, device=W.device)
    with torch.no_grad():
        lin.weight.copy_(W)
        if b is not None:
            lin.bias.copy_(b)
    return lin


def _stored(module: nn.Module) -> int:
    """Stored weight values of one projection, counted as ``hl.count_params`` counts them."""
    n = getattr(module, "n_params", None)
    if n is not None:
        return int(n)
    mask = getattr(module, "weight_mask", None)
    return int(mask.sum()) if mask is not None else module.weight.numel()


class CompressedMultiheadAttention(nn.Module):
    """``nn.MultiheadAttention``'s forward with the four projections as (compressed) linear modules.

    ``q_proj`` (E <- E), ``k_proj`` (E <- kdim), ``v_proj`` (E <- vdim), ``out_proj`` (E <- E): any modules
    with ``nn.Linear``'s call (``HMFLinear``, ``LMFLinear``, a masked ``nn.Linear``, ``SparseLinear``...).
    Build one from a trained ``nn.MultiheadAttention`` with :meth:`from_mha`. ``n_params`` counts stored
    weight values (biases not), ``dense_params`` the dense module's (4 E^2 for self-attention).

    >>> import torch
    >>> from hmf_lab.nn.attention import CompressedMultiheadAttention
    >>> mha = torch.nn.MultiheadAttention(8, 2, kdim=4, vdim=6)
    >>> c = CompressedMultiheadAttention.from_mha(mha)
    >>> q, kv = torch.randn(3, 1, 8), torch.randn(5, 1, 4)
    >>> out, w = c(q, kv, torch.randn(5, 1, 6))
    >>> tuple(out.shape), tuple(w.shape), c.in_proj_weight is None, tuple(c.k_proj_weight.shape)
    ((3, 1, 8), (1, 3, 5), True, (8, 4))
    """

    # PyTorch's flag "q, k, v weights packed in one dense in_proj_weight". False here: the projections are
    # separate (compressed) modules. nn.TransformerEncoderLayer / nn.TransformerEncoder read it to decide on
    # their fused fast path, which would bypass the compressed modules: False turns it off (see the module doc).
    _qkv_same_embed_dim = False

    def __init__(self, embed_dim: int, num_heads: int, q_proj: nn.Module, k_proj: nn.Module, v_proj: nn.Module,
                 out_proj: nn.Module, *, dropout: float = 0.0, batch_first: bool = False, kdim=None, vdim=None,
                 bias_k: torch.Tensor | None = None, bias_v: torch.Tensor | None = None, add_zero_attn: bool = False):
        super().__init__()
        E, h = as_int(embed_dim, "embed_dim"), as_int(num_heads, "num_heads")
        if E < 1 or h < 1 or E % h:
            raise ValueError(f"embed_dim must be a positive multiple of num_heads, got embed_dim={E}, "
                             f"num_heads={h}")
        if not 0.0 <= float(dropout) <= 1.0:
            raise ValueError(f"dropout must be a probability in [0, 1], got {dropout!r}")
        self.embed_dim, self.num_heads, self.head_dim = E, h, E // h
        self.kdim = E if kdim is None else as_int(kdim, "kdim")
        self.vdim = E if vdim is None else as_int(vdim, "vdim")
        self.dropout, self.batch_first, self.add_zero_attn = float(dropout), bool(batch_first), bool(add_zero_attn)
        for name, mod, n_in in (("q_proj", q_proj, E), ("k_proj", k_proj, self.kdim), ("v_proj", v_proj, self.vdim),
                                ("out_proj", out_proj, E)):
            if not isinstance(mod, nn.Module):
                raise TypeError(f"{name} must be an nn.Module with nn.Linear's call, got {type(mod).__name__}")
            shape = (getattr(mod, "out_features", None), getattr(mod, "in_features", None))
            if shape != (E, n_in):
                raise ValueError(f"{name} must map {n_in} -> {E} features (out_features, in_features) = "
                                 f"({E}, {n_in}), got {shape}")
        self.q_proj, self.k_proj, self.v_proj, self.out_proj = q_proj, k_proj, v_proj, out_proj
        if (bias_k is None) != (bias_v is None):
            raise ValueError("bias_k and bias_v must be given together (nn.MultiheadAttention's add_bias_kv)")
        self.bias_k = None if bias_k is None else nn.Parameter(bias_k.detach().clone())
        self.bias_v = None if bias_v is None else nn.Parameter(bias_v.detach().clone())

    @classmethod
    def from_mha(cls, mha: nn.MultiheadAttention, build=None) -> "CompressedMultiheadAttention":
        """Split a trained ``nn.MultiheadAttention`` into its four projections and compress each one.

        ``build(linear, block) -> module``: called with a dense ``nn.Linear`` holding one block (``block`` in
        :data:`BLOCKS`: the q, k, v rows of ``in_proj_weight`` / ``q_proj_weight``..., with their bias, and
        ``out_proj``); ``None`` keeps the plain ``nn.Linear`` blocks (an exact copy). The original is not touched.
        """
        if not isinstance(mha, nn.MultiheadAttention):
            raise TypeError(f"mha must be a torch.nn.MultiheadAttention, got {type(mha).__name__}")
        E = mha.embed_dim
        if mha._qkv_same_embed_dim:
            Ws = mha.in_proj_weight.detach().chunk(3)
        else:
            Ws = (mha.q_proj_weight.detach(), mha.k_proj_weight.detach(), mha.v_proj_weight.detach())
        bs = (None,) * 3 if mha.in_proj_bias is None else mha.in_proj_bias.detach().chunk(3)
        ob = None if mha.out_proj.bias is None else mha.out_proj.bias.detach()
        dense = [_linear(W, b) for W, b in zip(Ws, bs)] + [_linear(mha.out_proj.weight.detach(), ob)]
        mods = []
        for lin, block in zip(dense, BLOCKS):
            lin.train(mha.training)
            mods.append(lin if build is None else build(lin, block))
        new = cls(E, mha.num_heads, *mods, dropout=mha.dropout, batch_first=mha.batch_first, kdim=mha.kdim,
                  vdim=mha.vdim, bias_k=mha.bias_k, bias_v=mha.bias_v, add_zero_attn=mha.add_zero_attn)
        return new.train(mha.training)

    # -- nn.MultiheadAttention's weight attributes, reconstructed (read-only) ---------------------------

    @property
    def q_proj_weight(self) -> torch.Tensor:
        """The query block W_hat (E, E), reconstructed at each read (read-only)."""
        return dense_weight(self.q_proj)

    @property
    def k_proj_weight(self) -> torch.Tensor:
        """The key block W_hat (E, kdim), reconstructed at each read (read-only)."""
        return dense_weight(self.k_proj)

    @property
    def v_proj_weight(self) -> torch.Tensor:
        """The value block W_hat (E, vdim), reconstructed at each read (read-only)."""
        return dense_weight(self.v_proj)

    @property
    def in_proj_weight(self) -> torch.Tensor | None:
        """The packed (3E, E) W_hat of the q, k, v blocks when kdim == vdim == E, else None (as in
        ``nn.MultiheadAttention``); reconstructed at each read (read-only)."""
        if self.kdim != self.embed_dim or self.vdim != self.embed_dim:
            return None
        return torch.cat([self.q_proj_weight, self.k_proj_weight, self.v_proj_weight])

    @property
    def in_proj_bias(self) -> torch.Tensor | None:
        """The (3E,) biases of the q, k, v blocks (None without bias)."""
        bs = [getattr(m, "bias", None) for m in (self.q_proj, self.k_proj, self.v_proj)]
        return None if any(b is None for b in bs) else torch.cat(bs)

    @property
    def n_params(self) -> int:
        """Stored weight values of the four projections (biases not counted)."""
        return sum(_stored(getattr(self, b)) for b in BLOCKS)

    @property
    def dense_params(self) -> int:
        """Weight values of the equivalent ``nn.MultiheadAttention`` (biases not counted)."""
        return self.embed_dim * (2 * self.embed_dim + self.kdim + self.vdim)

    @property
    def compression(self) -> float:
        return self.dense_params / self.n_params

    def to_mha(self) -> nn.MultiheadAttention:
        """The equivalent dense ``nn.MultiheadAttention`` (reconstructed weights)."""
        E = self.embed_dim
        W = self.q_proj_weight
        mha = nn.MultiheadAttention(E, self.num_heads, dropout=self.dropout, bias=self.in_proj_bias is not None,
                                    add_bias_kv=self.bias_k is not None, add_zero_attn=self.add_zero_attn,
                                    kdim=self.kdim, vdim=self.vdim, batch_first=self.batch_first,
                                    dtype=W.dtype, device=W.device)
        with torch.no_grad():
            if mha._qkv_same_embed_dim:
                mha.in_proj_weight.copy_(self.in_proj_weight)
            else:
                mha.q_proj_weight.copy_(W)
                mha.k_proj_weight.copy_(self.k_proj_weight)
                mha.v_proj_weight.copy_(self.v_proj_weight)
            if mha.in_proj_bias is not None:
                mha.in_proj_bias.copy_(self.in_proj_bias)
            mha.out_proj.weight.copy_(dense_weight(self.out_proj))
            if mha.out_proj.bias is not None:
                mha.out_proj.bias.copy_(self.out_proj.bias)
            if self.bias_k is not None:
                mha.bias_k.copy_(self.bias_k)
                mha.bias_v.copy_(self.bias_v)
        return mha.train(self.training)

    # -- the forward ------------------------------------------------------------------------------

    def forward(self, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                key_padding_mask: torch.Tensor | None = None, need_weights: bool = True,
                attn_mask: torch.Tensor | None = None, average_attn_weights: bool = True,
                is_causal: bool = False):
        """``nn.MultiheadAttention.forward``: returns ``(attn_output, attn_weights or None)``."""
        is_batched = query.dim() == 3
        key_padding_mask = F._canonical_mask(mask=key_padding_mask, mask_name="key_padding_mask",
                                             other_type=F._none_or_dtype(attn_mask), other_name="attn_mask",
                                             target_type=query.dtype)
        attn_mask = F._canonical_mask(mask=attn_mask, mask_name="attn_mask", other_type=None, other_name="",
                                      target_type=query.dtype, check_other=False)
        if self.batch_first and is_batched:
            query, key, value = (t.transpose(1, 0) for t in (query, key, value))
        out, weights = self._attend(query, key, value, key_padding_mask, need_weights, attn_mask,
                                    average_attn_weights, is_causal)
        if self.batch_first and is_batched:
            out = out.transpose(1, 0)
        return out, weights

    def _attend(self, query, key, value, key_padding_mask, need_weights, attn_mask, average_attn_weights,
                is_causal):
        """``F.multi_head_attention_forward`` on (L, N, E) inputs with the in/out projections as modules."""
        h, E, hd = self.num_heads, self.embed_dim, self.head_dim
        is_batched = F._mha_shape_check(query, key, value, key_padding_mask, attn_mask, h)
        if not is_batched:
            query, key, value = query.unsqueeze(1), key.unsqueeze(1), value.unsqueeze(1)
            if key_padding_mask is not None:
                key_padding_mask = key_padding_mask.unsqueeze(0)
        tgt_len, bsz, e = query.shape
        if e != E:
            raise ValueError(f"query must have embed_dim={E} features, got {e} (shape {tuple(query.shape)})")
        if key.shape[:2] != value.shape[:2]:
            raise ValueError(f"key's sequence and batch dims {tuple(key.shape[:2])} do not match value's "
                             f"{tuple(value.shape[:2])}")
        key_padding_mask = F._canonical_mask(mask=key_padding_mask, mask_name="key_padding_mask",
                                             other_type=F._none_or_dtype(attn_mask), other_name="attn_mask",
                                             target_type=query.dtype)
        if is_causal and attn_mask is None:
            raise RuntimeError("Need attn_mask if specifying the is_causal hint. You may use the Transformer "
                               "module method `generate_square_subsequent_mask` to create this mask.")
        if is_causal and key_padding_mask is None and not need_weights:
            attn_mask = None  # the hint alone: scaled_dot_product_attention's causal kernel
        else:
            attn_mask = F._canonical_mask(mask=attn_mask, mask_name="attn_mask", other_type=None, other_name="",
                                          target_type=query.dtype, check_other=False)
            if key_padding_mask is not None:
                is_causal = False
        q, k, v = self.q_proj(query), self.k_proj(key), self.v_proj(value)  # the compressed in-projection
        if attn_mask is not None:
            if attn_mask.dim() == 2:
                if tuple(attn_mask.shape) != (tgt_len, key.shape[0]):
                    raise RuntimeError(f"The shape of the 2D attn_mask is {attn_mask.shape}, but should be "
                                       f"{(tgt_len, key.shape[0])}.")
                attn_mask = attn_mask.unsqueeze(0)
            elif attn_mask.dim() == 3:
                if tuple(attn_mask.shape) != (bsz * h, tgt_len, key.shape[0]):
                    raise RuntimeError(f"The shape of the 3D attn_mask is {attn_mask.shape}, but should be "
                                       f"{(bsz * h, tgt_len, key.shape[0])}.")
            else:
                raise RuntimeError(f"attn_mask's dimension {attn_mask.dim()} is not supported")
        if self.bias_k is not None:
            k = torch.cat([k, self.bias_k.repeat(1, bsz, 1)])
            v = torch.cat([v, self.bias_v.repeat(1, bsz, 1)])
            if attn_mask is not None:
                attn_mask = F.pad(attn_mask, (0, 1))
            if key_padding_mask is not None:
                key_padding_mask = F.pad(key_padding_mask, (0, 1))
        q = q.reshape(tgt_len, bsz * h, hd).transpose(0, 1)  # (N*h, L, hd)
        k = k.reshape(k.shape[0], bsz * h, hd).transpose(0, 1)  # (N*h, S, hd)
        v = v.reshape(v.shape[0], bsz * h, hd).transpose(0, 1)
        if self.add_zero_attn:
            zeros = torch.zeros((bsz * h, 1, hd), dtype=k.dtype, device=k.device)
            k, v = torch.cat([k, zeros], dim=1), torch.cat([v, zeros], dim=1)
            if attn_mask is not None:
                attn_mask = F.pad(attn_mask, (0, 1))
            if key_padding_mask is not None:
                key_padding_mask = F.pad(key_padding_mask, (0, 1))
        src_len = k.shape[1]
        if key_padding_mask is not None:
            if tuple(key_padding_mask.shape) != (bsz, src_len):
                raise ValueError(f"key_padding_mask must have shape {(bsz, src_len)} (batch, source length), "
                                 f"got {tuple(key_padding_mask.shape)}")
            kpm = key_padding_mask.view(bsz, 1, 1, src_len).expand(-1, h, -1, -1).reshape(bsz * h, 1, src_len)
            attn_mask = kpm if attn_mask is None else attn_mask + kpm
        p = self.dropout if self.training else 0.0
        if need_weights:
            q_scaled = q * math.sqrt(1.0 / float(hd))
            if attn_mask is not None:
                w = torch.baddbmm(attn_mask, q_scaled, k.transpose(-2, -1))
            else:
                w = torch.bmm(q_scaled, k.transpose(-2, -1))
            w = F.softmax(w, dim=-1)
            if p > 0.0:
                w = F.dropout(w, p=p)
            out = torch.bmm(w, v).transpose(0, 1).reshape(tgt_len * bsz, E)
            out = self.out_proj(out).view(tgt_len, bsz, E)
            w = w.view(bsz, h, tgt_len, src_len)
            if average_attn_weights:
                w = w.mean(dim=1)
            if not is_batched:
                out, w = out.squeeze(1), w.squeeze(0)
            return out, w
        if attn_mask is not None:
            attn_mask = attn_mask.unsqueeze(0) if attn_mask.shape[0] == 1 else attn_mask.view(bsz, h, -1, src_len)
        q, k, v = (t.reshape(bsz, h, -1, hd) for t in (q, k, v))
        out = F.scaled_dot_product_attention(q, k, v, attn_mask, p, is_causal)  # (N, h, L, hd)
        out = out.permute(2, 0, 1, 3).reshape(bsz * tgt_len, E)
        out = self.out_proj(out).view(tgt_len, bsz, E)
        return (out if is_batched else out.squeeze(1)), None

    def extra_repr(self) -> str:
        s = f"embed_dim={self.embed_dim}, num_heads={self.num_heads}"
        if self.kdim != self.embed_dim or self.vdim != self.embed_dim:
            s += f", kdim={self.kdim}, vdim={self.vdim}"
        if self.dropout:
            s += f", dropout={self.dropout}"
        if self.batch_first:
            s += ", batch_first=True"
        return s


# ------------------------------------------------------------------------ the registry's default builder


def _per_block(value, block: str):
    """An option for one block: a dict keyed by block (``'q_proj'``... or ``'in_proj'`` for q, k, v) or as is."""
    if isinstance(value, dict):
        for key in (block, "in_proj" if block != "out_proj" else None):
            if key is not None and key in value:
                return value[key]
        return None
    return value


def attention_from_linear(linear_builder):
    """The default ``Method.attention``: :meth:`CompressedMultiheadAttention.from_mha` with every block
    built by the method's ``linear(lin, compression, **opts)``. ``split``/``rank``/``heuristic``/``X`` may be
    dicts keyed by block (``'q_proj'``, ``'k_proj'``, ``'v_proj'``, ``'out_proj'``, or ``'in_proj'`` for the
    three input blocks).

    >>> import torch, hmf_lab as hl
    >>> from hmf_lab.nn.attention import attention_from_linear
    >>> build = attention_from_linear(hl.METHODS["lmf"].linear)
    >>> c = build(torch.nn.MultiheadAttention(16, 2), 4, rank={"in_proj": 2, "out_proj": 3})
    >>> c.q_proj.rank, c.out_proj.rank
    (2, 3)
    """
    def attention(mha, compression=None, **opts):
        def build(lin, block):
            kw = {k: _per_block(v, block) for k, v in opts.items()}
            if kw.get("X") is None:
                kw.pop("X", None)
            if "heuristic" in kw and kw["heuristic"] is None:
                kw["heuristic"] = "top"
            return linear_builder(lin, _per_block(compression, block), **kw)
        return CompressedMultiheadAttention.from_mha(mha, build)

    attention._from_linear = linear_builder  # marks the default (Method rebuilds it when `linear` changes)
    return attention


# ------------------------------------------------------------------------ PyTorch's fast paths


def _plain(mod) -> bool:
    return type(mod) in (nn.Linear, nn.modules.linear.NonDynamicallyQuantizableLinear, nn.MultiheadAttention) \
        and not mod._forward_pre_hooks


def bypass_fast_paths(model: nn.Module) -> nn.Module:
    """Turn PyTorch's fused transformer fast paths off where they would skip compressed modules; returns model.

    ``nn.TransformerEncoderLayer``'s fast path (eval mode, no autograd) calls one fused kernel on
    ``self_attn.in_proj_weight``, ``linear1.weight``... without running those modules, and
    ``nn.TransformerEncoder`` turns a padded batch into a nested tensor for it. On a layer holding compressed
    modules: the encoder gets ``use_nested_tensor = False`` (what its ``__init__`` decides for such a layer),
    the layer ``activation_relu_or_gelu = 0`` (the flag only the fast path reads; the layer still applies
    ``self.activation``). A :class:`CompressedMultiheadAttention` already turns the layer's path off by itself.

    >>> import torch, hmf_lab as hl
    >>> enc = torch.nn.TransformerEncoder(torch.nn.TransformerEncoderLayer(16, 2, 32, batch_first=True), 1,
    ...                                   enable_nested_tensor=True)
    >>> small = hl.compress(enc, "lmf", compression=2)        # calls bypass_fast_paths
    >>> small.use_nested_tensor, small.layers[0].activation_relu_or_gelu, enc.use_nested_tensor
    (False, 0, True)
    """
    for mod in model.modules():
        if isinstance(mod, nn.TransformerEncoderLayer):
            parts = [mod.self_attn, mod.linear1, mod.linear2]
            if not all(_plain(p) for p in parts):
                mod.activation_relu_or_gelu = 0
        if isinstance(mod, nn.TransformerEncoder):
            parts = [getattr(layer, n, None) for layer in mod.layers for n in ("self_attn", "linear1", "linear2")]
            if not all(_plain(p) for p in parts if p is not None):
                mod.use_nested_tensor = False
    return model


# ------------------------------------------------------------------------ calibration inputs


def attention_calibration(model: nn.Module, names, batches) -> dict:
    """Per-block inputs of the ``nn.MultiheadAttention`` modules ``names`` on the model inputs ``batches``.

    Returns ``{name: {"q_proj": (N, E), "k_proj": (N, kdim), "v_proj": (N, vdim), "out_proj": (N, E)}}``: what
    each projection sees (``out_proj``: the attention output of the heads, before the projection), from one
    pass over ``batches`` (a list of tuples of positional arguments) in eval mode with PyTorch's fast paths off.
    """
    names = list(names)
    seen = {name: {b: [] for b in BLOCKS} for name in names}
    twins, hooks = {}, []

    def grab(name, block):
        def pre(mod, args):
            seen[name][block].append(args[0].detach().reshape(-1, mod.in_features))
        return pre

    def run_twin(name):
        def hook(mod, args, kwargs, out):
            with torch.no_grad():
                twins[name](*args, **kwargs)
        return hook

    for name in names:
        mha = model.get_submodule(name)
        twin = CompressedMultiheadAttention.from_mha(mha).eval()  # exact copy with hookable projections
        for b in BLOCKS:
            twin.get_submodule(b).register_forward_pre_hook(grab(name, b))
        twins[name] = twin
        hooks.append(mha.register_forward_hook(run_twin(name), with_kwargs=True))
    was = model.training
    model.eval()
    fast = torch.backends.mha.get_fastpath_enabled()
    torch.backends.mha.set_fastpath_enabled(False)
    try:
        with torch.inference_mode(False), torch.no_grad():
            for args in batches:
                model(*args)
    finally:
        torch.backends.mha.set_fastpath_enabled(fast)
        for h in hooks:
            h.remove()
        model.train(was)
    out = {}
    for name in names:
        if not seen[name]["q_proj"]:
            raise ValueError(f"layer {name!r} never ran on the calibration inputs X; check that X reaches it")
        out[name] = {b: torch.cat(rows) for b, rows in seen[name].items()}
    return out
