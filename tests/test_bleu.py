"""BLEU (sacrebleu underneath) against NLTK's documented unsmoothed values (nltk.translate.bleu_score docstrings)."""
import pytest

from hmf_lab.nlp.bleu import bleu, corpus_bleu, ngrams, sentence_bleu, signature

HYP1 = ['It', 'is', 'a', 'guide', 'to', 'action', 'which', 'ensures', 'that', 'the', 'military', 'always',
        'obeys', 'the', 'commands', 'of', 'the', 'party']
REF1A = ['It', 'is', 'a', 'guide', 'to', 'action', 'that', 'ensures', 'that', 'the', 'military', 'will',
         'forever', 'heed', 'Party', 'commands']
REF1B = ['It', 'is', 'the', 'guiding', 'principle', 'which', 'guarantees', 'the', 'military', 'forces',
         'always', 'being', 'under', 'the', 'command', 'of', 'the', 'Party']
REF1C = ['It', 'is', 'the', 'practical', 'guide', 'for', 'the', 'army', 'always', 'to', 'heed', 'the',
         'directions', 'of', 'the', 'party']
HYP2 = ['he', 'read', 'the', 'book', 'because', 'he', 'was', 'interested', 'in', 'world', 'history']
REF2A = ['he', 'was', 'interested', 'in', 'world', 'history', 'because', 'he', 'read', 'the', 'book']


@pytest.mark.parametrize("weights, expected", [
    ((1,), 0.9655172413793104),
    ((0.5, 0.5), 0.8242803277698696),
    ((0.25, 0.25, 0.25, 0.25), 0.5920778868801042),
])
def test_corpus_bleu_matches_nltk(weights, expected):
    got = corpus_bleu([HYP1, HYP2], [[REF1A, REF1B, REF1C], [REF2A]], weights=weights)
    assert got == pytest.approx(expected, abs=1e-9)


def test_sentence_bleu_matches_nltk():
    s1 = sentence_bleu(HYP1, [REF1A, REF1B, REF1C])
    s2 = sentence_bleu(HYP2, [REF2A])
    assert s1 == pytest.approx(0.5045666840058485, abs=1e-9)
    assert (s1 + s2) / 2 == pytest.approx(0.6223247442490669, abs=1e-10)


def test_bleu_edge_cases():
    assert corpus_bleu([[]], [[["a"]]]) == 0.0
    assert corpus_bleu([["x", "y", "z", "w"]], [[["a", "b", "c", "d"]]]) == 0.0
    assert ngrams(list("abab"), 2)[("a", "b")] == 2
    # brevity penalty: a shorter hypothesis than its reference scores below 1
    assert 0 < corpus_bleu([list("abcd")], [[list("abcde")]], weights=(1,)) < 1


def test_bleu_errors():
    with pytest.raises(ValueError, match="one list of references per hypothesis"):
        corpus_bleu([["a"]], [])
    with pytest.raises(TypeError, match="list of token lists"):
        corpus_bleu("a b", ["a b"])
    with pytest.raises(TypeError, match="got a str"):
        corpus_bleu(["a b"], [[["a", "b"]]])
    with pytest.raises(TypeError, match="wrap a single reference"):
        corpus_bleu([["a"]], [["a", "b"]])
    with pytest.raises(ValueError, match="weights must be uniform"):
        corpus_bleu([["a"]], [[["a"]]], weights=())
    with pytest.raises(ValueError, match="weights must be uniform"):
        corpus_bleu([["a"]], [[["a"]]], weights=(0.7, 0.3))
    with pytest.raises(TypeError, match="references must be a list"):
        corpus_bleu([["a"]], None)
    with pytest.raises(ValueError, match="at least one hypothesis"):
        bleu([], [])


def test_sacrebleu_signature_and_variable_reference_counts():
    sig = signature()
    assert sig.startswith("nrefs:1|case:mixed|eff:no|tok:none|smooth:none|version:2.")
    s = bleu([HYP1, HYP2], [[REF1A, REF1B, REF1C], [REF2A]])
    assert s.score == pytest.approx(100 * 0.5920778868801042, abs=1e-9)
    assert corpus_bleu([], []) == 0.0
