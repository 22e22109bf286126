"""hl.compress on transformers: nn.MultiheadAttention, nn.TransformerEncoderLayer / Encoder / DecoderLayer.

At compression 1 the compressed modules give the dense outputs (masks, train/eval, PyTorch's fast paths in
eval + no_grad); at 2-4 every attention weight is compressed; state_dict round-trips; sparse=True runs in
eval mode; a model reading ``.weight`` of a replaced layer keeps working.
"""
from __future__ import annotations

import io
import warnings

import pytest
import torch
from torch import nn

import hmf_lab as hl
from hmf_lab.nn.attention import BLOCKS, CompressedMultiheadAttention, bypass_fast_paths
from hmf_lab.nn.methods import Method, get_method, register_method, unregister_method

E, H, FF, T, B = 16, 2, 32, 6, 3

# compression 1 is exact for HMF (every row dense) and pruning (every value kept); LMF is exact at full rank
EXACT = {"hmf": {"compression": 1}, "lmf": {"rank": E}, "prune": {"compression": 1}}
METHODS = sorted(m for m in hl.METHODS if not hl.METHODS[m].requires)  # calibration-free (baselines: test_baselines)


def exact_kw(method):
    return EXACT.get(method, {"compression": 1})


@pytest.fixture(autouse=True)
def _quiet():
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*[Ss]parse CSR.*")
        warnings.filterwarnings("ignore", message=".*enable_nested_tensor.*")
        yield


def _causal(kind, n=T):
    bool_mask = torch.triu(torch.ones(n, n, dtype=torch.bool), 1)  # True: not allowed
    if kind == "bool":
        return bool_mask
    return nn.Transformer.generate_square_subsequent_mask(n)


def _kpm(batch=B, n=T):
    m = torch.zeros(batch, n, dtype=torch.bool)
    m[0, -2:] = True  # right padding on one sequence
    return m


def _encoder_layer(norm_first=False, batch_first=True, seed=0):
    torch.manual_seed(seed)
    return nn.TransformerEncoderLayer(E, H, FF, dropout=0.0, batch_first=batch_first, norm_first=norm_first)


def _x(batch_first=True, seed=1):
    torch.manual_seed(seed)
    return torch.randn(B, T, E) if batch_first else torch.randn(T, B, E)


def _run(model, *args, train=False, grad=False, **kw):
    model.train(train)
    with torch.set_grad_enabled(grad):
        return model(*args, **kw)


# ------------------------------------------------------------------------------- compression 1 == dense


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("batch_first", [True, False])
@pytest.mark.parametrize("mask", [None, "float", "bool", "kpm", "bool+kpm"])
def test_mha_compression_one_equals_dense(method, batch_first, mask):
    torch.manual_seed(0)
    mha = nn.MultiheadAttention(E, H, batch_first=batch_first)
    small = hl.compress(nn.Sequential(mha), method, **exact_kw(method))[0]
    assert isinstance(small, CompressedMultiheadAttention)
    x = _x(batch_first)
    kw = {}
    if mask in ("float", "bool", "bool+kpm"):
        kw["attn_mask"] = _causal("float" if mask == "float" else "bool")
    if mask in ("kpm", "bool+kpm"):
        kw["key_padding_mask"] = _kpm()
    for train in (False, True):
        for grad in (False, True):
            for need_weights in (True, False):
                y0, w0 = _run(mha, x, x, x, train=train, grad=grad, need_weights=need_weights, **kw)
                y1, w1 = _run(small, x, x, x, train=train, grad=grad, need_weights=need_weights, **kw)
                torch.testing.assert_close(y1, y0, atol=1e-5, rtol=1e-5)
                assert (w0 is None) == (w1 is None)
                if w0 is not None:
                    torch.testing.assert_close(w1, w0, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("method", METHODS)
def test_mha_is_causal_and_unaveraged_weights(method):
    torch.manual_seed(0)
    mha = nn.MultiheadAttention(E, H, batch_first=True).eval()
    small = hl.compress(nn.Sequential(mha), method, **exact_kw(method))[0].eval()
    x = _x()
    for mask in (_causal("float"), _causal("bool")):
        for need_weights in (False, True):
            y0, _ = mha(x, x, x, attn_mask=mask, is_causal=True, need_weights=need_weights)
            y1, _ = small(x, x, x, attn_mask=mask, is_causal=True, need_weights=need_weights)
            torch.testing.assert_close(y1, y0, atol=1e-5, rtol=1e-5)
    y0, w0 = mha(x, x, x, average_attn_weights=False)
    y1, w1 = small(x, x, x, average_attn_weights=False)
    assert w1.shape == (B, H, T, T)
    torch.testing.assert_close(w1, w0, atol=1e-5, rtol=1e-5)
    with pytest.raises(RuntimeError, match="Need attn_mask"):
        small(x, x, x, is_causal=True)


@pytest.mark.parametrize("method", METHODS)
def test_mha_variants_unbatched_cross_kdim_bias_kv(method):
    torch.manual_seed(0)
    mha = nn.MultiheadAttention(E, H, kdim=8, vdim=12, add_bias_kv=True, add_zero_attn=True)
    small = hl.compress(nn.Sequential(mha), method, **exact_kw(method) if method != "lmf" else {"rank": 8})[0]
    q, k, v = torch.randn(T, B, E), torch.randn(T + 1, B, 8), torch.randn(T + 1, B, 12)
    if method != "lmf":  # rank 8 is full for the k block only; the others are exact
        for mod in (mha, small):
            mod.eval()
        torch.testing.assert_close(small(q, k, v)[0], mha(q, k, v)[0], atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(small(q[:, 0], k[:, 0], v[:, 0])[0], mha(q[:, 0], k[:, 0], v[:, 0])[0],
                                   atol=1e-5, rtol=1e-5)  # unbatched (L, E)
    assert small.in_proj_weight is None and small.k_proj_weight.shape == (E, 8)
    assert small.dense_params == E * (2 * E + 8 + 12)
    assert hl.count_params(mha) == small.dense_params


@pytest.mark.parametrize("method", METHODS)
def test_mha_without_bias_float64_float_padding_mask(method):
    torch.manual_seed(0)
    mha = nn.MultiheadAttention(E, H, bias=False, batch_first=True, dtype=torch.float64).eval()
    small = hl.compress(nn.Sequential(mha), method, **exact_kw(method))[0].eval()
    assert small.in_proj_bias is None and small.q_proj_weight.dtype == torch.float64
    x = _x().double()
    kpm = torch.zeros(B, T, dtype=torch.float64)
    kpm[1, -1] = float("-inf")
    for need_weights in (True, False):
        with torch.no_grad():
            torch.testing.assert_close(small(x, x, x, key_padding_mask=kpm, need_weights=need_weights)[0],
                                       mha(x, x, x, key_padding_mask=kpm, need_weights=need_weights)[0])
    torch.testing.assert_close(small.to_mha().eval()(x, x, x)[0], mha(x, x, x)[0])


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("norm_first", [False, True])
@pytest.mark.parametrize("batch_first", [True, False])
def test_encoder_layer_compression_one_equals_dense(method, norm_first, batch_first):
    layer = _encoder_layer(norm_first, batch_first)
    small = hl.compress(layer, method, **exact_kw(method))
    assert isinstance(small.self_attn, CompressedMultiheadAttention)
    x = _x(batch_first)
    cases = [{}, {"src_mask": _causal("float")}, {"src_mask": _causal("bool")}, {"src_key_padding_mask": _kpm()},
             {"src_mask": _causal("float"), "is_causal": True}]
    for kw in cases:
        for train, grad in ((False, False), (False, True), (True, True)):  # eval + no_grad: the fast path
            y0 = _run(layer, x, train=train, grad=grad, **kw)
            y1 = _run(small, x, train=train, grad=grad, **kw)
            torch.testing.assert_close(y1, y0, atol=1e-5, rtol=1e-5)


# the dense encoder takes PyTorch's nested-tensor path on purpose here; torch warns that the API is a prototype
@pytest.mark.filterwarnings("ignore:The PyTorch API of nested tensors:UserWarning")
@pytest.mark.parametrize("method", METHODS)
def test_fused_fast_path_runs_for_dense_and_is_bypassed_when_compressed(method, monkeypatch):
    """Eval + no_grad: the dense layer runs PyTorch's fused kernel (and the encoder its nested tensors), the
    compressed one runs its own modules, with the same numbers."""
    calls = {"layer": 0, "nested": 0}
    fused, nested = torch._transformer_encoder_layer_fwd, torch._nested_tensor_from_mask

    def count(key, fn):
        def wrapped(*a, **k):
            calls[key] += 1
            return fn(*a, **k)
        return wrapped

    monkeypatch.setattr(torch, "_transformer_encoder_layer_fwd", count("layer", fused))
    monkeypatch.setattr(torch, "_nested_tensor_from_mask", count("nested", nested))
    enc = nn.TransformerEncoder(_encoder_layer(), 2, enable_nested_tensor=True).eval()
    small = hl.compress(enc, method, **exact_kw(method)).eval()
    x, kpm = _x(), _kpm()
    with torch.no_grad():
        y0 = enc(x, src_key_padding_mask=kpm)
        assert calls == {"layer": 2, "nested": 1}
        y1 = small(x, src_key_padding_mask=kpm)
        assert calls == {"layer": 2, "nested": 1}  # no fused call, no nested tensor
        torch.testing.assert_close(y1[~kpm], y0[~kpm], atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(small.layers[0](x), enc.layers[0](x), atol=1e-5, rtol=1e-5)
        assert calls["layer"] == 3


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("batch_first", [True, False])
def test_encoder_compression_one_equals_dense(method, batch_first):
    torch.manual_seed(0)
    enc = nn.TransformerEncoder(_encoder_layer(batch_first=batch_first), 2, enable_nested_tensor=True)
    small = hl.compress(enc, method, **exact_kw(method))
    assert small.use_nested_tensor is False
    x = _x(batch_first)
    for kw in ({}, {"src_key_padding_mask": _kpm()}, {"mask": _causal("bool"), "is_causal": True}):
        for train, grad in ((False, False), (False, True), (True, True)):
            y0 = _run(enc, x, train=train, grad=grad, **kw)
            y1 = _run(small, x, train=train, grad=grad, **kw)
            if "src_key_padding_mask" in kw:  # the dense nested-tensor path writes 0 at padded positions
                keep = ~kw["src_key_padding_mask"] if batch_first else ~kw["src_key_padding_mask"].T
                y0, y1 = y0[keep], y1[keep]
            torch.testing.assert_close(y1, y0, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("method", METHODS)
def test_decoder_layer_compression_one_equals_dense(method):
    torch.manual_seed(0)
    layer = nn.TransformerDecoderLayer(E, H, FF, dropout=0.0, batch_first=True)
    small = hl.compress(layer, method, **exact_kw(method))
    assert isinstance(small.multihead_attn, CompressedMultiheadAttention)
    x, mem = _x(), torch.randn(B, T + 2, E)
    for train, grad in ((False, False), (True, True)):
        y0 = _run(layer, x, mem, train=train, grad=grad, tgt_mask=_causal("bool"),
                  memory_key_padding_mask=_kpm(n=T + 2))
        y1 = _run(small, x, mem, train=train, grad=grad, tgt_mask=_causal("bool"),
                  memory_key_padding_mask=_kpm(n=T + 2))
        torch.testing.assert_close(y1, y0, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("method", METHODS)
def test_full_transformer_compression_one_equals_dense(method):
    torch.manual_seed(0)
    model = nn.Transformer(E, H, num_encoder_layers=1, num_decoder_layers=1, dim_feedforward=FF, dropout=0.0,
                           batch_first=True)
    small = hl.compress(model, method, **exact_kw(method))
    assert len(_attentions(small)) == 3
    src, tgt = _x(), _x(seed=3)[:, :4]
    kw = {"tgt_mask": _causal("float", 4), "src_key_padding_mask": _kpm(), "memory_key_padding_mask": _kpm()}
    for train, grad in ((False, False), (True, True)):
        torch.testing.assert_close(_run(small, src, tgt, train=train, grad=grad, **kw),
                                   _run(model, src, tgt, train=train, grad=grad, **kw), atol=1e-5, rtol=1e-5)


# ------------------------------------------------------------------------------- compressed for real


def _attentions(model):
    return [m for m in model.modules() if isinstance(m, CompressedMultiheadAttention)]


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("c", [2, 3, 4])
def test_every_attention_weight_is_compressed(method, c):
    torch.manual_seed(0)
    enc = nn.TransformerEncoder(_encoder_layer(), 2, enable_nested_tensor=False)
    small = hl.compress(enc, method, compression=c)
    attns = _attentions(small)
    assert len(attns) == 2
    budget = (E * E) // c
    for a in attns:
        for block in BLOCKS:
            mod = getattr(a, block)
            stored = hl.count_params(mod)
            assert 0 < stored <= budget, (block, stored, budget)
            assert not (type(mod) is nn.Linear and not hasattr(mod, "weight_mask"))  # not a plain dense copy
        assert a.n_params <= 4 * budget and a.compression >= c - 1e-9
    assert hl.count_params(small) <= hl.count_params(enc) / c + 1
    x = _x()
    y = _run(small, x, train=True, grad=True, src_key_padding_mask=_kpm())
    assert torch.isfinite(y).all()
    y.square().mean().backward()
    grads = [p.grad for a in attns for p in a.parameters() if p.requires_grad]
    assert grads and all(g is not None and torch.isfinite(g).all() for g in grads)
    with torch.no_grad():
        assert torch.isfinite(_run(small, x, src_key_padding_mask=_kpm())).all()


def test_count_params_counts_attention():
    enc = nn.TransformerEncoder(_encoder_layer(), 2, enable_nested_tensor=False)
    dense = 2 * (4 * E * E + 2 * E * FF)
    assert hl.count_params(enc) == dense
    small = hl.compress(enc, "hmf", compression=1)
    assert hl.count_params(small) == dense
    assert sum(a.n_params for a in _attentions(small)) == 2 * 4 * E * E


@pytest.mark.parametrize("method", METHODS)
def test_state_dict_round_trip(method):
    enc = nn.TransformerEncoder(_encoder_layer(), 2, enable_nested_tensor=False)
    a = hl.compress(enc, method, compression=2)
    buf = io.BytesIO()
    torch.save(a.state_dict(), buf)
    buf.seek(0)
    torch.manual_seed(5)
    other = nn.TransformerEncoder(_encoder_layer(seed=7), 2, enable_nested_tensor=False)
    b = hl.compress(other, method, compression=2)
    b.load_state_dict(torch.load(buf, weights_only=True))
    x = _x()
    with torch.no_grad():
        torch.testing.assert_close(b.eval()(x, src_key_padding_mask=_kpm()), a.eval()(x, src_key_padding_mask=_kpm()))


# ------------------------------------------------------------------------------- pruning and CSR


def test_prune_touches_attention_weights():
    enc = nn.TransformerEncoder(_encoder_layer(), 1, enable_nested_tensor=False)
    small = hl.compress(enc, "prune", compression=4)
    a = small.layers[0].self_attn
    for block in BLOCKS:
        mod = getattr(a, block)
        assert hasattr(mod, "weight_mask") and int(mod.weight_mask.sum()) == E * E // 4
        assert int(mod.weight.count_nonzero()) <= E * E // 4


@pytest.mark.parametrize("c", [1, 3])
@pytest.mark.parametrize("norm_first", [False, True])
def test_sparse_eval_no_grad_equals_pruned(c, norm_first):
    torch.manual_seed(0)
    enc = nn.TransformerEncoder(_encoder_layer(norm_first), 2, enable_nested_tensor=True)
    pruned = hl.compress(enc, "prune", compression=c).eval()
    fast = hl.compress(enc, "prune", compression=c, sparse=True).eval()
    via = hl.sparsify(pruned).eval()
    assert any(isinstance(m, hl.SparseLinear) for m in fast.modules())
    x = _x()
    for kw in ({}, {"src_key_padding_mask": _kpm()}, {"mask": _causal("float")}):
        with torch.no_grad():
            ref = pruned(x, **kw)
            torch.testing.assert_close(fast(x, **kw), ref, atol=1e-5, rtol=1e-5)
            torch.testing.assert_close(via(x, **kw), ref, atol=1e-5, rtol=1e-5)
            torch.testing.assert_close(fast.layers[0](x, **{k.replace("mask", "src_mask") if k == "mask" else k: v
                                                            for k, v in kw.items()}),
                                       pruned.layers[0](x, **{k.replace("mask", "src_mask") if k == "mask" else k: v
                                                              for k, v in kw.items()}), atol=1e-5, rtol=1e-5)
        if c == 1:  # everything kept: the dense model (on its nested-tensor fast path: 0 at padded positions)
            with torch.no_grad():
                y0, y1 = enc.eval()(x, **kw), fast(x, **kw)
            if "src_key_padding_mask" in kw:
                y0, y1 = y0[~kw["src_key_padding_mask"]], y1[~kw["src_key_padding_mask"]]
            torch.testing.assert_close(y1, y0, atol=1e-5, rtol=1e-5)


def test_only_feed_forward_compressed_bypasses_layer_fast_path():
    """A layer whose attention stays dense but whose linear1/linear2 are CSR must not take the fused path."""
    layer = _encoder_layer().eval()
    fast = hl.compress(layer, "prune", compression=2, sparse=True, layers=["linear1", "linear2"])
    assert type(fast.self_attn) is nn.MultiheadAttention and fast.activation_relu_or_gelu == 0
    ref = hl.compress(layer, "prune", compression=2, layers=["linear1", "linear2"]).eval()
    x = _x()
    with torch.no_grad():
        torch.testing.assert_close(fast(x), ref(x), atol=1e-5, rtol=1e-5)
    assert bypass_fast_paths(fast) is fast


# ------------------------------------------------------------------------------- .weight


def test_weight_of_a_replaced_layer_is_w_hat():
    lin = nn.Linear(12, 10)
    for layer in (hl.HMFLinear.from_linear(lin, split=2, rank=3), hl.LMFLinear.from_linear(lin, rank=3)):
        assert torch.equal(layer.weight, layer.to_dense()) and layer.weight.shape == (10, 12)
        x = torch.randn(4, 12)
        torch.testing.assert_close(nn.functional.linear(x, layer.weight, layer.bias), layer(x))
        layer.weight.sum().backward()
        assert layer.V.grad is not None
        with pytest.raises(AttributeError):
            layer.weight = None  # read-only


class ReadsOutProj(nn.Module):
    """A model whose own forward reads ``attn.out_proj.weight`` (a tied read-out)."""

    def __init__(self):
        super().__init__()
        self.attn = nn.MultiheadAttention(E, H, batch_first=True)

    def forward(self, x):
        y, _ = self.attn(x, x, x, need_weights=False)
        return y @ self.attn.out_proj.weight + self.attn.in_proj_weight[:E].sum()


@pytest.mark.parametrize("method", METHODS)
def test_model_reading_out_proj_weight(method):
    torch.manual_seed(0)
    model = ReadsOutProj().eval()
    same = hl.compress(model, method, **exact_kw(method)).eval()
    x = _x()
    torch.testing.assert_close(same(x), model(x), atol=1e-5, rtol=1e-5)
    small = hl.compress(model, method, compression=3)
    assert torch.isfinite(small(x)).all()
    a = small.attn
    torch.testing.assert_close(a.out_proj.weight.to_dense() if a.out_proj.weight.is_sparse_csr else a.out_proj.weight,
                               a.to_mha().out_proj.weight)


# ------------------------------------------------------------------------------- registry, engines, X


def test_new_method_gets_attention_from_its_linear():
    lmf = get_method("lmf")
    m = register_method(Method(name="lmf_two", label="LMF rank 2", factorize=lmf.factorize,
                               linear=lambda lin, compression=None: hl.LMFLinear.from_linear(lin, rank=2),
                               stored=lambda shape, compression, blocks=1: blocks * 2 * sum(shape)))
    try:
        small = hl.compress(nn.TransformerEncoder(_encoder_layer(), 1, enable_nested_tensor=False), "lmf_two",
                            compression=4)
        a = small.layers[0].self_attn
        assert [getattr(a, b).rank for b in BLOCKS] == [2, 2, 2, 2]
        assert getattr(m.attention, "_from_linear") is m.linear
    finally:
        unregister_method("lmf_two")


def test_split_rank_per_block_and_calibration_X():
    layer = _encoder_layer()
    small = hl.compress(layer, "hmf", split=2, rank={"self_attn": {"in_proj": 3, "out_proj": 4}, "linear1": 2,
                                                     "linear2": 2})
    a = small.self_attn
    assert [getattr(a, b).rank for b in BLOCKS] == [3, 3, 3, 4] and a.q_proj.split == 2
    x = _x()
    cal = hl.compress(layer, "hmf", compression=2, heuristic="activation", X=[x, x[:1]])
    assert torch.isfinite(cal.eval()(x)).all()
    with pytest.raises(ValueError, match="fisher"):
        hl.compress(layer, "hmf", compression=2, heuristic="fisher", X=x, loss=lambda m, b: m(b).sum())


def test_engines_see_the_attention_projections():
    small = hl.compress(nn.TransformerEncoder(_encoder_layer(), 1, enable_nested_tensor=False), "hmf",
                        compression=2).eval()
    names = [n for n, _ in hl.engines.compressed_modules(small)]
    assert {f"layers.0.self_attn.{b}" for b in BLOCKS} <= set(names)
    x = _x()
    with torch.no_grad():
        ref = small(x)
    table = hl.engines.choose(small, x, min_run_time=0.002, rounds=1)
    assert set(table["layer"]) >= {"layers.0.self_attn.q_proj"}
    with torch.no_grad():
        torch.testing.assert_close(small(x), ref, atol=1e-5, rtol=1e-5)


def test_recompress_refused_and_layers_names():
    small = hl.compress(_encoder_layer(), "lmf", compression=2)
    with pytest.raises(ValueError, match="already compressed"):
        hl.compress(small, "lmf", compression=2)
    only = hl.compress(_encoder_layer(), "lmf", compression=2, layers=["self_attn"])
    assert isinstance(only.self_attn, CompressedMultiheadAttention) and type(only.linear1) is nn.Linear
    with pytest.raises(ValueError, match="valid names"):
        hl.compress(_encoder_layer(), "lmf", compression=2, layers=["self_attn.out_proj"])


def test_attention_calibration_rows_are_what_each_projection_sees():
    from hmf_lab.nn.attention import attention_calibration

    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(E, E), nn.MultiheadAttention(E, H, batch_first=True))

    class Wrap(nn.Module):
        def __init__(self):
            super().__init__()
            self.body = model

        def forward(self, x):
            h = self.body[0](x)
            return self.body[1](h, h, h, key_padding_mask=_kpm(), need_weights=False)[0]

    wrap = Wrap().eval()
    x = _x()
    rows = attention_calibration(wrap, ["body.1"], [(x,)])["body.1"]
    h = model[0](x).detach().transpose(0, 1).reshape(-1, E)  # (L*N, E): the (L, N, E) order of the heads
    torch.testing.assert_close(rows["q_proj"], h)
    assert rows["k_proj"].shape == rows["v_proj"].shape == rows["out_proj"].shape == (T * B, E)
    out = nn.functional.linear(rows["out_proj"], model[1].out_proj.weight, model[1].out_proj.bias)
    with torch.no_grad():
        torch.testing.assert_close(out, wrap(x).transpose(0, 1).reshape(-1, E), atol=1e-5, rtol=1e-5)
