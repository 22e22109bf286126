"""Corpus BLEU (Papineni et al. 2002) on token lists: clipped n-gram precisions, brevity penalty.

Matches NLTK's ``corpus_bleu`` / ``sentence_bleu`` without smoothing (tested against their documented
values); a zero n-gram precision gives BLEU 0.

>>> hyp = "the cat sat on the mat".split()
>>> round(corpus_bleu([hyp], [[hyp]]), 6)
1.0
>>> corpus_bleu([["a", "b"]], [[["c", "d"]]])
0.0
"""
from __future__ import annotations

import math
from collections import Counter

__all__ = ["corpus_bleu", "sentence_bleu", "ngrams"]


def ngrams(tokens, n: int) -> Counter:
    """Counts of the n-grams of a token list.

    >>> ngrams(["a", "b", "a", "b"], 2)[("a", "b")]
    2
    """
    return Counter(tuple(tokens[i:i + n]) for i in range(len(tokens) - n + 1))


def _check(hypotheses, references):
    if isinstance(hypotheses, str) or not hasattr(hypotheses, "__len__"):
        raise TypeError(f"hypotheses must be a list of token lists, got {type(hypotheses).__name__}")
    if len(hypotheses) != len(references):
        raise ValueError(f"need one list of references per hypothesis: got {len(hypotheses)} hypotheses "
                         f"and {len(references)} reference lists")
    for h in hypotheses:
        if isinstance(h, str):
            raise TypeError("each hypothesis must be a list of tokens, got a str; split it first")
    for refs in references:
        if isinstance(refs, str) or (len(refs) and isinstance(refs[0], str)):
            raise TypeError("each entry of references must be a list of token lists (several references "
                            "per hypothesis); wrap a single reference as [ref]")


def corpus_bleu(hypotheses, references, weights=(0.25, 0.25, 0.25, 0.25)) -> float:
    """Corpus-level BLEU in [0, 1].

    ``hypotheses``: list of token lists; ``references``: for each hypothesis, a list of reference
    token lists. n-gram counts are summed over the corpus before the precisions are taken; the
    brevity penalty uses, per sentence, the reference length closest to the hypothesis length.

    >>> corpus_bleu([["a", "b", "c", "d"]], [[["a", "b", "c", "d", "e"]]], weights=(1,))
    0.7788007830714049
    """
    _check(hypotheses, references)
    if len(weights) == 0 or any(w < 0 for w in weights):
        raise ValueError(f"weights must be a non-empty sequence of non-negative numbers, got {weights}")
    N = len(weights)
    num, den = [0] * N, [0] * N
    hyp_len = ref_len = 0
    for hyp, refs in zip(hypotheses, references):
        hyp = list(hyp)
        hyp_len += len(hyp)
        ref_len += min((len(r) for r in refs), key=lambda L: (abs(L - len(hyp)), L)) if refs else 0
        for n in range(1, N + 1):
            h = ngrams(hyp, n)
            max_ref = Counter()
            for r in refs:
                for g, c in ngrams(list(r), n).items():
                    max_ref[g] = max(max_ref[g], c)
            num[n - 1] += sum(min(c, max_ref[g]) for g, c in h.items())
            den[n - 1] += max(len(hyp) - n + 1, 0)
    if hyp_len == 0 or any(num[i] == 0 for i in range(N) if weights[i] > 0):
        return 0.0
    log_p = sum(w * math.log(num[i] / den[i]) for i, w in enumerate(weights) if w > 0)
    bp = 1.0 if hyp_len > ref_len else math.exp(1 - ref_len / hyp_len)
    return bp * math.exp(log_p)


def sentence_bleu(hypothesis, references, weights=(0.25, 0.25, 0.25, 0.25)) -> float:
    """BLEU of one hypothesis against its references (a one-sentence corpus).

    >>> sentence_bleu("a b c d".split(), ["a b c d".split()])
    1.0
    """
    return corpus_bleu([hypothesis], [references], weights)
