"""Vocabularies and tokenization of the NLP tasks: characters or words <-> integer ids, and padding.

Every vocabulary built from data is ordered by frequency, most frequent first (after the special
symbols of a word vocabulary), so id order means something: HMF's ``"top"`` heuristic, which keeps
the first rows of a matrix dense, keeps the rows of the most used outputs (characters, words,
intents) of a decoder. A vocabulary stored in a checkpoint is used as it stands, whatever its order:
the model's embedding and output rows follow it.

>>> from hmf_lab.nlp.vocab import CharVocab, WordVocab, tokenize
>>> WordVocab([tokenize("play it, play")]).encode(tokenize("play"))
[4]
"""
from __future__ import annotations

import re
from collections import Counter

import torch

__all__ = ["tokenize", "frequency_order", "CharVocab", "WordVocab", "PAD", "UNK", "BOS", "EOS"]

PAD, UNK, BOS, EOS = 0, 1, 2, 3
_SPECIALS = ["<pad>", "<unk>", "<s>", "</s>"]

# --------------------------------------------------------------------------------------------- vocab


def tokenize(text: str) -> list[str]:
    """Lower-case word tokenizer: runs of letters/digits, and single punctuation marks.

    >>> tokenize("Play Daft Punk, now!")
    ['play', 'daft', 'punk', ',', 'now', '!']
    """
    return re.findall(r"\w+|[^\w\s]", text.lower())


def frequency_order(items, min_count: int = 1) -> list:
    """The distinct ``items``, most frequent first, ties broken by the item itself (sorted); those seen
    fewer than ``min_count`` times are left out. The order of word vocabularies and intent labels.

    >>> frequency_order(["b", "a", "c", "a", "c", "d"])
    ['a', 'c', 'b', 'd']
    """
    counts = Counter(items)
    return [w for w, c in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])) if c >= min_count]


class CharVocab:
    """Characters <-> ids, most frequent character of ``text_or_chars`` first.

    Ties are broken by first appearance, so a string of distinct characters (a vocabulary, such as
    ``vocab.chars`` or a checkpoint's ``"vocab"``) gives back that vocabulary in its own order:
    ``CharVocab(v.chars).chars == v.chars`` for every vocabulary, whatever order it was saved in.

    >>> v = CharVocab("abcaca")
    >>> v.chars, v.encode("cab").tolist(), v.decode([1, 0])
    ('acb', [1, 0, 2], 'ca')
    >>> CharVocab("zyx").chars  # distinct characters: kept as given
    'zyx'
    """

    def __init__(self, text_or_chars: str):
        counts = Counter(text_or_chars)  # insertion order = first appearance; sorted() is stable
        self.chars = "".join(sorted(counts, key=lambda c: -counts[c]))
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
    """Words <-> ids with ``<pad> <unk> <s> </s>`` first, then the ``max_size`` most frequent words, most
    frequent first (ties by the word: :func:`frequency_order`); ``words`` gives the vocabulary as it stands.

    >>> v = WordVocab([["a", "b", "a"]], max_size=10)
    >>> v.encode(["a", "zzz"]), v.decode([4, 3])
    ([4, 1], ['a', '</s>'])
    """

    def __init__(self, sentences, max_size: int = 10_000, min_count: int = 1, words=None):
        if words is None:
            words = _SPECIALS + frequency_order((w for s in sentences for w in s), min_count)[:max_size]
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

