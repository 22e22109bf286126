# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 7 · When does HMF win?
#
# Notebook 06 cut HMF, LMF and pruning out of trained models and fine-tuned them. This notebook asks the
# question behind it: **under which conditions does HMF beat LMF and pruning, and under which does it not?**
# Three things differ between the kit's first experiments and the paper's setting (as far as the paper's
# abstract and the same group's related papers tell; the full text is not available to us):
#
# 1. **How the structure gets its weights.** *Post*: compress a trained model, then fine-tune. Truncated SVD
#    is Eckart–Young optimal at a given *rank*, not at a given number of stored values: at equal size HMF
#    reaches rank `k + r` and can start with the smaller weight error (notebook 02: 0.354 against 0.459 at
#    4x). Whether it does depends on the matrix, on the rows it keeps dense (loud rows help; the shipped
#    LSTMs have none: row-norm max/median 1.26–1.65, notebook 05). *Scratch*: train every
#    structure from initialization with the dense model's budget — the paper's regime.
# 2. **The split.** At one budget HMF can keep 0 dense rows (that *is* LMF) up to almost all rows at rank 1.
#    Notebook 04 mapped the *weight error* over splits; here the split is *trained*.
# 3. **Speed.** Inference at batch 1 is memory-bound once the weights leave the cache, overhead-bound when
#    they fit. The kit's shipped models (hidden 128–256) fit in a desktop CPU's cache.
#
# Everything below comes from one committed run of `hmf-lab reproduce` (see `hmf_lab/assets/results/README.md`) plus
# a small live version you can steer.

# %%
import json

import matplotlib.pyplot as plt
import pandas as pd
import torch
from IPython.display import Markdown, display

import hmf_lab as hl
from hmf_lab.course import live
from hmf_lab.experiments import grid as G
from hmf_lab.experiments import reproduce as R

QUICK = hl.exercises.quick()
RESULTS = R.RESULTS_DIR

try:
    cells = G.load_grid(RESULTS)
    run_info = json.loads((RESULTS / "run.json").read_text()) if (RESULTS / "run.json").is_file() else {}
except FileNotFoundError as e:
    cells, run_info = None, {}
    print(f"no committed grid results: {e}")
if run_info:
    print(f"run: {run_info.get('command')}\n{run_info.get('cells')} cells, {run_info.get('seeds')} seeds, "
          f"wall {run_info.get('wall_s', 0) / 60:.0f} min with jobs={run_info.get('jobs')}, "
          f"load average at start {run_info.get('loadavg_start')}")

# %% [markdown]
# ## 1. Post vs scratch, every task, with seeds
#
# Mean ± sd over seeds. "HMF − LMF" is HMF's gain over LMF in % of LMF's mean (positive = HMF better,
# whichever way the metric goes); "(noise)" marks a difference inside the seed noise: a **paired t-test at
# the 5% level** over seeds (the same seed gives HMF and LMF the same initialization and the same batches).
# Budgets (see the run's README): intent's scratch models get their dense baseline's full 800 steps; lm and
# translation get 400 (their dense parents had 2600 and 1800), so those rows compare partly trained models at
# an equal budget, not converged ones.

# %%
if cells is not None:
    display(Markdown(G.results_markdown(cells)))

# %%
if cells is not None:
    hl.plots.plot_regimes_by_task(G.summarize(cells), width=6);

# %% [markdown]
# The HMF − LMF differences in one table (`diff_mean` in the metric's units, sign: positive = HMF better;
# `diff_sd` = the seed-to-seed spread of that difference):

# %%
if cells is not None:
    cmp = pd.concat([G.hmf_vs_lmf(cells, lab) for lab in ("hmf", "hmf(best)")], ignore_index=True)
    display(cmp.round(4))

# %% [markdown]
# **Translation: BLEU or token accuracy?** Trained from scratch for 400 steps, every translation model scores a
# BLEU below 1.5 (the dense one 0.00), so a BLEU percentage there ("−100.00% (noise)") compares noise with
# noise: BLEU measures nothing yet. The teacher-forced **token accuracy** (the share of reference tokens the
# model predicts given the reference prefix) still separates the models, so it is the translation metric for
# the scratch regime below and in section 5's verdicts; post-training, BLEU (10.8 vs 9.4 at 4x) works and both
# are shown.

# %%
def token_accuracy(cells):
    """The translation cells with the value column set to the teacher-forced token accuracy."""
    t = cells[(cells.task == "translation") & cells["m_token_accuracy"].notna()]
    return t.assign(metric="token_accuracy", value=t["m_token_accuracy"])


tok = token_accuracy(cells) if cells is not None and "m_token_accuracy" in cells else None
if tok is not None and len(tok):
    display(tok.groupby(["regime", "compression", "label"])["value"].agg(["mean", "std"])
            .unstack("label").round(4))
    display(pd.concat([G.hmf_vs_lmf(tok, lab) for lab in ("hmf", "hmf(best)")], ignore_index=True).round(4))

# %% [markdown]
# ## 2. The trained split sweep
#
# At equal budget, HMF's split runs from 0 (= LMF) to the all-rows end (rank 1). Each point below is a
# trained model (mean ± sd over seeds), for both regimes; the dotted lines are HMF's default split, the
# dashed ones a split heuristic choosing the dense rows. This is the trained counterpart of notebook 04's
# error map.

# %%
if cells is not None:
    sweep = G.sweep_table(cells)
    sweep_task = sweep.groupby("task")["frac"].nunique().idxmax()
    comps = sorted(sweep[sweep.task == sweep_task].compression.unique())
    fig, axes = plt.subplots(1, len(comps), figsize=(6 * len(comps), 3.8), squeeze=False)
    for ax, c in zip(axes[0], comps):
        hl.plots.plot_split_sweep(cells[(cells.task == sweep_task) & (cells.compression == c)], ax=ax)
    fig.tight_layout()
    display(sweep[sweep.task == sweep_task].round(4))

# %% [markdown]
# ### Exercise 1 · the default split's rank bound
#
# Section 5 quotes HMF's rank bound on the LM at 4x: `k + r` = 46 for a gate block of the hidden-to-gates
# matrix (256 x 256), against LMF's rank 32. Predict the same for **8x**: what rank bound does HMF's default
# (balanced) point reach on a 256 x 256 block? Compare it with LMF's rank at 8x (`hl.lmf_rank`) and with the
# sweep above: does the larger bound show up as a better trained model?

# %%
bound = None  # your answer: an int

# %%
hl.exercises.check_rank_bound((256, 256), 8, bound)

# %% jupyter={"source_hidden": true} tags=["solution"]
# Solution: the default point is hl.choose_split_rank; its rank bound is split + rank. At 8x it is still above
# LMF's rank, and the sweep shows no matching gain in the trained models: a bound is not an achieved rank.
k8, r8 = hl.choose_split_rank((256, 256), 8)
bound = k8 + r8
print(f"HMF split {k8} + rank {r8} = {bound}; LMF rank {hl.lmf_rank((256, 256), 8)}")
hl.exercises.check_rank_bound((256, 256), 8, bound)

# %% [markdown]
# ## 3. Speed: where does a compressed model run faster than dense?
#
# The speed side was measured on this course's 2-core virtual machine (`hmf_lab/assets/results/speed/`; each
# file's Markdown header says the command, the clock and the load average before and after). Batch 1, one
# thread, the thread CPU clock, interleaved rounds, medians. `lscpu` there reports a 2 MiB L2 cache per core and
# a 260 MiB L3 shared by the whole host (whose other tenants use it too). Three claims follow, each with one
# figure and one table. A fourth file, `report_char_lm.csv`, was recorded at a load average of 21 on 2 cores: its
# times measure the load, not the layers, so `load_speed` leaves it out (the cell prints why).

# %%
from hmf_lab.experiments import speed as S

try:
    speed = S.load_speed()
except ValueError as e:  # no committed speed results in this install
    speed = {}
    print(e)
for name, why in getattr(speed, "attrs", {}).get("dropped", {}).items():
    print(f"left out: {name}.csv ({why})")

# %% [markdown]
# ### Claim 1 · The speed-up depends on where the weights live, not only on how many there are
#
# `crossover`: a character LM (embedding 64, hidden `H`, vocabulary 65), untrained (time does not depend on the
# values), compressed 4x on each method's own kernels, **16 characters** per sequence. At batch 1 every step
# reads every weight once, so the ideal speed-up is dense bytes / compressed bytes: 4x for HMF and LMF, 2x for
# CSR pruning (an int32 index per value). The table adds the **effective bandwidth** of dense and HMF: the bytes
# one step reads over the time one step takes.

# %%
if "crossover" in speed:
    fig, ax = plt.subplots(figsize=(8.5, 4))
    hl.plots.speed_crossover(speed["crossover"], ax=ax, ideal="ideal")
    fig.tight_layout()
    display(S.crossover_table(speed["crossover"], "hmf").round(2))

# %% [markdown]
# *Figure: measured speed-up over dense (y) against hidden size (x, log scale), one solid line per method, its
# ideal from bytes dotted in the same colour; dense is the dashed line at 1. The vertical dotted lines mark where
# HMF overtakes dense and CSR pruning. Table: weight megabytes, time per character and effective bandwidth
# (GB/s) of dense and of HMF, HMF's speed-up, its ideal and their ratio.*
#
# Three regimes, read from the table:
#
# - **Small (hidden 128–256): overhead-bound.** Dense reads its 0.4–1.3 MB in 13–28 µs per character; HMF reads
#   4x fewer bytes yet takes *longer* (0.44x, 0.85x): its two thin products and the assembly of its output cost
#   a fixed few microseconds per step whatever their size (notebook 03). Bytes do not set the time here.
# - **Middle (512): bytes start to pay.** 2.0x of an ideal 4x.
# - **Large (1024, 2048): above the ideal.** 5.28x and 8.46x for a 4x compression. No layer reads fewer bytes
#   than its weights, so the extra cannot come from bytes: the two models stream at **different bandwidths**.
#   Dense's effective bandwidth falls from about 41–49 GB/s (hidden 256–512) to 27 GB/s (17 MB of weights) and
#   13 GB/s (66 MB), a main-memory (DRAM) figure, while HMF's, with a 4x smaller working set, stays at 27–36
#   GB/s. The speed-up is the bytes ratio times the bandwidth ratio: 4.0 x 27.2 / 12.9 ≈ 8.5 at hidden 2048.
#   That is the cache effect of notebook 03: the smaller model's weights are served from a faster level of the
#   memory hierarchy than the larger one's. (Which level, on a virtual machine that shares its L3 with other
#   tenants, the kit did not measure; the bandwidths are what it measured.) CSR pruning shows the same pattern:
#   3.71x at 2048 for an ideal of 2x.
#
# So "4x fewer bytes, 4x faster" is a middle-of-the-road estimate: below it when the layer is overhead-bound,
# above it when compression moves the weights into a faster memory.

# %% [markdown]
# ### Claim 2 · Where the weights leave the cache, HMF runs about 3x faster than dense and than CSR pruning
#
# `regime`: the same LM at hidden 1024 (17.25 MB of weights), now with **64 characters** per sequence, at 4x and
# 8x, each method on its own kernels. `vs CSR pruning` divides a method's speed-up by pruning's at the same
# compression: the paper's "HMF runs more than 2.32x faster than pruning" is a claim of this kind.

# %%
if "regime" in speed:
    regime = S.regime_table(speed["regime"])
    ax = hl.plots.speed_regime(regime)
    display(regime.round(2))

# %% [markdown]
# *Figure: bars, the measured speed-up over dense of HMF, LMF and CSR pruning at 4x and 8x (value on top); black
# ticks, the ideal from bytes; the dashed line is dense. Table: the same rows with weights, time per sequence and
# per character, the speed-ups over dense and over pruning, the ideal and the share of it reached.*
#
# - HMF: 3.0x faster than dense at 4x, 4.7x at 8x, and 3.0x / 2.6x faster than CSR pruning: the paper's claim
#   about pruning holds on this machine, at this size. LMF is 6–8% faster than HMF at the same bytes (the same
#   two kernels plus HMF's output assembly, notebook 03): HMF has no speed edge over LMF.
# - CSR pruning at 4x runs at dense speed (0.99x) for an ideal of 2x: irregular access on top of the index bytes.
# - **Why 3.0x here and 5.28x in Claim 1, at the same hidden size 1024?** HMF's time per character is nearly
#   the same in both runs (119 and 125 µs); **dense's** is not (359 µs here, 661 µs in the crossover run). The
#   runs differ in the sequence length (64 against 16 characters) and in which models shared the interleaved
#   rounds (13 here, 4 there); the kit has not isolated which of the two slowed dense down. The lesson stands
#   either way: a speed-up measured once, at one sequence length, is not a constant of the model. Exercise 3
#   below asks you to compute dense's bandwidth in both runs.

# %% [markdown]
# ### Claim 3 · "Never slower than dense" on the shipped models, and what it costs
#
# `never_slower`: the three shipped models (hidden 128–256: the small, overhead-bound end of Claim 1) x HMF, LMF,
# pruning x 2–16x, end to end. `hl.engines.choose` times each compressed layer on each of its *engines* and
# keeps the fastest that pays off for the whole model; `control` times an identical copy of dense against
# dense, to show how far noise alone moves a ratio from 1.

# %%
if "never_slower" in speed:
    fig, ax = plt.subplots(figsize=(9, 3.8))
    hl.plots.never_slower(speed["never_slower"], ax=ax)
    fig.tight_layout()
    display(S.never_slower_table(speed["never_slower"]).round(2))

# %% [markdown]
# *Figure: the speed over dense of every (method, compression) of each model; filled markers on the chosen
# engines, hollow ones on the default compressed engines; the grey band is the model's dense-vs-dense control
# range, the dashed line the 0.95 target. Table, per model: the chosen speed (minimum, median), the default
# engines' median, the control range, and the share of compressed layers that run the `reconstructed` engine.*
#
# Every row reaches the target (minimum 0.98x, inside the control's 0.95–1.02 noise). But read *how*: on their
# default engines these small models are slower than dense (hollow markers: median 0.57x for intent, 0.77x
# for the LM), as Claim 1 predicts for small layers. `hl.engines.choose` recovers dense speed mostly by choosing
# **`reconstructed`** (54–100% of the compressed layers): it rebuilds the dense `W_hat` once, keeps it in
# memory **next to** the factors, and runs dense's own kernel on it. So "never slower" means "as fast as dense,
# by running dense": the file to download shrinks, but at inference such a layer holds **more** memory than
# the dense layer it replaces, and gains no time. Only the translation model is faster (median 1.27x), where its
# larger output layers run their factorized kernels. **Never slower is not "compression is free".**

# %% [markdown]
# ### Exercise 2 · what the `reconstructed` engine holds
#
# A `1024 x 1024` float32 `hl.HMFLinear` at 4x, at HMF's default point (`hl.choose_split_rank`), runs on the
# `reconstructed` engine. How many **bytes** of weights does it hold in memory while it serves requests? Compare
# your number with the dense layer's `4 * 1024 * 1024` bytes.

# %%
held_bytes = None  # your answer: an int

# %%
hl.exercises.check_reconstructed_bytes((1024, 1024), 4, held_bytes)

# %% jupyter={"source_hidden": true} tags=["solution"]
# Solution: the factors D, U, V (HMF's stored values, 4 B each) stay, to train and to rebuild W_hat after an
# update; W_hat adds m*n floats. That is 1 + 1/c of the dense layer: 1.25x at 4x.
k4, r4 = hl.choose_split_rank((1024, 1024), 4)
held_bytes = 4 * (k4 * 1024 + r4 * (1024 - k4) + r4 * 1024) + 4 * 1024 * 1024
print(f"{held_bytes:,} B = {held_bytes / (4 * 1024 * 1024):.2f}x the dense layer")
hl.exercises.check_reconstructed_bytes((1024, 1024), 4, held_bytes)

# %% [markdown]
# ### Exercise 3 · the bandwidth dense streams at
#
# One step of the hidden-1024 LM reads all of its weights once: `S.charlm_weight_bytes(1024)` bytes. From the
# `regime` table of Claim 2, compute the **effective bandwidth of the dense model** in GB/s (10^9 bytes per
# second) in that run. Compare it with the crossover run's (Claim 1's table, hidden 1024) and with HMF's in both:
# which model's bandwidth changed between the two runs?

# %%
bandwidth = None  # your answer: a float, in GB/s

# %%
if "regime" in speed:
    dense_step_s = float(regime.loc[("dense", 1), "µs/char"]) * 1e-6   # seconds per character (= per step)
    hl.exercises.check_effective_bandwidth(S.charlm_weight_bytes(1024), dense_step_s, bandwidth)

# %% jupyter={"source_hidden": true} tags=["solution"]
# Solution: bytes per step / seconds per step. Dense streams its 17 MB almost twice as fast in the 64-character
# run as in the 16-character one, while HMF's bandwidth barely moves: that is why the two speed-ups differ.
if "regime" in speed:
    bandwidth = S.charlm_weight_bytes(1024) / dense_step_s / 1e9
    print(f"dense: {bandwidth:.1f} GB/s here, "
          f"{S.crossover_table(speed['crossover']).loc[1024, 'dense GB/s']:.1f} GB/s in the crossover run")
    hl.exercises.check_effective_bandwidth(S.charlm_weight_bytes(1024), dense_step_s, bandwidth)

# %% [markdown]
# ## 4. Live: compression, split and regime
#
# Each change trains dense, HMF at the chosen split and LMF at the chosen compression, in the chosen regime,
# on the intent task (quick mode: a handful of steps, so the numbers are rough; full mode:
# the task's live budget, `hl.tasks.IntentTask.full_settings` (150 scratch / 50 fine-tuning steps), a few seconds per model on a quiet machine --
# fewer than the committed run's 800 / 200, so expect lower scratch numbers than section 1's). Split 0 gives
# HMF LMF's structure: the two rows should then agree.
#
# **It trains one seed.** Each number below comes from a single, short training run (one seed, no noise
# test), so a read-out such as "HMF 0.886, LMF 0.869" is *not* "HMF wins": one run cannot tell a gap from
# seed noise. The committed run (section 1: three seeds, the full budget, a paired t-test) finds every intent
# difference between HMF and LMF inside the noise. Use the explorer to see how the numbers move with
# compression, split and regime, not to name a winner; to name one, run several seeds and test the paired
# difference, as notebook 06 taught (`hmf-lab reproduce --seeds 3`).

# %%
if hl.data.available("snips"):
    explorer = live.regime_explorer("intent", quick=QUICK)
    display(explorer)
else:
    print(hl.data.skip_note("snips"))

# %% [markdown]
# ## 5. Which of the paper's claims hold here, which do not, and why
#
# The cell below computes the evidence from the committed run; the discussion after it reads it.

# %%
def claim_summary(cells, tok=None):
    """One line per (task, regime, compression): HMF − LMF in % and whether it is inside the noise. Translation
    from scratch is judged on token accuracy (``tok``), where BLEU is ~0 for every model."""
    judged = cells
    if tok is not None and len(tok):
        scratch_tr = (cells.task == "translation") & (cells.regime == "scratch")
        judged = pd.concat([cells[~scratch_tr], tok[tok.regime == "scratch"]], ignore_index=True)
    rows = []
    for lab in ("hmf", "hmf(best)"):
        for r in G.hmf_vs_lmf(judged, lab).itertuples():
            metric = judged[(judged.task == r.task) & (judged.regime == r.regime)].metric.iloc[0]
            rows.append(dict(task=r.task, regime=r.regime, compression=f"{r.compression:g}x", hmf=lab,
                             metric=metric, gain_pct=round(r.pct, 2), verdict="inside noise" if r.inside_noise
                             else ("HMF better" if r.pct > 0 else "LMF better")))
    return pd.DataFrame(rows)


if cells is not None:
    verdicts = claim_summary(cells, tok)
    display(verdicts.pivot_table(index=["task", "compression", "hmf"], columns="regime", values="verdict",
                                 aggfunc="first"))
    wins = verdicts[verdicts.verdict == "HMF better"]
    print(f"HMF better than LMF beyond the noise in {len(wins)} of {len(verdicts)} comparisons; "
          f"LMF better in {int((verdicts.verdict == 'LMF better').sum())}; inside the noise in "
          f"{int((verdicts.verdict == 'inside noise').sum())}.")

# %% [markdown]
# ### Reading the committed run (numbers: the tables above and `hmf_lab/assets/results/README.md`)
#
# **"HMF is 16.77% more accurate than LMF at similar compression" -- does not hold here.**
# - *Post-training* (compress the trained model, fine-tune 100-200 steps): HMF beats LMF nowhere beyond the
#   seed noise. LMF is better beyond the noise on the language model (13% at 4x, 18% at 8x in bits per
#   character) and on translation (BLEU 10.8 vs 9.4 at 4x, 6.7 vs 5.3 at 8x); on intent they tie. This is
#   not a theorem (Eckart–Young fixes the rank, not the size, and at equal size HMF can win, notebook 02) but a
#   property of these weights: their LSTM matrices have no loud rows (row-norm max/median 1.26–1.65, notebook
#   05), so HMF's exact rows buy little while its factorized rows get a *smaller* rank than LMF's (the budget
#   paid for the dense rows). LMF starts with the smaller weight error and a short fine-tuning does not undo
#   the head start. The sweep agrees: on the LM, the split closer to LMF
#   (0.25 of the largest) narrows the 4x gap from 13% to 3%.
# - *Trained from scratch* at equal budget (the paper's regime): on intent, with its dense model's full budget,
#   every method reaches ~97% and every HMF - LMF difference is inside the noise -- the task is too easy at
#   this size to separate them. On the LM (400 steps) LMF is better beyond the noise (8% at 4x, 16% at 8x); on
#   translation token accuracy LMF is better at 4x and tied at 8x. HMF's larger rank *bound* (lm 4x: k + r =
#   46 against LMF's 32) does not turn into a better model here. Caveats the kit cannot remove on 2 CPU
#   cores: the lm and translation scratch runs are shorter than their dense parents' training, the models are
#   small (hidden 128-256), and the paper's exact models, budgets and LMF baseline are unknown to us.
#
# **"Doubling the rank" -- holds, as a statement about the structure.** At equal budget HMF's rank bound is
# larger than LMF's (notebook 02); at the all-rows end it reaches (m + n) / n times LMF's. The trained sweep
# shows that a larger rank *bound* is not a better model: post-training at 8x, the all-rows end (rank 1 for
# the factorized rows) is the worst split; from scratch the split barely matters.
#
# **"HMF runs more than 2.32x faster than pruning" -- a speed claim; section 3 measures it.** On the shipped
# small models batch-1 inference is overhead-bound: compressed models run at about dense speed once
# `hl.engines.choose` picks the fused dense kernel (the never-slower table, with its dense-vs-dense control
# for the noise). Where the weights leave the cache (the hidden-1024 LSTM of `regime.md`), both factorizations
# stream about 1/c of dense's bytes and CSR pruning about 2/c (32-bit indices): measured on a quiet machine,
# HMF runs 3.0x (4x) and 4.7x (8x) faster than dense and 3.0x / 2.6x faster than CSR pruning -- the paper's
# "more than 2.32x faster than pruning", seen on this machine. HMF has no speed edge over LMF at equal bytes
# (LMF is 6-8% faster: the same two kernels, plus one output copy for HMF; notebook 03).
#
# **What the kit's own numbers add.** Gradual magnitude pruning (Zhu & Gupta), given the same number of
# values, is competitive on accuracy: best of the three in 3 of the 8 lm/translation cells (post LM 4x,
# scratch LM 8x, post translation 4x), worst in 3 (post translation 8x and both scratch translation cells,
# by token accuracy) -- and it is the slowest where speed matters. A data-aware split heuristic
# (`activation`, the leaderboard's best on trained matrices) does not beat the paper's `top` rows after
# training: row choice matters for the weight error of a cut (notebook 05), much less after fine-tuning.
#
# **Try it.** In section 4, set the split to 0 (HMF = LMF, the rows should agree), then to 1 (the all-rows
# end) in the post regime at 8x, and compare with scratch. The committed run's command is in `run_info`
# above; `hmf-lab reproduce ... --jobs N` reruns it with more steps on a machine with time to spare.

# %% [markdown]
# ## 6. A fair test: the rows you keep, the axis, the budget, and training to convergence
#
# Section 5's verdict comes from the committed grid, and an audit of that grid (the kit's issue 19) found that
# part of "LMF beats HMF" was the protocol, not HMF. Four things were unfair to HMF; this section shows each one
# and then the run that removes them all.
#
# ### 6.1 Which rows you keep: an alphabetically sorted vocabulary
#
# `"top"` (the paper's choice) keeps the *first* k rows dense. The char LM's decoder has one row per
# character, in vocabulary order, and the grid's vocabulary was **sorted by character code**: `"top"` kept the
# rows of `'\n'`, `' '`, `'!'`, `'$'`, `'&'`, ... -- mostly punctuation, rare in the text, chosen by the
# alphabet and not by the data. The kit's vocabularies are now ordered by frequency (most frequent first), so
# `"top"` keeps the most used characters, and the kit's default row choice (`greedy`) does not look at the order
# at all. The table: the characters whose decoder rows stay dense, and the share of the validation text they
# cover (re-ordering a vocabulary permutes the model's rows exactly: the model computes the same function).

# %%
from hmf_lab.experiments import fair_test as fair
from hmf_lab.nlp.tasks import LMTask

if hl.data.available("tinyshakespeare"):
    lm_task, lm_model = LMTask.pretrained()
    chars = list(lm_task.vocab.chars)                      # by frequency (the shipped checkpoint's order)
    alpha = sorted(chars)                                  # the grid's old order
    lm_sorted = LMTask.reindex(lm_model, chars, alpha)
    val_sorted = torch.tensor([alpha.index(chars[i]) for i in lm_task.val_ids.tolist()])
    rows_kept = []
    for c in (4, 8):
        for order, model, ids, vocab in (("sorted (old)", lm_sorted, val_sorted, alpha),
                                          ("by frequency", lm_model, lm_task.val_ids, chars)):
            for heur in ("top", None):
                r = fair.dense_outputs(model, vocab, c, heuristic=heur, ids=ids)
                rows_kept.append(dict(r, vocabulary=order, dense=repr(r["dense"])))
    display(pd.DataFrame(rows_kept)[["compression", "vocabulary", "heuristic", "k", "dense", "share"]].round(3))
else:
    print(hl.data.skip_note("tinyshakespeare"))

# %% [markdown]
# ### 6.2 Rows or columns: the axis where the dense part is cheap
#
# A dense *row* costs `n` values and adds at most 1 to the rank; a dense *column* costs `m`. On a **wide**
# matrix (fewer outputs than inputs, like this decoder: 65 characters x 256 hidden units) a dense column is
# about four times cheaper than a dense row, so **column-split HMF** (`"hmf_col"`: `W_hat = [D | U V] Q`,
# parameters `m k + m r + r (n - k)`, rank bound `k + r`) reaches a much higher rank bound than the row split
# at the same budget. It is a registered method like the others (`hl.compress(model, "hmf_col", compression=c)`).

# %%
fig, axes = plt.subplots(2, 1, figsize=(9, 6))
hl.plots.split_axes(65, 256, 8, ax=axes[0])
hl.plots.split_axes(256, 256, 8, ax=axes[1])
plt.tight_layout()
plt.show()

# %% [markdown]
# ### 6.3 One budget for the whole model, not one per matrix
#
# The grid compressed **every matrix** `c`-fold. At 16x that leaves the LSTM's small input blocks (256 x 16
# per gate) at rank 1-3 whatever the method, and the model breaks for every method alike. `hl.compress(...,
# allocate="greedy")` keeps the same total of stored values but spreads it over the matrices by one solver
# for every method: calibration output error saved per stored value (`hl.nn.compress.allocation_plan` shows the
# plan without building the model). Below: LMF at 16x on the char LM, uniform against greedy.

# %%
if hl.data.available("tinyshakespeare"):
    from hmf_lab.nn.compress import allocation_plan

    X_cal = lm_task.calibration_input()
    cols = ["layer", "matrix", "shape", "compression", "rank", "rel_error"]
    for rule in ("uniform", "greedy"):
        plan = allocation_plan(lm_model, "lmf", 16, allocate=rule, X=X_cal)
        print(f"{rule}: {plan.attrs['stored']} of {plan.attrs['budget']} values "
              f"(model {plan.attrs['compression']:.2f}x), summed squared output error {plan.attrs['error']:.3f}")
        display(plan[cols].round(3))

# %% [markdown]
# ### 6.4 Training to convergence, at the paper's compression
#
# The grid's lm scratch cells trained for 400 steps against the dense parent's 2600 (dense from scratch reached
# 2.58 bits per character, the shipped model 1.99): they compared early training. The committed fair-test run
# (`scripts/converged_lm.py`, `hmf_lab/experiments/fair_test.py`) trains the char LM **from scratch for the
# full 2600 steps**, at **8x, 16x and 25x** (the same group reports its LSTM LMs at 25x), every method under
# the **greedy allocation** (solved once on the trained model, then trained from initialization), with seeds.
# Where HMF's allocation keeps no dense row, HMF *is* LMF and its row repeats LMF's cells (said in the table).
# A trained split sweep at 16x forces dense rows into HMF (a fraction of the largest split each matrix's budget
# allows) to see whether they help after training.

# %%
try:
    fair_cells = fair.load()
except FileNotFoundError as e:
    fair_cells = None
    print(e)
if fair_cells is not None:
    shipped_bpc = float(fair_cells["shipped_bits_per_char"].iloc[0])
    print(f"{fair_cells.seed.nunique()} seeds; shipped model {shipped_bpc:.3f} bits/char on the same evaluation")
    display(fair.converged_table(fair_cells))
    display(fair.against_lmf(fair_cells).round(3))
    display(fair.sweep_summary(fair_cells).round(3))
    hl.plots.plot_fair_test(fair_cells)
    plt.show()

# %% [markdown]
# ### 6.5 Reading the fair test (numbers: the tables above; `hmf_lab/assets/results/converged_lm/README.md`)
#
# - **Converged.** Dense trained from scratch for 2600 steps reaches 1.995 ± 0.009 bits per character against
#   the shipped model's 1.989: these are trained models, not early training.
# - **The row choice was part of the old gap, not all of it.** After compression and 100 fine-tuning steps
#   (`hmf_lab/assets/results/decoder_rows/`, 3 seeds), HMF − LMF was −13.1% (4x) and −17.9% (8x) with the
#   alphabet's rows, −6.2% and −14.6% with order-invariant rows: still beyond the noise.
# - **Given one budget for the whole model, the solver keeps no dense row at all.** At 8x, 16x and 25x the greedy
#   allocation picks split 0 for every matrix of HMF by rows: HMF *is* LMF there (2.619, 2.753, 3.235).
# - **HMF by columns against LMF follows where its allocation puts the decoder's budget**: +2.4% at 8x (5 seeds;
#   its decoder at 10.5x against LMF's 13.0x), −15.7% at 16x (its decoder at 25.9x against LMF's 13.0x), +13.8%
#   at 25x (its decoder at 8.6x against LMF's 25.9x), all three beyond the noise. The solver judges matrices by their output error right after a cut
#   of the trained model; for a model trained from scratch the decoder matters more than that error says.
# - **Gradual pruning is the best of the four at every compression** (+14.4%, +10.9%, +18.5% against LMF), with
#   its decoder kept at 2.4x–7.4x: the same lesson from the other side.
# - **Where HMF beats LMF beyond the noise at this scale:** by rows, nowhere; by columns, at 8x (+2.4%) and 25x
#   (+13.8%), each with an allocation unlike LMF's, while it loses at 16x (−15.7%): not shown to be the column
#   structure's doing rather than the budget's place.
#
# - **The trained split sweep at 16x** (the third table above: HMF with dense rows forced into each matrix's greedy
#   budget, trained from scratch): every forced split is worse than none, beyond the noise, and the more rows the
#   worse (fraction 0.25: −7.6%, 0.5: −16.2%, 1: −38.7% against LMF). The forced splits leave 2–11% of the budget
#   unused (coarse rank steps), which costs far less than those gaps. Training agrees with the solver.
#
# Not settled yet: a protocol giving every method the *same* per-matrix budgets, so that only the structure
# differs.

# %% [markdown]
# ### 6.6 The whole grid on the fixed protocol
#
# Section 1's grid, rerun with every fix above: frequency-ordered vocabularies, the order-invariant row choice,
# HMF by rows **and** by columns, LMF and pruning, each under the uniform **and** the greedy allocation; lm,
# intent, translation; post and scratch; 4x and 8x; 3 seeds (300 cells, `hmf_lab/assets/results/fair_grid/`,
# its README has the command and the time). Each row is compared with LMF **under the same allocation**, paired
# over seeds; the first column keeps the old default (the shipped grid's HMF, alphabet rows) as its own line.
# Translation is read on token accuracy here (400 scratch steps leave BLEU near 0; the README has both).

# %%
fair_grid_dir = R.RESULTS_DIR / "fair_grid"
if (fair_grid_dir / "comparison.csv").is_file():
    grid_cmp = pd.read_csv(fair_grid_dir / "comparison.csv")
    shown = grid_cmp[grid_cmp.task != "translation"]      # translation: its token-accuracy rows
    fig, ax = plt.subplots(figsize=(11, 5.5))
    hl.plots.grid_comparison_map(shown, ax)
    fig.tight_layout()
    plt.show()
    display(Markdown(fair.grid_comparison_markdown(shown)))
else:
    print(f"no {fair_grid_dir / 'comparison.csv'}: run the command in that folder's README")

# %% [markdown]
# *Figure: a heat map, one row per (task, regime, compression), one column per comparison with LMF under the same
# allocation (the old default first). Blue: better than LMF, red: worse (the colour stops at ±20%, the printed
# numbers do not); `~` marks a difference inside the noise (paired t-test over 3 seeds at 5%).*
#
# Reading it (numbers: the table above):
#
# - **intent** does not separate the structures: every row within 0.8% of LMF, all but one inside the noise.
# - **lm, uniform**: fixing the rows halves the old gap, but HMF by rows stays 6–17% behind LMF; HMF by columns
#   is 1–6% behind (cheap dense columns on the wide decoder).
# - **lm, greedy**: the solver keeps no dense row (HMF by rows *is* LMF: 0.00%), and **HMF by columns is ahead of
#   LMF by 0.8–2.0%, beyond the noise in 3 of 4 cells**. Its allocation is not LMF's (its decoder gets more
#   values), so part of that lead may be the budget's place rather than the column structure.
# - **translation**: HMF behind or inside the noise under the uniform allocation; under the greedy one, no
#   consistent direction, and the greedy allocation itself hurts every low-rank method post at 8x (it squeezes
#   the output layer to 30–36x).
#
# So in this grid HMF beats LMF beyond the noise by columns on the char LM, by 1–2%, and by rows nowhere.
