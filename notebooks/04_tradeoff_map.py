# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 4 · The trade-off map: error over every (split, rank)
#
# Every HMF is a point `(k, r)`. This notebook computes the error of **all** of them for the LSTM weight, draws
# lines of equal compression through the map, extracts the **Pareto frontier** (no other structure is both smaller
# and more accurate), adds run time, and solves the question an engineer asks: *at compression c, which (k, r)?*

# %%
import torch
import matplotlib.pyplot as plt
import hmf_lab as hl

torch.manual_seed(0)
QUICK = hl.exercises.quick()  # HMF_LAB_QUICK=1 (CI) shrinks the work; a student runs the full version

# %%
W = hl.models.pretrained_weights("char_lm")["lstm.weight_hh_l0"]  # (4H, H): the LSTM's hidden-to-gates matrix
m, n = W.shape
cache = hl.HMFCache(W)  # one SVD per split, reused by everything below
step = m // 16 if QUICK else m // 64
ranks = range(1, n + 1, 8 if QUICK else 2)
df = hl.sweep(W, splits=range(0, m + 1, step), ranks=ranks, cache=cache, progress=True)
df.head()

# %% [markdown]
# ## The map
#
# Colour: relative error. White lines: iso-compression (every point on a line has the same parameter count).
# Along a white line, moving up (more dense rows) trades rank of the factorization for exact rows.

# %%
ax = hl.plots.error_map(df, compressions=(2, 4, 8, 16))

# %% [markdown]
# *Figure: the error map. Horizontal axis: rank `r`; vertical axis: split `k` (dense rows); colour: relative error
# (light = small, dark = large; the colour bar gives the values). Labelled white contour lines mark compressions
# 2x, 4x, 8x and 16x.*

# %% [markdown]
# ## The Pareto frontier, with run time
#
# For each compression: the best HMF on the grid, LMF and pruning at the same budget — with their measured
# run time (colour). Points on the black line are not beaten by any other point in both error and size.

# %%
comps = (2, 4, 8) if QUICK else (2, 3, 4, 6, 8, 12, 16)
tradeoff = hl.widgets.tradeoff_table(W, compressions=comps, cache=cache, step=step,
                                     min_run_time=0.01 if QUICK else 0.2, progress=True)
ax = hl.plots.pareto(tradeoff)
tradeoff

# %% [markdown]
# *Figure: relative error (y) against stored parameters (x) for the best HMF, LMF and pruning at each compression;
# each method has its own marker shape (legend), the colour gives the measured time (colour bar, µs), and the
# black step line is the Pareto front. The table lists the same points.*

# %% [markdown]
# Read the table before the plot: which split did the best HMF pick at each compression? On a matrix trained
# *without* the hybrid structure, keeping the top rows dense often does not beat LMF on weight error — the best
# split can be 0, which *is* LMF. The paper trains (or fine-tunes) the structure and reports accuracy gains from
# it; notebooks 6 and 7 test that on the kit's models and find **none** beyond the seed noise (fine-tuned after
# the cut, or trained from scratch at equal budget, LMF ties or wins). Which rows to keep dense is the other
# lever (notebook 5); it matters when a matrix has loud rows, which these do not. Pruning keeps the
# largest weights and often has the lowest weight error at equal size — look at its run time next to it.
#
# The HMF sweep alone has its own frontier over all `(k, r)`:

# %%
front = hl.plots.pareto_front(df)
ax = hl.plots.pareto(df.assign(method="HMF (all k, r)"), time=None)
len(front), len(df)

# %% [markdown]
# *Figure: every `(k, r)` of the sweep as a point, error against parameters, with the Pareto front as a black
# step line along the lower-left edge.*

# %% [markdown]
# ## The budget solver
#
# At a given compression, `hl.budget` lists each split with the largest rank that fits; the cached spectra give
# each one's error instantly. The best structure is the smallest error on that list.

# %%
b = hl.budget(W.shape, compression=8, step=step)
b["error"] = [cache.error(k, r) for k, r in zip(b["split"], b["rank"])]
b.nsmallest(3, "error")

# %% [markdown]
# ## Live: move the iso-line
#
# The **compression** slider picks a white line of the map; the budget solver jumps to the best split on it.
# The **split k** slider walks along the line (the rank follows: the largest that fits). The read-out gives the
# error and parameters of your point, of the best one and of LMF, and the **measured time** (batch 1, one
# thread) of HMF and LMF against dense; the plot shows the error along the line. Where on the line is the
# optimum, and does it move as you compress more?

# %%
bx = hl.widgets.BudgetExplorer(W, compressions=(2, 3, 4, 6, 8, 16), value=4, step=step, cache=cache,
                               min_run_time=0.01 if QUICK else 0.1)
bx

# %% [markdown]
# ## Exercise 1 · the best structure at 10x
#
# Find the `(split, rank)` that fits compression **10x** and has the lowest error for `W` (any split on the grid
# `range(0, m+1, step)` is fine). 10x is not on the slider: compute it.

# %%
split, rank = None, None  # your answer: two ints

# %%
hl.exercises.check_best_at_budget(W, 10, split, rank, cache=cache, step=step)

# %% jupyter={"source_hidden": true} tags=["solution"]
# Solution: evaluate every feasible pair at 10x and take the smallest error
b10 = hl.budget(W.shape, compression=10, step=step)
b10["error"] = [cache.error(k, r) for k, r in zip(b10["split"], b10["rank"])]
split, rank = (int(v) for v in b10.loc[b10["error"].idxmin(), ["split", "rank"]])
hl.exercises.check_best_at_budget(W, 10, split, rank, cache=cache, step=step)

# %% [markdown]
# ## Exercise 2 · the rank a split leaves
#
# At compression **8x**, you decide to keep **100** rows of `W` dense (not a multiple of `step`, so no table above
# lists it). What is the **largest rank** the other rows can have within the budget `floor(m*n / 8)`? Write the
# budget as an inequality in `r` and solve it; `hl.budget(W.shape, 8, step=1)` can confirm your answer
# afterwards.

# %%
rank_left = None  # your answer: an int

# %%
hl.exercises.check_rank_at_budget(W.shape, 8, 100, rank_left)

# %% jupyter={"source_hidden": true} tags=["solution"]
# Solution: k*n + r*((m-k) + n) <= floor(m*n/8)  =>  r = floor((floor(m*n/8) - k*n) / ((m-k) + n))
rank_left = (m * n // 8 - 100 * n) // ((m - 100) + n)
hl.exercises.check_rank_at_budget(W.shape, 8, 100, rank_left)

# %% [markdown]
# ## Exercise 3 · the smallest structure for an error target
#
# Turn the engineer's question around: you may lose at most **half** of `W` (relative error ≤ 0.5). Among all
# the `(k, r)` of the sweep `df`, what is the **fewest stored values** (`params`) that meets it? This is a point
# of the Pareto front: read the map to guess the compression first, then compute the exact number from `df`.

# %%
smallest = None  # your answer: an int (a value of df["params"])

# %%
hl.exercises.check_smallest_at_error(df, 0.5, smallest)

# %% jupyter={"source_hidden": true} tags=["solution"]
# Solution: keep the rows that meet the target, then the one with the fewest values; its split says whether
# dense rows pay off at this error on W.
ok = df[df["error"] <= 0.5]
smallest = int(ok["params"].min())
print(ok.loc[ok["params"].idxmin(), ["split", "rank", "params", "error"]].to_dict(),
      f"compression {m * n / smallest:.2f}x")
hl.exercises.check_smallest_at_error(df, 0.5, smallest)

# %% [markdown]
# ## Summary
#
# - One SVD per split gives the error of every rank: the whole `(k, r)` map is cheap (`hl.sweep`, `hl.HMFCache`).
# - Iso-compression lines turn the map into a menu; the Pareto frontier is the part worth ordering from.
# - With run time added, the frontier has three axes: pruning buys weight accuracy with slow sparse kernels;
#   HMF and LMF keep dense kernels. On a pretrained matrix the best post-hoc HMF can be plain LMF (split 0).
#   Choosing the dense rows well (notebook 5) helps on matrices with loud rows; training with the structure,
#   the paper's lever, gives HMF no accuracy gain over LMF on the kit's models (notebooks 6 and 7, measured
#   with seeds), so treat it as a claim to test, not a result.
# - **Next:** notebook 5 asks *which* rows to keep dense, and lets you write your own rule.
