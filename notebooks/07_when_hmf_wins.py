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
# ## 3. Speed: where does a compressed model run faster than dense?
#
# The speed side, measured on this 2-core machine (`hmf_lab/assets/results/speed/`, each file's header says
# the command, the load and the clock): **never_slower** -- every shipped model x method x compression with
# the engine `hl.engines.choose` picked, against dense and against a copy of dense (the noise control);
# **regime** -- a hidden-1024 character LSTM end to end, where the weights leave the cache, with the ideal
# ratio from bytes moved; **crossover** -- speed-up over dense against hidden size.

# %%
from pathlib import Path

candidates = [RESULTS / "speed", Path(R.__file__).resolve().parents[1] / "data" / "results" / "speed"]
speed_dir = next((d for d in candidates if d.is_dir()), candidates[0])
speed_files = sorted(speed_dir.glob("*.csv")) + sorted(speed_dir.glob("*.md")) if speed_dir.is_dir() else []
if not speed_files:
    print(f"no speed results in {speed_dir}: run the speed benchmarks (benchmarks/) to create them; "
          "notebook 03 measures single layers live")
for f in speed_files:
    if f.suffix == ".md":
        display(Markdown(f.read_text()))
    else:
        display(Markdown(f"**{f.name}**"))
        display(pd.read_csv(f).head(30))
for f in sorted(speed_dir.glob("*.png")) if speed_dir.is_dir() else []:
    from IPython.display import Image
    display(Image(filename=str(f)))

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
