"""Rank split heuristics on a suite of matrices: error, output error, time and rank at equal compression.

The suite is every Linear/LSTM matrix of the shipped trained models that exist in ``data/``
(found through ``hl.models.PRETRAINED``; missing checkpoints are skipped) plus the synthetic
families of :mod:`hmf_lab.factor.synthetic`. At each compression c a heuristic gets the parameter budget
``m*n / c``; it may spend a share of it on dense rows (``dense_share``, tried from a short list,
best kept) and the rest on the largest rank that fits, so every heuristic is scored at its own best
split. Errors are relative (``||W - W_hat||_F / ||W||_F``; output error ``||X W^T - X W_hat^T||_F /
||X W^T||_F`` where calibration inputs X are given).

>>> import torch, hmf_lab as hl
>>> mats = {"loud": hl.synthetic.loud_rows(48, 32, n_loud=3, rank=3, seed=0)}
>>> df = hl.leaderboard(["top", "greedy"], mats, compressions=[4], progress=False)
>>> df.sort_values("heuristic")["heuristic"].tolist()
['greedy', 'top']
>>> bool(df.set_index("heuristic").loc["greedy", "vs_top"] < 1)
True
"""
from __future__ import annotations

import math
import time
import warnings

import numpy as np
import pandas as pd
import torch

from hmf_lab.factor import synthetic
from hmf_lab.factor._validation import as_inputs, as_matrix, check_compression
from hmf_lab.factor.budget import hmf_params, largest_rank
from hmf_lab.factor.core import _relative, hmf, relative_error
from hmf_lab.factor.heuristics import HEURISTICS, _resolve, clear_cache

__all__ = ["leaderboard", "summary", "compare", "suite", "pretrained_matrices", "pretrained_inputs",
           "output_error"]

COLUMNS = ["matrix", "m", "n", "compression", "heuristic", "split", "rank", "rank_reached", "params",
           "weight_error", "output_error", "time_s", "vs_top", "vs_best"]


def output_error(W, f, X) -> float:
    """Relative output error ``||X W^T - f(X)||_F / ||X W^T||_F`` of a factorization ``f`` on inputs X.

    >>> import torch, hmf_lab as hl
    >>> W = torch.randn(8, 5); X = torch.randn(20, 5)
    >>> output_error(W, hl.hmf(W, split=8, rank=0), X)
    0.0
    """
    W = as_matrix(W)
    X = as_inputs(X, W.shape[1], name="X", like=W)
    Y = X @ W.T  # (..., m)
    return _relative(Y, f(X))  # core's scale-safe norms (W*1e18 gave nan, W*1e-30 gave 0.0)


_GATES = ("i", "f", "g", "o")  # PyTorch's LSTM gate order in weight_ih / weight_hh


def pretrained_matrices(names=None, *, gates: bool = False) -> dict[str, torch.Tensor]:
    """Every 2-D weight of the shipped trained models that exist: ``"model/param" -> W``.

    Uses ``hl.models.PRETRAINED`` and ``hl.models.pretrained_weights``; a checkpoint that is not in
    ``data/`` yet (or a models module that is not there) is skipped, so this returns what exists.
    With ``gates=True`` each LSTM matrix (``weight_ih``/``weight_hh``, four gates stacked) is split into
    its gate blocks ``"model/param[i]"``, ``[f]``, ``[g]``, ``[o]``: HMF per gate, as ``hl.compress`` does.

    >>> isinstance(pretrained_matrices(), dict)
    True
    """
    try:
        from hmf_lab import nlp as models
    except Exception:  # pragma: no cover - the models module is optional for this module
        return {}
    registry = getattr(models, "PRETRAINED", {})
    names = list(registry) if names is None else list(names)
    out: dict[str, torch.Tensor] = {}
    for name in names:
        try:
            weights = models.pretrained_weights(name)
        except (FileNotFoundError, OSError):
            continue
        for key, W in weights.items():
            if not (W.ndim == 2 and min(W.shape) >= 2 and W.is_floating_point()):
                continue
            if gates and ("weight_ih" in key or "weight_hh" in key) and W.shape[0] % 4 == 0:
                for g, block in zip(_GATES, W.float().chunk(4, dim=0)):
                    out[f"{name}/{key}[{g}]"] = block.contiguous()
            else:
                out[f"{name}/{key}"] = W.float()
    return out


def pretrained_inputs(name: str = "char_lm", length: int = 4096, *, gates: bool = False) -> dict[str, torch.Tensor]:
    """Real calibration inputs for a shipped model's matrices: ``"model/param" -> X`` (N, n), recorded by
    :func:`hmf_lab.nn.compress.capture_inputs`.

    Runs the model on held-out task data (``sample_input`` of the task with the checkpoint's vocabulary,
    ``task_class(name).pretrained()``, so the ids match the model whatever its vocabulary order) and records the input
    of every ``nn.Linear`` (for its ``.weight``) and, for single-layer ``nn.LSTM``, the layer input
    (for ``weight_ih_l0``) and the previous hidden state ``h_{t-1}`` (for ``weight_hh_l0``). Returns ``{}``
    when the checkpoint or the data set is missing. ``gates=True`` keys the LSTM inputs by gate block too,
    matching :func:`pretrained_matrices` with ``gates=True`` (every gate of a matrix sees the same inputs).

    >>> X = pretrained_inputs("char_lm", length=64)  # doctest: +SKIP
    """
    from torch import nn

    try:
        from hmf_lab.nlp.tasks import task_class
        task, model = task_class(name).pretrained()  # the checkpoint's vocabulary, never one rebuilt from data
        try:
            inputs = task.sample_input(length)
        except TypeError:
            inputs = task.sample_input()
    except (FileNotFoundError, OSError, ValueError, ImportError, AttributeError):
        return {}
    from hmf_lab.nn.compress import capture_inputs

    def key(mod_name: str) -> str:
        return f"{name}/{mod_name + '.' if mod_name else ''}"

    modules = [(n, m) for n, m in model.named_modules() if isinstance(m, nn.Linear)
               or (isinstance(m, nn.LSTM) and m.num_layers == 1 and not m.bidirectional)]
    calls = capture_inputs(model, modules, [inputs])
    found: dict[str, torch.Tensor] = {}
    for mod_name, mod in modules:
        if not calls[mod_name]:
            continue
        args = calls[mod_name][-1]  # the last call, as the old forward hooks kept it
        x = args[0]
        if isinstance(mod, nn.Linear):
            found[key(mod_name) + "weight"] = x.reshape(-1, x.shape[-1]).float()
        elif isinstance(x, torch.Tensor):  # an LSTM (a PackedSequence input is skipped)
            with torch.no_grad():
                seq = mod(*args)[0]
            t = 1 if mod.batch_first else 0
            prev = torch.cat([torch.zeros_like(seq.narrow(t, 0, 1)), seq.narrow(t, 0, seq.shape[t] - 1)], dim=t)
            found[key(mod_name) + "weight_ih_l0"] = x.reshape(-1, x.shape[-1]).float()
            found[key(mod_name) + "weight_hh_l0"] = prev.reshape(-1, prev.shape[-1]).float()
    if gates:
        found = {**found, **{f"{k}[{g}]": v for k, v in found.items()
                             if "weight_ih" in k or "weight_hh" in k for g in _GATES}}
    return found


def suite(*, quick: bool | None = None, pretrained: bool = True, seed: int = 0,
          gates: bool = False) -> dict[str, torch.Tensor]:
    """The leaderboard's matrices: synthetic families (always) plus every shipped trained weight that exists.

    ``gates=True`` splits LSTM matrices into their four gate blocks (see :func:`pretrained_matrices`).

    >>> s = suite(quick=True, pretrained=False)
    >>> sorted(s)
    ['heavy_tailed', 'loud_rows', 'low_rank_noise']
    """
    mats = dict(synthetic.suite(seed=seed, quick=quick))
    if pretrained:
        mats.update(pretrained_matrices(gates=gates))
    return mats


def _heuristic_table(heuristics) -> dict[str, object]:
    if heuristics is None:
        return {name: name for name in HEURISTICS}
    if isinstance(heuristics, (str,)) or callable(heuristics):
        heuristics = [heuristics]
    if isinstance(heuristics, dict):
        table = dict(heuristics)
    else:
        table = {}
        for h in heuristics:
            label = h if isinstance(h, str) else getattr(h, "__name__", None)
            if not label:
                raise TypeError(f"heuristics must be names or named callables (or a dict label -> heuristic), got {h!r}")
            table[label] = h
    for h in table.values():
        _resolve(h)  # unknown names raise here, with the list of valid ones
    return table


def _per_matrix(value, name: str, mats: dict, what: str):
    """X or grads: one tensor for all (where shapes fit) or a dict name -> tensor."""
    if value is None:
        return None
    if isinstance(value, dict):
        if value and not set(value) & set(mats):  # extra entries are fine (e.g. inputs of a whole model)
            raise ValueError(f"{what} has entries only for unknown matrices {sorted(value)}; matrices are {sorted(mats)}")
        return value.get(name)
    return value


def _candidates(m: int, n: int, c: float, shares) -> list[tuple[int, int]]:
    """(split, rank) pairs at compression c: for each dense share of the budget, the largest rank that fits."""
    B = m * n / c
    out = []
    for s in shares:
        k = int(round(s * B / n))
        k = min(max(k, 1), m - 1)
        r = largest_rank((m, n), B, k)  # core's budget rule
        if r >= 1 and (k, r) not in out:
            out.append((k, r))
    return out


def leaderboard(heuristics=None, matrices=None, compressions=(4, 8), X=None, *, grads=None,
                dense_share=(0.125, 0.25, 0.5), progress: bool = True) -> pd.DataFrame:
    """Score split heuristics on matrices at equal compression: a tidy DataFrame, one row per (matrix, c, heuristic).

    ``heuristics``: names, callables, or a dict label -> heuristic (default: every registered one).
    ``matrices``: dict name -> W, a list of W, or None for :func:`suite`. ``X``: calibration inputs (one
    tensor used for every matrix whose ``n`` fits, or a dict name -> X); data-aware heuristics
    (``requires="X"``) run only where X is given, and the split is chosen by output error there.
    ``grads``: gradients for ``"fisher"`` (a dict name -> grad); heuristics missing what they require
    are left out. ``dense_share``: shares of the budget tried for dense rows; each heuristic keeps its
    best. Columns: matrix, m, n, compression, heuristic, split, rank, rank_reached (k + r), params,
    weight_error, output_error (NaN without X), time_s (selecting rows + fitting, cold cache; noisy
    on a busy machine), vs_top and vs_best (the scored error over that of "top" / of the best heuristic
    on the same matrix and compression).

    >>> import torch, hmf_lab as hl
    >>> df = hl.leaderboard(["top"], [torch.randn(16, 12)], compressions=[2], progress=False)
    >>> df[["matrix", "heuristic", "compression"]].values.tolist()
    [['W0', 'top', 2.0]]
    """
    from tqdm.auto import tqdm

    table = _heuristic_table(heuristics)
    if matrices is None:
        matrices = suite()
    elif isinstance(matrices, (list, tuple)):
        matrices = {f"W{i}": W for i, W in enumerate(matrices)}
    elif not isinstance(matrices, dict):
        matrices = {"W0": matrices}
    if not matrices:
        raise ValueError("matrices is empty; pass a dict name -> W, a list of matrices, or None for the default suite")
    mats = {name: as_matrix(W, name=f"matrices[{name!r}]") for name, W in matrices.items()}
    if isinstance(compressions, (int, float)):
        compressions = [compressions]
    cs = [check_compression(c) for c in compressions]
    shares = [float(dense_share)] if isinstance(dense_share, (int, float)) else [float(s) for s in dense_share]
    if not shares or any(not 0.0 < s < 1.0 for s in shares):
        raise ValueError(f"dense_share must be a float or list of floats in (0, 1), got {dense_share!r}")

    jobs = [(name, c) for name in mats for c in cs]
    records = []
    bar = tqdm(total=len(jobs) * len(table), desc="leaderboard", disable=not progress)
    for name, c in jobs:
        W = mats[name]
        m, n = W.shape
        Xm = _per_matrix(X, name, mats, "X")
        if Xm is not None:
            if isinstance(X, dict) or getattr(Xm, "shape", (None,))[-1] == n:
                Xm = as_inputs(Xm, n, name=f"X for {name!r}", like=W)
            else:  # one X for all: used where its width fits
                Xm = None
        Gm = _per_matrix(grads, name, mats, "grads")
        pairs = _candidates(m, n, c, shares)
        if not pairs:
            warnings.warn(f"compression {c} is out of reach for {name} {tuple(W.shape)}; skipped", stacklevel=2)
            bar.update(len(table))
            continue
        for label, h in table.items():
            bar.set_postfix_str(f"{name} {c:g}x {label}"[:60])
            fn = _resolve(h)
            needs = getattr(fn, "requires", frozenset()) if fn is not None else frozenset()
            if ("X" in needs and Xm is None) or ("grad" in needs and Gm is None):
                bar.update(1)
                continue
            call = h
            if "grad" in needs:
                def call(W_, s_, *, rank, X=None, _fn=fn, _g=Gm):
                    return _fn(W_, s_, rank=rank, X=X, grad=_g)
                call.__name__ = label
            best = None
            for k, r in pairs:
                clear_cache()
                t0 = time.perf_counter()
                f = hmf(W, k, r, heuristic=call, X=Xm)
                dt = time.perf_counter() - t0
                we = relative_error(W, f)
                oe = output_error(W, f, Xm) if Xm is not None else float("nan")
                score = oe if Xm is not None else we
                if best is None or score < best[0]:
                    best = (score, k, r, we, oe, dt)
            _, k, r, we, oe, dt = best
            records.append((name, m, n, c, label, k, r, min(k + r, m, n), hmf_params(m, n, k, r), we, oe, dt))
            bar.update(1)
    bar.close()
    clear_cache()
    df = pd.DataFrame(records, columns=COLUMNS[:-2])
    if df.empty:
        return pd.DataFrame(columns=COLUMNS)
    score = df["output_error"].where(df["output_error"].notna(), df["weight_error"])
    grp = df.assign(_s=score).groupby(["matrix", "compression"])["_s"]
    top_score = df.assign(_s=score).loc[df["heuristic"] == "top"].set_index(["matrix", "compression"])["_s"]
    keys = pd.MultiIndex.from_frame(df[["matrix", "compression"]])
    df["vs_top"] = (score.to_numpy() / top_score.reindex(keys).to_numpy()) if len(top_score) else np.nan
    df["vs_best"] = score / grp.transform("min")
    return df.replace([np.inf, -np.inf], np.nan)


def compare(W, split, rank, heuristics=None, X=None, *, oracle=None) -> pd.DataFrame:
    """Every heuristic at one (split, rank): rows chosen, weight error, output error (with X), time; best first.

    Heuristics whose requirements are missing (X, gradients) are left out. With ``oracle`` (an
    :class:`hmf_lab.OracleResult` for the same W, split, rank) a ``gap`` column gives each one's
    distance to the optimum (0 = optimal).

    >>> import torch, hmf_lab as hl
    >>> W = torch.diag(torch.tensor([1., 5., 2., 4.]))
    >>> compare(W, 2, 1, ["top", "row_norm"])[["heuristic", "rows"]].values.tolist()
    [['row_norm', [1, 3]], ['top', [0, 1]]]
    """
    W = as_matrix(W)
    table = _heuristic_table(heuristics)
    if X is not None:
        X = as_inputs(X, W.shape[1], name="X", like=W)
    out = []
    for label, h in table.items():
        fn = _resolve(h)
        needs = getattr(fn, "requires", frozenset()) if fn is not None else frozenset()
        if ("X" in needs and X is None) or "grad" in needs:
            continue
        clear_cache()
        t0 = time.perf_counter()
        f = hmf(W, split, rank, heuristic=h, X=X)
        dt = time.perf_counter() - t0
        rec = {"heuristic": label, "rows": f.rows.tolist(), "weight_error": relative_error(W, f),
               "output_error": output_error(W, f, X) if X is not None else float("nan"), "time_s": dt}
        if oracle is not None:
            rec["gap"] = oracle.gap(f)
        out.append(rec)
    df = pd.DataFrame(out)
    key = "output_error" if X is not None else "weight_error"
    return df.sort_values(key, kind="stable").reset_index(drop=True)


def summary(df: pd.DataFrame, by: str = "vs_best") -> pd.DataFrame:
    """Heuristic x compression table of the geometric mean of ``by`` over matrices (1 = best everywhere).

    >>> import torch, hmf_lab as hl
    >>> df = hl.leaderboard(["top", "row_norm"], [torch.randn(16, 12)], compressions=[2], progress=False)
    >>> list(summary(df).index) == sorted(summary(df).index, key=lambda h: summary(df).loc[h].mean())
    True
    """
    if by not in df.columns:
        raise ValueError(f"by must be a column of the leaderboard, e.g. 'vs_best' or 'vs_top', got {by!r}")
    vals = df.assign(_l=np.log(df[by].clip(lower=1e-300)))
    t = np.exp(vals.pivot_table(index="heuristic", columns="compression", values="_l", aggfunc="mean"))
    return t.loc[t.mean(axis=1).sort_values().index]
