"""Small LSTM models for real NLP tasks: a thin re-export module, plus the shipped checkpoints.

Each concept has its own module; this one keeps the historical names working
(``hl.models.CharLM``, ``hl.models.LMTask``, ``hl.models.load_pretrained`` ...):

- :mod:`hmf_lab.vocab`: tokenizer and vocabularies;
- :mod:`hmf_lab.networks`: ``CharLM`` (Tiny Shakespeare, bits per character), ``IntentClassifier``
  (SNIPS, accuracy), ``Translator`` (English -> Spanish verse pairs, corpus BLEU);
- :mod:`hmf_lab.training`: the one seeded training loop, per-task batch losses and metrics;
- :mod:`hmf_lab.tasks`: the :class:`~hmf_lab.tasks.Task` base class and the task registry ``TASKS``;
- below: the shipped checkpoints. ``load_pretrained(name)`` rebuilds a shipped model from
  ``data/<name>.pt`` (float16 state dict, loaded with ``torch.load(weights_only=True)``);
  ``pretrained_weights(name)`` gives its 2-D weight matrices.

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

_DATA = Path(__file__).resolve().parents[1] / "data"


# ------------------------------------------------------------------------------------- checkpoints

#: shipped checkpoints: name -> (file in data/, model class)
PRETRAINED = {
    "char_lm": ("char_lm.pt", CharLM),
    "intent": ("intent.pt", IntentClassifier),
    "translation": ("translation.pt", Translator),
}


def checkpoint_path(name: str) -> Path:
    """Path of a shipped checkpoint in the repository's ``data/`` folder.

    >>> checkpoint_path("char_lm").name
    'char_lm.pt'
    """
    if name not in PRETRAINED:
        raise ValueError(f"unknown pretrained model {name!r}; expected one of {sorted(PRETRAINED)}")
    return _DATA / PRETRAINED[name][0]


def save_checkpoint(model: nn.Module, file, extra: dict | None = None, dtype=torch.float16) -> None:
    """Save ``{"config", "state_dict" (float16 by default), **extra}``; loadable with weights_only=True."""
    sd = {k: (v.detach().to(dtype) if v.is_floating_point() else v.detach()).clone().contiguous()
          for k, v in model.state_dict().items()}
    torch.save({"config": dict(model.config), "state_dict": sd, **(extra or {})}, file)


def load_checkpoint(file, cls) -> tuple[nn.Module, dict]:
    """Rebuild a model of class ``cls`` from a checkpoint file; returns ``(model in eval mode, payload)``."""
    payload = torch.load(file, map_location="cpu", weights_only=True)
    model = cls(**payload["config"])
    model.load_state_dict({k: v.float() if v.is_floating_point() else v
                           for k, v in payload["state_dict"].items()})
    return model.eval(), payload


def load_pretrained(name: str = "char_lm", with_payload: bool = False):
    """The shipped trained model ``name`` ("char_lm", "intent", "translation"), float32, eval mode.

    With ``with_payload=True`` returns ``(model, payload)``; the payload holds the vocabulary and the
    metrics measured when it was trained.

    >>> m = load_pretrained("char_lm")  # doctest: +SKIP
    """
    p = checkpoint_path(name)
    if not p.is_file():
        raise FileNotFoundError(f"checkpoint {p} is missing; recreate it with "
                                f"`python scripts/train_models.py --task {name}`")
    model, payload = load_checkpoint(p, PRETRAINED[name][1])
    return (model, payload) if with_payload else model


def pretrained_weights(name: str = "char_lm") -> dict[str, torch.Tensor]:
    """The 2-D weight matrices of a shipped model (float32), e.g. ``"lstm.weight_hh_l0"`` -> (4H, H).

    Embedding tables are left out (they are lookups, not matrix products).

    >>> W = pretrained_weights("char_lm")  # doctest: +SKIP
    """
    model = load_pretrained(name)
    emb = {n for n, mod in model.named_modules() if isinstance(mod, nn.Embedding)}
    return {k: v.detach().clone() for k, v in model.state_dict().items()
            if v.ndim == 2 and k.rsplit(".", 1)[0] not in emb}
