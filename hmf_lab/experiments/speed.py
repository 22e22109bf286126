"""The committed speed results (``hmf_lab/assets/results/speed/``) as the few tables a lesson shows.

The benchmarks write one CSV (and a Markdown copy with the command, the clock and the machine load in its
header) per question: ``crossover`` (speed-up over dense against hidden size), ``regime`` (a hidden-1024
character LM end to end), ``never_slower`` (every shipped model with the engines ``hl.engines.choose``
picks) and ``generation`` (batch-1 generation with a key/value cache, ``benchmarks/generation_speed.py``). :func:`load_speed` reads them and leaves out any file recorded on an overloaded machine (load
average at the start above the number of cores, read from its Markdown header), saying so in
``.attrs["dropped"]``. The ``*_table`` functions turn each into the table that answers its question.

>>> tables = load_speed()
>>> sorted(tables)
['crossover', 'generation', 'never_slower', 'regime']
>>> tables.attrs["dropped"]  # doctest: +ELLIPSIS
{'report_char_lm': 'load average 21.21 at the start on 2 cores...'}
"""
from __future__ import annotations

import re
from pathlib import Path

import pandas as pd

__all__ = ["SPEED_DIR", "load_speed", "run_load", "charlm_weight_bytes", "crossover_table", "regime_table",
           "never_slower_table"]

SPEED_DIR = Path(__file__).resolve().parents[1] / "assets" / "results" / "speed"
_LOAD = re.compile(r"Before: load average ([\d.]+) / [\d.]+ / [\d.]+ \(1/5/15 min\) on (\d+) cores")


def run_load(md_path) -> tuple[float, int] | None:
    """(1-minute load average at the start, cores) from a speed result's Markdown header; None if absent.

    >>> run_load(SPEED_DIR / "regime.md")
    (0.48, 2)
    """
    m = _LOAD.search(Path(md_path).read_text())
    return (float(m.group(1)), int(m.group(2))) if m else None


def load_speed(folder=None) -> dict[str, pd.DataFrame]:
    """The speed CSVs of ``folder`` (default: the committed ones), by name, without the overloaded runs.

    A run whose Markdown header gives a load average at the start above its number of cores measured a
    machine busy with other work: its times say more about the load than about the layers, so it is left out
    and named in ``.attrs["dropped"]`` with the reason. Raises ``ValueError`` if ``folder`` is not a folder.
    """
    folder = Path(folder) if folder is not None else SPEED_DIR
    if not folder.is_dir():
        raise ValueError(f"expected a folder of speed results (crossover.csv, regime.csv, ...), got {str(folder)!r}; "
                         "run the speed benchmarks (benchmarks/speed_regime.py) or pass hmf_lab's SPEED_DIR")
    out: dict[str, pd.DataFrame] = {}
    dropped: dict[str, str] = {}
    for csv in sorted(folder.glob("*.csv")):
        md = csv.with_suffix(".md")
        load = run_load(md) if md.is_file() else None
        if load is not None and load[0] > load[1]:
            dropped[csv.stem] = (f"load average {load[0]:g} at the start on {load[1]} cores: its times measure the "
                                 "load, not the layers")
            continue
        out[csv.stem] = pd.read_csv(csv)
    result = _Tables(out)
    result.attrs = {"dropped": dropped, "folder": folder}
    return result


class _Tables(dict):
    """A dict of tables with ``attrs`` (what was left out, and why)."""

    attrs: dict


def charlm_weight_bytes(hidden: int, embed: int = 64, vocab: int = 65) -> int:
    """Bytes of the float32 weights of the benchmarks' character LM (``benchmarks/speed_regime.py``: an LSTM
    ``embed -> hidden`` and a ``hidden -> vocab`` decoder): ``4 * (4H (E + H) + V H)``, what one step reads.

    >>> charlm_weight_bytes(1024) / 2**20  # regime.md's "weights MB" of the dense model
    17.25390625
    """
    H = int(hidden)
    return 4 * (4 * H * (int(embed) + H) + int(vocab) * H)


def crossover_table(df: pd.DataFrame, method: str = "hmf") -> pd.DataFrame:
    """Per hidden size: dense's and ``method``'s weight MB, time per character and **effective bandwidth**
    (weight bytes read per step / time per step), the measured speed-up and the ideal one from bytes.

    A speed-up above the ideal means ``method`` streams its (fewer) bytes faster than dense streams its own:
    the two read from different levels of the memory hierarchy.

    >>> t = crossover_table(load_speed()["crossover"])
    >>> list(t.columns)[:4]
    ['dense MB', 'dense µs/char', 'dense GB/s', 'hmf MB']
    """
    from hmf_lab.nn.methods import DENSE

    rows = []
    for H, g in df.groupby("hidden"):
        g = g.set_index("method")
        if DENSE.name not in g.index or method not in g.index:
            continue
        nb = charlm_weight_bytes(H)
        row = {"hidden": int(H)}
        for name in (DENSE.name, method):
            b = nb / float(g.loc[name, "ideal"])
            us = float(g.loc[name, "ms_per_seq"]) / float(g.loc[name, "seq"]) * 1e3
            row |= {f"{name} MB": b / 2**20, f"{name} µs/char": us, f"{name} GB/s": b / us / 1e3}
        row |= {"speed-up": float(g.loc[method, "speedup"]), "ideal": float(g.loc[method, "ideal"])}
        row["speed-up / ideal"] = row["speed-up"] / row["ideal"]
        rows.append(row)
    return pd.DataFrame(rows).set_index("hidden")


def regime_table(df: pd.DataFrame) -> pd.DataFrame:
    """The regime run on each method's own kernels: time per sequence and per character, speed-up over dense
    and over CSR pruning at the same compression, the ideal from bytes and the share of it reached.

    >>> t = regime_table(load_speed()["regime"])
    >>> round(float(t.loc[("hmf", 4), "vs dense"]), 2)
    3.01
    """
    from hmf_lab.nn.methods import DENSE, get_method

    own = df[(df["engines"] == "own kernels") | (df["method"] == DENSE.name)].copy()
    own["µs/char"] = own["ms_per_seq"] / own["seq"] * 1e3
    prune = own[own["method"] == get_method("prune").name].set_index("compression")["speedup"]
    own["vs CSR pruning"] = [s / prune.get(c, float("nan")) if m != DENSE.name else float("nan")
                             for m, c, s in zip(own["method"], own["compression"], own["speedup"])]
    out = own.rename(columns={"ms_per_seq": "ms/sequence", "speedup": "vs dense", "weight_MB": "weights MB",
                              "of_ideal": "of ideal"})
    return out.set_index(["method", "compression"])[["weights MB", "ms/sequence", "µs/char", "vs dense", "ideal",
                                                     "of ideal", "vs CSR pruning"]]


def never_slower_table(df: pd.DataFrame) -> pd.DataFrame:
    """Per model: how many (method, compression) rows, the chosen engines' speed over dense (min, median), the
    same on the default (compressed) engines, the dense-vs-dense control range, and the share of compressed
    layers the choice ran on ``reconstructed`` (dense kernels on W_hat rebuilt in memory).

    >>> t = never_slower_table(load_speed()["never_slower"])
    >>> bool((t["reconstructed layers"] > 0.5).all())
    True
    """
    rows = []
    for model, g in df.groupby("model"):
        engines = [e.split(":")[1].strip() for s in g["engines"] for e in s.split(",")]
        rows.append({"model": model, "rows": len(g), "speed min": g["speed"].min(),
                     "speed median": g["speed"].median(), "default engines median": g["speed_default"].median(),
                     "control min": g["control"].min(), "control max": g["control"].max(),
                     "reconstructed layers": sum(e == "reconstructed" for e in engines) / len(engines)})
    return pd.DataFrame(rows).set_index("model")
