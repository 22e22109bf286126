# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # HMF explorer
#
# The hidden-to-gates weight of the shipped character language model (an LSTM, shape 1024 x 256).
# HMF keeps `split` rows dense and factorizes the others at rank `rank`. Move the sliders: the error,
# the stored values, the compression and the timed inference (dense, HMF, LMF) follow.
# Served by `make app` (Voilà): sliders only, no code.

# %%
import hmf_lab as hl

W = hl.models.pretrained_weights("char_lm")["lstm.weight_hh_l0"]  # (4H, H) = (1024, 256)
ex = hl.explorer(W, split_step=W.shape[0] // 32, progress=False)  # no progress bar: it would close before the page shows
ex
