"""The three small LSTM networks of the NLP tasks: a character LM, an intent classifier, a translator.

Each keeps its constructor arguments in ``self.config`` so a checkpoint can rebuild it.

>>> import torch
>>> from hmf_lab.nlp.networks import CharLM
>>> CharLM(vocab_size=10, embed=8, hidden=16)(torch.zeros(2, 5, dtype=torch.long)).shape
torch.Size([2, 5, 10])
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from hmf_lab.nlp.vocab import BOS, EOS, PAD, CharVocab

__all__ = ["CharLM", "IntentClassifier", "Translator"]


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
