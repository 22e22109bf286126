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
# compression**. Compression has one meaning in the kit: dense values / stored values. At compression `c` an
# (m, n) matrix may store `floor(m*n / c)` values (its *budget*); pruning keeps exactly that many, LMF the
# largest rank that fits, HMF a balanced (split, rank) that fits; none stores more. Pruning's CSR indices are
# counted apart, in bytes:
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
# `layers_at_budget(W, split, rank, compression=4)` (from `hmf_lab.experiments.tradeoff`) builds the dense layer,
# the HMF layer, an LMF layer with the largest rank inside the budget `floor(m*n / 4)` and a pruned layer keeping
# exactly that budget. For HMF we take a **balanced**
# split at compression 4x: the split `k` of `hl.budget` closest to its rank `r`, so both the dense rows and the
# factorization do real work (a split with `r = 1` would time a degenerate layer). Speed only matters next to
# accuracy, so every layer's error is printed with it. The layers are put in eval mode and timed under
# `torch.inference_mode()`, one thread, batch 1.

# %%
from hmf_lab.experiments.tradeoff import layers_at_budget, time_layers

b = hl.budget(W_big.shape, compression=4)
k, r = (int(v) for v in b.iloc[(b["split"] - b["rank"]).abs().argmin()][["split", "rank"]])
layers = layers_at_budget(W_big, split=k, rank=r, compression=4)  # eval mode, no gradients
print({name: hl.count_params(layer) for name, layer in layers.items()}, "budget:", W_big.numel() // 4)
errors = {"dense": 0.0} | {name: hl.relative_error(W_big, layer.to_dense())
                           for name, layer in layers.items() if name != "dense"}
race = time_layers(layers, batch=1, rounds=2 if QUICK else 3, min_run_time=0.01 if QUICK else 0.2)
df = race.table
df["error"] = df["name"].map(errors)
print(f"{size}x{size} at 4x: HMF k={k}, r={r} (balanced); LMF r={layers['LMF'].rank}; {race.threads} thread(s)")
print(race.warning or "The timing harness saw no reason to distrust these numbers (small spread, idle cores).")
ax = hl.plots.timing_bars(df)
df.assign(median_us=df["median"] * 1e6, iqr_us=df["iqr"] * 1e6)[["name", "median_us", "iqr_us", "ratio", "error"]].round(3)

# %% [markdown]
# *Figure: median time per call of each layer as horizontal bars (shorter is faster; whiskers: interquartile
# range), each bar labelled with its speed-up over dense. The table gives the same numbers with each layer's
# relative error.*

# %% [markdown]
# ## Why sparse kernels lose: bytes, not flops
#
# At batch size 1 every weight is read once and used once: the layer is **memory-bound**, its time is roughly
# the bytes it reads divided by the memory bandwidth. CSR stores a column index next to every value and a row
# pointer per row, and its access to `x` is irregular. HMF and LMF read only their dense blocks.
#
# The bytes below are what the timed kernels read: float32 values (4 B), and for CSR the **int32** column indices
# and row pointers (4 B each) that the kit's sparse kernel uses (MKL takes int32). The **ideal speed-up** is dense
# bytes / the layer's bytes: what a purely memory-bound layer would gain. For HMF and LMF it is the compression
# (4x here); for CSR it is about half of it, since every value carries an index.

# %%
import pandas as pd

p = hl.prune(W_big, compression=4)
m = W_big.shape[0]
table = df.set_index("name")[["bytes", "error"]]
table["median (µs)"] = df.set_index("name")["median"] * 1e6
table["floor (µs)"] = df.set_index("name")["floor"] * 1e6
table["GB/s"] = table["bytes"] / df.set_index("name")["median"] / 1e9
table["ideal speed-up"] = df.set_index("name")["ideal"]  # dense bytes / this layer's bytes
table["measured speed-up"] = df.set_index("name")["ratio"]
table["of ideal"] = table["measured speed-up"] / table["ideal speed-up"]
table.round(3)

# %% [markdown]
# Compare the effective bandwidth (bytes per second) of the layers: a layer that reaches the dense layer's
# bandwidth turns fewer bytes directly into less time. CSR reads more bytes per stored value (an index next to
# every value) *and* reads them irregularly. HMF and LMF run several small dense kernels instead of one; on small
# matrices the fixed cost per kernel call (microseconds each) can eat the saving, so check the numbers on your
# machine and matrix size rather than trusting the parameter count.
#
# `floor` is the median of each layer's raw kernels called directly on pre-packed tensors
# (`hl.timing.raw_kernels`): what the layer would cost with no Python around it. `of ideal` says how much of the
# memory-bound limit a layer reaches.
#
# ### HMF against LMF at the same bytes
#
# HMF (here `k` close to `r`) and LMF store about the same number of bytes, so the bytes alone predict the
# same time. The measured times are **not** equal: compare their `median` rows above; HMF is usually a few
# microseconds slower (in one full-mode run at 1024x1024: 21.9 against 18.6 µs, about 18%). The difference is not
# bytes but **per-call work**: HMF runs the same two matrix-vector kernels as LMF plus the assembly of its output
# (dense rows next to factorized ones), and every torch op costs a fixed bookkeeping time, a few microseconds,
# whatever its size. The `floor` column (the raw kernels, no Python around them) separates the two: bytes set
# the floor, per-call work is the gap above it. That fixed cost is small next to a large layer and large next to
# a small one, so the gap shrinks as the matrix grows (`benchmarks/layer_overhead.py` measures it op by op).
#
# **Caches.** "Bytes over memory bandwidth" assumes the weights come from main memory (DRAM). A 1024x1024
# float32 matrix is 4 MB, which fits in the last-level (L3) cache of many desktop CPUs: timed over and over, it
# is read from cache, and the `GB/s` column then shows cache bandwidth, well above what DRAM delivers. Smaller
# compressed layers fit in even faster caches. So the ideal speed-up from bytes holds only while every layer
# streams from the same level of the memory hierarchy; once the dense matrix leaves the cache and the
# compressed one still fits, the measured speed-up can even exceed the ideal. Notebook 07's crossover table
# is the evidence: read the ratios there against the layer sizes and your machine's cache size
# (`lscpu | grep cache`).
#
# The lesson: the parameter count predicts a memory-bound time only at equal overhead and equal cache level.
# Rerun the cell: the measured numbers, not this text, are the result.
#
# ## Batch size and threads
#
# With a larger batch each weight is reused across inputs, the layer becomes compute-bound, and the
# picture changes. Move the sliders (each change re-times the four layers; it takes a moment): the compression
# slider rebuilds all four layers at a balanced HMF split and shows each one's **error** next to its **time**;
# the parameters follow from the compression. Timings on a busy machine (a shared JupyterHub server, say) are
# noisy: read the spread, and rerun when in doubt.

# %%
rt = hl.widgets.RunTimeExplorer(W_big, min_run_time=0.01 if QUICK else 0.2)
rt

# %%
batches = [1, 16] if QUICK else [1, 4, 16, 64, 256]
rows = []
for B in batches:
    t = time_layers(layers, batch=B, rounds=1 if QUICK else 2, min_run_time=0.01 if QUICK else 0.2, floors=False)
    rows.append(t.table.set_index("name")["ratio"].rename(B))
speedup = pd.DataFrame(rows).rename_axis("batch")
ax = speedup.plot(style=["o-", "s--", "D-.", "^:"], logx=True, title="speed-up over dense at 4x, by batch size")
ax.axhline(1.0, color="grey", lw=0.8)
speedup

# %% [markdown]
# *Figure: measured speed-up over the dense layer (y, above 1 = faster) against the batch size (x, log scale),
# one line per layer, each with its own marker and line style. The grey line is "as fast as dense".*
#
# Read it with the bytes argument's limits in mind. The ideal speed-up from bytes holds at batch 1 only: at
# batch `B` each weight read serves `B` inputs, so the layer moves towards compute-bound and the ratio of bytes
# no longer predicts the time (the explorer above shows "n/a" in its `ideal (bytes)` column for `B > 1`). What
# then decides is how well each kernel is tuned for that shape: dense and the factorized layers call matrix
# products on tall, thin inputs, CSR calls a sparse-times-dense product. Some runs show CSR several times
# *faster* than dense at a small batch such as 4 (2.42x in one full-mode run), above its bytes ideal; the kit
# has not pinned that down. **Discussion:** which hypotheses would explain it (a dense kernel with a poor path
# for 4 columns; CSR reading each value once for all 4 inputs; the matrix sitting in cache), and which single
# measurement would tell them apart? (`hl.timing.raw_kernels` times the kernels alone; `torch.set_num_threads`
# and `lscpu | grep cache` are the other levers.)

# %% [markdown]
# ## Exercise 1 · the size of a CSR matrix
#
# Prune the LSTM weight `W` (not the timing matrix above: its bytes are in the table) at **8x**: `p8` below keeps
# `p8.nnz` of its `m8 x n8` values. The kit's sparse kernel stores it in CSR with **int32** indices (the format
# MKL takes). How many bytes is that? Work it out from what CSR stores per value and per row; the table above
# shows the pruned timing layer's bytes if you want to test your formula on it first. (A different format, for
# comparison only: PyTorch's own `to_sparse_csr()` defaults to int64 indices, 8 bytes each;
# `hl.exercises.check_csr_bytes(..., index_bytes=8)` checks that variant.)

# %%
p8 = hl.prune(W, compression=8)
m8, n8 = W.shape
csr_bytes = None  # your answer: an int, from m8 and p8.nnz

# %%
hl.exercises.check_csr_bytes(m8, p8.nnz, csr_bytes)

# %% jupyter={"source_hidden": true} tags=["solution"]
# Solution: 4 B per value + 4 B per int32 column index + 4 B per int32 row pointer (m + 1 of them)
csr_bytes = p8.nnz * 4 + p8.nnz * 4 + (m8 + 1) * 4
hl.exercises.check_csr_bytes(m8, p8.nnz, csr_bytes)

# %% [markdown]
# ## Exercise 2 · predict the speed-up from bytes
#
# Before timing anything: if the pruned `W` of Exercise 1 were purely memory-bound at batch 1, how much faster
# than the dense `W` (float32) would it run? That is the **ideal speed-up**: dense bytes / CSR bytes. Is it
# the compression (8x)? Why not?

# %%
ideal = None  # your answer: a float

# %%
hl.exercises.check_ideal_speedup(W.shape, 8, ideal, method="prune")

# %% jupyter={"source_hidden": true} tags=["solution"]
# Solution: dense reads 4 B per value; CSR reads 8 B per kept value (value + column index) plus the row pointers,
# so at 8x it can at best be a little under 4x faster: the index halves the gain.
ideal = 4 * m8 * n8 / csr_bytes
hl.exercises.check_ideal_speedup(W.shape, 8, ideal, method="prune")

# %% [markdown]
# ## Exercise 3 · which layers leave the cache?
#
# The bytes argument assumes every layer streams from the same memory level. Take a core with a **2 MiB** L2
# cache (`2 * 2**20` bytes: one core of the machine this course was written on has that much; `lscpu | grep
# cache` shows yours) and square float32 layers `N x N` for the sizes below, compressed **4x**. For which sizes
# does the dense matrix **not** fit in that cache while the compressed one **does**? Those are the sizes where
# the measured speed-up can exceed the 4x ideal (the compressed layer reads from a faster memory than the
# dense one). Answer with a list.

# %%
sizes = [256, 512, 1024, 2048, 4096]
sizes_above_ideal = None  # your answer: a list of sizes from `sizes`

# %%
hl.exercises.check_cache_fit(sizes, 2 * 2**20, 4, sizes_above_ideal)

# %% jupyter={"source_hidden": true} tags=["solution"]
# Solution: dense bytes 4*N*N must exceed the cache while 4*N*N/4 still fits. At 4x only one size is in between;
# at 8x (try it) there are two. Notebook 07's crossover figure shows speed-ups above the ideal where this happens.
sizes_above_ideal = [N for N in sizes if 4 * N * N > 2 * 2**20 >= 4 * N * N / 4]
hl.exercises.check_cache_fit(sizes, 2 * 2**20, 4, sizes_above_ideal)

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
