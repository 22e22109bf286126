# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 6 · Compressing real NLP models: HMF vs LMF vs pruning at equal size
#
# The paper's claim is about **tasks**, not matrices: on translation, intent detection and language modelling,
# at similar accuracy and compression, HMF runs **more than 2.32x faster than pruning** and is **16.77% more
# accurate than LMF**. This notebook reruns that comparison on real data with three small LSTM models that
# ship with the kit (`hl.models.load_pretrained`):
#
# | task | model | data | metric |
# |---|---|---|---|
# | `lm` | character LSTM language model (embedding 64, LSTM 256) | Tiny Shakespeare | bits per character (lower is better) |
# | `intent` | word LSTM classifier (embedding 64, LSTM 128) | SNIPS, 7 intents | accuracy |
# | `translation` | LSTM encoder–decoder with attention (LSTM 192, 3000-word vocabularies) | English -> Spanish Bible verses | BLEU (plus token accuracy) |
#
# **The protocol** (`hmf-lab reproduce`, code in `hmf_lab/reproduce.py`):
#
# 1. **Equal size.** `hl.compress` compresses every LSTM (per gate block) and every linear layer with both sides
#    at least 32 by the same factor `c`, for every method. Parameters are counted the same way for all of them
#    (`hl.count_params`: stored weight values; biases, embeddings and sparse indices are not counted).
# 2. **Before fine-tuning** — post-training compression: compress the trained model and measure right away.
# 3. **Equal fine-tuning.** Every method gets the same number of steps, batch and learning rate. HMF and LMF
#    train their factors; pruning starts from the dense model and prunes *gradually* (Zhu & Gupta's cubic
#    schedule, `torch.nn.utils.prune` masks), then becomes a CSR model for inference.
# 4. **Time per sequence**, side by side (`hl.measure`, batch 1, one thread): dense, HMF, LMF, CSR pruning.
#
# One difference from the paper to keep in mind: the paper *trains* the compressed structure; here we compress
# an already trained model and fine-tune it for a short, equal budget — the situation of an engineer who has
# a model and wants it smaller.

# %%
import pandas as pd
import matplotlib.pyplot as plt
from IPython.display import Markdown, display
import hmf_lab as hl
from hmf_lab import reproduce as R

QUICK = hl.exercises.quick()  # HMF_LAB_QUICK=1 (CI) shrinks the live part

# %% [markdown]
# ## The shipped results of a full run
#
# `hmf_lab/assets/results/` (package data) holds the CSV, markdown and plots of one full run, made with
#
# ```
# hmf-lab reproduce --task lm intent translation --compression 2 4 8 16 --out hmf_lab/assets/results
# ```
#
# (about half an hour on two CPU cores; timings depend on the machine and on what else runs on it). Each
# table has the dense model first, then every method at every compression: parameters (and the compression
# actually reached), the metric before and after fine-tuning, and the time per sequence.

# %%
results = R.load_results()
for task, df in results.items():
    display(Markdown(f"### {task}\n\n" + R.markdown_table(df)))

# %% [markdown]
# Plotted: the metric against compression (solid: after fine-tuning, dashed: before; the dotted line is the
# dense model) and the time per sequence against compression.

# %%
fig, axes = plt.subplots(2, len(results), figsize=(5 * len(results), 7), squeeze=False)
for j, (task, df) in enumerate(results.items()):
    R.plot_metric(df, ax=axes[0, j])
    R.plot_time(df, ax=axes[1, j])
fig.tight_layout()

# %% [markdown]
# Things to look for:
#
# - **Before fine-tuning**, how far does each method fall from the dense model? A trained LSTM's weights are
#   not low rank, so any factorization loses a lot at once; pruning's one-shot loss depends on how many
#   small weights the model has.
# - **After fine-tuning**, which method recovers best at each size — and does the ranking change with `c`?
# - **Time**: does a smaller model run faster at all? At these sizes (hidden 128–256, batch 1) the
#   weights fit in cache, so an LSTM step is bounded by per-operation overhead more than by memory traffic;
#   CSR kernels pay for index arithmetic; factorized layers run two or three small products instead of one.
#
# The two numbers the paper quotes, per task and compression: HMF's relative gain over LMF on the metric
# (positive = HMF better) and HMF's speed-up over CSR pruning.

# %%
summary = pd.concat([R.summary(df) for df in results.values()], ignore_index=True)
summary.round(2)

# %% [markdown]
# ## Exercise: HMF against LMF, the paper's 16.77%
#
# From the language-model table (`results["lm"]`), compute HMF's relative gain over LMF **after fine-tuning**
# at **8x**, in percent. Bits per character are *lower is better*, so the gain is
# `(LMF - HMF) / LMF * 100`. Replace `None` with your expression and run the check.

# %%
lm = results["lm"]
my_gain = None  # your answer, in percent
R.check_hmf_gain(lm, 8, my_gain)

# %% jupyter={"source_hidden": true} tags=["solution"]
# Solution
after = lm[lm.compression == 8].set_index("method")["after"]
my_gain = (after["lmf"] - after["hmf"]) / after["lmf"] * 100
R.check_hmf_gain(lm, 8, my_gain)

# %% [markdown]
# ## Live: move the compression
#
# The slider compresses the shipped language model with HMF, LMF and pruning at the chosen size and shows the
# metric right after compression (no fine-tuning: post-training compression, a few seconds), the parameters,
# and the time per sequence measured side by side. Try 2x and 16x: where does each method break?

# %%
LIVE = hl.data.available("tinyshakespeare")  # the live cells need Tiny Shakespeare (fetched on first use)
if LIVE:
    display(R.compression_slider("lm", eval_size=1000 if QUICK else 5000, min_run_time=0.02 if QUICK else 0.2))
else:
    print(hl.data.skip_note("tinyshakespeare"))

# %% [markdown]
# And a short fine-tuning run, live: the same equal budget for every method (a few steps here; the shipped
# run used 150–200). Compare the `before` and `after` columns.

# %%
if LIVE:
    live = R.live_compare("lm", 8, fine_tune_steps=2 if QUICK else 40, eval_size=1000 if QUICK else 5000,
                          min_run_time=0.02 if QUICK else 0.2)
    display(live[["method", "compression", "params", "before", "after", "time_us", "speedup"]].round(3))
else:
    print(hl.data.skip_note("tinyshakespeare"))

# %% [markdown]
# ## What to take away
#
# - Count parameters the same way for every method, and give every method the same fine-tuning budget —
#   otherwise "method A beats method B" says more about the set-up than about the method.
# - Post-training compression and compression with fine-tuning can rank methods differently.
# - Fewer parameters is not automatically faster: run time depends on kernels, batch size and whether the
#   layer was memory-bound to begin with (notebook 3).
#
# To rerun everything on your machine: `hmf-lab reproduce --task lm intent translation --compression 2 4 8 16
# --out my_results`, then `R.load_results("my_results")` in the first cell.
