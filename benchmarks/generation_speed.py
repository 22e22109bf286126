"""Batch-1 generation with a key/value cache: tokens per second of the char transformer, dense against every
method at equal stored values, with the engine chooser, beside the ideal from bytes, side by side in one run.

    python benchmarks/generation_speed.py [--sizes shipped large] [--methods hmf hmf_col lmf prune oats]
                                          [--compressions 4] [--tokens 64] [--rounds 5] [--min-run-time 2]
                                          [--out DIR]

Two models (issue 20, part 5):

- ``shipped``: the shipped ``char_tf`` (d_model 128, 4 blocks, 0.8M weights: 3.2 MB, inside the caches);
- ``large``: the same architecture at d_model 1024, 8 heads, 4 blocks, context 256 (50M weights: 201 MB, far
  outside every cache), seeded and untrained: time does not depend on the values.

Each method compresses every attention and MLP matrix and the head with ``hl.compress(model, method,
compression=c)`` (``prune``: then ``hl.sparsify`` for CSR; ``oats``: calibrated on seeded random windows,
its sparse part in CSR; on the large model HMF keeps its ``"top"`` rows/columns and OATS is a structure twin
with random values, see :func:`compressed`: time does not depend on the values). ``hl.engines.choose`` then picks each layer's engine on the one-token input a decoding
step feeds (1 thread) and confirms it end to end. One interleaved race (``hl.timing.race``: rounds of every
configuration, medians of the pooled blocks, thread CPU clock) times ``model.decode(prompt, tokens)``: a
one-character prompt, then ``tokens`` characters, argmax, through the :class:`~hmf_lab.nlp.networks.KVCache`.
``dense copy`` (an identical copy of dense) is the noise control.

Columns: ``tok_s`` tokens per second (``tokens`` / median); ``speedup`` over dense; ``ideal`` = dense bytes per
token / this model's bytes per token, where bytes per token = the weights one step streams
(``hl.timing.model_weight_bytes``: factors, dense rows or columns, CSR values with their int32 indices) plus the
keys and values the step reads (the mean cache length over the run; the same for every method, it dilutes the
ideal); ``of_ideal`` = speedup / ideal; ``engines`` the engines ``choose`` kept (count per engine) and its
decision. ``HMF_LAB_QUICK=1`` (or ``--quick``) runs a tiny version that only checks the script: its numbers mean
nothing.
"""
from __future__ import annotations

import argparse
import collections
import copy
import sys
import time
import warnings
from pathlib import Path

import pandas as pd
import torch

import hmf_lab as hl
from hmf_lab.factor._validation import quick_mode
from hmf_lab.nlp.networks import CharTransformer
from hmf_lab.nn.compress import select_modules
from hmf_lab.perf.engines import compressed_modules, load_note
from hmf_lab.perf.timing import model_weight_bytes, race

SIZES = {"shipped": None,   # the shipped checkpoint
         "large": dict(vocab_size=65, d_model=1024, heads=8, layers=4, context=256),
         "tiny": dict(vocab_size=65, d_model=32, heads=2, layers=2, context=32)}
FULL = dict(sizes=["shipped", "large"], methods=["hmf", "hmf_col", "lmf", "prune", "oats"], compressions=[4],
            tokens=64, rounds=5, min_run_time=2.0, choose_time=0.2)
QUICK = dict(sizes=["tiny"], methods=["hmf", "lmf"], compressions=[4], tokens=8, rounds=1, min_run_time=0.02,
             choose_time=0.01)


def build(size: str) -> CharTransformer:
    """The dense model of ``size``: the shipped ``char_tf`` or a seeded, untrained configuration."""
    if SIZES[size] is None:
        return hl.models.load_pretrained("char_tf").eval()
    torch.manual_seed(0)
    return CharTransformer(**SIZES[size]).eval()


def kv_bytes_per_token(model: CharTransformer, prompt: int, tokens: int) -> float:
    """Mean bytes of keys and values one decoding step reads: every block's k and v, float32, over the cache
    lengths the run goes through (``prompt`` + 1 ... ``prompt`` + ``tokens``)."""
    d, layers = model.config["d_model"], model.config["layers"]
    mean_len = prompt + (tokens + 1) / 2
    return layers * 2 * d * 4 * mean_len


def oats_twin(dense: CharTransformer, c: float, layers: list[str]) -> torch.nn.Module:
    """``dense`` with every layer in ``layers`` replaced by a :class:`SparseLowRankLinear` of OATS' structure at
    ``c`` (rank and nnz from ``oats_split``) holding seeded random values: the layers OATS would build, for
    timing only (fitting OATS runs 20 truncated SVDs per matrix: hours for the large model on this CPU, and
    time does not depend on the values)."""
    from hmf_lab.factor.baselines import oats_split
    from hmf_lab.nn.baseline_layers import SparseLowRankLinear

    twin = copy.deepcopy(dense)
    g = torch.Generator().manual_seed(1)
    for name in layers:
        lin = twin.get_submodule(name)
        m, n = lin.out_features, lin.in_features
        r, nnz = oats_split((m, n), c)
        layer = SparseLowRankLinear(n, m, r, nnz, bias=lin.bias is not None)
        keep = torch.randperm(m * n, generator=g)[:nnz]
        S = torch.zeros(m * n)
        S[keep] = torch.randn(nnz, generator=g)
        layer._load_csr(S.view(m, n).to_sparse_csr())
        with torch.no_grad():
            layer.U.copy_(torch.randn(m, r, generator=g) / n ** 0.5)
            layer.V.copy_(torch.randn(r, n, generator=g) / n ** 0.5)
            if lin.bias is not None:
                layer.bias.copy_(lin.bias)
        parent, _, attr = name.rpartition(".")
        setattr(twin.get_submodule(parent) if parent else twin, attr, layer)
    return twin.eval()


def compressed(dense: CharTransformer, method: str, c: float, calib: torch.Tensor, size: str) -> torch.nn.Module:
    """``hl.compress(dense, method, c)``; for the large untrained model, HMF's dense rows/columns by ``"top"``
    (the default ``"greedy"`` row search takes minutes per matrix there, and time does not depend on which
    rows) and OATS as :func:`oats_twin`."""
    if size == "large" and method == "oats":
        return oats_twin(dense, c, select_modules(dense))   # the layers hl.compress would touch
    kw = dict(X=[calib]) if method in ("oats", "aa_lmf", "wanda") else {}
    if size == "large" and method in ("hmf", "hmf_col"):
        kw["heuristic"] = "top"
    cm = hl.compress(dense, method, compression=c, **kw).eval()
    return hl.sparsify(cm).eval() if method == "prune" else cm


def run(sizes, methods, compressions, tokens: int, rounds: int, min_run_time: float, choose_time: float,
        log=print) -> pd.DataFrame:
    torch.set_num_threads(1)
    rows = []
    for size in sizes:
        dense = build(size)
        context = dense.config["context"]
        if tokens + 1 > context:
            raise ValueError(f"--tokens {tokens} does not fit the {size} model's context {context}: at most "
                             f"{context - 1} (past the context, decode re-encodes windows, not a cache benchmark)")
        vocab = dense.config["vocab_size"]
        g = torch.Generator().manual_seed(0)
        prompt = torch.randint(0, vocab, (1, 1), generator=g)
        calib = torch.randint(0, vocab, (4, context), generator=g)
        step = torch.randint(0, vocab, (1, 1), generator=g)
        kv = kv_bytes_per_token(dense, 1, tokens)
        # both dense entries are fresh copies, allocated like the compressed models: timing the model as
        # initialised against its copy once gave the copy 1.24x (the weights' allocation history matters)
        models = {"dense": copy.deepcopy(dense).eval(), "dense copy": copy.deepcopy(dense).eval()}
        info = {"dense": ("", "")}
        for method in methods:
            for c in compressions:
                t0 = time.time()
                cm = compressed(dense, method, c, calib, size)
                hl.engines.clear_cache()
                table = hl.engines.choose(cm, step, min_run_time=choose_time, rounds=3)
                kept = collections.Counter(m.chosen_engine for _, m in compressed_modules(cm))
                name = f"{method} {c:g}x"
                models[name] = cm
                info[name] = (", ".join(f"{e} {n}" for e, n in sorted(kept.items())),
                              table.attrs["end_to_end"]["decision"])
                log(f"[{size}] {name}: compressed and engines chosen in {time.time() - t0:.1f} s ({info[name][0]}; "
                    f"{info[name][1]})")
        fns = {name: (lambda m: (lambda ids: m.decode(ids, tokens)))(m) for name, m in models.items()}
        r = race(fns, prompt, rounds=rounds, min_run_time=min_run_time / rounds, threads=1, warmup=1,
                 clock="thread", inference=True, reference="dense")
        dense_bytes = model_weight_bytes(dense) + kv
        for name, m in models.items():
            b = model_weight_bytes(m) + kv
            med = r.median(name)
            ideal = dense_bytes / b
            rows.append({"size": size, "model": name, "d_model": dense.config["d_model"],
                         "weights_mb": model_weight_bytes(m) / 1e6, "kv_kb_per_token": kv / 1e3,
                         "tok_s": tokens / med, "speedup": r.ratios[name], "ideal": ideal,
                         "of_ideal": r.ratios[name] / ideal, "engines": info.get(name, ("", ""))[0],
                         "decision": info.get(name, ("", ""))[1], "unreliable": bool(r.unreliable),
                         "warning": r.warning})
            log(f"[{size}] {name:12s} {tokens / med:9.1f} tok/s  speedup {r.ratios[name]:.2f}x  ideal {ideal:.2f}x  "
                f"of ideal {r.ratios[name] / ideal:.2f}")
    return pd.DataFrame(rows)


def to_markdown(df: pd.DataFrame, before: str, after: str, seconds: float, cmd: str, tokens: int) -> str:
    lines = ["# Batch-1 generation with a key/value cache: char transformer, 1 thread", "",
             f"Command: `{cmd}` ({seconds:.0f} s). Before: {before}. After: {after}.",
             f"Each call: a one-character prompt, then {tokens} characters (argmax) through the cache; thread CPU "
             "clock; interleaved rounds (`hl.timing.race`), medians of the pooled blocks. `ideal` = dense bytes per "
             "token / bytes per token (weights streamed + keys and values read); `of_ideal` = speedup / ideal.", "",
             "| size | model | weights MB | tok/s | speedup | ideal | of ideal | engines (decision) |",
             "|---|---|---|---|---|---|---|---|"]
    for r in df.to_dict("records"):
        eng = f"{r['engines']} ({r['decision']})" if r["engines"] else ""
        lines.append(f"| {r['size']} (d {r['d_model']}) | {r['model']} | {r['weights_mb']:.2f} | {r['tok_s']:.1f} | "
                     f"{r['speedup']:.2f} | {r['ideal']:.2f} | {r['of_ideal']:.2f} | {eng} |")
    warned = sorted({w for w in df["warning"] if w})
    lines += [""] + [f"- {w}" for w in warned]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", nargs="+", choices=sorted(SIZES))
    p.add_argument("--methods", nargs="+", choices=["hmf", "hmf_col", "lmf", "prune", "oats", "aa_lmf", "wanda"])
    p.add_argument("--compressions", nargs="+", type=float)
    p.add_argument("--tokens", type=int, help="characters generated per call (default 64)")
    p.add_argument("--rounds", type=int)
    p.add_argument("--min-run-time", type=float, help="seconds per configuration, over all rounds")
    p.add_argument("--choose-time", type=float, help="min_run_time of hl.engines.choose")
    p.add_argument("--out", type=Path, help="folder for generation.csv and generation.md")
    p.add_argument("--quick", action="store_true", help="tiny run that only checks the script (also HMF_LAB_QUICK=1)")
    a = p.parse_args(argv)
    cfg = dict(QUICK if (a.quick or quick_mode()) else FULL)
    for key in cfg:
        if getattr(a, key) is not None:
            cfg[key] = getattr(a, key)
    warnings.filterwarnings("ignore")
    before, t0 = load_note(), time.time()
    df = run(**cfg)
    cmd = "python benchmarks/generation_speed.py " + " ".join(argv if argv is not None else sys.argv[1:])
    md = to_markdown(df, before, load_note(), time.time() - t0, cmd.strip(), cfg["tokens"])
    print(md)
    if a.out is not None:
        a.out.mkdir(parents=True, exist_ok=True)
        df.to_csv(a.out / "generation.csv", index=False)
        (a.out / "generation.md").write_text(md)
        print(f"wrote {a.out / 'generation.csv'} and {a.out / 'generation.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
