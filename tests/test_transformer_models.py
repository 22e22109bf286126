"""The two shipped transformers (issue 20, part 1): char_tf (decoder-only, Tiny Shakespeare) and intent_tf
(nn.TransformerEncoder, SNIPS): build, causality and padding masks, checkpoints (SHA-256, weights_only), quick
evaluation, hl.compress at compression 1 (exact) and at 2x, and the outlier profile."""
from __future__ import annotations

import hashlib
import math
import warnings

import pytest
import torch

import hmf_lab as hl
from hmf_lab.nlp import checkpoints as C
from hmf_lab.nlp import tasks as T
from hmf_lab.nlp.networks import CharTransformer, TransformerIntentClassifier
from hmf_lab.nlp.training import evaluate_causal_lm

TF = ("char_tf", "intent_tf")
# exact at compression 1: HMF and column HMF keep everything dense, pruning keeps every value; LMF at full
# rank (d_model) on the layers whose smaller side is d_model (all but char_tf's 65 x 128 head)
EXACT = {"hmf": {"compression": 1}, "hmf_col": {"compression": 1}, "prune": {"compression": 1}, "lmf": None}


@pytest.fixture(autouse=True)
def _quiet():
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*[Ss]parse CSR.*")
        yield


@pytest.fixture(scope="module")
def shipped():
    """(task, model) of both transformers, quick evaluation sizes; skipped without the data sets."""
    from hmf_lab.nlp import data
    for d in ("tinyshakespeare", "snips"):
        if not data.available(d):
            pytest.skip(data.skip_note(d))
    torch.set_num_threads(1)
    return {name: T.task_class(name).pretrained(quick=True) for name in TF}


# ------------------------------------------------------------------------------------ the networks


def test_char_transformer_is_causal_and_checks_its_context():
    torch.manual_seed(0)
    m = CharTransformer(vocab_size=9, d_model=16, heads=2, layers=2, context=8).eval()
    x = torch.randint(0, 9, (2, 8))
    y = x.clone()
    y[:, 5:] = (y[:, 5:] + 1) % 9                     # change the future only
    torch.testing.assert_close(m(x)[:, :5], m(y)[:, :5])
    assert not torch.allclose(m(x)[:, 5:], m(y)[:, 5:])
    with pytest.raises(ValueError, match="context is 8"):
        m(torch.zeros(1, 9, dtype=torch.long))
    with pytest.raises(ValueError, match="d_model must be a multiple of heads"):
        CharTransformer(vocab_size=9, d_model=10, heads=4)


@pytest.mark.parametrize("train", [False, True])
def test_intent_transformer_ignores_padding(train):
    """Extra padding changes nothing (key_padding_mask + masked mean), in eval (fast path) and train mode."""
    torch.manual_seed(0)
    m = TransformerIntentClassifier(vocab_size=30, n_classes=4, d_model=16, heads=2, layers=2, ff=32,
                                    max_len=10, dropout=0.0).train(train)
    x = torch.tensor([[5, 6, 7, 0], [8, 9, 0, 0]])
    longer = torch.cat([x, torch.zeros(2, 3, dtype=torch.long)], 1)
    with torch.no_grad():
        torch.testing.assert_close(m(x), m(longer), atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(m(x[1:, :2]), m(x)[1:], atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match="max_len is 10"):
        m(torch.ones(1, 11, dtype=torch.long))


def test_causal_lm_evaluation_scores_each_character_once():
    """Sliding windows: with a model that ignores its context the loss is that of one full pass."""
    ids = torch.arange(300) % 7
    m = CharTransformer(vocab_size=7, d_model=8, heads=2, layers=1, context=16)
    r = evaluate_causal_lm(m, ids, context=16, stride=16)
    r2 = evaluate_causal_lm(m, ids, context=16, stride=4)
    assert r["bits_per_char"] > 0 and math.isclose(r["bits_per_char"] * math.log(2), r["nats_per_char"])
    assert math.isfinite(r2["bits_per_char"])
    with pytest.raises(ValueError, match="stride must be in 1..context=16"):
        evaluate_causal_lm(m, ids, context=16, stride=17)
    with pytest.raises(ValueError, match="need more than context=16 ids"):
        evaluate_causal_lm(m, ids[:10], context=16)


def test_tiny_transformer_tasks_train_on_toy_data():
    torch.set_num_threads(1)
    lm = T.TransformerLMTask(text="to be or not to be, that is the question. " * 60)
    model = lm.build(d_model=16, heads=2, layers=1, context=32)
    before = lm.evaluate(model)["bits_per_char"]
    lm.fine_tune(model, steps=30, lr=1e-2, progress=False)
    assert lm.evaluate(model)["bits_per_char"] < before - 0.5
    pairs = [("music", "play a song"), ("music", "play the album"), ("weather", "rain tomorrow"),
             ("weather", "sunny forecast today")] * 20
    it = T.TransformerIntentTask(pairs=(pairs, pairs[:8]))
    clf = it.build(d_model=16, heads=2, layers=1, ff=32)
    it.fine_tune(clf, steps=40, lr=1e-2, progress=False)
    assert it.evaluate(clf)["accuracy"] == 1.0
    assert clf(*it.sample_input()).shape == (1, 2)
    calib = it.calibration_input(seed=1, n=8)            # one batch per length, no padding
    assert sum(b[0].shape[0] for b in calib) == 8 and all(bool((b[0] != hl.models.PAD).all()) for b in calib)


# ------------------------------------------------------------------------------------ the checkpoints


@pytest.mark.parametrize("name", TF)
def test_checkpoint_is_small_safe_and_matches_its_sha(name):
    p = C.checkpoint_path(name)
    blob = p.read_bytes()
    assert len(blob) < 5e6
    reg = C.registry()[name]
    assert hashlib.sha256(blob).hexdigest() == reg["sha256"]
    payload = torch.load(p, weights_only=True)
    assert {"config", "state_dict", "vocab", "info"} <= set(payload)
    model = C.load_pretrained(name)
    assert sum(q.numel() for q in model.parameters()) == reg["params"] == payload["info"]["params"]
    assert {"steps", "lr", "batch_size"} <= set(reg["train_config"]) and reg["train_seconds"] > 0


def test_quick_evaluation_of_the_shipped_models(shipped):
    lm_task, lm = shipped["char_tf"]
    r = lm_task.evaluate(lm)
    assert lm_task.eval_chars == T.TransformerLMTask.quick_eval["eval_chars"]
    # far below a uniform guess (log2 65 = 6.02 bits) and near the recorded full validation loss
    assert r["bits_per_char"] < C.registry()["char_tf"]["metrics"]["bits_per_char"] + 0.5
    it, clf = shipped["intent_tf"]
    assert it.x_test.shape[0] == T.TransformerIntentTask.quick_eval["eval_n"]
    assert it.evaluate(clf)["accuracy"] >= C.registry()["intent_tf"]["metrics"]["accuracy"] - 0.1


@pytest.mark.data("snips")
def test_intent_checkpoint_reproduces_its_recorded_accuracy():
    """The float16 checkpoint on the full test set: the accuracy measured at the end of training (float32)."""
    task, model = T.TransformerIntentTask.pretrained()
    got = task.evaluate(model)["accuracy"]
    assert abs(got - C.registry()["intent_tf"]["metrics"]["accuracy"]) <= 2 / task.x_test.shape[0]


# ------------------------------------------------------------------------------------ hl.compress


def _batch(task):
    """A model input tuple: 4 training windows (char_tf), or 8 test utterances padded to the longest (intent_tf:
    the padding mask is in play)."""
    if isinstance(task, T.TransformerIntentTask):
        x = task.x_test[:8]
        return (x[:, :int((x != hl.models.PAD).sum(1).max())],)
    return task.calibration_input(seed=3, n=4)


@pytest.mark.parametrize("method", sorted(EXACT))
@pytest.mark.parametrize("name", TF)
def test_compression_one_equals_dense_on_the_shipped_transformer(shipped, name, method):
    task, model = shipped[name]
    x = _batch(task)
    kw = EXACT[method]
    if kw is None:
        d = model.config["d_model"]
        layers = [n for n in hl.nn.compress.select_modules(model) if n.endswith("self_attn")
                  or min(model.get_submodule(n).weight.shape) == d]
        kw = {"rank": d, "layers": layers}
    same = hl.compress(model, method, **kw)
    with torch.no_grad():
        torch.testing.assert_close(same(*x), model(*x), atol=2e-4, rtol=1e-4)
    if method != "lmf":   # full-rank factors store more than the dense matrix
        assert hl.count_params(same) == hl.count_params(model)


@pytest.mark.parametrize("method", ["hmf", "hmf_col", "lmf"])
@pytest.mark.parametrize("name", TF)
def test_compress_2x_runs_through_the_task(shipped, name, method):
    task, model = shipped[name]
    dense = hl.count_params(model)
    kw = {"X": task.calibration_input(seed=0, n=4)} if "X" in hl.get_method(method).options else {}
    small = hl.compress(model, method, compression=2, **kw)
    r = task.evaluate(small)
    assert math.isfinite(r[task.metric])
    assert 2.0 - 1e-9 <= dense / hl.count_params(small) < 2.2   # every Linear and attention block at 2x


def test_outlier_profile_of_the_shipped_transformers(shipped):
    from hmf_lab.experiments.report import outlier_profile
    for name, blocks in (("char_tf", {"", }), ("intent_tf", {"", "q", "k", "v", "out"})):
        task, model = shipped[name]
        df = outlier_profile(model, task.calibration_input(seed=0, n=4))
        assert set(df["block"]) == blocks and (df["raw_max_median"] >= 1).all()
        assert ((df["whitened_top_share"] > 0) & (df["whitened_top_share"] <= 1)).all()
    assert len(outlier_profile(shipped["char_tf"][1], shipped["char_tf"][0].calibration_input(seed=0, n=2))) == 4 * 6 + 1
    with pytest.raises(TypeError, match="model must be a torch.nn.Module"):
        outlier_profile("model", torch.zeros(1, 2))


# ------------------------------------------------------------------------------------ post-training (part 4)


def _script(name):
    from conftest import load_script

    return load_script(f"scripts/{name}.py")


def test_post_training_cells_quick(shipped):
    from hmf_lab.experiments.posttrain import post_training_cells, post_training_tables
    df = post_training_cells("intent_tf", ["lmf", "aa_lmf"], [2], seeds=2, quick=True)
    assert len(df) == 1 + 2 * 2 and df.label.iloc[0] == "dense" and (df.regime == "post").all()
    lmf = df[df.label == "lmf"]
    assert lmf.value.nunique() == 1                       # no calibration inputs: every seed the same model
    assert (df[df.label != "dense"].actual_compression >= 2.0 - 1e-9).all()
    md = post_training_tables(df)
    assert "| 2 | aa_lmf |" in md and "vs lmf" in md and "vs oats" in md
    with pytest.raises(ValueError, match="seeds must be an int >= 1"):
        post_training_cells("intent_tf", ["lmf"], [2], seeds=0, quick=True)
    with pytest.raises(ValueError, match=r"compressions must be numbers > 1"):
        post_training_cells("intent_tf", ["lmf"], [1], quick=True)


def test_post_training_script_quick(shipped, tmp_path):
    df = _script("transformer_post_training").main(["--quick", "--task", "intent_tf", "--methods", "lmf", "oats",
                                                     "--out", str(tmp_path)])
    assert (tmp_path / "cells.csv").is_file() and "| 2 | oats |" in (tmp_path / "results.md").read_text()
    assert set(df.label) == {"dense", "lmf", "oats"}


_OLD_COLUMNS = ["task", "regime", "metric", "compression", "label", "seed", "value", "params", "actual_compression",
                "layers", "seconds"]


def test_post_training_cells_without_fine_tuning_are_the_evaluated_compressed_models(shipped):
    from hmf_lab.experiments.pipeline import compressed_layers, shipped_task
    from hmf_lab.experiments.posttrain import post_training_cells
    df = post_training_cells("intent_tf", ["lmf", "wanda"], [2], seeds=1, quick=True, eval_size=40,
                             fine_tune_steps=0)
    assert list(df.columns) == _OLD_COLUMNS + ["steps", "ft_seconds"] and len(df) == 3
    assert (df.regime == "post").all() and (df.steps == 0).all() and (df.ft_seconds == 0).all()
    t, model = shipped_task("intent_tf", True, 40)
    layers = compressed_layers(model)
    with torch.no_grad():
        expect = {"dense": t.evaluate(model)[t.metric],
                  "lmf": t.evaluate(hl.compress(model, "lmf", compression=2, layers=layers))[t.metric],
                  "wanda": t.evaluate(hl.compress(model, "wanda", compression=2, layers=layers,
                                                  X=t.calibration_input(seed=0)))[t.metric]}
    assert dict(zip(df.label, df.value)) == expect


def _sparse_parts(model):
    """(mask, nonzeros of the masked weight) of each pruned module, (pattern, values, U) of each OATS module."""
    from hmf_lab.nn.baseline_layers import SparseLowRankLinear
    out = {}
    for name, mod in model.named_modules():
        if hasattr(mod, "weight_mask"):
            out[name] = ("mask", mod.weight_mask.clone(), int((mod.weight_orig * mod.weight_mask).count_nonzero()),
                         mod.weight_orig.detach().clone())
        elif isinstance(mod, SparseLowRankLinear):
            out[name] = ("oats", torch.cat([mod.crow_indices, mod.col_indices]).clone(), mod.values.clone(),
                         mod.U.detach().clone())
    return out


@pytest.mark.parametrize("method", ["wanda", "oats"])
def test_fine_tuning_keeps_the_sparse_parts_sparse(shipped, method):
    from hmf_lab.experiments import posttrain as PT
    from hmf_lab.experiments.pipeline import compressed_layers, shipped_task
    t, model = shipped_task("intent_tf", True, 40)
    small = hl.compress(model, method, compression=2, layers=compressed_layers(model),
                        X=t.calibration_input(seed=0, n=64))
    before = _sparse_parts(small)
    assert before and all(v[0] == ("mask" if method == "wanda" else "oats") for v in before.values())
    assert PT._fine_tune(t, small, 3, 2e-3, 0) > 0
    after = _sparse_parts(small)
    assert before.keys() == after.keys()
    for name, (kind, pattern, nnz_or_values, trained) in before.items():
        assert torch.equal(after[name][1], pattern)                  # same mask / CSR pattern
        if kind == "mask":
            assert after[name][2] == nnz_or_values                   # as many nonzeros: pruned weights stay 0
        else:
            assert torch.equal(after[name][2], nnz_or_values)        # OATS' sparse values: frozen buffers
        assert not torch.equal(after[name][3], trained)              # Wanda's kept weights / OATS' U train
    with torch.no_grad():
        assert math.isfinite(t.evaluate(small)[t.metric])


def test_post_training_cells_fine_tuned(shipped):
    import pandas as pd
    from hmf_lab.experiments.posttrain import post_training_cells, post_training_tables
    kw = dict(quick=True, eval_size=40, calibration=32)
    df = post_training_cells("intent_tf", ["lmf", "wanda"], [2], seeds=2, fine_tune_steps=2, **kw)
    assert (df.regime == "post+ft").all() and (df.steps == 2).all() and (df.ft_seconds > 0).all()
    assert sorted(df[df.label == "dense"].seed) == [0, 1] and (df[df.label == "dense"].compression == 1.0).all()
    again = post_training_cells("intent_tf", ["lmf", "wanda"], [2], seeds=1, fine_tune_steps=2, **kw)
    pd.testing.assert_series_equal(again.value, df[df.seed == 0].value.reset_index(drop=True))  # seeded
    post = post_training_cells("intent_tf", ["lmf", "wanda"], [2], seeds=2, **kw)
    ft_params = df[df.label != "dense"].set_index(["label", "seed"]).params
    assert ft_params.equals(post[post.label != "dense"].set_index(["label", "seed"]).params)   # same structures
    md = post_training_tables(pd.concat([post, df], ignore_index=True))
    alone = post_training_tables(post)
    assert md.startswith(alone) and md.count("### intent_tf") == 2 and "fine-tuned 2 steps after compression" in md
    assert "| 2 | wanda |" in md[len(alone):] and "no fine-tuning" not in md[len(alone):]
    for bad in (-1, 1.5, "3", True):
        with pytest.raises(ValueError, match="fine_tune_steps must be an int >= 0"):
            post_training_cells("intent_tf", ["lmf"], [2], fine_tune_steps=bad, **kw)


def test_post_training_script_fine_tunes_quick(shipped, tmp_path):
    df = _script("transformer_post_training").main(["--quick", "--task", "intent_tf", "--methods", "lmf",
                                                     "--fine-tune-steps", "1", "--out", str(tmp_path)])
    assert set(df.regime) == {"post+ft"} and set(df.steps) == {1}
    assert "fine-tuned 1 steps" in (tmp_path / "results.md").read_text()


def test_outlier_profile_script_quick(shipped, capsys):
    _script("outlier_profile").main(["--quick"])
    out = capsys.readouterr().out
    assert "### char_tf" in out and "### intent_tf" in out and "blocks.3.fc2" in out and "encoder.layers.1.self_attn" in out


@pytest.mark.parametrize("task", ["lm_tf", "intent_tf"])
def test_the_experiment_pipeline_runs_a_post_cell_on_each_transformer(shipped, task):
    from hmf_lab.experiments import pipeline as P
    row = P.run_cell(P.Cell(task, "post", "lmf", 2.0, 0, quick=True))
    assert row["task"] == task and math.isfinite(row["value"]) and row["actual_compression"] >= 2.0 - 1e-9


def test_shipped_post_training_results_are_the_tables_of_their_cells():
    import pandas as pd
    from hmf_lab.experiments.posttrain import POST_METHODS, post_training_tables
    folder = C.assets_dir() / "results" / "transformers"
    df = pd.read_csv(folder / "cells.csv")
    assert (folder / "results.md").read_text() == post_training_tables(df)
    assert set(df.label) == {"dense", *POST_METHODS} and set(df.task) == set(TF)
    assert set(df[df.label != "dense"].seed) == {0, 1, 2} and set(df.compression) == {1.0, 1.5, 2.0, 3.0, 4.0}


def test_outlier_profile_names_a_layer_the_inputs_never_reach():
    from hmf_lab.experiments.report import outlier_profile

    class TwoHeads(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.used, self.unused = torch.nn.Linear(4, 4), torch.nn.Linear(4, 4)

        def forward(self, x):
            return self.used(x)

    with pytest.raises(ValueError, match="layer 'unused' never ran on the calibration inputs X"):
        outlier_profile(TwoHeads(), torch.randn(8, 4))


@pytest.mark.data("snips")
@pytest.mark.parametrize("method", ["lmf", "hmf"])
def test_a_scratch_cell_runs_on_the_multihead_attention_model(method):
    """factorized_init pairs nn.MultiheadAttention's q/k/v blocks and out_proj with the compressed projections
    (it read ``src.weight`` and raised AttributeError before)."""
    from hmf_lab.experiments.pipeline import Cell, run_cell

    r = run_cell(Cell("intent_tf", "scratch", method, 2.0, quick=True))
    assert r["steps"] > 0 and 0.0 <= r["value"] <= 1.0
    assert 0 < r["init_energy_kept"] <= 1.0
