"""Garbage in (issue 12 item 5): every public entry point answers bad input with a clear error.

Hypothesis throws mixed garbage (None, bools, huge ints, nan/inf, strings, nested lists, numpy arrays
and tensors of every dtype and shape, meta tensors) at the math functions, HMFCache, the layers,
``hl.compress``, the CLI and the data loaders. Allowed: a result, or ``ValueError`` / ``TypeError`` /
``FileNotFoundError`` whose message names the argument (or, for the CLI, argparse's exit 2 / the
one-line ``hmf-lab: error:`` with exit 2). Nothing else, nothing hangs (pytest-timeout per test),
nothing crashes the interpreter. Examples are few (``max_examples`` modest) to keep it fast.
"""
from __future__ import annotations

import re

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch import nn

import hmf_lab as hl

ALLOWED = (ValueError, TypeError, FileNotFoundError)
FAST = settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))

_DTYPES = [torch.float32, torch.float64, torch.float16, torch.int64, torch.bool, torch.complex64]


@st.composite
def tensors(draw):
    nd = draw(st.integers(0, 3))
    shape = tuple(draw(st.lists(st.integers(0, 5), min_size=nd, max_size=nd)))
    dtype = draw(st.sampled_from(_DTYPES))
    if draw(st.booleans()) and dtype.is_floating_point:
        v = draw(st.sampled_from([float("nan"), float("inf"), 1e38, -0.0, 1e-45]))
        t = torch.full(shape, v, dtype=torch.float64).to(dtype)
    else:
        t = torch.zeros(shape, dtype=dtype) if dtype in (torch.bool,) else (torch.randn(shape).to(dtype) if
                                                                               dtype != torch.complex64 else torch.randn(shape, dtype=dtype))
    if draw(st.booleans()) and t.ndim == 2:
        t = t.T
    if draw(st.integers(0, 9)) == 0:
        t = torch.empty(shape, dtype=dtype, device="meta")
    return t


GARBAGE = st.one_of(
    st.none(), st.booleans(), st.integers(-10**30, 10**30), st.sampled_from([10**400, -1, 0, 2**63]),
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=5), st.binary(max_size=4),
    st.lists(st.integers(-3, 9), max_size=4), st.tuples(st.integers(-2, 9), st.integers(-2, 9)),
    st.dictionaries(st.text(max_size=2), st.integers(), max_size=2),
    tensors(), st.builds(lambda a: np.asarray(a), st.lists(st.floats(-5, 5), max_size=6)),
    st.sampled_from([np.zeros((3, 2), dtype=np.int8), np.zeros((2, 2), dtype=object), np.float16(1.0), object()]),
)
# a plausible value half of the time, garbage otherwise: errors must come from the garbage argument
W_OK = st.sampled_from([torch.randn(6, 5), torch.randn(5, 6, dtype=torch.float64)])


def _names_an_argument(err: Exception, names) -> bool:
    text = str(err)
    return bool(text) and any(re.search(rf"\b{re.escape(n)}\b", text) for n in names)


def _call(fn, *args, names=(), **kwargs):
    """Run fn; a result or an allowed error that names one of ``names``; anything else fails the test."""
    try:
        return fn(*args, **kwargs)
    except ALLOWED as e:
        if names:
            assert _names_an_argument(e, names), f"{type(e).__name__} does not name {names}: {e}"
        return e


def _mixed(draw, good):
    return draw(st.one_of(good, GARBAGE))


# the words an error may use for each argument (a message says e.g. "split must be an int ...")
W_NAMES = ("W", "W_hat", "f", "shape", "heuristic", "X", "split", "rank", "compression", "nnz", "ranks",
           "splits", "step", "max_items", "rows", "values", "tol", "blocks")


@FAST
@given(st.data())
def test_garbage_math_functions(data):
    d = data.draw
    W = _mixed(d, W_OK)
    _call(hl.hmf, W, _mixed(d, st.integers(0, 6)), _mixed(d, st.integers(0, 6)),
          heuristic=_mixed(d, st.sampled_from(["top", "greedy", "activation", [0, 1]])),
          X=d(st.one_of(st.none(), GARBAGE)), names=W_NAMES)
    _call(hl.lmf, W, _mixed(d, st.integers(0, 6)), names=W_NAMES)
    _call(hl.prune, W, _mixed(d, st.floats(1, 30)), names=W_NAMES)
    _call(hl.relative_error, W, _mixed(d, W_OK), names=W_NAMES)
    _call(hl.budget, _mixed(d, st.tuples(st.integers(1, 40), st.integers(1, 40))), _mixed(d, st.floats(1, 8)),
          step=_mixed(d, st.integers(1, 8)), names=W_NAMES)
    _call(hl.sweep, W, splits=d(st.one_of(st.none(), GARBAGE)), ranks=d(st.one_of(st.none(), GARBAGE)),
          names=W_NAMES)
    _call(hl.choose_split_rank, _mixed(d, st.tuples(st.integers(1, 40), st.integers(1, 40))),
          _mixed(d, st.floats(1, 8)), names=W_NAMES)
    _call(hl.factor.budget.equal_budget, _mixed(d, st.tuples(st.integers(1, 60), st.integers(1, 60))),
          _mixed(d, st.floats(1, 8)), split=d(st.one_of(st.none(), GARBAGE)), names=W_NAMES)


@FAST
@given(st.data())
def test_garbage_cache(data):
    d = data.draw
    cache = _call(hl.HMFCache, _mixed(d, W_OK), X=d(st.one_of(st.none(), GARBAGE)),
                  max_items=_mixed(d, st.integers(1, 5)), names=W_NAMES)
    if isinstance(cache, hl.HMFCache):
        _call(cache.error, _mixed(d, st.integers(0, 5)), _mixed(d, st.integers(0, 5)), names=W_NAMES)
        _call(cache.hmf, _mixed(d, st.integers(0, 5)), _mixed(d, st.integers(0, 5)),
              _mixed(d, st.sampled_from(["top", "row_norm"])), names=W_NAMES)


LAYER_NAMES = ("linear", "split", "rank", "compression", "heuristic", "W", "X", "x", "input")


@FAST
@given(st.data())
def test_garbage_layers(data):
    d = data.draw
    lin = _mixed(d, st.sampled_from([nn.Linear(5, 6), nn.Linear(5, 6, bias=False)]))
    layers = [
        _call(hl.HMFLinear.from_linear, lin, _mixed(d, st.integers(0, 6)), _mixed(d, st.integers(0, 5)),
              names=LAYER_NAMES),
        _call(hl.LMFLinear.from_linear, lin, _mixed(d, st.integers(0, 5)), names=LAYER_NAMES),
        _call(hl.SparseLinear.from_linear, lin, _mixed(d, st.floats(1, 30)), names=LAYER_NAMES),
    ]
    x = _mixed(d, st.sampled_from([torch.randn(3, 5), torch.randn(2, 4, 5)]))
    for layer in layers:
        if isinstance(layer, nn.Module):
            with torch.no_grad():
                _call(layer, x)  # 5(h) (layers.py, engineer timing): forward validates its input


@FAST
@given(st.data())
def test_garbage_compress(data):
    d = data.draw
    model = _mixed(d, st.sampled_from([nn.Sequential(nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 3)),
                                       nn.LSTM(4, 6, batch_first=True), nn.Linear(12, 12)]))
    method = _mixed(d, st.sampled_from(["hmf", "lmf", "prune"]))
    _call(hl.compress, model, method, _mixed(d, st.floats(1, 3)), heuristic=_mixed(d, st.just("top")),
          split=d(st.one_of(st.none(), GARBAGE)), rank=d(st.one_of(st.none(), GARBAGE)),
          layers=d(st.one_of(st.none(), GARBAGE)), sparse=_mixed(d, st.booleans()),
          names=("model", "method", "compression", "heuristic", "split", "rank", "layers", "sparse", "shape",
                 "layer", "X"))


_TOKENS = ["bench", "reproduce", "--quick", "--sizes", "--seq", "--rounds", "--batches", "--threads",
           "--compression", "--compressions", "--heuristic", "--fine-tune-steps", "--out", "--task",
           "--methods", "--min-run-time", "--clock", "-8", "0", "1e9", "nan", "inf", "x", "4", "lm", "top",
           "outdir", "", "--", "-h"]


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(argv=st.lists(st.one_of(st.sampled_from(_TOKENS), st.text(alphabet="abc-_.0123456789e", max_size=6)),
                     max_size=6))
def test_garbage_cli(argv, tmp_path_factory, monkeypatch, capsys):
    """main(argv): exit 0/2 through argparse, or a one-line error and 2: never a traceback or another error."""
    from hmf_lab.experiments import bench
    from hmf_lab import cli
    from hmf_lab.experiments import reproduce

    monkeypatch.chdir(tmp_path_factory.mktemp("cli"))  # --out folders land in a scratch directory
    ran = []
    monkeypatch.setattr(bench, "run", lambda args: ran.append(args) or 0)  # parsing and checks, not hours of runs
    monkeypatch.setattr(reproduce, "run", lambda args: ran.append(args) or 0)
    try:
        code = cli.main(argv)
    except SystemExit as e:
        code = e.code
    out = capsys.readouterr()
    assert code in (0, 2, None)
    assert "Traceback" not in out.err
    if code == 2 and not ran:
        assert "error" in out.err


@settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck))
@given(name=GARBAGE)
def test_garbage_data_loaders(name, monkeypatch):
    monkeypatch.setenv("HMF_LAB_OFFLINE", "1")  # never touch the network from a garbage name
    for fn in (hl.data.path, hl.data.available, hl.data.skip_note, hl.data.load_text, hl.data.verify):
        _call(fn, name, names=("name", "dataset", "data set"))
    _call(hl.data.load_snips, name, names=("split",))
