"""Training regimes for the reproduce grid: one *cell* = one (task, regime, method, compression, seed) model.

Two regimes, the same methods and the same parameter budget per compressed matrix:

- ``"post"`` (post-training compression): the shipped, trained dense model is compressed by
  ``hl.compress`` and fine-tuned (HMF/LMF: their factors; pruning: gradual magnitude pruning from the
  dense weights, Zhu & Gupta) with the same steps, learning rate and batches for every method. The
  dense row of the table is the shipped model itself (no training: its metric has no seed spread).
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
init's rows. (Initializing U and V independently with the default rule gives ``U V`` a scale that depends
on the rank, the same problem.)

Pruning in ``scratch`` starts from the same dense init and prunes gradually during training
(:class:`~hmf_lab.reproduce.GradualPruner`, cubic schedule, final sparsity at 70% of the steps), then
``hl.sparsify`` makes it CSR.

Each cell seeds itself (``torch.manual_seed``) and runs on one torch thread, so a cell's result does not
depend on which process or worker ran it, nor on what ran before it.

>>> from hmf_lab.experiments.regimes import Cell
>>> Cell("intent", "scratch", "hmf", 8.0, seed=1).label
'hmf'
"""
from __future__ import annotations

import functools
import threading
import time
from dataclasses import asdict, dataclass, field

import torch
from torch import nn

__all__ = ["Cell", "RegimeSettings", "FULL", "QUICK", "LIVE_STEPS", "REGIMES", "settings_for", "run_cell",
           "factorized_init", "split_for_fraction", "max_split", "init_model", "get_task"]

REGIMES = ("post", "scratch")
#: methods of a cell; "hmf" may carry a split fraction (the sweep) or a heuristic
CELL_METHODS = ("dense", "hmf", "lmf", "prune")


@dataclass
class RegimeSettings:
    """Per-task work of the grid (same for every method and seed)."""

    post_steps: int            # fine-tuning steps after compression (regime post)
    scratch_steps: int         # training steps from initialization (regime scratch), dense and every method
    post_lr: float = 2e-3      # Adam learning rate of post fine-tuning (cosine-decayed)
    eval_kw: dict = field(default_factory=dict)   # evaluation size, passed to the task
    prune_end: float = 0.7     # fraction of the steps at which gradual pruning reaches its target
    prune_every: int = 10      # steps between mask updates


#: the full run, sized to finish in about 45 min with --jobs 2 on the quiet 2-core machine (see
#: hmf_lab/assets/results/README.md). The shipped dense models were trained for 2600 (lm), 800 (intent)
#: and 1800 (translation) steps. Scratch trains dense and every method alike for 400 (lm: ~1.5 epochs of
#: Tiny Shakespeare), 800 (intent: the dense model's own budget) and 400 (translation) steps; post
#: fine-tunes 100 / 200 / 100 steps after compression. lm and translation scratch are therefore shorter
#: than their dense parents' training: real training runs, but not converged ones.
FULL = {
    "lm": RegimeSettings(post_steps=100, scratch_steps=400, eval_kw={"eval_chars": 10_000}, prune_every=10),
    "intent": RegimeSettings(post_steps=200, scratch_steps=800, eval_kw={}, prune_every=20),
    "translation": RegimeSettings(post_steps=100, scratch_steps=400, eval_kw={"eval_n": 200}, prune_every=10),
}
QUICK = {
    "lm": RegimeSettings(post_steps=3, scratch_steps=4, eval_kw={"eval_chars": 1_000}, prune_every=1),
    "intent": RegimeSettings(post_steps=4, scratch_steps=6, eval_kw={"eval_n": 60}, prune_every=1),
    "translation": RegimeSettings(post_steps=2, scratch_steps=3, eval_kw={"eval_n": 8}, prune_every=1),
}


#: steps of the *live* sliders (notebook 07's regime explorer, ``hl.experiments.grid.live_regimes``) in full mode: a
#: slider move retrains three models, so each gets a few seconds on this 2-core machine instead of the
#: committed run's budget above (intent scratch: 150 of its 800 steps). Tasks not listed use FULL.
LIVE_STEPS = {
    "intent": {"post": 50, "scratch": 150},
    "lm": {"post": 10, "scratch": 30},
    "translation": {"post": 10, "scratch": 30},
}


def settings_for(task: str, quick: bool = False) -> RegimeSettings:
    """The :class:`RegimeSettings` of ``task`` (full or quick).

    >>> settings_for("intent").scratch_steps
    800
    """
    table = QUICK if quick else FULL
    if task not in table:
        raise ValueError(f"unknown task {task!r}; expected one of {sorted(table)}")
    return table[task]


@dataclass(frozen=True)
class Cell:
    """One model of the grid: what to build, train and evaluate.

    ``split_frac``: for ``"hmf"``, the dense-row split of every matrix as a fraction of its largest
    feasible split at this compression (0 = LMF's structure, 1 = the all-rows end, rank 1);
    ``None`` = the default (``hl.compress``'s balanced split). ``split_source``: a note where a fraction came
    from (e.g. "best of the intent sweep"). ``heuristic``: HMF's row choice ("top" is the paper's).
    """

    task: str
    regime: str
    method: str
    compression: float = 1.0
    seed: int = 0
    split_frac: float | None = None
    heuristic: str = "top"
    split_source: str = ""
    quick: bool = False
    steps: int | None = None   # overrides the regime's steps (RegimeSettings) when given

    @property
    def label(self) -> str:
        """The row this cell feeds in the tables: dense, hmf, hmf@0.25, hmf[greedy], hmf(best), lmf, prune."""
        if self.method != "hmf":
            return self.method
        if self.split_source:
            return "hmf(best)"
        if self.heuristic != "top":
            return f"hmf[{self.heuristic}]"
        return "hmf" if self.split_frac is None else f"hmf@{self.split_frac:g}"

    def cost(self) -> float:
        """A rough relative cost (for scheduling the longest cells first)."""
        per_step = {"lm": 0.35, "intent": 0.02, "translation": 0.23}.get(self.task, 0.1)
        st = settings_for(self.task, self.quick)
        steps = 0 if (self.method == "dense" and self.regime == "post") else self.steps if self.steps is not None else (
            st.scratch_steps if self.regime == "scratch" else st.post_steps)
        return per_step * steps + 1.0


# ------------------------------------------------------------------------------------ helpers

_LOCK = threading.Lock()   # global RNG + model build: one thread at a time (dask workers may be threads)


@functools.lru_cache(maxsize=8)
def _task_cached(task: str, eval_items: tuple):
    from hmf_lab.experiments.reproduce import load_task
    return load_task(task, **dict(eval_items))


def get_task(task: str, quick: bool = False):
    """``(task object, shipped dense model)`` for the grid's evaluation size, cached per process."""
    st = settings_for(task, quick)
    return _task_cached(task, tuple(sorted(st.eval_kw.items())))


def init_model(task_obj, shipped: nn.Module, seed: int) -> nn.Module:
    """The default-initialized dense model of ``seed``: ``task.build()`` (the shipped model's architecture)."""
    with _LOCK:
        torch.manual_seed(seed)
        model = task_obj.build()
    if [p.shape for p in model.parameters()] != [p.shape for p in shipped.parameters()]:
        raise ValueError(f"task.build() gives a different architecture than the shipped {type(shipped).__name__}; "
                         "the scratch regime needs the same one")
    return model


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
    """Largest HMF split of an (m, n) matrix that still fits ``compression`` with rank >= 1.

    >>> max_split((128, 64), 8)
    13
    """
    from hmf_lab.factor.core import budget
    df = budget(tuple(shape), compression=compression)
    df = df[df["rank"] >= 1]
    return int(df["split"].max()) if len(df) else 0


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


# ------------------------------------------------------------------------------------ one cell


def _compress(cell: Cell, source: nn.Module, layers):
    from hmf_lab.nn.compress import compress
    kw = {}
    if cell.method == "hmf":
        kw["heuristic"] = cell.heuristic
        if cell.split_frac is not None:
            kw["split"] = split_for_fraction(source, layers, cell.compression, cell.split_frac)
        if cell.heuristic in ("activation", "fisher"):
            kw.update(_calibration_kw(cell))
    return compress(source, cell.method, compression=cell.compression, layers=layers, **kw)


def _calibration_kw(cell: Cell) -> dict:
    """``X=`` for data-aware heuristics when ``hl.compress`` accepts it (model inputs of a few batches)."""
    import inspect

    from hmf_lab.nn.compress import compress
    if "X" not in inspect.signature(compress).parameters:
        raise ValueError(f"heuristic {cell.heuristic!r} needs calibration inputs, and this hl.compress takes no X=; "
                         "use a data-free heuristic such as 'greedy' or 'row_norm'")
    t, _ = get_task(cell.task, cell.quick)
    return {"X": t.sample_input()}


def run_cell(cell: Cell, progress: bool = False) -> dict:
    """Build, train and evaluate one cell; returns a flat dict (the cell's fields + results).

    >>> run_cell(Cell("intent", "nope", "hmf", 4))
    Traceback (most recent call last):
    ...
    ValueError: unknown regime 'nope'; expected one of ('post', 'scratch')
    """
    from hmf_lab.experiments.reproduce import GradualPruner, compressed_layers
    from hmf_lab.nn.compress import compress, count_params, sparsify

    if cell.regime not in REGIMES:
        raise ValueError(f"unknown regime {cell.regime!r}; expected one of {REGIMES}")
    if cell.method not in CELL_METHODS:
        raise ValueError(f"unknown method {cell.method!r}; expected one of {CELL_METHODS}")
    torch.set_num_threads(1)
    t0 = time.time()
    st = settings_for(cell.task, cell.quick)
    t, shipped = get_task(cell.task, cell.quick)
    layers = compressed_layers(shipped)
    dense_params = count_params(shipped)
    row = dict(asdict(cell), label=cell.label, metric=t.metric)
    extra = {}
    before = float("nan")
    if cell.regime == "post":
        steps, lr, seed = st.post_steps if cell.steps is None else cell.steps, st.post_lr, 1000 + cell.seed
        if cell.method == "dense":
            model, steps = shipped, 0
        elif cell.method == "prune":
            model = compress(shipped, "prune", compression=1, layers=layers)
            before = t.evaluate(compress(shipped, "prune", compression=cell.compression, layers=layers))[t.metric]
        else:
            model = _compress(cell, shipped, layers)
            before = t.evaluate(model)[t.metric]
    else:
        steps, lr, seed = st.scratch_steps if cell.steps is None else cell.steps, t.base_cfg.lr, cell.seed
        init = init_model(t, shipped, cell.seed)
        if cell.method == "dense":
            model = init
        elif cell.method == "prune":
            model = compress(init, "prune", compression=1, layers=layers)
        else:
            model = _compress(cell, init, layers)
            kept = factorized_init(init, model, layers)
            extra["init_energy_kept"] = sum(kept.values()) / max(len(kept), 1)
    callback = None
    if cell.method == "prune":
        callback = GradualPruner(model, cell.compression, steps, end=st.prune_end, every=st.prune_every)
    if steps:
        with _LOCK:
            torch.manual_seed(seed)
        losses = t.fine_tune(model, steps, lr=lr, seed=seed, progress=progress, callback=callback)
        extra["final_train_loss"] = float(sum(losses[-10:]) / len(losses[-10:]))
    if cell.method == "prune":
        if not steps:
            callback(callback.end)   # no training: one-shot magnitude pruning to the target
        model = sparsify(model)
    for mod in model.modules():
        if hasattr(mod, "clear_cache"):
            mod.clear_cache()
    model.eval()
    scores = t.evaluate(model)
    params = count_params(model)
    row.update(value=float(scores[t.metric]), before=float(before), steps=steps, lr=lr,
               params=params, dense_params=dense_params, actual_compression=dense_params / params,
               seconds=time.time() - t0, **{f"m_{k}": (float(v) if isinstance(v, (int, float)) else v) for k, v in scores.items()
                  if k != t.metric},
               **_describe_structure(model, layers), **extra)
    return row
