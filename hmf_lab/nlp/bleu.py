"""Corpus BLEU from **sacrebleu** on token lists, with sacrebleu's signature for comparable reports.

A thin wrapper: the kit's translation metric works on lower-cased word tokens, so the tokens are
joined with spaces and scored with ``sacrebleu.metrics.BLEU(tokenize="none", smooth_method="none")``:
clipped n-gram precisions summed over the corpus, the closest reference length per sentence
(shorter on ties) for the brevity penalty, and BLEU 0 when an n-gram order has no match. That is
Papineni et al. (2002) exactly, and equals NLTK's unsmoothed ``corpus_bleu`` (tested). Scores here are
in [0, 1] (sacrebleu's / 100), as the kit's callers expect; :func:`signature` gives the string to
print next to them.

>>> hyp = "the cat sat on the mat".split()
>>> round(corpus_bleu([hyp], [[hyp]]), 6)
1.0
>>> corpus_bleu([["a", "b"]], [[["c", "d"]]])
0.0
>>> signature()
'nrefs:1|case:mixed|eff:no|tok:none|smooth:none|version:...'
"""
from __future__ import annotations

from collections import Counter

__all__ = ["corpus_bleu", "sentence_bleu", "bleu", "signature", "ngrams"]


def ngrams(tokens, n: int) -> Counter:
    """Counts of the n-grams of a token list.

    >>> ngrams(["a", "b", "a", "b"], 2)[("a", "b")]
    2
    """
    return Counter(tuple(tokens[i:i + n]) for i in range(len(tokens) - n + 1))


def _metric(order: int = 4):
    from sacrebleu.metrics import BLEU
    return BLEU(tokenize="none", smooth_method="none", max_ngram_order=order, force=True)


def _check(hypotheses, references, weights):
    if isinstance(hypotheses, str) or not hasattr(hypotheses, "__len__"):
        raise TypeError(f"hypotheses must be a list of token lists, got {type(hypotheses).__name__}")
    if isinstance(references, str) or not hasattr(references, "__len__"):
        raise TypeError(f"references must be a list (one list of reference token lists per hypothesis), "
                        f"got {type(references).__name__}")
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
    w = tuple(weights)
    if not w or any(not isinstance(x, (int, float)) or x != w[0] or x <= 0 for x in w):
        raise ValueError(f"weights must be uniform and positive, (1/N,) * N for N-gram BLEU (sacrebleu), got {weights}")
    return len(w)


def bleu(hypotheses, references, weights=(0.25, 0.25, 0.25, 0.25)):
    """The sacrebleu ``BLEUScore`` (score in 0–100, precisions, brevity penalty, lengths).

    ``hypotheses``: list of token lists; ``references``: for each hypothesis, a list of reference
    token lists (their number may vary per hypothesis).

    >>> s = bleu([["a", "b", "c", "d"]], [[["a", "b", "c", "d", "e"]]], weights=(1,))
    >>> round(s.score, 4), round(s.bp, 4)
    (77.8801, 0.7788)
    """
    order = _check(hypotheses, references, weights)
    n_refs = max((len(r) for r in references), default=1) or 1
    hyps = [" ".join(map(str, h)) for h in hypotheses]
    streams = [[" ".join(map(str, refs[i])) if i < len(refs) else None for refs in references]
               for i in range(n_refs)]
    if not hyps:
        raise ValueError("need at least one hypothesis")
    return _metric(order).corpus_score(hyps, streams)


def corpus_bleu(hypotheses, references, weights=(0.25, 0.25, 0.25, 0.25)) -> float:
    """Corpus-level BLEU in [0, 1] (sacrebleu's score / 100); uniform ``weights`` set the n-gram order.

    >>> round(corpus_bleu([["a", "b", "c", "d"]], [[["a", "b", "c", "d", "e"]]], weights=(1,)), 9)
    0.778800783
    """
    _check(hypotheses, references, weights)
    if len(hypotheses) == 0:
        return 0.0
    return bleu(hypotheses, references, weights).score / 100


def sentence_bleu(hypothesis, references, weights=(0.25, 0.25, 0.25, 0.25)) -> float:
    """BLEU of one hypothesis against its references (a one-sentence corpus), in [0, 1].

    >>> round(sentence_bleu("a b c d".split(), ["a b c d".split()]), 9)
    1.0
    """
    return corpus_bleu([hypothesis], [references], weights)


def signature(n_refs: int = 1, weights=(0.25, 0.25, 0.25, 0.25)) -> str:
    """sacrebleu's signature of the BLEU the kit computes, to print next to every BLEU score.

    >>> "tok:none" in signature()
    True
    """
    m = _metric(len(tuple(weights)))
    m.num_refs = n_refs
    return str(m.get_signature())
