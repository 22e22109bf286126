"""Small LSTM models for real NLP tasks: a thin re-export module, plus the shipped checkpoints.

Each concept has its own module; this one keeps the historical names working
(``hl.models.CharLM``, ``hl.models.LMTask``, ``hl.models.load_pretrained`` ...):

- :mod:`hmf_lab.vocab`: tokenizer and vocabularies;
- :mod:`hmf_lab.networks`: ``CharLM`` (Tiny Shakespeare, bits per character), ``IntentClassifier``
  (SNIPS, accuracy), ``Translator`` (English -> Spanish verse pairs, corpus BLEU);
- :mod:`hmf_lab.training`: the one seeded training loop, per-task batch losses and metrics;
- :mod:`hmf_lab.tasks`: the :class:`~hmf_lab.tasks.Task` base class and the task registry ``TASKS``;
- :mod:`hmf_lab.checkpoints`: the shipped checkpoints (package data). ``load_pretrained(name)``
  rebuilds a shipped model from ``hmf_lab/assets/<name>.pt`` (float16 state dict, SHA-256 checked,
  loaded with ``torch.load(weights_only=True)``); ``pretrained_weights(name)`` gives its 2-D weights.

>>> import torch, hmf_lab as hl
>>> m = hl.models.CharLM(vocab_size=10, embed=8, hidden=16)
>>> m(torch.zeros(2, 5, dtype=torch.long)).shape
torch.Size([2, 5, 10])
"""
from __future__ import annotations

from pathlib import Path

import torch
import torch.nn as nn

from .networks import CharLM, IntentClassifier, Translator
from .tasks import TASKS, IntentTask, LMTask, Task, TranslationTask, get_task, register_task  # noqa: F401
from .training import (TrainConfig, _loop, _lr_lambda, evaluate_intent, evaluate_lm,  # noqa: F401
                       evaluate_translation, lm_batches, train, train_intent, train_lm, train_translation)
from .vocab import _SPECIALS, BOS, EOS, PAD, UNK, CharVocab, WordVocab, _pad, tokenize  # noqa: F401

__all__ = ["CharLM", "IntentClassifier", "Translator", "CharVocab", "WordVocab", "tokenize",
           "PRETRAINED", "checkpoint_path", "load_pretrained", "pretrained_weights", "save_checkpoint",
           "load_checkpoint", "lm_batches", "train_lm", "evaluate_lm", "train_intent", "evaluate_intent",
           "train_translation", "evaluate_translation", "TrainConfig"]

# ------------------------------------------------------------------------------------- checkpoints
# (they live in hmf_lab.checkpoints; re-exported here so hl.models.load_pretrained etc. keep working)
from .checkpoints import (PRETRAINED, checkpoint_path, load_checkpoint, load_pretrained,  # noqa: E402,F401
                          pretrained_weights, save_checkpoint)
