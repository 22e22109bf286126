"""The ``hmf-lab`` command line: ``hmf-lab bench`` (run-time table), ``hmf-lab reproduce`` (task results).

Each subcommand lives in its own module, which defines ``add_arguments(parser)`` and ``run(args)``;
this file only dispatches, importing the module when its subcommand is used.
"""
from __future__ import annotations

import argparse
import importlib
import sys

#: subcommand -> (module, one-line help); the module defines ``add_arguments(parser)`` and ``run(args)``
SUBCOMMANDS = {
    "bench": ("hmf_lab.experiments.bench", "time dense, HMF, LMF and CSR pruning side by side (layers and LSTMs)"),
    "reproduce": ("hmf_lab.experiments.reproduce", "compress real NLP models with HMF, LMF and pruning and compare"),
    "report": ("hmf_lab.experiments.report", "per-layer report of HMF, LMF and pruning on any model, and a compression plan"),
}

#: subcommand -> the course-layer function that draws its figures into ``args.out`` after a successful run
#: (experiments write tables; drawing is the course layer's, and only this top layer sees both)
FIGURES = {"reproduce": ("hmf_lab.course.figures", "grid_figures_in")}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hmf-lab", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for name, (module, help_) in SUBCOMMANDS.items():
        p = sub.add_parser(name, help=help_, description=help_)
        p.set_defaults(_module=module)
        importlib.import_module(module).add_arguments(p)
    return parser


def main(argv=None) -> int:
    """Parse ``argv`` and run the subcommand; bad input ends with ``hmf-lab: error: ...`` and exit 2.

    Argument errors are argparse's (``SystemExit(2)`` with the usage); a ``ValueError``, ``TypeError`` or
    ``FileNotFoundError`` from the run (e.g. a compression a model cannot reach) is printed as one line,
    without a Python traceback, and returns 2. Ctrl-C ends with one line and 130 (``reproduce`` first
    says what it kept and how to resume).
    """
    if argv is not None and (isinstance(argv, (str, bytes)) or not all(isinstance(a, str) for a in argv)):
        raise TypeError(f"argv must be a list of str (e.g. ['bench', '--quick']), got {argv!r}")
    args = build_parser().parse_args(argv)
    try:
        code = int(importlib.import_module(args._module).run(args) or 0)
        if code == 0 and args.command in FIGURES:
            module, fn = FIGURES[args.command]
            files = getattr(importlib.import_module(module), fn)(args.out)
            print("figures: " + (", ".join(str(f) for f in files) or "none"))
        return code
    except (ValueError, TypeError, FileNotFoundError) as e:
        print(f"hmf-lab: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:   # a subcommand that keeps partial work says so itself and returns 130
        print(f"hmf-lab {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
