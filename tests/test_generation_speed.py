"""benchmarks/generation_speed.py (issue 20, part 5): a quick run prints every model's tokens/s beside its ideal
from bytes (no timed asserts: a quick run's numbers mean nothing); the byte counts and the OATS structure twin
are checked exactly."""
from __future__ import annotations

import pytest
import torch

import hmf_lab as hl
from conftest import load_script
from hmf_lab.nlp.networks import CharTransformer, KVCache


@pytest.fixture(scope="module")
def gs():
    return load_script("benchmarks/generation_speed.py")


def test_quick_run_prints_every_model_with_its_ideal(gs, monkeypatch, capsys, tmp_path):
    monkeypatch.setenv("HMF_LAB_QUICK", "1")
    assert gs.main(["--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "| size | model | weights MB | tok/s | speedup | ideal | of ideal | engines (decision) |" in out
    for model in ("dense", "dense copy", "hmf 4x", "lmf 4x"):
        assert f"| tiny (d 32) | {model} |" in out
    import pandas as pd

    df = pd.read_csv(tmp_path / "generation.csv")
    assert (df.tok_s > 0).all() and df.loc[df.model == "dense", "speedup"].item() == 1.0
    assert df.of_ideal.tolist() == pytest.approx((df.speedup / df.ideal).tolist())


def test_kv_bytes_match_a_real_cache(gs):
    m = CharTransformer(vocab_size=9, d_model=16, heads=2, layers=3, context=32).eval()
    cache, seen = KVCache(3), []
    m(torch.tensor([[1, 2]]), cache=cache)
    for _ in range(6):
        m(torch.tensor([[3]]), cache=cache)
        seen.append(cache.nbytes())                # a step reads the cache including its own new position
    assert gs.kv_bytes_per_token(m, 2, 6) == pytest.approx(sum(seen) / len(seen))


def test_oats_twin_has_oats_structure(gs):
    from hmf_lab.factor.baselines import oats_split
    from hmf_lab.nn.baseline_layers import SparseLowRankLinear

    dense = CharTransformer(vocab_size=9, d_model=32, heads=2, layers=1, context=8).eval()
    twin = gs.oats_twin(dense, 4, ["blocks.0.fc1", "head"])
    fc1 = twin.blocks[0].fc1
    assert isinstance(fc1, SparseLowRankLinear) and (fc1.rank, fc1.nnz) == oats_split((128, 32), 4)
    assert isinstance(twin.head, SparseLowRankLinear) and isinstance(twin.blocks[0].fc2, torch.nn.Linear)
    assert torch.equal(fc1.bias, dense.blocks[0].fc1.bias)
    assert twin.decode(torch.tensor([[1]]), 5).shape == (1, 6)


def test_tokens_past_the_context_are_refused(gs):
    with pytest.raises(ValueError, match="does not fit the tiny model's context 32"):
        gs.run(["tiny"], ["lmf"], [4], tokens=40, rounds=1, min_run_time=0.01, choose_time=0.01)


def test_model_weight_bytes_counts_each_layer_once():
    m = CharTransformer(vocab_size=9, d_model=16, heads=2, layers=2, context=8)
    dense = 2 * (4 * 16 * 16 + 2 * 16 * 64) * 4 + 9 * 16 * 4          # q,k,v,out,fc1,fc2 per block + head
    assert hl.timing.model_weight_bytes(m) == dense
    small = hl.compress(m, "lmf", compression=4)
    layers = [mod for _, mod in hl.engines.compressed_modules(small)]
    others = sum(mod.weight.numel() * 4 for mod in small.modules() if type(mod) is torch.nn.Linear)
    assert hl.timing.model_weight_bytes(small) == sum(hl.timing.weight_bytes(x) for x in layers) + others
    mha = torch.nn.MultiheadAttention(16, 2)
    assert hl.timing.model_weight_bytes(mha) == (3 * 16 * 16 + 16 * 16) * 4      # packed in_proj + out_proj
    with pytest.raises(TypeError, match="takes an nn.Module, got Tensor"):
        hl.timing.model_weight_bytes(torch.zeros(3))


def test_weight_bytes_follow_the_engine_of_a_sparse_layer():
    fast = hl.sparsify(hl.compress(torch.nn.Sequential(torch.nn.Linear(32, 16)), "prune", compression=4))[0]
    assert hl.timing.weight_bytes(fast) == hl.timing.csr_bytes(16, fast.nnz, 4, 4)      # CSR: values + indices
    hl.engines.set_engine(fast, "reconstructed")
    assert hl.timing.weight_bytes(fast) == 16 * 32 * 4                                   # the masked dense weight
