"""Never slower than dense: run every compressed layer on its fastest *correct* engine, chosen by measuring once.

A compressed layer can compute the same numbers with different kernels (its *engines*):

=================  ===============================================================================
engine             what runs
=================  ===============================================================================
``factorized``     the factors' own kernels: HMF one GEMV on [D ; V] then one on U, LMF V then U,
                   an HMF/LMF LSTM its per-step loop on the factors (TorchScript)
``reconstructed``  W_hat rebuilt once (cached, rebuilt when a weight changes) and run by the fused dense
                   kernel: ``F.linear``, or torch's fused LSTM (``_VF.lstm``, what ``nn.LSTM`` calls)
``csr``            pruned weights in torch's sparse CSR kernels (for pruned layers, ``reconstructed`` is
                   the masked dense weight)
=================  ===============================================================================

Small layers are overhead-bound (the dense kernel on W_hat wins); large layers at batch 1 are memory-bound
(the factorized kernels, which stream fewer bytes, win). :func:`choose` captures every compressed layer's
real input from one forward pass of ``example_inputs``, checks that every engine gives the same output
(an engine that does not is never chosen), times them in interleaved rounds with the kit's one harness,
:func:`hmf_lab.perf.timing.race` (1 thread and the thread CPU clock by default), and switches each layer to the
fastest one. A layer timed alone does not predict the whole model, so :func:`choose` then times the whole
model with that choice against every layer on its fallback (``reconstructed``: dense kernels on W_hat)
and the dense model, interleaved, and keeps the choice only when it pays end to end (never slower must
hold for the model, not for each layer alone). It returns the table with the verdict in
``table.attrs["end_to_end"]``; ``module.chosen_engine`` says which engine a layer runs. Choices are cached
per (layer structure, input shape, dtype, thread count): a second model with the same shapes is not
measured again. The engines are the layers' own modes (``HMFLinear.mode``, ``CompressedLSTM.mode``,
``SparseLinear.mode``); this module only measures and sets them. A compressed attention
(:class:`~hmf_lab.nn.attention.CompressedMultiheadAttention`) has no engine of its own: its four projections
(``q_proj``, ``k_proj``, ``v_proj``, ``out_proj``) are compressed linear layers, chosen one by one.

Masked pruning (``hl.compress(model, "prune")`` without ``sparse=True``) runs ``nn.Linear``/``nn.LSTM`` on
the masked weight: call :func:`hmf_lab.sparsify` first to give the chooser the CSR/dense choice.

Example
-------
>>> import torch, hmf_lab as hl
>>> model = torch.nn.Sequential(torch.nn.Linear(64, 64), torch.nn.ReLU(), torch.nn.Linear(64, 64))
>>> small = hl.compress(model, "hmf", compression=4)
>>> table = hl.engines.choose(small, torch.randn(1, 64), min_run_time=0.01)
>>> sorted(set(table["layer"])), small[0].chosen_engine in ("factorized", "reconstructed")
(['0', '2'], True)
"""
from __future__ import annotations

import numbers
import os

import pandas as pd
import torch
from torch import nn

from hmf_lab.nn.compress import capture_inputs
from hmf_lab.nn.layers import HMFColLinear, HMFLinear, LMFLinear, SparseLinear
from hmf_lab.nn.baseline_layers import SparseLowRankLinear
from hmf_lab.nn.lstm import CompressedLSTM, SparseLSTM
from hmf_lab.perf.timing import Race, race

__all__ = ["ENGINES", "engines_of", "set_engine", "current_engine", "choose", "summary", "clear_cache",
           "compressed_modules", "compare_models", "load_note", "crossover_points"]

#: every engine name, in the order they are tried (the first available one is the reference output)
ENGINES = ("factorized", "csr", "reconstructed")

#: (layer structure, input shapes, dtype, threads) -> {engine: (median s, iqr s, n)} and the choice
_CACHE: dict = {}


def engines_of(module: nn.Module) -> tuple[str, ...]:
    """The engines ``module`` can run (empty for a module that has no choice, e.g. a plain ``nn.Linear``).

    >>> import torch, hmf_lab as hl
    >>> hl.engines.engines_of(hl.LMFLinear(8, 8, rank=2)), hl.engines.engines_of(torch.nn.Linear(8, 8))
    (('factorized', 'reconstructed'), ())
    """
    if isinstance(module, (SparseLinear, SparseLSTM)):
        return ("csr", "reconstructed")
    if isinstance(module, (HMFLinear, HMFColLinear, LMFLinear, CompressedLSTM, SparseLowRankLinear)):
        return ("factorized", "reconstructed")
    return ()


def set_engine(module: nn.Module, engine: str) -> nn.Module:
    """Switch ``module`` to ``engine`` (its ``mode``); returns the module. Training is unaffected: a
    compressed LSTM on ``"factorized"``/``"csr"`` keeps ``mode="auto"`` (fused kernel while autograd records).

    >>> import hmf_lab as hl
    >>> layer = hl.engines.set_engine(hl.HMFLinear(8, 8, split=2, rank=2), "reconstructed")
    >>> layer.mode, hl.engines.current_engine(layer)
    ('reconstructed', 'reconstructed')
    """
    options = engines_of(module)
    if not options:
        raise TypeError(f"module must be a compressed layer (HMFLinear, LMFLinear, SparseLinear or a "
                        f"CompressedLSTM), got {type(module).__name__}; it has no engine to choose")
    if engine not in options:
        raise ValueError(f"engine must be one of {options} for a {type(module).__name__}, got {engine!r}")
    if isinstance(module, CompressedLSTM):
        module.mode = "reconstructed" if engine == "reconstructed" else "auto"
    else:
        module.mode = engine
    return module


def current_engine(module: nn.Module) -> str:
    """The engine ``module`` runs for inference now (from its ``mode``)."""
    options = engines_of(module)
    if not options:
        raise TypeError(f"module must be a compressed layer (HMFLinear, LMFLinear, SparseLinear or a "
                        f"CompressedLSTM), got {type(module).__name__}")
    if module.mode == "reconstructed":
        return "reconstructed"
    return options[0]


def compressed_modules(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """(qualified name, module) of every layer with an engine choice (nested ones inside them excluded).

    >>> import torch, hmf_lab as hl
    >>> m = hl.compress(torch.nn.Sequential(torch.nn.LSTM(8, 8), torch.nn.Linear(8, 8)), "lmf", compression=2)
    >>> [name for name, _ in hl.engines.compressed_modules(m)]
    ['0', '1']
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    out, inside = [], []
    for name, mod in model.named_modules():
        if any(name.startswith(p + ".") or (p == "" and name) for p in inside):
            continue
        if engines_of(mod):
            out.append((name, mod))
            inside.append(name)
    return out


def clear_cache() -> None:
    """Forget every cached choice (the next :func:`choose` measures again)."""
    _CACHE.clear()


def _shapes(obj):
    if isinstance(obj, torch.Tensor):
        return tuple(obj.shape)
    if isinstance(obj, (tuple, list)):
        return tuple(_shapes(o) for o in obj)
    return None if obj is None else type(obj).__name__


def _key(module: nn.Module, args, threads: int) -> tuple:
    """(layer structure, input shapes, dtype, threads): what a measured choice depends on."""
    structure = tuple((n, tuple(t.shape)) for n, t in module.state_dict().items())
    structure += tuple(bool(getattr(m, "is_top", True)) for m in module.modules())  # a row permutation costs
    dtype = next((t.dtype for t in module.state_dict().values() if t.is_floating_point()), None)
    return type(module).__name__, structure, _shapes(args), str(dtype), int(threads)


def _tensors(out) -> list[torch.Tensor]:
    if isinstance(out, torch.Tensor):
        return [out]
    if isinstance(out, (tuple, list)):
        return [t for o in out for t in _tensors(o)]
    return []


def _max_diff(a, b) -> float:
    ta, tb = _tensors(a), _tensors(b)
    if len(ta) != len(tb) or any(x.shape != y.shape for x, y in zip(ta, tb)):
        return float("inf")
    return max((float((x.float() - y.float()).abs().max()) if x.numel() else 0.0) for x, y in zip(ta, tb))


def _scale(out) -> float:
    return max([float(t.float().abs().max()) for t in _tensors(out) if t.numel()] + [1.0])


def _check_positive(value, name: str, integer: bool = False):
    ok = (isinstance(value, numbers.Integral) if integer else isinstance(value, numbers.Real))
    if isinstance(value, bool) or not ok or not value > 0:
        kind = "an int >= 1" if integer else "a positive number"
        raise ValueError(f"{name} must be {kind}, got {value!r}")
    return value


def choose(model: nn.Module, *example_inputs, threads: int = 1, min_run_time: float = 0.2, rounds: int = 3,
           clock: str | None = None, rtol: float = 1e-4, use_cache: bool = True, dense: bool = True,
           progress: bool = False, confirm: bool = True) -> pd.DataFrame:
    """Switch every compressed layer of ``model`` to its fastest correct engine (in place), confirmed end to
    end: the model with the chosen engines must beat the model with every layer on its fallback, or every
    layer falls back. Returns a tidy table, one row per (layer, engine).

    **Per layer.** Each layer is timed alone on the input it receives in ``model(*example_inputs)`` (e.g.
    one batch-1 sequence), every engine in interleaved rounds (:func:`hmf_lab.perf.timing.race`); the engine with
    the fastest block (``min_us``) wins: load only ever adds time, so on a shared machine the minimum is the
    steadiest estimate of a kernel's cost (``time_us`` reports the median). An engine whose output differs
    from the first engine's by more than ``rtol * max|output|`` is marked ``correct=False`` and never chosen.

    **End to end** (``confirm=True``). A layer alone does not predict the model (other layers' caches, the
    shapes between them, the interpreter around them): the whole model is then timed in interleaved rounds
    with the per-layer choice (``chosen``), with every layer on its *fallback* (``reconstructed``: W_hat in
    dense's own fused kernels; a layer whose reconstruction is not correct keeps its choice) and, with
    ``dense``, as the plain dense model (every compressed layer swapped for ``nn.Linear``/``nn.LSTM`` on
    W_hat). The choice is kept only when its median beats the fallback's and its output matches the
    fallback's (within ``END_TO_END_RTOL`` of the largest output value); otherwise every layer falls back.
    The verdict is in the table: ``per_layer`` (the per-layer winner) beside ``chosen`` (what runs now),
    and in ``table.attrs["end_to_end"]``: ``decision`` (``"kept"``, ``"fallback"``, ``"single layer"``: the
    model is the layer, its race was end to end; ``"nothing to confirm"``: every layer already runs its
    fallback; ``"not confirmed"``: ``confirm=False``), ``note`` (one sentence), ``median_us`` and
    ``speedup_vs_dense`` per configuration, ``max_abs_diff`` (configuration vs fallback output), ``warning``.
    :func:`summary` carries it.

    ``threads``: torch threads for the measurement (1: batch-1 inference on one core). ``min_run_time``:
    seconds per candidate, split over ``rounds`` interleaved rounds. ``clock``: ``"thread"`` (default for
    1 thread: CPU time of this thread, blind to other processes holding the core) or ``"wall"``. ``dense``:
    also time the equivalent dense layer (reference row ``engine="dense"``) and the dense model. Choices
    are cached per (layer structure, input shape, dtype, threads), end-to-end decisions per (every layer's
    key, model input shapes); ``use_cache=False`` measures again.

    Columns: ``layer, module, engine, time_us, iqr_us, min_us, n, max_abs_diff, correct, chosen, per_layer,
    cached, threads, dtype, input_shape``; ``speedup_vs_dense`` (dense time / this time) when ``dense``.

    >>> import torch, hmf_lab as hl
    >>> m = hl.compress(torch.nn.Sequential(torch.nn.Linear(32, 32)), "prune", compression=4, sparse=True)
    >>> t = hl.engines.choose(m, torch.randn(1, 32), min_run_time=0.01)
    >>> sorted(t["engine"]), int(t["chosen"].sum()), bool(t["correct"].all())
    (['csr', 'dense', 'reconstructed'], 1, True)
    >>> t.attrs["end_to_end"]["decision"] in ("kept", "fallback", "nothing to confirm")
    True
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    if not example_inputs:
        raise TypeError("choose() needs example inputs: choose(model, x) with what model(x) takes, "
                        "e.g. one batch-1 sequence")
    _check_positive(threads, "threads", integer=True)
    _check_positive(min_run_time, "min_run_time")
    _check_positive(rounds, "rounds", integer=True)
    if clock is None:
        clock = "thread" if threads == 1 else "wall"
    if clock not in ("thread", "wall"):
        raise ValueError(f"clock must be 'thread' or 'wall', got {clock!r}")
    if not isinstance(confirm, bool):
        raise TypeError(f"confirm must be True (time the whole model, fall back when the choice does not pay) "
                        f"or False (per-layer choice only), got {confirm!r}")
    modules = compressed_modules(model)
    if not modules:
        raise ValueError(f"model ({type(model).__name__}) has no compressed layer to choose an engine for; "
                         f"compress it first, e.g. hl.compress(model, 'hmf', compression=4) "
                         f"(pruned models: hl.sparsify or sparse=True)")
    training = {m: m.training for m in model.modules()}
    model.eval()
    rows = []
    before = torch.get_num_threads()
    torch.set_num_threads(int(threads))  # also for the capture and the correctness checks
    try:
        inputs = {n: calls[0] for n, calls in capture_inputs(model, modules, [example_inputs], kwargs=True).items() if calls}
        items = modules
        if progress:
            from tqdm.auto import tqdm
            items = tqdm(modules, desc="engines", leave=False)
        timed = []
        for name, mod in items:
            if name not in inputs:  # not called by this input: leave it as it is
                continue
            rows += _choose_one(name, mod, inputs[name], threads, min_run_time, rounds, clock, rtol,
                                use_cache, dense)
            timed.append((name, mod))
        df = pd.DataFrame(rows)
        verdict = _confirm(model, example_inputs, timed, df, threads, min_run_time, rounds, clock, rtol,
                           use_cache, dense, confirm)
    finally:
        torch.set_num_threads(before)
        for m, flag in training.items():
            if m.training != flag:
                m.train(flag)
    if len(df):
        final = {name: mod.chosen_engine for name, mod in timed}
        df["chosen"] = df["engine"] == df["layer"].map(final)
    if dense and len(df):
        ref = df[df["engine"] == "dense"].set_index("layer")["time_us"]
        df["speedup_vs_dense"] = df["layer"].map(ref) / df["time_us"]
    df.attrs["end_to_end"] = verdict
    return df


def _dense_twin(mod: nn.Module) -> nn.Module:
    """The plain dense layer computing what ``mod`` computes (its W_hat): the reference for speed."""
    with torch.inference_mode(False), torch.no_grad():
        if isinstance(mod, CompressedLSTM):
            return mod.to_lstm().eval()
        lin = nn.Linear(mod.in_features, mod.out_features, bias=mod.bias is not None,
                        dtype=mod.to_dense().dtype)
        lin.weight.copy_(mod.to_dense())
        if mod.bias is not None:
            lin.bias.copy_(mod.bias)
        return lin.eval()


def _switcher(mod: nn.Module, options) -> callable:
    """``prepare(engine)`` for :func:`~hmf_lab.perf.timing.race`: put ``mod`` on that engine (untimed; a layer
    already on it is left alone, so its inference cache survives)."""
    def prepare(engine):
        if engine in options and current_engine(mod) != engine:
            set_engine(mod, engine)
    return prepare


def _choose_one(name, mod, call, threads, min_run_time, rounds, clock, rtol, use_cache, dense) -> list[dict]:
    args, kwargs = call
    options = engines_of(mod)
    key = _key(mod, args, threads)
    base = {"layer": name, "module": type(mod).__name__, "threads": int(threads),
            "dtype": key[3].replace("torch.", ""), "input_shape": str(_shapes(args[0] if args else None))}
    before = current_engine(mod)
    outs, fns = {}, {}
    for e in options:
        set_engine(mod, e)
        with torch.inference_mode():
            outs[e] = mod(*args, **kwargs)

        def fn():
            with torch.inference_mode():
                return mod(*args, **kwargs)
        fns[e] = fn
    ref = outs[options[0]]
    tol = rtol * _scale(ref)
    diffs = {e: _max_diff(outs[e], ref) for e in options}
    correct = {e: diffs[e] <= tol for e in options}
    if dense:
        twin = _dense_twin(mod)

        def dense_fn():
            with torch.inference_mode():
                return twin(*args, **kwargs)
        fns["dense"] = dense_fn
        with torch.inference_mode():
            d = _max_diff(twin(*args, **kwargs), ref)
        diffs["dense"], correct["dense"] = d, d <= tol
    hit = _CACHE.get(key) if use_cache else None
    if hit is None:
        r = race(fns, rounds=int(rounds), min_run_time=min_run_time / rounds, threads=int(threads), warmup=2,
                 clock=clock, reference="dense" if dense else None, prepare=_switcher(mod, options))
        times = {row.name: (row.median, row.iqr, int(row.n), row.min) for row in r.table.itertuples()}
        ok = [e for e in options if correct[e]]
        # the fastest block (min) decides: on a shared machine load only ever adds time, so the minimum is
        # the most stable estimate of what the kernel costs (the table still reports medians)
        choice = min(ok, key=lambda e: times[e][3]) if ok else before
        _CACHE[key] = hit = {"times": times, "choice": choice}
        cached = False
    else:
        cached = True
    choice = hit["choice"] if correct.get(hit["choice"], False) else before
    set_engine(mod, choice)
    mod.chosen_engine = choice
    rows = []
    for e in list(options) + (["dense"] if dense else []):
        med, iqr, n, low = hit["times"].get(e, (float("nan"), float("nan"), 0, float("nan")))
        rows.append({**base, "engine": e, "time_us": med * 1e6, "iqr_us": iqr * 1e6, "min_us": low * 1e6, "n": n,
                     "max_abs_diff": diffs[e], "correct": bool(correct[e]), "chosen": e == choice,
                     "per_layer": e == choice, "cached": cached})
    return rows


#: the engine every layer falls back to when the per-layer choice does not pay end to end
FALLBACK = "reconstructed"
#: the whole model's output with the chosen engines may differ from the fallback's by this share of its
#: largest value (each layer passed ``rtol``; rounding of equal math adds up through a model)
END_TO_END_RTOL = 1e-3


def _swap(model: nn.Module, name: str, new: nn.Module) -> None:
    """Put ``new`` where the submodule ``name`` of ``model`` is (``name`` not empty)."""
    parent, _, child = name.rpartition(".")
    setattr(model.get_submodule(parent) if parent else model, child, new)


def _confirm(model, inputs, timed, df, threads, min_run_time, rounds, clock, rtol, use_cache, dense,
             confirm) -> dict:
    """The end-to-end check of :func:`choose`: time the whole model with the per-layer choice, with every
    layer on its fallback and (``dense``) as the dense model, interleaved; fall back when the choice does
    not pay. Leaves every layer on the engine that won and returns the verdict (``attrs["end_to_end"]``)."""
    chosen = {name: mod.chosen_engine for name, mod in timed}
    ok = {(r.layer, r.engine): bool(r.correct) for r in df.itertuples()} if len(df) else {}
    fallback = {name: FALLBACK if ok.get((name, FALLBACK), False) else chosen[name] for name, _ in timed}
    verdict = {"decision": "", "note": "", "chosen": dict(chosen), "fallback": fallback, "median_us": {},
               "speedup_vs_dense": {}, "max_abs_diff": {}, "warning": "", "cached": False}

    def done(decision, note):
        verdict.update(decision=decision, note=note)
        return verdict

    if not timed:
        return done("nothing to confirm", "no compressed layer was called by the example inputs")
    if not confirm:
        return done("not confirmed", "per-layer choice only (confirm=False): the whole model was not timed")
    if chosen == fallback:
        return done("nothing to confirm", f"every layer already runs its fallback ({FALLBACK})")
    if len(timed) == 1 and timed[0][1] is model:
        return done("single layer", "the model is the layer: its engine race was the end-to-end race")
    mods = dict(timed)
    key = ("model", type(model).__name__, tuple((name, _key(mod, (), threads)) for name, mod in timed), _shapes(inputs),
           tuple(sorted(chosen.items())), int(threads), clock)
    hit = _CACHE.get(key) if use_cache else None
    twins = {name: _dense_twin(mod) for name, mod in timed} if dense and "" not in mods else {}
    configs = {"chosen": chosen, "fallback": fallback}
    if twins:
        configs["dense"] = None

    def prepare(config):
        for name, mod in mods.items():  # the compressed layers back in place, then the config's engines
            if name:
                _swap(model, name, mod)
        if configs[config] is None:
            for name, twin in twins.items():
                _swap(model, name, twin)
            return
        for name, engine in configs[config].items():
            if current_engine(mods[name]) != engine:
                set_engine(mods[name], engine)

    def run():
        with torch.inference_mode():
            return model(*inputs)

    try:
        outs = {}
        for config in configs:
            prepare(config)
            outs[config] = run()
        tol = END_TO_END_RTOL * _scale(outs["fallback"])
        verdict["max_abs_diff"] = {c: _max_diff(o, outs["fallback"]) for c, o in outs.items()}
        if hit is None:
            r = race({c: run for c in configs}, rounds=int(rounds), min_run_time=min_run_time / rounds,
                     threads=int(threads), warmup=2, clock=clock, prepare=prepare,
                     reference="dense" if "dense" in configs else "fallback")
            hit = {"median_us": {c: m * 1e6 for c, m in r.medians.items()},
                   "speedup_vs_dense": dict(r.ratios) if "dense" in configs else {}, "warning": r.warning}
            if use_cache:
                _CACHE[key] = hit
        else:
            verdict["cached"] = True
    finally:
        for name, mod in mods.items():
            if name:
                _swap(model, name, mod)
    verdict.update(median_us=hit["median_us"], speedup_vs_dense=hit["speedup_vs_dense"], warning=hit["warning"])
    t = hit["median_us"]
    vs = (lambda c: f" ({verdict['speedup_vs_dense'][c]:.2f}x dense)" if verdict["speedup_vs_dense"] else "")
    if verdict["max_abs_diff"]["chosen"] > tol:
        keep, why = False, (f"the chosen engines' model output differs from the fallback's by "
                            f"{verdict['max_abs_diff']['chosen']:.3g} (tolerance {tol:.3g})")
    else:
        keep = t["chosen"] < t["fallback"]
        why = (f"the whole model ran {t['chosen']:.0f} us with the per-layer choice{vs('chosen')} and "
               f"{t['fallback']:.0f} us with every layer {FALLBACK}{vs('fallback')}")
    final = chosen if keep else fallback
    for name, engine in final.items():
        set_engine(mods[name], engine)
        mods[name].chosen_engine = engine
    if keep:
        return done("kept", f"kept the per-layer choice: {why}")
    changed = sorted(n for n in chosen if chosen[n] != fallback[n])
    return done("fallback", f"fell back to {FALLBACK} for {', '.join(changed)}: {why}")


def compare_models(named_models: dict, *inputs, threads: int = 1, min_run_time: float = 1.0, rounds: int = 5,
                   clock: str | None = None) -> pd.DataFrame:
    """End-to-end inference time of several models on the same ``inputs``, in interleaved rounds.

    Every round calls each model's forward (``inference_mode``, eval mode) for ``min_run_time / rounds``
    seconds; the blocks of all rounds are pooled. ``speedup`` is the first model's median over this one's
    (2.0: twice as fast as the first). :func:`hmf_lab.perf.timing.race`'s result as a frame
    (:meth:`~hmf_lab.perf.timing.Race.to_frame`, microseconds): its verdict (``unreliable`` column,
    ``df.attrs["warning"]`` in words) says when a busy machine makes the numbers untrustworthy.

    >>> import torch, hmf_lab as hl
    >>> net = torch.nn.Linear(16, 16)
    >>> df = hl.engines.compare_models({"dense": net, "lmf": hl.compress(net, "lmf", compression=2)},
    ...                                torch.randn(1, 16), min_run_time=0.02, rounds=2)
    >>> list(df["name"]), float(df["speedup"].iloc[0])
    (['dense', 'lmf'], 1.0)
    """
    if not isinstance(named_models, dict) or not named_models:
        raise TypeError(f"named_models must be a non-empty dict name -> nn.Module, got {type(named_models).__name__}")
    for name, model in named_models.items():
        if not isinstance(model, nn.Module):
            raise TypeError(f"named_models[{name!r}] must be a torch.nn.Module, got {type(model).__name__}")
    _check_positive(threads, "threads", integer=True)
    _check_positive(min_run_time, "min_run_time")
    _check_positive(rounds, "rounds", integer=True)
    clock = clock or ("thread" if threads == 1 else "wall")
    fns = {}
    for name, model in named_models.items():
        model.eval()
        fns[name] = (lambda model=model: model(*inputs))
    r = race(fns, rounds=int(rounds), min_run_time=min_run_time / rounds, threads=int(threads), clock=clock,
             inference=True)
    df = r.to_frame(unit="us").rename(columns={"ratio": "speedup"})
    df.insert(5, "unreliable", bool(r.unreliable))
    return df[["name", "median_us", "iqr_us", "min_us", "n", "unreliable", "speedup"]]


def summary(table: pd.DataFrame) -> pd.DataFrame:
    """One row per layer: the engine it runs, its time, the dense time, the speed-up over dense, the engine
    the per-layer race picked (``per_layer``: differs from ``engine`` where the end-to-end check fell
    back) and the end-to-end ``decision`` of :func:`choose`; ``attrs["end_to_end"]`` keeps the whole verdict
    (``note``: one sentence saying what was kept and why).

    >>> import torch, hmf_lab as hl
    >>> m = hl.compress(torch.nn.Sequential(torch.nn.Linear(16, 16)), "lmf", compression=2)
    >>> s = hl.engines.summary(hl.engines.choose(m, torch.randn(1, 16), min_run_time=0.01))
    >>> list(s.columns)
    ['layer', 'module', 'engine', 'time_us', 'dense_us', 'speedup_vs_dense', 'cached', 'per_layer', 'decision']
    >>> isinstance(s.attrs["end_to_end"]["note"], str)
    True
    """
    if not isinstance(table, pd.DataFrame) or not {"layer", "engine", "chosen"} <= set(table.columns):
        raise TypeError("table must be the DataFrame hl.engines.choose returns")
    chosen = table[table["chosen"]].set_index("layer")
    dense = table[table["engine"] == "dense"].set_index("layer")["time_us"]
    out = chosen[["module", "engine", "time_us", "cached"]].copy()
    out["dense_us"] = dense.reindex(out.index)
    out["speedup_vs_dense"] = out["dense_us"] / out["time_us"]
    if "per_layer" in table.columns:
        out["per_layer"] = table[table["per_layer"]].set_index("layer")["engine"].reindex(out.index)
    else:
        out["per_layer"] = out["engine"]
    verdict = table.attrs.get("end_to_end", {})
    out["decision"] = verdict.get("decision", "")
    out = out.reset_index()[["layer", "module", "engine", "time_us", "dense_us", "speedup_vs_dense", "cached",
                             "per_layer", "decision"]]
    out.attrs["end_to_end"] = verdict
    return out


def load_note() -> str:
    """One line: the 1/5/15-minute load average against the core count (how busy the machine was)."""
    try:
        l1, l5, l15 = os.getloadavg()
    except OSError:  # not available on this platform
        return "load average: not available"
    return f"load average {l1:.2f} / {l5:.2f} / {l15:.2f} (1/5/15 min) on {os.cpu_count()} cores"


def crossover_points(df: pd.DataFrame, method: str | None = None, against=None, x: str = "hidden",
                     y: str = "speedup") -> dict:
    """Where ``method`` overtakes each reference along ``x`` (e.g. hidden size): ``{reference: x or None}``.

    ``method`` defaults to HMF, ``against`` to dense and pruning (names from the method registry,
    :mod:`hmf_lab.nn.methods`; the dense reference needs no rows: its speed-up is 1).
    ``df`` is tidy (columns ``x``, ``method``, ``y``; ``y`` = speed-up over dense, so dense is 1). The
    crossing is interpolated linearly in ``log2(x)`` between the last size where ``method`` is slower and
    the first after which it stays faster; the smallest size if it is faster everywhere; None if it never is.

    >>> import pandas as pd, hmf_lab as hl
    >>> df = pd.DataFrame({"hidden": [128, 256, 512] * 2, "method": ["hmf"] * 3 + ["prune"] * 3,
    ...                    "speedup": [0.5, 0.9, 1.3, 0.4, 1.0, 1.1]})
    >>> hl.engines.crossover_points(df)
    {'dense': 304.0, 'prune': 323.0}
    """
    import math

    from hmf_lab.nn.methods import DENSE, get_method

    method = get_method("hmf").name if method is None else method
    against = (DENSE.name, get_method("prune").name) if against is None else against
    if not isinstance(df, pd.DataFrame) or not {x, y, "method"} <= set(df.columns):
        raise TypeError(f"df must be a DataFrame with columns {x!r}, 'method' and {y!r}")
    mine = df[df["method"] == method].groupby(x)[y].median()
    if mine.empty:
        raise ValueError(f"method {method!r} is not in df; methods there: {sorted(df['method'].unique())}")
    out = {}
    for ref in against:
        if ref == DENSE.name:
            theirs = pd.Series(1.0, index=mine.index)
        else:
            theirs = df[df["method"] == ref].groupby(x)[y].median().reindex(mine.index)
        gap = (mine - theirs).dropna()
        xs, gs = list(gap.index), list(gap.values)
        ahead = [g > 0 for g in gs]
        if not any(ahead) or not ahead[-1]:
            out[ref] = None
            continue
        i = len(ahead) - 1
        while i > 0 and ahead[i - 1]:
            i -= 1
        if i == 0:
            out[ref] = float(xs[0])
            continue
        a, b = math.log2(xs[i - 1]), math.log2(xs[i])
        t = gs[i - 1] / (gs[i - 1] - gs[i])  # gs[i-1] <= 0 < gs[i]
        out[ref] = float(round(2 ** (a + t * (b - a))))
    return out
