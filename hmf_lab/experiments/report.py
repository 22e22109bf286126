"""``hl.report``: what HMF, LMF and pruning would do to each layer of any model, and a per-layer plan.

For every ``nn.Linear`` and ``nn.LSTM`` of a model (or the ``layers`` named) and every compression, the
report compresses the layer alone with each method and measures:

- ``values`` (stored weight values; biases not counted) and ``bytes`` (float values, plus for pruning the
  CSR ``index_bytes``: int32 column indices and row pointers);
- ``weight_error``: ``||W - W_hat||_F / ||W||_F`` over the layer's weight matrices;
- ``output_error`` on calibration inputs ``X`` (when given): the layer's inputs are captured with forward
  hooks while the model runs on ``X``, and ``||f(x) - f_hat(x)|| / ||f(x)||`` is taken on them;
- ``time_us``: the measured time per call (batch 1, 1 thread) on the engine :func:`hmf_lab.perf.engines.choose`
  picks (``engine``), next to the dense layer's ``dense_us`` timed in the same interleaved rounds (the
  ``dense`` candidate of that race: dense and compressed side by side, so a slow phase of a shared machine
  hits both). The ``dense`` row's ``time_us`` is the median of the dense times of the layer's races (a
  layer with no compressed row timed races its dense layer alone).

HMF is reported at its best (split, heuristic): a few points of the iso-compression line (the balanced
split and two larger ones, applied per gate block in an LSTM) times a few split heuristics are tried and
the one with the lowest error (output error if ``X``, else weight error) is kept (``split``, ``rank``,
``heuristic`` say which). ``dense`` rows (compression 1) give each layer's reference.

:meth:`Report.plan` recommends a per-layer plan at a total compression target. **The rule** (greedy on
marginal cost): start from every layer dense; among all layers' cheaper options, repeatedly take the
one with the lowest extra error per value saved, ``(error(new) - error(now)) / (values(now) - values(new))``,
until the model's stored values reach ``dense values / target``; the last move is cut to land on the
target (its layer gets the exact remaining budget). Errors are the output errors when ``X`` was given,
else the weight errors. The plan is a dict of ``hl.compress`` keyword arguments, one per layer
(``layers=[name]``); :func:`apply_plan` applies it.

Example
-------
>>> import torch, hmf_lab as hl
>>> torch.manual_seed(0)  # doctest: +ELLIPSIS
<torch._C.Generator object at ...>
>>> model = torch.nn.Sequential(torch.nn.Linear(64, 64), torch.nn.ReLU(), torch.nn.Linear(64, 32))
>>> rep = hl.report(model, compressions=(2, 4), time=False, progress=False)
>>> sorted(rep.table["method"].unique())
['dense', 'hmf', 'hmf_col', 'lmf', 'prune']
>>> plan = rep.plan(target=3)
>>> small = hl.report_apply_plan(model, plan)
>>> abs(hl.count_params(model) / hl.count_params(small) / 3 - 1) < 0.01
True
"""
from __future__ import annotations

import copy
import math
import numbers
import statistics
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import torch
from torch import nn

from hmf_lab.experiments.tables import markdown_table
from hmf_lab.factor.budget import csr_bytes, csr_index_bytes
from hmf_lab.nn.compress import capture_inputs, compress, count_params, select_modules
from hmf_lab.nn.methods import DENSE, METHODS as REGISTRY, get_method

__all__ = ["report", "Report", "apply_plan", "RULE", "outlier_profile"]

#: the plan's rule in one sentence (also in the plan dict)
RULE = ("greedy on marginal cost: start dense, repeatedly take the layer option with the lowest extra error per "
        "value saved until the stored values reach dense/target; the last move gets the exact remaining budget")

#: the methods reported by default: every registered one, in registration order (``hl.METHODS``), read at
#: call time; a tuple view of the registry's names kept under the old name
METHODS = tuple(REGISTRY)
#: HMF split points tried per matrix: "balanced" (split ~= rank) and fractions of the largest feasible split
SPLIT_POINTS = ("balanced", 0.5, 0.9)


def _check_model(model):
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")


def _check_compressions(compressions) -> tuple:
    if isinstance(compressions, numbers.Real) and not isinstance(compressions, bool):
        compressions = (compressions,)
    try:
        cs = tuple(compressions)
    except TypeError:
        raise TypeError(f"compressions must be a sequence of numbers > 1, e.g. (2, 4, 8), got {compressions!r}") from None
    if not cs or any(isinstance(c, bool) or not isinstance(c, numbers.Real) or not c > 1 for c in cs):
        raise ValueError(f"compressions must be numbers > 1 (dense is always reported), e.g. (2, 4, 8), got {compressions!r}")
    return tuple(sorted(set(cs)))


def _check_methods(methods) -> list[str]:
    """Method names from the registry (default: every registered one that needs no calibration inputs, i.e.
    without ``requires``; name ``aa_lmf``, ``wanda``, ``oats`` in ``methods`` with ``X`` to report them on the
    ``nn.Linear`` layers); unknown names raise ValueError."""
    if methods is None:
        return [m for m in REGISTRY if not REGISTRY[m].requires]
    if isinstance(methods, str) or not hasattr(methods, "__iter__"):
        raise ValueError(f"methods must be a non-empty sequence from {list(REGISTRY)}, got {methods!r}")
    methods = list(methods)
    bad = [m for m in methods if not isinstance(m, str) or m not in REGISTRY]
    if bad or not methods:
        raise ValueError(f"methods must be a non-empty sequence from {list(REGISTRY)}, got {methods!r}")
    return methods


# ----------------------------------------------------------------------------- layer facts


def _weights(mod: nn.Module) -> list[torch.Tensor]:
    """The layer's weight matrices (dense or reconstructed), in a fixed order."""
    if isinstance(mod, nn.LSTM):
        return [getattr(mod, n).detach() for n, _ in mod.named_parameters() if n.startswith("weight")] \
            if not hasattr(mod, "weight_ih_l0_mask") else \
            [getattr(mod, n).detach() for n in mod._flat_weights_names if n.startswith("weight")]
    if isinstance(mod, nn.Linear):
        return [mod.weight.detach()]
    if hasattr(mod, "ih"):  # a CompressedLSTM
        return [m.to_dense().detach() for pair in zip(mod.ih, mod.hh) for m in pair]
    return [mod.to_dense().detach()]


def _matrix_shapes(mod: nn.Module) -> list[tuple[int, int]]:
    return [tuple(W.shape) for W in _weights(mod)]


def _values(mod: nn.Module) -> int:
    return count_params(mod)


def _index_bytes(mod: nn.Module) -> int:
    """CSR index bytes of a pruned module (column indices + row pointers per matrix, ``hmf_lab.factor.budget.csr_bytes``
    without the values: int32 below 2**31 values, as the timed kernel); 0 otherwise."""
    from hmf_lab.nn.baseline_layers import SparseLowRankLinear
    from hmf_lab.nn.layers import SparseLinear

    total = 0
    for m in mod.modules():
        if isinstance(m, (SparseLinear, SparseLowRankLinear)):
            total += csr_bytes(m.out_features, m.nnz, value_bytes=0, index_bytes=csr_index_bytes(m.nnz))
    return total


def _weight_error(dense_ws, comp_mod) -> float:
    num = sum(float(torch.linalg.vector_norm(W - Wh) ** 2) for W, Wh in zip(dense_ws, _weights(comp_mod)))
    den = sum(float(torch.linalg.vector_norm(W) ** 2) for W in dense_ws)
    return math.sqrt(num / den) if den else (0.0 if num == 0 else math.inf)


def _first(out):
    return out[0] if isinstance(out, tuple) else out


def _output_error(dense_mod, comp_mod, calls) -> float:
    num = den = 0.0
    with torch.inference_mode():
        for args, kwargs in calls:
            y = _first(dense_mod(*args, **kwargs)).float()
            yh = _first(comp_mod(*args, **kwargs)).float()
            num += float(torch.linalg.vector_norm(y - yh) ** 2)
            den += float(torch.linalg.vector_norm(y) ** 2)
    return math.sqrt(num / den) if den else (0.0 if num == 0 else math.inf)


def _capture(model: nn.Module, names: list[str], X) -> dict:
    """Each named layer's (args, kwargs) for every batch of ``X`` (a tensor, a tuple of inputs, or a list)."""
    batches = [b if isinstance(b, tuple) else (b,) for b in (X if isinstance(X, list) else [X])]
    modules = [(n, model.get_submodule(n)) for n in names]
    was = model.training
    model.eval()
    try:
        got = capture_inputs(model, modules, batches, kwargs=True)
    except Exception as e:
        raise ValueError(f"model could not run on X ({type(e).__name__}: {e}); X must be what model() takes: "
                         f"a tensor, a tuple of positional inputs, or a list of those (batches)") from e
    finally:
        model.train(was)
    missing = [n for n in names if not got[n]]
    if missing:
        raise ValueError(f"layers {missing} were not called when the model ran on X; leave them out with layers=")
    return got


def _batch1(mod: nn.Module, call):
    """The first sample of a captured call (batch 1): what the time column measures."""
    args, kwargs = call
    x, rest = args[0], list(args[1:])
    if isinstance(mod, nn.LSTM):
        if x.dim() == 3:
            x = x.narrow(0 if mod.batch_first else 1, 0, 1)
            if rest and isinstance(rest[0], (tuple, list)):
                rest[0] = tuple(t.narrow(1, 0, 1) for t in rest[0])
        return (x, *rest), kwargs
    return (x[:1] if x.dim() > 1 else x, *rest), kwargs


def _synthetic_call(mod: nn.Module, seq: int = 32):
    """A seeded batch-1 input when no X is given (time does not depend on the values)."""
    g = torch.Generator().manual_seed(0)
    if isinstance(mod, nn.LSTM):
        shape = (1, seq, mod.input_size) if mod.batch_first else (seq, 1, mod.input_size)
        return (torch.randn(*shape, generator=g),), {}
    return (torch.randn(1, mod.in_features, generator=g),), {}


# ----------------------------------------------------------------------------- building candidates


def _split_at(shape, c, point):
    """The split of an (m, n) matrix (gate block) at iso-compression ``c`` for a split point."""
    from hmf_lab.nn.lstm import choose_split_rank

    k_bal, _ = choose_split_rank(shape, c)
    if point == "balanced":
        return k_bal
    from hmf_lab.factor.budget import max_split  # the one max-split rule

    try:
        kmax = max_split(shape, c)
    except ValueError:
        kmax = 0
    return max(k_bal, int(round(point * kmax)))


def _hmf_candidates(name: str, mod: nn.Module, c, heuristics, method):
    """(split description, compress kwargs) for every split point x heuristic."""
    out, seen = [], set()
    for point in SPLIT_POINTS:
        if isinstance(mod, nn.LSTM):
            H = mod.hidden_size
            split = {}
            for sfx in _suffixes(mod):
                for which in ("ih", "hh"):
                    n = getattr(mod, f"weight_{which}{sfx}").shape[1]
                    split[which + sfx] = _split_at((H, n), c, point)
            key = tuple(sorted(split.items()))
        else:
            split = _split_at((mod.out_features, mod.in_features), c, point)
            key = split
        if key in seen:
            continue
        seen.add(key)
        for h in heuristics:
            out.append((point, h, {"method": method.name, "compression": c, "split": {name: split}, "heuristic": h}))
    return out


def _suffixes(lstm: nn.LSTM):
    for layer in range(lstm.num_layers):
        for d in range(2 if lstm.bidirectional else 1):
            yield f"_l{layer}" + ("_reverse" if d else "")


def _build(mod: nn.Module, name: str, kwargs: dict) -> nn.Module:
    """The layer compressed alone (through ``hl.compress`` on a one-layer holder, so per-layer dicts apply)."""
    holder = nn.Module()
    holder.add_module("m", mod)
    kw = dict(kwargs)
    for key in ("split", "rank"):
        if isinstance(kw.get(key), dict) and name in kw[key]:
            kw[key] = {"m": kw[key][name]}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch's "sparse CSR support is in beta"
        return compress(holder, layers=["m"], **kw).m.eval()


def _rank_spec(mod: nn.Module):
    """The rank(s) of a compressed module as ``hl.compress`` takes them: an int, or a per-matrix dict."""
    if not hasattr(mod, "rank"):
        return None
    if hasattr(mod, "ih"):
        names = [which + sfx for sfx, _, _ in mod._pairs() for which in ("ih", "hh")]
        return dict(zip(names, mod.rank))
    return int(mod.rank)


def _describe(mod: nn.Module) -> tuple:
    """(split, rank) of a compressed module as short strings."""
    if hasattr(mod, "split") and hasattr(mod, "rank"):
        s, r = mod.split, mod.rank
        fmt = (lambda v: "/".join(map(str, v)) if isinstance(v, tuple) else str(v))
        return fmt(s), fmt(r)
    if hasattr(mod, "rank"):
        r = mod.rank
        return "0", "/".join(map(str, r)) if isinstance(r, tuple) else str(r)
    return "", ""


def _time(mod: nn.Module, call, threads: int, min_run_time: float) -> tuple[str, float, float]:
    from hmf_lab.perf import engines

    args, kwargs = call
    if kwargs:
        raise ValueError("layers called with keyword arguments cannot be timed; pass time=False")
    table = engines.choose(mod, *args, threads=threads, min_run_time=min_run_time, rounds=3)
    s = engines.summary(table).iloc[0]
    return str(s["engine"]), float(s["time_us"]), float(s["dense_us"])


def _dense_us(mod: nn.Module, call, threads: int, min_run_time: float, raced: list) -> float:
    """The dense row's time (us): the median of ``raced``, the dense times of the layer's races (each timed
    beside a compressed layer by :func:`hmf_lab.perf.engines.choose`); with none (every compression failed),
    the dense layer raced alone with the same settings (``hl.timing.race``)."""
    raced = [t for t in raced if math.isfinite(t)]
    if raced:
        return statistics.median(raced)
    from hmf_lab.perf.timing import race

    args, kwargs = call

    def fn():
        with torch.inference_mode():
            return mod(*args, **kwargs)
    res = race({DENSE.name: fn}, rounds=3, min_run_time=min_run_time / 3, threads=threads, warmup=2,
               clock="thread" if threads == 1 else "wall")  # hl.engines.choose's settings
    return res.median(DENSE.name) * 1e6


# ----------------------------------------------------------------------------- the report


@dataclass
class Report:
    """The tidy table of :func:`report` and the recommended plan (:meth:`plan`)."""

    table: pd.DataFrame  # one row per (layer, method, compression); dense rows at compression 1
    by_error: str  # "output_error" (X given) or "weight_error": what the plan and HMF's best choice minimise
    configs: dict = field(default_factory=dict, repr=False)  # (layer, method, compression) -> (kwargs, rank)
    model: nn.Module | None = field(default=None, repr=False)  # the reported model (plans refit its layers)

    def __repr__(self) -> str:
        return f"Report({self.table['layer'].nunique()} layers, {len(self.table)} rows, by {self.by_error})"

    def _repr_html_(self) -> str:
        return self.table.to_html(index=False, float_format=lambda v: f"{v:.4g}")

    def to_markdown(self) -> str:
        cols = ["layer", "shape", "method", "compression", "heuristic", "split", "rank", "values", "bytes",
                "weight_error", "output_error", "engine", "time_us", "dense_us"]
        return markdown_table(self.table, [c for c in cols if c in self.table.columns], float_format=".4g",
                              missing="nan")

    def plan(self, target: float, methods=None) -> dict:
        """The per-layer plan at total compression ``target`` (see the module docstring for the rule).

        Returns ``{"target", "achieved", "values", "dense_values", "error_sum", "by", "rule", "layers"}`` where
        ``layers`` maps a layer name to ``hl.compress`` keyword arguments (``layers=[name]``); layers left
        dense have no entry. ``achieved`` is the compression the plan's model really has.
        """
        return _plan(self, target, methods)


def report(model: nn.Module, compressions=(2, 4, 8), X=None, *, layers=None, methods=None,
           heuristics=("top", "row_norm"), time: bool = True, threads: int = 1, min_run_time: float = 0.1,
           progress: bool = True) -> Report:
    """Compress each ``nn.Linear``/``nn.LSTM`` of ``model`` alone with HMF (best split and heuristic), LMF and
    pruning at each compression and measure values, bytes, weight error, output error on ``X`` and time.

    ``X``: optional calibration inputs, what ``model`` takes (a tensor, a tuple of inputs, or a list of
    those); ``methods``: names in the method registry (default: every registered method, ``hl.METHODS``;
    a method with a split heuristic is tried at several split points, as HMF); ``layers``: names to report on (default every ``nn.Linear``/``nn.LSTM``); ``heuristics``: split
    heuristics HMF tries (data-aware ones such as ``"activation"`` use the captured inputs of a Linear);
    ``time=False`` skips the timing columns; ``threads``: torch threads for the whole report (timing included).
    Returns a :class:`Report`; ``.table`` is the tidy DataFrame,
    ``.plan(target)`` the recommendation.

    >>> import torch, hmf_lab as hl
    >>> net = torch.nn.Sequential(torch.nn.Linear(32, 32))
    >>> t = hl.report(net, compressions=(2,), X=torch.randn(8, 32), time=False, progress=False).table
    >>> list(t["method"]), bool((t["output_error"] >= 0).all())
    (['dense', 'hmf', 'lmf', 'prune', 'hmf_col'], True)
    """
    _check_model(model)
    cs = _check_compressions(compressions)
    names = select_modules(model, layers, skip_compressed=False, purpose="report on")
    methods = _check_methods(methods)
    from hmf_lab.factor.heuristics import HEURISTICS

    heuristics = [heuristics] if isinstance(heuristics, str) or callable(heuristics) else list(heuristics)
    unknown = [h for h in heuristics if isinstance(h, str) and h not in HEURISTICS]
    if unknown or not heuristics:
        raise ValueError(f"heuristics must name registered heuristics {sorted(HEURISTICS)}, got {unknown or heuristics}")
    if isinstance(threads, bool) or not isinstance(threads, numbers.Integral) or threads < 1:
        raise ValueError(f"threads must be an int >= 1, got {threads!r}")
    calls = _capture(model, names, X) if X is not None else None
    by = "output_error" if calls is not None else "weight_error"
    work = [(n, meth, c) for n in names for meth in methods for c in cs]
    bar = None
    if progress:
        from tqdm.auto import tqdm
        bar = tqdm(total=len(work) + len(names), desc="hl.report", leave=False)
    rows, configs = [], {}
    was, before = model.training, torch.get_num_threads()
    model.eval()
    torch.set_num_threads(int(threads))  # small per-layer work: extra threads only wait on a busy machine
    try:
        for name in names:
            mod = model.get_submodule(name)
            dense_ws = _weights(mod)
            time_call = _batch1(mod, calls[name][0]) if calls else _synthetic_call(mod)
            base = {"layer": name, "kind": type(mod).__name__,
                    "shape": " + ".join(f"{m}x{n}" for m, n in _matrix_shapes(mod))}
            dense_values = sum(W.numel() for W in dense_ws)
            row = {**base, "method": DENSE.name, "compression": 1.0, "heuristic": "", "split": "", "rank": "",
                   "values": dense_values, "bytes": dense_values * dense_ws[0].element_size(), "index_bytes": 0,
                   "actual_compression": 1.0, "weight_error": 0.0, "output_error": 0.0 if calls else math.nan}
            if time:  # filled in below from the races of the compressed layers
                row.update(engine=DENSE.engines[0], time_us=math.nan, dense_us=math.nan)
            dense_row, raced = row, []
            rows.append(row)
            if bar:
                bar.update()
            for meth in methods:
                rec = get_method(meth)
                for c in cs:
                    try:
                        best = _best(name, mod, meth, c, heuristics, dense_ws, calls)
                    except ValueError as e:  # e.g. compression unreachable for a tiny layer
                        rows.append({**base, "method": meth, "compression": float(c), "note": str(e)[:120]})
                        if bar:
                            bar.update()
                        continue
                    comp, kw, point, err_w, err_o = best
                    configs[(name, meth, float(c))] = (kw, _rank_spec(comp))
                    split, rank = _describe(comp) if not rec.sparse else ("", "")
                    values = _values(comp)
                    ib = _index_bytes(comp)
                    row = {**base, "method": meth, "compression": float(c),
                           "heuristic": kw.get("heuristic", "") if rec.takes_heuristic else "",
                           "split": split, "rank": rank, "values": values,
                           "bytes": values * dense_ws[0].element_size() + ib, "index_bytes": ib,
                           "actual_compression": dense_values / values, "weight_error": err_w,
                           "output_error": err_o, "split_point": str(point) if rec.takes_heuristic else ""}
                    if time:
                        row["engine"], row["time_us"], row["dense_us"] = _time(comp, time_call, threads, min_run_time)
                        raced.append(row["dense_us"])
                    rows.append(row)
                    if bar:
                        bar.update()
            if time:
                dense_row["time_us"] = dense_row["dense_us"] = _dense_us(mod, time_call, threads, min_run_time, raced)
    finally:
        model.train(was)
        torch.set_num_threads(before)
        if bar:
            bar.close()
    table = pd.DataFrame(rows)
    if time and "time_us" in table:
        table["speedup"] = table["dense_us"] / table["time_us"]
    return Report(table=table, by_error=by, configs=configs, model=model)


def _best(name, mod, meth, c, heuristics, dense_ws, calls):
    """The compressed layer for (method, compression): HMF's best (split point, heuristic) by the error."""
    rec = get_method(meth)
    if rec.takes_heuristic and "split" in rec.options:  # HMF-like: split points x heuristics
        cands = _hmf_candidates(name, mod, c, heuristics, rec)
    else:  # one configuration; a method with CSR inference is built sparse (what is timed)
        cands = [("", "", {"method": rec.name, "compression": c, **({"sparse": True} if rec.sparse else {})})]
    best = None
    for point, h, kw in cands:
        if rec.requires and calls is not None and isinstance(mod, nn.Linear):  # aa_lmf, wanda, oats: the inputs
            X = torch.cat([a[0].reshape(-1, mod.in_features) for a, _ in calls[name]])
            comp = rec.linear(mod, c, X=X, **({"sparse": True} if rec.sparse else {})).eval()
        elif calls is not None and h in ("activation", "fisher") and isinstance(mod, nn.Linear):
            kw = dict(kw)  # data-aware heuristics on a Linear: its captured inputs
            X = torch.cat([a[0].reshape(-1, mod.in_features) for a, _ in calls[name]])
            comp = rec.linear(mod, c, split=kw["split"][name], heuristic=h, X=X).eval()
        else:
            try:
                comp = _build(mod, name, kw)
            except (ValueError, TypeError) as e:
                if h not in ("activation", "fisher"):
                    raise
                continue
        err_w = _weight_error(dense_ws, comp)
        err_o = _output_error(mod, comp, calls[name]) if calls is not None else math.nan
        score = err_o if calls is not None else err_w
        if best is None or score < best[0]:
            best = (score, comp, kw, point, err_w, err_o)
    if best is None:
        raise ValueError(f"no {meth} configuration of layer {name!r} at compression {c}")
    return best[1:]


# ----------------------------------------------------------------------------- the plan


def _plan(rep: Report, target, methods) -> dict:
    if isinstance(target, bool) or not isinstance(target, numbers.Real) or not target >= 1:
        raise ValueError(f"target must be a total compression >= 1, e.g. 4, got {target!r}")
    methods = _check_methods(methods)
    t = rep.table
    dense = t[t["method"] == DENSE.name].set_index("layer")
    opts = t[t["method"].isin(methods) & t["values"].notna()]
    total_dense = int(dense["values"].sum())
    budget = total_dense / float(target)
    max_c = total_dense / sum(int(opts[opts["layer"] == n]["values"].min()) if (opts["layer"] == n).any()
                              else int(dense.loc[n, "values"]) for n in dense.index)
    if target > max_c * (1 + 1e-9):
        raise ValueError(f"target {target} is beyond what the report's options reach (at most {max_c:.3g}x with "
                         f"compressions {sorted(opts['compression'].unique())}); report higher compressions or lower the target")
    by = rep.by_error
    state = {n: (int(dense.loc[n, "values"]), 0.0, None) for n in dense.index}  # values, error, option row
    cur = sum(v for v, _, _ in state.values())
    last = None
    while cur > budget + 1e-9:
        best = None
        for n, (v, e, _) in state.items():
            cand = opts[(opts["layer"] == n) & (opts["values"] < v)]
            for row in cand.itertuples():
                cost = (getattr(row, by) - e) / (v - row.values)
                if best is None or cost < best[0]:
                    best = (cost, n, row)
        if best is None:  # cannot happen after the max_c check
            break
        _, n, row = best
        cur += int(row.values) - state[n][0]
        state[n] = (int(row.values), float(getattr(row, by)), row)
        last = n
    layers, sources = {}, {}
    for n, (v, e, row) in state.items():
        if row is None:
            continue
        kw = dict(rep.configs[(n, row.method, float(row.compression))][0])
        layers[n] = {**kw, "layers": [n]}
        sources[n] = (row.method, float(row.compression))
    plan = {"target": float(target), "by": by, "rule": RULE, "layers": layers, "dense_values": total_dense,
            "error_sum": float(sum(e for _, e, _ in state.values())),
            "options": {n: f"{m} {c:g}x (report row)" for n, (m, c) in sources.items()}}
    values = {n: v for n, (v, _, _) in state.items()}
    if last is not None:  # the last move gets the exact remaining budget (a smaller compression for that layer)
        _fill(rep, plan, values, sources, [last] + sorted((n for n in layers if n != last), key=lambda n: -values[n]),
              math.floor(budget))
    plan["values"] = int(sum(values.values()))
    plan["achieved"] = total_dense / plan["values"]
    return plan


def _fill(rep: Report, plan: dict, values: dict, sources: dict, order: list, budget: int) -> None:
    """Give layers (``order``: the last-moved one first) the values the budget still has room for.

    Each refit keeps the layer's method: HMF keeps its rank and takes the largest split that fits (steps
    of ``n - r`` values per matrix), pruning keeps ``floor(m*n / c)`` values (steps of one), LMF takes the
    largest rank (steps of ``m + n``). Stops once the plan is within 1% of the budget.
    """
    for name in order:
        if sum(values.values()) >= budget * 0.99:
            return
        room = budget - (sum(values.values()) - values[name])
        if room <= values[name]:
            continue
        kw = dict(plan["layers"][name])
        dv = int(rep.table[(rep.table["layer"] == name) & (rep.table["method"] == DENSE.name)]["values"].iloc[0])
        kw["compression"] = dv / room  # pruning keeps exactly floor(values / c): steps of one value
        rec = get_method(kw["method"])
        if "split" in rec.options and "rank" in rec.options:  # HMF: keep the rank, the largest split that fits
            rank = rep.configs[(name, *sources[name])][1]
            kw.pop("split", None)
            kw["rank"] = {name: rank}
        elif "rank" in rec.options:  # LMF: the ranks that fill the room
            ranks = _lmf_fill(rep.model.get_submodule(name), room)
            if ranks is not None:
                kw["rank"] = {name: ranks}
        try:
            mod = _build(rep.model.get_submodule(name), name, {k: v for k, v in kw.items() if k != "layers"})
        except ValueError:
            continue
        if _values(mod) <= room and _values(mod) >= values[name]:
            values[name] = _values(mod)
            plan["layers"][name] = kw


def _lmf_fill(mod: nn.Module, room: int):
    """LMF ranks (an int for a Linear, a per-matrix dict for an LSTM) whose values fill ``room`` best: an
    LSTM's matrices get their own ranks (one rank step of W_hh costs 4*(H+H) values, of W_ih 4*(H+n))."""
    if isinstance(mod, nn.Linear):
        from hmf_lab.factor.budget import largest_rank  # the one LMF rank rule (split 0)

        r = largest_rank((mod.out_features, mod.in_features), room, 0)
        return int(r) if r >= 1 else None
    H = mod.hidden_size
    mats = [(which + sfx, getattr(mod, f"weight_{which}{sfx}").shape[1]) for sfx in _suffixes(mod) for which in ("ih", "hh")]
    units = {k: 4 * (H + n) for k, n in mats}
    rmax = {k: min(H, n) for k, n in mats}
    dense = sum(4 * H * n for _, n in mats)
    c = dense / room  # every matrix starts at the rank of this uniform compression, then the leftover is shared
    uniform = {k: int(min(rmax[k], max(1, (H * n / c) // (H + n)))) for k, n in mats}
    order = sorted(units, key=units.get, reverse=True)
    first, rest = order[0], order[1:]
    best = None
    for r0 in range(uniform[first], min(rmax[first], uniform[first] + 3) + 1):  # coarsest matrix: +0..3 ranks
        left, ranks = room - r0 * units[first], {first: r0}
        for k in rest:
            ranks[k] = int(min(rmax[k], left // units[k]))
            left -= ranks[k] * units[k]
        if left >= 0 and all(ranks[k] >= uniform[k] for k in ranks) and (best is None or left < best[0]):
            best = (left, ranks)
    return uniform if best is None else best[1]


def apply_plan(model: nn.Module, plan: dict) -> nn.Module:
    """A copy of ``model`` compressed by ``plan`` (from :meth:`Report.plan`): ``hl.compress`` per layer.

    >>> import torch, hmf_lab as hl
    >>> net = torch.nn.Sequential(torch.nn.Linear(32, 32))
    >>> plan = {"layers": {"0": {"method": "lmf", "compression": 2, "layers": ["0"]}}}
    >>> type(hl.report_apply_plan(net, plan)[0]).__name__
    'LMFLinear'
    """
    _check_model(model)
    if not isinstance(plan, dict) or not isinstance(plan.get("layers"), dict):
        raise TypeError("plan must be the dict Report.plan returns: {'layers': {name: hl.compress kwargs}, ...}")
    out = model
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for name, kw in plan["layers"].items():
            out = compress(out, **kw)
    if out is model:
        with torch.inference_mode(False):
            out = copy.deepcopy(model)
    return out


# ----------------------------------------------------------------------------- command line: hmf-lab report


def load_model(checkpoint, factory: str) -> nn.Module:
    """Build ``factory`` (``"module:function"``, e.g. ``"hmf_lab.nlp:CharLM"``) and load ``checkpoint`` into it.

    The checkpoint (``torch.load(weights_only=True)``) is either ``{"config": kwargs, "state_dict": ...}`` (the
    kit's format: the factory gets ``**config``) or a plain state dict (the factory is called with no argument).

    >>> m = load_model("data/char_lm.pt", "hmf_lab.nlp:CharLM")  # doctest: +SKIP
    """
    import importlib
    from pathlib import Path

    if not isinstance(factory, str) or factory.count(":") != 1 or not all(factory.split(":")):
        raise ValueError(f"factory must be 'module:function' (e.g. 'hmf_lab.nlp:CharLM'), got {factory!r}")
    mod_name, fn_name = factory.split(":")
    try:
        fn = getattr(importlib.import_module(mod_name), fn_name)
    except (ImportError, AttributeError) as e:
        raise ValueError(f"factory {factory!r} cannot be imported ({type(e).__name__}: {e}); give an importable "
                         f"module and a callable in it, e.g. 'hmf_lab.nlp:CharLM'") from e
    path = Path(checkpoint)
    if not path.is_file():
        raise ValueError(f"checkpoint {str(path)!r} is not a file; give the path of a torch.save'd state dict or "
                         f"{{'config', 'state_dict'}} checkpoint")
    payload = _torch_load(path, "checkpoint", "torch.save(model.state_dict(), path) or "
                                              "hl.nlp.save_checkpoint(model, path)")
    if isinstance(payload, dict) and "state_dict" in payload:
        state, config = payload["state_dict"], dict(payload.get("config") or {})
    elif isinstance(payload, dict) and all(isinstance(v, torch.Tensor) for v in payload.values()):
        state, config = payload, {}
    else:
        raise ValueError(f"checkpoint {str(path)!r} holds a {type(payload).__name__}; expected a state dict or "
                         f"{{'config': kwargs, 'state_dict': state dict}}")
    try:
        model = fn(**config)
    except TypeError as e:   # the checkpoint's config does not match the factory's parameters
        raise ValueError(f"factory {factory!r} cannot be called with the config of checkpoint {str(path)!r} "
                         f"({_first_line(e)}); pass the factory the checkpoint was saved from") from None
    if not isinstance(model, nn.Module):
        raise ValueError(f"factory {factory!r} returned a {type(model).__name__}, expected a torch.nn.Module")
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ValueError(f"checkpoint {str(path)!r}: its 'state_dict' holds a {type(state).__name__}, expected a "
                         f"dict of tensors (model.state_dict())")
    try:
        model.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in state.items()})
    except RuntimeError as e:   # missing / unexpected keys, shape mismatches
        raise ValueError(f"checkpoint {str(path)!r} does not fit the model built by {factory!r} "
                         f"({_first_line(e)}); pass the factory (and config) the checkpoint was saved from") from None
    return model.eval()


def _torch_load(path, what: str, fix: str):
    """``torch.load(path, weights_only=True)``, any failure (corrupt, truncated, not torch's, unsafe pickle)
    as one ValueError naming the file and how to make a good one; load warnings shown only when it works."""
    import warnings

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            payload = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as e:  # noqa: BLE001 -- torch.load fails with many types (UnpicklingError, EOFError, ...)
            raise ValueError(f"{what} {str(path)!r} could not be loaded ({type(e).__name__}: {_first_line(e)}); "
                             f"it is not an intact file written by torch.save: save it again with {fix}") from None
    for w in caught:
        warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    return payload


def _first_line(e: BaseException, limit: int = 160) -> str:
    """The first non-empty line of an exception's message, shortened (torch's load errors run to pages)."""
    line = next((ln.strip() for ln in str(e).splitlines() if ln.strip()), "no message")
    return line if len(line) <= limit else line[: limit - 3] + "..."


def add_arguments(parser) -> None:
    from hmf_lab.experiments._args import compression_arg  # argparse validators: a bad value stops before any work

    parser.add_argument("--model", required=True, help="checkpoint file (state dict, or {'config', 'state_dict'})")
    parser.add_argument("--factory", required=True, help="module:function that builds the model, e.g. hmf_lab.nlp:CharLM")
    parser.add_argument("--compression", nargs="+", type=compression_arg, default=[2, 4, 8],
                        help="compressions to report")
    parser.add_argument("--target", type=compression_arg, default=None, help="total compression of the recommended plan")
    parser.add_argument("--calibration", default=None,
                        help="torch file with model inputs (a tensor or a tuple) for output errors")
    parser.add_argument("--layers", nargs="+", default=None, help="layer names (default: every Linear/LSTM)")
    parser.add_argument("--no-time", action="store_true", help="skip the timing columns")
    parser.add_argument("--out", default=None, help="folder for report.csv and plan.json")


def run(args) -> int:
    import json
    import sys
    from pathlib import Path

    try:
        model = load_model(args.model, args.factory)
        X = None
        if args.calibration:
            if not Path(args.calibration).is_file():
                raise ValueError(f"calibration {args.calibration!r} is not a file; give the path of a "
                                 f"torch.save'd tensor of the model's inputs")
            X = _torch_load(args.calibration, "calibration", "torch.save(inputs_tensor, path)")
        comps = [int(c) if float(c).is_integer() else c for c in args.compression]
        rep = report(model, comps, X=X, layers=args.layers, time=not args.no_time)
        plan = rep.plan(args.target) if args.target else None
    except ValueError as e:
        print(f"hmf-lab report: {e}", file=sys.stderr)
        return 2
    print(rep.to_markdown())
    if plan is not None:
        print(f"plan at {plan['target']:g}x (achieved {plan['achieved']:.3f}x, by {plan['by']}): {plan['rule']}")
        for name, kw in plan["layers"].items():
            print(f"  {name}: {kw}")
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        rep.table.to_csv(out / "report.csv", index=False)
        if plan is not None:
            (out / "plan.json").write_text(json.dumps(plan, indent=2, default=str))
    return 0


# --------------------------------------------------------------------------- outlier profile


def outlier_profile(model: nn.Module, X, *, layers=None) -> pd.DataFrame:
    """The outlier-channel profile of every ``nn.Linear`` and attention block of ``model`` on calibration inputs ``X``.

    One row per matrix: an ``nn.Linear`` (``block`` empty) or a block of an ``nn.MultiheadAttention``
    (``q``, ``k``, ``v`` of the packed ``in_proj_weight``, ``out``: as ``hl.compress`` compresses it). Columns
    ``layer``, ``block``, ``shape``, then :func:`hmf_lab.factor.heuristics.outlier_stats` of the inputs that
    matrix sees while ``model`` runs on ``X`` (eval mode): ``raw_max_median`` (input-channel energy
    ``mean x_j^2``, max / median), ``whitened_max_median`` (the channels' shares of the whitened output
    energy, :func:`~hmf_lab.factor.heuristics.channel_energy`), ``whitened_top_share``. ``X`` as in
    ``hl.compress`` (a batch, a tuple of inputs, or a list of those); ``layers``: module names (default all;
    ``nn.LSTM`` modules are left out).

    >>> import torch
    >>> net = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 4))
    >>> df = outlier_profile(net, torch.randn(64, 8))
    >>> list(df["layer"]), list(df.columns)[3:]
    (['0', '2'], ['n', 'raw_max_median', 'whitened_max_median', 'whitened_top_share'])
    """
    from hmf_lab.factor.heuristics import outlier_stats
    from hmf_lab.nn.attention import attention_calibration
    from hmf_lab.nn.compress import _batches

    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    batches = _batches(X)
    names = [n for n in select_modules(model, layers, purpose="profile") if type(model.get_submodule(n)) is not nn.LSTM]
    mha = [n for n in names if isinstance(model.get_submodule(n), nn.MultiheadAttention)]
    lin = [(n, model.get_submodule(n)) for n in names if n not in mha]
    was = model.training
    model.eval()
    try:
        calls = capture_inputs(model, lin, batches) if lin else {}
    finally:
        model.train(was)
    seen = attention_calibration(model, mha, batches) if mha else {}
    rows = []
    for name in names:
        mod = model.get_submodule(name)
        if name in seen:
            if mod._qkv_same_embed_dim:
                qkv = mod.in_proj_weight.chunk(3, dim=0)
            else:
                qkv = (mod.q_proj_weight, mod.k_proj_weight, mod.v_proj_weight)
            mats = [("q", qkv[0], seen[name]["q_proj"]), ("k", qkv[1], seen[name]["k_proj"]),
                    ("v", qkv[2], seen[name]["v_proj"]), ("out", mod.out_proj.weight, seen[name]["out_proj"])]
        else:
            if not calls.get(name):
                raise ValueError(f"layer {name!r} never ran on the calibration inputs X; check that X reaches it")
            got = torch.cat([args[0].detach().reshape(-1, mod.in_features) for args in calls[name]])
            mats = [("", mod.weight, got)]
        for block, W, Xb in mats:
            rows.append({"layer": name, "block": block, "shape": tuple(W.shape),
                         **outlier_stats(W.detach(), Xb)})
    return pd.DataFrame(rows)
