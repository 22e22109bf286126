"""hmf-lab bench: the table's columns and ratios, CLI/wrapper wiring, targets summary (no timed asserts)."""
from __future__ import annotations

import argparse
import dataclasses
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from hmf_lab.experiments import bench
from hmf_lab import cli
from hmf_lab.experiments.bench import BenchConfig, run_bench, summary, to_markdown

TINY = BenchConfig(sizes=(48,), batches=(1, 3), threads=(1,), compressions=(2, 4), lstm_hidden=(12,), seq=3,
                   min_run_time=0.002, lstm_min_run_time=0.002, rounds=2, progress=False)


@pytest.fixture(scope="module")
def table():
    return run_bench(TINY)


def test_table_rows_and_ratios(table):
    layers = table[table["kind"] == "layer"]
    lstms = table[table["kind"] == "lstm"]
    # every group: dense once, 3 methods per compression, the reconstructed HMF (dense shape) once
    assert len(layers) == 2 * (1 + 2 * 3 + 1) and len(lstms) == 1 + 2 * 4
    assert list(layers[layers["method"] == "hmf-reconstructed"]["compression"]) == [4.0, 4.0]
    for _, g in table.groupby(["kind", "size", "batch", "threads"]):
        dense = g[g["method"] == "dense"].iloc[0]
        assert dense["ideal"] == 1.0 and dense["speedup"] == 1.0
        assert np.allclose(g["speedup"], dense["median_us"] / g["median_us"])
        assert np.allclose(g["ideal"], dense["bytes"] / g["bytes"])
        assert np.allclose(g["of_ideal"], g["speedup"] / g["ideal"])
        for c in (2, 4):
            at = g[g["compression"] == c]
            csr = at[at["method"] == "prune"].iloc[0]
            assert np.allclose(at["vs_csr"], csr["median_us"] / at["median_us"])
            # equal compression: every method stores at most the budget (integer ranks round down, which
            # costs a lot only at these tiny sizes)
            budget = dense["params"] / c
            assert (at["params"] <= budget + 1e-9).all() and (at["params"] >= 0.6 * budget).all()
    assert (table["min_us"] <= table["median_us"] + 1e-9).all()
    # CSR's bytes count values + int32 indices: its ideal is about half the compression
    csr = layers[(layers["method"] == "prune") & (layers["compression"] == 4)].iloc[0]
    assert csr["bytes"] == csr["params"] * 8 + (48 + 1) * 4


def test_summary_reads_targets():
    rows = []
    for kind, size, methods in (("layer", 2048, {"dense": 1000.0, "hmf": 300.0, "prune": 600.0}),
                                ("lstm", 1024, {"dense": 1000.0, "hmf": 400.0, "prune": 1000.0})):
        for method, t in methods.items():
            rows.append(dict(kind=kind, size=size, batch=1, threads=1, compression=1.0 if method == "dense" else 4.0,
                             method=method, median_us=t, min_us=t / 2, ideal=4.0 if method == "hmf" else 1.0))
    df = pd.DataFrame(rows)
    dense = df.groupby(["kind"])["median_us"].transform("max")
    df["speedup"] = dense / df["median_us"]
    df["of_ideal"] = df["speedup"] / df["ideal"]
    df["vs_csr"] = np.where(df["kind"] == "layer", 600.0, 1000.0) / df["median_us"]
    s = summary(df)
    assert list(s["target"]) == [3.0, 0.85, 2.0, 2.32]
    assert list(s["measured"]) == [2.0, 0.833, 2.5, 2.5]
    assert list(s["met"]) == [False, False, True, True]
    assert list(s["shortfall"]) == [1.0, 0.017, 0.0, 0.0]
    assert s["from_min"].iloc[0] == 2.0  # min-based ratio of the same rows


def test_markdown():
    md = to_markdown(pd.DataFrame({"a": [1, 2], "b": [0.12345, np.nan]}))
    assert md.splitlines() == ["| a | b |", "|---|---|", "| 1 | 0.123 |", "| 2 |  |"]


@pytest.mark.slow
def test_cli_quick_writes_csv_and_markdown(tmp_path, capsys):
    argv = ["bench", "--quick", "--out", str(tmp_path), "--sizes", "32", "--lstm-hidden", "8", "--seq", "2",
            "--no-progress", "--clock", "thread"]
    assert cli.main(argv) == 0
    df = pd.read_csv(tmp_path / "bench.csv")
    assert set(df["method"]) == {"dense", "hmf", "hmf-eager", "hmf-reconstructed", "lmf", "prune"}
    md = (tmp_path / "bench.md").read_text()
    assert "## Layers" in md and "## LSTMs" in md and "ideal" in md
    out = capsys.readouterr().out
    assert "load average" in out and "CPU time of the timing thread" in out


@pytest.mark.slow
def test_wrapper_script_help(repo):
    out = subprocess.run([sys.executable, str(repo / "benchmarks" / "run_bench.py"), "--help"],
                         capture_output=True, text=True, check=True)
    assert "--quick" in out.stdout and "--compressions" in out.stdout


def test_config_from_args(monkeypatch):
    monkeypatch.delenv("HMF_LAB_QUICK", raising=False)
    p = argparse.ArgumentParser()
    bench.add_arguments(p)
    cfg = bench.config_from_args(p.parse_args([]))
    assert cfg == dataclasses.replace(bench.FULL)
    cfg = bench.config_from_args(p.parse_args(["--quick", "--compressions", "8", "--lstm-hidden", "--no-layers"]))
    assert cfg.compressions == (8.0,) and cfg.lstm_hidden == () and not cfg.layers and cfg.sizes == bench.QUICK.sizes
    monkeypatch.setenv("HMF_LAB_QUICK", "1")
    assert bench.config_from_args(p.parse_args([])).sizes == bench.QUICK.sizes


def test_errors():
    with pytest.raises(TypeError, match="cfg must be a BenchConfig"):
        run_bench({"sizes": (8,)})
    with pytest.raises(ValueError, match="rounds must be an int >= 1"):
        run_bench(dataclasses.replace(TINY, rounds=0))
    with pytest.raises(ValueError, match="clock must be 'wall' or 'thread'"):
        run_bench(dataclasses.replace(TINY, clock="cpu"))
    with pytest.raises(ValueError, match="compressions must be numbers > 1"):
        run_bench(dataclasses.replace(TINY, compressions=(1,)))


def _fake_race(seconds: dict, calls: list):
    """A stand-in for ``hl.timing.race`` with chosen numbers (a fake clock): the bench must read its rows,
    ratios and verdict from the Race itself. ``seconds``: method name (or "floor") -> seconds per call."""
    from hmf_lab.perf.timing import Race, Timing

    def fake(fns, *args, reference=None, **kw):
        calls.append(dict(reference=reference, names=list(fns), **kw))
        pick = (lambda name: seconds["floor"] if name[0].startswith("floor:") else seconds.get(name[0], seconds["*"]))
        timings = {name: [Timing(median=pick(name), iqr=0.0, n=1, threads=1, times=(pick(name), 2 * pick(name)))]
                   for name in fns}
        return Race.from_timings(timings, reference=reference, load={"cores": 64, "load_1min": 99.0})
    return fake


def test_rows_read_the_race_itself(monkeypatch):
    """median/IQR/min/n per row are the Race's table, speedup and vs_csr its ratios over the dense and CSR rows
    of the same race, floor its floor candidate, warning and unreliable its verdict (no timed asserts)."""
    calls = []
    monkeypatch.setattr(bench, "race", _fake_race({"dense": 4e-4, "prune": 2e-4, "floor": 5e-5, "*": 1e-4}, calls))
    df = run_bench(dataclasses.replace(TINY, batches=(1,)))
    assert [c["reference"] for c in calls] == [("dense", 1.0), ("dense", 1.0)]  # one race per group
    assert calls[0]["min_run_time"] == TINY.min_run_time and calls[1]["min_run_time"] == TINY.lstm_min_run_time
    assert all(c["rounds"] == TINY.rounds and c["clock"] == TINY.clock for c in calls)
    dense, rest = df[df["method"] == "dense"], df[df["method"] != "dense"]
    # pooled blocks (t, 2t): median 1.5 t, IQR 0.5 t, fastest t, 2 blocks
    assert np.allclose(dense["median_us"], 600.0) and np.allclose(dense["min_us"], 400.0)
    assert np.allclose(dense["iqr_us"], 200.0) and (df["n"] == 2).all()
    assert np.allclose(rest[rest["method"] == "prune"]["speedup"], 2.0)
    other = rest[rest["method"] != "prune"]
    assert np.allclose(other["speedup"], 4.0) and np.allclose(other["vs_csr"], 2.0)
    layers = df[df["kind"] == "layer"]
    assert np.allclose(layers["of_floor"], 75.0 / layers["median_us"])
    assert df[df["kind"] == "lstm"]["floor_us"].isna().all()
    assert df["unreliable"].all() and df["warning"].str.startswith("Unreliable timing: ").all()  # load 99 on 64 cores
