"""hl.report: a tidy per-layer table on any model, facts that must hold, a plan that meets its target, errors."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torch import nn

import hmf_lab as hl
import importlib

report_mod = importlib.import_module("hmf_lab.experiments.report")  # hl.report is the function; this is its module

COLUMNS = {"layer", "kind", "shape", "method", "compression", "heuristic", "split", "rank", "values", "bytes",
           "index_bytes", "actual_compression", "weight_error", "output_error"}


class Tagger(nn.Module):
    """A model the kit did not train: embedding -> 2-layer LSTM -> two Linear heads."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.emb = nn.Embedding(30, 24)
        self.rnn = nn.LSTM(24, 32, num_layers=2, batch_first=True)
        self.proj = nn.Linear(32, 48)
        self.head = nn.Linear(48, 40)

    def forward(self, x):
        y, _ = self.rnn(self.emb(x))
        return self.head(torch.relu(self.proj(y)))


class Unused(nn.Module):
    def __init__(self):
        super().__init__()
        self.body, self.head = nn.Linear(4, 4), nn.Linear(4, 4)

    def forward(self, x):
        return self.body(x)


@pytest.fixture(scope="module")
def tagger_report():
    model = Tagger().eval()
    X = torch.randint(0, 30, (3, 7))
    return model, hl.report(model, compressions=(2, 4, 8), X=X, time=False, progress=False)


def test_tidy_table_on_a_model_the_kit_did_not_train(tagger_report):
    model, rep = tagger_report
    t = rep.table
    assert COLUMNS <= set(t.columns) and rep.by_error == "output_error"
    assert set(t["layer"]) == {"rnn", "proj", "head"}
    assert set(t["method"]) == {"dense", "hmf", "lmf", "prune", "hmf_col"}
    assert len(t) == 3 * (1 + 4 * 3)  # dense + methods x compressions per layer
    dense = t[t["method"] == "dense"]
    assert (dense["weight_error"] == 0).all() and (dense["output_error"] == 0).all()
    assert (dense["compression"] == 1).all()
    assert t[t["layer"] == "rnn"]["shape"].iloc[0] == "128x24 + 128x32 + 128x32 + 128x32"
    hmf = t[t["method"] == "hmf"]
    assert hmf["heuristic"].isin(["top", "row_norm"]).all() and (hmf["split_point"] != "").all()


def test_facts_that_must_hold(tagger_report):
    _, rep = tagger_report
    t = rep.table
    dense_values = t[t["method"] == "dense"].set_index("layer")["values"]
    comp = t[t["method"] != "dense"]
    # every option stores at most dense / compression values and its error is in [0, inf)
    assert (comp["values"] <= comp["layer"].map(dense_values) / comp["compression"] + 1e-9).all()
    assert (comp["weight_error"] > 0).all() and (comp["output_error"] > 0).all()
    for (layer, method), g in comp.groupby(["layer", "method"]):
        g = g.sort_values("compression")
        assert g["values"].is_monotonic_decreasing and g["bytes"].is_monotonic_decreasing, (layer, method)
        assert (g["actual_compression"] >= g["compression"] - 1e-9).all()
    prune = comp[comp["method"] == "prune"]
    assert (prune["index_bytes"] > 0).all() and (prune["bytes"] == prune["values"] * 4 + prune["index_bytes"]).all()
    assert (comp[comp["method"] != "prune"]["index_bytes"] == 0).all()


@pytest.mark.parametrize("target", [2, 3, 4.5, 7])
def test_plan_meets_the_target_within_one_percent(tagger_report, target):
    model, rep = tagger_report
    plan = rep.plan(target)
    small = hl.report_apply_plan(model, plan)
    achieved = hl.count_params(model) / hl.count_params(small)
    assert abs(achieved / target - 1) <= 0.01, (achieved, plan)
    assert plan["achieved"] == pytest.approx(achieved)
    assert set(plan) >= {"target", "achieved", "values", "dense_values", "error_sum", "by", "rule", "layers"}
    for name, kw in plan["layers"].items():
        assert kw["layers"] == [name] and kw["method"] in ("hmf", "lmf", "prune")
    json.dumps(plan, default=str)  # serialisable (the CLI writes it)
    with torch.inference_mode():
        assert small(torch.randint(0, 30, (1, 5))).shape == (1, 5, 40)


def test_plan_spends_budget_where_error_per_value_is_lowest():
    """By weight error, a layer whose weight is exactly low rank costs (almost) no error to factorize: the
    rule compresses it first and leaves the full-rank layer dense."""
    torch.manual_seed(1)
    easy = nn.Linear(64, 64)
    with torch.no_grad():
        easy.weight.copy_(torch.randn(64, 2) @ torch.randn(2, 64))  # rank 2: LMF/HMF reproduce it
    model = nn.Sequential(easy, nn.Linear(64, 64))
    rep = hl.report(model, compressions=(2, 4), time=False, progress=False)
    plan = rep.plan(1.3)
    assert list(plan["layers"]) == ["0"]


def test_report_with_timing_and_without_X():
    model = nn.Sequential(nn.Linear(32, 32), nn.ReLU(), nn.Linear(32, 16))
    rep = hl.report(model, compressions=(2,), time=True, min_run_time=0.005, progress=False)
    t = rep.table
    assert rep.by_error == "weight_error" and t["output_error"].isna().all()
    assert {"engine", "time_us", "dense_us", "speedup"} <= set(t.columns)
    assert (t["time_us"] > 0).all() and set(t[t["method"] == "dense"]["engine"]) == {"dense"}
    assert t[t["method"] != "dense"]["engine"].isin(hl.engines.ENGINES).all()
    assert "| layer |" in rep.to_markdown() and "Report(2 layers" in repr(rep)
    for _, g in t.groupby("layer"):  # dense timed side by side: the dense row is the median of the races' dense
        dense, comp = g[g["method"] == "dense"].iloc[0], g[g["method"] != "dense"]
        assert dense["time_us"] == dense["dense_us"] == pytest.approx(comp["dense_us"].median())
        assert np.allclose(comp["speedup"], comp["dense_us"] / comp["time_us"])


def test_report_dense_time_when_no_compressed_row_is_timed():
    """Every compression unreachable for a tiny layer: no race to read the dense time from, the dense layer is
    raced alone (hl.timing.race); the failed rows carry a note and no time."""
    rep = hl.report(nn.Sequential(nn.Linear(3, 2)), compressions=(50,), time=True, min_run_time=0.003,
                    progress=False)
    t = rep.table
    dense = t[t["method"] == "dense"].iloc[0]
    assert dense["engine"] == "dense" and dense["time_us"] > 0 and dense["dense_us"] == dense["time_us"]
    assert t[t["method"] != "dense"]["time_us"].isna().all() and t[t["method"] != "dense"]["note"].notna().all()


def test_report_on_the_shipped_char_lm():
    model = hl.models.load_pretrained("char_lm")
    rep = hl.report(model, compressions=(4,), X=torch.randint(0, 60, (1, 32)), time=False, progress=False)
    assert set(rep.table["layer"]) == {"lstm", "decoder"}
    plan = rep.plan(4)
    assert abs(plan["achieved"] / 4 - 1) <= 0.01


def test_cli_report_on_a_checkpoint(tmp_path, capsys):
    from hmf_lab import cli
    from hmf_lab.nlp import CharLM, save_checkpoint

    torch.manual_seed(0)
    save_checkpoint(CharLM(vocab_size=12, embed=8, hidden=16), tmp_path / "lm.pt")
    code = cli.main(["report", "--model", str(tmp_path / "lm.pt"), "--factory", "hmf_lab.nlp:CharLM",
                     "--compression", "2", "4", "--target", "3", "--no-time", "--out", str(tmp_path / "out")])
    out = capsys.readouterr().out
    assert code == 0 and "| layer |" in out and "plan at 3x" in out
    plan = json.loads((tmp_path / "out" / "plan.json").read_text())
    assert abs(plan["achieved"] / 3 - 1) <= 0.01 and (tmp_path / "out" / "report.csv").is_file()
    torch.save(nn.Module().state_dict(), tmp_path / "plain.pt")  # a plain state dict: factory() with no argument
    assert isinstance(report_mod.load_model(tmp_path / "plain.pt", "torch.nn:Module"), nn.Module)
    code = cli.main(["report", "--model", str(tmp_path / "nope.pt"), "--factory", "hmf_lab.nlp:CharLM"])
    assert code == 2 and "is not a file" in capsys.readouterr().err


def test_load_model_errors(tmp_path):
    torch.save({"w": torch.zeros(2)}, tmp_path / "sd.pt")
    torch.save([1, 2], tmp_path / "list.pt")
    with pytest.raises(ValueError, match="factory must be 'module:function'"):
        report_mod.load_model(tmp_path / "sd.pt", "hmf_lab.nlp.CharLM")
    with pytest.raises(ValueError, match="cannot be imported"):
        report_mod.load_model(tmp_path / "sd.pt", "hmf_lab.nlp:NoSuchThing")
    with pytest.raises(ValueError, match="is not a file"):
        report_mod.load_model(tmp_path / "missing.pt", "hmf_lab.nlp:CharLM")
    with pytest.raises(ValueError, match="holds a list"):
        report_mod.load_model(tmp_path / "list.pt", "hmf_lab.nlp:CharLM")
    with pytest.raises(ValueError, match="returned a dict, expected a torch.nn.Module"):
        report_mod.load_model(tmp_path / "sd.pt", "builtins:dict")


def test_report_and_plan_errors(tagger_report):
    model, rep = tagger_report
    with pytest.raises(TypeError, match="model must be a torch.nn.Module"):
        hl.report("net")
    with pytest.raises(ValueError, match="compressions must be numbers > 1"):
        hl.report(model, compressions=(1, 2))
    with pytest.raises(TypeError, match="compressions must be a sequence"):
        hl.report(model, compressions=None)
    with pytest.raises(ValueError, match=r"layers \['nope'\] are not nn.Linear / nn.LSTM"):
        hl.report(model, layers=["nope"])
    with pytest.raises(ValueError, match="has no nn.Linear or nn.LSTM"):
        hl.report(nn.Sequential(nn.ReLU()))
    with pytest.raises(ValueError, match="methods must be a non-empty sequence"):
        hl.report(model, methods=("svd",))
    with pytest.raises(ValueError, match="heuristics must name registered heuristics"):
        hl.report(model, heuristics=("nope",))
    with pytest.raises(ValueError, match="threads must be an int >= 1"):
        hl.report(model, threads=0)
    with pytest.raises(ValueError, match="model could not run on X"):
        hl.report(model, X=torch.randn(2, 3, 4), progress=False)
    with pytest.raises(ValueError, match=r"layers \['head'\] were not called"):
        hl.report(Unused(), X=torch.randn(1, 4), progress=False, time=False)
    with pytest.raises(ValueError, match="target must be a total compression >= 1"):
        rep.plan(0.5)
    with pytest.raises(ValueError, match="is beyond what the report's options reach"):
        rep.plan(50)
    with pytest.raises(ValueError, match="methods must be a non-empty sequence"):
        rep.plan(2, methods=("svd",))
    with pytest.raises(TypeError, match="plan must be the dict Report.plan returns"):
        hl.report_apply_plan(model, {"x": 1})
    with pytest.raises(TypeError, match="model must be a torch.nn.Module"):
        hl.report_apply_plan(None, {"layers": {}})


def _corrupt_checkpoints(tmp_path):
    import io
    import pickle
    buf = io.BytesIO()
    torch.save({"w": torch.ones(3)}, buf)
    good = buf.getvalue()
    files = {"text.pt": b"this is not a checkpoint", "empty.pt": b"", "truncated.pt": good[: len(good) // 2],
             "pickled_module.pt": pickle.dumps(nn.Linear(2, 2)),       # UnpicklingError (weights_only)
             "flipped.pt": good[:40] + bytes(b ^ 0xFF for b in good[40:80]) + good[80:]}
    for name, blob in files.items():
        (tmp_path / name).write_bytes(blob)
    return sorted(files)


@pytest.mark.parametrize("name", ["text.pt", "empty.pt", "truncated.pt", "pickled_module.pt", "flipped.pt"])
def test_cli_report_on_a_corrupt_checkpoint_is_one_line_exit_2(tmp_path, capsys, name):
    """Issue 18: `hmf-lab report --model <corrupt file> --factory ...` printed a full UnpicklingError
    traceback (exit 1); now one line naming the file and the fix, exit 2."""
    from hmf_lab import cli

    _corrupt_checkpoints(tmp_path)
    path = tmp_path / name
    code = cli.main(["report", "--model", str(path), "--factory", "hmf_lab.nlp:CharLM", "--no-time"])
    captured = capsys.readouterr()
    assert code == 2
    assert "Traceback" not in captured.err + captured.out
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, captured.err
    assert lines[0].startswith(f"hmf-lab report: checkpoint {str(path)!r} could not be loaded (")
    assert "torch.save(model.state_dict(), path)" in lines[0]
    with pytest.raises(ValueError, match="could not be loaded"):
        report_mod.load_model(path, "hmf_lab.nlp:CharLM")


def test_load_model_checkpoint_that_does_not_fit_the_factory(tmp_path, capsys):
    from hmf_lab import cli
    from hmf_lab.nlp import CharLM, save_checkpoint

    save_checkpoint(CharLM(vocab_size=12, embed=8, hidden=16), tmp_path / "lm.pt")
    with pytest.raises(ValueError, match=r"factory 'torch.nn:Module' cannot be called with the config of "
                                         r"checkpoint .*unexpected keyword argument 'vocab_size'"):
        report_mod.load_model(tmp_path / "lm.pt", "torch.nn:Module")
    torch.save(nn.Linear(3, 2).state_dict(), tmp_path / "plain.pt")
    with pytest.raises(ValueError, match=r"does not fit the model built by 'torch.nn:Identity' \(Error\(s\) in "
                                         r"loading state_dict"):
        report_mod.load_model(tmp_path / "plain.pt", "torch.nn:Identity")
    torch.save({"state_dict": [1, 2]}, tmp_path / "odd.pt")
    with pytest.raises(ValueError, match=r"its 'state_dict' holds a list, expected a dict of tensors"):
        report_mod.load_model(tmp_path / "odd.pt", "torch.nn:Module")
    for argv in (["--model", str(tmp_path / "lm.pt"), "--factory", "torch.nn:Module"],
                 ["--model", str(tmp_path / "plain.pt"), "--factory", "torch.nn:Identity"],
                 ["--model", str(tmp_path / "lm.pt"), "--factory", "hmf_lab.nlp:CharLM",
                  "--calibration", str(tmp_path / "odd.pt.missing")],
                 ["--model", str(tmp_path / "lm.pt"), "--factory", "hmf_lab.nlp:CharLM",
                  "--calibration", str(tmp_path / "lm.pt.bad")]):
        (tmp_path / "lm.pt.bad").write_bytes(b"garbage")
        code = cli.main(["report", *argv, "--no-time"])
        err = capsys.readouterr().err
        assert code == 2 and "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert "calibration" in err and "could not be loaded" in err
