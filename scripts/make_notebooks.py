"""Write notebooks 01-04 of the course (no outputs) from the cell lists below.

    .venv/bin/python scripts/make_notebooks.py              # writes notebooks/01_..04_*.ipynb

Edit the text here, rerun, commit the notebooks. Cells starting with "# Solution" are the worked
answers a student unfolds after trying; the check cells before them fail on a wrong answer.
"""
from __future__ import annotations

import sys
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

ROOT = Path(__file__).resolve().parents[1]
REAL = 'W = hl.models.pretrained_weights("char_lm")["lstm.weight_hh_l0"]  # (4H, H): the LSTM\'s hidden-to-gates matrix'

SETUP = """import torch
import matplotlib.pyplot as plt
import hmf_lab as hl

torch.manual_seed(0)
QUICK = hl.exercises.quick()  # HMF_LAB_QUICK=1 (CI) shrinks the work; a student runs the full version"""


def md(text: str):
    return new_markdown_cell(text.strip("\n"))


def code(text: str, tags=()):
    c = new_code_cell(text.strip("\n"))
    if tags:
        c.metadata["tags"] = list(tags)
    return c


def solution(text: str):
    c = code(text, tags=("solution",))
    c.metadata["jupyter"] = {"source_hidden": True}
    return c


NB01 = [
    md("""
# 1 · Low-rank basics: SVD, Eckart–Young and the break-even rank

A layer `y = W x` with an `m x n` weight matrix stores `m*n` numbers. **Low-rank matrix factorization (LMF)**
replaces `W` by a product `U V` of an `m x r` and an `r x n` matrix: `r*(m+n)` numbers, and two thin
matrix products instead of one big one.

In this notebook you will see

1. what the **singular values** of a matrix say about how well a rank-`r` product can approximate it,
2. **Eckart–Young**: the truncated SVD is the best rank-`r` approximation, and its error is read off the
   singular values you drop,
3. the **break-even rank**: above it, LMF stores *more* numbers than `W` itself,
4. all of this on a **real trained weight**: the recurrent matrix of a character-level LSTM language model
   trained on Tiny Shakespeare.
"""),
    code(SETUP),
    md("""
## A matrix whose spectrum we choose

`hl.exercises.synthetic(m, n, spectrum)` builds `W = Q1 diag(s) Q2^T` with random orthogonal `Q1`, `Q2`,
so its singular values are exactly the `s` we asked for. Here they decay exponentially, `s_i = exp(-0.05 i)`.
"""),
    code("""
W_syn = hl.exercises.synthetic(256, 256, "exp", decay=0.05)
s = torch.linalg.svdvals(W_syn)
print("measured :", s[:5].numpy().round(4))
print("designed :", hl.exercises.singular_values(5, "exp", decay=0.05).numpy().round(4))
"""),
    md("""
The plot shows the singular values (log scale, left) and the **cumulative energy** `sum_{i<r} s_i^2 / sum_i s_i^2`
(right): the fraction of `||W||_F^2` that the first `r` directions carry.
"""),
    code("ax = hl.plots.spectrum(W_syn)"),
    md("""
## Eckart–Young: the best rank-r approximation

Keep the `r` largest singular triplets of the SVD `W = U S V^T` and drop the rest. No rank-`r` matrix is
closer to `W` in Frobenius norm, and the relative error is

$$\\frac{\\|W - W_r\\|_F}{\\|W\\|_F} = \\sqrt{\\frac{\\sum_{i \\ge r} s_i^2}{\\sum_i s_i^2}}.$$

`hl.lmf(W, rank=r)` computes exactly this factorization; `hl.relative_error` measures it.
"""),
    code("""
r = 20
f = hl.lmf(W_syn, rank=r)
print("measured error    :", round(hl.relative_error(W_syn, f), 5))
print("from the spectrum :", round(((s[r:] ** 2).sum() / (s ** 2).sum()).sqrt().item(), 5))
"""),
    md("""
## Parameters, compression and the break-even rank

LMF stores `r*(m+n)` numbers, so the **compression** is `m*n / (r*(m+n))`. It is above 1 only while
`r < m*n/(m+n)` — the **break-even rank** (`n/2` for a square matrix). Watch the error and the compression
move in opposite directions:
"""),
    code("""
m, n = W_syn.shape
for r in [8, 32, 64, 128, 160]:
    f = hl.lmf(W_syn, rank=r)
    print(f"rank {r:4d}: {f.n_params:7,d} values, compression {f.compression:5.2f}x, error {hl.relative_error(W_syn, f):.4f}")
"""),
    md("""
## A real trained weight

Now the real thing: the hidden-to-gates matrix `lstm.weight_hh_l0` of the character-level LSTM language model
shipped with the kit (`data/`, trained on Tiny Shakespeare by `scripts/train_models.py`). It has shape `(4H, H)`:
the four gates stacked. Next to it: a random Gaussian matrix of the same shape and scale.
"""),
    code(REAL + """
print(tuple(W.shape), W.dtype)
fig, axs = plt.subplots(1, 2, figsize=(11, 3.5))
hl.plots.spectrum(W, ax=axs[0]).set_title("trained LSTM weight")
hl.plots.spectrum(torch.randn_like(W) * W.std(), ax=axs[1]).set_title("random matrix, same shape and scale")
fig.tight_layout()
"""),
    md("""
Training leaves structure behind: the trained spectrum falls off faster at the top than the random one, so a
low rank keeps more of it. But the tail is long, which is why LMF alone loses accuracy quickly — the motivation
for the hybrid structure of the next notebook.

## Try it: the rank slider

Drag the slider: the relative error, the parameter count and the compression follow live. Where does the
compression cross 1x?
"""),
    code("hl.explorer(W, lmf_only=True)"),
    md("""
## Exercise 1 · the break-even rank

For the LSTM weight `W` (shape `m x n` below), what is the **largest rank** at which LMF still stores *fewer*
numbers than `W`? Replace `None` by your answer (an integer) and run the check cell.
"""),
    code("""
m, n = W.shape
answer = None  # your answer: an int
"""),
    code("hl.exercises.check_break_even_rank(m, n, answer)"),
    solution("""
# Solution (try first!): LMF stores r*(m+n) values; we need r*(m+n) < m*n
answer = (m * n - 1) // (m + n)
hl.exercises.check_break_even_rank(m, n, answer)
"""),
    md("""
## Exercise 2 · predict the error from the spectrum

Using **only** the singular values `s_real` (no `hl.lmf`), compute the relative error of the best rank-32
approximation of `W`.
"""),
    code("""
s_real = torch.linalg.svdvals(W)
predicted = None  # your answer: a float computed from s_real
"""),
    code("hl.exercises.check_eckart_young(W, 32, predicted)"),
    solution("""
# Solution: Eckart-Young, the energy of the dropped singular values
predicted = ((s_real[32:] ** 2).sum() / (s_real ** 2).sum()).sqrt().item()
hl.exercises.check_eckart_young(W, 32, predicted)
"""),
    md("""
## Summary

- The singular values of `W` tell you everything about low-rank approximation: the truncated SVD is optimal
  (Eckart–Young) and its error is the energy of the dropped values.
- LMF at rank `r` stores `r*(m+n)` numbers; it only compresses below the break-even rank `m*n/(m+n)`.
- Trained weights are more compressible than random ones, but their long tail makes LMF costly in accuracy
  at high compression. **Next:** keep a few rows dense and factorize the rest — the hybrid structure.
"""),
]

NB02 = [
    md("""
# 2 · The hybrid structure: dense rows plus a low-rank rest

**Hybrid matrix factorization (HMF)** (Thakker et al., *Rank and run-time aware compression of NLP
Applications*, SustaiNLP 2020) keeps `k` rows of `W` **dense** and factorizes the other `m-k` rows at rank `r`:

$$\\hat W = P \\begin{bmatrix} D \\\\ U V \\end{bmatrix}, \\quad D: k \\times n, \\; U: (m-k) \\times r, \\; V: r \\times n.$$

- parameters: `k*n + r*(m-k) + r*n` (LMF is the special case `k = 0`),
- rank: `rank(W_hat) <= k + r` — at the same parameter budget HMF can reach about **twice the rank of LMF**
  for a square matrix ("doubling the rank"),
- inference stays dense: one matrix product for `D`, two thin ones for `U V`.

This notebook builds the structure, shows it to scale, demonstrates the doubling of the rank, and gives you
sliders over `k` and `r` with live error, size, rank and run time.
"""),
    code(SETUP),
    code(REAL + """
m, n = W.shape
f = hl.hmf(W, split=m // 8, rank=n // 8)
print("D", tuple(f.dense.shape), " U", tuple(f.U.shape), " V", tuple(f.V.shape))
print(f"{f.n_params:,} values of {m * n:,}: compression {f.compression:.2f}x, rank bound {f.rank_bound}")
"""),
    md("""
## The blocks, to scale

Areas are parameter counts. Left: the dense `W`; middle: HMF's `D` (dense rows), `U` and `V`; right: LMF with
the same budget. HMF spends part of its budget on exact rows and still keeps a factorization of the rest.
"""),
    code("ax = hl.plots.blocks(f)"),
    md("""
## Doubling the rank at the same budget

Fix a budget, here compression 4x. `hl.budget(shape, compression)` lists every split `k` with the largest rank
`r` that fits. LMF (`k = 0`) gets rank `m*n / (4 (m+n))`; HMF's rank bound `k + r` climbs as `k` grows, up to
about twice that for a square matrix. We use a square synthetic matrix with a **flat** spectrum — every
direction equally important, so rank is all that counts.
"""),
    code("""
size = 128 if QUICK else 512
W_flat = hl.exercises.synthetic(size, size, "flat")
b = hl.budget(W_flat.shape, compression=4)
cache = hl.HMFCache(W_flat)
b = b[b["split"] % max(1, size // 32) == 0].copy()
b["error"] = [cache.error(k, r) for k, r in zip(b["split"], b["rank"])]
lmf_rank = int(b["rank"].iloc[0])
print(f"LMF rank {lmf_rank}; highest HMF rank bound {b['rank_bound'].max()} "
      f"({b['rank_bound'].max() / lmf_rank:.2f}x) at split {int(b.loc[b['rank_bound'].idxmax(), 'split'])}")
fig, axs = plt.subplots(1, 2, figsize=(11, 3.5))
b.plot(x="split", y=["rank", "rank_bound"], ax=axs[0], title="rank at compression 4x")
b.plot(x="split", y="error", ax=axs[1], title="relative error at compression 4x", legend=False)
fig.tight_layout()
"""),
    md("""
On the flat spectrum, more rank means less error, so HMF beats LMF at equal size. On trained weights the
spectrum decides how much of the extra rank pays off — try it with the sliders below.

## The explorer

- **split k** and **rank r**: the structure; the picture redraws to scale.
- **lock compression**: moving one slider moves the other so the parameter budget stays fixed.
- **dense rows**: which rows stay dense (`"top"` is the paper's choice; the others are heuristics from
  `hl.HEURISTICS`, notebook 5).
- the read-outs: relative error, parameters, compression, rank bound, and LMF's error at the same budget;
  below, a moment after you stop, the **timed inference** of the dense, HMF, LMF and pruned layers.
"""),
    code("""
ex = hl.explorer(W, split_step=m // (8 if QUICK else 32))
ex
"""),
    md("""
## Where the error sits

The residual `W - W_hat`: the dense rows (top, with `"top"`) are exact, the factorized rows carry all the error.
"""),
    code("ax = hl.plots.residual(W, hl.hmf(W, split=m // 4, rank=n // 8))"),
    md("""
## Exercise 1 · count the parameters

How many numbers does HMF store for the LSTM weight `W` with `k = 100` dense rows and rank `r = 20`?
"""),
    code("""
answer = None  # your answer: an int (use m and n)
"""),
    code("hl.exercises.check_hmf_params(m, n, 100, 20, answer)"),
    solution("""
# Solution: D is k x n, U is (m-k) x r, V is r x n
answer = 100 * n + 20 * (m - 100) + 20 * n
hl.exercises.check_hmf_params(m, n, 100, 20, answer)
"""),
    md("""
## Exercise 2 · the highest rank at a budget

For a square `512 x 512` matrix at compression 4x, what is the highest rank bound `k + r` any HMF reaches?
(`hl.budget` helps.)
"""),
    code("""
max_rank = None  # your answer: an int
"""),
    code("hl.exercises.check_max_rank((512, 512), 4, max_rank)"),
    solution("""
# Solution
max_rank = int(hl.budget((512, 512), compression=4)["rank_bound"].max())
hl.exercises.check_max_rank((512, 512), 4, max_rank)
"""),
    md("""
## Summary

- HMF = `k` exact rows + a rank-`r` factorization of the rest; `k*n + r*(m-k) + r*n` values; rank up to `k + r`.
- At the same budget its rank bound reaches about twice LMF's for square matrices; how much error that saves
  depends on the spectrum.
- Which rows stay dense is a free choice on a pretrained matrix (notebook 5 explores it).
  **Next:** does the smaller model actually run faster?
"""),
]

NB03 = [
    md("""
# 3 · Run time: why HMF is fast and pruning is not

Fewer parameters do not automatically mean faster inference. This notebook times four layers **at the same
parameter budget**:

| layer | what it computes | kernel |
|---|---|---|
| dense | `x @ W.T` | one GEMM |
| HMF | `x @ D.T` and `(x @ V.T) @ U.T` | dense GEMMs |
| LMF | `(x @ V.T) @ U.T` | two thin GEMMs |
| pruned | `W_sparse @ x.T` | sparse CSR kernel |

and asks why sparse kernels lose, and where the memory bandwidth sets the limit. Timings use
`torch.utils.benchmark` through `hl.measure` / `hl.timing.compare` (median of many runs, warm-up first).
They depend on your machine and on what else runs on it.
"""),
    code(SETUP),
    code("""
size = 256 if QUICK else 1024
W_big = hl.exercises.synthetic(size, size, "power", decay=0.5)  # a square matrix large enough to time
""" + REAL + """
print("timing matrix", tuple(W_big.shape), "| LSTM weight", tuple(W.shape))
"""),
    md("""
## Four layers, one budget

`hl.widgets.layers_at_budget(W, split, rank)` builds the dense layer, the HMF layer, an LMF layer with the
largest rank inside the same budget and a pruned layer keeping as many values. We pick the split of
`hl.budget` closest to `m/4` at compression 4x.
"""),
    code("""
b = hl.budget(W_big.shape, compression=4)
k, r = (int(v) for v in b.iloc[(b["split"] - size // 4).abs().argmin()][["split", "rank"]])
layers = hl.widgets.layers_at_budget(W_big, split=k, rank=r)
x = torch.randn(1, size)
with torch.inference_mode():
    df = hl.timing.compare(layers, x, min_run_time=0.01 if QUICK else 0.3)
print(f"HMF k={k}, r={r}")
ax = hl.plots.timing_bars(df)
"""),
    md("""
## Why sparse kernels lose: bytes, not flops

At batch size 1 every weight is read once and used once: the layer is **memory-bound**, its time is roughly
the bytes it reads divided by the memory bandwidth. CSR stores a column index next to every value and a row
pointer per row, and its access to `x` is irregular. HMF and LMF read only their dense blocks.
"""),
    code("""
import pandas as pd

p = hl.prune(W_big, compression=4)
nbytes = {"dense": W_big.numel() * 4, "HMF": layers["HMF"].n_params * 4, "LMF": layers["LMF"].n_params * 4,
          "pruned (CSR)": p.n_bytes}
table = df.set_index("name")[["median"]].assign(bytes=pd.Series(nbytes))
table["GB/s"] = table["bytes"] / table["median"] / 1e9
table
"""),
    md("""
Compare the effective bandwidth (bytes per second) of the layers: a layer that reaches the dense layer's
bandwidth turns fewer bytes directly into less time. CSR reads more bytes per stored value (an index next to
every value) *and* reads them irregularly. HMF and LMF run several small dense kernels instead of one; on small
matrices the fixed cost per kernel call (microseconds each) can eat the saving, so check the numbers on your
machine and matrix size rather than trusting the parameter count.

## Batch size and threads

With a larger batch each weight is reused across inputs, the layer becomes compute-bound, and the
picture changes. Move the sliders (each change re-times the four layers; it takes a moment).
"""),
    code("""
rt = hl.widgets.RunTimeExplorer(W_big, min_run_time=0.01 if QUICK else 0.2)
rt
"""),
    code("""
batches = [1, 16] if QUICK else [1, 4, 16, 64, 256]
rows = []
for B in batches:
    with torch.inference_mode():
        t = hl.timing.compare(layers, torch.randn(B, size), min_run_time=0.01 if QUICK else 0.2)
    rows.append(t.set_index("name")["ratio"].rename(B))
speedup = pd.DataFrame(rows).rename_axis("batch")
ax = speedup.plot(marker="o", logx=True, title="speed-up over dense at 4x, by batch size")
speedup
"""),
    md("""
## Exercise · the size of a CSR matrix

The pruned layer above keeps `p.nnz` values of the `m x n` matrix. Torch's CSR stores each value (float32,
4 bytes), a column index per value and `m + 1` row pointers (int64, 8 bytes each). How many bytes is that?
"""),
    code("""
m = W_big.shape[0]
csr_bytes = None  # your answer: an int, from m and p.nnz
"""),
    code("hl.exercises.check_csr_bytes(m, p.nnz, csr_bytes)"),
    solution("""
# Solution: 4 B per value + 8 B per column index + 8 B per row pointer
csr_bytes = p.nnz * 4 + p.nnz * 8 + (m + 1) * 8
hl.exercises.check_csr_bytes(m, p.nnz, csr_bytes)
"""),
    md("""
## Summary

- At equal parameter budget, HMF and LMF run dense GEMMs: on matrices large enough for memory traffic to
  dominate, fewer bytes mean less time; on small ones the per-call overhead of several kernels shows.
- Pruning stores indices next to values and runs an irregular sparse kernel: at 4x it often does not beat the
  dense layer at all (the paper reports HMF > 2.32x faster than pruning at similar accuracy).
- At small batch every layer is memory-bound; bytes moved predict time, up to the fixed cost per call.
  Always measure (`hl.measure`, `hl.timing.compare`). **Next:** put error, size and time on one map and pick
  the best structure for a budget.
"""),
]

NB04 = [
    md("""
# 4 · The trade-off map: error over every (split, rank)

Every HMF is a point `(k, r)`. This notebook computes the error of **all** of them for the LSTM weight, draws
lines of equal compression through the map, extracts the **Pareto frontier** (no other structure is both smaller
and more accurate), adds run time, and solves the question an engineer asks: *at compression c, which (k, r)?*
"""),
    code(SETUP),
    code(REAL + """
m, n = W.shape
cache = hl.HMFCache(W)  # one SVD per split, reused by everything below
step = m // 16 if QUICK else m // 64
ranks = range(1, n + 1, 8 if QUICK else 2)
df = hl.sweep(W, splits=range(0, m + 1, step), ranks=ranks, cache=cache, progress=True)
df.head()
"""),
    md("""
## The map

Colour: relative error. White lines: iso-compression (every point on a line has the same parameter count).
Along a white line, moving up (more dense rows) trades rank of the factorization for exact rows.
"""),
    code("ax = hl.plots.error_map(df, compressions=(2, 4, 8, 16))"),
    md("""
## The Pareto frontier, with run time

For each compression: the best HMF on the grid, LMF and pruning at the same budget — with their measured
run time (colour). Points on the black line are not beaten by any other point in both error and size.
"""),
    code("""
comps = (2, 4, 8) if QUICK else (2, 3, 4, 6, 8, 12, 16)
tradeoff = hl.widgets.tradeoff_table(W, compressions=comps, cache=cache, step=step,
                                     min_run_time=0.01 if QUICK else 0.2, progress=True)
ax = hl.plots.pareto(tradeoff)
tradeoff
"""),
    md("""
Read the table before the plot: which split did the best HMF pick at each compression? On a matrix trained
*without* the hybrid structure, keeping the top rows dense often does not beat LMF on weight error — the best
split can be 0, which *is* LMF. The paper trains (or fine-tunes) the structure, which is where HMF's accuracy
gains come from (notebook 6); which rows to keep dense is the other lever (notebook 5). Pruning keeps the
largest weights and often has the lowest weight error at equal size — look at its run time next to it.

The HMF sweep alone has its own frontier over all `(k, r)`:
"""),
    code("""
front = hl.plots.pareto_front(df)
ax = hl.plots.pareto(df.assign(method="HMF (all k, r)"), time=None)
len(front), len(df)
"""),
    md("""
## The budget solver

At a given compression, `hl.budget` lists each split with the largest rank that fits; the cached spectra give
each one's error instantly. The best structure is the smallest error on that list.
"""),
    code("""
b = hl.budget(W.shape, compression=8, step=step)
b["error"] = [cache.error(k, r) for k, r in zip(b["split"], b["rank"])]
b.nsmallest(3, "error")
"""),
    md("""
## Exercise · the best structure at 12x

Find the `(split, rank)` that fits compression **12x** and has the lowest error for `W` (any split on the grid
`range(0, m+1, step)` is fine).
"""),
    code("""
split, rank = None, None  # your answer: two ints
"""),
    code("hl.exercises.check_best_at_budget(W, 12, split, rank, cache=cache, step=step)"),
    solution("""
# Solution: evaluate every feasible pair at 12x and take the smallest error
b12 = hl.budget(W.shape, compression=12, step=step)
b12["error"] = [cache.error(k, r) for k, r in zip(b12["split"], b12["rank"])]
split, rank = (int(v) for v in b12.loc[b12["error"].idxmin(), ["split", "rank"]])
hl.exercises.check_best_at_budget(W, 12, split, rank, cache=cache, step=step)
"""),
    md("""
## Summary

- One SVD per split gives the error of every rank: the whole `(k, r)` map is cheap (`hl.sweep`, `hl.HMFCache`).
- Iso-compression lines turn the map into a menu; the Pareto frontier is the part worth ordering from.
- With run time added, the frontier has three axes: pruning buys weight accuracy with slow sparse kernels;
  HMF and LMF keep dense kernels. On a pretrained matrix the best post-hoc HMF can be plain LMF (split 0);
  training with the structure (notebook 6) and choosing the dense rows well (notebook 5) move it.
- **Next:** notebook 5 asks *which* rows to keep dense, and lets you write your own rule.
"""),
]

NOTEBOOKS = {
    "01_low_rank_basics.ipynb": NB01,
    "02_hybrid_structure.ipynb": NB02,
    "03_run_time.ipynb": NB03,
    "04_tradeoff_map.ipynb": NB04,
}


def build(cells) -> nbformat.NotebookNode:
    for i, c in enumerate(cells):
        c.id = f"cell-{i:02d}"  # stable ids: regenerating does not churn the diff
    nb = new_notebook(cells=cells)
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}
    nb.metadata["language_info"] = {"name": "python"}
    return nb


def main(out: Path = ROOT / "notebooks") -> None:
    out.mkdir(parents=True, exist_ok=True)
    for name, cells in NOTEBOOKS.items():
        nb = build(cells)
        nbformat.validate(nb)
        nbformat.write(nb, out / name)
        print("wrote", out / name)


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "notebooks")
