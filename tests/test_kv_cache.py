"""The char transformer's key/value cache: the same logits and the same characters as re-encoding the window,
for dense and compressed models; every error at its boundary."""
from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import hmf_lab as hl
from hmf_lab.nlp.networks import CharTransformer, KVCache


def _model(d=16, heads=2, layers=2, context=12, vocab=9, seed=0):
    torch.manual_seed(seed)
    return CharTransformer(vocab_size=vocab, d_model=d, heads=heads, layers=layers, context=context).eval()


@settings(max_examples=20, deadline=None)
@given(heads=st.sampled_from([1, 2, 4]), layers=st.integers(1, 3), prefill=st.integers(1, 6),
       chunks=st.lists(st.integers(1, 3), min_size=1, max_size=3), seed=st.integers(0, 50))
def test_cached_positions_match_the_full_window(heads, layers, prefill, chunks, seed):
    m = _model(d=16, heads=heads, layers=layers, context=16, seed=seed)
    T = prefill + sum(chunks)
    ids = torch.randint(0, 9, (2, T), generator=torch.Generator().manual_seed(seed))
    full = m(ids)
    cache, pos, parts = KVCache(layers), 0, []
    for n in [prefill] + chunks:                   # prefill, then chunks of 1-3 new positions (a mask past 1)
        parts.append(m(ids[:, pos:pos + n], cache=cache))
        pos += n
    assert cache.length == T
    torch.testing.assert_close(torch.cat(parts, 1), full, atol=1e-5, rtol=1e-4)
    head = 16 // heads
    assert cache.nbytes() == layers * 2 * 2 * heads * T * head * 4      # k and v, batch 2, float32


@pytest.mark.parametrize("method", ["dense", "hmf", "hmf_col", "lmf", "prune"])
def test_decode_with_and_without_cache_give_the_same_characters(method):
    m = _model(context=12)
    if method != "dense":
        m = hl.compress(m, method, compression=2).eval()
    ids = torch.tensor([[1, 2, 3, 4]])
    a = m.decode(ids, 20)                           # 24 > context 12: past the context the window slides
    b = m.decode(ids, 20, use_cache=False)
    assert a.shape == (1, 24) and torch.equal(a, b) and torch.equal(a[:, :4], ids)
    long_prompt = torch.randint(0, 9, (1, 30), generator=torch.Generator().manual_seed(1))
    assert torch.equal(m.decode(long_prompt, 5), m.decode(long_prompt, 5, use_cache=False))
    g1, g2 = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    assert torch.equal(m.decode(ids, 8, temperature=1.0, generator=g1),
                       m.decode(ids, 8, temperature=1.0, generator=g2, use_cache=False))
    assert m.decode(ids, 0).shape == (1, 4)


def test_generate_uses_the_cache_and_is_seeded():
    from hmf_lab.nlp.vocab import CharVocab

    v = CharVocab("abcdefgh")
    m = _model(vocab=len(v), context=8)
    assert m.generate(v, "ab", 15, seed=2) == m.generate(v, "ab", 15, seed=2, use_cache=False)


def test_cache_errors_name_the_fix():
    m = _model(layers=2, context=6)
    for bad in (0, -1, 2.0, True):
        with pytest.raises(ValueError, match="number of blocks"):
            KVCache(bad)
    with pytest.raises(TypeError, match=r"KVCache\(2\)"):
        m(torch.tensor([[1]]), cache=KVCache(3))
    with pytest.raises(TypeError, match=r"KVCache\(2\)"):
        m(torch.tensor([[1]]), cache={})
    cache = KVCache(2)
    m(torch.tensor([[1, 2, 3, 4, 5]]), cache=cache)
    with pytest.raises(ValueError, match="reaches position 7, the model's context is 6"):
        m(torch.tensor([[1, 2]]), cache=cache)
    with pytest.raises(ValueError, match=r"shape \(1, T\)"):
        m.decode(torch.tensor([[1], [2]]), 3)
    with pytest.raises(ValueError, match=r"shape \(1, T\)"):
        m.decode(torch.zeros(1, 0, dtype=torch.long), 3)
    with pytest.raises(ValueError, match="length must be an int"):
        m.decode(torch.tensor([[1]]), -1)
    with pytest.raises(ValueError, match="temperature must be"):
        m.decode(torch.tensor([[1]]), 2, temperature=-0.5)
    assert repr(cache) == "KVCache(layers=2, length=5)"
