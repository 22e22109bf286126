"""hl.engines: every engine of every compressed layer gives the same numbers; the choice is set, cached, reported.

No timed assertions: which engine wins is the machine's business; the tests check that the choice is one of
the correct engines, is applied to the module, is cached per (structure, input shape, dtype, threads) and
is reported.
"""
from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence

import hmf_lab as hl
from hmf_lab.perf import engines

FAST = dict(min_run_time=0.005, rounds=1)


def _close(a, b, atol=1e-5):
    return torch.allclose(a, b, atol=atol, rtol=1e-4)


@pytest.fixture(autouse=True)
def _fresh_cache():
    engines.clear_cache()
    yield
    engines.clear_cache()


def _linear_layers():
    torch.manual_seed(0)
    lin = nn.Linear(24, 20)
    return lin, {
        "hmf": hl.HMFLinear.from_linear(lin, split=3, rank=4),
        "hmf-rows": hl.HMFLinear.from_linear(lin, split=3, rank=4, heuristic="row_norm"),
        "lmf": hl.LMFLinear.from_linear(lin, rank=5),
        "csr": hl.SparseLinear.from_linear(lin, compression=3),
    }


@pytest.mark.parametrize("kind", ["hmf", "hmf-rows", "lmf", "csr"])
@pytest.mark.parametrize("shape", [(1, 24), (5, 24), (2, 3, 24), (24,)])
def test_every_linear_engine_gives_the_same_output(kind, shape):
    _, layers = _linear_layers()
    layer = layers[kind].eval()
    x = torch.randn(*shape)
    ref = x @ layer.to_dense().T + layer.bias.detach()
    for e in engines.engines_of(layer):
        engines.set_engine(layer, e)
        assert engines.current_engine(layer) == e
        with torch.inference_mode():
            y, again = layer(x), layer(x)  # second call from the cache
        assert y.shape == ref.shape and _close(y, ref) and _close(again, ref), e


def _lstms(num_layers=1, bidirectional=False, batch_first=True):
    torch.manual_seed(1)
    lstm = nn.LSTM(12, 16, num_layers=num_layers, bidirectional=bidirectional, batch_first=batch_first)
    return lstm, {"hmf": hl.HMFLSTM.from_lstm(lstm, compression=2), "lmf": hl.LMFLSTM.from_lstm(lstm, compression=2),
                  "csr": hl.SparseLSTM.from_lstm(lstm, compression=2)}


@pytest.mark.parametrize("kind", ["hmf", "lmf", "csr"])
@pytest.mark.parametrize("num_layers, bidirectional, batch_first", [(1, False, True), (2, True, False), (2, False, True)])
@pytest.mark.parametrize("with_state", [False, True])
def test_every_lstm_engine_gives_the_same_output(kind, num_layers, bidirectional, batch_first, with_state):
    _, mods = _lstms(num_layers, bidirectional, batch_first)
    comp = mods[kind].eval()
    dense = comp.to_lstm().eval()
    x = torch.randn(3, 5, 12)
    LD = num_layers * (2 if bidirectional else 1)
    hx = (torch.randn(LD, 5 if not batch_first else 3, 16), torch.randn(LD, 5 if not batch_first else 3, 16)) \
        if with_state else None
    with torch.inference_mode():
        y0, (h0, c0) = dense(x, hx)
        for e in engines.engines_of(comp):
            engines.set_engine(comp, e)
            y, (h, c) = comp(x, hx)
            assert _close(y, y0) and _close(h, h0) and _close(c, c0), e


@pytest.mark.parametrize("kind", ["hmf", "csr"])
def test_lstm_reconstructed_unbatched_and_packed_input(kind):
    _, mods = _lstms()
    comp = engines.set_engine(mods[kind].eval(), "reconstructed")
    dense = comp.to_lstm().eval()
    x = torch.randn(7, 12)  # unbatched (T, n)
    hx = (torch.randn(1, 16), torch.randn(1, 16))
    with torch.inference_mode():
        (y, (h, c)), (y0, (h0, c0)) = comp(x, hx), dense(x, hx)
        assert y.shape == y0.shape == (7, 16) and _close(y, y0) and _close(h, h0) and _close(c, c0)
        packed = pack_padded_sequence(torch.randn(2, 6, 12), torch.tensor([6, 3]), batch_first=True)
        yp, _ = comp(packed)
        yp0, _ = dense(packed)
        assert _close(yp.data, yp0.data)


def test_fused_lstm_cache_follows_weight_changes_and_training_still_differentiates():
    _, mods = _lstms()
    comp = engines.set_engine(mods["hmf"], "reconstructed")
    x = torch.randn(2, 4, 12)
    with torch.no_grad():
        before = comp(x)[0]
        comp.hh[0].U.mul_(2.0)  # in-place edit: the version counter moves, the cached W_hat is rebuilt
        after = comp(x)[0]
        expect = comp.to_lstm()(x)[0]
    assert not _close(before, after) and _close(after, expect)
    y, _ = comp(x)  # autograd on: gradients reach the factors
    y.sum().backward()
    assert comp.hh[0].U.grad is not None and float(comp.hh[0].U.grad.abs().sum()) > 0


def test_sparse_linear_reconstructed_cache_is_reused():
    _, layers = _linear_layers()
    layer = engines.set_engine(layers["csr"].eval(), "reconstructed")
    versions = [b._version for b in layer.buffers()]
    with torch.inference_mode():
        layer(torch.randn(1, 24))
        W = layer._inference_cache["W"][1]
        layer(torch.randn(1, 24))
        assert layer._inference_cache["W"][1] is W  # not rebuilt: to_dense leaves the buffers' versions alone
    assert [b._version for b in layer.buffers()] == versions


def test_choose_sets_reports_and_caches_the_choice():
    torch.manual_seed(0)
    net = nn.ModuleDict({"rnn": nn.LSTM(8, 16, batch_first=True), "out": nn.Linear(16, 10)})

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.m = net

        def forward(self, x):
            return self.m["out"](self.m["rnn"](x)[0])

    model = hl.compress(Net(), "hmf", compression=2)
    x = torch.randn(1, 6, 8)
    with torch.inference_mode():
        before = model(x)
    table = engines.choose(model, x, **FAST)
    assert set(table["layer"]) == {"m.rnn", "m.out"}
    assert set(table.columns) >= {"layer", "module", "engine", "time_us", "iqr_us", "max_abs_diff", "correct",
                                  "chosen", "cached", "threads", "dtype", "input_shape", "speedup_vs_dense"}
    assert (table.groupby("layer")["chosen"].sum() == 1).all()
    assert not table["cached"].any() and table["correct"].all() and (table["threads"] == 1).all()
    for name, mod in engines.compressed_modules(model):
        chosen = table[(table["layer"] == name) & table["chosen"]]["engine"].item()
        assert mod.chosen_engine == chosen == engines.current_engine(mod)
        assert chosen in engines.engines_of(mod)
    with torch.inference_mode():
        assert _close(model(x), before)  # the chosen engines compute the same model
    assert model.training  # training flags are restored
    # a second model with the same shapes: the cached choice, not measured again
    twin = hl.compress(Net(), "hmf", compression=2)
    again = engines.choose(twin, x, **FAST)
    assert again["cached"].all()
    assert list(again[again["chosen"]]["engine"]) == list(table[table["chosen"]]["engine"])
    # another thread count or input shape is another cache entry
    assert not engines.choose(twin, x, threads=2, **FAST)["cached"].any()
    assert not engines.choose(twin, torch.randn(1, 9, 8), **FAST)["cached"].any()
    s = engines.summary(table)
    assert list(s["layer"]) == list(dict.fromkeys(table["layer"])) and s["engine"].isin(engines.ENGINES).all()


def test_an_incorrect_engine_is_never_chosen():
    lin = nn.Linear(16, 16)
    model = nn.Sequential(hl.HMFLinear.from_linear(lin, split=2, rank=3))
    layer = model[0]
    layer.to_dense = lambda: 2 * hl.HMFLinear.to_dense(layer)  # a broken reconstruction
    table = engines.choose(model, torch.randn(1, 16), **FAST)
    rec = table[table["engine"] == "reconstructed"].iloc[0]
    assert not rec["correct"] and not rec["chosen"] and rec["max_abs_diff"] > 0
    assert layer.chosen_engine == "factorized" and layer.mode == "factorized"


def test_compare_models_columns_and_ratio_of_the_first():
    net = nn.Linear(16, 16)
    df = engines.compare_models({"dense": net, "lmf": hl.compress(net, "lmf", compression=2)}, torch.randn(1, 16),
                                min_run_time=0.01, rounds=2)
    assert list(df["name"]) == ["dense", "lmf"] and df["speedup"].iloc[0] == 1.0
    assert (df["median_us"] > 0).all() and (df["n"] >= 2).all()
    assert "load average" in engines.load_note() or "not available" in engines.load_note()


def test_engine_errors():
    layer = hl.HMFLinear(8, 8, split=2, rank=2)
    with pytest.raises(ValueError, match=r"engine must be one of \('factorized', 'reconstructed'\)"):
        engines.set_engine(layer, "csr")
    with pytest.raises(TypeError, match="must be a compressed layer"):
        engines.set_engine(nn.Linear(4, 4), "factorized")
    with pytest.raises(TypeError, match="must be a compressed layer"):
        engines.current_engine(nn.Linear(4, 4))
    sparse = hl.SparseLinear.from_linear(nn.Linear(8, 8), compression=2)
    with pytest.raises(ValueError, match=r"mode must be one of \('csr', 'reconstructed'\)"):
        sparse.mode = "factorized"
    model = nn.Sequential(layer)
    with pytest.raises(TypeError, match="model must be a torch.nn.Module"):
        engines.choose("model", torch.randn(1, 8))
    with pytest.raises(TypeError, match="model must be a torch.nn.Module"):
        engines.compressed_modules(None)
    with pytest.raises(TypeError, match="needs example inputs"):
        engines.choose(model)
    with pytest.raises(ValueError, match="no compressed layer"):
        engines.choose(nn.Sequential(nn.Linear(8, 8)), torch.randn(1, 8))
    with pytest.raises(ValueError, match="threads must be an int >= 1"):
        engines.choose(model, torch.randn(1, 8), threads=0)
    with pytest.raises(ValueError, match="min_run_time must be a positive number"):
        engines.choose(model, torch.randn(1, 8), min_run_time=-1)
    with pytest.raises(ValueError, match="rounds must be an int >= 1"):
        engines.choose(model, torch.randn(1, 8), rounds=1.5)
    with pytest.raises(ValueError, match="clock must be 'thread' or 'wall'"):
        engines.choose(model, torch.randn(1, 8), clock="cpu")
    with pytest.raises(TypeError, match="table must be the DataFrame"):
        engines.summary([1, 2])
    with pytest.raises(TypeError, match="named_models must be a non-empty dict"):
        engines.compare_models({}, torch.randn(1, 8))
    with pytest.raises(TypeError, match=r"named_models\['a'\] must be a torch.nn.Module"):
        engines.compare_models({"a": 3}, torch.randn(1, 8))


# ----------------------------------------------------------------------------- never slower, end to end
# A fake harness decides what is fast: the per-layer race says "factorized"/"csr" wins, the end-to-end race
# says whatever the test wants. No real time decides anything here.

from hmf_lab.perf.timing import Race, Timing  # noqa: E402


def _fake_race(end_to_end: dict, calls: list):
    """A stand-in for timing.race: runs every candidate once (after its prepare), returns chosen medians."""
    per_layer = {"factorized": 1e-3, "csr": 1e-3, "reconstructed": 2e-3, "dense": 2e-3}

    def fake(fns, *args, prepare=None, reference=None, **kw):
        whole = "fallback" in fns
        calls.append(sorted(fns))
        outs = {}
        for name, fn in fns.items():
            if prepare is not None:
                prepare(name)
            outs[name] = fn(*args)
        med = end_to_end if whole else per_layer
        return Race.from_timings({n: [Timing(median=med[n], iqr=0.0, n=1, threads=1)] for n in fns},
                                 reference=reference, load={"cores": 64, "load_1min": 0.0})
    return fake


def _char_lm_like():
    torch.manual_seed(3)

    class LM(nn.Module):
        def __init__(self):
            super().__init__()
            self.emb = nn.Embedding(20, 12)
            self.rnn = nn.LSTM(12, 16, batch_first=True)
            self.out = nn.Linear(16, 20)

        def forward(self, ids):
            return self.out(self.rnn(self.emb(ids))[0])

    return LM(), torch.randint(0, 20, (1, 7))


@pytest.mark.parametrize("method", ["lmf", "hmf", "prune"])
def test_choose_falls_back_when_the_choice_does_not_pay_end_to_end(monkeypatch, method):
    dense, ids = _char_lm_like()
    model = hl.compress(dense, method, compression=2, sparse=method == "prune")
    with torch.inference_mode():
        before = model(ids)
    calls = []
    monkeypatch.setattr(engines, "race", _fake_race({"chosen": 3e-3, "fallback": 2e-3, "dense": 2e-3}, calls))
    table = engines.choose(model, ids, min_run_time=0.01, rounds=1)
    v = table.attrs["end_to_end"]
    assert calls[-1] == ["chosen", "dense", "fallback"]  # the whole model, three configurations in one race
    assert v["decision"] == "fallback" and "fell back to reconstructed" in v["note"]
    assert set(v["chosen"].values()) == {"csr" if method == "prune" else "factorized"}
    per = table[table["per_layer"]].set_index("layer")["engine"]
    now = table[table["chosen"]].set_index("layer")["engine"]
    assert (per != "reconstructed").all() and (now == "reconstructed").all()
    for name, mod in engines.compressed_modules(model):
        assert mod.chosen_engine == engines.current_engine(mod) == "reconstructed"
    assert v["median_us"] == {"chosen": 3000.0, "fallback": 2000.0, "dense": 2000.0}
    assert v["speedup_vs_dense"]["chosen"] == pytest.approx(2 / 3)
    s = engines.summary(table)
    assert (s["decision"] == "fallback").all() and (s["engine"] == "reconstructed").all()
    assert (s["per_layer"] != "reconstructed").all() and s.attrs["end_to_end"]["note"] == v["note"]
    # the model itself is back in place (the dense twins were only swapped in while timed) and computes
    # the same outputs on its final engines
    assert isinstance(model.rnn, engines.CompressedLSTM) and type(model.out) is not nn.Linear
    with torch.inference_mode():
        assert _close(model(ids), before)


def test_choose_keeps_the_choice_when_it_pays_end_to_end_and_caches_the_decision(monkeypatch):
    dense, ids = _char_lm_like()
    model = hl.compress(dense, "lmf", compression=2)
    with torch.inference_mode():
        before = model(ids)
    calls = []
    monkeypatch.setattr(engines, "race", _fake_race({"chosen": 1e-3, "fallback": 2e-3, "dense": 2e-3}, calls))
    table = engines.choose(model, ids, min_run_time=0.01, rounds=1)
    v = table.attrs["end_to_end"]
    assert v["decision"] == "kept" and "kept the per-layer choice" in v["note"] and "2.00x dense" in v["note"]
    assert (table[table["chosen"]]["engine"] == "factorized").all()
    assert (table["chosen"] == table["per_layer"]).all()
    with torch.inference_mode():
        assert _close(model(ids), before)
    n = len(calls)
    again = engines.choose(hl.compress(dense, "lmf", compression=2), ids, min_run_time=0.01, rounds=1)
    assert len(calls) == n and again.attrs["end_to_end"]["cached"]  # nothing timed again
    assert again.attrs["end_to_end"]["decision"] == "kept"
    engines.choose(model, ids, min_run_time=0.01, rounds=1, use_cache=False)
    assert len(calls) == n + 3  # two layers and the whole model, measured again


def test_choose_without_confirm_and_when_nothing_needs_confirming(monkeypatch):
    dense, ids = _char_lm_like()
    calls = []
    monkeypatch.setattr(engines, "race", _fake_race({"chosen": 3e-3, "fallback": 2e-3, "dense": 2e-3}, calls))
    model = hl.compress(dense, "lmf", compression=2)
    t = engines.choose(model, ids, min_run_time=0.01, rounds=1, confirm=False)
    assert t.attrs["end_to_end"]["decision"] == "not confirmed" and ["chosen", "dense", "fallback"] not in calls
    assert (t[t["chosen"]]["engine"] == "factorized").all()  # the per-layer choice stands
    # per-layer winner is already the fallback: no end-to-end race
    monkeypatch.setattr(engines, "race", _slow_factors(calls))
    engines.clear_cache()
    t = engines.choose(hl.compress(dense, "lmf", compression=2), ids, min_run_time=0.01, rounds=1)
    assert t.attrs["end_to_end"]["decision"] == "nothing to confirm"
    # the model is one layer: its race was end to end
    layer = hl.LMFLinear.from_linear(nn.Linear(8, 8), rank=2)
    monkeypatch.setattr(engines, "race", _fake_race({}, calls))
    t = engines.choose(layer, torch.randn(1, 8), min_run_time=0.01, rounds=1)
    assert t.attrs["end_to_end"]["decision"] == "single layer" and layer.chosen_engine == "factorized"
    with pytest.raises(TypeError, match="confirm must be True"):
        engines.choose(layer, torch.randn(1, 8), confirm="yes")


def _slow_factors(calls):
    def fake(fns, *args, prepare=None, reference=None, **kw):
        calls.append(sorted(fns))
        med = {"factorized": 3e-3, "csr": 3e-3, "reconstructed": 1e-3, "dense": 1e-3}
        return Race.from_timings({n: [Timing(median=med[n], iqr=0.0, n=1, threads=1)] for n in fns},
                                 reference=reference, load={"cores": 64, "load_1min": 0.0})
    return fake


def test_end_to_end_check_with_the_real_harness_keeps_outputs():
    """No fake: whatever the machine decides, the engines that run compute the model's outputs."""
    dense, ids = _char_lm_like()
    model = hl.compress(dense, "hmf", compression=2)
    with torch.inference_mode():
        before = model(ids)
    table = engines.choose(model, ids, min_run_time=0.005, rounds=1)
    v = table.attrs["end_to_end"]
    assert v["decision"] in ("kept", "fallback", "nothing to confirm")
    if v["decision"] in ("kept", "fallback"):
        assert set(v["median_us"]) == {"chosen", "fallback", "dense"} and v["max_abs_diff"]["dense"] < 1e-3
    with torch.inference_mode():
        assert _close(model(ids), before)
    assert type(model.rnn).__name__ == "HMFLSTM"


def test_choose_falls_back_when_the_whole_model_output_differs(monkeypatch):
    dense, ids = _char_lm_like()
    model = hl.compress(dense, "lmf", compression=2)
    calls = []
    monkeypatch.setattr(engines, "race", _fake_race({"chosen": 1e-3, "fallback": 2e-3, "dense": 2e-3}, calls))
    monkeypatch.setattr(engines, "END_TO_END_RTOL", -1.0)  # any difference, even none, is too much
    table = engines.choose(model, ids, min_run_time=0.01, rounds=1)
    v = table.attrs["end_to_end"]
    assert v["decision"] == "fallback" and "model output differs from the fallback's" in v["note"]
    assert (table[table["chosen"]]["engine"] == "reconstructed").all()


def test_choose_end_to_end_without_the_dense_model(monkeypatch):
    dense, ids = _char_lm_like()
    model = hl.compress(dense, "hmf", compression=2)
    calls = []
    monkeypatch.setattr(engines, "race", _fake_race({"chosen": 3e-3, "fallback": 2e-3}, calls))
    table = engines.choose(model, ids, min_run_time=0.01, rounds=1, dense=False)
    v = table.attrs["end_to_end"]
    assert calls[-1] == ["chosen", "fallback"] and v["speedup_vs_dense"] == {}
    assert v["decision"] == "fallback" and "dense)" not in v["note"] and "dense" not in set(table["engine"])
