"""Rows that mean something (issue 19, part 1): vocabularies by frequency, the shipped checkpoints re-indexed.

- vocabularies built from data are ordered by frequency, most frequent first (characters, words, intents);
  a vocabulary given as it stands (a checkpoint's) keeps its order;
- ``Task.reindex`` / ``hl.models.reorder_checkpoint`` re-order a model exactly: the same function, its ids
  permuted; the shipped checkpoints are frequency-ordered, an old-format (sorted) one still loads and
  gives the same bits per character, and fails the SHA-256 check in place of the shipped file;
- which characters the char LM decoder's dense rows hold under ``"top"`` (the most frequent ones now) and
  under the default; the data-aware heuristics on the decoder through ``hl.compress(..., X=...)``.
"""
from __future__ import annotations

import collections
import hashlib
import random

import pytest
import torch
from torch.nn import functional as F

import hmf_lab as hl
from hmf_lab.nlp import checkpoints as C
from hmf_lab.nlp.tasks import IntentTask, LMTask, Task, TranslationTask, reorder_checkpoint
from hmf_lab.nlp.vocab import CharVocab, WordVocab, frequency_order

# --------------------------------------------------------------------------- (a) the order of a vocabulary


def test_char_vocab_is_ordered_by_frequency_ties_by_first_appearance():
    text = "to be, or not to be: that is the question"
    v = CharVocab(text)
    counts = collections.Counter(text)
    assert [counts[c] for c in v.chars] == sorted(counts.values(), reverse=True)
    assert v.chars[0] == " " and v.decode(v.encode(text)) == text
    for a, b in zip(v.chars, v.chars[1:]):  # equal counts: in the order of first appearance
        if counts[a] == counts[b]:
            assert text.index(a) < text.index(b), (a, b)


def test_a_vocabulary_string_is_kept_in_its_own_order():
    chars = list(CharVocab(hl.data.fallback_text()[:20_000]).chars)
    random.Random(0).shuffle(chars)
    shuffled = "".join(chars)
    assert CharVocab(shuffled).chars == shuffled  # e.g. a checkpoint's vocabulary, whatever its order
    assert LMTask.from_vocab(shuffled, text="".join(sorted(shuffled)) * 3).vocab.chars == shuffled


def test_word_vocab_and_labels_are_ordered_by_frequency():
    sents = [["b", "a", "c"], ["a", "c"], ["a", "d", "d"]]
    v = WordVocab(sents)
    assert v.words[:4] == ["<pad>", "<unk>", "<s>", "</s>"]
    assert v.words[4:] == ["a", "c", "d", "b"]  # 3, 2, 2 (ties by the word), 1
    assert frequency_order(["x", "y", "y", "z"], min_count=2) == ["y"]
    pairs = [("Rare", "play it")] + [("Common", "book a table")] * 3 + [("Mid", "what weather")] * 2
    assert IntentTask(pairs=(pairs, pairs[:2])).labels == ["Common", "Mid", "Rare"]


@pytest.mark.data("tinyshakespeare")
def test_the_char_vocabulary_of_tiny_shakespeare_is_by_frequency_and_the_shipped_one():
    from hmf_lab.nlp.data import load_text

    text = load_text("tinyshakespeare")
    counts = collections.Counter(text)
    rebuilt = LMTask(eval_chars=100).vocab.chars
    assert [counts[c] for c in rebuilt] == sorted(counts.values(), reverse=True)
    # the vocabulary rebuilt from the data agrees with the checkpoint's (it is not used with the model anyway)
    assert rebuilt == C.load_pretrained("char_lm", with_payload=True)[1]["vocab"]


@pytest.mark.slow
@pytest.mark.data("snips", "translation_en_es")
@pytest.mark.parametrize("name", ["intent", "translation"])
def test_the_word_vocabularies_rebuilt_from_data_are_the_shipped_ones(name):
    payload = C.load_pretrained(name, with_payload=True)[1]
    assert hl.tasks.get_task(name).vocab_payload() == payload["vocab"]


# --------------------------------------------------------------------------- re-indexing a model is exact


def _sorted_payload(vocab):
    """The old format of a vocab payload: characters sorted (char_lm), intent labels alphabetical."""
    if isinstance(vocab, str):
        return "".join(sorted(vocab))
    return {k: (sorted(v) if k == "labels" else v) for k, v in vocab.items()}


def test_reindexed_char_lm_computes_the_same_function():
    model, payload = C.load_pretrained("char_lm", with_payload=True)
    new = payload["vocab"]
    old = _sorted_payload(new)
    old_model = LMTask.reindex(model, new, old)
    text = "".join(c for c in hl.data.fallback_text()[:800] if c in new)
    x_new, x_old = CharVocab(new).encode(text)[None], CharVocab(old).encode(text)[None]
    perm = LMTask.vocab_permutation(old, new)[None]  # new[i] == old[perm[i]]
    assert [old[j] for j in perm.tolist()] == list(new)
    with torch.no_grad():
        y_new, y_old = model(x_new), old_model(x_old)
    assert torch.allclose(y_new, y_old[..., perm], atol=1e-5, rtol=1e-5)
    assert torch.equal(LMTask.reindex(old_model, old, new).decoder.weight, model.decoder.weight)  # round trip


def test_reindexed_intent_classifier_computes_the_same_function():
    model, payload = C.load_pretrained("intent", with_payload=True)
    new = payload["vocab"]
    old = _sorted_payload(new)
    assert old["labels"] != new["labels"]  # the shipped labels are by frequency, not alphabetical
    old_model = IntentTask.reindex(model, new, old)
    x = torch.randint(4, len(new["words"]), (8, 12), generator=torch.Generator().manual_seed(0))
    perm = IntentTask.vocab_permutation(old, new)["labels"]
    with torch.no_grad():
        y_new, y_old = model(x), old_model(x)
    assert torch.allclose(y_new, y_old[:, perm], atol=1e-5)
    names = ([new["labels"][i] for i in y_new.argmax(1).tolist()], [old["labels"][i] for i in y_old.argmax(1).tolist()])
    assert names[0] == names[1]  # the same intents are predicted


def test_reindexed_translator_keeps_the_special_ids():
    m = hl.models.Translator(src_vocab=7, tgt_vocab=6, embed=4, hidden=8)
    old = {"src": ["<pad>", "<unk>", "<s>", "</s>", "a", "b", "c"], "tgt": ["<pad>", "<unk>", "<s>", "</s>", "x", "y"]}
    new = {"src": old["src"][:4] + ["c", "a", "b"], "tgt": old["tgt"][:4] + ["y", "x"]}
    r = TranslationTask.reindex(m, old, new)
    src_old, tgt_in = torch.tensor([[4, 5, 6, 3]]), torch.tensor([[2, 4, 5]])
    src_new, tgt_new = torch.tensor([[5, 6, 4, 3]]), torch.tensor([[2, 5, 4]])
    with torch.no_grad():
        assert torch.allclose(r(src_new, tgt_new), m(src_old, tgt_in)[..., [0, 1, 2, 3, 5, 4]], atol=1e-6)


@pytest.mark.parametrize("old, new, match", [
    ("abca", "abc", "holds a symbol twice"),
    ("abc", "abd", r"same 3 symbols as the old one, got 3 \(new ones \['d'\], missing \['c'\]\)"),
])
def test_vocab_permutation_refuses_what_is_not_a_reordering(old, new, match):
    with pytest.raises(ValueError, match=match):
        LMTask.vocab_permutation(old, new)


def test_vocab_permutation_keeps_the_special_symbols_and_needs_the_keys():
    sp = ["<pad>", "<unk>", "<s>", "</s>"]
    with pytest.raises(ValueError, match="special symbols .* must keep ids 0-3"):
        TranslationTask.vocab_permutation({"src": sp + ["a"], "tgt": sp}, {"src": ["a"] + sp, "tgt": sp})
    with pytest.raises(ValueError, match=r"payload has no 'tgt' \(got \['src'\]\)"):
        TranslationTask.vocab_permutation({"src": sp}, {"src": sp})
    with pytest.raises(ValueError, match=r"payload has no 'words' \(got str\)"):
        IntentTask.vocab_permutation("abc", "abc")


def test_reindex_state_names_what_does_not_fit():
    sd = hl.models.CharLM(3, embed=4, hidden=8).state_dict()
    with pytest.raises(ValueError, match="has no 'decoder.weight'.*works on the task's dense model"):
        LMTask.reindex_state({k: v for k, v in sd.items() if k != "decoder.weight"}, "abc", "cab")
    with pytest.raises(ValueError, match="embedding.weight has 3 rows but the vocabulary has 4 symbols"):
        LMTask.reindex_state(sd, "abcd", "dcba")
    assert Task.vocab_rows == {} and Task.vocab_permutation("ab", "ba") == {}  # a task with no vocabulary rows


@pytest.mark.parametrize("vocab, err, match", [("abca", ValueError, "4 characters of which 3 distinct"),
                                               (["a", "b"], TypeError, "str of distinct characters in id order .*got list")])
def test_lm_from_vocab_takes_a_str_of_distinct_characters(vocab, err, match):
    with pytest.raises(err, match=match):
        LMTask.from_vocab(vocab, text="abc")


# --------------------------------------------------------------------------- the shipped checkpoints


def test_an_old_format_checkpoint_loads_and_fails_the_sha_check_in_place_of_the_shipped_one(tmp_path, monkeypatch):
    _, payload = C.load_pretrained("char_lm", with_payload=True)
    old = _sorted_payload(payload["vocab"])
    (tmp_path / "old").mkdir()
    sha_old = reorder_checkpoint("char_lm", C.checkpoint_path("char_lm"), tmp_path / "old" / "char_lm.pt", old)
    model, p = C.load_checkpoint(tmp_path / "old" / "char_lm.pt", hl.models.CharLM, sha256=sha_old)
    assert p["vocab"] == old and p["info"] == payload["info"]
    task = LMTask.from_vocab(p["vocab"], text=old * 2)  # the checkpoint's vocabulary, as saved
    assert task.vocab.chars == old
    # converting it back reproduces the shipped file byte for byte (scripts/reorder_vocab.py is deterministic)
    (tmp_path / "new").mkdir()
    sha = reorder_checkpoint("char_lm", tmp_path / "old" / "char_lm.pt", tmp_path / "new" / "char_lm.pt",
                               payload["vocab"])
    assert sha == C.registry()["char_lm"]["sha256"] == hashlib.sha256(C.checkpoint_path("char_lm").read_bytes()).hexdigest()
    # an older file left in place of the shipped one is refused by the SHA-256 check
    monkeypatch.setattr(C, "assets_dir", lambda: tmp_path / "old")
    with pytest.raises(ValueError, match="char_lm.pt is corrupt or modified"):
        C.load_pretrained("char_lm")


def test_reorder_checkpoint_refusals(tmp_path):
    with pytest.raises(ValueError, match="unknown pretrained model 'nope'"):
        reorder_checkpoint("nope", C.checkpoint_path("char_lm"), tmp_path / "x.pt", "abc")
    f = tmp_path / "novocab.pt"
    C.save_checkpoint(hl.models.CharLM(3, embed=4, hidden=8), f)
    with pytest.raises(ValueError, match="holds no 'vocab'"):
        reorder_checkpoint("char_lm", f, tmp_path / "y.pt", "abc")


@pytest.mark.slow
@pytest.mark.data("tinyshakespeare")
def test_bits_per_char_unchanged_by_the_reordering(tmp_path):
    model, payload = C.load_pretrained("char_lm", with_payload=True)
    old = _sorted_payload(payload["vocab"])
    sha = reorder_checkpoint("char_lm", C.checkpoint_path("char_lm"), tmp_path / "char_lm.pt", old)
    old_model, p = C.load_checkpoint(tmp_path / "char_lm.pt", hl.models.CharLM, sha256=sha)
    new_bpc = LMTask.from_vocab(payload["vocab"], eval_chars=10_000).evaluate(model)["bits_per_char"]
    old_bpc = LMTask.from_vocab(p["vocab"], eval_chars=10_000).evaluate(old_model)["bits_per_char"]
    assert new_bpc == pytest.approx(old_bpc, abs=1e-5)


# --------------------------------------------------------------------------- (b, c) which rows the decoder keeps dense


def _dense_chars(model, vocab, c, heuristic=None, **kw):
    rows = hl.compress(model, "hmf", compression=c, heuristic=heuristic, layers=["decoder"], **kw).decoder.rows
    return "".join(vocab[i] for i in rows.tolist())


def _calibration_ids(vocab: str, n: int = 1024) -> torch.Tensor:
    text = "".join(c for c in hl.data.fallback_text() if c in vocab)[:n]
    return CharVocab(vocab).encode(text).reshape(8, -1)


def test_top_keeps_the_decoder_rows_of_the_most_frequent_characters():
    model, payload = C.load_pretrained("char_lm", with_payload=True)
    vocab = payload["vocab"]
    old_model, old = LMTask.reindex(model, vocab, "".join(sorted(vocab))), "".join(sorted(vocab))
    top = {c: _dense_chars(model, vocab, c, "top") for c in (4, 8)}
    before = {c: _dense_chars(old_model, old, c, "top") for c in (4, 8)}
    default = {c: _dense_chars(model, vocab, c) for c in (4, 8)}
    msg = (f"dense decoder rows, 'top': {top} (frequency vocabulary), {before} (sorted vocabulary, before); "
           f"default (greedy): {default}")
    print("\n" + msg)  # shown with pytest -s
    assert top[4] == vocab[:len(top[4])] and top[8] == vocab[:len(top[8])], msg
    assert {" ", "e"} <= set(top[8]) and len(top[4]) > len(top[8]), msg
    assert before[4] == old[:len(before[4])] and " " in before[4] and "e" not in before[4], msg  # the artifact
    # the default is order-invariant: the same characters under either order
    assert all(sorted(default[c]) == sorted(_dense_chars(old_model, old, c)) for c in (4, 8)), msg
    assert default[4] != top[4], msg


@pytest.mark.data("tinyshakespeare")
def test_top_rows_cover_more_validation_characters_than_the_sorted_ones():
    task, model = LMTask.pretrained()
    vocab = task.vocab.chars
    old = "".join(sorted(vocab))
    old_model = LMTask.reindex(model, vocab, old)
    val = collections.Counter(task.val_ids.tolist())
    share = {}
    for c in (4, 8):
        top, before = _dense_chars(model, vocab, c, "top"), _dense_chars(old_model, old, c, "top")
        share[c] = tuple(sum(val[vocab.index(ch)] for ch in s) / task.val_ids.numel() for s in (top, before))
    # the most frequent characters of the validation text are the dense ones now
    most = [vocab[i] for i, _ in val.most_common(len(_dense_chars(model, vocab, 8, "top")))]
    assert set(most) == set(_dense_chars(model, vocab, 8, "top")), (most, share)
    print(f"\nshare of the validation characters whose decoder rows 'top' keeps dense (frequency, sorted): {share}")
    assert all(new > 1.5 * old_share for new, old_share in share.values()), share


def test_data_aware_heuristics_on_the_decoder_through_compress():
    model, payload = C.load_pretrained("char_lm", with_payload=True)
    vocab = payload["vocab"]
    X = _calibration_ids(vocab)
    act = _dense_chars(model, vocab, 4, "activation", X=X)
    assert len(act) == len(_dense_chars(model, vocab, 4, "top")) and act != vocab[:len(act)]
    # order-invariant: the same characters after re-ordering the vocabulary (and the calibration ids with it)
    old = "".join(sorted(vocab))
    old_X = _calibration_ids(old)
    assert sorted(act) == sorted(_dense_chars(LMTask.reindex(model, vocab, old), old, 4, "activation", X=old_X))

    def lm_loss(m, x):
        return F.cross_entropy(m(x[:, :-1]).flatten(0, 1), x[:, 1:].flatten())

    fisher = _dense_chars(model, vocab, 4, "fisher", X=[X[:4], X[4:]], loss=lm_loss)
    assert len(fisher) == len(act) and fisher != vocab[:len(fisher)]
