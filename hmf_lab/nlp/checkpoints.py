"""The shipped checkpoints: save, load safely, verify, and rebuild the trained models.

The checkpoints (``char_lm.pt``, ``intent.pt``, ``translation.pt``; the transformers ``char_tf.pt`` and
``intent_tf.pt``) are package data in
``hmf_lab/assets/``, found with :mod:`importlib.resources`, so they travel inside a wheel. Their
SHA-256 is recorded in ``hmf_lab/assets/checkpoints.json`` (with the training settings and the
metrics measured at the end of training) and checked on every load.

Loading uses ``torch.load(weights_only=True)`` only. Every failure names the file and is a
``ValueError`` (or ``FileNotFoundError``): empty, truncated, not a ``torch.save`` file, no
``config``/``state_dict``, a checksum mismatch, or a file that asks to run code, which is "not a
trusted checkpoint" and is never loaded.

Each checkpoint carries its vocabulary (``payload["vocab"]``), and the model's embedding and output rows
follow it, so a checkpoint is consistent in whatever order it was saved. The shipped ones have
frequency-ordered vocabularies (most frequent first); until they were re-ordered by
:func:`hmf_lab.nlp.tasks.reorder_checkpoint` (``scripts/reorder_vocab.py``) the character LM's was sorted by character.
A copy of an older file next to a newer ``checkpoints.json`` fails the SHA-256 check (the files are
package data; nothing is cached elsewhere).

>>> import hmf_lab as hl
>>> sorted(hl.nlp.checkpoints.PRETRAINED)
['char_lm', 'char_tf', 'intent', 'intent_tf', 'translation']
>>> len(hl.nlp.checkpoints.registry()["char_lm"]["sha256"])
64
"""
from __future__ import annotations

import hashlib
import io
import json
import pickle
from importlib import resources
from pathlib import Path

import torch
import torch.nn as nn

from hmf_lab.nlp.networks import CharLM, CharTransformer, IntentClassifier, TransformerIntentClassifier, Translator

__all__ = ["PRETRAINED", "assets_dir", "checkpoint_path", "registry", "save_checkpoint", "load_checkpoint",
           "load_pretrained", "pretrained_weights"]

#: shipped checkpoints: name -> (file in hmf_lab/assets/, model class)
PRETRAINED = {
    "char_lm": ("char_lm.pt", CharLM),
    "intent": ("intent.pt", IntentClassifier),
    "translation": ("translation.pt", Translator),
    "char_tf": ("char_tf.pt", CharTransformer),
    "intent_tf": ("intent_tf.pt", TransformerIntentClassifier),
}


def assets_dir() -> Path:
    """The package-data folder ``hmf_lab/assets`` (checkpoints, registries, shipped results).

    >>> (assets_dir() / "checkpoints.json").is_file()
    True
    """
    return Path(str(resources.files("hmf_lab") / "assets"))


def registry() -> dict:
    """``checkpoints.json``: per checkpoint its SHA-256, training settings and measured metrics.

    >>> registry()["intent"]["metrics"]["accuracy"] > 0.9
    True
    """
    return json.loads((resources.files("hmf_lab") / "assets" / "checkpoints.json").read_text(encoding="utf-8"))


def checkpoint_path(name: str) -> Path:
    """Path of a shipped checkpoint (package data).

    >>> checkpoint_path("char_lm").name
    'char_lm.pt'
    """
    if not isinstance(name, str):
        raise TypeError(f"checkpoint name must be a str, got {type(name).__name__}")
    if name not in PRETRAINED:
        raise ValueError(f"unknown pretrained model {name!r}; expected one of {sorted(PRETRAINED)}")
    return assets_dir() / PRETRAINED[name][0]


def save_checkpoint(model: nn.Module, file, extra: dict | None = None, dtype=torch.float16) -> str:
    """Save ``{"config", "state_dict" (float16 by default), **extra}``; returns the file's SHA-256.

    ``model.config`` holds the constructor arguments. Loadable with ``weights_only=True``.

    >>> import tempfile, os, hmf_lab as hl
    >>> m = hl.models.CharLM(vocab_size=5, embed=4, hidden=8)
    >>> f = os.path.join(tempfile.mkdtemp(), "m.pt")
    >>> sha = save_checkpoint(m, f)
    >>> type(load_checkpoint(f, hl.models.CharLM, sha256=sha)[0]).__name__
    'CharLM'
    """
    sd = {k: (v.detach().to(dtype) if v.is_floating_point() else v.detach()).clone().contiguous()
          for k, v in model.state_dict().items()}
    torch.save({"config": dict(model.config), "state_dict": sd, **(extra or {})}, file)
    return hashlib.sha256(Path(file).read_bytes()).hexdigest()


def _read(file) -> tuple[bytes, str]:
    """Bytes and display name of a checkpoint given as a path or a binary file object."""
    if hasattr(file, "read"):
        return file.read(), getattr(file, "name", repr(file))
    if not isinstance(file, (str, Path)):
        raise TypeError(f"checkpoint file must be a path or a binary file object, got {type(file).__name__}")
    p = Path(file)
    if not p.is_file():
        raise FileNotFoundError(f"checkpoint {p} does not exist (or is not a file)")
    return p.read_bytes(), str(p)


def load_checkpoint(file, cls, *, sha256: str | None = None) -> tuple[nn.Module, dict]:
    """Rebuild a model of class ``cls`` from a checkpoint; returns ``(model in eval mode, payload)``.

    ``sha256``: when given, the file must have this SHA-256 (else ``ValueError``). The file is read
    with ``torch.load(weights_only=True)``: tensors and plain containers only.

    >>> load_checkpoint("no/such.pt", CharLM)
    Traceback (most recent call last):
    ...
    FileNotFoundError: checkpoint no/such.pt does not exist (or is not a file)
    """
    blob, label = _read(file)
    if sha256 is not None:
        got = hashlib.sha256(blob).hexdigest()
        if got != sha256:
            raise ValueError(f"checkpoint {label} is corrupt or modified: SHA-256 {got}, expected {sha256} "
                             f"(hmf_lab/assets/checkpoints.json). Reinstall hmf_lab or retrain it with "
                             f"scripts/train_models.py.")
    if not blob:
        raise ValueError(f"checkpoint {label} is empty (0 bytes); expected a file written by torch.save")
    if not (blob.startswith(b"PK\x03\x04") or blob[:1] == b"\x80"):
        raise ValueError(f"checkpoint {label} is not a torch.save file (it starts with {blob[:12]!r}); "
                         f"expected a checkpoint written by hl.models.save_checkpoint")
    try:
        payload = torch.load(io.BytesIO(blob), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        # torch's message would suggest weights_only=False, i.e. running the file's code: never do that
        raise ValueError(f"checkpoint {label} is not a trusted checkpoint: it holds objects other than "
                         f"tensors and plain containers (a pickle that can run code), so it was not loaded. "
                         f"Use only checkpoints written by hl.models.save_checkpoint.") from None
    except (RuntimeError, EOFError, KeyError, ValueError, OSError) as e:
        raise ValueError(f"checkpoint {label} is truncated or corrupt: torch.load could not read it "
                         f"({type(e).__name__}: {str(e).splitlines()[0][:120] if str(e) else 'no detail'})") from None
    if not isinstance(payload, dict) or not {"config", "state_dict"} <= set(payload):
        what = sorted(payload)[:8] if isinstance(payload, dict) else type(payload).__name__
        raise ValueError(f"checkpoint {label} has no 'config' and 'state_dict' (found {what}); expected a "
                         f"file written by hl.models.save_checkpoint")
    if not isinstance(payload["config"], dict) or not isinstance(payload["state_dict"], dict):
        raise ValueError(f"checkpoint {label}: 'config' and 'state_dict' must be dicts, got "
                         f"{type(payload['config']).__name__} and {type(payload['state_dict']).__name__}")
    try:
        model = cls(**payload["config"])
        model.load_state_dict({k: v.float() if v.is_floating_point() else v
                               for k, v in payload["state_dict"].items()})
    except (TypeError, RuntimeError, AttributeError) as e:
        raise ValueError(f"checkpoint {label} does not fit {getattr(cls, '__name__', cls)}: "
                         f"{str(e).splitlines()[0][:200]}") from None
    return model.eval(), payload


def load_pretrained(name: str = "char_lm", with_payload: bool = False):
    """The shipped trained model ``name`` ("char_lm", "intent", "translation"), float32, eval mode.

    The file's SHA-256 is checked against ``checkpoints.json``. With ``with_payload=True`` returns
    ``(model, payload)``; the payload holds the vocabulary and the metrics measured when it was trained.

    >>> m = load_pretrained("char_lm")
    >>> type(m).__name__, m.training
    ('CharLM', False)
    """
    p = checkpoint_path(name)
    if not p.is_file():
        raise FileNotFoundError(f"checkpoint {p} is missing; reinstall hmf_lab or recreate it with "
                                f"`python scripts/train_models.py --task {name}`")
    sha = registry().get(name, {}).get("sha256")
    if sha is None:
        raise ValueError(f"checkpoints.json has no SHA-256 for {name!r}; rerun scripts/train_models.py")
    model, payload = load_checkpoint(p, PRETRAINED[name][1], sha256=sha)
    return (model, payload) if with_payload else model


def pretrained_weights(name: str = "char_lm") -> dict[str, torch.Tensor]:
    """The 2-D weight matrices of a shipped model (float32), e.g. ``"lstm.weight_hh_l0"`` -> (4H, H).

    Embedding tables are left out (they are lookups, not matrix products).

    >>> sorted(pretrained_weights("char_lm"))[:2]
    ['decoder.weight', 'lstm.weight_hh_l0']
    """
    model = load_pretrained(name)
    emb = {n for n, mod in model.named_modules() if isinstance(mod, nn.Embedding)}
    return {k: v.detach().clone() for k, v in model.state_dict().items()
            if v.ndim == 2 and k.rsplit(".", 1)[0] not in emb}
