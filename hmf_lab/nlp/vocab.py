"""Vocabularies and tokenization of the NLP tasks: characters or words <-> integer ids, and padding.

>>> from hmf_lab.nlp.vocab import CharVocab, WordVocab, tokenize
>>> WordVocab([tokenize("play it, play")]).encode(tokenize("play"))
[4]
"""
from __future__ import annotations

import re
from collections import Counter

import torch

__all__ = ["tokenize", "CharVocab", "WordVocab", "PAD", "UNK", "BOS", "EOS"]

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


def _pad(seqs, max_len=None) -> torch.Tensor:
    L = max(len(s) for s in seqs) if max_len is None else max_len
    out = torch.zeros(len(seqs), L, dtype=torch.long)
    for i, s in enumerate(seqs):
        s = s[:L]
        out[i, :len(s)] = torch.tensor(s, dtype=torch.long)
    return out

