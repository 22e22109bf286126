"""Every error at the public boundary: a clear ValueError/TypeError naming the argument."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import hmf_lab as hl
from hmf_lab.factor import _validation as v

W = torch.randn(8, 6)


@pytest.mark.parametrize("bad, exc, msg", [
    (torch.randn(5), ValueError, r"2-D matrix .* got 1-D"),
    (torch.randn(2, 3, 4), ValueError, r"got 3-D"),
    (torch.randn(0, 4), ValueError, r"non-empty"),
    (torch.tensor([[1.0, float("nan")]]), ValueError, r"NaN or Inf"),
    (torch.tensor([[1.0, float("inf")]]), ValueError, r"1 NaN or Inf"),
    (torch.ones(3, 3, dtype=torch.int64), TypeError, r"float32 or float64, got torch.int64"),
    (torch.ones(3, 3, dtype=torch.bool), TypeError, r"got torch.bool"),
    (torch.ones(3, 3, dtype=torch.complex64), TypeError, r"got torch.complex64"),
    (torch.ones(3, 3, dtype=torch.float16), TypeError, r"got torch.float16"),
    (np.ones((3, 3), dtype=np.int32), TypeError, r"real floating dtype.*int32"),
    (np.ones((3, 3), dtype=np.complex128), TypeError, r"real floating dtype"),
    (np.ones((3, 3), dtype=np.float16), TypeError, r"float32 or float64, got numpy float16"),
    (np.array([[object()]]), TypeError, r"dtype object"),
    ([[1.0, 2.0]], TypeError, r"torch.Tensor or numpy.ndarray .* got list"),
    (torch.eye(3).to_sparse(), TypeError, r"dense \(strided\)"),
])
def test_bad_matrix(bad, exc, msg):
    with pytest.raises(exc, match=msg):
        hl.hmf(bad, 1, 1)
    with pytest.raises(exc, match=msg):
        hl.lmf(bad, 1)
    with pytest.raises(exc, match=msg):
        hl.prune(bad, 2)


@pytest.mark.parametrize("split, exc, msg", [
    (-1, ValueError, r"split must be an int in \[0, m\]=\[0, 8\], got -1"),
    (9, ValueError, r"split must be an int in \[0, m\]=\[0, 8\], got 9"),
    (2.0, TypeError, r"split must be an int, got float 2.0"),
    (True, TypeError, r"split must be an int, got bool"),
    ("2", TypeError, r"split must be an int, got str"),
    (torch.tensor(2.0), TypeError, r"split must be an int, got tensor"),
])
def test_bad_split(split, exc, msg):
    with pytest.raises(exc, match=msg):
        hl.hmf(W, split, 1)


def test_integer_like_split_accepted():
    assert hl.hmf(W, np.int64(2), torch.tensor(1)).split == 2


@pytest.mark.parametrize("split, rank, exc, msg", [
    (2, 0, ValueError, r"rank must be an int in \[1, min\(m-split, n\)\]=\[1, 6\].*got 0; rank 0 is only allowed when split = m"),
    (2, 7, ValueError, r"\[1, 6\] for shape \(8, 6\) and split 2, got 7"),
    (5, 4, ValueError, r"\[1, 3\].*got 4"),
    (8, 1, ValueError, r"rank must be 0 when split = m = 8"),
    (2, 1.5, TypeError, r"rank must be an int, got float"),
])
def test_bad_rank(split, rank, exc, msg):
    with pytest.raises(exc, match=msg):
        hl.hmf(W, split, rank)


def test_lmf_bad_rank():
    with pytest.raises(ValueError, match=r"rank must be an int in \[1, min\(m-split, n\)\]=\[1, 6\]"):
        hl.lmf(W, 7)


@pytest.mark.parametrize("c, exc, msg", [
    (0.5, ValueError, r"compression must be a finite number >= 1"),
    (float("inf"), ValueError, r"finite number"),
    (float("nan"), ValueError, r"finite number"),
    ("4", TypeError, r"compression must be a real number >= 1, got str"),
    (True, TypeError, r"got bool"),
])
def test_bad_compression(c, exc, msg):
    with pytest.raises(exc, match=msg):
        hl.prune(W, c)
    with pytest.raises(exc, match=msg):
        hl.budget((8, 6), c)


def test_prune_compression_too_high():
    with pytest.raises(ValueError, match=r"leaves no stored value .* at most m\*n = 48"):
        hl.prune(W, 100)


def test_budget_unreachable_compression():
    with pytest.raises(ValueError, match=r"cannot be reached for shape \(8, 6\).*compression at most 3.429"):
        hl.budget((8, 6), compression=4)


@pytest.mark.parametrize("shape, step, exc, msg", [
    ((8,), 1, TypeError, r"shape must be a tuple \(m, n\)"),
    ((0, 6), 1, ValueError, r"positive sizes"),
    ((8, 6), 0, ValueError, r"step must be an int >= 1"),
    ((8.0, 6), 1, TypeError, r"shape\[0\] must be an int"),
])
def test_budget_bad_arguments(shape, step, exc, msg):
    with pytest.raises(exc, match=msg):
        hl.budget(shape, 2, step=step)


def test_unknown_heuristic_lists_valid_names():
    with pytest.raises(ValueError, match=r"unknown heuristic 'nope'; valid names are \[.*'top'.*\]"):
        hl.hmf(W, 2, 1, heuristic="nope")


def test_heuristic_of_wrong_type():
    with pytest.raises(TypeError, match=r"heuristic must be a registered name .* got int"):
        hl.hmf(W, 2, 1, heuristic=3)


def bad_count(W, split, *, rank, X=None):
    return torch.arange(split + 1)


def dup_rows(W, split, *, rank, X=None):
    return torch.zeros(split, dtype=torch.int64)


def out_of_range(W, split, *, rank, X=None):
    return torch.arange(W.shape[0] - split + 1, W.shape[0] + 1)


def float_rows(W, split, *, rank, X=None):
    return torch.arange(split, dtype=torch.float32)


def returns_list(W, split, *, rank, X=None):
    return "rows"


@pytest.mark.parametrize("fn, exc, msg", [
    (bad_count, ValueError, r"heuristic 'bad_count' must return split=3 row indices, got 4"),
    (dup_rows, ValueError, r"heuristic 'dup_rows' returned duplicate rows \[0\]"),
    (out_of_range, ValueError, r"heuristic 'out_of_range' returned out-of-range rows: .*\[0, 7\].*max 8"),
    (float_rows, TypeError, r"heuristic 'float_rows' must return integer row indices, got dtype torch.float32"),
    (returns_list, TypeError, r"heuristic 'returns_list' must return a LongTensor of row indices, got str"),
])
def test_bad_heuristic_output_names_the_heuristic(fn, exc, msg):
    with pytest.raises(exc, match=msg):
        hl.hmf(W, 3, 1, heuristic=fn)


def test_registered_bad_heuristic_named():
    hl.register_heuristic("_test_bad")(bad_count)
    try:
        with pytest.raises(ValueError, match=r"heuristic '_test_bad' must return split=3"):
            hl.hmf(W, 3, 1, heuristic="_test_bad")
    finally:
        del hl.HEURISTICS["_test_bad"]


@pytest.mark.parametrize("rows, exc, msg", [
    ([0, 1], ValueError, r"explicit rows must return split=3 row indices, got 2"),
    (np.array([0.0, 1.0, 2.0]), TypeError, r"explicit rows must return integer row indices, got numpy dtype float64"),
    ([0, 0, 1], ValueError, r"duplicate rows"),
])
def test_bad_explicit_rows(rows, exc, msg):
    with pytest.raises(exc, match=msg):
        hl.hmf(W, 3, 1, heuristic=rows)


def test_register_heuristic_bad_arguments():
    with pytest.raises(TypeError, match=r"heuristic name must be a non-empty str"):
        hl.register_heuristic("")
    with pytest.raises(TypeError, match=r"must decorate a callable, got int"):
        hl.register_heuristic("_test_nc")(3)


@pytest.mark.parametrize("x, exc, msg", [
    (torch.randn(3, 5), ValueError, r"x must have shape \(\.\.\., n\) with n = 6, got shape \(3, 5\)"),
    (torch.ones(3, 6, dtype=torch.int32), TypeError, r"x must have dtype float32 or float64"),
    ([1.0] * 6, TypeError, r"x must be a torch.Tensor or numpy.ndarray"),
])
def test_bad_inputs_to_call(x, exc, msg):
    with pytest.raises(exc, match=msg):
        hl.hmf(W, 2, 1)(x)


def test_bad_calibration_inputs():
    with pytest.raises(ValueError, match=r"X must have shape \(\.\.\., n\) with n = 6"):
        hl.hmf(W, 2, 1, X=torch.randn(4, 5))


def test_relative_error_shape_mismatch():
    with pytest.raises(ValueError, match=r"W_hat must have the shape of W \(8, 6\), got \(6, 8\)"):
        hl.relative_error(W, W.T.contiguous())


@pytest.mark.parametrize("kwargs, exc, msg", [
    ({"splits": [9]}, ValueError, r"split must be an int in \[0, m\]"),
    ({"ranks": [7]}, ValueError, r"ranks must lie in \[0, min\(m, n\)\]=\[0, 6\], got \[7\]"),
    ({"ranks": [1.0]}, TypeError, r"rank must be an int"),
])
def test_sweep_bad_arguments(kwargs, exc, msg):
    with pytest.raises(exc, match=msg):
        hl.sweep(W, **kwargs)


def test_as_int_rejects_float_tensor_and_accepts_numpy_int():
    assert v.as_int(np.int32(3), "n") == 3
    with pytest.raises(TypeError, match=r"n must be an int, got tensor of dtype torch.float32"):
        v.as_int(torch.tensor(3.0), "n")


# --------------------------------------------------------------------------- issue 12 item 5: defects, each with a test


@pytest.mark.parametrize("scale", [1e18, 1e-30, 1e30, 1e-40])
def test_relative_error_at_extreme_scales(scale):
    """5(b): W*1e18 vs 0 gave nan, W*1e-30 vs 0 gave 0.0; both are 1.0."""
    W = torch.randn(16, 12) * scale
    assert hl.relative_error(W, torch.zeros_like(W)) == pytest.approx(1.0)
    assert hl.relative_error(W, W) == 0.0
    assert hl.relative_error(W, 0.5 * W) == pytest.approx(0.5, rel=1e-5)
    X = torch.randn(20, 12)
    assert hl.output_error(W, hl.hmf(W, split=0, rank=1), X) <= 1.0 + 1e-6
    f = hl.hmf(W, split=4, rank=3)
    df = hl.sweep(W, splits=[0, 4], ranks=[3])
    assert df["error"].between(0, 1).all()
    assert df.loc[df["split"] == 4, "error"].item() == pytest.approx(hl.relative_error(W, f), rel=1e-3, abs=1e-6)


def test_to_dense_near_float32_max_stays_finite():
    """5(b): a float32 W near 3e38 gave inf in to_dense()."""
    W = torch.rand(8, 6) * 3e38
    for f in (hl.hmf(W, 2, 3), hl.lmf(W, 3), hl.HMFCache(W).hmf(2, 3)):
        assert bool(torch.isfinite(f.to_dense()).all())
        assert hl.relative_error(W, f) < 1.0
    assert hl.HMFCache(W).error(2, 3) == pytest.approx(hl.relative_error(W, hl.hmf(W, 2, 3)), rel=1e-3)


def test_cache_uses_the_whitened_fit_like_hmf():
    """5(c): HMFCache.hmf(..., 'activation') with X fitted by plain SVD (0.715 vs 0.080 output error)."""
    g = torch.Generator().manual_seed(0)
    W = torch.randn(32, 24, generator=g)
    X = torch.randn(200, 24, generator=g) * torch.linspace(0.1, 10, 24)
    cache = hl.HMFCache(W, X=X)
    a, b = cache.hmf(6, 5, "activation"), hl.hmf(W, 6, 5, heuristic="activation", X=X)
    assert torch.equal(a.rows, b.rows) and torch.allclose(a.to_dense(), b.to_dense(), atol=1e-4)
    assert hl.output_error(W, a, X) == pytest.approx(hl.output_error(W, b, X), rel=1e-4)
    assert cache.error(6, 5, "activation") == pytest.approx(hl.relative_error(W, b), rel=1e-4)
    assert cache.error(6, 5, "top") == pytest.approx(hl.relative_error(W, hl.hmf(W, 6, 5)), rel=1e-4)


def test_cache_threads_and_max_items():
    """5(i): KeyError in _remember under threads; max_items=0 gave StopIteration, 2.5 was accepted."""
    import threading

    W = torch.randn(24, 16)
    cache = hl.HMFCache(W, max_items=2)
    errors = []

    def work(seed):
        rng = torch.Generator().manual_seed(seed)
        try:
            for _ in range(60):
                k = int(torch.randint(0, 20, (1,), generator=rng))
                cache.error(k, 1, "top")
                cache.hmf(k, 1, "top")
        except Exception as e:  # noqa: BLE001 - the test collects whatever a thread raises
            errors.append(e)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not errors and not any(t.is_alive() for t in threads)
    assert len(cache._spectra) <= 2 and len(cache._svds) <= 2
    with pytest.raises(ValueError, match="max_items must be an int >= 1"):
        hl.HMFCache(W, max_items=0)
    with pytest.raises(TypeError, match="max_items must be an int, got float 2.5"):
        hl.HMFCache(W, max_items=2.5)


def test_meta_device_and_empty_calibration():
    """5(j): meta-device W, X or row indices raised `.item()` errors; X of shape (0, n) was accepted."""
    with pytest.raises(ValueError, match="W is on the meta device"):
        hl.hmf(torch.empty(6, 4, device="meta"), 2, 1)
    with pytest.raises(ValueError, match="X is on the meta device"):
        hl.hmf(torch.randn(6, 4), 2, 1, heuristic="activation", X=torch.empty(10, 4, device="meta"))
    for kw in ({"split": torch.tensor(2, device="meta")}, {"rank": torch.tensor(1, device="meta")}):
        # hypothesis (test_garbage_layers, seed 2) found a meta int tensor as split reaching int(): RuntimeError
        with pytest.raises(ValueError, match=f"{next(iter(kw))} is on the meta device"):
            hl.HMFLinear.from_linear(torch.nn.Linear(5, 6), **{"split": 2, "rank": 1, **kw})
    with pytest.raises(ValueError, match="returned row indices on the meta device"):
        hl.hmf(torch.randn(6, 4), 2, 1, heuristic=lambda W, split, *, rank, X=None: torch.empty(2, device="meta", dtype=torch.long))
    with pytest.raises(ValueError, match=r"X \(calibration inputs\) must hold at least one row of width 4"):
        hl.hmf(torch.randn(6, 4), 2, 1, heuristic="activation", X=torch.zeros(0, 4))
    with pytest.raises(ValueError, match=r"X \(calibration inputs\) must hold at least one row"):
        hl.HMFCache(torch.randn(6, 4), X=torch.zeros(0, 4))
    with pytest.raises(ValueError, match=r"X \(calibration inputs\) must be finite"):
        hl.HMFCache(torch.randn(6, 4), X=torch.full((3, 4), float("nan")))


@pytest.mark.parametrize("X", [np.array([[object()] * 4] * 3), np.ones((3, 4), dtype=np.int64),
                               np.ones((3, 4), dtype=np.complex64)])
def test_calibration_numpy_of_a_wrong_dtype_is_a_type_error_naming_X(X):
    """Found by test_garbage (hypothesis): an object ndarray X reached torch.from_numpy's raw message."""
    with pytest.raises(TypeError, match=r"X.* must be float32 or float64, got numpy"):
        hl.HMFCache(torch.randn(6, 4), X=X)
    f = hl.hmf(torch.randn(6, 4), 2, 1)
    with pytest.raises(TypeError, match=r"x must be float32 or float64, got numpy"):
        f(X)  # HMFResult applies itself to inputs x


def test_smaller_defects():
    """5(l): compression=10**400 raised OverflowError; sweep(splits=3) 'int' object is not iterable."""
    W = torch.randn(8, 6)
    with pytest.raises(ValueError, match="compression must be a finite number >= 1 .* int too large"):
        hl.prune(W, 10**400)
    with pytest.raises(ValueError, match="int too large"):
        hl.compress(torch.nn.Linear(6, 8), "hmf", compression=10**400)
    with pytest.raises(TypeError, match=r"splits must be a list or range of ints \(e.g. splits=\[3\]"):
        hl.sweep(W, splits=3)
    for zero_d in (torch.tensor(0), np.array(2)):  # found by test_garbage: "iteration over a 0-d tensor"
        with pytest.raises(TypeError, match="ranks must be a list or range of ints"):
            hl.sweep(W, ranks=zero_d)
    with pytest.raises(TypeError, match="ranks must be a list or range of ints"):
        hl.sweep(W, ranks="12")


def test_prune_transposed_weights():
    """5(f): a non-contiguous W raised 'view size is not compatible' in prune, SparseLinear, compress."""
    W = torch.randn(4, 6).T  # (6, 4), not contiguous
    assert hl.prune(W, 2).nnz == 12
    lin = torch.nn.Linear(4, 6)
    with torch.no_grad():
        lin.weight = torch.nn.Parameter(torch.randn(4, 6).T)
    assert not lin.weight.is_contiguous()
    x = torch.randn(3, 4)
    sp = hl.SparseLinear.from_linear(lin, 2)
    with torch.no_grad():
        assert torch.allclose(sp(x), x @ hl.prune(lin.weight.detach(), 2).to_dense().T + lin.bias, atol=1e-5)
    assert hl.SparseLinear.from_linear(lin, 2).nnz == hl.factor.budget.prune_keep((6, 4), 2)
    for kw in ({}, {"sparse": True}):
        small = hl.compress(torch.nn.Sequential(lin), "prune", compression=2, **kw)
        assert hl.count_params(small) == hl.factor.budget.prune_keep((6, 4), 2)


# --------------------------------------------------------------------------- hl.compress: contradictory size, X misfit


def test_compress_rejects_compression_contradicting_split_and_rank():
    """split=1, rank=7 on an 8x8 layer stores 113 values; compression=8 allows 8: no silent override."""
    net = torch.nn.Sequential(torch.nn.Linear(8, 8))
    with pytest.raises(ValueError, match=r"split=1, rank=7 store 113 values but compression 8.0 allows at most "
                                         r"floor\(8\*8 / 8.0\) = 8 .*no split fits"):
        hl.compress(net, "hmf", compression=8, split=1, rank=7)
    with pytest.raises(ValueError, match=r"store 38 values .* at most .* = 32 .*rank=1 fits at split=1"):
        hl.compress(net, "hmf", compression=2, split=1, rank=2)
    with pytest.raises(ValueError, match=r"split=6, rank=1 .* the largest split that does is 1"):
        hl.choose_split_rank((8, 8), 2.5, split=6, rank=1)  # budget 25: split 1, rank 1 stores 8 + 7 + 8 = 23
    small = hl.compress(net, "hmf", compression=2, split=1, rank=1)  # agrees: 8 + 7 + 8 = 23 <= 32
    assert hl.count_params(small) == 23
    assert hl.count_params(hl.compress(net, "hmf", split=1, rank=7)) == 113  # no compression: the point as given


def test_compress_names_X_that_does_not_fit_the_model():
    net = torch.nn.Sequential(torch.nn.Linear(8, 8), torch.nn.ReLU(), torch.nn.Linear(8, 4))
    with pytest.raises(ValueError, match=r"X batch 0 reaches layer '0' \(Linear\(8, 8\)\) with width 7 .* "
                                         r"expects inputs of width 8"):
        hl.compress(net, "hmf", compression=2, heuristic="activation", X=torch.randn(5, 7))
    with pytest.raises(TypeError, match=r"X batch 0 .* as torch.float64 inputs .* takes torch.float32 inputs; "
                                        r"pass X as torch.float32"):
        hl.compress(net, "hmf", compression=2, heuristic="activation", X=torch.randn(5, 8, dtype=torch.float64))
    with pytest.raises(TypeError, match=r"as torch.int64 inputs .* X.to\(torch.float32\)\)$"):
        hl.compress(net, "hmf", compression=2, heuristic="activation", X=torch.ones(5, 8, dtype=torch.int64))
    with pytest.raises(ValueError, match=r"X batch 1 reaches the model \(LSTM\(8, 4\)\) with width 6"):
        hl.compress(torch.nn.LSTM(8, 4), "hmf", compression=2, heuristic="activation",
                    X=[torch.randn(3, 2, 8), torch.randn(3, 2, 6)])
    broken = torch.nn.Sequential(torch.nn.Linear(8, 8), torch.nn.Linear(7, 3))  # the model itself cannot run
    with pytest.raises(ValueError, match=r"reaches layer '1' \(Linear\(7, 3\)\) with width 8"):
        hl.compress(broken, "hmf", compression=2, heuristic="activation", X=torch.randn(4, 8))


# --------------------------------------------------------------------------- the CLI (5e)


@pytest.mark.parametrize("argv, msg", [
    (["reproduce", "--out", "{tmp}", "--compression", "0"], "argument --compression: expected a finite compression > 1"),
    (["report", "--model", "m.pt", "--factory", "a:b", "--compression", "0"], "argument --compression: expected a finite"),
    (["report", "--model", "m.pt", "--factory", "a:b", "--target", "nan"], "argument --target: expected a finite"),
    (["reproduce", "--out", "{tmp}", "--compression", "-1"], "argument --compression"),
    (["reproduce", "--out", "{tmp}", "--compression", "nan"], "argument --compression"),
    (["reproduce", "--out", "{tmp}", "--compression", "inf"], "argument --compression"),
    (["reproduce", "--out", "{tmp}", "--compression", "1e9"], "at most 1e\\+06"),
    (["reproduce", "--out", "{tmp}", "--heuristic", "nope"], "unknown heuristic 'nope'; valid names are"),
    (["reproduce", "--out", "{tmp}", "--threads", "0"], "argument --threads: expected an int >= 1, got 0"),
    (["reproduce", "--out", "{tmp}", "--fine-tune-steps", "-5"], "expected an int >= 0, got -5"),
    (["reproduce", "--out", "/proc/x"], "argument --out: cannot write results to '/proc/x'"),
    (["reproduce", "--out", "{file}"], "is a file, not a folder"),
    (["bench", "--sizes", "-8"], "argument --sizes: expected an int >= 1, got -8"),
    (["bench", "--seq", "0"], "argument --seq: expected an int >= 1"),
    (["bench", "--rounds", "0"], "argument --rounds: expected an int >= 1"),
    (["bench", "--batches", "0"], "argument --batches: expected an int >= 1"),
    (["bench", "--threads", "x"], "argument --threads: expected an int >= 1, got 'x'"),
    (["bench", "--min-run-time", "nan"], "argument --min-run-time: expected a finite number > 0"),
    (["bench", "--out", "{file}"], "is a file, not a folder"),
])
def test_cli_bad_arguments_exit_2_without_traceback(argv, msg, tmp_path, capsys):
    from hmf_lab import cli

    f = tmp_path / "results.txt"
    f.write_text("x")
    argv = [a.format(tmp=tmp_path / "out", file=f) for a in argv]
    with pytest.raises(SystemExit) as e:
        cli.main(argv)
    err = capsys.readouterr().err
    assert e.value.code == 2 and "Traceback" not in err
    assert pytest.importorskip("re").search(msg, err), err


def test_cli_errors_from_the_run_are_one_line(monkeypatch, capsys):
    from hmf_lab.experiments import bench
    from hmf_lab import cli

    def boom(args):
        raise ValueError("compression 1e5 cannot be reached for shape (8, 8)")

    monkeypatch.setattr(bench, "run", boom)
    assert cli.main(["bench", "--quick"]) == 2
    err = capsys.readouterr().err
    assert err.strip() == "hmf-lab: error: compression 1e5 cannot be reached for shape (8, 8)"
    with pytest.raises(TypeError, match="argv must be a list of str"):
        cli.main("bench --quick")


@pytest.mark.parametrize("kw, match", [
    (dict(sparse="yes"), r"sparse must be True or False, got str 'yes'"),
    (dict(sparse=np.array([])), r"sparse must be True or False, got ndarray"),
    (dict(prune_count=np.array(["budget"])), r"prune_count must be 'budget' or 'lmf', got ndarray"),
])
def test_compress_flags_are_checked_before_use(kw, match):
    """Garbage flags give the kit's TypeError naming the argument (hypothesis found a raw
    'truth value of an empty array is ambiguous' from ``sparse or None``)."""
    with pytest.raises(TypeError, match=match):
        hl.compress(torch.nn.Sequential(torch.nn.Linear(8, 8)), "prune", compression=2, **kw)


def test_explicit_rows_errors_name_the_heuristic_argument():
    with pytest.raises(TypeError, match=r"the heuristic's explicit rows must return integer row indices"):
        hl.compress(torch.nn.Sequential(torch.nn.Linear(8, 8)), "hmf", compression=1.0,
                    heuristic=torch.tensor([0.0, 1.0]), split=2, rank=3)
