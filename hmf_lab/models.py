"""Small LSTM models for real NLP tasks, their seeded training loops, metrics and shipped checkpoints.

Three tasks, each small enough to train on two CPU cores in minutes:

- ``"char_lm"``: a character-level LSTM language model on Tiny Shakespeare (bits per character);
- ``"intent"``: an LSTM intent classifier on SNIPS (accuracy);
- ``"translation"``: an LSTM encoder–decoder with dot attention, English -> Spanish verse pairs
  (corpus BLEU and token accuracy).

``load_pretrained(name)`` rebuilds a shipped model from ``data/<name>.pt`` (float16 state dict, loaded
with ``torch.load(weights_only=True)``); ``pretrained_weights(name)`` gives its 2-D weight matrices.

>>> import torch, hmf_lab as hl
>>> m = hl.models.CharLM(vocab_size=10, embed=8, hidden=16)
>>> m(torch.zeros(2, 5, dtype=torch.long)).shape
torch.Size([2, 5, 10])
"""
from __future__ import annotations

import math
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F
from tqdm.auto import tqdm

__all__ = ["CharLM", "IntentClassifier", "Translator", "CharVocab", "WordVocab", "tokenize",
           "PRETRAINED", "checkpoint_path", "load_pretrained", "pretrained_weights", "save_checkpoint",
           "load_checkpoint", "lm_batches", "train_lm", "evaluate_lm", "train_intent", "evaluate_intent",
           "train_translation", "evaluate_translation", "TrainConfig"]

_DATA = Path(__file__).resolve().parents[1] / "data"

PAD, UNK, BOS, EOS = 0, 1, 2, 3
_SPECIALS = ["<pad>", "<unk>", "<s>", "</s>"]

# --------------------------------------------------------------------------------------------- vocab


def tokenize(text: str) -> list[str]:
    """Lower-case word tokenizer: runs of letters/digits, and single punctuation marks.

    >>> tokenize("Play Daft Punk, now!")
    ['play', 'daft', 'punk', ',', 'now', '!']
    """
    return re.findall(r"\w+|[^\w\s]", text.lower())


class CharVocab:
    """Characters <-> ids; the vocabulary is the sorted set of characters of a text.

    >>> v = CharVocab("abca")
    >>> v.encode("cab").tolist(), v.decode([2, 0])
    ([2, 0, 1], 'ca')
    """

    def __init__(self, text_or_chars: str):
        self.chars = "".join(sorted(set(text_or_chars)))
        self.index = {c: i for i, c in enumerate(self.chars)}

    def __len__(self):
        return len(self.chars)

    def encode(self, text: str) -> torch.Tensor:
        missing = sorted(set(text) - set(self.index))
        if missing:
            raise ValueError(f"characters {missing[:10]} are not in the vocabulary ({len(self)} chars); "
                             f"filter the text or build the vocabulary from it")
        return torch.tensor([self.index[c] for c in text], dtype=torch.long)

    def decode(self, ids) -> str:
        return "".join(self.chars[int(i)] for i in ids)


class WordVocab:
    """Words <-> ids with ``<pad> <unk> <s> </s>`` first; keeps the ``max_size`` most frequent words.

    >>> v = WordVocab([["a", "b", "a"]], max_size=10)
    >>> v.encode(["a", "zzz"]), v.decode([4, 3])
    ([4, 1], ['a', '</s>'])
    """

    def __init__(self, sentences, max_size: int = 10_000, min_count: int = 1, words=None):
        if words is None:
            counts = Counter(w for s in sentences for w in s)
            words = [w for w, c in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
                     if c >= min_count][:max_size]
            words = _SPECIALS + words
        self.words = list(words)
        self.index = {w: i for i, w in enumerate(self.words)}

    def __len__(self):
        return len(self.words)

    def encode(self, tokens) -> list[int]:
        return [self.index.get(t, UNK) for t in tokens]

    def decode(self, ids) -> list[str]:
        return [self.words[int(i)] for i in ids]


# -------------------------------------------------------------------------------------------- models


class CharLM(nn.Module):
    """Character-level LSTM language model: embedding -> LSTM -> linear decoder to next-char logits.

    >>> m = CharLM(vocab_size=5, embed=4, hidden=8)
    >>> logits, (h, c) = m(torch.zeros(1, 3, dtype=torch.long), return_state=True)
    >>> logits.shape, h.shape
    (torch.Size([1, 3, 5]), torch.Size([1, 1, 8]))
    """

    def __init__(self, vocab_size: int, embed: int = 64, hidden: int = 256, layers: int = 1):
        super().__init__()
        self.config = dict(vocab_size=vocab_size, embed=embed, hidden=hidden, layers=layers)
        self.embedding = nn.Embedding(vocab_size, embed)
        self.lstm = nn.LSTM(embed, hidden, num_layers=layers, batch_first=True)
        self.decoder = nn.Linear(hidden, vocab_size)

    def forward(self, x, state=None, return_state: bool = False):
        out, state = self.lstm(self.embedding(x), state)   # (B, T, H)
        logits = self.decoder(out)                          # (B, T, V)
        return (logits, state) if return_state else logits

    @torch.no_grad()
    def generate(self, vocab: CharVocab, prompt: str = "\n", length: int = 200, temperature: float = 0.8,
                 seed: int = 0) -> str:
        """Sample ``length`` characters after ``prompt`` (seeded)."""
        g = torch.Generator().manual_seed(seed)
        self.eval()
        logits, state = self(vocab.encode(prompt)[None], return_state=True)
        out = []
        for _ in range(length):
            p = F.softmax(logits[0, -1] / temperature, dim=-1)
            nxt = torch.multinomial(p, 1, generator=g)
            out.append(int(nxt))
            logits, state = self(nxt[None], state, return_state=True)
        return prompt + vocab.decode(out)


class IntentClassifier(nn.Module):
    """LSTM intent classifier: word embedding -> LSTM -> last real time step -> linear to intents.

    Input: ``(B, T)`` word ids padded with 0 on the right.

    >>> m = IntentClassifier(vocab_size=20, n_classes=7, embed=8, hidden=16)
    >>> m(torch.tensor([[5, 6, 0], [7, 0, 0]])).shape
    torch.Size([2, 7])
    """

    def __init__(self, vocab_size: int, n_classes: int, embed: int = 64, hidden: int = 128):
        super().__init__()
        self.config = dict(vocab_size=vocab_size, n_classes=n_classes, embed=embed, hidden=hidden)
        self.embedding = nn.Embedding(vocab_size, embed, padding_idx=PAD)
        self.lstm = nn.LSTM(embed, hidden, batch_first=True)
        self.classifier = nn.Linear(hidden, n_classes)

    def forward(self, x):
        out, _ = self.lstm(self.embedding(x))                           # (B, T, H)
        last = (x != PAD).sum(1).clamp(min=1) - 1                         # (B,)
        h = out[torch.arange(x.shape[0]), last]                           # (B, H)
        return self.classifier(h)                                         # (B, C)


class Translator(nn.Module):
    """LSTM encoder–decoder with dot-product (Luong) attention, word level.

    ``forward(src, tgt_in)`` (teacher forcing) returns ``(B, T_tgt, V_tgt)`` logits; ``translate``
    decodes greedily.

    >>> m = Translator(src_vocab=12, tgt_vocab=15, embed=8, hidden=16)
    >>> m(torch.tensor([[5, 6, 3]]), torch.tensor([[2, 7]])).shape
    torch.Size([1, 2, 15])
    """

    def __init__(self, src_vocab: int, tgt_vocab: int, embed: int = 64, hidden: int = 256):
        super().__init__()
        self.config = dict(src_vocab=src_vocab, tgt_vocab=tgt_vocab, embed=embed, hidden=hidden)
        self.src_embedding = nn.Embedding(src_vocab, embed, padding_idx=PAD)
        self.tgt_embedding = nn.Embedding(tgt_vocab, embed, padding_idx=PAD)
        self.encoder = nn.LSTM(embed, hidden, batch_first=True)
        self.decoder = nn.LSTM(embed, hidden, batch_first=True)
        self.combine = nn.Linear(2 * hidden, hidden)
        self.out = nn.Linear(hidden, tgt_vocab)

    def encode(self, src):
        enc, state = self.encoder(self.src_embedding(src))                # (B, S, H)
        return enc, state, src != PAD

    def _step(self, enc, mask, tgt_in, state):
        dec, state = self.decoder(self.tgt_embedding(tgt_in), state)      # (B, T, H)
        scores = dec @ enc.transpose(1, 2)                                # (B, T, S)
        scores = scores.masked_fill(~mask[:, None, :], float("-inf"))
        ctx = F.softmax(scores, dim=-1) @ enc                             # (B, T, H)
        h = torch.tanh(self.combine(torch.cat([dec, ctx], dim=-1)))       # (B, T, H)
        return self.out(h), state                                         # (B, T, V)

    def forward(self, src, tgt_in):
        enc, state, mask = self.encode(src)
        return self._step(enc, mask, tgt_in, state)[0]

    @torch.no_grad()
    def translate(self, src, max_len: int = 60) -> list[list[int]]:
        """Greedy decoding; returns the target ids of each sentence, without ``<s>`` and ``</s>``."""
        enc, state, mask = self.encode(src)
        B = src.shape[0]
        tok = torch.full((B, 1), BOS, dtype=torch.long)
        outs = torch.zeros(B, 0, dtype=torch.long)
        done = torch.zeros(B, dtype=torch.bool)
        for _ in range(max_len):
            logits, state = self._step(enc, mask, tok, state)
            tok = logits[:, -1].argmax(-1, keepdim=True)                  # (B, 1)
            outs = torch.cat([outs, tok], 1)
            done |= tok[:, 0] == EOS
            if bool(done.all()):
                break
        res = []
        for row in outs.tolist():
            res.append(row[:row.index(EOS)] if EOS in row else row)
        return res


# ------------------------------------------------------------------------------------------ training


@dataclass
class TrainConfig:
    """Training settings shared by the three loops."""

    steps: int = 1000          # optimizer steps
    batch_size: int = 32       # sequences per step
    seq_len: int = 128         # characters per training sequence (language model only)
    lr: float = 2e-3           # Adam learning rate (cosine-decayed to 10% over the run)
    clip: float = 1.0          # gradient-norm clip
    seed: int = 0              # seeds batch sampling and dropout


def _lr_lambda(steps):
    return lambda s: 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(s, steps) / max(steps, 1)))


def _loop(model, cfg: TrainConfig, loss_fn, desc: str, progress: bool, callback=None):
    """Generic seeded loop: ``loss_fn(step, generator)`` returns the loss of one batch."""
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


def train_lm(model: CharLM, ids: torch.Tensor, cfg: TrainConfig = TrainConfig(), progress: bool = True,
             callback=None) -> list[float]:
    """Train a character LM on random windows of ``ids``; returns the loss per step (nats/char)."""
    def loss_fn(step, g):
        x, y = lm_batches(ids, cfg.batch_size, cfg.seq_len, g)
        return F.cross_entropy(model(x).flatten(0, 1), y.flatten())
    return _loop(model, cfg, loss_fn, "train LM", progress, callback)


@torch.no_grad()
def evaluate_lm(model, ids: torch.Tensor, seq_len: int = 256, max_chars: int | None = None) -> dict:
    """Bits per character and perplexity on ``ids`` (consecutive windows, state carried over).

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


def _pad(seqs, max_len=None) -> torch.Tensor:
    L = max(len(s) for s in seqs) if max_len is None else max_len
    out = torch.zeros(len(seqs), L, dtype=torch.long)
    for i, s in enumerate(seqs):
        s = s[:L]
        out[i, :len(s)] = torch.tensor(s, dtype=torch.long)
    return out


def train_intent(model: IntentClassifier, x: torch.Tensor, y: torch.Tensor, cfg: TrainConfig = TrainConfig(),
                 progress: bool = True, callback=None) -> list[float]:
    """Train the intent classifier on padded ids ``x`` (N, T) and labels ``y`` (N,)."""
    def loss_fn(step, g):
        idx = torch.randint(0, x.shape[0], (cfg.batch_size,), generator=g)
        xb = x[idx]
        xb = xb[:, :max(1, int((xb != PAD).sum(1).max()))]
        return F.cross_entropy(model(xb), y[idx])
    return _loop(model, cfg, loss_fn, "train intent", progress, callback)


@torch.no_grad()
def evaluate_intent(model, x: torch.Tensor, y: torch.Tensor) -> dict:
    """Accuracy of the intent classifier.

    >>> m = IntentClassifier(vocab_size=10, n_classes=3, embed=4, hidden=8)
    >>> 0 <= evaluate_intent(m, torch.tensor([[4, 5]]), torch.tensor([1]))["accuracy"] <= 1
    True
    """
    model.eval()
    pred = torch.cat([model(x[i:i + 256]).argmax(-1) for i in range(0, x.shape[0], 256)])
    return {"accuracy": float((pred == y).float().mean())}


def train_translation(model: Translator, src: torch.Tensor, tgt: torch.Tensor, cfg: TrainConfig = TrainConfig(),
                      progress: bool = True, callback=None) -> list[float]:
    """Train with teacher forcing; ``tgt`` rows are ``<s> w1 .. wn </s>`` padded with 0."""
    def loss_fn(step, g):
        idx = torch.randint(0, src.shape[0], (cfg.batch_size,), generator=g)
        s, t = src[idx], tgt[idx]
        s = s[:, :max(1, int((s != PAD).sum(1).max()))]
        t = t[:, :max(2, int((t != PAD).sum(1).max()))]
        logits = model(s, t[:, :-1])
        return F.cross_entropy(logits.flatten(0, 1), t[:, 1:].flatten(), ignore_index=PAD)
    return _loop(model, cfg, loss_fn, "train translation", progress, callback)


@torch.no_grad()
def evaluate_translation(model: Translator, src: torch.Tensor, tgt: torch.Tensor, tgt_vocab: WordVocab,
                         references: list[list[str]] | None = None, batch_size: int = 128) -> dict:
    """Corpus BLEU (greedy decoding, word level, lower-case) and teacher-forced token accuracy.

    ``references`` are the tokenized reference sentences (default: decoded from ``tgt``, so ``<unk>``
    stays in them).
    """
    from .bleu import corpus_bleu
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
    return {"bleu": 100 * corpus_bleu(hyps, [[r] for r in references]), "token_accuracy": correct / max(total, 1)}


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


# ------------------------------------------------------------------------------------------- tasks


class LMTask:
    """Character LM on Tiny Shakespeare: data, vocabulary, base training, metric and fine-tuning.

    The first 90% of the text trains, the last 10% validates. ``text`` replaces the corpus (tests use
    ``hl.data.fallback_text()``).

    >>> t = LMTask(text="to be or not to be " * 50)
    >>> m = t.build(hidden=8, embed=4)
    >>> t.metric, t.higher_is_better
    ('bits_per_char', False)
    """

    name = "char_lm"
    metric = "bits_per_char"
    higher_is_better = False
    base_cfg = TrainConfig(steps=2600, batch_size=32, seq_len=128, lr=3e-3, seed=0)
    arch = dict(embed=64, hidden=256)

    def __init__(self, text: str | None = None, vocab: CharVocab | None = None, eval_chars: int | None = None):
        if text is None:
            from .data import load_text
            text = load_text("tinyshakespeare")
        self.vocab = vocab or CharVocab(text)
        ids = self.vocab.encode(text)
        cut = int(0.9 * ids.numel())
        self.train_ids, self.val_ids = ids[:cut], ids[cut:]
        self.eval_chars = eval_chars

    def build(self, **arch) -> CharLM:
        return CharLM(len(self.vocab), **{**self.arch, **arch})

    def train_base(self, steps=None, progress=True, **arch):
        cfg = TrainConfig(**{**self.base_cfg.__dict__, **({"steps": steps} if steps else {})})
        torch.manual_seed(cfg.seed)
        model = self.build(**arch)
        losses = train_lm(model, self.train_ids, cfg, progress)
        return model, {"train_config": dict(cfg.__dict__), "final_train_loss": sum(losses[-50:]) / len(losses[-50:])}

    def evaluate(self, model) -> dict:
        return evaluate_lm(model, self.val_ids, seq_len=256, max_chars=self.eval_chars)

    def fine_tune(self, model, steps, lr=1e-3, seed=1, progress=True, callback=None):
        cfg = TrainConfig(steps=steps, batch_size=self.base_cfg.batch_size, seq_len=self.base_cfg.seq_len,
                          lr=lr, seed=seed)
        return train_lm(model, self.train_ids, cfg, progress, callback)

    def sample_input(self, length: int = 128):
        """One sequence for timing: ``(1, length)`` character ids."""
        return (self.val_ids[:length][None],)

    def vocab_payload(self):
        return self.vocab.chars


class IntentTask:
    """SNIPS intent detection: word vocabulary (train words seen twice or more), padded ids, accuracy.

    ``pairs`` replaces the data: ``(train_pairs, test_pairs)`` of ``(intent, text)``.

    >>> t = IntentTask(pairs=([("a", "play music"), ("b", "book a table")] * 5, [("a", "play it")]))
    >>> t.metric, t.n_classes, t.x_test.shape
    ('accuracy', 2, torch.Size([1, 2]))
    """

    name = "intent"
    metric = "accuracy"
    higher_is_better = True
    base_cfg = TrainConfig(steps=800, batch_size=64, lr=3e-3, seed=0)
    arch = dict(embed=64, hidden=128)
    max_len = 40

    def __init__(self, pairs=None, vocab=None, labels=None, eval_n: int | None = None):
        if pairs is None:
            from .data import load_snips
            pairs = (load_snips("train"), load_snips("test"))
        train, test = pairs
        tok_train = [tokenize(t) for _, t in train]
        self.vocab = vocab or WordVocab(tok_train, max_size=20_000, min_count=2)
        self.labels = list(labels) if labels is not None else sorted({i for i, _ in train})
        lab = {l: i for i, l in enumerate(self.labels)}
        self.x_train = _pad([self.vocab.encode(t) or [UNK] for t in tok_train], None)[:, :self.max_len]
        self.y_train = torch.tensor([lab[i] for i, _ in train])
        test = test[:eval_n] if eval_n else test
        self.x_test = _pad([self.vocab.encode(tokenize(t)) or [UNK] for _, t in test])[:, :self.max_len]
        self.y_test = torch.tensor([lab[i] for i, _ in test])

    @property
    def n_classes(self):
        return len(self.labels)

    def build(self, **arch) -> IntentClassifier:
        return IntentClassifier(len(self.vocab), self.n_classes, **{**self.arch, **arch})

    def train_base(self, steps=None, progress=True, **arch):
        cfg = TrainConfig(**{**self.base_cfg.__dict__, **({"steps": steps} if steps else {})})
        torch.manual_seed(cfg.seed)
        model = self.build(**arch)
        losses = train_intent(model, self.x_train, self.y_train, cfg, progress)
        return model, {"train_config": dict(cfg.__dict__), "final_train_loss": sum(losses[-50:]) / len(losses[-50:])}

    def evaluate(self, model) -> dict:
        return evaluate_intent(model, self.x_test, self.y_test)

    def fine_tune(self, model, steps, lr=1e-3, seed=1, progress=True, callback=None):
        cfg = TrainConfig(steps=steps, batch_size=self.base_cfg.batch_size, lr=lr, seed=seed)
        return train_intent(model, self.x_train, self.y_train, cfg, progress, callback)

    def sample_input(self):
        """One utterance for timing: ``(1, T)`` word ids (the first test utterance)."""
        x = self.x_test[:1]
        return (x[:, :max(1, int((x != PAD).sum()))],)

    def vocab_payload(self):
        return {"words": self.vocab.words, "labels": self.labels}


class TranslationTask:
    """English -> Spanish verse pairs: word vocabularies (3000 most frequent each), seeded 95/5 split.

    Sentences are cut at ``max_len`` tokens; BLEU is computed on lower-cased word tokens, with the
    reference's out-of-vocabulary words kept as ``<unk>`` (so a perfect model can reach 100).

    >>> pairs = [("the house", "la casa"), ("a dog", "un perro")] * 20
    >>> t = TranslationTask(pairs=pairs)
    >>> t.metric, t.src_test.shape[0]
    ('bleu', 2)
    """

    name = "translation"
    metric = "bleu"
    higher_is_better = True
    base_cfg = TrainConfig(steps=1800, batch_size=32, lr=3e-3, seed=0)
    arch = dict(embed=64, hidden=192)
    max_len = 40
    vocab_size = 3000

    def __init__(self, pairs=None, vocabs=None, eval_n: int | None = None, test_fraction: float = 0.05):
        if pairs is None:
            from .data import load_translation
            pairs = load_translation()
        en = [tokenize(e)[:self.max_len] for e, _ in pairs]
        es = [tokenize(s)[:self.max_len] for _, s in pairs]
        perm = torch.randperm(len(pairs), generator=torch.Generator().manual_seed(0)).tolist()
        n_test = max(1, int(round(test_fraction * len(pairs))))
        test, train = perm[:n_test], perm[n_test:]
        if vocabs is None:
            vocabs = (WordVocab([en[i] for i in train], self.vocab_size), WordVocab([es[i] for i in train], self.vocab_size))
        self.src_vocab, self.tgt_vocab = vocabs

        def enc(idx):
            s = _pad([self.src_vocab.encode(en[i]) + [EOS] for i in idx])
            t = _pad([[BOS] + self.tgt_vocab.encode(es[i]) + [EOS] for i in idx])
            return s, t
        self.src_train, self.tgt_train = enc(train)
        test = test[:eval_n] if eval_n else test
        self.src_test, self.tgt_test = enc(test)

    def build(self, **arch) -> Translator:
        return Translator(len(self.src_vocab), len(self.tgt_vocab), **{**self.arch, **arch})

    def train_base(self, steps=None, progress=True, **arch):
        cfg = TrainConfig(**{**self.base_cfg.__dict__, **({"steps": steps} if steps else {})})
        torch.manual_seed(cfg.seed)
        model = self.build(**arch)
        losses = train_translation(model, self.src_train, self.tgt_train, cfg, progress)
        return model, {"train_config": dict(cfg.__dict__), "final_train_loss": sum(losses[-50:]) / len(losses[-50:])}

    def evaluate(self, model) -> dict:
        return evaluate_translation(model, self.src_test, self.tgt_test, self.tgt_vocab)

    def fine_tune(self, model, steps, lr=1e-3, seed=1, progress=True, callback=None):
        cfg = TrainConfig(steps=steps, batch_size=self.base_cfg.batch_size, lr=lr, seed=seed)
        return train_translation(model, self.src_train, self.tgt_train, cfg, progress, callback)

    def sample_input(self):
        """One sentence pair for timing (teacher-forced forward): ``src (1, S)``, ``tgt_in (1, T)``."""
        s, t = self.src_test[:1], self.tgt_test[:1]
        s = s[:, :int((s != PAD).sum())]
        t = t[:, :int((t != PAD).sum()) - 1]
        return (s, t)

    def vocab_payload(self):
        return {"src": self.src_vocab.words, "tgt": self.tgt_vocab.words}


TASKS = {"char_lm": LMTask, "intent": IntentTask, "translation": TranslationTask}


def get_task(name: str, **kwargs):
    """A task object by name ("char_lm", "intent", "translation"); ``"lm"`` is an alias of "char_lm".

    >>> get_task("nope")
    Traceback (most recent call last):
    ...
    ValueError: unknown task 'nope'; expected one of ['char_lm', 'intent', 'lm', 'translation']
    """
    key = {"lm": "char_lm"}.get(name, name)
    if key not in TASKS:
        raise ValueError(f"unknown task {name!r}; expected one of {sorted(['char_lm', 'intent', 'lm', 'translation'])}")
    return TASKS[key](**kwargs)
