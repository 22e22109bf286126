"""hmf_lab: learn, explore and extend Hybrid Matrix Factorization (HMF).

HMF (Thakker et al., *Rank and run-time aware compression of NLP Applications*, SustaiNLP 2020)
keeps ``split`` rows of a weight matrix dense and factorizes the rest at ``rank``.

>>> import torch, hmf_lab as hl
>>> W = torch.randn(128, 128)
>>> f = hl.hmf(W, split=16, rank=24)
>>> round(f.compression, 2), f.rank_bound
(2.1, 40)
"""
from .core import (HMFCache, HMFResult, LMFResult, PruneResult, budget, hmf, hmf_params, lmf, lmf_params,
                   prune, relative_error, sweep)
from .heuristics import HEURISTICS, register_heuristic, select_rows
from . import synthetic  # synthetic matrices with known structure
from .leaderboard import leaderboard, output_error, plot_leaderboard  # split heuristics lab
from .oracle import OracleResult, oracle
from .layers import HMFLinear, LMFLinear, SparseLinear
from . import timing
from .timing import measure
from .lstm import (CompressedLSTM, GateHMFLinear, HMFLSTM, LMFLSTM, PrunedLSTM, SparseLSTM, choose_split_rank,
                   lmf_rank)
from .compress import compress, count_params, sparsify
from . import bleu, data, models, tasks  # real NLP data sets, small LSTM models and their tasks, BLEU
from . import exercises, plots, widgets  # course: plots, sliders, exercise checks
from .widgets import explorer

__version__ = "0.1.0"

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
