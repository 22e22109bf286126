"""Issue 18, bad-input campaign: every compressed layer pickles and deep-copies (in train and eval mode,
before and after a forward and an optimizer step) and gives the same outputs afterwards; meta-device and
float64 inputs get a clear error, not a raw torch RuntimeError."""
from __future__ import annotations

import copy
import pickle

import pytest
import torch
from torch import nn

import hmf_lab as hl

KINDS = ("HMFLinear", "LMFLinear", "SparseLinear", "HMFLSTM", "LMFLSTM", "PrunedLSTM", "SparseLSTM")
LINEARS = ("HMFLinear", "LMFLinear", "SparseLinear")


def build(kind: str) -> nn.Module:
    torch.manual_seed(0)
    if kind in LINEARS:
        lin = nn.Linear(12, 16)
        return {"HMFLinear": lambda: hl.HMFLinear.from_linear(lin, split=3, rank=2),
                "LMFLinear": lambda: hl.LMFLinear.from_linear(lin, rank=2),
                "SparseLinear": lambda: hl.SparseLinear.from_linear(lin, 2)}[kind]()
    lstm = nn.LSTM(8, 6)
    cls = getattr(hl, kind)
    return cls.from_lstm(lstm, compression=2)


def inputs(kind: str) -> torch.Tensor:
    g = torch.Generator().manual_seed(1)
    return torch.randn(4, 12, generator=g) if kind in LINEARS else torch.randn(3, 2, 8, generator=g)


def run(m: nn.Module, x: torch.Tensor) -> torch.Tensor:
    y = m(x)
    return y[0] if isinstance(y, tuple) else y


def pickled(m):
    return pickle.loads(pickle.dumps(m))


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
@pytest.mark.parametrize("stage", ["fresh", "forward", "step"])
@pytest.mark.parametrize("copier", [pickled, copy.deepcopy], ids=["pickle", "deepcopy"])
def test_every_layer_pickles_and_deep_copies(kind, training, stage, copier):
    m = build(kind).train(training)
    x = inputs(kind)
    if stage in ("forward", "step"):
        with torch.no_grad():
            run(m, x)            # fills the inference caches (a CSR tensor for the sparse kinds)
        run(m, x)                # with autograd: PrunedLSTM's weights become non-leaf tensors
    if stage == "step":
        opt = torch.optim.SGD(m.parameters(), lr=0.1)
        run(m, x).square().sum().backward()
        opt.step()
        run(m, x)
    c = copier(m)
    assert type(c) is type(m) and c.training == training
    assert c.state_dict().keys() == m.state_dict().keys()
    for k, v in m.state_dict().items():
        assert torch.equal(c.state_dict()[k], v), k
    with torch.no_grad():
        torch.testing.assert_close(run(c, x), run(m, x), rtol=0, atol=0)
    torch.testing.assert_close(run(c, x), run(m, x), rtol=0, atol=0)   # the autograd path too
    # the copy is independent and still trains and loads state dicts (the load hooks survived)
    opt = torch.optim.SGD(c.parameters(), lr=0.1)
    before = {k: v.clone() for k, v in m.state_dict().items()}
    run(c, x).square().sum().backward()
    opt.step()
    for k, v in m.state_dict().items():
        assert torch.equal(v, before[k]), k
    c.load_state_dict(m.state_dict())
    with torch.no_grad():
        torch.testing.assert_close(run(c, x), run(m, x), rtol=0, atol=0)


def test_issue_example_pickles():
    h = hl.HMFLinear.from_linear(nn.Linear(12, 16), split=3, rank=2)
    assert pickle.loads(pickle.dumps(h)).split == 3


@pytest.mark.parametrize("kind", LINEARS)
@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
@pytest.mark.parametrize("grad", [True, False], ids=["grad", "no_grad"])
def test_meta_input_to_a_linear_layer_is_a_clear_value_error(kind, training, grad):
    m = build(kind).train(training)
    x = torch.empty(4, 12, device="meta")
    with torch.set_grad_enabled(grad):
        with pytest.raises(ValueError, match=rf"{kind} input is on the meta device .*device='cpu'"):
            m(x)


@pytest.mark.parametrize("kind", LINEARS)
def test_meta_layer_with_real_input_is_a_clear_value_error(kind):
    m = build(kind).to("meta")
    with pytest.raises(ValueError, match=rf"{kind} is on the meta device.*to_empty\(device='cpu'\)"):
        m(torch.randn(4, 12))


@pytest.mark.parametrize("kind", ("HMFLSTM", "LMFLSTM", "SparseLSTM"))
@pytest.mark.parametrize("lstm_mode", ["auto", "factorized", "reconstructed"])
@pytest.mark.parametrize("grad", [True, False], ids=["grad", "no_grad"])
def test_meta_input_to_a_compressed_lstm_is_a_clear_value_error(kind, lstm_mode, grad):
    m = build(kind)
    m.mode = lstm_mode
    with torch.set_grad_enabled(grad):
        with pytest.raises(ValueError, match="LSTM input is on the meta device.*model's device cpu"):
            m(torch.empty(3, 2, 8, device="meta"))


def test_kernel_errors_that_are_not_about_devices_stay_as_they_are(monkeypatch):
    """The device diagnosis runs only after a kernel failed; any other failure is re-raised unchanged."""
    m = build("LMFLinear").eval()

    def boom(*a, **k):
        raise RuntimeError("some kernel failure")

    monkeypatch.setattr(torch, "addmm", boom)
    with pytest.raises(RuntimeError, match="some kernel failure"):
        m(torch.randn(4, 12))


def _lstm_error(model, x):
    with pytest.raises(Exception) as e:
        model(x)
    return type(e.value), str(e.value)


@pytest.mark.parametrize("kind", ("HMFLSTM", "LMFLSTM", "SparseLSTM", "PrunedLSTM"))
@pytest.mark.parametrize("mode", ["train", "eval", "no_grad"])
@pytest.mark.parametrize("lstm_mode", ["auto", "factorized", "reconstructed"])
def test_float64_input_to_a_float32_lstm_matches_nn_lstm(kind, mode, lstm_mode):
    """nn.LSTM (float32) fed float64 raises ValueError "RNN input dtype ... Convert input: ..., or convert
    model: ..."; every compressed LSTM now raises the same in every mode (no_grad gave a raw RuntimeError)."""
    torch.manual_seed(0)
    lstm = nn.LSTM(8, 6)
    m = build(kind)
    if kind == "PrunedLSTM":
        if lstm_mode != "auto":
            pytest.skip("PrunedLSTM is an nn.LSTM: it has no mode")
    else:
        m.mode = lstm_mode
    x = torch.randn(3, 2, 8, dtype=torch.float64)
    for mod in (lstm, m):
        mod.train(mode == "train")
    with torch.set_grad_enabled(mode != "no_grad"):
        want = _lstm_error(lstm, x)
        got = _lstm_error(m, x)
    assert want[0] is ValueError and "Convert input: input.to(torch.float32)" in want[1]
    assert got == want
    m64 = m.double()
    if kind != "SparseLSTM" or mode != "train":
        with torch.set_grad_enabled(mode != "no_grad"):
            assert run(m64, x).dtype == torch.float64      # the fix the message names works
    with pytest.raises(ValueError, match=r"RNN input dtype \(torch.float32\) does not match weight dtype "
                                         r"\(torch.float64\)"):
        m64(x.float())


@pytest.mark.parametrize("kind", LINEARS)
@pytest.mark.parametrize("grad", [True, False], ids=["grad", "no_grad"])
def test_float64_input_to_a_float32_linear_layer_is_a_type_error(kind, grad):
    m = build(kind)
    with torch.set_grad_enabled(grad):
        with pytest.raises(TypeError, match=rf"{kind} input must have the layer's dtype torch.float32, got "
                                            r"torch.float64; convert it first, e.g. x.to\(torch.float32\) "
                                            r"\(or the layer with .to\(torch.float64\)"):
            m(torch.randn(4, 12, dtype=torch.float64))


@pytest.mark.parametrize("kind", LINEARS)
def test_input_on_another_device_is_named(kind):
    """The message for an input and a layer on two real devices (a CPU-only machine has one: the weight's
    device is faked here; the kernel's own error is what triggers the diagnosis)."""
    from types import SimpleNamespace

    from hmf_lab.nn.layers import _bad_device

    m = build(kind)
    gpu = SimpleNamespace(device=torch.device("cuda", 0))
    with pytest.raises(ValueError, match=rf"{kind} input is on cpu, the layer on cuda:0; move one of them, "
                                         r"e.g. x.to\('cuda:0'\) or layer.to\('cpu'\)"):
        _bad_device(m, torch.randn(4, 12), gpu)
    assert _bad_device(m, torch.randn(4, 12), m.bias) is None      # same device: the caller re-raises
