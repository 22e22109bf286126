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
    with pytest.raises(ValueError, match=r"method must be one of \['aa_lmf', 'hmf', 'hmf_col', 'lmf', 'oats', 'prune', 'wanda'\]"):
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


# --------------------------------------------------------------------------- shared modules, one walk (issue 12)


@pytest.mark.parametrize("method,kw", [("hmf", {}), ("lmf", {}), ("prune", {}), ("prune", {"sparse": True})])
def test_shared_module_stays_shared(method, kw):
    """Issue 12 5(a): a module used twice is compressed once and stays shared; the model shrinks."""
    lin = nn.Linear(64, 64)
    net = nn.Sequential(lin, nn.ReLU(), lin)
    new = hl.compress(net, method, compression=4, **kw)
    assert new[0] is new[2]  # one replacement at both places
    assert new[0] is not lin and net[0] is lin is net[2]  # the original is untouched
    assert hl.count_params(new) < hl.count_params(net) == 64 * 64
    assert hl.count_params(new) <= 64 * 64 / 4
    x = torch.randn(3, 64)
    with torch.no_grad():
        assert torch.allclose(new(x), new[0](torch.relu(new[0](x))), atol=1e-6)
    if method != "prune" or kw:  # stored tensors really shrink (masked pruning keeps weight_orig by design)
        assert sum(p.numel() for p in new.parameters()) < sum(p.numel() for p in net.parameters())


def test_shared_module_across_parents():
    lin = nn.Linear(32, 32)
    net = nn.ModuleDict({"a": nn.Sequential(lin), "b": nn.Sequential(nn.ReLU(), lin)})
    new = hl.compress(net, "hmf", compression=2)
    assert new["a"][0] is new["b"][1] and isinstance(new["a"][0], hl.HMFLinear)
    assert hl.count_params(new) == new["a"][0].n_params  # counted once


def test_replace_modules_helper():
    from hmf_lab.nn.compress import replace_modules

    act = nn.ReLU()
    net = nn.Sequential(nn.Linear(4, 4), act, nn.Sequential(act, nn.Linear(4, 2)))
    seen = []

    def to_tanh(name, mod):
        seen.append(name)
        return nn.Tanh() if isinstance(mod, nn.ReLU) else None

    new = replace_modules(net, to_tanh)
    assert isinstance(new[1], nn.Tanh) and new[1] is new[2][0] and isinstance(net[1], nn.ReLU)
    assert seen == ["", "0", "1", "2", "2.1"]  # the shared ReLU converted once, under its first name
    same = replace_modules(net, to_tanh, inplace=True)
    assert same is net and isinstance(net[1], nn.Tanh)
    assert replace_modules(net, lambda name, mod: nn.Identity() if name == "" else None).__class__ is nn.Identity
    with pytest.raises(TypeError, match="convert must be a callable"):
        replace_modules(net, "tanh")
    with pytest.raises(TypeError, match="model must be a torch.nn.Module, got int"):
        replace_modules(3, to_tanh)


def test_compress_already_compressed():
    """Issue 12 5(l): compressing a compressed model raised nothing and did nothing."""
    net = nn.Sequential(nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 64))
    small = hl.compress(net, "hmf", compression=4)
    with pytest.raises(ValueError, match=r"model is already compressed: '0', '2' hold HMF/LMF/pruned weights"):
        hl.compress(small, "lmf", compression=4)
    pruned = hl.compress(net, "prune", compression=4)
    with pytest.raises(ValueError, match="model is already compressed"):
        hl.compress(pruned, "prune", compression=4)
    half = hl.compress(net, "hmf", compression=4, layers=["0"])
    with pytest.warns(UserWarning, match=r"partly compressed: '0' are kept as they are; compressing the remaining '2'"):
        both = hl.compress(half, "lmf", compression=4)
    assert isinstance(both[0], hl.HMFLinear) and isinstance(both[2], hl.LMFLinear)
    with pytest.raises(ValueError, match=r"no nn.Linear or nn.LSTM to compress \(it is a ReLU\)"):
        hl.compress(nn.ReLU(), "hmf", compression=2)
    with pytest.raises(TypeError, match="layers must be a module name or a list of names"):
        hl.compress(net, "hmf", compression=2, layers=[0])



def test_select_modules_one_selection_for_compress_report_and_experiments():
    """Issue 18 part 6: one module selection (compress, report, the experiments' compressed_layers)."""
    from hmf_lab.experiments.pipeline import compressed_layers
    from hmf_lab.nn.compress import select_modules

    net = nn.ModuleDict({"rnn": nn.LSTM(8, 64), "head": nn.Linear(64, 7), "proj": nn.Linear(64, 64)})
    assert select_modules(net) == ["rnn", "head", "proj"]
    assert select_modules(net, min_dim=32) == compressed_layers(net) == ["rnn", "proj"]
    assert select_modules(net, ("proj", "rnn")) == ["proj", "rnn"]
    pruned = hl.compress(net, "prune", compression=2, layers=["head"])
    # compress skips what it made (with a warning); report looks at every nn.Linear / nn.LSTM, pruned or not
    with pytest.warns(UserWarning, match="partly compressed"):
        assert select_modules(pruned) == ["rnn", "proj"]
    assert select_modules(pruned, skip_compressed=False) == ["rnn", "head", "proj"]
    with pytest.raises(ValueError, match=r"layers \['head'\] are not nn.Linear / nn.LSTM modules of the model "
                                         r"\(not yet compressed\)"):
        select_modules(pruned, ["head"])
    with pytest.raises(ValueError, match=r"no nn.Linear or nn.LSTM to report on \(it is a Sequential\)"):
        select_modules(nn.Sequential(nn.ReLU()), skip_compressed=False, purpose="report on")
    with pytest.raises(ValueError, match="no plain nn.Linear / nn.LSTM is left to report on"):
        select_modules(hl.compress(net, "lmf", compression=2), purpose="report on")


# --------------------------------------------------------------------------- calibration inputs (issue 9 item 3)


def _aniso(n, rows, seed=0):
    g = torch.Generator().manual_seed(seed)
    scale = torch.ones(n)
    scale[: n // 8] = 20.0  # a few input features carry most of the energy
    return torch.randn(rows, n, generator=g) * scale


def test_activation_with_calibration_beats_top():
    net = nn.Sequential(nn.Linear(128, 128), nn.ReLU(), nn.Linear(128, 64))
    Xc, Xt = _aniso(128, 512, 1), _aniso(128, 256, 2)
    with torch.no_grad():
        y = net(Xt)

        def err(m):
            return float((m(Xt) - y).norm() / y.norm())

        top = err(hl.compress(net, "hmf", compression=4))
        act = err(hl.compress(net, "hmf", compression=4, heuristic="activation", X=Xc))
        act_list = err(hl.compress(net, "hmf", compression=4, heuristic="activation", X=[Xc[:300], Xc[300:]]))
    assert act < 0.8 * top
    assert act_list == pytest.approx(act, rel=1e-4)  # a list of batches is the same calibration set


def test_activation_with_calibration_on_lstm():
    lstm = nn.LSTM(32, 64, num_layers=2, batch_first=True, bidirectional=True)
    xs = _aniso(32, 8 * 12).reshape(8, 12, 32)
    with torch.no_grad():
        ref = lstm(xs)[0]
        top = hl.compress(lstm, "hmf", compression=4)
        act = hl.compress(lstm, "hmf", compression=4, heuristic="activation", X=xs)
        e_top = float((top(xs)[0] - ref).norm() / ref.norm())
        e_act = float((act(xs)[0] - ref).norm() / ref.norm())
    assert e_act < e_top


def test_fisher_on_a_whole_model_leaves_grads():
    net = nn.Sequential(nn.Linear(128, 128), nn.ReLU(), nn.Linear(128, 128))
    net[2].weight.grad = torch.ones(128, 128)
    X = torch.randn(32, 128)
    small = hl.compress(net, "hmf", compression=4, heuristic="fisher", X=X,
                        loss=lambda model, batch: model(batch)[:, [3, 70]].pow(2).mean())
    assert {3, 70} <= set(small[2].rows.tolist())  # the only outputs the loss sees
    assert torch.equal(net[2].weight.grad, torch.ones(128, 128)) and net[0].weight.grad is None
    lstm = nn.LSTM(64, 128, batch_first=True)
    g = hl.compress(lstm, "hmf", compression=4, heuristic="fisher", X=torch.randn(4, 5, 64),
                    loss=lambda model, batch: model(batch)[0][..., 7].pow(2).mean())
    assert all(7 in rows.tolist() for rows in g.hh[0].rows)  # per gate block


def test_calibration_errors():
    net = nn.Sequential(nn.Linear(16, 16), nn.ReLU(), nn.Linear(16, 4))
    X = torch.randn(8, 16)
    with pytest.raises(ValueError, match="X .* only applies to method 'hmf' or 'hmf_col'.*, got method 'lmf'"):
        hl.compress(net, "lmf", compression=2, X=X)
    with pytest.raises(ValueError, match=r"X batch 0 must be a non-empty batch, got shape \(0, 16\)"):
        hl.compress(net, "hmf", compression=2, heuristic="activation", X=torch.zeros(0, 16))
    with pytest.raises(ValueError, match="X must hold at least one batch"):
        hl.compress(net, "hmf", compression=2, heuristic="activation", X=[])
    with pytest.raises(ValueError, match="X batch 0 is on the meta device"):
        hl.compress(net, "hmf", compression=2, heuristic="activation", X=torch.zeros(4, 16, device="meta"))
    with pytest.raises(TypeError, match="X must be a batch of model inputs .* got str"):
        hl.compress(net, "hmf", compression=2, heuristic="activation", X="data")
    with pytest.raises(ValueError, match="heuristic 'fisher' on a whole model needs X=batches and loss"):
        hl.compress(net, "hmf", compression=2, heuristic="fisher")
    with pytest.raises(TypeError, match="heuristic 'fisher' needs loss=callable"):
        hl.compress(net, "hmf", compression=2, heuristic="fisher", X=X)
    with pytest.raises(TypeError, match=r"loss must return a scalar tensor, got Tensor \(8, 4\)"):
        hl.compress(net, "hmf", compression=2, heuristic="fisher", X=X, loss=lambda m, b: m(b))
    with pytest.raises(ValueError, match="loss is only used by heuristic 'fisher'"):
        hl.compress(net, "hmf", compression=2, X=X, loss=lambda m, b: m(b).sum())
    with pytest.raises(ValueError, match="loss needs calibration batches"):
        hl.compress(net, "hmf", compression=2, loss=lambda m, b: m(b).sum())
    branchy = nn.ModuleDict({"a": nn.Linear(16, 16), "b": nn.Linear(16, 16)})
    branchy.forward = lambda x: branchy["a"](x)
    with pytest.raises(ValueError, match="layer 'b' never ran on the calibration inputs X"):
        hl.compress(branchy, "hmf", compression=2, heuristic="activation", X=X)


def test_capture_inputs_records_calls_and_always_removes_its_hooks():
    """Issue 18 part 6: one calibration capture (compress, report, engines, leaderboard build on it)."""
    from hmf_lab.nn.compress import capture_inputs, recording

    net = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
    batches = [(torch.randn(5, 3),), (torch.randn(2, 3),)]
    calls = capture_inputs(net, {"0": net[0], "2": net[2]}, batches)
    assert [a[0].shape for a in calls["0"]] == [(5, 3), (2, 3)] and torch.equal(calls["0"][0][0], batches[0][0])
    assert [a[0].shape for a in calls["2"]] == [(5, 4), (2, 4)] and not calls["2"][0][0].requires_grad
    kw = capture_inputs(net, [("0", net[0])], batches[:1], kwargs=True)
    assert len(kw["0"]) == 1 and kw["0"][0][1] == {} and torch.equal(kw["0"][0][0][0], batches[0][0])
    with pytest.raises(RuntimeError):  # a misfit input: the error propagates and no hook is left behind
        capture_inputs(net, [("0", net[0]), ("2", net[2])], [(torch.randn(5, 7),)])
    assert not net[0]._forward_pre_hooks and not net[2]._forward_pre_hooks
    with pytest.raises(KeyError):
        with recording([("0", net[0])]) as got:
            net(torch.randn(1, 3))
            raise KeyError("stop")
    assert len(got["0"]) == 1 and not net[0]._forward_pre_hooks
