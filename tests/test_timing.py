"""hl.measure / hl.timing.compare: fields, thread count set and restored, error paths (no timed asserts)."""
from __future__ import annotations

import dataclasses

import pandas as pd
import pytest
import torch

import hmf_lab as hl
from hmf_lab.perf.timing import Timing, compare, measure


def test_measure_fields_and_frozen():
    calls = []
    t = measure(lambda: calls.append(1), min_run_time=0.01, warmup=2, label="noop")
    assert isinstance(t, Timing) and t.label == "noop"
    assert t.median > 0 and t.iqr >= 0 and t.n >= 1 and t.number_per_run >= 1
    assert len(t.times) == t.n and min(t.times) <= t.median <= max(t.times)
    assert len(calls) >= 2 + t.n * t.number_per_run
    assert t.median_us == pytest.approx(t.median * 1e6)
    assert "noop" in str(t)
    with pytest.raises(dataclasses.FrozenInstanceError):
        t.median = 1.0


def test_hl_exports():
    assert hl.measure is measure
    assert hl.timing.compare is compare


@pytest.mark.parametrize("threads", [1, 2])
def test_threads_set_during_and_restored_after(threads):
    before = torch.get_num_threads()
    seen = []
    t = measure(lambda: seen.append(torch.get_num_threads()), min_run_time=0.01, threads=threads, warmup=1)
    assert set(seen) == {threads} and t.threads == threads
    assert torch.get_num_threads() == before


def test_threads_none_keeps_current():
    before = torch.get_num_threads()
    assert measure(lambda: None, min_run_time=0.01).threads == before


def test_threads_restored_when_fn_raises():
    before = torch.get_num_threads()

    def boom():
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        measure(boom, threads=1 if before != 1 else 2)
    assert torch.get_num_threads() == before


def test_args_are_passed():
    x = torch.ones(3)
    got = []
    measure(lambda a, b: got.append(a.sum().item() + b), x, 2.0, min_run_time=0.01, warmup=1)
    assert got[0] == 5.0


def test_compare_table():
    x = torch.randn(8, 8)
    df = compare({"relu": torch.relu, "tanh": torch.tanh}, x, min_run_time=0.01)
    assert isinstance(df, pd.DataFrame) and list(df["name"]) == ["relu", "tanh"]
    assert df["ratio"].iloc[0] == 1.0
    assert df["ratio"].iloc[1] == pytest.approx(df["median"].iloc[0] / df["median"].iloc[1])


@pytest.mark.parametrize("kw, exc, match", [
    ({"min_run_time": 0}, ValueError, "min_run_time must be a positive"),
    ({"warmup": -1}, ValueError, "warmup must be an int >= 0"),
    ({"threads": 0}, ValueError, "threads must be an int >= 1"),
    ({"threads": 1.5}, TypeError, "threads must be an int >= 1 or None"),
    ({"clock": "cpu"}, ValueError, r"clock must be one of \['thread', 'wall'\]"),
])
def test_measure_errors(kw, exc, match):
    with pytest.raises(exc, match=match):
        measure(lambda: None, **kw)


def test_measure_not_callable():
    with pytest.raises(TypeError, match="fn must be callable"):
        measure(3)


def test_compare_errors():
    with pytest.raises(TypeError, match="fns must be a non-empty dict"):
        compare({})
    with pytest.raises(TypeError, match="takes labels from the keys"):
        compare({"a": lambda: None}, label="x")


@pytest.mark.slow
def test_thread_clock_leaves_out_sleeping():
    import time

    wall = measure(time.sleep, 0.002, min_run_time=0.02, warmup=0)
    cpu = measure(time.sleep, 0.002, min_run_time=0.02, warmup=0, clock="thread")
    assert wall.median >= 0.002 and cpu.median < wall.median  # sleeping uses no CPU time


# --------------------------------------------------------------------------- the harness: race and its verdict

HOG = "import time\nend = time.time() + {secs}\nwhile time.time() < end:\n    pass\n"


def cpu_hogs(seconds: float = 6.0):
    """A bounded CPU hog: one spinning subprocess per core, each ending by itself after ``seconds``."""
    import os
    import subprocess
    import sys

    return [subprocess.Popen([sys.executable, "-c", HOG.format(secs=seconds)]) for _ in range(os.cpu_count() or 1)]


def stop_hogs(procs):
    for p in procs:
        p.terminate()
    for p in procs:
        p.wait(timeout=30)


def test_race_flags_a_busy_machine():
    """Every core spun by another process: the harness must say its numbers cannot be trusted (no time asserted)."""
    import time as _time

    from hmf_lab.perf.timing import race

    W, x = torch.randn(256, 256), torch.randn(1, 256)
    procs = cpu_hogs()
    try:
        _time.sleep(0.5)  # let the hogs get on the cores
        r = race({"dense": lambda v: torch.mv(W, v[0]), "half": lambda v: torch.mv(W[:128], v[0])}, x,
                 rounds=2, min_run_time=0.2)
    finally:
        stop_hogs(procs)
    assert r.unreliable and r.threads == 1
    assert r.warning.startswith("Unreliable timing: ")
    assert any("other processes held the cores" in why or "held a core only" in why for why in r.reliability.reasons)


def test_race_table_threads_and_errors():
    from hmf_lab.perf.timing import race

    x = torch.randn(1, 16)
    r = race({"a": torch.relu, "b": torch.tanh}, x, rounds=2, min_run_time=0.005)
    assert r.threads == 1  # batch 1: one thread by default
    assert list(r.table["name"]) == ["a", "b"] and r.table["ratio"].iloc[0] == 1.0
    assert all(len(ts) == 2 for ts in r.timings.values())  # interleaved: every callable once per round
    assert (r.table["n"] == [sum(t.n for t in ts) for ts in r.timings.values()]).all()
    assert "torch thread(s)" in str(r)
    r2 = race({"a": torch.relu}, torch.randn(8, 16), rounds=1, min_run_time=0.005)
    assert r2.threads == torch.get_num_threads()  # batched: the current count
    with pytest.raises(ValueError, match="rounds must be an int >= 1"):
        race({"a": torch.relu}, x, rounds=0)
    with pytest.raises(TypeError, match="every value of fns must be callable"):
        race({"a": 3}, x)
    with pytest.raises(TypeError, match="fns must be a non-empty dict"):
        race({}, x)


def test_reliability_rules_in_words():
    from hmf_lab.perf.timing import Timing, reliability

    quiet = {"cores": 64, "load_1min": 0.0}
    ok = reliability({"a": [Timing(median=1e-4, iqr=1e-6, n=5, threads=1, times=(1e-4,) * 5)]}, load=quiet)
    assert not ok.unreliable and ok.warning == ""
    wide = reliability({"a": [Timing(median=1e-4, iqr=0, n=4, threads=1, times=(0.5e-4, 1e-4, 1e-4, 3e-4))]},
                       load=quiet)
    assert wide.unreliable and "the spread is large (a:" in wide.warning
    ticks = reliability({"dense": [Timing(median=8e-3, iqr=0, n=1, threads=2)],
                         "HMF": [Timing(median=16.0e-3, iqr=0, n=1, threads=2)]}, threads=2, load=quiet)
    assert "multiples of the 4 ms scheduler tick (dense 8.0 ms, HMF 16.0 ms)" in ticks.warning
    busy = reliability({"a": [Timing(median=1e-4, iqr=0, n=1, threads=1)]}, load={"cores": 2, "load_1min": 6.0})
    assert "load average 6.0 on 2 cores" in busy.warning
    queue = reliability({"a": [Timing(median=1e-4, iqr=0, n=1, threads=1)]}, running=[4, 4, 5], load=quiet | {"cores": 2})
    assert "3 other runnable tasks for the 1 core(s)" in queue.warning
    waited = reliability({"a": [Timing(median=1e-4, iqr=0, n=1, threads=1, wall=1.0, cpu=0.5)]}, load=quiet)
    assert "held a core only 50% of the time" in waited.warning
    noted = reliability({"a": [Timing(median=1e-4, iqr=0, n=1, threads=2, note="ran with 2 torch threads")]},
                        load=quiet)
    assert not noted.unreliable and noted.warning == "Note: ran with 2 torch threads."


def test_measure_off_the_main_thread_leaves_the_thread_count_alone(monkeypatch):
    import threading

    calls = []
    monkeypatch.setattr(torch, "set_num_threads", lambda n: calls.append(n))
    out = {}
    want = torch.get_num_threads() + 1
    th = threading.Thread(target=lambda: out.setdefault("t", measure(lambda: None, min_run_time=0.005, threads=want)))
    th.start()
    th.join(60)
    assert calls == [] and out["t"].threads != want and "process-wide" in out["t"].note


def test_weight_bytes_one_csr_count():
    from hmf_lab.perf.timing import csr_bytes, raw_kernels, weight_bytes

    lin = torch.nn.Linear(32, 24)
    sp = hl.SparseLinear.from_linear(lin, compression=4)
    assert weight_bytes(sp) == csr_bytes(24, sp.nnz) == sp.nnz * 8 + 25 * 4  # int32 indices, as timed
    assert sp._csr32().col_indices().dtype == torch.int32
    h = hl.HMFLinear.from_linear(lin, split=3, rank=4)
    assert weight_bytes(h) == h.n_params * 4 and weight_bytes(lin) == 32 * 24 * 4
    h.mode = "reconstructed"
    assert weight_bytes(h) == 32 * 24 * 4
    x = torch.randn(1, 32)
    with torch.no_grad():
        assert torch.allclose(raw_kernels(lin)(x), lin(x)[0] - lin.bias, atol=1e-5)
        assert torch.allclose(raw_kernels(sp)(x), sp(x)[0] - sp.bias, atol=1e-5)
    with pytest.raises(TypeError, match="weight_bytes\\(\\) knows nn.Linear"):
        weight_bytes(torch.nn.ReLU())
    with pytest.raises(TypeError, match="raw_kernels\\(\\) knows nn.Linear"):
        raw_kernels(torch.nn.ReLU())


def test_race_is_the_one_result_type():
    from hmf_lab.perf.timing import Race, race

    quiet = {"cores": 64, "load_1min": 0.25}
    r = Race.from_timings({"dense": [Timing(median=4e-3, iqr=0, n=1, threads=1), Timing(median=4e-3, iqr=0, n=1,
                                                                                        threads=1)],
                           "hmf": [Timing(median=1e-3, iqr=0, n=2, threads=1, times=(1e-3, 3e-3))]},
                          reference="hmf", load=quiet, clock="thread")
    assert r.reference == "hmf" and r.clock == "thread" and r.load_1min == 0.25 and r.threads == 1
    assert r.medians == {"dense": 4e-3, "hmf": 2e-3} and r.ratios == {"dense": 0.5, "hmf": 1.0}
    assert r.ratio("hmf", over="dense") == 2.0 and r.noise["dense"] == 0.0 and r.noise["hmf"] == 0.5
    df = r.to_frame(unit="us")
    assert list(df["median_us"]) == [4000.0, 2000.0] and list(df["n"]) == [2, 2]
    assert df.attrs == {"warning": r.warning, "unreliable": r.unreliable, "threads": 1, "clock": "thread",
                        "load_1min": 0.25, "reference": "hmf"}
    assert r.table["median"].tolist() == [4e-3, 2e-3]  # to_frame copies: the result is not changed
    with pytest.raises(ValueError, match=r"name must be one of this race's candidates \['dense', 'hmf'\], got 'lmf'"):
        r.median("lmf")
    with pytest.raises(ValueError, match="unit must be 's'"):
        r.to_frame(unit="ms")
    with pytest.raises(ValueError, match=r"reference must be one of the names \['a'\]"):
        Race.from_timings({"a": [Timing(median=1e-3, iqr=0, n=1, threads=1)]}, reference="b", load=quiet)
    with pytest.raises(TypeError, match="timings must be a non-empty dict"):
        Race.from_timings({"a": []}, load=quiet)
    x = torch.randn(1, 8)
    seen = []
    got = race({"a": torch.relu, "b": torch.tanh}, x, rounds=2, min_run_time=0.002, reference="b",
               prepare=seen.append)
    assert seen == ["a", "b", "a", "b"] and got.reference == "b" and got.ratios["b"] == 1.0
    with pytest.raises(ValueError, match=r"reference must be one of the names in fns \['a'\], got 'z'"):
        race({"a": torch.relu}, x, reference="z")
    with pytest.raises(TypeError, match="prepare must be a callable"):
        race({"a": torch.relu}, x, prepare="a")


def test_weight_bytes_lstms_and_a_layer_that_knows_its_own():
    from hmf_lab.perf.timing import raw_kernels, weight_bytes

    lstm = torch.nn.LSTM(8, 16)
    assert weight_bytes(lstm) == (64 * 8 + 64 * 16) * 4
    sp = hl.SparseLSTM.from_lstm(lstm, compression=2)
    assert weight_bytes(sp) == sum(weight_bytes(m) for m in list(sp.ih) + list(sp.hh))  # CSR with int32 indices
    h = hl.HMFLSTM.from_lstm(lstm, compression=2)
    assert weight_bytes(h) == h.n_params * 4
    h.mode = "reconstructed"
    assert weight_bytes(h) == weight_bytes(lstm)  # W_hat of every gate matrix

    class Own(torch.nn.Module):
        def weight_bytes(self):
            return 7

        def raw_kernels(self):
            return torch.relu

    assert weight_bytes(Own()) == 7 and raw_kernels(Own()) is torch.relu
