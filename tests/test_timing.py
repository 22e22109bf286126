"""hl.measure / hl.timing.compare: fields, thread count set and restored, error paths (no timed asserts)."""
from __future__ import annotations

import dataclasses

import pandas as pd
import pytest
import torch

import hmf_lab as hl
from hmf_lab.timing import Timing, compare, measure


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
