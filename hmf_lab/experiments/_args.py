"""argparse ``type=`` validators shared by the experiment subcommands (bench, reproduce, report).

A bad value gives ``hmf-lab <cmd>: error: argument --x: ...`` and exit 2, before any work starts.
"""
from __future__ import annotations

import argparse
import math
import os
import tempfile
from pathlib import Path


def _checked(text, cast, ok, expected: str):
    """``cast(text)`` when it parses and passes ``ok``, else argparse's error naming what was expected."""
    try:
        v = cast(text)
    except (TypeError, ValueError):
        raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}") from None
    if not ok(v):
        raise argparse.ArgumentTypeError(f"expected {expected}, got {v if cast is int else repr(text)}")
    return v


def positive_int(text) -> int:
    """An int >= 1 (sizes, batches, threads, rounds, sequence length)."""
    return _checked(text, int, lambda v: v >= 1, "an int >= 1")


def nonnegative_int(text) -> int:
    """An int >= 0 (step budgets)."""
    return _checked(text, int, lambda v: v >= 0, "an int >= 0")


def positive_float(text) -> float:
    """A finite number > 0 (seconds)."""
    return _checked(text, float, lambda v: math.isfinite(v) and v > 0, "a finite number > 0")


#: the largest compression the CLI accepts: beyond it no factorization of the kit's models stores a value
MAX_COMPRESSION = 1e6


def compression_arg(text) -> float:
    """A compression: a finite number > 1 and at most MAX_COMPRESSION (e.g. 2 4 8 16)."""
    return _checked(text, float, lambda v: math.isfinite(v) and 1 < v <= MAX_COMPRESSION,
                    f"a finite compression > 1 and at most {MAX_COMPRESSION:g} (dense size / compressed size), e.g. 4")


def heuristic_arg(text) -> str:
    """A registered split heuristic name (``hl.HEURISTICS``)."""
    from hmf_lab.factor.heuristics import HEURISTICS

    if text not in HEURISTICS:
        raise argparse.ArgumentTypeError(f"unknown heuristic {text!r}; valid names are {sorted(HEURISTICS)}")
    return text


def heuristic_or_none(text) -> str:
    """A registered split heuristic name, or 'none' (skip the heuristic comparison)."""
    return text if text == "none" else heuristic_arg(text)


def out_dir(text) -> Path:
    """An output folder, checked before the run: not a file, creatable, writable (it is created here)."""
    p = Path(text)
    if not str(text).strip():
        raise argparse.ArgumentTypeError("expected a folder path, got an empty string")
    if p.exists() and not p.is_dir():
        raise argparse.ArgumentTypeError(f"{str(p)!r} is a file, not a folder; pass a folder for the results")
    try:
        p.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=p, prefix=".hmf-lab-write-check-"):
            pass
    except OSError as e:
        raise argparse.ArgumentTypeError(f"cannot write results to {str(p)!r}: {e.strerror or e}; "
                                         f"pick a writable folder") from None
    if not os.access(p, os.W_OK):
        raise argparse.ArgumentTypeError(f"cannot write results to {str(p)!r} (not writable)")
    return p


class MissingExtra(ImportError, ValueError):
    """An optional part of hmf_lab is not installed (an ``ImportError``, and a ``ValueError`` so the CLI prints it
    as one line and exits 2)."""


#: the install line for the cluster extra (``--scheduler``): dask and distributed
CLUSTER_INSTALL = "pip install 'hmf_lab[cluster]'"


def cluster_client():
    """``distributed.Client`` for ``--scheduler ADDRESS``, or :class:`MissingExtra` saying how to install it.

    dask and distributed are optional (the ``cluster`` extra): only a run on a Dask cluster needs them.
    """
    try:
        import dask  # noqa: F401 -- joblib's "dask" backend needs both
        from distributed import Client
    except ImportError as e:
        missing = getattr(e, "name", None) or "dask/distributed"
        raise MissingExtra(f"--scheduler (running the cells on a Dask cluster) needs the optional packages dask and "
                           f"distributed ({missing} is not installed): {CLUSTER_INSTALL} (in a clone: "
                           f"pip install -e '.[cluster]'), or leave out --scheduler to run on this machine (--jobs N)",
                           name=missing) from None
    return Client
