"""One seeded training loop for every task, the per-task batch losses, and the task metrics.

:func:`train` is the loop (Adam, cosine-decayed learning rate, gradient clipping, seeded batches);
a task supplies only ``loss_fn(step, generator) -> loss`` of one random batch. ``train_lm``,
``train_intent`` and ``train_translation`` are that loop with each task's batch loss.

>>> import torch
>>> from hmf_lab.nlp.networks import CharLM
>>> from hmf_lab.nlp.training import TrainConfig, train_lm
>>> m = CharLM(vocab_size=4, embed=4, hidden=8)
>>> len(train_lm(m, torch.arange(200) % 4, TrainConfig(steps=3, batch_size=2, seq_len=8), progress=False))
3
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F
from tqdm.auto import tqdm

from hmf_lab.nlp.vocab import _SPECIALS, PAD, WordVocab

__all__ = ["TrainConfig", "train", "lm_batches", "lm_loss", "intent_loss", "translation_loss",
           "train_lm", "evaluate_lm", "evaluate_causal_lm", "train_intent", "evaluate_intent", "train_translation",
           "evaluate_translation"]


@dataclass
class TrainConfig:
    """Training settings of :func:`train` (every task uses the same loop)."""

    steps: int = 1000          # optimizer steps
    batch_size: int = 32       # sequences per step
    seq_len: int = 128         # characters per training sequence (language model only)
    lr: float = 2e-3           # Adam learning rate (cosine-decayed to 10% over the run)
    clip: float = 1.0          # gradient-norm clip
    seed: int = 0              # seeds batch sampling and dropout


def _lr_lambda(steps):
    return lambda s: 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(s, steps) / max(steps, 1)))


def train(model: nn.Module, cfg: TrainConfig, loss_fn, desc: str = "train", progress: bool = True,
          callback=None) -> list[float]:
    """The seeded training loop: ``loss_fn(step, generator)`` returns the loss of one batch.

    ``callback(step)`` runs before every step and once after the last (``step == cfg.steps``), e.g. to
    update pruning masks. Returns the loss per step; leaves the model in eval mode.

    >>> import torch
    >>> lin = torch.nn.Linear(2, 1)
    >>> losses = train(lin, TrainConfig(steps=5), lambda step, g: lin(torch.ones(1, 2)).pow(2).sum(),
    ...                progress=False)
    >>> len(losses), losses[-1] < losses[0]
    (5, True)
    """
    g = torch.Generator().manual_seed(cfg.seed)
    torch.manual_seed(cfg.seed)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.Adam(params, lr=cfg.lr)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, _lr_lambda(cfg.steps))
    model.train()
    losses = []
    bar = tqdm(range(cfg.steps), desc=desc, disable=not progress, leave=False)
    for step in bar:
        if callback is not None:
            callback(step)
        loss = loss_fn(step, g)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(params, cfg.clip)
        opt.step()
        sched.step()
        losses.append(loss.item())
        if step % 20 == 0:
            bar.set_postfix(loss=f"{losses[-1]:.3f}")
    if callback is not None:
        callback(cfg.steps)
    model.eval()
    return losses


def _loop(model, cfg: TrainConfig, loss_fn, desc: str, progress: bool, callback=None):
    """The former name of :func:`train` (kept for callers of the old ``hmf_lab.models._loop``)."""
    return train(model, cfg, loss_fn, desc, progress, callback)


# --------------------------------------------------------------------------------- language model


def lm_batches(ids: torch.Tensor, batch_size: int, seq_len: int, generator=None):
    """One random batch of ``(input, target)`` windows from a 1-D id tensor: ``(B, T)`` each.

    >>> x, y = lm_batches(torch.arange(100), 4, 10, torch.Generator().manual_seed(0))
    >>> x.shape, bool((y[:, :-1] == x[:, 1:]).all())
    (torch.Size([4, 10]), True)
    """
    if ids.numel() < seq_len + 2:
        raise ValueError(f"text has {ids.numel()} ids, need at least seq_len + 2 = {seq_len + 2}")
    start = torch.randint(0, ids.numel() - seq_len - 1, (batch_size,), generator=generator)
    idx = start[:, None] + torch.arange(seq_len + 1)
    win = ids[idx]
    return win[:, :-1], win[:, 1:]


def lm_loss(model, ids: torch.Tensor, batch_size: int, seq_len: int, generator=None) -> torch.Tensor:
    """Next-character cross-entropy (nats/char) of one random batch of windows of ``ids``."""
    x, y = lm_batches(ids, batch_size, seq_len, generator)
    return F.cross_entropy(model(x).flatten(0, 1), y.flatten())


def train_lm(model, ids: torch.Tensor, cfg: TrainConfig = TrainConfig(), progress: bool = True,
             callback=None) -> list[float]:
    """Train a character LM on random windows of ``ids``; returns the loss per step (nats/char)."""
    return train(model, cfg, lambda step, g: lm_loss(model, ids, cfg.batch_size, cfg.seq_len, g),
                 "train LM", progress, callback)


@torch.no_grad()
def evaluate_lm(model, ids: torch.Tensor, seq_len: int = 256, max_chars: int | None = None) -> dict:
    """Bits per character and perplexity on ``ids`` (consecutive windows, state carried over).

    >>> from hmf_lab.nlp.networks import CharLM
    >>> m = CharLM(vocab_size=4, embed=4, hidden=8)
    >>> r = evaluate_lm(m, torch.randint(0, 4, (200,)), seq_len=50)
    >>> sorted(r)
    ['bits_per_char', 'perplexity']
    """
    model.eval()
    if max_chars is not None:
        ids = ids[:max_chars + 1]
    n = (ids.numel() - 1) // seq_len * seq_len
    if n <= 0:
        raise ValueError(f"need more than seq_len={seq_len} ids to evaluate, got {ids.numel()}")
    x, y = ids[:n].view(1, -1), ids[1:n + 1].view(1, -1)
    total, state = 0.0, None
    for s in range(0, n, seq_len):
        logits, state = model(x[:, s:s + seq_len], state, return_state=True)
        total += float(F.cross_entropy(logits.flatten(0, 1), y[:, s:s + seq_len].flatten(), reduction="sum"))
    nats = total / n
    return {"bits_per_char": nats / math.log(2), "perplexity": math.exp(nats)}


@torch.no_grad()
def evaluate_causal_lm(model, ids: torch.Tensor, context: int, stride: int | None = None,
                       max_chars: int | None = None, batch_size: int = 64) -> dict:
    """Bits and nats per character and perplexity of a fixed-context model (a transformer) on ``ids``.

    Sliding windows of ``context`` characters, ``stride`` apart (default ``context // 2``): the first window
    scores all its positions, every later one only its last ``stride``: each character is scored once, with at
    least ``context - stride`` characters before it (all of them near the start); fewer than ``stride`` at
    the very end are left out.

    >>> from hmf_lab.nlp.networks import CharTransformer
    >>> m = CharTransformer(vocab_size=4, d_model=8, heads=2, layers=1, context=16)
    >>> r = evaluate_causal_lm(m, torch.randint(0, 4, (100,)), context=16)
    >>> sorted(r), round(r["bits_per_char"] * math.log(2) / r["nats_per_char"], 6)
    (['bits_per_char', 'nats_per_char', 'perplexity'], 1.0)
    """
    context = int(context)
    stride = context // 2 if stride is None else int(stride)
    if not 0 < stride <= context:
        raise ValueError(f"stride must be in 1..context={context}, got {stride}")
    model.eval()
    if max_chars is not None:
        ids = ids[:max_chars + 1]
    if ids.numel() < context + 1:
        raise ValueError(f"need more than context={context} ids to evaluate, got {ids.numel()}")
    starts = list(range(0, ids.numel() - context, stride))   # window s: inputs ids[s:s+T], targets ids[s+1:s+T+1]
    total, count = 0.0, 0
    for b in range(0, len(starts), batch_size):
        st = torch.tensor(starts[b:b + batch_size])
        idx = st[:, None] + torch.arange(context + 1)
        win = ids[idx]
        nll = F.cross_entropy(model(win[:, :-1]).transpose(1, 2), win[:, 1:], reduction="none")  # (B, T)
        keep = torch.ones_like(nll, dtype=torch.bool)
        keep[st > 0, :context - stride] = False              # already scored by the previous window
        total += float(nll[keep].sum())
        count += int(keep.sum())
    nats = total / count
    return {"bits_per_char": nats / math.log(2), "nats_per_char": nats, "perplexity": math.exp(nats)}


# ---------------------------------------------------------------------------------------- intent


def intent_loss(model, x: torch.Tensor, y: torch.Tensor, batch_size: int, generator=None) -> torch.Tensor:
    """Cross-entropy of one random batch of padded utterances ``x`` (N, T) with labels ``y`` (N,)."""
    idx = torch.randint(0, x.shape[0], (batch_size,), generator=generator)
    xb = x[idx]
    xb = xb[:, :max(1, int((xb != PAD).sum(1).max()))]
    return F.cross_entropy(model(xb), y[idx])


def train_intent(model, x: torch.Tensor, y: torch.Tensor, cfg: TrainConfig = TrainConfig(),
                 progress: bool = True, callback=None) -> list[float]:
    """Train the intent classifier on padded ids ``x`` (N, T) and labels ``y`` (N,)."""
    return train(model, cfg, lambda step, g: intent_loss(model, x, y, cfg.batch_size, g),
                 "train intent", progress, callback)


@torch.no_grad()
def evaluate_intent(model, x: torch.Tensor, y: torch.Tensor) -> dict:
    """Accuracy of the intent classifier.

    >>> from hmf_lab.nlp.networks import IntentClassifier
    >>> m = IntentClassifier(vocab_size=10, n_classes=3, embed=4, hidden=8)
    >>> 0 <= evaluate_intent(m, torch.tensor([[4, 5]]), torch.tensor([1]))["accuracy"] <= 1
    True
    """
    model.eval()
    pred = torch.cat([model(x[i:i + 256]).argmax(-1) for i in range(0, x.shape[0], 256)])
    return {"accuracy": float((pred == y).float().mean())}


# ----------------------------------------------------------------------------------- translation


def translation_loss(model, src: torch.Tensor, tgt: torch.Tensor, batch_size: int, generator=None) -> torch.Tensor:
    """Teacher-forced cross-entropy of one random batch; ``tgt`` rows are ``<s> w1 .. wn </s>`` padded with 0."""
    idx = torch.randint(0, src.shape[0], (batch_size,), generator=generator)
    s, t = src[idx], tgt[idx]
    s = s[:, :max(1, int((s != PAD).sum(1).max()))]
    t = t[:, :max(2, int((t != PAD).sum(1).max()))]
    logits = model(s, t[:, :-1])
    return F.cross_entropy(logits.flatten(0, 1), t[:, 1:].flatten(), ignore_index=PAD)


def train_translation(model, src: torch.Tensor, tgt: torch.Tensor, cfg: TrainConfig = TrainConfig(),
                      progress: bool = True, callback=None) -> list[float]:
    """Train with teacher forcing; ``tgt`` rows are ``<s> w1 .. wn </s>`` padded with 0."""
    return train(model, cfg, lambda step, g: translation_loss(model, src, tgt, cfg.batch_size, g),
                 "train translation", progress, callback)


@torch.no_grad()
def evaluate_translation(model, src: torch.Tensor, tgt: torch.Tensor, tgt_vocab: WordVocab,
                         references: list[list[str]] | None = None, batch_size: int = 128) -> dict:
    """Corpus BLEU (greedy decoding, word level, lower-case) and teacher-forced token accuracy.

    ``references`` are the tokenized reference sentences (default: decoded from ``tgt``, so ``<unk>``
    stays in them).
    """
    from hmf_lab.nlp.bleu import corpus_bleu, signature
    model.eval()
    correct = total = 0
    hyps = []
    for i in range(0, src.shape[0], batch_size):
        s, t = src[i:i + batch_size], tgt[i:i + batch_size]
        s = s[:, :max(1, int((s != PAD).sum(1).max()))]
        t = t[:, :max(2, int((t != PAD).sum(1).max()))]
        pred = model(s, t[:, :-1]).argmax(-1)
        gold = t[:, 1:]
        keep = gold != PAD
        correct += int(((pred == gold) & keep).sum())
        total += int(keep.sum())
        hyps += [tgt_vocab.decode(h) for h in model.translate(s, max_len=int(t.shape[1]) + 10)]
    if references is None:
        references = [[w for w in tgt_vocab.decode(row) if w not in _SPECIALS] for row in tgt.tolist()]
    return {"bleu": 100 * corpus_bleu(hyps, [[r] for r in references]), "token_accuracy": correct / max(total, 1),
            "bleu_signature": signature()}   # sacrebleu's, so the score is comparable with published ones

