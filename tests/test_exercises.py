"""Exercise checks pass right answers, fail wrong ones (with a hint), and wait for unanswered ones."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import hmf_lab as hl
from hmf_lab.course import exercises as ex


def test_synthetic_has_the_designed_spectrum():
    for kind in ("exp", "power", "flat"):
        W = ex.with_spectrum(40, 25, kind, decay=0.3, seed=3)
        assert W.shape == (40, 25) and W.dtype == torch.float32
        torch.testing.assert_close(torch.linalg.svdvals(W), ex.singular_values(25, kind, decay=0.3), atol=1e-5,
                                   rtol=1e-4)
    s = np.linspace(1, 0, 5)
    torch.testing.assert_close(torch.linalg.svdvals(ex.with_spectrum(5, 8, s)), torch.tensor(s, dtype=torch.float32),
                               atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(ex.with_spectrum(6, 6, seed=1), ex.with_spectrum(6, 6, seed=1))


def test_synthetic_errors():
    with pytest.raises(ValueError, match="kind must be one of"):
        ex.singular_values(4, "zipf")
    with pytest.raises(ValueError, match="count must be an int >= 1"):
        ex.singular_values(0)
    with pytest.raises(ValueError, match="spectrum must hold min"):
        ex.with_spectrum(4, 4, [1.0, 2.0])
    with pytest.raises(ValueError, match="m and n must be >= 1"):
        ex.with_spectrum(0, 4)


def test_quick_reads_the_environment(monkeypatch):
    monkeypatch.setenv("HMF_LAB_QUICK", "1")
    assert ex.quick()
    monkeypatch.setenv("HMF_LAB_QUICK", "0")
    assert not ex.quick()


def _out(capsys) -> str:
    return capsys.readouterr().out


def _passes(capsys, check, *args, **kw):
    assert check(*args, **kw) is True
    out = _out(capsys)
    assert out.startswith("PASS"), out


def _fails(capsys, check, *args, hint: str, **kw):
    """A wrong answer returns False, prints FAIL and a hint, and never raises."""
    assert check(*args, **kw) is False
    out = _out(capsys)
    assert out.startswith("FAIL") and hint in out, out


def _pending(capsys, check, *args, **kw):
    assert check(*args, **kw) is False
    assert _out(capsys).strip() == ex.NOT_ANSWERED


def test_pending_message_exists_once(capsys):
    assert ex.pending(None) and _out(capsys).strip() == ex.NOT_ANSWERED
    assert ex.pending(1, ...) and _out(capsys).strip() == ex.NOT_ANSWERED
    assert not ex.pending(1, 2) and _out(capsys) == ""
    # the oracle's and reproduce's checks are the same functions, with the same reminder
    import importlib
    oracle, reproduce = (importlib.import_module(f"hmf_lab.{m}") for m in ("factor.oracle", "experiments.reproduce"))
    W = torch.eye(4)
    assert ex.check_rows(W, 1, 1, None) is False and _out(capsys).strip() == ex.NOT_ANSWERED
    assert ex.check_hmf_gain(None, 4, None) is False and _out(capsys).strip() == ex.NOT_ANSWERED
    import inspect
    assert "Not answered yet" not in inspect.getsource(oracle) + inspect.getsource(reproduce)
    assert inspect.getsource(ex).count("print(NOT_ANSWERED)") == 1


def test_break_even_rank(capsys):
    m, n = 300, 200
    r = (m * n - 1) // (m + n)
    assert r * (m + n) < m * n <= (r + 1) * (m + n)
    _passes(capsys, ex.check_break_even_rank, m, n, r)
    _passes(capsys, ex.check_break_even_rank, m, n, np.int64(r))
    _fails(capsys, ex.check_break_even_rank, m, n, r - 1, hint="a larger rank still saves")
    _fails(capsys, ex.check_break_even_rank, m, n, r + 1, hint="stores at least as many values")
    _fails(capsys, ex.check_break_even_rank, m, n, "120", hint="should be a finite number")
    _fails(capsys, ex.check_break_even_rank, m, n, float("nan"), hint="should be a finite number")
    _pending(capsys, ex.check_break_even_rank, m, n, None)


def test_eckart_young(capsys):
    W = ex.with_spectrum(30, 20, "exp", decay=0.2)
    truth = hl.relative_error(W, hl.lmf(W, rank=6))
    _passes(capsys, ex.check_eckart_young, W, 6, truth)
    _passes(capsys, ex.check_eckart_young, W, 6, torch.tensor(truth))
    _fails(capsys, ex.check_eckart_young, W, 6, truth ** 2, hint="Eckart-Young")  # forgot the square root
    _fails(capsys, ex.check_eckart_young, W, 6, torch.ones(3), hint="should be a finite number")
    _pending(capsys, ex.check_eckart_young, W, 6, None)


def test_hmf_params(capsys):
    f = hl.hmf(torch.randn(40, 30), split=5, rank=7)
    _passes(capsys, ex.check_hmf_params, 40, 30, 5, 7, f.n_params)
    _fails(capsys, ex.check_hmf_params, 40, 30, 5, 7, 7 * (40 + 30), hint="count the dense rows")
    _pending(capsys, ex.check_hmf_params, 40, 30, 5, 7, None)


def test_max_rank(capsys):
    b = hl.budget((256, 128), 4)
    truth = int(b["rank_bound"].max())
    _passes(capsys, ex.check_max_rank, (256, 128), 4, truth)
    _fails(capsys, ex.check_max_rank, (256, 128), 4, int(b["rank"].iloc[0]), hint="HMF's rank bound is split + rank")
    _pending(capsys, ex.check_max_rank, (256, 128), 4, None)


def _my_hmf(W, split, rank):
    D, rest = W[:split], W[split:]
    U, S, Vh = torch.linalg.svd(rest, full_matrices=False)
    return D, U[:, :rank] * S[:rank], Vh[:rank]


def test_my_hmf(capsys):
    _passes(capsys, ex.check_my_hmf, _my_hmf)
    # common mistakes: forgetting the singular values, factorizing all of W, wrong shapes, no function
    _fails(capsys, ex.check_my_hmf, lambda W, k, r: (W[:k], *(t[:, :r] if i == 0 else t[:r] for i, t in
           enumerate(torch.linalg.svd(W[k:], full_matrices=False)[::2]))), hint="scale the columns")
    _fails(capsys, ex.check_my_hmf, lambda W, k, r: (W[:k], *_my_hmf(W, 0, r)[1:]), hint="expected")
    _fails(capsys, ex.check_my_hmf, lambda W, k, r: (W[-k:] if k else W[:0], *_my_hmf(W, k, r)[1:]),
           hint="D = W[:split]")
    _fails(capsys, ex.check_my_hmf, lambda W, k, r: W, hint="return D, U, V")
    _fails(capsys, ex.check_my_hmf, 3, hint="def my_hmf")
    _fails(capsys, ex.check_my_hmf, lambda W, k, r: 1 / 0, hint="type and shape")  # a crash inside: still FAIL
    _pending(capsys, ex.check_my_hmf, None)
    _pending(capsys, ex.check_my_hmf, lambda W, k, r: None)  # the notebook's template, not filled in yet


def test_csr_bytes_default_is_int32_like_the_kernel(capsys):
    W = torch.randn(20, 30)
    layer = hl.SparseLinear.from_linear(torch.nn.Linear(30, 20), compression=4)
    csr = layer._csr32()  # the timed kernel's matrix
    assert csr.col_indices().element_size() == 4 and csr.crow_indices().element_size() == 4
    nnz = layer.nnz
    _passes(capsys, ex.check_csr_bytes, 20, nnz, nnz * 4 + nnz * 4 + 21 * 4)
    _passes(capsys, ex.check_csr_bytes, 20, nnz, nnz * 12 + 21 * 8, index_bytes=8)
    _fails(capsys, ex.check_csr_bytes, 20, nnz, nnz * 4, hint="row pointers")
    _pending(capsys, ex.check_csr_bytes, 20, nnz, None)
    del W


def test_best_at_budget(capsys):
    W = ex.with_spectrum(32, 32, "exp", decay=0.15)
    cache = hl.HMFCache(W)
    b = hl.budget((32, 32), 4, step=1)
    errs = [cache.error(k, r) for k, r in zip(b["split"], b["rank"])]
    i = int(np.argmin(errs))
    k, r = int(b["split"].iloc[i]), int(b["rank"].iloc[i])
    _passes(capsys, ex.check_best_at_budget, W, 4, k, r, cache=cache, step=1)
    worst = int(np.argmax(errs))
    assert errs[worst] > errs[i] * 1.05
    _fails(capsys, ex.check_best_at_budget, W, 4, int(b["split"].iloc[worst]), int(b["rank"].iloc[worst]),
           step=1, hint="take the smallest")
    _fails(capsys, ex.check_best_at_budget, W, 4, k, r + 5, hint="lists what fits")
    _fails(capsys, ex.check_best_at_budget, W, 4, 40, 1, hint="split in [0, 32]")
    _pending(capsys, ex.check_best_at_budget, W, 4, None, None)
    _pending(capsys, ex.check_best_at_budget, W, 4, 3, None)
    assert not math.isnan(errs[i])


def test_rows(capsys):
    W = torch.diag(torch.tensor([5., 4., 3., 2., 1.]))
    _passes(capsys, ex.check_rows, W, 2, 1, [0, 1])
    _passes(capsys, ex.check_rows, W, 2, 1, torch.tensor([1, 0]))
    _fails(capsys, ex.check_rows, W, 2, 1, [3, 4], hint="serve worst")
    _fails(capsys, ex.check_rows, W, 2, 1, [9, 0], hint="distinct row indices")
    _pending(capsys, ex.check_rows, W, 2, 1, None)


def test_hmf_gain(capsys):
    import pandas as pd
    df = pd.DataFrame({"task": "lm", "metric": "bits_per_char", "method": ["hmf", "lmf", "prune"],
                       "compression": 4.0, "after": [2.0, 2.5, 2.2], "time_us": [1.0, 1.0, 2.0]})
    assert ex.check_hmf_gain(df, 4, 20.0) is True and "Correct" in _out(capsys)
    assert ex.check_hmf_gain(df, 4, -20.0) is False and "lower bits per char is better" in _out(capsys)
    assert ex.check_hmf_gain(df, 8, 20.0) is False and "FAIL" in _out(capsys)
    _pending(capsys, ex.check_hmf_gain, df, 4, None)


def test_every_exercise_has_a_check():
    for key in ex.EXERCISES:
        assert callable(getattr(ex, f"check_{key}")), key


def test_reset_sets_answers_back_and_forgets_the_result(capsys):
    ns = {"answer": 102, "predicted": 0.3}
    assert ex.check_break_even_rank(512, 128, ns["answer"])
    assert ex.progress()["break_even_rank"] is True
    ex.reset("break_even_rank", namespace=ns)
    assert ns == {"answer": None, "predicted": 0.3}
    assert "break_even_rank" not in ex.progress()
    assert "Reset break_even_rank" in _out(capsys)
    ex.reset(namespace=ns)  # every exercise: only the variables that exist
    assert ns == {"answer": None, "predicted": None}
    _out(capsys)


def test_reset_in_the_callers_namespace(capsys):
    global my_hmf  # reset() works on the caller's globals, as in a notebook
    my_hmf = _my_hmf
    ex.reset("my_hmf")
    assert my_hmf is None
    _out(capsys)


def test_reset_unknown_id_names_the_valid_ones():
    with pytest.raises(ValueError, match=r"unknown exercise id\(s\) \['ex1'\]; expected one of \['best_at_budget'"):
        ex.reset("ex1")


def _malformed_results():
    import pandas as pd
    good = pd.DataFrame({"task": "lm", "regime": "post", "metric": "bits_per_char", "label": ["hmf", "lmf"],
                         "seed": 0, "compression": 4.0, "value": [2.0, 2.5]})
    return [
        (None, 4, 1.0),                                   # the case: AttributeError before
        ("results.csv", 4, 1.0),                           # a file name instead of the table
        (42, 4, 1.0),
        (pd.DataFrame({"x": [1, 2]}), 4, 1.0),             # a wrong DataFrame
        (pd.DataFrame(), 4, 1.0),
        (good.drop(columns="value"), 4, 1.0),
        (good.assign(value="high"), 4, 1.0),               # values that are not numbers
        ([{"a": 1}], 4, 1.0),
        ({"label": [1, 2, 3], "value": [1]}, 4, 1.0),      # ragged: pandas cannot build it
        (good, "four", 1.0),                               # compression of the wrong type
        (good, None, 1.0),
        (good, 4, "twenty"),                               # an answer that is not a number
        (good, 4, [20.0]),
        (good, 8, 20.0),                                   # no row at that compression
    ]


@pytest.mark.parametrize("args", _malformed_results(), ids=lambda a: type(a).__name__)
def test_hmf_gain_never_raises_on_malformed_input(capsys, args):
    """Issue 18: check_hmf_gain(None, 4, 1.0) raised AttributeError; it now goes through the common wrapper:
    False, a FAIL line and a hint, whatever it is given."""
    assert ex.check_hmf_gain(*args) is False
    out = _out(capsys)
    assert out.startswith("FAIL — ") and "Hint:" in out, out
    assert "Traceback" not in out
    assert ex.progress()["hmf_gain"] is False


def test_hmf_gain_names_what_the_results_lack(capsys):
    import pandas as pd
    assert ex.check_hmf_gain(None, 4, 1.0) is False
    assert "results must be a table of experiment results, got NoneType" in _out(capsys)
    assert ex.check_hmf_gain(pd.DataFrame({"x": [1]}), 4, 1.0) is False
    out = _out(capsys)
    assert "results lack the columns this check reads: got ['x']" in out and "load_grid" in out


def test_hmf_beats_lmf(capsys):
    """Issue 21, defect 1: Eckart-Young is optimal at a rank, not at a size: a matrix with loud rows on top
    lets HMF at the balanced point beat LMF at the same stored values; a Gaussian matrix does not."""
    W = hl.synthetic.loud_rows(128, 128, n_loud=16, loudness=4.0, rank=8, noise=0.3, seed=0)
    top = W[W.norm(dim=1).argsort(descending=True)]
    _passes(capsys, ex.check_hmf_beats_lmf, top, 4)
    assert ex.progress()["hmf_beats_lmf"] is True
    _passes(capsys, ex.check_hmf_beats_lmf, top.numpy(), 4)
    _fails(capsys, ex.check_hmf_beats_lmf, torch.randn(128, 128, generator=torch.Generator().manual_seed(0)), 4,
           hint="much louder")
    _fails(capsys, ex.check_hmf_beats_lmf, W, 4, hint="put them on top")   # loud rows at random positions
    _fails(capsys, ex.check_hmf_beats_lmf, top[:32, :32], 4, hint="128x128")  # too small: split 0 is LMF
    for bad in ("W", [[1.0, 2.0]], torch.zeros(128, 128), torch.full((128, 128), float("nan")), torch.randn(128)):
        assert ex.check_hmf_beats_lmf(bad, 4) is False
        out = _out(capsys)
        assert out.startswith("FAIL — ") and "Hint:" in out, out
    _pending(capsys, ex.check_hmf_beats_lmf, None, 4)


def test_rows_rejects_a_string(capsys):
    """Issue 21, defect 8: "01" was read as the rows [0, 1] and passed."""
    W = torch.diag(torch.tensor([5., 4., 3., 2., 1.]))
    _fails(capsys, ex.check_rows, W, 2, 1, "01", hint="not a string")
    _fails(capsys, ex.check_rows, W, 2, 1, b"01", hint="not a string")
    assert ex.progress()["rows"] is False
    _passes(capsys, ex.check_rows, W, 2, 1, (0, 1))


def _gain_table():
    import pandas as pd
    return pd.DataFrame({"task": "lm", "regime": "post", "metric": "bits_per_char", "label": ["hmf", "lmf"] * 2,
                         "seed": [0, 0, 1, 1], "compression": 4.0, "value": [2.0, 2.5, 2.0, 2.5]})


def test_hmf_gain_fraction_for_a_percent_gets_the_x100_hint(capsys):
    _fails(capsys, ex.check_hmf_gain, _gain_table(), 4, 0.2, hint="multiply by 100")
    _fails(capsys, ex.check_hmf_gain, _gain_table(), 4, np.float64(0.2), hint="multiply by 100")
    _fails(capsys, ex.check_hmf_gain, _gain_table(), 4, 3.0, hint="(lmf - hmf) / lmf * 100")  # not a scale slip


def test_eckart_young_percent_for_a_fraction_gets_the_hint(capsys):
    W = ex.with_spectrum(10, 10, "flat")
    _fails(capsys, ex.check_eckart_young, W, 5, 100 * 0.5 ** 0.5, hint="divide by 100")


def test_hmf_gain_rejects_strings_and_is_recorded_by_progress(capsys):
    """Issue 21, defect 8: float("20") used to pass; progress() records check_hmf_gain like every check."""
    ex.reset("hmf_gain", namespace={})
    _out(capsys)
    assert "hmf_gain" not in ex.progress()
    _fails(capsys, ex.check_hmf_gain, _gain_table(), 4, "20", hint="not a string")
    assert ex.progress()["hmf_gain"] is False
    _passes(capsys, ex.check_hmf_gain, _gain_table(), 4, 20.0)
    assert ex.progress()["hmf_gain"] is True
    _passes(capsys, ex.check_hmf_gain, _gain_table(), 4, torch.tensor(20.0))


def test_eckart_young_off_by_one_names_the_indexing(capsys):
    """Issue 21, defect 9: a 1-based reading of the sum (one dropped value too few or too many) gets a hint
    saying the sum is 0-based, s[rank:]."""
    W = ex.with_spectrum(20, 20, "exp", decay=0.2)
    s = torch.linalg.svdvals(W.double())
    for start in (5, 7):  # the error at rank 5 or 7, asked at rank 6
        wrong = float(((s[start:] ** 2).sum() / (s ** 2).sum()).sqrt())
        _fails(capsys, ex.check_eckart_young, W, 6, wrong, hint="0-based")
    _fails(capsys, ex.check_eckart_young, W, 6, 0.9, hint="0-based")


# --------------------------------------------------------------------------- issue 21, defect 7: three graded
# exercises per notebook. Each new check: a right answer passes, typical wrong answers fail with a useful hint,
# malformed answers print FAIL (never raise), None is "not answered yet", and progress() records it.

MALFORMED = ("12", [1, 2], {"a": 1}, float("nan"), object())


def _never_raises(capsys, check, *args_before, args_after=(), key: str):
    for bad in MALFORMED:
        assert check(*args_before, bad, *args_after) is False
        out = _out(capsys)
        assert out.startswith("FAIL — ") and "Hint:" in out, (bad, out)
    assert ex.progress()[key] is False


def test_rank_for_error(capsys):
    W = ex.with_spectrum(40, 30, "exp", decay=0.1)
    s = torch.linalg.svdvals(W.double())
    errs = [float(((s[r:] ** 2).sum() / (s ** 2).sum()).sqrt()) for r in range(31)]
    truth = next(r for r, e in enumerate(errs) if e <= 0.3)
    _passes(capsys, ex.check_rank_for_error, W, 0.3, truth)
    assert ex.progress()["rank_for_error"] is True
    _fails(capsys, ex.check_rank_for_error, W, 0.3, truth + 3, hint="FIRST rank")
    _fails(capsys, ex.check_rank_for_error, W, 0.3, truth - 1, hint="at or below the target")
    sq = next(r for r, e in enumerate(errs) if e ** 2 <= 0.3)   # forgot the square root: a rank too small
    _fails(capsys, ex.check_rank_for_error, W, 0.3, sq, hint="square root")
    _fails(capsys, ex.check_rank_for_error, W, 0.3, 2.5, hint="whole number")
    _fails(capsys, ex.check_rank_for_error, W, 0.3, 99, hint="a rank in [0, 30]")
    _pending(capsys, ex.check_rank_for_error, W, 0.3, None)
    _never_raises(capsys, ex.check_rank_for_error, W, 0.3, key="rank_for_error")


def test_ideal_speedup(capsys):
    from hmf_lab.factor.budget import choose_split_rank, hmf_params, lmf_rank
    m, n = 512, 128
    nnz = m * n // 8
    truth = 4 * m * n / (8 * nnz + 4 * (m + 1))
    _passes(capsys, ex.check_ideal_speedup, (m, n), 8, truth)
    _passes(capsys, ex.check_ideal_speedup, (m, n), 8, m * n / hmf_params(m, n, *choose_split_rank((m, n), 8)),
            method="hmf")
    _passes(capsys, ex.check_ideal_speedup, (m, n), 8, m * n / (lmf_rank((m, n), 8) * (m + n)), method="lmf")
    assert ex.progress()["ideal_speedup"] is True
    _fails(capsys, ex.check_ideal_speedup, (m, n), 8, 8.0, hint="int32 column index")   # the compression itself
    _fails(capsys, ex.check_ideal_speedup, (m, n), 8, 1 / truth, hint="dense bytes / compressed bytes")
    _fails(capsys, ex.check_ideal_speedup, (m, n), 8, 2.0, hint="memory-bound")
    _pending(capsys, ex.check_ideal_speedup, (m, n), 8, None)
    _never_raises(capsys, ex.check_ideal_speedup, (m, n), 8, key="ideal_speedup")
    assert ex.check_ideal_speedup((m, n), 8, 3.0, method="svd") is False and "method must be" in _out(capsys)


def test_cache_fit(capsys):
    sizes, cache = [256, 512, 1024, 2048, 4096], 2 * 2**20
    _passes(capsys, ex.check_cache_fit, sizes, cache, 4, [1024])
    _passes(capsys, ex.check_cache_fit, sizes, cache, 8, (2048, 1024))  # order and container do not matter
    _passes(capsys, ex.check_cache_fit, [128], cache, 4, [])
    assert ex.progress()["cache_fit"] is True
    _fails(capsys, ex.check_cache_fit, sizes, cache, 4, [512, 1024], hint="dense > cache")  # 512 fits dense already
    _fails(capsys, ex.check_cache_fit, sizes, cache, 4, [1024, 2048], hint="dense > cache")  # 2048 too big for both
    _fails(capsys, ex.check_cache_fit, sizes, cache, 4, 1024, hint="a list of ints")
    _fails(capsys, ex.check_cache_fit, sizes, cache, 4, "1024", hint="a list of ints")
    _fails(capsys, ex.check_cache_fit, sizes, cache, 4, ["x"], hint="a number")
    _pending(capsys, ex.check_cache_fit, sizes, cache, 4, None)


def test_rank_at_budget(capsys):
    from hmf_lab.factor.budget import hmf_params
    m, n, k, c = 300, 200, 10, 8
    truth = max(r for r in range(1, 200) if hmf_params(m, n, k, r) <= m * n // c)
    _passes(capsys, ex.check_rank_at_budget, (m, n), c, k, truth)
    assert ex.progress()["rank_at_budget"] is True
    _fails(capsys, ex.check_rank_at_budget, (m, n), c, k, truth + 1, hint="the dense rows take k*n")
    _fails(capsys, ex.check_rank_at_budget, (m, n), c, k, truth - 2, hint="LARGEST r")
    _pending(capsys, ex.check_rank_at_budget, (m, n), c, k, None)
    _never_raises(capsys, ex.check_rank_at_budget, (m, n), c, k, key="rank_at_budget")


def test_smallest_at_error(capsys):
    W = ex.with_spectrum(48, 32, "exp", decay=0.1)
    df = hl.sweep(W, splits=range(0, 49, 8), ranks=range(1, 33, 2))
    truth = int(df[df.error <= 0.4].params.min())
    _passes(capsys, ex.check_smallest_at_error, df, 0.4, truth)
    assert ex.progress()["smallest_at_error"] is True
    bigger = int(df[df.error <= 0.4].params.max())
    assert bigger > truth
    _fails(capsys, ex.check_smallest_at_error, df, 0.4, bigger, hint="SMALLEST params")
    _fails(capsys, ex.check_smallest_at_error, df, 0.4, int(df.params.min()), hint="filter on the error first")
    _fails(capsys, ex.check_smallest_at_error, df, 0.4, truth + 0.5, hint="a value of df['params']")
    _fails(capsys, ex.check_smallest_at_error, df, 1e-9, truth, hint="larger target")
    _fails(capsys, ex.check_smallest_at_error, "df", 0.4, truth, hint="hl.sweep")
    _pending(capsys, ex.check_smallest_at_error, df, 0.4, None)
    _never_raises(capsys, ex.check_smallest_at_error, df, 0.4, key="smallest_at_error")


def test_my_heuristic(capsys):
    def norm_rule(W, split, *, rank, X=None):
        return torch.topk(W.norm(dim=1), split).indices

    def last_rows(W, split, *, rank, X=None):   # the notebook's template: a rule that ignores the matrix
        return torch.arange(W.shape[0] - split, W.shape[0])

    _passes(capsys, ex.check_my_heuristic, norm_rule)
    assert ex.progress()["my_heuristic"] is True
    _fails(capsys, ex.check_my_heuristic, last_rows, hint="loud row")
    _fails(capsys, ex.check_my_heuristic, hl.HEURISTICS["top"], hint="loud row")
    _fails(capsys, ex.check_my_heuristic, lambda W, split, *, rank, X=None: torch.arange(split + 1),
           hint="type and shape")   # wrong count: select_rows names the problem, the check prints FAIL
    _fails(capsys, ex.check_my_heuristic, "greedy", hint="def my_rule")
    _pending(capsys, ex.check_my_heuristic, None)
    _pending(capsys, ex.check_my_heuristic, lambda W, split, *, rank, X=None: None)


def test_oracle_subsets(capsys):
    lim = 10 ** 5
    truth = next(m for m in range(1, 100) if math.comb(m, m // 4) > lim)
    _passes(capsys, ex.check_oracle_subsets, lim, truth)
    assert ex.progress()["oracle_subsets"] is True
    _fails(capsys, ex.check_oracle_subsets, lim, truth - 1, hint="increase m")
    _fails(capsys, ex.check_oracle_subsets, lim, truth + 4, hint="SMALLEST m")
    _pending(capsys, ex.check_oracle_subsets, lim, None)
    _never_raises(capsys, ex.check_oracle_subsets, lim, key="oracle_subsets")


def test_compressed_params(capsys):
    model = hl.models.load_pretrained("char_lm")
    truth = hl.count_params(hl.compress(model, "lmf", 8))
    _passes(capsys, ex.check_compressed_params, "char_lm", "lmf", 8, truth)
    assert ex.progress()["compressed_params"] is True
    budget = hl.count_params(model) / 8
    assert truth != budget
    _fails(capsys, ex.check_compressed_params, "char_lm", "lmf", 8, budget, hint="one gate block")
    _fails(capsys, ex.check_compressed_params, "char_lm", "lmf", 8, truth + 64, hint="4 gate blocks")
    _pending(capsys, ex.check_compressed_params, "char_lm", "lmf", 8, None)
    _never_raises(capsys, ex.check_compressed_params, "char_lm", "lmf", 8, key="compressed_params")


def test_rank_bound(capsys):
    k, r = hl.choose_split_rank((256, 256), 8)
    assert k != r
    _passes(capsys, ex.check_rank_bound, (256, 256), 8, k + r)
    assert ex.progress()["rank_bound"] is True
    _fails(capsys, ex.check_rank_bound, (256, 256), 8, r, hint="split + rank")
    _fails(capsys, ex.check_rank_bound, (256, 256), 8, k, hint="split + rank")
    _fails(capsys, ex.check_rank_bound, (256, 256), 8, hl.lmf_rank((256, 256), 8) - 1, hint="choose_split_rank")
    _pending(capsys, ex.check_rank_bound, (256, 256), 8, None)
    _never_raises(capsys, ex.check_rank_bound, (256, 256), 8, key="rank_bound")


def test_reconstructed_bytes(capsys):
    from hmf_lab.factor.budget import hmf_params
    m, n = 1024, 1024
    stored = hmf_params(m, n, *hl.choose_split_rank((m, n), 4))
    # what the check counts is what a real layer holds on the reconstructed engine: its factors + the cached W_hat
    layer = hl.HMFLinear.from_linear(torch.nn.Linear(n, m, bias=False), *hl.choose_split_rank((m, n), 4))
    hl.engines.set_engine(layer, "reconstructed")
    with torch.inference_mode():
        layer(torch.randn(1, n))
    held = sum(p.numel() * p.element_size() for p in layer.parameters()) + sum(
        t.numel() * t.element_size() for v in layer.__dict__["_inference_cache"].values() for t in v
        if isinstance(t, torch.Tensor))
    assert held == 4 * (stored + m * n)
    _passes(capsys, ex.check_reconstructed_bytes, (m, n), 4, 4 * (stored + m * n))
    assert ex.progress()["reconstructed_bytes"] is True
    _fails(capsys, ex.check_reconstructed_bytes, (m, n), 4, 4 * stored, hint="AND W_hat")
    _fails(capsys, ex.check_reconstructed_bytes, (m, n), 4, 4 * m * n, hint="factors D, U, V stay")
    _fails(capsys, ex.check_reconstructed_bytes, (m, n), 4, stored + m * n, hint="4 bytes")
    _fails(capsys, ex.check_reconstructed_bytes, (m, n), 4, 123, hint="W_hat")
    _pending(capsys, ex.check_reconstructed_bytes, (m, n), 4, None)
    _never_raises(capsys, ex.check_reconstructed_bytes, (m, n), 4, key="reconstructed_bytes")


def test_effective_bandwidth(capsys):
    nb, t = 69_206_016, 5.42e-3
    _passes(capsys, ex.check_effective_bandwidth, nb, t, nb / t / 1e9)
    assert ex.progress()["effective_bandwidth"] is True
    _fails(capsys, ex.check_effective_bandwidth, nb, t, nb / t / 2 ** 30, hint="10^9 bytes")
    _fails(capsys, ex.check_effective_bandwidth, nb, t, nb / t / 1e6, hint="unit slip")
    _fails(capsys, ex.check_effective_bandwidth, nb, t, nb / t / 1e12, hint="unit slip")
    _fails(capsys, ex.check_effective_bandwidth, nb, t, 3.0, hint="bytes read / seconds")
    _pending(capsys, ex.check_effective_bandwidth, nb, t, None)
    _never_raises(capsys, ex.check_effective_bandwidth, nb, t, key="effective_bandwidth")


# ------------------------------------------------------------------------------------ notebook 08
def test_col_params(capsys):
    truth = hl.factor.budget.col_params(128, 512, 16, 40)
    assert truth == 128 * 16 + 128 * 40 + 40 * 496
    _passes(capsys, ex.check_col_params, 128, 512, 16, 40, truth)
    _fails(capsys, ex.check_col_params, 128, 512, 16, 40, 16 * 512 + 40 * 112 + 40 * 512, hint="ROW split")
    _fails(capsys, ex.check_col_params, 128, 512, 16, 40, truth + 1, hint="k whole columns")
    _fails(capsys, ex.check_col_params, 128, 512, 16, 40, "27008", hint="should be a finite number")
    _pending(capsys, ex.check_col_params, 128, 512, 16, 40, None)


def _whitened(W, X):
    W, X = W.double(), X.double()
    lam, Q = torch.linalg.eigh(X.T @ X / X.shape[0])
    return ((W @ ((Q * lam.clamp(min=0).sqrt()) @ Q.T)) ** 2).sum(0)


def test_my_channel_energy(capsys):
    _passes(capsys, ex.check_my_channel_energy, _whitened)
    _passes(capsys, ex.check_my_channel_energy, lambda W, X: _whitened(W, X).float().numpy())
    _fails(capsys, ex.check_my_channel_energy, lambda W, X: (X.double() ** 2).mean(0), hint="RAW channel energies")
    _fails(capsys, ex.check_my_channel_energy, lambda W, X: (W.double() ** 2).sum(0), hint="symmetric square root")
    _fails(capsys, ex.check_my_channel_energy, lambda W, X: _whitened(W, X)[:-1], hint="one entry per column")
    _fails(capsys, ex.check_my_channel_energy, 3.0, hint="def my_channel_energy")
    _pending(capsys, ex.check_my_channel_energy, None)
    _pending(capsys, ex.check_my_channel_energy, lambda W, X: None)  # the notebook's template


def test_best_col_split(capsys):
    from hmf_lab.experiments import layerfit

    g = torch.Generator().manual_seed(0)
    lin = torch.nn.Linear(256, 64)
    X = torch.randn(600, 256, generator=g) @ torch.randn(256, 256, generator=g) / 16
    loud = layerfit.plant_channels(X, range(24), 30.0)  # 24 loud channels: dense columns pay
    errs = {f: float(layerfit.layer_methods(lin, loud, 2, methods=("hmf_col",), split_frac=f).table.output_error[0])
            for f in ex.SPLIT_FRACS}
    best, worst = min(errs, key=errs.get), max(errs, key=errs.get)
    assert errs[best] < errs[worst] * 0.99, errs
    _passes(capsys, ex.check_best_col_split, lin, loud, 2, best)
    _fails(capsys, ex.check_best_col_split, lin, loud, 2, worst, hint="move the split slider")
    _fails(capsys, ex.check_best_col_split, lin, loud, 2, 0.3, hint="pick one of 0, 0.125")
    _fails(capsys, ex.check_best_col_split, lin, loud, 2, "0.125", hint="should be a finite number")
    _pending(capsys, ex.check_best_col_split, lin, loud, 2, None)
