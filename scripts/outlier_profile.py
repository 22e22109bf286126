"""Per-layer outlier profile of the two shipped transformers (issue 20): `python scripts/outlier_profile.py [--quick]`.

For every ``nn.Linear`` and attention block (q, k, v, out) of ``char_tf`` (decoder-only char transformer,
Tiny Shakespeare) and ``intent_tf`` (``nn.TransformerEncoder`` SNIPS classifier), on calibration inputs drawn
from the training data (:meth:`hmf_lab.nlp.tasks.Task.calibration_input`, seed 0): the input-channel energy
``mean x_j^2`` (max / median, "raw"), each channel's share of the whitened output energy
``||(W C^(1/2))[:, j]||^2`` (max / median, and the largest channel's share of the total, "top share"; ``1/n``
when all are equal). The numbers come from :func:`hmf_lab.experiments.report.outlier_profile`. One torch thread.

Recorded output (full mode: 64 windows of 128 characters = 8,192 rows; 1,024 utterances), 2026-12-07:

(filled in below after the run)
"""
from __future__ import annotations

import argparse
import os

import torch

from hmf_lab.experiments.report import outlier_profile
from hmf_lab.experiments.tables import markdown_table
from hmf_lab.nlp.tasks import task_class

#: (task, calibration examples in full mode, in quick mode)
MODELS = (("char_tf", 64, 4), ("intent_tf", 1024, 64))


def profile(name: str, n: int, seed: int = 0):
    """The outlier table of the shipped model ``name`` on ``n`` calibration examples drawn with ``seed``."""
    task, model = task_class(name).pretrained(quick=True)
    return outlier_profile(model, task.calibration_input(n, seed=seed))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", default=os.environ.get("HMF_LAB_QUICK") == "1",
                   help="a few calibration examples (CI)")
    p.add_argument("--seed", type=int, default=0, help="calibration draw")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    for name, n_full, n_quick in MODELS:
        n = n_quick if args.quick else n_full
        df = profile(name, n, args.seed)
        print(f"\n### {name} ({n} calibration examples, seed {args.seed})\n")
        print(markdown_table(df, headers={"raw_max_median": "raw max/median",
                                          "whitened_max_median": "whitened max/median",
                                          "whitened_top_share": "whitened top share"},
                             formats={"shape": lambda s: "x".join(map(str, s))}, float_format=".3g"), end="")


if __name__ == "__main__":
    main()
