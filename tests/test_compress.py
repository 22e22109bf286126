"""hl.compress / hl.sparsify / hl.count_params on models with Embedding + LSTM + Linear."""
from __future__ import annotations

import io

import pytest
import torch
from torch import nn

import hmf_lab as hl


class TinyLM(nn.Module):
    """Embedding -> LSTM(batch_first) -> Linear: the shape of the course's language model."""

    def __init__(self, vocab=20, embed=16, hidden=32, layers=2):
        super().__init__()
        self.embedding = nn.Embedding(vocab, embed)
        self.lstm = nn.LSTM(embed, hidden, num_layers=layers, batch_first=True)
        self.decoder = nn.Linear(hidden, vocab)

    def forward(self, x, state=None):
        out, state = self.lstm(self.embedding(x), state)
        return self.decoder(out), state


def _tokens(B=3, T=6):
    return torch.randint(0, 20, (B, T))


def _same_state(a: nn.Module, b: nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


@pytest.mark.parametrize("method, sparse, lstm_type, linear_type", [
    ("hmf", False, hl.HMFLSTM, hl.HMFLinear),
    ("lmf", False, hl.LMFLSTM, hl.LMFLinear),
    ("prune", False, hl.PrunedLSTM, nn.Linear),
    ("prune", True, hl.SparseLSTM, hl.SparseLinear),
])
@pytest.mark.slow
def test_replaces_modules_and_keeps_signature(method, sparse, lstm_type, linear_type):
    model = TinyLM().eval()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    small = hl.compress(model, method, compression=4, sparse=sparse)
    assert type(small.lstm) is lstm_type and type(small.decoder) is linear_type
    assert type(small.embedding) is nn.Embedding and not small.training
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())  # original untouched
    assert type(model.lstm) is nn.LSTM
    x = _tokens()
    h0 = (torch.randn(2, 3, 32), torch.randn(2, 3, 32))
    with torch.no_grad():
        y, (h, c) = small(x, h0)
        y0, (hd, cd) = model(x, h0)
    assert y.shape == y0.shape and h.shape == hd.shape and c.shape == cd.shape
    ratio = hl.count_params(model) / hl.count_params(small)
    assert 3.6 <= ratio <= 4.8, ratio  # the same counting rule for every method


def test_hmf_compression_one_is_exact():
    model = TinyLM().eval()
    same = hl.compress(model, "hmf", compression=1)
    assert isinstance(same.lstm, hl.HMFLSTM) and hl.count_params(same) == hl.count_params(model)
    x = _tokens()
    with torch.no_grad():
        (y, (h, c)), (y0, (h0, c0)) = same(x), model(x)
    assert torch.allclose(y, y0, atol=1e-5) and torch.allclose(h, h0, atol=1e-5) and torch.allclose(c, c0, atol=1e-5)


@pytest.mark.slow
@pytest.mark.parametrize("method", ["hmf", "lmf", "prune"])
def test_compressed_models_train(method):
    small = hl.compress(TinyLM(), method, compression=2)
    opt = torch.optim.Adam(small.parameters(), lr=1e-2)
    x = _tokens()
    losses = []
    for _ in range(5):
        opt.zero_grad()
        logits, _ = small(x[:, :-1])
        loss = nn.functional.cross_entropy(logits.reshape(-1, 20), x[:, 1:].reshape(-1))
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0]
    if method == "prune":
        assert float(small.decoder.weight.detach()[~small.decoder.weight_mask.bool()].abs().sum()) == 0.0


def test_sparsify_matches_masked_model():
    pruned = hl.compress(TinyLM().eval(), "prune", compression=4)
    fast = hl.sparsify(pruned)
    assert isinstance(fast.lstm, hl.SparseLSTM) and isinstance(fast.decoder, hl.SparseLinear)
    assert hl.count_params(fast) == hl.count_params(pruned)
    assert isinstance(pruned.lstm, hl.PrunedLSTM)  # sparsify copies
    x = _tokens()
    with torch.no_grad():
        assert torch.allclose(fast(x)[0], pruned(x)[0], atol=1e-5)
    direct = hl.compress(TinyLM().eval(), "prune", compression=4, sparse=True)
    assert isinstance(direct.lstm, hl.SparseLSTM)
    single = hl.sparsify(hl.compress(nn.Linear(8, 8), "prune", compression=2))
    assert isinstance(single, hl.SparseLinear) and single.nnz == 32


@pytest.mark.slow
def test_layers_and_overrides():
    model = TinyLM()
    part = hl.compress(model, "hmf", compression=4, layers=["lstm"])
    assert isinstance(part.lstm, hl.HMFLSTM) and type(part.decoder) is nn.Linear
    fixed = hl.compress(model, "hmf", split=4, rank=3)
    assert fixed.lstm.split == (4,) * 4 and fixed.decoder.split == 4 and fixed.decoder.rank == 3
    per = hl.compress(model, "hmf", compression=4, split={"lstm": {"hh": 2}, "decoder": 1})
    assert per.lstm.split[1::2] == (2, 2) and per.decoder.split == 1
    lm = hl.compress(model, "lmf", rank=2)
    assert lm.lstm.rank == (2,) * 4 and lm.decoder.rank == 2
    whole = hl.compress(nn.LSTM(8, 8), "hmf", compression=2)
    assert isinstance(whole, hl.HMFLSTM)


@pytest.mark.slow
@pytest.mark.parametrize("method", ["hmf", "prune"])
def test_state_dict_round_trip(method):
    a = hl.compress(TinyLM(), method, compression=3)
    b = hl.compress(TinyLM(), method, compression=3)
    buf = io.BytesIO()
    torch.save(a.state_dict(), buf)
    buf.seek(0)
    b.load_state_dict(torch.load(buf, weights_only=True))
    assert _same_state(a, b)
    x = _tokens()
    with torch.no_grad():
        assert torch.equal(a.eval()(x)[0], b.eval()(x)[0])


def test_count_params_plain_models():
    assert hl.count_params(nn.LSTM(8, 16, num_layers=2)) == 4 * 16 * (8 + 16) + 4 * 16 * (16 + 16)
    assert hl.count_params(TinyLM(layers=1)) == 4 * 32 * (16 + 32) + 20 * 32


def test_errors():
    model = TinyLM()
    with pytest.raises(TypeError, match="model must be a torch.nn.Module"):
        hl.compress("model", "hmf", 4)
    with pytest.raises(ValueError, match=r"method must be one of \('hmf', 'lmf', 'prune'\)"):
        hl.compress(model, "svd", 4)
    with pytest.raises(TypeError, match="compression is required for method 'prune'"):
        hl.compress(model, "prune")
    with pytest.raises(TypeError, match="compression is required for method 'hmf' unless split and rank"):
        hl.compress(model, "hmf", split=3)
    with pytest.raises(ValueError, match="compression must be a finite number >= 1"):
        hl.compress(model, "hmf", 0.5)
    with pytest.raises(ValueError, match="split .* only applies to method 'hmf'"):
        hl.compress(model, "lmf", 4, split=2)
    with pytest.raises(ValueError, match="sparse=True only applies to method 'prune'"):
        hl.compress(model, "hmf", 4, sparse=True)
    with pytest.raises(ValueError, match=r"layers \['nope'\] are not nn.Linear / nn.LSTM modules"):
        hl.compress(model, "hmf", 4, layers=["nope"])
    with pytest.raises(TypeError, match="model must be a torch.nn.Module"):
        hl.sparsify(3)
    with pytest.raises(TypeError, match="model must be a torch.nn.Module"):
        hl.count_params(3)
    with pytest.raises(ValueError, match="mask must have the shape of weight"):
        hl.SparseLinear.from_dense(torch.ones(2, 3), mask=torch.ones(3, 2, dtype=torch.bool))
    with pytest.raises(ValueError, match="mask keeps no entry"):
        hl.SparseLinear.from_dense(torch.zeros(2, 3))


def test_compress_inside_inference_mode_gives_trainable_model():
    model = TinyLM().eval()
    with torch.inference_mode():
        small = hl.compress(model, "hmf", compression=4)
        y = small(_tokens())[0]
    assert y.shape == (3, 6, 20)
    assert all(not p.is_inference() and p.requires_grad for p in small.parameters())


@pytest.mark.slow
def test_sparsify_right_after_a_training_step():
    """Masked weights still hold the last forward's graph; sparsify must not need a no_grad pass first."""
    model = nn.Sequential(nn.Linear(16, 16), nn.Tanh(), nn.Linear(16, 4))
    pruned = hl.compress(model, "prune", compression=4)
    opt = torch.optim.SGD(pruned.parameters(), lr=0.1)
    x = torch.randn(8, 16)
    pruned(x).pow(2).sum().backward()
    opt.step()
    loss = pruned(x).pow(2).sum()  # graph-carrying masked weights, as after any training forward
    fast = hl.sparsify(pruned)
    assert type(fast[0]).__name__ == "SparseLinear"
    with torch.no_grad():
        torch.testing.assert_close(fast(x), pruned(x))
    assert loss.requires_grad
