"""The whole-model budget: the solver (hmf_lab.factor.allocate) on its own, and hl.compress(..., allocate=)."""
import random

import pytest
import torch

import hmf_lab as hl
from hmf_lab.factor.allocate import ALLOCATE, brute_force, greedy_allocate, point_error
from hmf_lab.nn.compress import allocation, allocation_plan
from hmf_lab.nn.methods import get_method


# ----------------------------------------------------------------------------- the solver


def _convex(rng, n_points, cost_step=1):
    """Points with diminishing returns: cost k*cost_step, error decreasing with shrinking decrements."""
    gains = sorted((rng.uniform(0.01, 1.0) for _ in range(n_points - 1)), reverse=True)
    e = sum(gains) + rng.uniform(0, 0.1)
    pts = [(cost_step, e)]
    for k, g in enumerate(gains, start=2):
        e -= g
        pts.append((k * cost_step, e))
    return pts


def _random(rng, n_points):
    return [(rng.randint(1, 12), rng.uniform(0, 5)) for _ in range(n_points)]


@pytest.mark.parametrize("seed", range(6))
def test_greedy_is_optimal_on_convex_unit_steps(seed):
    rng = random.Random(seed)
    cands = [_convex(rng, rng.randint(2, 5)) for _ in range(4)]
    least = sum(p[0][0] for p in cands)
    for budget in range(least, sum(p[-1][0] for p in cands) + 1):
        g, b = greedy_allocate(cands, budget), brute_force(cands, budget)
        assert g.stored <= budget
        assert g.error == pytest.approx(b.error, abs=1e-12)


@pytest.mark.parametrize("seed", range(8))
def test_greedy_never_over_budget_and_near_optimal_on_random_lists(seed):
    rng = random.Random(100 + seed)
    cands = [_random(rng, rng.randint(1, 5)) for _ in range(4)]
    least = sum(min(c for c, _ in p) for p in cands)
    for budget in range(least, least + 30):
        g, b = greedy_allocate(cands, budget), brute_force(cands, budget)
        assert g.stored <= budget and g.stored == sum(cands[u][i][0] for u, i in enumerate(g.choice))
        assert g.error >= b.error - 1e-12
        assert g.error <= b.error * 1.5 + 1e-9  # fill + exchange repair most of what the hull misses


@pytest.mark.parametrize("seed", range(6))
def test_greedy_is_monotone_in_budget(seed):
    rng = random.Random(200 + seed)
    cands = [_convex(rng, rng.randint(2, 8), cost_step=rng.randint(1, 4)) for _ in range(5)]
    least = sum(p[0][0] for p in cands)
    for polish in (True, False):
        errs = [greedy_allocate(cands, B, polish=polish).error for B in range(least, least + 60)]
        assert all(a >= b - 1e-12 for a, b in zip(errs, errs[1:]))


def test_solver_refuses_an_infeasible_budget_and_keeps_an_incumbent():
    cands = [[(5, 1.0), (6, 0.0)], [(5, 1.0)]]
    with pytest.raises(ValueError, match="below the cheapest"):
        greedy_allocate(cands, 9)
    assert greedy_allocate(cands, 11, incumbent=(1, 0)).error == 1.0


def test_point_error_is_relative_and_per_block():
    W = torch.randn(8, 5, dtype=torch.float64)
    assert point_error(W, 2 * W) == pytest.approx(1.0)
    assert point_error(W, torch.zeros_like(W), blocks=4) == pytest.approx(4.0)
    X = torch.randn(20, 5, dtype=torch.float64)
    assert point_error(W, W, X) == 0.0


# ----------------------------------------------------------------------------- hl.compress(..., allocate=)


class LinLSTM(torch.nn.Module):
    """A Linear + LSTM + Linear model: an easy (low-rank) and a hard (flat spectrum) layer around an LSTM."""

    def __init__(self, seed=0):
        super().__init__()
        torch.manual_seed(seed)
        self.inp = torch.nn.Linear(24, 48)
        self.rnn = torch.nn.LSTM(48, 32, batch_first=True)
        self.out = torch.nn.Linear(32, 40)
        with torch.no_grad():  # planted spectra: inp nearly rank 3 (easy), out flat (hard)
            self.inp.weight.copy_(hl.synthetic.low_rank_noise(48, 24, rank=3, noise=0.01, seed=seed))
            self.out.weight.copy_(hl.synthetic.with_spectrum(40, 32, "flat", seed=seed))

    def forward(self, x):
        return self.out(self.rnn(torch.tanh(self.inp(x)))[0])


@pytest.mark.parametrize("method", ["hmf", "lmf", "prune"])
@pytest.mark.parametrize("with_x", [False, True])
def test_greedy_keeps_the_total_and_lowers_the_error(method, with_x):
    model = LinLSTM()
    X = torch.randn(4, 12, 24) if with_x else None
    c = 4
    uni = hl.compress(model, method, compression=c)
    gre = hl.compress(model, method, compression=c, allocate="greedy", X=X)
    table = allocation(gre)
    plan_u = allocation_plan(model, method, c, allocate="uniform", X=X)
    n_u, n_g = hl.count_params(uni), hl.count_params(gre)
    assert n_g == table.attrs["stored"] <= table.attrs["budget"]
    assert n_u == plan_u.attrs["stored"]
    assert n_g >= 0.99 * n_u  # the same total, within 1%, never over the budget
    assert table.attrs["budget"] == plan_u.attrs["budget"]
    assert table.attrs["error"] <= plan_u.attrs["error"] + 1e-9
    assert gre(torch.randn(2, 5, 24)).shape == (2, 5, 40)
    # the table's error is the built model's: recompute it from the modules for the nn.Linear layers
    for name in ("inp", "out"):
        row = table[table["layer"] == name].iloc[0]
        W = getattr(model, name).weight.detach()
        mod = getattr(gre, name)
        W_hat = mod.to_dense() if hasattr(mod, "to_dense") else mod.weight.detach()
        Xn = None
        if with_x and name == "inp":
            Xn = X.reshape(-1, 24)
        if Xn is not None or not with_x:
            assert point_error(W, W_hat, Xn) == pytest.approx(row["error"], rel=1e-4, abs=1e-9)


def test_greedy_moves_values_by_error_per_value():
    model = LinLSTM()
    table = allocation(hl.compress(model, "lmf", compression=4, allocate="greedy"))
    comp = dict(zip(table["layer"] + table["matrix"], table["compression"]))
    rank = dict(zip(table["layer"] + table["matrix"], table["rank"]))
    # the nearly rank-3 input layer keeps its rank 3 and no more (uniform gives it rank 4 for nothing); the flat
    # output layer gains 1/32 of its error per rank (m+n values), less than the LSTM's leading directions
    assert rank["inp"] == 3 and comp["inp"] > 4
    assert comp["out"] > 4 and min(comp["rnnih_l0"], comp["rnnhh_l0"]) < 4


def test_allocate_checks():
    model = LinLSTM()
    with pytest.raises(ValueError, match=r"\['uniform', 'greedy'\]"):
        hl.compress(model, "lmf", compression=4, allocate="best")
    with pytest.raises(ValueError, match="no split="):
        hl.compress(model, "hmf", compression=4, split=2, allocate="greedy")
    with pytest.raises(ValueError, match="carries no allocation"):
        allocation(hl.compress(model, "lmf", compression=4))
    assert ALLOCATE == ("uniform", "greedy")


def test_every_registered_method_has_points():
    W, X = torch.randn(4 * 16, 12), torch.randn(32, 12)
    for name in hl.METHODS:
        rec = get_method(name)
        pts = rec.points(W, 4, X=X if "X" in rec.requires else None, blocks=4)  # the baselines need X
        assert pts and all(p[0] > 0 and p[1] >= 0 and "compression" in p[2] for p in pts)


@pytest.mark.parametrize("method", ["hmf", "lmf", "prune"])
def test_greedy_on_a_bare_lstm(method):
    small = hl.compress(torch.nn.LSTM(8, 16), method, compression=2, allocate="greedy")
    assert hl.count_params(small) == allocation(small).attrs["stored"] <= allocation(small).attrs["budget"]


def test_greedy_on_attention():
    mha = torch.nn.MultiheadAttention(16, 2, batch_first=True)
    enc = torch.nn.ModuleDict({"att": mha})
    small = hl.compress(enc, "lmf", compression=2, allocate="greedy")
    t = allocation(small)
    assert list(t["matrix"]) == ["q_proj", "k_proj", "v_proj", "out_proj"]
    assert hl.count_params(small) == t.attrs["stored"] <= t.attrs["budget"]


# ----------------------------------------------------------------------------- the shipped char LM


@pytest.mark.slow
@pytest.mark.parametrize("c", [8, 16])
def test_char_lm_greedy_lifts_the_smallest_rank(c):
    model = hl.models.load_pretrained("char_lm")
    for method in ("lmf", "hmf"):
        uni = allocation_plan(model, method, c, allocate="uniform")
        gre = allocation(hl.compress(model, method, compression=c, allocate="greedy"))
        print(f"\n{method} {c}x uniform\n{uni.to_string()}\n{method} {c}x greedy\n{gre.to_string()}")
        assert gre.attrs["stored"] <= gre.attrs["budget"] and gre.attrs["stored"] >= 0.99 * uni.attrs["stored"]
        assert gre.attrs["error"] <= uni.attrs["error"] + 1e-9
        ih = lambda t: int(t.loc[t["matrix"] == "ih_l0", "rank"].iloc[0])  # noqa: E731
        assert ih(gre) > ih(uni)  # the small W_ih blocks are no longer driven to rank 3-6


# ----------------------------------------------------------------------------- reusing an allocation (allocate=table)


def _net(seed):
    torch.manual_seed(seed)
    return torch.nn.ModuleDict({"rnn": torch.nn.LSTM(24, 48, batch_first=True), "out": torch.nn.Linear(48, 40)})


@pytest.mark.parametrize("method", ["hmf", "lmf", "prune", "hmf_col"])
def test_a_reused_table_rebuilds_the_same_structure_on_another_model(method):
    a = hl.compress(_net(0), method, compression=6, allocate="greedy")
    t = allocation(a)
    b = hl.compress(_net(1), method, compression=6, allocate=t)
    tb = allocation(b)
    assert list(tb["stored"]) == list(t["stored"])
    assert hl.count_params(b) == hl.count_params(a)
    assert tb.attrs["allocate"] == "reused" and tb.attrs["budget"] == t.attrs["budget"]
    x = torch.randn(2, 5, 24)
    out = b["out"](b["rnn"](x)[0])  # the rebuilt model runs
    assert out.shape == (2, 5, 40)


def test_a_reused_table_is_checked():
    t = allocation(hl.compress(_net(0), "lmf", compression=6, allocate="greedy"))
    with pytest.raises(ValueError, match="made for method 'lmf', not 'hmf'"):
        hl.compress(_net(1), "hmf", compression=6, allocate=t)
    with pytest.raises(ValueError, match="columns"):
        hl.compress(_net(1), "lmf", compression=6, allocate=t.drop(columns=["options"]))
    with pytest.raises(ValueError, match="no row for layer 'out'"):
        hl.compress(_net(1), "lmf", compression=6, allocate=t[t.layer != "out"])
    other = torch.nn.ModuleDict({"rnn": torch.nn.LSTM(24, 48, batch_first=True), "out": torch.nn.Linear(48, 41)})
    with pytest.raises(ValueError, match="another architecture"):
        hl.compress(other, "lmf", compression=6, allocate=t)
    with pytest.raises(ValueError, match="no split= / rank="):
        hl.compress(_net(1), "lmf", compression=6, allocate=t, rank=3)


def test_data_free_heuristic_follows_the_split_axis():
    assert get_method("hmf").data_free_heuristic() == "greedy"
    assert get_method("hmf_col").data_free_heuristic() == "col_norm"
    assert get_method("lmf").data_free_heuristic() is None
