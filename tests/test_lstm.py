"""Compressed LSTMs: nn.LSTM signature and numerics, per-gate HMF, fast path == plain path, state dicts."""
from __future__ import annotations

import io

import pytest
import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

import hmf_lab as hl
from hmf_lab.nn.lstm import GateHMFLinear


def _run(m, x, hx=None):
    with torch.no_grad():
        return m(x, hx)


def _close(a, b, atol=1e-5):
    return torch.allclose(a, b, atol=atol, rtol=1e-4)


@pytest.mark.parametrize("batch_first", [False, True])
@pytest.mark.parametrize("num_layers", [1, 2])
@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("build", ["hmf", "sparse"])
def test_uncompressed_equals_nn_lstm(batch_first, num_layers, bidirectional, build):
    lstm = nn.LSTM(6, 10, num_layers=num_layers, batch_first=batch_first, bidirectional=bidirectional)
    m = hl.HMFLSTM.from_lstm(lstm, compression=1) if build == "hmf" else hl.SparseLSTM.from_lstm(lstm, compression=1)
    assert m.compression == 1.0
    x = torch.randn(3, 5, 6) if batch_first else torch.randn(5, 3, 6)  # batch 3, sequence 5
    D = 2 if bidirectional else 1
    hx = (torch.randn(num_layers * D, 3, 10), torch.randn(num_layers * D, 3, 10))
    for args in ((x,), (x, hx)):
        y, (h, c) = _run(m, *args)
        y0, (h0, c0) = _run(lstm, *args)
        assert y.shape == y0.shape and h.shape == h0.shape
        assert _close(y, y0) and _close(h, h0) and _close(c, c0)


def test_hmf_lstm_to_lstm_matches_and_autograd_path_matches_fast_path():
    lstm = nn.LSTM(12, 16, num_layers=2, batch_first=True)
    m = hl.HMFLSTM.from_lstm(lstm, compression=3)
    x = torch.randn(2, 7, 12)
    y_grad, (h_grad, c_grad) = m(x)  # autograd on: plain differentiable path
    y_fast, (h_fast, c_fast) = _run(m, x)  # no_grad: packed fast path
    dense = m.to_lstm()
    y_ref, (h_ref, c_ref) = _run(dense, x)
    assert _close(y_grad.detach(), y_fast) and _close(c_grad.detach(), c_fast)
    assert _close(y_fast, y_ref) and _close(h_fast, h_ref)


@pytest.mark.parametrize("heuristic", ["top", "random", "row_norm"])
def test_per_gate_rows_and_reconstruction(heuristic):
    W = torch.randn(4 * 20, 9)
    f = GateHMFLinear.from_weight(W, split=3, rank=2, heuristic=heuristic)
    assert f.rows.shape == (4, 3)
    for g in range(4):
        ref = hl.hmf(W[20 * g: 20 * (g + 1)], 3, 2, heuristic=heuristic)
        if heuristic != "random":
            assert f.rows[g].tolist() == ref.rows.tolist()
            assert _close(f.to_dense()[20 * g: 20 * (g + 1)], ref.to_dense())
    x = torch.randn(5, 9)
    want = x @ f.to_dense().T
    got_plain = f(x)  # requires_grad parameters: plain path
    with torch.no_grad():
        got_fast = f(x)
        got_one = f(x[:1])
        gates = f.gates(x)
    assert _close(got_plain.detach(), want) and _close(got_fast, want) and _close(got_one, want[:1])
    assert _close(gates.transpose(0, 1).reshape(5, 80), want)
    assert f.is_top == (heuristic == "top")


def test_top_rows_per_gate_not_stacked():
    lstm = nn.LSTM(8, 12)
    m = hl.HMFLSTM.from_lstm(lstm, split=2, rank=3)
    assert m.ih[0].rows.tolist() == [[0, 1]] * 4  # every gate keeps its own first k rows
    assert m.split == (2, 2) and m.rank == (3, 3)


def test_lmf_lstm_is_split_zero_and_matches_its_dense():
    lstm = nn.LSTM(16, 16)
    m = hl.LMFLSTM.from_lstm(lstm, compression=4)
    assert m.split == (0, 0) and m.rank == (2, 2)
    x = torch.randn(4, 2, 16)
    assert _close(_run(m, x)[0], _run(m.to_lstm(), x)[0])
    assert m.ih[0].n_params == 4 * 2 * (16 + 16)


def test_unbatched_input():
    lstm = nn.LSTM(5, 7, num_layers=2)
    m = hl.HMFLSTM.from_lstm(lstm, compression=1)
    x = torch.randn(6, 5)
    hx = (torch.randn(2, 7), torch.randn(2, 7))
    y, (h, c) = _run(m, x, hx)
    y0, (h0, c0) = _run(lstm, x, hx)
    assert y.shape == (6, 7) and h.shape == (2, 7)
    assert _close(y, y0) and _close(c, c0)


@pytest.mark.parametrize("bidirectional", [False, True])
def test_packed_sequence_matches_nn_lstm(bidirectional):
    lstm = nn.LSTM(4, 6, batch_first=True, bidirectional=bidirectional, num_layers=2)
    m = hl.HMFLSTM.from_lstm(lstm, compression=1)
    x = torch.randn(3, 5, 4)
    lengths = torch.tensor([5, 2, 4])
    packed = pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
    D = 2 if bidirectional else 1
    hx = (torch.randn(2 * D, 3, 6), torch.randn(2 * D, 3, 6))
    y, (h, c) = _run(m, packed, hx)
    y0, (h0, c0) = _run(lstm, packed, hx)
    assert torch.equal(y.batch_sizes, y0.batch_sizes)
    assert torch.equal(y.sorted_indices, y0.sorted_indices)
    assert _close(y.data, y0.data) and _close(h, h0) and _close(c, c0)
    assert _close(pad_packed_sequence(y)[0], pad_packed_sequence(y0)[0])


def test_dropout_between_layers_only_in_training():
    lstm = nn.LSTM(4, 6, num_layers=2, dropout=0.5)
    m = hl.HMFLSTM.from_lstm(lstm, compression=1)
    x = torch.randn(5, 2, 4)
    m.eval()
    assert torch.equal(_run(m, x)[0], _run(m, x)[0])
    m.train()
    torch.manual_seed(1)
    a = _run(m, x)[0]
    torch.manual_seed(2)
    b = _run(m, x)[0]
    assert not torch.equal(a, b)


def test_trainable_gradients_reach_factors():
    m = hl.HMFLSTM.from_lstm(nn.LSTM(6, 8, batch_first=True), compression=2)
    y, _ = m(torch.randn(2, 4, 6))
    y.pow(2).sum().backward()
    for name, p in m.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
    assert any(float(p.grad.abs().sum()) > 0 for p in m.parameters())


def test_cache_invalidated_after_optimizer_step():
    m = hl.HMFLSTM.from_lstm(nn.LSTM(6, 8), compression=2)
    x = torch.randn(3, 2, 6)
    before = _run(m, x)[0]
    opt = torch.optim.SGD(m.parameters(), lr=0.5)
    m(x)[0].sum().backward()
    opt.step()
    after = _run(m, x)[0]
    ref = _run(m.to_lstm(), x)[0]
    assert not torch.allclose(before, after) and _close(after, ref)


@pytest.mark.parametrize("kind", ["hmf", "lmf", "sparse", "pruned"])
def test_state_dict_round_trip_weights_only(kind):
    def make(lstm, heuristic):
        return {"hmf": lambda: hl.HMFLSTM.from_lstm(lstm, compression=2, heuristic=heuristic),
                "lmf": lambda: hl.LMFLSTM.from_lstm(lstm, compression=2),
                "sparse": lambda: hl.SparseLSTM.from_lstm(lstm, compression=2),
                "pruned": lambda: hl.PrunedLSTM.from_lstm(lstm, compression=2)}[kind]()

    a = make(nn.LSTM(6, 8, num_layers=2, batch_first=True), "row_norm")
    b = make(nn.LSTM(6, 8, num_layers=2, batch_first=True), "top")  # same shapes, other weights/rows/masks
    x = torch.randn(2, 3, 6)
    _run(b, x)  # fill b's inference cache, which loading must invalidate
    assert not torch.equal(_run(a, x)[0], _run(b, x)[0])
    buf = io.BytesIO()
    torch.save(a.state_dict(), buf)
    buf.seek(0)
    b.load_state_dict(torch.load(buf, weights_only=True))
    assert torch.equal(_run(a, x)[0], _run(b, x)[0])


def test_state_dict_of_other_structure_is_refused():
    a = hl.HMFLSTM.from_lstm(nn.LSTM(6, 8), compression=2)
    b = hl.HMFLSTM(6, 8, split=0, rank=1)
    with pytest.raises(RuntimeError, match="size mismatch"):
        b.load_state_dict(a.state_dict())


def test_pruned_lstm_masks_and_to_sparse():
    lstm = nn.LSTM(16, 16, batch_first=True)
    p = hl.PrunedLSTM.from_lstm(lstm, compression=4)
    assert isinstance(p, nn.LSTM) and hasattr(p, "weight_hh_l0_mask")
    assert p.n_params == 2 * 16 * 64 // 4 and p.compression == 4.0
    assert int((p.weight_hh_l0 != 0).sum()) <= 256
    x = torch.randn(2, 5, 16)
    s = p.to_sparse()
    assert isinstance(s, hl.SparseLSTM) and s.n_params == p.n_params
    assert _close(_run(p, x)[0], _run(s, x)[0])
    # gradual pruning keeps working on it (torch.nn.utils.prune stacks masks)
    torch.nn.utils.prune.l1_unstructured(p, "weight_hh_l0", amount=0.5)
    assert int(p.weight_hh_l0_mask.sum()) < 256
    # trainable: gradients flow to the original weights, masked entries stay zero after a step
    opt = torch.optim.SGD(p.parameters(), lr=0.1)
    p(x)[0].sum().backward()
    opt.step()
    assert float(p.weight_hh_l0.detach()[~p.weight_hh_l0_mask.bool()].abs().sum()) == 0.0


def test_errors():
    with pytest.raises(TypeError, match="lstm must be a torch.nn.LSTM"):
        hl.HMFLSTM.from_lstm(nn.GRU(3, 4), compression=2)
    with pytest.raises(ValueError, match="proj_size > 0 are not supported"):
        hl.HMFLSTM.from_lstm(nn.LSTM(3, 4, proj_size=2), compression=2)
    with pytest.raises(ValueError, match="LMF has no dense rows"):
        hl.LMFLSTM.from_lstm(nn.LSTM(3, 4), compression=2, split=2)
    with pytest.raises(TypeError, match="unexpected keyword argument 'heuristic'"):  # LMF has no split to choose
        hl.LMFLSTM.from_lstm(nn.LSTM(3, 4), compression=2, heuristic="row_norm")
    m = hl.HMFLSTM.from_lstm(nn.LSTM(3, 4), compression=1)
    with pytest.raises(ValueError, match="input_size. Expected 3, got 5"):
        m(torch.randn(2, 1, 5))
    with pytest.raises(ValueError, match="expected input to be 2-D or 3-D"):
        m(torch.randn(2))
    with pytest.raises(TypeError, match="input must be a torch.Tensor or PackedSequence"):
        m([1, 2])
    with pytest.raises(ValueError, match=r"Expected hidden size \(1, 2, 4\)"):
        m(torch.randn(3, 2, 3), (torch.zeros(1, 3, 4), torch.zeros(1, 3, 4)))
    with pytest.raises(ValueError, match=r"Expected hidden size \(1, 4\), got \(1, 2, 4\) for c0"):
        m(torch.randn(3, 3), (torch.zeros(1, 4), torch.zeros(1, 2, 4)))
    with pytest.raises(TypeError, match="hx must be a tuple"):
        m(torch.randn(3, 2, 3), torch.zeros(1, 2, 4))
    with pytest.raises(ValueError, match="mode must be one of"):
        m.mode = "fast"
    with pytest.raises(ValueError, match="dropout must be a probability"):
        hl.HMFLSTM(3, 4, dropout=2.0)
    with pytest.raises(ValueError, match="must be >= 1"):
        hl.HMFLSTM(0, 4)
    with pytest.raises(ValueError, match=r"rows must have shape \(4, 2\)"):
        GateHMFLinear(3, 5, split=2, rank=1, rows=[0, 1])
    with pytest.raises(ValueError, match="rows of gate 0 must be 2 distinct"):
        GateHMFLinear(3, 5, split=2, rank=1, rows=[[0, 0]] * 4)
    with pytest.raises(ValueError, match="must be >= 1"):
        GateHMFLinear(0, 5, split=2, rank=1)
    with pytest.raises(ValueError, match=r"W must be a \(gates\*H, n\) matrix"):
        GateHMFLinear.from_weight(torch.randn(10, 3), split=1, rank=1)


def test_choose_split_rank_rules():
    k, r = hl.choose_split_rank((256, 256), compression=4)
    b = hl.factor.budget.equal_budget_splits((256, 256), compression=4)  # the equal-budget line (core, issue 9)
    assert (k, r) in set(zip(b["split"], b["rank"]))
    assert abs(k - r) == int((b["split"] - b["rank"]).abs().min())
    assert hl.choose_split_rank((256, 256), compression=1) == (256, 0)
    k, r = hl.choose_split_rank((256, 256), compression=4, split=10)
    assert k == 10 and hl.hmf_params(256, 256, 10, r) <= 256 * 256 / 4 < hl.hmf_params(256, 256, 10, r + 1)
    k, r = hl.choose_split_rank((256, 256), compression=4, rank=20)
    assert r == 20 and hl.hmf_params(256, 256, k, 20) <= 256 * 256 / 4 < hl.hmf_params(256, 256, k + 1, 20)
    assert hl.choose_split_rank((8, 8), split=3, rank=2) == (3, 2)
    assert hl.lmf_rank((1024, 1024), 4) == 128 and hl.lmf_rank((10, 10), rank=3) == 3


def test_choose_split_rank_errors():
    with pytest.raises(TypeError, match="compression is required unless both split and rank"):
        hl.choose_split_rank((8, 8))
    with pytest.raises(ValueError, match="keeps every row dense"):
        hl.choose_split_rank((8, 8), compression=2, split=8)
    with pytest.raises(ValueError, match="leaves no room for a rank"):
        hl.choose_split_rank((8, 8), compression=2, split=7)
    with pytest.raises(ValueError, match="does not fit compression"):
        hl.choose_split_rank((8, 8), compression=4, rank=8)
    with pytest.raises(ValueError, match=r"rank must be an int in \[1, min\(m, n\)\]"):
        hl.choose_split_rank((8, 8), compression=4, rank=0)
    with pytest.raises(TypeError, match="compression is required unless rank"):
        hl.lmf_rank((8, 8))
