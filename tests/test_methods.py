"""The method registry (issue 18 part 3): one record per method, read everywhere instead of method strings.

A method registered in ONE place (the ``lmf_even`` fixture: LMF with its rank rounded down to an even number)
works through ``hl.compress`` on a Linear + LSTM model and shows up in ``hl.report``; every raise of the
registry has a test; and no module outside ``hmf_lab/nn/methods.py`` compares method-name strings.
"""
from __future__ import annotations

import ast
import dataclasses
from pathlib import Path

import pytest
import torch
from torch import nn

import hmf_lab as hl
from hmf_lab.factor import budget as rules  # the size rules
from hmf_lab.nn import methods as M

PACKAGE = Path(hl.__file__).resolve().parent


# --------------------------------------------------------------------------- the extra method (one place)


def _even(r: int) -> int:
    return max(1, r - r % 2)


def _even_rank(shape, compression):
    return _even(hl.lmf_rank(tuple(shape), compression))


def _lstm_ranks(lstm, compression):
    H = lstm.hidden_size
    return {"ih": _even_rank((H, lstm.input_size), compression), "hh": _even_rank((H, H), compression)}


@pytest.fixture
def lmf_even():
    method = M.Method(
        name="lmf_even", label="LMF (even rank)", color="#8C564B",
        factorize=lambda W, compression=None: hl.lmf(W, rank=_even_rank(W.shape, compression)),
        linear=lambda lin, compression=None: hl.LMFLinear.from_linear(
            lin, rank=_even_rank((lin.out_features, lin.in_features), compression)),
        lstm=lambda lstm, compression=None: hl.LMFLSTM.from_lstm(lstm, rank=_lstm_ranks(lstm, compression)),
        stored=lambda shape, compression, blocks=1: blocks * _even_rank(shape, compression) * sum(shape),
        engines=("factorized", "reconstructed"), fine_tune="factors")
    hl.register_method(method)
    yield method
    M.unregister_method("lmf_even")
    assert "lmf_even" not in hl.METHODS


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.inp = nn.Linear(12, 24)
        self.rnn = nn.LSTM(24, 20, batch_first=True)
        self.out = nn.Linear(20, 10)

    def forward(self, x):
        return self.out(self.rnn(torch.tanh(self.inp(x)))[0])


def test_registered_method_works_through_compress_and_report(lmf_even):
    assert hl.get_method("lmf_even") is lmf_even and list(hl.METHODS)[-1] == "lmf_even"
    torch.manual_seed(0)
    net = Net()
    c = 3
    small = hl.compress(net, "lmf_even", compression=c)
    assert type(small.inp).__name__ == "LMFLinear" and small.inp.rank % 2 == 0
    assert type(small.rnn).__name__ == "LMFLSTM" and all(r % 2 == 0 for r in small.rnn.rank)
    x = torch.randn(2, 5, 12)
    assert small(x).shape == net(x).shape == (2, 5, 10)
    # compression holds: every matrix inside its budget floor(m*n / c), and the record counts the same values
    budget = sum(4 * rules.value_budget((20, n), c) for n in (24, 20)) + rules.value_budget((24, 12), c) \
        + rules.value_budget((10, 20), c)
    want = lmf_even.stored((24, 12), c) + lmf_even.stored((10, 20), c) + sum(
        lmf_even.stored((20, n), c, blocks=4) for n in (24, 20))
    assert hl.count_params(small) == want <= budget
    assert hl.count_params(net) / hl.count_params(small) >= c
    f = lmf_even.factorize(net.inp.weight.detach(), c)
    assert f.n_params == lmf_even.stored((24, 12), c)
    # the registry is read where methods are listed: hl.report covers it by default
    rep = hl.report(nn.Sequential(nn.Linear(16, 16)), compressions=(2,), time=False, progress=False)
    assert "lmf_even" in set(rep.table["method"])
    row = rep.table[rep.table["method"] == "lmf_even"].iloc[0]
    assert row["values"] == lmf_even.stored((16, 16), 2) and row["heuristic"] == ""
    plan = rep.plan(target=2, methods=["lmf_even"])
    assert hl.count_params(hl.report_apply_plan(nn.Sequential(nn.Linear(16, 16)), plan)) <= 128
    # and the course's colour and label helpers
    assert hl.plots.method_color("lmf_even") == "#8C564B" and M.label_of("lmf_even") == "LMF (even rank)"


def test_builtin_records_and_flags():
    assert list(hl.METHODS)[:3] == ["hmf", "lmf", "prune"]
    hmf, lmf, prune = (hl.get_method(n) for n in ("hmf", "lmf", "prune"))
    assert (hmf.label, lmf.label, prune.label) == ("HMF", "LMF", "pruning (CSR)")
    assert hmf.takes_heuristic and not lmf.takes_heuristic and not prune.takes_heuristic
    assert prune.sparse and not hmf.sparse and prune.fine_tune == "gradual_prune" and hmf.fine_tune == "factors"
    assert set(prune.engines) == {"csr", "reconstructed"} and "factorized" in hmf.engines
    assert hl.get_method(hmf) is hmf and M.lookup("dense") is M.DENSE and M.lookup("nope") is None
    assert M.label_of("dense") == "dense" and M.label_of("hmf-eager") == "hmf-eager"
    assert M.color_of("nope", "gray") == "gray" and M.method_names()[:3] == ["hmf", "lmf", "prune"]
    with pytest.raises(dataclasses.FrozenInstanceError):
        hmf.label = "x"
    W = torch.randn(64, 48)
    assert hmf.config((64, 48), 4) == dict(zip(("split", "rank"), hl.choose_split_rank((64, 48), 4)))
    assert lmf.config((64, 48), 4) == {"rank": 6} and prune.config((64, 48), 4) == {"nnz": 768}
    assert prune.factorize(W, 4).nnz == 768 == hl.prune(W, compression=4).nnz
    assert lmf.factorize(W, 4).rank == 6 and hmf.factorize(W, 4).n_params == hmf.stored((64, 48), 4)
    assert M.DENSE.stored((64, 48)) == 64 * 48 and M.DENSE.factorize(W).n_params == 64 * 48
    assert isinstance(M.DENSE.linear(nn.Linear(3, 2)), nn.Linear) and M.DENSE.config((2, 2)) == {}
    for m in (hmf, lmf, prune):
        mod = m.timing_module(nn.Linear(48, 64), 4)
        assert not mod.training and hl.count_params(mod) == m.stored((64, 48), 4)
        lstm = m.timing_module(nn.LSTM(16, 16), 4)
        assert hl.count_params(lstm) == 2 * m.stored((16, 16), 4, blocks=4)


def test_registry_errors():
    hmf = hl.get_method("hmf")
    with pytest.raises(TypeError, match=r"method must be a hmf_lab Method record .* got dict"):
        hl.register_method({"name": "x"})
    with pytest.raises(ValueError, match=r"method 'hmf' is already registered; pass replace=True"):
        hl.register_method(hmf)
    with pytest.raises(ValueError, match=r"method name 'dense' is reserved"):
        hl.register_method(dataclasses.replace(M.DENSE, is_dense=False))
    with pytest.raises(TypeError, match=r"method must be a method name \(a str, one of \[.*.hmf., .hmf_col., .lmf., .*.prune."):
        hl.get_method(3)
    with pytest.raises(ValueError, match=r"method must be one of \['aa_lmf', 'hmf', 'hmf_col', 'lmf', 'oats', 'prune', 'wanda'\], got 'svd'"):
        hl.get_method("svd")
    with pytest.raises(ValueError, match=r"'dense' is the uncompressed reference, not a method"):
        hl.compress(nn.Linear(4, 4), "dense", compression=2)
    with pytest.raises(ValueError, match=r"method 'lmf' is built in and cannot be removed"):
        M.unregister_method("lmf")
    with pytest.raises(ValueError, match=r"method must be one of .* got 'nope'"):
        M.unregister_method("nope")
    ok = dict(label="x", factorize=hl.lmf, linear=hl.LMFLinear.from_linear, stored=lambda *a, **k: 1)
    with pytest.raises(ValueError, match=r"Method.name must be a lower-case identifier .* got 'My Method'"):
        M.Method(name="My Method", **ok)
    with pytest.raises(ValueError, match=r"Method.label must be a non-empty str"):
        M.Method(name="x", **{**ok, "label": ""})
    with pytest.raises(TypeError, match=r"Method.factorize must be callable, got int"):
        M.Method(name="x", **{**ok, "factorize": 3})
    with pytest.raises(TypeError, match=r"Method.lstm must be callable or None, got str"):
        M.Method(name="x", lstm="no", **ok)
    with pytest.raises(ValueError, match=r"Method.options / fixed_by must name options of hl.compress .* \['depth'\]"):
        M.Method(name="x", options=("depth",), **ok)
    with pytest.raises(ValueError, match=r"Method.fine_tune must be one of \('factors', 'gradual_prune', 'none'\)"):
        M.Method(name="x", fine_tune="always", **ok)
    with pytest.raises(TypeError, match="method 'prune' needs compression"):
        hl.get_method("prune").config((4, 4))
    with pytest.raises(ValueError, match=r"HMF for timing builds one-layer square LSTMs"):
        hmf.timing_module(nn.LSTM(8, 16), 4)
    with pytest.raises(ValueError, match=r"LMF for timing builds one-layer square LSTMs"):
        hl.get_method("lmf").timing_module(nn.LSTM(8, 8, num_layers=2), 4)


def test_a_method_without_an_lstm_form(lmf_even):
    linear_only = dataclasses.replace(lmf_even, name="lmf_even_lin", lstm=None, for_timing=None)
    hl.register_method(linear_only)
    try:
        # the layer policy: a method without an LSTM form touches nn.Linear only, and says what it left dense
        assert linear_only.layer_policy == "linear+attention" and not linear_only.touches(nn.LSTM(4, 4))
        with pytest.warns(UserWarning, match=r"method 'lmf_even_lin' touches linear\+attention modules by default .* 'rnn' left dense"):
            small = hl.compress(Net(), "lmf_even_lin", compression=2)
        assert type(small.rnn) is nn.LSTM
        with pytest.raises(TypeError, match=r"method 'lmf_even_lin' has no LSTM form; leave the nn.LSTM out"):
            hl.compress(Net(), "lmf_even_lin", compression=2, layers=["rnn"])
        small = hl.compress(Net(), "lmf_even_lin", compression=2, layers=["inp", "out"])
        assert type(small.rnn) is nn.LSTM and small.inp.rank % 2 == 0
        with pytest.raises(TypeError, match=r"method 'lmf_even_lin' has no LSTM form to time"):
            linear_only.timing_module(nn.LSTM(4, 4), 2)
        assert hl.count_params(linear_only.timing_module(nn.Linear(8, 8), 2)) == 32  # rank 2 of 8x8
        with pytest.raises(ValueError, match=r"sparse=True only applies to method 'prune' or 'wanda', got method 'lmf_even_lin'"):
            hl.compress(Net(), linear_only, compression=2, sparse=True)
    finally:
        M.unregister_method("lmf_even_lin")


def test_compress_option_and_count_errors():
    net = nn.Sequential(nn.Linear(8, 8))
    with pytest.raises(ValueError, match=r"prune_count = 'lmf' only applies to method 'prune', got method 'hmf'"):
        hl.compress(net, "hmf", 2, prune_count="lmf")
    with pytest.raises(ValueError, match=r"count must be 'budget' .* or 'lmf' .* got 'most'"):
        hl.compress(net, "prune", 2, prune_count="most")
    with pytest.raises(ValueError, match=r"count must be 'budget'"):
        rules.prune_keep((8, 8), 2, count=None)
    with pytest.raises(ValueError, match=r"methods must be a non-empty sequence from \['hmf', 'lmf', 'prune', 'hmf_col', 'aa_lmf', 'wanda', 'oats'\]"):
        hl.report(net, compressions=(2,), methods=["svd"], time=False, progress=False)
    with pytest.raises(ValueError, match=r"methods must be a non-empty sequence"):
        hl.report(net, compressions=(2,), methods="hmf", time=False, progress=False)


# --------------------------------------------------------------------------- no method strings outside the registry

#: method names whose literal comparison is dispatch-by-string (the registry's job)
NAMES = {"hmf", "lmf", "prune", "hmf_col", "aa_lmf", "wanda", "oats"}
#: files that may compare method names: the registry itself
ALLOWED = {"nn/methods.py"}


def _names_in(node) -> set:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return {node.value} & NAMES
    if isinstance(node, (ast.Tuple, ast.List, ast.Set)):
        return set().union(*(_names_in(e) for e in node.elts)) if node.elts else set()
    return set()


def method_string_comparisons(tree: ast.AST) -> list[tuple[int, str]]:
    """(line, what) of every comparison against a method-name literal (==, !=, in, not in), ``.isin([...])``
    with method names, and dict literals keyed by two or more method names (dispatch tables)."""
    hits = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Compare):
            sides = [node.left, *node.comparators]
            found = set().union(*(_names_in(s) for s in sides))
            if found:
                hits.append((node.lineno, f"compares with {sorted(found)}"))
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "isin":
            found = set().union(*(_names_in(a) for a in node.args))
            if found:
                hits.append((node.lineno, f".isin({sorted(found)})"))
        elif isinstance(node, ast.Dict):
            keys = [k.value for k in node.keys if isinstance(k, ast.Constant) and k.value in NAMES]
            if len(keys) >= 2:
                hits.append((node.lineno, f"dict keyed by {keys}"))
    return hits


def test_the_scanner_finds_what_it_should():
    src = ("a = m == 'hmf'\nb = 'lmf' != m\nc = m in ('hmf', 'x')\nd = df.method.isin(['prune'])\n"
           "e = {'hmf': 1, 'lmf': 2}\nf = m == HMF.name\ng = get_method('hmf')\nh = {'hmf': 1}\n")
    assert [line for line, _ in method_string_comparisons(ast.parse(src))] == [1, 2, 3, 4, 5]


def test_no_method_string_comparisons_outside_the_registry():
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE).as_posix()
        if rel in ALLOWED:
            continue
        for line, what in method_string_comparisons(ast.parse(path.read_text(), filename=str(path))):
            found.append(f"hmf_lab/{rel}:{line}: {what}")
    assert not found, "method-name string comparisons outside hmf_lab/nn/methods.py (read the registry: " \
                      "hl.get_method(name).takes_heuristic / .sparse / .label ...):\n" + "\n".join(found)
