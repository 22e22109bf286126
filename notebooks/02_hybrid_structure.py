# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 2 · The hybrid structure: dense rows plus a low-rank rest
#
# **Hybrid matrix factorization (HMF)** (Thakker et al., *Rank and run-time aware compression of NLP
# Applications*, SustaiNLP 2020) keeps `k` rows of `W` **dense** and factorizes the other `m-k` rows at rank `r`:
#
# $$\hat W = P \begin{bmatrix} D \\ U V \end{bmatrix}, \quad D: k \times n, \; U: (m-k) \times r, \; V: r \times n.$$
#
# - parameters: `k*n + r*(m-k) + r*n` (LMF is the special case `k = 0`),
# - rank: `rank(W_hat) <= k + r` — at the same parameter budget HMF can reach about **twice the rank of LMF**
#   for a square matrix ("doubling the rank"),
# - inference stays dense: one matrix product for `D`, two thin ones for `U V`.
#
# This notebook builds the structure, shows it to scale, demonstrates the doubling of the rank, and gives you
# sliders over `k` and `r` with live error, size, rank and run time.

# %%
import torch
import matplotlib.pyplot as plt
import hmf_lab as hl

torch.manual_seed(0)
QUICK = hl.exercises.quick()  # HMF_LAB_QUICK=1 (CI) shrinks the work; a student runs the full version

# %%
W = hl.models.pretrained_weights("char_lm")["lstm.weight_hh_l0"]  # (4H, H): the LSTM's hidden-to-gates matrix
m, n = W.shape
f = hl.hmf(W, split=m // 8, rank=n // 8)
print("D", tuple(f.dense.shape), " U", tuple(f.U.shape), " V", tuple(f.V.shape))
print(f"{f.n_params:,} values of {m * n:,}: compression {f.compression:.2f}x, rank bound {f.rank_bound}")

# %% [markdown]
# ## The blocks, to scale
#
# Areas are parameter counts. Left: the dense `W`; middle: HMF's `D` (dense rows), `U` and `V`; right: LMF with
# the same budget. HMF spends part of its budget on exact rows and still keeps a factorization of the rest.

# %%
ax = hl.plots.blocks(f)

# %% [markdown]
# ## Doubling the rank at the same budget
#
# Fix a budget, here compression 4x. `hl.budget(shape, compression)` lists every split `k` with the largest rank
# `r` that fits. LMF (`k = 0`) gets rank `m*n / (4 (m+n))`; HMF's rank bound `k + r` climbs as `k` grows, up to
# about twice that for a square matrix. We use a square synthetic matrix with a **flat** spectrum — every
# direction equally important, so rank is all that counts.

# %%
size = 128 if QUICK else 512
W_flat = hl.synthetic.with_spectrum(size, size, "flat")
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

# %% [markdown]
# On the flat spectrum, more rank means less error, so HMF beats LMF at equal size. On trained weights the
# spectrum decides how much of the extra rank pays off — try it with the sliders below.
#
# ## The explorer
#
# - **split k** and **rank r**: the structure; the picture redraws to scale.
# - **lock compression**: moving one slider moves the other so the parameter budget stays fixed.
# - **dense rows**: which rows stay dense (`"top"` is the paper's choice; the others are heuristics from
#   `hl.HEURISTICS`, notebook 5).
# - the read-outs: relative error, parameters, compression, rank bound, and LMF's error at the same budget;
#   below, a moment after you stop, the **timed inference** of the dense, HMF, LMF and pruned layers.

# %%
ex = hl.explorer(W, split_step=m // (8 if QUICK else 32))
ex

# %% [markdown]
# ## Where the error sits
#
# The residual `W - W_hat`: the dense rows (top, with `"top"`) are exact, the factorized rows carry all the error.

# %%
ax = hl.plots.residual(W, hl.hmf(W, split=m // 4, rank=n // 8))

# %% [markdown]
# ## Exercise 1 · count the parameters
#
# How many numbers does HMF store for the LSTM weight `W` with `k = 100` dense rows and rank `r = 20`?

# %%
answer = None  # your answer: an int (use m and n)

# %%
hl.exercises.check_hmf_params(m, n, 100, 20, answer)

# %% jupyter={"source_hidden": true} tags=["solution"]
# Solution: D is k x n, U is (m-k) x r, V is r x n
answer = 100 * n + 20 * (m - 100) + 20 * n
hl.exercises.check_hmf_params(m, n, 100, 20, answer)

# %% [markdown]
# ## Exercise 2 · the highest rank at a budget
#
# For a square `512 x 512` matrix at compression 4x, what is the highest rank bound `k + r` any HMF reaches?
# (`hl.budget` helps.)

# %%
max_rank = None  # your answer: an int

# %%
hl.exercises.check_max_rank((512, 512), 4, max_rank)

# %% jupyter={"source_hidden": true} tags=["solution"]
# Solution
max_rank = int(hl.budget((512, 512), compression=4)["rank_bound"].max())
hl.exercises.check_max_rank((512, 512), 4, max_rank)

# %% [markdown]
# ## Summary
#
# - HMF = `k` exact rows + a rank-`r` factorization of the rest; `k*n + r*(m-k) + r*n` values; rank up to `k + r`.
# - At the same budget its rank bound reaches about twice LMF's for square matrices; how much error that saves
#   depends on the spectrum.
# - Which rows stay dense is a free choice on a pretrained matrix (notebook 5 explores it).
#   **Next:** does the smaller model actually run faster?
