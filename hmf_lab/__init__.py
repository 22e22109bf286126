"""hmf_lab: learn, explore and extend Hybrid Matrix Factorization (HMF).

HMF (Thakker et al., *Rank and run-time aware compression of NLP Applications*, SustaiNLP 2020)
keeps ``split`` rows of a weight matrix dense and factorizes the rest at ``rank``.

``import hmf_lab`` loads the math, layers and models only; the course modules (``plots``,
``widgets``, ``exercises``, ``explorer``, ``plot_leaderboard``) and the experiment pipeline
(``reproduce``, ``bench``) are imported on first use, so the command line and scripts never pay
for matplotlib or ipywidgets. See ARCHITECTURE.md for the module map.

>>> import torch, hmf_lab as hl
>>> W = torch.randn(128, 128)
>>> f = hl.hmf(W, split=16, rank=24)
>>> round(f.compression, 2), f.rank_bound
(2.1, 40)
"""
import importlib as _importlib

from hmf_lab.factor.budget import (budget, choose_col_split_rank, choose_split_rank, col_params, hmf_params,
                                   lmf_params, lmf_rank)
from hmf_lab.factor.core import HMFColResult, HMFResult, LMFResult, PruneResult, hmf, hmf_cols, lmf, prune, relative_error
from hmf_lab.factor.sweep import HMFCache, sweep
from hmf_lab.factor.heuristics import (COL_HEURISTICS, HEURISTICS, register_col_heuristic, register_heuristic,
                                       select_cols, select_rows)
from hmf_lab.factor import heuristics, synthetic  # the heuristic registry; matrices with known structure
from hmf_lab.factor.oracle import OracleResult, oracle
from hmf_lab.nn.attention import CompressedMultiheadAttention
from hmf_lab.nn.layers import HMFColLinear, HMFLinear, LMFLinear, SparseLinear
from hmf_lab.nn.lstm import (CompressedLSTM, GateColLinear, GateHMFLinear, HMFColLSTM, HMFLSTM, LMFLSTM, PrunedLSTM,
                             SparseLSTM)
from hmf_lab.nn.compress import compress, count_params, sparsify
from hmf_lab.nn.methods import METHODS, Method, get_method, register_method  # the method registry
from hmf_lab.perf import engines, timing  # the one timing harness; the fastest correct engine per layer
from hmf_lab.perf.timing import measure
from hmf_lab import nlp as models  # real NLP data sets, small LSTM models and their tasks
from hmf_lab.nlp import bleu, data, tasks
from hmf_lab.experiments.leaderboard import leaderboard, output_error  # split heuristics lab
from hmf_lab.experiments.report import Report, apply_plan as report_apply_plan, report  # per-layer report, plan

__version__ = "0.1.0"

#: imported on first attribute access (module __getattr__, PEP 562): name -> (module, attribute or None)
_LAZY = {
    "plots": ("hmf_lab.course.plots", None),               # matplotlib, seaborn
    "widgets": ("hmf_lab.course.widgets", None),           # ipywidgets
    "exercises": ("hmf_lab.course.exercises", None),       # course checks
    "explorer": ("hmf_lab.course.widgets", "explorer"),
    "plot_leaderboard": ("hmf_lab.course.plots", "plot_leaderboard"),
    "course": ("hmf_lab.course", None),
    "experiments": ("hmf_lab.experiments", None),
    "reproduce": ("hmf_lab.experiments.reproduce", None),  # experiment pipeline (tables, results)
    "bench": ("hmf_lab.experiments.bench", None),
    "grid": ("hmf_lab.experiments.grid", None),
}


def __getattr__(name):
    try:
        module, attr = _LAZY[name]
    except KeyError:
        raise AttributeError(f"module 'hmf_lab' has no attribute {name!r}") from None
    value = _importlib.import_module(module)
    if attr is not None:
        value = getattr(value, attr)
    globals()[name] = value  # later lookups skip __getattr__
    return value


def __dir__():
    return sorted(set(globals()) | set(_LAZY))


__all__ = [
    "hmf", "lmf", "prune", "relative_error", "budget", "sweep", "hmf_params", "lmf_params",
    "HMFResult", "LMFResult", "PruneResult", "HMFCache",
    "HEURISTICS", "register_heuristic", "select_rows",
    "hmf_cols", "HMFColResult", "col_params", "choose_col_split_rank", "COL_HEURISTICS", "register_col_heuristic",
    "select_cols", "HMFColLinear", "HMFColLSTM", "GateColLinear",
    "synthetic", "leaderboard", "output_error", "plot_leaderboard", "oracle", "OracleResult",
    "HMFLinear", "LMFLinear", "SparseLinear",
    "timing", "measure",
    "compress", "sparsify", "count_params", "Method", "METHODS", "register_method", "get_method", "engines", "report", "Report", "report_apply_plan", "choose_split_rank", "lmf_rank",
    "CompressedLSTM", "GateHMFLinear", "HMFLSTM", "LMFLSTM", "PrunedLSTM", "SparseLSTM",
    "CompressedMultiheadAttention",
    "bleu", "data", "models", "tasks", "heuristics",
    "exercises", "plots", "widgets", "explorer",
]
