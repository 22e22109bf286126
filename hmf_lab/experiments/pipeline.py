"""The one experiment pipeline: a *cell* = one (task, regime, method, compression, seed) model, built, trained
and evaluated by :func:`run_cell`.

Every experiment of the kit runs its models through :func:`run_cell`: the reproduce grid (``hmf-lab
reproduce``, :mod:`hmf_lab.experiments.grid`), the timed single post-training run and the live sliders
(:mod:`hmf_lab.experiments.reproduce`, :func:`hmf_lab.experiments.grid.live_regimes`). What a cell costs
(steps, learning rate, evaluation size, pruning schedule) comes from its task in the task registry
(:meth:`hmf_lab.nlp.tasks.Task.settings`), so a newly registered task runs everywhere as it is.

Two regimes, the same methods and the same parameter budget per compressed matrix:

- ``"post"`` (post-training compression): the shipped, trained dense model is compressed by
  ``hl.compress`` and fine-tuned (HMF/LMF: their factors; pruning: gradual magnitude pruning from the
  dense weights, Zhu & Gupta) with the same steps, learning rate and batches for every method. The
  dense row is the shipped model itself (no training: its metric has no seed spread).
- ``"scratch"``: every method's structure is trained from initialization with the dense baseline's
  optimizer (Adam, the task's learning rate, cosine decay, gradient clip 1), batch size, data and number
  of steps. All methods of one seed start from the same default-initialized dense model
  (``torch.manual_seed(seed); task.build()``) and see the same batches.

Initialization of HMF and LMF in ``scratch`` (:func:`factorized_init`): the compressed structure is cut
out of the default-initialized dense model with ``hl.compress`` (truncated SVD per gate block; HMF keeps
its dense rows as they are) and then the low-rank part of every block is rescaled so that it has the
Frobenius norm the rows it replaces had. Why: PyTorch's default LSTM/Linear initialization (uniform in
±1/sqrt(fan)) is chosen for the *scale* of the pre-activations; a truncated SVD of an i.i.d. random
matrix keeps only a small share of its energy (all singular values are alike, rank r of min(m, n)
keeps roughly r / min(m, n) of it), so without the rescale HMF's factorized rows and LMF's whole matrix
would start several times smaller than dense -- a handicap that has nothing to do with the structure.
With the rescale every row block starts at the dense scale; the dense rows of HMF are exactly the dense
init's rows.

Pruning starts from the dense weights (post) or the same dense init (scratch) and prunes gradually
during training (:class:`GradualPruner`, cubic schedule, final sparsity at 70% of the steps), then
``hl.sparsify`` makes it CSR.

Each cell seeds itself (``torch.manual_seed``) and runs on one torch thread, so a cell's result does not
depend on which process or worker ran it, nor on what ran before it. :func:`cell_key` names a cell's
result by everything it depends on (the cell, its task's settings, the code), so a long run can resume.

How the pipeline treats each method (baseline, factorized, gradually pruned, with a dense split) comes from
its record in the method registry (:mod:`hmf_lab.nn.methods`, read through :func:`recipe`): no method
name is compared here.

>>> Cell("intent", "scratch", "hmf", 8.0, seed=1).label
'hmf'
>>> [round(cubic_sparsity(t, 0.75, 0, 10), 3) for t in (0, 5, 10, 20)]
[0.0, 0.656, 0.75, 0.75]
"""
from __future__ import annotations

import functools
import hashlib
import json
import math
import os
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from hmf_lab.nlp.tasks import TASKS, Settings, task_class

__all__ = ["Cell", "REGIMES", "recipe", "cell_methods", "run_cell", "cell_key", "code_fingerprint",
           "task_names", "task_settings", "shipped_task", "compressed_layers", "MIN_LINEAR_DIM",
           "cubic_sparsity", "GradualPruner", "factorized_init", "split_for_fraction", "max_split", "init_model",
           "is_default_heuristic", "layers_for"]

REGIMES = ("post", "scratch")

# ------------------------------------------------------------------------------------ methods


def cell_methods() -> tuple[str, ...]:
    """The methods a cell can run: the dense baseline, then every method of the registry
    (:data:`hmf_lab.nn.methods.METHODS`, so a newly registered one joins the grid and the CLI), except those
    that need calibration inputs (``Method.requires``: ``aa_lmf``, ``wanda``, ``oats``): cells do not pass X yet.

    >>> cell_methods()
    ('dense', 'hmf', 'lmf', 'prune', 'hmf_col')
    """
    from hmf_lab.nn.methods import DENSE, get_method, method_names
    return (DENSE.name, *(n for n in method_names() if not get_method(n).requires))


def recipe(method: str):
    """The method's record (:class:`hmf_lab.nn.methods.Method`; the ``DENSE`` pseudo-record for the
    baseline): the pipeline reads its flags (``is_dense``, ``fine_tune``, ``takes_heuristic``), never its name.

    >>> recipe("lmf").fine_tune, recipe("prune").fine_tune, recipe("hmf").takes_heuristic, recipe("dense").is_dense
    ('factors', 'gradual_prune', True, True)
    >>> recipe("svd")
    Traceback (most recent call last):
    ...
    ValueError: unknown method 'svd'; expected one of ('dense', 'hmf', 'lmf', 'prune', 'hmf_col')
    """
    from hmf_lab.nn.methods import lookup
    rec = lookup(method) if isinstance(method, str) else None
    if rec is None:
        raise ValueError(f"unknown method {method!r}; expected one of {cell_methods()}")
    return rec


def _gradual(rec) -> bool:
    """Trained under masks from compression 1 and made sparse at the end (gradual magnitude pruning)."""
    return rec.fine_tune == "gradual_prune"


def _trains(rec) -> bool:
    """Does the method's structure train (fine-tuning in post, training in scratch)? Baseline: yes (scratch)."""
    return rec.is_dense or rec.fine_tune != "none"


# ------------------------------------------------------------------------------------ tasks


def task_names() -> list[str]:
    """The command-line names of the registered tasks (``hmf-lab reproduce --task`` choices), sorted.

    >>> task_names()[:3]
    ['intent', 'intent_tf', 'lm']
    """
    return sorted(t.cli_name for t in TASKS.values())


def task_settings(task: str, quick: bool = False) -> Settings:
    """The :class:`~hmf_lab.nlp.tasks.Settings` of ``task`` (full or quick), from the task registry.

    >>> task_settings("intent").scratch_steps
    800
    >>> task_settings("nope")
    Traceback (most recent call last):
    ...
    ValueError: unknown task 'nope'; expected one of ['char_lm', 'char_tf', 'intent', 'intent_tf', 'lm', 'lm_tf', 'translation']
    """
    return task_class(task).settings(bool(quick))


#: one cell at a time per process: a cell seeds and draws from torch's global RNG (init, dropout, batches),
#: so two cells training at once in threads of one process (a Dask worker with threads) would interleave
#: their draws and their results would depend on timing. Processes (joblib, Dask process workers) still run
#: in parallel. Re-entrant: init_model and the seeding inside a cell take it again.
_LOCK = threading.RLock()


@functools.lru_cache(maxsize=8)
def _task_cached(cls, eval_items: tuple):
    return cls.pretrained(**dict(eval_items))


def _eval_kw(task: str, quick: bool, eval_size: int | None) -> dict:
    cls = task_class(task)
    kw = dict(cls.settings(quick).eval_kw)
    if eval_size is not None:
        kw[cls.eval_size_kw] = int(eval_size)
    return kw


def shipped_task(task: str, quick: bool = False, eval_size: int | None = None):
    """``(task object, shipped dense model)`` at the evaluation size of the task's settings (``eval_size``
    overrides it), cached per process."""
    return _task_cached(task_class(task), tuple(sorted(_eval_kw(task, quick, eval_size).items())))


# ------------------------------------------------------------------------------------ cells


@dataclass(frozen=True)
class Cell:
    """One model of an experiment: what to build, train and evaluate.

    ``split_frac``: for a method with a dense split (HMF), the split of every matrix as a fraction of its
    largest feasible split at this compression (0 = LMF's structure, 1 = the all-rows end, rank 1);
    ``None`` = the default (``hl.compress``'s balanced split). ``split_source``: a note where a fraction
    came from (e.g. "best of the intent sweep"). ``heuristic``: HMF's row choice; ``None`` (default) is the
    method registry's order-invariant default (``"greedy"``: :func:`hmf_lab.factor.heuristics.default_heuristic`),
    a name is that heuristic (``"top"``, the paper's first rows, is the old default: label ``hmf[top]``).
    ``steps`` overrides the regime's steps of the task's settings; ``eval_size`` its evaluation size.
    ``allocate``: ``"uniform"`` (every matrix at ``compression``) or ``"greedy"`` (the whole model's budget
    spread by :func:`hmf_lab.nn.compress.compress`'s solver; label suffix ``+greedy``). The greedy allocation is
    solved once on the **shipped, trained** model with the task's calibration inputs
    (:meth:`~hmf_lab.nlp.tasks.Task.calibration_input`) and applied as it is in both regimes: in ``scratch``
    the structure found on the trained weights is trained from initialization (an untrained model's weights
    say nothing about where values are worth most). With ``split_frac`` it keeps each matrix's greedy
    budget and moves its split to that fraction (the trained split sweep under greedy allocation).
    """

    task: str
    regime: str
    method: str
    compression: float = 1.0
    seed: int = 0
    split_frac: float | None = None
    heuristic: str | None = None
    split_source: str = ""
    quick: bool = False
    steps: int | None = None
    eval_size: int | None = None
    allocate: str = "uniform"

    @property
    def label(self) -> str:
        """The row this cell feeds in the tables: dense, hmf, hmf@0.25, hmf[top], hmf(best), lmf, prune;
        ``+greedy`` appended under greedy allocation (lmf+greedy, hmf@0.5+greedy)."""
        return self._base_label() + ("+greedy" if self.allocate == "greedy" and not recipe(self.method).is_dense
                                     else "")

    def _base_label(self) -> str:
        if not recipe(self.method).takes_heuristic:
            return self.method
        if self.split_source:
            return f"{self.method}(best)"
        if not is_default_heuristic(self.heuristic):
            return f"{self.method}[{self.heuristic}]"
        return self.method if self.split_frac is None else f"{self.method}@{self.split_frac:g}"

    def settings(self) -> Settings:
        """The task's settings for this cell (full or quick)."""
        return task_settings(self.task, self.quick)

    def train_steps(self) -> int:
        """Optimizer steps this cell trains (0 for the post-regime baseline: the shipped model)."""
        rec = recipe(self.method)
        if (self.regime == "post" and rec.is_dense) or not _trains(rec):
            return 0
        return self.steps if self.steps is not None else self.settings().steps(self.regime)

    def cost(self) -> float:
        """A rough relative cost (for scheduling the longest cells first)."""
        return self.settings().step_cost * self.train_steps() + 1.0


def is_default_heuristic(h) -> bool:
    """Is a cell's (or a table row's) ``heuristic`` the registry default? None, "" or NaN (a CSV's empty cell).

    >>> is_default_heuristic(None), is_default_heuristic(float("nan")), is_default_heuristic("top")
    (True, True, False)
    """
    return h is None or h == "" or (isinstance(h, float) and h != h)


def layers_for(rec, model: nn.Module) -> list[str]:
    """The layers a cell compresses: :func:`compressed_layers` that the method's layer policy touches
    (``Method.touches``; the policy is stated in :mod:`hmf_lab.nn.methods`)."""
    return [n for n in compressed_layers(model) if rec.touches(model.get_submodule(n))]


@functools.lru_cache(maxsize=1)
def code_fingerprint() -> str:
    """A short hash of the code a cell's result depends on: the package version and this pipeline's source.

    A cell logged by another version of the kit, or before this file changed, is not reused.
    """
    from importlib.metadata import PackageNotFoundError, version
    try:
        ver = version("hmf_lab")
    except PackageNotFoundError:
        ver = "unknown"
    src = Path(__file__).read_bytes()
    return hashlib.sha256(ver.encode() + b"\0" + src).hexdigest()[:12]


def cell_key(cell: Cell) -> str:
    """The identity of a cell's result: a hash of the cell, its task's settings and :func:`code_fingerprint`.

    Two runs that share a key would compute the same row (cells seed themselves), so a resumed run reuses it.

    >>> a, b = Cell("intent", "post", "hmf", 4.0), Cell("intent", "post", "hmf", 4.0, seed=1)
    >>> cell_key(a) == cell_key(Cell("intent", "post", "hmf", 4.0)), cell_key(a) == cell_key(b)
    (True, False)
    """
    payload = dict(cell=asdict(cell), settings=asdict(cell.settings()), task=task_class(cell.task).__qualname__,
                   code=code_fingerprint())
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:16]


# ------------------------------------------------------------------------------------ layers and splits

#: an nn.Linear is compressed only when both its dimensions are at least this (tiny output heads,
#: e.g. the 7-intent classifier, cannot reach 8x with any factorization and stay dense for every method)
MIN_LINEAR_DIM = 32


def compressed_layers(model: nn.Module) -> list[str]:
    """Names of the modules the experiments compress: every ``nn.LSTM``, every big enough ``nn.Linear``
    (:func:`hmf_lab.nn.compress.select_modules` with ``min_dim=MIN_LINEAR_DIM``).

    >>> net = nn.ModuleDict({"rnn": nn.LSTM(8, 64), "head": nn.Linear(64, 7), "proj": nn.Linear(64, 64)})
    >>> compressed_layers(net)
    ['rnn', 'proj']
    """
    from hmf_lab.nn.compress import select_modules

    return select_modules(model, min_dim=MIN_LINEAR_DIM)


def _matrix_shapes(model: nn.Module, layers) -> dict:
    """``{layer: {"ih": (H, n), "hh": (H, H)}}`` per LSTM (gate-block shapes), ``{layer: (m, n)}`` per Linear."""
    out = {}
    for name in layers:
        mod = model.get_submodule(name)
        if isinstance(mod, nn.LSTM):
            H = mod.hidden_size
            out[name] = {"ih": (H, mod.input_size), "hh": (H, H)}
        else:
            out[name] = tuple(mod.weight.shape)
    return out


def max_split(shape, compression: float) -> int:
    """Largest HMF split of an (m, n) matrix that fits ``compression`` with rank >= 1 (the kit's one rule,
    :func:`hmf_lab.factor.budget.max_split`); 0 where not even LMF's rank 1 fits.

    >>> max_split((128, 64), 8)
    13
    """
    from hmf_lab.factor.budget import max_split as core_max_split
    try:
        return core_max_split(tuple(shape), compression)
    except ValueError:
        return 0


def split_for_fraction(model: nn.Module, layers, compression: float, frac: float) -> dict:
    """``hl.compress``'s ``split=`` dict putting every matrix at ``frac`` of its largest feasible split.

    >>> net = nn.ModuleDict({"rnn": nn.LSTM(64, 128)})
    >>> split_for_fraction(net, ["rnn"], 8, 1.0)
    {'rnn': {'ih': 13, 'hh': 14}}
    """
    if not 0.0 <= float(frac) <= 1.0:
        raise ValueError(f"split fraction must be in [0, 1] (0 = LMF, 1 = the all-rows end), got {frac!r}")
    out = {}
    for name, shp in _matrix_shapes(model, layers).items():
        if isinstance(shp, dict):
            out[name] = {w: int(round(frac * max_split(s, compression))) for w, s in shp.items()}
        else:
            out[name] = int(round(frac * max_split(shp, compression)))
    return out


def init_model(task_obj, shipped: nn.Module, seed: int) -> nn.Module:
    """The default-initialized dense model of ``seed``: ``task.build()`` (the shipped model's architecture)."""
    with _LOCK:
        torch.manual_seed(seed)
        model = task_obj.build()
    if [p.shape for p in model.parameters()] != [p.shape for p in shipped.parameters()]:
        raise ValueError(f"task.build() gives a different architecture than the shipped {type(shipped).__name__}; "
                         "the scratch regime needs the same one")
    return model


@torch.no_grad()
def factorized_init(dense: nn.Module, compressed: nn.Module, layers) -> dict:
    """Rescale the low-rank part (U V) of every HMF/LMF block of ``compressed`` to the norm of the dense rows it replaces.

    ``dense`` is the model ``compressed`` was cut from; its LSTM gate blocks / Linear weights give the
    target norms: ``||W_block||^2 - ||D_block||^2`` (HMF's dense rows D are exact). U and V are both
    multiplied by ``sqrt(s)`` with ``s = target / ||U V||``. Returns ``{matrix: energy share kept by the
    truncated SVD before the rescale}`` (the factor the init would otherwise shrink by, squared).

    >>> import hmf_lab as hl
    >>> torch.manual_seed(0); net = nn.ModuleDict({"rnn": nn.LSTM(16, 32)})  # doctest: +ELLIPSIS
    <...>
    >>> small = hl.compress(net, "lmf", compression=4)
    >>> kept = factorized_init(net, small, ["rnn"])
    >>> W, W_hat = net["rnn"].weight_hh_l0, small["rnn"].hh[0].to_dense()
    >>> round(float(W_hat.detach().norm() / W.detach().norm()), 3), 0 < kept["rnn.hh_l0"] < 1
    (1.0, True)
    """
    kept = {}
    for name in layers:
        src, dst = dense.get_submodule(name), compressed.get_submodule(name)
        if isinstance(src, nn.LSTM):
            pairs = []
            for sfx_i, (ih, hh) in enumerate(zip(dst.ih, dst.hh)):
                layer, d = divmod(sfx_i, dst.num_directions)
                sfx = f"_l{layer}" + ("_reverse" if d else "")
                pairs += [(f"{name}.ih{sfx}", getattr(src, "weight_ih" + sfx), ih),
                          (f"{name}.hh{sfx}", getattr(src, "weight_hh" + sfx), hh)]
        elif isinstance(src, nn.MultiheadAttention):   # the q, k, v blocks and out_proj, one compressed module each
            if src._qkv_same_embed_dim:
                qkv = src.in_proj_weight.chunk(3)
            else:
                qkv = (src.q_proj_weight, src.k_proj_weight, src.v_proj_weight)
            pairs = [(f"{name}.{b}", W, getattr(dst, b)) for b, W in zip(("q_proj", "k_proj", "v_proj"), qkv)]
            pairs.append((f"{name}.out_proj", src.out_proj.weight, dst.out_proj))
        else:
            pairs = [(name, src.weight, dst)]
        for key, W, mod in pairs:
            if not hasattr(mod, "U"):
                continue
            U, V = mod.U, mod.V
            G = U.shape[0] if U.ndim == 3 else 1
            Ws = W.detach().reshape(G, -1, W.shape[-1])
            Us, Vs = (U, V) if U.ndim == 3 else (U[None], V[None])
            Ds = getattr(mod, "D", None)
            Ds = None if Ds is None else (Ds if Ds.ndim == 3 else Ds[None])
            tot_kept, tot = 0.0, 0.0
            for g in range(G):
                target2 = float(Ws[g].square().sum()) - (float(Ds[g].square().sum()) if Ds is not None else 0.0)
                cur2 = float((Us[g] @ Vs[g]).square().sum())
                tot_kept += cur2
                tot += max(target2, 0.0)
                if cur2 > 0 and target2 > 0:
                    s = (target2 / cur2) ** 0.25   # sqrt of the norm ratio, on U and on V
                    Us[g].mul_(s)
                    Vs[g].mul_(s)
            kept[key] = tot_kept / tot if tot else float("nan")
            if hasattr(mod, "clear_cache"):
                mod.clear_cache()
    return kept


def _describe_structure(model: nn.Module, layers) -> dict:
    """Split / rank of the first HMF/LMF matrix pair (for the tables): hh and ih of the first LSTM."""
    for name in layers:
        mod = model.get_submodule(name)
        if hasattr(mod, "hh") and hasattr(mod.hh[0], "rank"):
            return dict(split_ih=int(getattr(mod.ih[0], "split", 0)), rank_ih=int(mod.ih[0].rank),
                        split_hh=int(getattr(mod.hh[0], "split", 0)), rank_hh=int(mod.hh[0].rank))
    return {}


# ------------------------------------------------------------------------------------ pruning


def cubic_sparsity(step: int, final: float, begin: int, end: int, initial: float = 0.0) -> float:
    """Zhu & Gupta (2017) schedule: ``s_t = s_f + (s_i - s_f) (1 - (t - t0) / (t1 - t0))^3``, clamped.

    >>> cubic_sparsity(0, 0.9, 0, 100), cubic_sparsity(100, 0.9, 0, 100)
    (0.0, 0.9)
    """
    if end <= begin:
        return final if step >= begin else initial
    frac = min(max((step - begin) / (end - begin), 0.0), 1.0)
    return final + (initial - final) * (1.0 - frac) ** 3


def _final_keep(mod: nn.Module, mask: torch.Tensor, c: float) -> int:
    """The values a masked weight keeps at compression c: core's equal-budget rule (per gate block in an LSTM)."""
    from hmf_lab.factor.budget import prune_keep

    if isinstance(mod, nn.LSTM):
        return prune_keep((mod.hidden_size, mask.shape[1]), c, blocks=4)
    return prune_keep(tuple(mask.shape), c)


class GradualPruner:
    """Gradual magnitude pruning of a ``hl.compress(model, "prune", compression=1)`` model.

    Every masked weight (``torch.nn.utils.prune`` ``*_mask`` buffers) ends with the equal-budget count
    ``hl.compress(model, "prune", c)`` keeps (``hl.factor.budget.prune_keep``, the one budget); in between, the
    sparsity follows :func:`cubic_sparsity`. Masks only shrink: a pruned weight never comes back. Call it
    as the training-loop callback (the loop calls it once more after the last step: the exact target).

    >>> import torch, hmf_lab as hl
    >>> net = hl.compress(torch.nn.Sequential(torch.nn.Linear(8, 8)), "prune", compression=1)
    >>> p = GradualPruner(net, compression=4, steps=10)
    >>> p(10); int(net[0].weight_mask.sum()), int((net[0].weight != 0).sum())
    (16, 16)
    """

    def __init__(self, model: nn.Module, compression: float, steps: int, end: float = 0.7, every: int = 10,
                 keep: dict | None = None):
        self.model, self.c, self.steps = model, float(compression), int(steps)
        self.end = max(1, int(round(end * steps)))
        self.every = max(1, int(every))
        self.masks = []  # (module, weight name)
        self.final = {}  # (module name, weight name) -> final keep, from ``keep``
        for mname, mod in model.named_modules():
            for bname, _ in mod.named_buffers(recurse=False):
                if bname.endswith("_mask") and hasattr(mod, bname[:-5] + "_orig"):
                    self.masks.append((mod, bname[:-5]))
                    if keep is not None:
                        if (mname, bname[:-5]) not in keep:
                            raise ValueError(f"keep= has no count for {mname!r}.{bname[:-5]} (it has {sorted(keep)}); "
                                             f"give one per masked weight, keyed (module name, weight name)")
                        self.final[id(mod), bname[:-5]] = int(keep[mname, bname[:-5]])
        if not self.masks:
            raise ValueError("model has no torch.nn.utils.prune masks; build it with "
                             "hl.compress(model, 'prune', compression=1)")

    @torch.no_grad()
    def __call__(self, step: int) -> None:
        if step % self.every and step < self.end:
            return
        for mod, name in self.masks:
            mask, orig = getattr(mod, name + "_mask"), getattr(mod, name + "_orig")
            n = mask.numel()
            final = self.final.get((id(mod), name)) or _final_keep(mod, mask, self.c)
            s = cubic_sparsity(step, 1.0 - final / n, 0, self.end)
            keep = max(final, int(math.ceil(n * (1.0 - s))))
            keep = min(keep, int(mask.sum()))
            score = (orig.abs() * mask).flatten()
            new = torch.zeros(n, dtype=mask.dtype)
            new[torch.topk(score, keep, sorted=False).indices] = 1
            mask.copy_(new.view_as(mask))
            setattr(mod, name, orig * mask)   # the masked weight now (prune's hook redoes it each forward)


# ------------------------------------------------------------------------------------ one cell


def _compress(cell: Cell, source: nn.Module, layers, compression: float | None = None):
    """``hl.compress`` of ``source`` for ``cell`` (its split and row heuristic where the method takes them,
    its allocation)."""
    from hmf_lab.nn.compress import compress
    kw = {}
    c = cell.compression if compression is None else compression
    greedy = cell.allocate == "greedy" and compression is None
    if recipe(cell.method).takes_heuristic:
        kw["heuristic"] = cell.heuristic
        if cell.split_frac is not None and not greedy:
            kw["split"] = split_for_fraction(source, layers, c, cell.split_frac)
        if _needs_calibration(cell.heuristic):
            t, _ = shipped_task(cell.task, cell.quick, cell.eval_size)
            kw["X"] = t.sample_input()
    if greedy:
        kw["allocate"] = greedy_table(cell)
        kw.setdefault("heuristic", _builders_heuristic(cell))
    return compress(source, cell.method, compression=c, layers=layers, **kw)


def _check_allocate(allocate: str) -> str:
    if allocate not in ALLOCATIONS:
        raise ValueError(f"allocate must be one of {ALLOCATIONS}, got {allocate!r}")
    return allocate


#: the allocation rules a cell knows (:attr:`Cell.allocate`)
ALLOCATIONS = ("uniform", "greedy")


def greedy_table(cell: Cell):
    """The greedy allocation of ``cell``'s method at its compression: solved on the shipped (trained) model with
    the task's calibration inputs (weight error where the task has none), cached per process; with
    ``split_frac``, each matrix keeps its greedy budget and its split moves to that fraction of the largest
    split fitting it (rank: the largest that fits). The table ``hl.compress(..., allocate=table)`` applies."""
    table = _greedy_solved(cell.task, cell.method, float(cell.compression), _builders_heuristic(cell), cell.quick,
                           cell.eval_size)
    if cell.split_frac is None or not recipe(cell.method).takes_heuristic:
        return table
    if not 0.0 <= float(cell.split_frac) <= 1.0:
        raise ValueError(f"split fraction must be in [0, 1] (0 = LMF, 1 = the all-rows end), got {cell.split_frac!r}")
    out = table.copy()
    opts = []
    for r in out.to_dict("records"):
        o = {k: v for k, v in dict(r["options"]).items() if k != "rank"}
        o["split"] = int(round(float(cell.split_frac) * max_split(tuple(r["shape"]), o["compression"])))
        opts.append(o)
    out["options"] = opts
    return out


@functools.lru_cache(maxsize=32)
def _greedy_solved(task: str, method: str, c: float, heuristic, quick: bool, eval_size):
    """The solved table, cached per process and on disk (``<cache>/allocations/``, JSON, keyed by the arguments,
    the code and the shipped model's weights): solving HMF's ladder takes a minute or more, and every worker
    of a grid would otherwise solve the same table again."""
    import pandas as pd

    from hmf_lab.nlp.data import cache_dir
    from hmf_lab.nn.compress import allocation_plan

    t, shipped = shipped_task(task, quick, eval_size)
    rec = recipe(method)
    h = heuristic if heuristic is not None else rec.data_free_heuristic()
    X = t.calibration_input()
    digest = hashlib.sha256(json.dumps([task, method, c, h, code_fingerprint()]).encode())
    for x in (X or ()):   # the inputs, not the quick flag: quick mode shrinks the evaluation, not the calibration
        digest.update(x.contiguous().numpy().tobytes())
    import hmf_lab.nn.compress as _c
    import hmf_lab.nn.methods as _m
    for mod in (_c, _m):   # the solver and the ladders
        digest.update(Path(mod.__file__).read_bytes())
    for v in shipped.state_dict().values():
        digest.update(v.detach().cpu().contiguous().numpy().tobytes())
    path = cache_dir() / "allocations" / f"{digest.hexdigest()[:20]}.json"
    if path.is_file():
        try:
            data = json.loads(path.read_text())
            table = pd.DataFrame(data["rows"])
            table["shape"] = [tuple(s) for s in table["shape"]]
            table.attrs.update(data["attrs"])
            return table
        except (OSError, ValueError, KeyError):
            pass   # a torn or foreign file: solve again
    layers = layers_for(rec, shipped)
    with _LOCK:
        table = allocation_plan(shipped, method, c, allocate="greedy", X=X, layers=layers, heuristic=h)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps({"rows": table.to_dict("records"), "attrs": table.attrs}, default=_jsonable))
        os.replace(tmp, path)
    except OSError:
        pass   # a read-only cache: solve again next time
    return table


def _jsonable(v):
    if isinstance(v, (np.integer,)):
        return int(v)
    if isinstance(v, (np.floating,)):
        return float(v)
    if isinstance(v, tuple):
        return list(v)
    raise TypeError(f"not JSON serializable: {type(v).__name__}")


def _builders_heuristic(cell: Cell):
    """The heuristic a greedy cell builds with: its own, else the method's data-free default. The calibration
    inputs measure the allocation's error for every method alike; they do not switch HMF to an
    activation-aware fit (that would compare a whitened fit with plain LMF: see ``aa_lmf`` for that)."""
    return cell.heuristic if cell.heuristic is not None else recipe(cell.method).data_free_heuristic()


def _needs_calibration(heuristic: str) -> bool:
    """Does the registered heuristic need model inputs (``requires`` of ``hl.register_heuristic``)?"""
    from hmf_lab.factor.heuristics import HEURISTICS
    return bool(getattr(HEURISTICS.get(heuristic), "requires", ()))


def _source_model(cell: Cell, t, shipped: nn.Module, layers, extra: dict):
    """The model a cell trains, and its metric right after compression (post; NaN in scratch)."""
    rec = recipe(cell.method)
    src = shipped if cell.regime == "post" else init_model(t, shipped, cell.seed)
    if rec.is_dense:
        return src, float("nan")
    if _gradual(rec):   # trained under masks from the dense weights; post's "before" is the one-shot cut
        before = t.evaluate(_compress(cell, src, layers))[t.metric] if cell.regime == "post" else float("nan")
        return _compress(cell, src, layers, compression=1), before
    model = _compress(cell, src, layers)
    if cell.regime == "post":
        return model, t.evaluate(model)[t.metric]
    kept = factorized_init(src, model, layers)   # a no-op for structures without factors
    if kept:
        extra["init_energy_kept"] = sum(kept.values()) / max(len(kept), 1)
    return model, float("nan")


def run_cell(cell: Cell, progress: bool = False, keep_model: bool = False) -> dict:
    """Build, train and evaluate one cell: the one pipeline of every experiment. Returns a flat dict (the
    cell's fields + results); ``keep_model`` adds the trained model under ``"model"``.

    Steps: load the task at its settings' evaluation size; the source model (post: the shipped model
    compressed, evaluated as ``before``; scratch: the seed's default init, compressed, rescaled); train
    (post: ``post_steps`` at ``post_lr``; scratch: ``scratch_steps`` at the task's base learning rate;
    gradual pruning as the callback); make pruned models sparse; clear the factors' caches; evaluate.

    >>> run_cell(Cell("intent", "nope", "hmf", 4))
    Traceback (most recent call last):
    ...
    ValueError: unknown regime 'nope'; expected one of ('post', 'scratch')
    """
    if cell.regime not in REGIMES:
        raise ValueError(f"unknown regime {cell.regime!r}; expected one of {REGIMES}")
    _check_allocate(cell.allocate)
    rec = recipe(cell.method)
    with _LOCK:   # a cell's result must not depend on the worker it ran on, nor on what ran beside it
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            return _run(cell, rec, progress, keep_model)
        finally:
            torch.set_num_threads(threads)


def allocation_summary(table) -> dict:
    """A cell's record of its allocation: ``allocation`` (per matrix: compression, split/rank where there is
    one) and ``allocation_by`` (output or weight error).

    >>> import pandas as pd
    >>> t = pd.DataFrame([dict(layer="rnn", matrix="hh_l0", compression=16.0, split=0, rank=8)])
    >>> t.attrs["by"] = "output error"
    >>> allocation_summary(t)["allocation"]
    'rnn.hh_l0 16.0x k0/r8'
    """
    parts = []
    for r in table.to_dict("records"):
        name = f"{r['layer']}.{r['matrix']}" if r.get("matrix") else str(r["layer"])
        size = ""
        if r.get("rank") is not None and r.get("rank") == r.get("rank"):
            size = f" k{int(r['split']) if r.get('split') == r.get('split') and r.get('split') is not None else 0}" \
                   f"/r{int(r['rank'])}"
        parts.append(f"{name} {float(r['compression']):.1f}x{size}")
    return {"allocation": "; ".join(parts), "allocation_by": table.attrs.get("by", "")}


def _greedy_keep(cell: Cell) -> dict:
    """Gradual pruning under greedy allocation: the final keep count of every masked weight, from the table
    (``(module name, "weight")`` for an nn.Linear, ``(module name, "weight_ih_l0")``... for an LSTM)."""
    return {(r["layer"], f"weight_{r['matrix']}" if r["matrix"] else "weight"): int(r["stored"])
            for r in greedy_table(cell).to_dict("records")}


def _run(cell: Cell, rec, progress: bool, keep_model: bool) -> dict:
    from hmf_lab.nn.compress import count_params, sparsify

    t0 = time.time()
    st = cell.settings()
    t, shipped = shipped_task(cell.task, cell.quick, cell.eval_size)
    layers = layers_for(rec, shipped)
    dense_params = count_params(shipped)
    row = dict(asdict(cell), label=cell.label, metric=t.metric, layers=",".join(layers),
               layer_policy=rec.layer_policy)
    extra = {}
    if cell.allocate == "greedy" and not rec.is_dense:
        extra.update(allocation_summary(greedy_table(cell)))
    model, before = _source_model(cell, t, shipped, layers, extra)
    steps = cell.train_steps()
    lr, seed = (st.post_lr, 1000 + cell.seed) if cell.regime == "post" else (t.base_cfg.lr, cell.seed)
    callback = GradualPruner(model, cell.compression, steps, end=st.prune_end, every=st.prune_every,
                             keep=_greedy_keep(cell) if cell.allocate == "greedy" else None) \
        if _gradual(rec) else None
    if steps:
        with _LOCK:
            torch.manual_seed(seed)
        losses = t.fine_tune(model, steps, lr=lr, seed=seed, progress=progress, callback=callback)
        extra["final_train_loss"] = float(sum(losses[-10:]) / len(losses[-10:]))
    if _gradual(rec):
        if not steps:
            callback(callback.end)   # no training: one-shot magnitude pruning to the target
        model = sparsify(model)
    for mod in model.modules():   # drop the factors' inference caches
        if hasattr(mod, "clear_cache"):
            mod.clear_cache()
    model.eval()
    scores = t.evaluate(model)
    params = count_params(model)
    row.update(value=float(scores[t.metric]), before=float(before), steps=steps, lr=lr,
               params=params, dense_params=dense_params, actual_compression=dense_params / params,
               seconds=time.time() - t0,
               **{f"m_{k}": (float(v) if isinstance(v, (int, float)) else v) for k, v in scores.items()
                  if k != t.metric},
               **_describe_structure(model, layers), **extra)
    if keep_model:
        row["model"] = model
    return row
