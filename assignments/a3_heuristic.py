# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Assignment 3 · Design a split heuristic and rank it on the leaderboard
#
# *Graded by nbgrader: 9 points, 6 autograded (visible tests below each answer, more hidden ones when your
# notebook is graded) and 3 for the write-up, graded by hand. Fill in every `YOUR CODE HERE` / `YOUR ANSWER
# HERE`, then run the notebook top to bottom (Kernel > Restart & Run All) before you hand it in.*
#
# Which `k` rows HMF keeps dense decides its error (notebook 05). A **split heuristic** is a function
# `fn(W, split, *, rank, X=None)` returning `split` distinct row indices of `W` (m x n); registered with
# `@hl.register_heuristic("name")`, every part of the kit accepts its name (`hl.hmf`, `hl.compress`,
# `hl.leaderboard`). You will design one, check it, and rank it against the built-ins on the leaderboard: the
# shipped models' trained matrices (each LSTM matrix split into its four gate blocks, as `hl.compress` does)
# and three synthetic families.

# %%
import numpy as np
import torch

import hmf_lab as hl
from hmf_lab.experiments.leaderboard import suite, summary
from hmf_lab.factor._validation import quick_mode

torch.set_num_threads(1)
torch.manual_seed(0)
QUICK = quick_mode()  # HMF_LAB_QUICK=1 (grading, CI): small synthetic matrices, one dense share per point
SHARES = 0.25 if QUICK else (0.125, 0.25, 0.5)  # shares of the budget the leaderboard tries for dense rows

# %% [markdown]
# ## 1. Your heuristic (4 points)
#
# Complete `my_rule`. It must return a `LongTensor` of `split` distinct indices in `[0, m)`, for any
# `0 <= split <= m`, and it must not depend on the **order** of the rows (the same rows, shuffled, must give the
# same rows back, shuffled the same way: a model's output order means nothing). The hidden tests also check
# that on a matrix with a few loud rows at random positions (`hl.synthetic.loud_rows`) your rule's HMF error is
# well below that of `"top"` and `"random"`. Do not call the built-in heuristics; any idea of your own that
# passes is fine (the write-up asks you to explain it).

# %% nbgrader={"grade": false, "grade_id": "my_rule", "locked": false, "schema_version": 3, "solution": true, "task": false}
@hl.register_heuristic("my_rule", overwrite=True)
def my_rule(W, split, *, rank, X=None):
    """Keep dense the rows with the most energy outside the subspace the other rows share."""
    W = torch.as_tensor(W, dtype=torch.float64)  # (m, n)
    ### BEGIN SOLUTION
    norms = W.norm(dim=1)  # (m,)
    A = W / norms.clamp_min(1e-12)[:, None]  # every row at unit norm: loud rows cannot take over the SVD
    P, S, Qh = torch.linalg.svd(A, full_matrices=False)
    off = (A - (P[:, :rank] * S[:rank]) @ Qh[:rank]).norm(dim=1)  # the share of each row outside the shared span
    score = norms * off  # the energy the rank-r part would miss on that row
    return torch.topk(score, split, largest=True).indices
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test_my_rule_valid", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
W = torch.randn(12, 8)
rows = my_rule(W, 3, rank=2)
assert rows.dtype == torch.long and rows.shape == (3,) and len(set(rows.tolist())) == 3
assert hl.hmf(W, split=3, rank=2, heuristic="my_rule").rows.shape == (3,)
### BEGIN HIDDEN TESTS
g_ = torch.Generator().manual_seed(5)
for m_, n_, k_, r_ in [(12, 8, 0, 2), (12, 8, 12, 0), (40, 30, 5, 4), (30, 40, 29, 1), (64, 64, 16, 8)]:
    W_ = torch.randn(m_, n_, generator=g_)
    W0_ = W_.clone()
    rows_ = torch.as_tensor(my_rule(W_, k_, rank=r_))
    assert rows_.dtype == torch.long and rows_.shape == (k_,), (m_, n_, k_, r_, rows_)
    assert len(set(rows_.tolist())) == k_ and all(0 <= i < m_ for i in rows_.tolist())
    assert torch.equal(W_, W0_), "do not modify W"
    hl.hmf(W_, split=k_, rank=r_, heuristic="my_rule")  # the kit's own checks accept it
### END HIDDEN TESTS

# %% nbgrader={"grade": true, "grade_id": "test_my_rule_quality", "locked": true, "points": 3, "schema_version": 3, "solution": false, "task": false}
assert "my_rule" in hl.HEURISTICS  # the hidden tests: shuffled rows, loud rows at random positions
### BEGIN HIDDEN TESTS
import inspect

assert "HEURISTICS" not in inspect.getsource(my_rule) and "select_rows" not in inspect.getsource(my_rule)
for seed_ in (2, 3):
    W_, loud_ = hl.synthetic.loud_rows(96, 64, n_loud=6, rank=6, seed=seed_, return_rows=True)
    k_ = 6
    b_ = hl.budget(W_.shape, compression=4)
    r_ = int(b_.loc[b_["split"] == k_, "rank"].iloc[0])
    err_ = {h: hl.relative_error(W_, hl.hmf(W_, split=k_, rank=r_, heuristic=h)) for h in ("top", "random", "my_rule")}
    assert err_["my_rule"] < 0.5 * min(err_["top"], err_["random"]), err_
    # the same rows, shuffled: the same choice, shuffled the same way
    perm_ = torch.randperm(96, generator=torch.Generator().manual_seed(seed_))
    a_ = set(my_rule(W_, k_, rank=r_).tolist())
    b_ = set(perm_[my_rule(W_[perm_], k_, rank=r_)].tolist())
    assert a_ == b_, "the choice depends on the order of the rows"
### END HIDDEN TESTS

# %% [markdown]
# ## 2. The leaderboard (2 points)
#
# Rank `my_rule` against `"top"` (the paper), `"random"` and `"row_norm"` with `hl.leaderboard` on `matrices`
# at compressions 4 and 8 (pass `dense_share=SHARES, progress=False`); keep the result in `board`. Then fill:
#
# - `my_place`: your rule's place at compression 4 (1 = best) when the heuristics are ordered by the `4.0` column
#   of `summary(board)` (the geometric mean over the matrices of each one's error over the best error; smaller is
#   better);
# - `my_wins`: the sorted list of the matrices where `my_rule` is the best heuristic at compression 4 (its
#   `vs_best` is 1, ties included: take `vs_best <= 1 + 1e-9`).

# %%
matrices = suite(quick=QUICK, pretrained=True, gates=True)
print(f"{len(matrices)} matrices:", ", ".join(matrices))

# %% nbgrader={"grade": false, "grade_id": "board", "locked": false, "schema_version": 3, "solution": true, "task": false}
### BEGIN SOLUTION
board = hl.leaderboard(["top", "random", "row_norm", "my_rule"], matrices, compressions=(4, 8),
                       dense_share=SHARES, progress=False)
at4 = summary(board)[4.0].sort_values()
my_place = list(at4.index).index("my_rule") + 1
four = board[board["compression"] == 4]
my_wins = sorted(four.loc[(four["heuristic"] == "my_rule") & (four["vs_best"] <= 1 + 1e-9), "matrix"])
### END SOLUTION
print(summary(board).round(3))
print(f"my_rule: place {my_place} at 4x, best on {len(my_wins)} of {len(matrices)} matrices")

# %% nbgrader={"grade": true, "grade_id": "test_board", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
assert {"top", "random", "row_norm", "my_rule"} <= set(board["heuristic"])
assert isinstance(my_place, int) and 1 <= my_place <= board["heuristic"].nunique()
### BEGIN HIDDEN TESTS
assert set(board["compression"]) == {4.0, 8.0}
ran_ = board[board["heuristic"] == "my_rule"]
expected_ = board[board["heuristic"] == "top"][["matrix", "compression"]]
assert len(ran_) == len(expected_) and set(ran_["matrix"]) == set(expected_["matrix"]), "every matrix, both compressions"
assert set(board["matrix"]) >= {"loud_rows", "low_rank_noise", "heavy_tailed"}
col_ = summary(board)[4.0].sort_values()
assert my_place == list(col_.index).index("my_rule") + 1, (my_place, col_)
f_ = board[(board["compression"] == 4.0) & (board["heuristic"] == "my_rule")]
assert list(my_wins) == sorted(f_.loc[f_["vs_best"] <= 1 + 1e-9, "matrix"]), my_wins
### END HIDDEN TESTS

# %% [markdown]
# ## 3. Explain your rule and its place (3 points, graded by hand)
#
# In the cell below, in 100–250 words: what your rule keeps dense and why; on which kinds of matrix it wins and
# on which it loses (use `board`); and whether a good heuristic can matter much on the shipped LSTM matrices.
# For the last part compute, in a scratch cell, the ratio of the largest to the median row norm of a few of
# them (`matrices[name].norm(dim=1)`) and say what it implies.

# %% [markdown] nbgrader={"grade": true, "grade_id": "rule_writeup", "locked": false, "points": 3, "schema_version": 3, "solution": true, "task": false}
# *Model answer (the grader's key):* the rule scores each row by the energy a rank-r factorization of the rows'
# shared subspace would miss: rows are scaled to unit norm (so a few loud rows cannot take over the SVD), the
# share of each row outside the rank-r span of the scaled matrix is measured, and multiplied back by the row's
# norm. It keeps dense the rows that are loud *and* point somewhere the other rows do not, which is what a
# low-rank part cannot represent cheaply. It wins clearly on `loud_rows` (the loud rows are found wherever they
# sit; `top` and `random` keep them only by luck) and ties `row_norm` where loudness and outlying direction go
# together; it gains nothing on `low_rank_noise`, whose rows all share one subspace, and little on the trained
# LSTM gate blocks. Their row norms are flat (largest over median about 1.3-1.7), so no small set of rows holds
# a large share of the energy: whichever rows are kept, the error barely moves, and every heuristic lands within
# a few percent of the best. A heuristic matters on matrices with loud rows (vocabulary-sized output layers,
# outlier channels of transformers), not on these.
