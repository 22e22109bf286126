"""Small LSTM models: shapes, seeded training, metrics, shipped checkpoints (tiny configs only)."""
import math

import pytest
import torch

import hmf_lab as hl
from hmf_lab import nlp as M

SHIPPED = [n for n in M.PRETRAINED if M.checkpoint_path(n).is_file()]


@pytest.fixture(scope="module")
def lm_task():
    return M.LMTask(text=hl.data.fallback_text()[:60_000])


@pytest.mark.slow
def test_lm_learns_on_fallback_corpus(lm_task):
    torch.set_num_threads(1)
    model = lm_task.build(embed=16, hidden=32)
    before = lm_task.evaluate(model)["bits_per_char"]
    losses = lm_task.fine_tune(model, steps=60, lr=1e-2, progress=False)
    after = lm_task.evaluate(model)["bits_per_char"]
    assert after < before - 0.5, (before, after)
    assert sum(losses[-10:]) < sum(losses[:10])
    assert math.isclose(lm_task.evaluate(model)["perplexity"], 2 ** after, rel_tol=1e-6)


@pytest.mark.slow
def test_training_is_seeded(lm_task):
    runs = []
    for _ in range(2):
        torch.manual_seed(0)
        m = lm_task.build(embed=8, hidden=16)
        runs.append(lm_task.fine_tune(m, steps=5, seed=3, progress=False))
    assert runs[0] == runs[1]


@pytest.mark.slow
def test_generate_is_seeded(lm_task):
    m = lm_task.build(embed=8, hidden=16)
    a = m.generate(lm_task.vocab, "The", 20, seed=1)
    assert a == m.generate(lm_task.vocab, "The", 20, seed=1) and a.startswith("The") and len(a) == 23


@pytest.mark.slow
def test_intent_classifier_learns_a_toy_task():
    words = {"music": ["play", "song", "album", "track"], "weather": ["rain", "sunny", "forecast", "cold"]}
    g = torch.Generator().manual_seed(0)
    def make(n):
        out = []
        for i in range(n):
            lab = ["music", "weather"][i % 2]
            ws = [words[lab][int(j)] for j in torch.randint(0, 4, (3,), generator=g)]
            out.append((lab, " ".join(ws)))
        return out
    task = M.IntentTask(pairs=(make(200), make(40)))
    model = task.build(embed=8, hidden=16)
    task.fine_tune(model, steps=60, lr=1e-2, progress=False)
    assert task.evaluate(model)["accuracy"] > 0.9
    assert model(*task.sample_input()).shape == (1, 2)


@pytest.mark.slow
def test_translator_shapes_and_metrics():
    pairs = [("the big house is red", "la casa grande es roja"), ("a small dog runs fast", "un perro pequeño corre rápido"),
             ("the dog is in the house", "el perro está en la casa")] * 30
    task = M.TranslationTask(pairs=pairs, test_fraction=0.1)
    model = task.build(embed=16, hidden=32)
    task.fine_tune(model, steps=150, lr=1e-2, progress=False)
    r = task.evaluate(model)
    assert r["token_accuracy"] > 0.9 and r["bleu"] > 50
    src, tgt = task.sample_input()
    assert model(src, tgt).shape == (1, tgt.shape[1], len(task.tgt_vocab))
    out = model.translate(src, max_len=5)
    assert len(out) == 1 and len(out[0]) <= 5


def test_vocab_and_batch_errors():
    with pytest.raises(ValueError, match="not in the vocabulary"):
        M.CharVocab("abc").encode("abz")
    with pytest.raises(ValueError, match="need at least seq_len"):
        M.lm_batches(torch.arange(5), 2, 10)
    with pytest.raises(ValueError, match="need more than seq_len"):
        M.evaluate_lm(M.CharLM(4, 4, 8), torch.arange(3) % 4, seq_len=10)
    with pytest.raises(ValueError, match="unknown task 'nope'"):
        M.get_task("nope")
    with pytest.raises(ValueError, match="unknown pretrained model"):
        M.load_pretrained("nope")


def test_checkpoint_round_trip(tmp_path):
    m = M.CharLM(10, 4, 8)
    M.save_checkpoint(m, tmp_path / "m.pt", extra={"vocab": "abcdefghij"})
    payload = torch.load(tmp_path / "m.pt", weights_only=True)
    assert payload["state_dict"]["lstm.weight_hh_l0"].dtype == torch.float16
    m2, p2 = M.load_checkpoint(tmp_path / "m.pt", M.CharLM)
    assert p2["vocab"] == "abcdefghij"
    for k, v in m.state_dict().items():
        torch.testing.assert_close(m2.state_dict()[k], v.half().float())


def test_missing_checkpoint_says_how_to_rebuild(monkeypatch, tmp_path):
    import hmf_lab.nlp.checkpoints as C
    monkeypatch.setattr(C, "assets_dir", lambda: tmp_path)
    with pytest.raises(FileNotFoundError, match="scripts/train_models.py --task intent"):
        M.load_pretrained("intent")


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_checkpoints_load_with_weights_only(name):
    payload = torch.load(M.checkpoint_path(name), weights_only=True)
    assert {"config", "state_dict", "vocab", "info"} <= set(payload)
    W = hl.models.pretrained_weights(name)
    assert W and all(v.ndim == 2 and v.dtype == torch.float32 for v in W.values())
    assert not any("embedding" in k for k in W)


@pytest.mark.slow
@pytest.mark.data("tinyshakespeare")
@pytest.mark.skipif("char_lm" not in SHIPPED, reason="char_lm.pt not built")
def test_shipped_lm_has_learned_something():
    model, payload = M.load_pretrained("char_lm", with_payload=True)
    task = M.LMTask(vocab=M.CharVocab(payload["vocab"]), eval_chars=20_000)
    bpc = task.evaluate(model)["bits_per_char"]
    assert bpc < 0.5 * math.log2(len(task.vocab))  # far below the uniform 6 bits
    W = M.pretrained_weights("char_lm")
    assert W["lstm.weight_hh_l0"].shape == (4 * 256, 256) and W["decoder.weight"].shape == (65, 256)


def test_total_size_of_data_folder(repo):
    total = sum(p.stat().st_size for d in ("data", "hmf_lab/assets") for p in (repo / d).rglob("*") if p.is_file())
    assert total < 20 * 2 ** 20
