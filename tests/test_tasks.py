"""The one task registry (hmf_lab.nlp.tasks): the Task interface, registration, lookup, the quick variant."""

import pytest
import torch

import hmf_lab as hl
from hmf_lab.nlp import tasks as T
from hmf_lab.nlp.training import TrainConfig, train_lm

TEXT = "to be or not to be, that is the question. " * 40


def test_registry_names_and_the_derived_views():
    assert list(T.TASKS) == ["char_lm", "intent", "translation", "char_tf", "intent_tf"]
    assert {n: t.cli_name for n, t in T.TASKS.items()} == {"char_lm": "lm", "intent": "intent",
                                                           "translation": "translation", "char_tf": "lm_tf",
                                                           "intent_tf": "intent_tf"}
    from hmf_lab.experiments.pipeline import task_names
    # the CLI's --task choices follow the registry
    assert task_names() == ["intent", "intent_tf", "lm", "lm_tf", "translation"]
    assert hl.models.TASKS is T.TASKS and hl.models.LMTask is T.LMTask


def test_get_task_by_registry_and_cli_name():
    assert type(T.get_task("lm", text=TEXT)) is T.LMTask
    assert type(T.get_task("char_lm", text=TEXT)) is T.LMTask
    with pytest.raises(ValueError, match=r"unknown task 'nope'; expected one of \['char_lm', 'char_tf', 'intent'"):
        T.get_task("nope")


def test_a_registered_subclass_does_not_inherit_the_command_line_name():
    """TransformerIntentTask subclasses IntentTask: it gets its own name on the command line, not "intent"."""
    assert T.TransformerIntentTask.cli_name == "intent_tf" and T.IntentTask.cli_name == "intent"
    assert T.TransformerIntentTask.train_desc != T.IntentTask.train_desc

    class Clash(T.Task):
        name, cli_name = "clash_toy", "lm"

    with pytest.raises(ValueError, match="command-line name 'lm' is taken by task 'char_lm'"):
        T.register_task(Clash)

    class Unnamed(T.LMTask):   # would have replaced char_lm under the inherited name
        pass

    with pytest.raises(ValueError, match="must set the class attribute `name` in its own body"):
        T.register_task(Unnamed)
    assert "clash_toy" not in T.TASKS and T.TASKS["char_lm"] is T.LMTask


def test_task_train_is_the_one_loop():
    """Task.train on its batches gives the same losses as the plain loop on the same data and seed."""
    task = T.LMTask(text=TEXT)
    cfg = TrainConfig(steps=4, batch_size=3, seq_len=16, seed=5)
    torch.manual_seed(0)
    a = task.build(embed=4, hidden=8)
    b = task.build(embed=4, hidden=8)
    b.load_state_dict(a.state_dict())
    la = task.train(a, cfg, progress=False)
    lb = train_lm(b, task.train_ids, cfg, progress=False)
    assert la == lb and len(la) == 4


def test_is_better_follows_the_direction():
    assert T.LMTask.is_better(T.LMTask.__new__(T.LMTask), 1.0, 2.0)          # bits/char: lower wins
    assert not T.IntentTask.is_better(T.IntentTask.__new__(T.IntentTask), 0.5, 0.9)  # accuracy: higher wins


def test_register_task_checks_its_argument():
    with pytest.raises(TypeError, match="subclass of hmf_lab.nlp.tasks.Task"):
        T.register_task(dict)

    class Nameless(T.Task):
        pass

    with pytest.raises(ValueError, match="must set the class attribute `name`"):
        T.register_task(Nameless)
    assert "" not in T.TASKS


def test_a_new_task_registers_and_the_base_marks_what_to_implement():
    class Toy(T.Task):
        name, metric = "toy", "loss"

    try:
        assert T.register_task(Toy) is Toy and T.TASKS["toy"] is Toy
        assert Toy.cli_name == "toy" and Toy.train_desc == "train toy"  # defaults from `name`
        # experiment settings: the base class's, and quick ones derived from them (a few steps)
        assert Toy.settings() == T.Settings() and Toy.settings(quick=True).post_steps < T.Settings().post_steps
        from hmf_lab.experiments.pipeline import task_names, task_settings
        assert "toy" in task_names() and task_settings("toy", quick=True) == Toy.settings(quick=True)
        assert type(T.get_task("toy")) is Toy
        toy = Toy()
        for call in (toy.build, lambda: toy.evaluate(None),
                     toy.sample_input, toy.vocab_payload, lambda: Toy.from_vocab(None),
                     lambda: toy.batch_loss(None, None, TrainConfig())):
            with pytest.raises(NotImplementedError):
                call()
    finally:
        T.TASKS.pop("toy", None)


@pytest.mark.data("snips")
def test_pretrained_quick_variant_uses_the_checkpoint_vocabulary():
    task, model = T.IntentTask.pretrained(quick=True)
    assert task.x_test.shape[0] == T.IntentTask.quick_eval["eval_n"]
    assert task.vocab_payload() == hl.models.load_pretrained("intent", with_payload=True)[1]["vocab"]
    assert 0.0 <= task.evaluate(model)[task.metric] <= 1.0


def test_every_task_carries_its_experiment_settings():
    """One settings table, with each task: full and quick, live slider budgets below the full ones."""
    for cls in T.TASKS.values():   # the transformers' too
        full, quick = cls.settings(), cls.settings(quick=True)
        assert isinstance(full, T.Settings) and isinstance(quick, T.Settings)
        assert quick.post_steps < full.post_steps and quick.scratch_steps < full.scratch_steps
        for regime in ("post", "scratch"):
            assert 0 < full.steps(regime, live=True) <= full.steps(regime)
    # the committed full run's budgets (hmf_lab/assets/results/README.md)
    assert [(T.task_class(n).settings().post_steps, T.task_class(n).settings().scratch_steps)
            for n in ("lm", "intent", "translation")] == [(100, 400), (200, 800), (100, 400)]
    assert T.LMTask.settings().eval_kw == {"eval_chars": 10_000} and T.LMTask.eval_size_kw == "eval_chars"
    with pytest.raises(ValueError, match="unknown regime 'later'"):
        T.Settings().steps("later")


def test_settings_override_per_task_subclass():
    class Small(T.Task):
        name, metric = "small_toy", "loss"
        full_settings = T.Settings(post_steps=7, scratch_steps=9, eval_kw={"eval_n": 5})
        quick_eval = {"eval_n": 2}

    q = Small.settings(quick=True)
    assert Small.settings().post_steps == 7 and q.eval_kw == {"eval_n": 2} and q.scratch_steps == 4
    assert T.Task.settings() == T.Settings()   # the subclass changed nothing of the base
