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
# - rank: `rank(W_hat) <= min(k + r, m, n)`. At the same parameter budget HMF's rank bound can reach up to
#   **(m+n)/n times LMF's** — twice for a square matrix, the paper's "doubling the rank". That maximum sits at the
#   all-rows end (`r` down to 1: plain row keeping); a balanced split (`k` close to `r`) gives about 1.3x for a
#   square matrix. Whether more rank means less error depends on the matrix: the demonstration below shows both.
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
# *Figure: to-scale blocks, each labelled with its name and hatched differently. Left: dense `W` (grey). Middle:
# HMF's `D` (the dense rows, on top), `U` (tall and thin, below it) and `V` (short and wide, beside `U`).
# Right: LMF's `U` and `V` at the same budget. Captions above give the shapes and parameter counts.*

# %% [markdown]
# ## Doubling the rank at the same budget
#
# Fix a budget, here compression 4x. `hl.budget(shape, compression)` lists every split `k` with the largest rank
# `r` that fits. LMF (`k = 0`) gets rank `r_LMF = m*n / (4 (m+n))`. At the other end, keeping `m/4` rows dense
# (and `r` near 0) spends the same budget on plain rows: a rank bound of `m/4 = (m+n)/n * r_LMF`. So **at equal
# size the rank bound of HMF can reach (m+n)/n times LMF's** — 2x for a square matrix.
#
# The highest rank does not mean the lowest error, though: at the all-rows end the factorization has almost no
# rank left. We use a square synthetic matrix built so that the trade-off is visible: a low-rank signal plus
# noise (a decaying tail) and a few **loud rows**, sorted to the top (as if training had put the important rows
# first, the paper's setting). LMF must spend a rank on each loud row; HMF can keep them dense and give the rank
# to the rest.

# %%
size = 128 if QUICK else 256
W_demo = hl.synthetic.loud_rows(size, size, n_loud=size // 16, loudness=4.0, rank=size // 8, noise=0.3, seed=0)
W_demo = W_demo[torch.argsort(W_demo.norm(dim=1), descending=True)]  # loud rows first: "top" keeps them
b = hl.budget(W_demo.shape, compression=4, step=max(1, size // 64))
cache = hl.HMFCache(W_demo)
b["error"] = [cache.error(k, r) for k, r in zip(b["split"], b["rank"])]
lmf_rank, best = int(b["rank"].iloc[0]), b.loc[b["error"].idxmin()]
top_rb = b.loc[b["rank_bound"].idxmax()]
print(f"{size}x{size} at 4x: LMF rank {lmf_rank}, error {b['error'].iloc[0]:.3f}")
print(f"highest HMF rank bound {int(top_rb['rank_bound'])} = {top_rb['rank_bound'] / lmf_rank:.2f}x LMF's "
      f"(limit (m+n)/n = {(size + size) / size:.0f}x) at split {int(top_rb['split'])}, error {top_rb['error']:.3f}")
print(f"lowest error {best['error']:.3f} at split {int(best['split'])}, rank {int(best['rank'])}: rank bound "
      f"{int(best['rank_bound'])} = {best['rank_bound'] / lmf_rank:.2f}x LMF's")
inside = 0 < best["split"] < b["split"].max()
print("the best split is", "strictly inside the range" if inside else "at an END of the range",
      f"(0 .. {int(b['split'].max())})")
fig, axs = plt.subplots(1, 2, figsize=(11, 3.5))
b.plot(x="split", y=["rank", "rank_bound"], ax=axs[0], style=["-", "--"], title="rank at compression 4x")
axs[0].axhline(lmf_rank, color="grey", lw=0.8, ls=":", label="LMF rank")
axs[0].legend()
hl.plots.budget_line(b, ax=axs[1])
fig.tight_layout()

# %% [markdown]
# *Figure: left, along the 4x budget, the factorization's rank `r` (solid, falling) and HMF's rank bound `k + r`
# (dashed, rising from LMF's rank towards (m+n)/n times it); the dotted line is LMF's rank. Right: the relative
# error along the same line, with the lowest error marked by a star.*
#
# Read the printout: the demonstration's point is the **lowest-error split**, which sits inside the range — a few
# dense rows (about as many as there are loud rows) plus a factorization. Its rank bound is above LMF's but far
# from the 2x at the all-rows end, and the all-rows end itself has the *highest* rank and a much *larger* error.
# On trained weights the spectrum and the rows decide how much of the extra rank pays off — try it with the
# sliders below.
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
# *Figure: the residual `W - W_hat` as an image (rows down, columns across; blue negative, red positive, white
# zero). The top quarter — the dense rows — is exactly zero; the error sits in the factorized rows below.*

# %% [markdown]
# ## Exercise 1 · count the parameters
#
# How many numbers does HMF store for the LSTM weight `W` with `k = 100` dense rows and rank `r = 20`?

# %%
answer = None  # your answer: an int (use m and n)

# %%
hl.exercises.check_hmf_params(*W.shape, 100, 20, answer)

# %% jupyter={"source_hidden": true} tags=["solution"]
# Solution: D is k x n, U is (m-k) x r, V is r x n
answer = 100 * W.shape[1] + 20 * (W.shape[0] - 100) + 20 * W.shape[1]
hl.exercises.check_hmf_params(*W.shape, 100, 20, answer)

# %% [markdown]
# ## Exercise 2 · write HMF in ten lines
#
# Write HMF yourself, with the paper's choice of dense rows (the top `split` rows): a function
# `my_hmf(W, split, rank)` that returns `(D, U, V)` with `D` the top `split` rows of `W` kept exactly, and `U V` the
# best rank-`rank` approximation of the remaining rows. Shapes: `D` is `split x n`, `U` is `(m - split) x rank`,
# `V` is `rank x n`. Use `torch.linalg.svd` (Eckart–Young, notebook 1). The check compares your function with
# `hl.hmf` on a few matrices, including `split = 0` (plain LMF).

# %%
def my_hmf(W, split, rank):
    # your code here: return D, U, V  (while it returns None, the check says "not answered yet")
    return None


# %%
hl.exercises.check_my_hmf(my_hmf)

# %% jupyter={"source_hidden": true} tags=["solution"]
# Solution: the top rows stay, the rest is truncated at rank r by the SVD (scale U's columns by the singular values)
def my_hmf(W, split, rank):
    D, rest = W[:split], W[split:]                               # (k, n), (m-k, n)
    U, S, Vh = torch.linalg.svd(rest, full_matrices=False)       # rest = U diag(S) Vh
    return D, U[:, :rank] * S[:rank], Vh[:rank]                  # (k, n), (m-k, r), (r, n)


hl.exercises.check_my_hmf(my_hmf)

# %% [markdown]
# ## Exercise 3 · the highest rank at a budget
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
# - At the same budget its rank bound reaches up to (m+n)/n times LMF's (2x for square matrices) at the all-rows
#   end; the lowest error sits where the matrix puts it — inside the range when a few rows are loud.
# - Which rows stay dense is a free choice on a pretrained matrix (notebook 5 explores it).
#   **Next:** does the smaller model actually run faster?
