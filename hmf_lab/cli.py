"""The ``hmf-lab`` command line: ``hmf-lab bench`` (run-time table), ``hmf-lab reproduce`` (task results).

Each subcommand lives in its own module, which defines ``add_arguments(parser)`` and ``run(args)``;
this file only dispatches, importing the module when its subcommand is used.
"""
from __future__ import annotations

import argparse
import importlib
import sys

#: subcommand -> (module, one-line help)
SUBCOMMANDS = {
    "bench": ("hmf_lab.bench", "time dense, HMF, LMF and CSR pruning side by side (layers and LSTMs)"),
    "reproduce": ("hmf_lab.reproduce", "compress real NLP models with HMF, LMF and pruning and compare"),
    "report": ("hmf_lab.report", "per-layer report of HMF, LMF and pruning on any model, and a compression plan"),
}


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
    args = build_parser().parse_args(argv)
    if getattr(args, "_missing", False):
        print(f"hmf-lab {args.command}: not available in this version", file=sys.stderr)
        return 2
    return int(importlib.import_module(args._module).run(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
