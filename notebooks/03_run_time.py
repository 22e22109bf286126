# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 3 · Run time: why HMF is fast and pruning is not
#
# Fewer parameters do not automatically mean faster inference. This notebook times four layers **at the same
# parameter budget**:
#
# | layer | what it computes | kernel |
# |---|---|---|
# | dense | `x @ W.T` | one GEMM |
# | HMF | `x @ D.T` and `(x @ V.T) @ U.T` | dense GEMMs |
# | LMF | `(x @ V.T) @ U.T` | two thin GEMMs |
# | pruned | `W_sparse @ x.T` | sparse CSR kernel |
#
# and asks why sparse kernels lose, and where the memory bandwidth sets the limit. Timings use
# `torch.utils.benchmark` through `hl.measure` / `hl.timing.compare` (median of many runs, warm-up first).
# They depend on your machine and on what else runs on it.

# %%
import torch
import matplotlib.pyplot as plt
import hmf_lab as hl

torch.manual_seed(0)
QUICK = hl.exercises.quick()  # HMF_LAB_QUICK=1 (CI) shrinks the work; a student runs the full version

# %%
size = 256 if QUICK else 1024
W_big = hl.synthetic.with_spectrum(size, size, "power", decay=0.5)  # a square matrix large enough to time
W = hl.models.pretrained_weights("char_lm")["lstm.weight_hh_l0"]  # (4H, H): the LSTM's hidden-to-gates matrix
print("timing matrix", tuple(W_big.shape), "| LSTM weight", tuple(W.shape))

# %% [markdown]
# ## Four layers, one budget
#
# `hl.widgets.layers_at_budget(W, split, rank)` builds the dense layer, the HMF layer, an LMF layer with the
# largest rank inside the same budget and a pruned layer keeping as many values. We pick the split of
# `hl.budget` closest to `m/4` at compression 4x.

# %%
b = hl.budget(W_big.shape, compression=4)
k, r = (int(v) for v in b.iloc[(b["split"] - size // 4).abs().argmin()][["split", "rank"]])
layers = hl.widgets.layers_at_budget(W_big, split=k, rank=r)
x = torch.randn(1, size)
with torch.inference_mode():
    df = hl.timing.compare(layers, x, min_run_time=0.01 if QUICK else 0.3)
print(f"HMF k={k}, r={r}")
ax = hl.plots.timing_bars(df)

# %% [markdown]
# ## Why sparse kernels lose: bytes, not flops
#
# At batch size 1 every weight is read once and used once: the layer is **memory-bound**, its time is roughly
# the bytes it reads divided by the memory bandwidth. CSR stores a column index next to every value and a row
# pointer per row, and its access to `x` is irregular. HMF and LMF read only their dense blocks.

# %%
import pandas as pd

p = hl.prune(W_big, compression=4)
nbytes = {"dense": W_big.numel() * 4, "HMF": layers["HMF"].n_params * 4, "LMF": layers["LMF"].n_params * 4,
          "pruning (CSR)": p.n_bytes}
table = df.set_index("name")[["median"]].assign(bytes=pd.Series(nbytes))
table["GB/s"] = table["bytes"] / table["median"] / 1e9
table

# %% [markdown]
# Compare the effective bandwidth (bytes per second) of the layers: a layer that reaches the dense layer's
# bandwidth turns fewer bytes directly into less time. CSR reads more bytes per stored value (an index next to
# every value) *and* reads them irregularly. HMF and LMF run several small dense kernels instead of one; on small
# matrices the fixed cost per kernel call (microseconds each) can eat the saving, so check the numbers on your
# machine and matrix size rather than trusting the parameter count.
#
# ## Batch size and threads
#
# With a larger batch each weight is reused across inputs, the layer becomes compute-bound, and the
# picture changes. Move the sliders (each change re-times the four layers; it takes a moment).

# %%
rt = hl.widgets.RunTimeExplorer(W_big, min_run_time=0.01 if QUICK else 0.2)
rt

# %%
batches = [1, 16] if QUICK else [1, 4, 16, 64, 256]
rows = []
for B in batches:
    with torch.inference_mode():
        t = hl.timing.compare(layers, torch.randn(B, size), min_run_time=0.01 if QUICK else 0.2)
    rows.append(t.set_index("name")["ratio"].rename(B))
speedup = pd.DataFrame(rows).rename_axis("batch")
ax = speedup.plot(marker="o", logx=True, title="speed-up over dense at 4x, by batch size")
speedup

# %% [markdown]
# ## Exercise · the size of a CSR matrix
#
# The pruned layer above keeps `p.nnz` values of the `m x n` matrix. Torch's CSR stores each value (float32,
# 4 bytes), a column index per value and `m + 1` row pointers (int64, 8 bytes each). How many bytes is that?

# %%
m = W_big.shape[0]
csr_bytes = None  # your answer: an int, from m and p.nnz

# %%
hl.exercises.check_csr_bytes(m, p.nnz, csr_bytes)

# %% jupyter={"source_hidden": true} tags=["solution"]
# Solution: 4 B per value + 8 B per column index + 8 B per row pointer
csr_bytes = p.nnz * 4 + p.nnz * 8 + (m + 1) * 8
hl.exercises.check_csr_bytes(m, p.nnz, csr_bytes)

# %% [markdown]
# ## Summary
#
# - At equal parameter budget, HMF and LMF run dense GEMMs: on matrices large enough for memory traffic to
#   dominate, fewer bytes mean less time; on small ones the per-call overhead of several kernels shows.
# - Pruning stores indices next to values and runs an irregular sparse kernel: at 4x it often does not beat the
#   dense layer at all (the paper reports HMF > 2.32x faster than pruning at similar accuracy).
# - At small batch every layer is memory-bound; bytes moved predict time, up to the fixed cost per call.
#   Always measure (`hl.measure`, `hl.timing.compare`). **Next:** put error, size and time on one map and pick
#   the best structure for a budget.
