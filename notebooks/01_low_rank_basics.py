# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 1 · Low-rank basics: SVD, Eckart–Young and the break-even rank
#
# A layer `y = W x` with an `m x n` weight matrix stores `m*n` numbers. **Low-rank matrix factorization (LMF)**
# replaces `W` by a product `U V` of an `m x r` and an `r x n` matrix: `r*(m+n)` numbers, and two thin
# matrix products instead of one big one.
#
# In this notebook you will see
#
# 1. what the **singular values** of a matrix say about how well a rank-`r` product can approximate it,
# 2. **Eckart–Young**: the truncated SVD is the best rank-`r` approximation, and its error is read off the
#    singular values you drop,
# 3. the **break-even rank**: above it, LMF stores *more* numbers than `W` itself,
# 4. all of this on a **real trained weight**: the recurrent matrix of a character-level LSTM language model
#    trained on Tiny Shakespeare.

# %%
import torch
import matplotlib.pyplot as plt
import hmf_lab as hl

torch.manual_seed(0)
QUICK = hl.exercises.quick()  # HMF_LAB_QUICK=1 (CI) shrinks the work; a student runs the full version

# %% [markdown]
# ## A matrix whose spectrum we choose
#
# `hl.synthetic.with_spectrum(m, n, spectrum)` builds `W = Q1 diag(s) Q2^T` with random orthogonal `Q1`, `Q2`,
# so its singular values are exactly the `s` we asked for. Here they decay exponentially, `s_i = exp(-0.05 i)`.

# %%
W_syn = hl.synthetic.with_spectrum(256, 256, "exp", decay=0.05)
s = torch.linalg.svdvals(W_syn)
print("measured :", s[:5].numpy().round(4))
print("designed :", hl.exercises.singular_values(5, "exp", decay=0.05).numpy().round(4))

# %% [markdown]
# The plot shows the singular values (log scale, left) and the **cumulative energy** `sum_{i<r} s_i^2 / sum_i s_i^2`
# (right): the fraction of `||W||_F^2` that the first `r` directions carry.

# %%
ax = hl.plots.spectrum(W_syn)

# %% [markdown]
# *Figure: singular values of the synthetic 256 x 256 matrix on a log scale (solid line, left axis) fall on a
# straight line — exponential decay; the dashed line (right axis) is the cumulative energy, rising from 0 to 1.*

# %% [markdown]
# ## Eckart–Young: the best rank-r approximation
#
# Keep the `r` largest singular triplets of the SVD `W = U S V^T` and drop the rest. No rank-`r` matrix is
# closer to `W` in Frobenius norm, and the relative error is
#
# $$\frac{\|W - W_r\|_F}{\|W\|_F} = \sqrt{\frac{\sum_{i \ge r} s_i^2}{\sum_i s_i^2}}.$$
#
# **The indices here are 0-based, as in Python**: `s_0 ≥ s_1 ≥ ...` is `s[0], s[1], ...`, the kept values are
# `s[:r]` and the dropped ones `s[r:]`, which is the sum over `i ≥ r` above. In the 1-based notation of most
# textbooks (`s_1` the largest) the same sum runs over `i ≥ r + 1`; summing from `s_r` there drops one value
# too few and gives a slightly smaller error.
#
# `hl.lmf(W, rank=r)` computes exactly this factorization; `hl.relative_error` measures it.

# %%
r = 20
f = hl.lmf(W_syn, rank=r)
print("measured error    :", round(hl.relative_error(W_syn, f), 5))
print("from the spectrum :", round(((s[r:] ** 2).sum() / (s ** 2).sum()).sqrt().item(), 5))

# %% [markdown]
# ## Parameters, compression and the break-even rank
#
# LMF stores `r*(m+n)` numbers, so the **compression** is `m*n / (r*(m+n))`. It is above 1 only while
# `r < m*n/(m+n)` — the **break-even rank** (`n/2` for a square matrix). Watch the error and the compression
# move in opposite directions:

# %%
for r in [8, 32, 64, 128, 160]:
    f = hl.lmf(W_syn, rank=r)
    print(f"rank {r:4d}: {f.n_params:7,d} values, compression {f.compression:5.2f}x, error {hl.relative_error(W_syn, f):.4f}")

# %% [markdown]
# ## A real trained weight
#
# Now the real thing: the hidden-to-gates matrix `lstm.weight_hh_l0` of the character-level LSTM language model
# shipped with the kit (package data in `hmf_lab/assets/char_lm.pt`, loaded by `hl.models.load_pretrained`;
# trained on Tiny Shakespeare by `scripts/train_models.py`). It has shape `(4H, H)`:
# the four gates stacked. Next to it: a random Gaussian matrix of the same shape and scale.

# %%
W = hl.models.pretrained_weights("char_lm")["lstm.weight_hh_l0"]  # (4H, H): the LSTM's hidden-to-gates matrix
print(tuple(W.shape), W.dtype)
fig, axs = plt.subplots(1, 2, figsize=(11, 3.5))
hl.plots.spectrum(W, ax=axs[0]).set_title("trained LSTM weight")
W_random = torch.randn(W.shape, generator=torch.Generator().manual_seed(0)) * W.std()
hl.plots.spectrum(W_random, ax=axs[1]).set_title("random matrix, same shape and scale")
fig.tight_layout()

# %% [markdown]
# *Figure: spectra of the trained LSTM weight (left) and of a random matrix of the same shape and scale (right).
# Solid: singular values (log scale); dashed: cumulative energy. The trained curve starts higher and drops
# faster; both have a long tail.*
#
# How much faster? `hl.exercises.spectrum_summary` measures it (notebook 5 quotes the same numbers):

# %%
import pandas as pd

pd.DataFrame({"trained W": hl.exercises.spectrum_summary(W),
              "random, same shape": hl.exercises.spectrum_summary(W_random)}).round(3)

# %% [markdown]
# Read the table: the top 10% of the trained matrix's singular directions carry a much larger share of its energy
# (`energy@0.1`) than for the random matrix, and its top singular value stands far above the median one
# (`s1/s_median`). So training leaves structure behind, and a low rank keeps more of the trained matrix than of
# a random one. But there is no sharp knee: LMF at rank `n/8` still leaves a large relative error
# (`lmf_error@1/8`), and half of the directions are needed for most of the energy. The rows are about equally
# loud (`row_norm max/median` is small): no few rows stand out. Keep these numbers in mind — they explain why LMF
# alone loses accuracy quickly at high compression (the motivation for the hybrid structure of notebook 2), and
# why the choice of dense rows matters little on this matrix (notebook 5).
#
# ## Try it: the rank slider
#
# Drag the slider: the relative error, the parameter count, the compression and the measured time of the
# factorized layer against the dense one follow. Where does the compression cross 1x — and is the factorized
# layer already faster there?

# %%
hl.explorer(W, lmf_only=True, min_run_time=0.02 if QUICK else 0.1)

# %% [markdown]
# ## Exercise 1 · the break-even rank
#
# A feed-forward layer of BERT-base has a `768 x 3072` weight (`m = 768` outputs, `n = 3072` inputs). What is the
# **largest rank** at which LMF of it still stores *fewer* numbers than the matrix itself? Replace `None` by your
# answer (an integer) and run the check cell. (The slider above works on a different shape, on purpose.)
#
# How the checks work: the check cell prints **PASS**, or **FAIL** with a hint, or a reminder while the answer
# is still `None` — it never stops *Run All*. In the student build (`make lab`) there are no solution cells;
# in the instructor's notebooks (`make lab-instructor`) a collapsed cell after each check holds a worked
# solution. After running one, `hl.exercises.reset("break_even_rank")` (or re-running the question cell) sets
# `answer` back to `None` so you can try again.

# %%
answer = None  # your answer: an int

# %%
hl.exercises.check_break_even_rank(768, 3072, answer)

# %% jupyter={"source_hidden": true} tags=["solution"]
# Solution (try first!): LMF stores r*(m+n) values; we need r*(m+n) < m*n
answer = (768 * 3072 - 1) // (768 + 3072)
hl.exercises.check_break_even_rank(768, 3072, answer)

# %% [markdown]
# ## Exercise 2 · predict the error from the spectrum
#
# Using **only** the singular values `s_real` (no `hl.lmf`), compute the relative error of the best rank-48
# approximation of `W`. `s_real` is a Python tensor, so it is 0-based: `s_real[0]` is the largest value.

# %%
s_real = torch.linalg.svdvals(W)
predicted = None  # your answer: a float computed from s_real

# %%
hl.exercises.check_eckart_young(W, 48, predicted)

# %% jupyter={"source_hidden": true} tags=["solution"]
# Solution: Eckart-Young, the energy of the dropped singular values
predicted = ((s_real[48:] ** 2).sum() / (s_real ** 2).sum()).sqrt().item()
hl.exercises.check_eckart_young(W, 48, predicted)

# %% [markdown]
# ## Exercise 3 · the smallest rank for an error target
#
# You may lose at most **30%** of `W` (relative error ≤ 0.3). What is the **smallest rank** whose best
# approximation gets there? Compute it from `s_real` alone — no `hl.lmf`, no slider: the error at every rank
# follows from the singular values you drop (Exercise 2), and `torch.cumsum` gives all of them at once. Then
# compare the rank with the break-even rank of `W`'s shape: does this error target still compress?

# %%
rank_needed = None  # your answer: an int

# %%
hl.exercises.check_rank_for_error(W, 0.3, rank_needed)

# %% jupyter={"source_hidden": true} tags=["solution"]
# Solution: the squared error at rank r is the dropped energy 1 - cumsum(s^2)[r-1] / sum(s^2); take the first r
# whose square root is <= 0.3. The break-even rank of a (4H, H) matrix is 4H*H/(5H) = 0.8 H: the target is met
# at a rank below it, but only just compresses (compare the two numbers).
dropped = 1 - torch.cumsum(s_real ** 2, 0) / (s_real ** 2).sum()      # dropped[i]: at rank i + 1
rank_needed = int((dropped.sqrt() <= 0.3).nonzero()[0]) + 1
print("rank", rank_needed, "| break-even rank", (W.shape[0] * W.shape[1] - 1) // (W.shape[0] + W.shape[1]))
hl.exercises.check_rank_for_error(W, 0.3, rank_needed)

# %% [markdown]
# ## Summary
#
# - The singular values of `W` tell you everything about low-rank approximation: the truncated SVD is optimal
#   (Eckart–Young) and its error is the energy of the dropped values.
# - LMF at rank `r` stores `r*(m+n)` numbers; it only compresses below the break-even rank `m*n/(m+n)`.
# - Trained weights are more compressible than random ones (measured above: more energy in the top directions),
#   but their long tail makes LMF costly in accuracy at high compression. **Next:** keep a few rows dense and factorize the rest — the hybrid structure.
