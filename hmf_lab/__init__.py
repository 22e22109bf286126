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

from .core import (HMFCache, HMFResult, LMFResult, PruneResult, budget, hmf, hmf_params, lmf, lmf_params,
                   prune, relative_error, sweep)
from .heuristics import HEURISTICS, register_heuristic, select_rows
from . import synthetic  # synthetic matrices with known structure
from .leaderboard import leaderboard, output_error  # split heuristics lab
from .oracle import OracleResult, oracle
from .layers import HMFLinear, LMFLinear, SparseLinear
from . import timing
from .timing import measure
from .lstm import (CompressedLSTM, GateHMFLinear, HMFLSTM, LMFLSTM, PrunedLSTM, SparseLSTM, choose_split_rank,
                   lmf_rank)
from .compress import compress, count_params, sparsify
from . import bleu, data, models, tasks  # real NLP data sets, small LSTM models and their tasks, BLEU

__version__ = "0.1.0"

#: imported on first attribute access (module __getattr__, PEP 562): name -> (module, attribute or None)
_LAZY = {
    "plots": ("hmf_lab.plots", None),               # matplotlib, seaborn
    "widgets": ("hmf_lab.widgets", None),           # ipywidgets
    "exercises": ("hmf_lab.exercises", None),       # course checks
    "explorer": ("hmf_lab.widgets", "explorer"),
    "plot_leaderboard": ("hmf_lab.plots", "plot_leaderboard"),
    "reproduce": ("hmf_lab.reproduce", None),       # experiment pipeline (pandas tables, plots on demand)
    "bench": ("hmf_lab.bench", None),
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
    "synthetic", "leaderboard", "output_error", "plot_leaderboard", "oracle", "OracleResult",
    "HMFLinear", "LMFLinear", "SparseLinear",
    "timing", "measure",
    "compress", "sparsify", "count_params", "choose_split_rank", "lmf_rank",
    "CompressedLSTM", "GateHMFLinear", "HMFLSTM", "LMFLSTM", "PrunedLSTM", "SparseLSTM",
    "bleu", "data", "models", "tasks",
    "exercises", "plots", "widgets", "explorer",
]
