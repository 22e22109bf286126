"""Greedy allocation in the experiment cells (issue 19): Cell.allocate, the table solved on the trained model,
gradual pruning to its per-matrix counts, the record each cell keeps; the tasks' calibration inputs."""
import pytest
import torch

import hmf_lab as hl
from hmf_lab.experiments.pipeline import Cell, GradualPruner, allocation_summary, greedy_table, run_cell
from hmf_lab.nlp.tasks import LMTask


def test_labels_and_checks():
    assert Cell("lm", "post", "lmf", 8, allocate="greedy").label == "lmf+greedy"
    assert Cell("lm", "post", "hmf", 8, allocate="greedy", split_frac=0.5).label == "hmf@0.5+greedy"
    assert Cell("lm", "scratch", "dense", 1, allocate="greedy").label == "dense"
    with pytest.raises(ValueError, match="allocate must be one of"):
        run_cell(Cell("lm", "post", "lmf", 8, allocate="smart", quick=True))


def test_gradual_pruner_takes_per_weight_counts():
    net = hl.compress(torch.nn.Sequential(torch.nn.Linear(8, 8), torch.nn.Linear(8, 8)), "prune", compression=1)
    p = GradualPruner(net, compression=4, steps=10, keep={("0", "weight"): 5, ("1", "weight"): 30})
    p(10)
    assert int(net[0].weight_mask.sum()) == 5 and int(net[1].weight_mask.sum()) == 30
    with pytest.raises(ValueError, match="keep= has no count for '1'.weight"):
        GradualPruner(net, compression=4, steps=10, keep={("0", "weight"): 5})


def test_allocation_summary_names_every_matrix():
    net = torch.nn.ModuleDict({"rnn": torch.nn.LSTM(16, 32), "out": torch.nn.Linear(32, 32)})
    t = hl.nn.compress.allocation(hl.compress(net, "lmf", compression=4, allocate="greedy"))
    s = allocation_summary(t)
    assert s["allocation"].count(";") == 2 and "rnn.hh_l0" in s["allocation"] and "/r" in s["allocation"]
    assert s["allocation_by"] == "weight error"


def test_lm_calibration_input_is_training_text():
    t = LMTask(text="abcdefghij" * 300)
    (x,) = t.calibration_input(seed=0, batches=3, length=50)
    assert x.shape == (3, 50)
    assert torch.equal(x, t.calibration_input(seed=0, batches=3, length=50)[0])
    assert not torch.equal(x, t.calibration_input(seed=1, batches=3, length=50)[0])
    assert int(x.max()) < len(t.vocab)


@pytest.mark.slow
@pytest.mark.data("tinyshakespeare")
@pytest.mark.parametrize("method", ["lmf", "prune", "hmf_col"])
def test_greedy_cells_keep_the_budget_in_both_regimes(method):
    rows = {}
    for regime in ("post", "scratch"):
        r = run_cell(Cell("lm", regime, method, 8.0, allocate="greedy", quick=True))
        rows[regime] = r
        assert r["label"] == f"{method}+greedy"
        assert r["actual_compression"] == pytest.approx(8.0, rel=0.02)
        assert r["allocation_by"] == "output error" and "decoder" in r["allocation"]
    # the same structure in both regimes: the table is solved once, on the trained model
    assert rows["post"]["allocation"] == rows["scratch"]["allocation"]
    assert rows["post"]["params"] == rows["scratch"]["params"]


@pytest.mark.slow
@pytest.mark.data("tinyshakespeare")
def test_greedy_split_sweep_moves_the_split_inside_each_budget():
    base = greedy_table(Cell("lm", "scratch", "hmf", 16.0, allocate="greedy", quick=True))
    half = greedy_table(Cell("lm", "scratch", "hmf", 16.0, allocate="greedy", quick=True, split_frac=0.5))
    assert [o["compression"] for o in half["options"]] == [o["compression"] for o in base["options"]]
    assert any(o["split"] > 0 for o in half["options"])
    r = run_cell(Cell("lm", "scratch", "hmf", 16.0, allocate="greedy", quick=True, split_frac=0.5))
    assert r["actual_compression"] >= 16.0 * 0.99
