"""The ``hmf-lab`` command line: ``hmf-lab bench`` (run-time table), ``hmf-lab reproduce`` (task results).

Each subcommand lives in its own module, which defines ``add_arguments(parser)`` and ``run(args)``;
this file only dispatches, importing the module when its subcommand is used.
"""
from __future__ import annotations

import argparse
import importlib
import math
import os
import sys
import tempfile
from pathlib import Path

#: subcommand -> (module, one-line help)
SUBCOMMANDS = {
    "bench": ("hmf_lab.bench", "time dense, HMF, LMF and CSR pruning side by side (layers and LSTMs)"),
    "reproduce": ("hmf_lab.reproduce", "compress real NLP models with HMF, LMF and pruning and compare"),
    "report": ("hmf_lab.report", "per-layer report of HMF, LMF and pruning on any model, and a compression plan"),
}


# --------------------------------------------------------------------------- argument types (shared by subcommands)
#
# argparse ``type=`` validators: a bad value gives ``hmf-lab <cmd>: error: argument --x: ...`` and exit 2,
# before any work starts (bench.py and reproduce.py use them in their add_arguments).


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
    from .heuristics import HEURISTICS

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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hmf-lab", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for name, (module, help_) in SUBCOMMANDS.items():
        p = sub.add_parser(name, help=help_, description=help_)
        p.set_defaults(_module=module)
        try:
            importlib.import_module(module).add_arguments(p)
        except ModuleNotFoundError as e:  # a subcommand whose module is not there yet
            if e.name != module:
                raise
            p.set_defaults(_missing=True)
    return parser


def main(argv=None) -> int:
    """Parse ``argv`` and run the subcommand; bad input ends with ``hmf-lab: error: ...`` and exit 2.

    Argument errors are argparse's (``SystemExit(2)`` with the usage); a ``ValueError``, ``TypeError`` or
    ``FileNotFoundError`` from the run (e.g. a compression a model cannot reach) is printed as one line,
    without a Python traceback, and returns 2.
    """
    if argv is not None and (isinstance(argv, (str, bytes)) or not all(isinstance(a, str) for a in argv)):
        raise TypeError(f"argv must be a list of str (e.g. ['bench', '--quick']), got {argv!r}")
    args = build_parser().parse_args(argv)
    if getattr(args, "_missing", False):
        print(f"hmf-lab {args.command}: not available in this version", file=sys.stderr)
        return 2
    try:
        return int(importlib.import_module(args._module).run(args) or 0)
    except (ValueError, TypeError, FileNotFoundError) as e:
        print(f"hmf-lab: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
