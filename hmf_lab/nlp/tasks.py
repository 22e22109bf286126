"""The NLP tasks of the kit, one registry: data, model, training batches, metric, and a quick variant.

A :class:`Task` bundles everything an experiment needs about one benchmark; ``reproduce``, the
training script and the notebooks use only this interface:

=========================================  =====================================================
``Task(...)``                              load the data (the constructor; keyword arguments replace
                                           the corpus or shrink the evaluation set)
``Task.pretrained(quick=False, **kw)``     ``(task, shipped dense model)`` with the checkpoint's vocabulary
``task.build(**arch)``                     a fresh, randomly initialised model
``task.batch_loss(model, generator, cfg)`` the loss of one random training batch
``task.train(model, cfg)``                 :func:`hmf_lab.nlp.training.train` on those batches
``task.train_base()`` / ``fine_tune()``    the base run / fine-tuning (one implementation for all tasks)
``task.evaluate(model) -> dict``           metrics; ``metric`` names the headline one,
                                           ``higher_is_better`` its direction
``task.sample_input()``                    one input tuple for timing
``task.calibration_input(seed)``           training inputs for post-training calibration (``hl.compress(X=)``:
                                           an input tuple or a list of them)
``quick_eval``                             constructor keywords of the quick variant (``HMF_LAB_QUICK``)
``Task.settings(quick=False)``             the experiments' work on this task (:class:`Settings`:
                                           steps, evaluation size, pruning schedule, timing);
                                           set ``full_settings`` / ``quick_settings``
``Task.reindex(model, old, new)``          the same model for another order of its vocabulary
                                           (rows named by ``vocab_rows`` permuted; exact)
=========================================  =====================================================

Vocabularies built from data are ordered by frequency (most frequent first: :mod:`hmf_lab.nlp.vocab`);
a model always comes with the vocabulary of its checkpoint (``Task.pretrained``), never one rebuilt from
the data, so a checkpoint saved with another order (the shipped ones before they were re-ordered by
``scripts/reorder_vocab.py`` had a sorted character vocabulary) stays consistent.

``TASKS`` maps the registry name to the class; ``get_task`` also takes the short command-line names
(``cli_name``: ``"lm"``, ``"intent"``, ``"translation"``; the transformers ``"lm_tf"``, ``"intent_tf"``). Add a task: subclass :class:`Task`, fill the
class attributes (``cli_name`` defaults to ``name``; ``full_settings`` / ``quick_settings`` size its
experiments) and the five methods, decorate it with :func:`register_task`: the grid, ``hmf-lab reproduce
--task`` and notebooks 06/07 then take it as it is.

>>> import hmf_lab as hl
>>> sorted(hl.tasks.TASKS), [t.cli_name for t in hl.tasks.TASKS.values()]
(['char_lm', 'char_tf', 'intent', 'intent_tf', 'translation'], ['lm', 'intent', 'translation', 'lm_tf', 'intent_tf'])
"""
from __future__ import annotations

import copy
from dataclasses import dataclass, field, replace

import torch
from torch import nn

from hmf_lab.nlp.networks import CharLM, CharTransformer, IntentClassifier, TransformerIntentClassifier, Translator
from hmf_lab.nlp.training import (TrainConfig, evaluate_causal_lm, evaluate_intent, evaluate_lm, evaluate_translation,
                                  intent_loss, lm_batches, lm_loss, train, translation_loss)
from hmf_lab.nlp.vocab import _SPECIALS, BOS, EOS, PAD, UNK, CharVocab, WordVocab, _pad, frequency_order, tokenize

__all__ = ["Task", "LMTask", "IntentTask", "TranslationTask", "TransformerLMTask", "TransformerIntentTask", "TASKS",
           "get_task", "task_class", "register_task", "reorder_checkpoint",
           "Settings"]


@dataclass(frozen=True)
class Settings:
    """The work one experiment cell does on a task: the same for every method and seed.

    One table for every experiment (the grid's post and scratch cells, the timed single run, the live
    sliders). Each task carries its own (:attr:`Task.full_settings`, :attr:`Task.quick_settings`), so a
    newly registered task runs everywhere without editing the experiments.

    >>> Settings(post_steps=5, scratch_steps=9).post_lr
    0.002
    """

    post_steps: int = 100            # fine-tuning steps after compression (regime post)
    scratch_steps: int = 400         # training steps from initialization (regime scratch), dense and every method
    post_lr: float = 2e-3            # Adam learning rate of post fine-tuning (cosine-decayed)
    eval_kw: dict = field(default_factory=dict)   # constructor keywords of the evaluation (its size)
    prune_end: float = 0.7           # fraction of the steps at which gradual pruning reaches its target
    prune_every: int = 10            # steps between mask updates
    live_post_steps: int | None = None     # the live sliders' budgets in full mode (None: post_steps /
    live_scratch_steps: int | None = None  # scratch_steps): a slider move must take seconds
    min_run_time: float = 1.0        # seconds of side-by-side timing per model (single timed run)
    timing_rounds: int = 5           # interleaved timing rounds, pooled (median, IQR)
    step_cost: float = 0.1           # rough seconds per training step (schedules the longest cells first)

    def steps(self, regime: str, live: bool = False) -> int:
        """Training steps of ``regime`` ("post" or "scratch"); ``live``: the sliders' budget.

        >>> Settings(post_steps=5, scratch_steps=9, live_scratch_steps=3).steps("scratch", live=True)
        3
        """
        if regime not in ("post", "scratch"):
            raise ValueError(f"unknown regime {regime!r}; expected one of ('post', 'scratch')")
        full = self.post_steps if regime == "post" else self.scratch_steps
        lv = self.live_post_steps if regime == "post" else self.live_scratch_steps
        return lv if live and lv is not None else full


#: a task's quick settings when it sets none: its full settings with a handful of steps
_QUICK = dict(post_steps=3, scratch_steps=4, prune_every=1, live_post_steps=None, live_scratch_steps=None,
              min_run_time=0.04, timing_rounds=2)


class Task:
    """Base class of a task: subclasses set the class attributes and implement the marked methods.

    >>> t = LMTask(text="to be or not to be " * 50)
    >>> isinstance(t, Task), t.metric, t.higher_is_better, t.is_better(1.2, 1.5)
    (True, 'bits_per_char', False, True)
    """

    name: str = ""                    # registry and checkpoint name, e.g. "char_lm"
    cli_name: str = ""                # short name on the command line, e.g. "lm" (default: ``name``)
    metric: str = ""                  # headline key of evaluate()
    higher_is_better: bool = True     # direction of `metric`
    base_cfg: TrainConfig = TrainConfig()  # the base (dense) training run
    arch: dict = {}                   # default keyword arguments of build()
    quick_eval: dict = {}             # constructor keywords of the quick variant (smaller evaluation)
    train_desc: str = ""              # progress-bar label (default: "train <cli_name>")
    full_settings: Settings = Settings()   # the experiments' work on this task (see :class:`Settings`)
    quick_settings: Settings | None = None  # the same for CI / trying things (None: full with a few steps)
    eval_size_kw: str = "eval_n"      # the constructor keyword that sets the evaluation size
    # the parameters whose rows (dim 0) are indexed by a vocabulary: key of vocab_payload() (None: the
    # payload itself is the vocabulary) -> state-dict names; Task.reindex permutes them
    vocab_rows: dict = {}

    # -- implemented by each task -------------------------------------------------------------

    def build(self, **arch) -> nn.Module:
        """A fresh model for this task (``arch`` overrides :attr:`arch`)."""
        raise NotImplementedError

    def batch_loss(self, model: nn.Module, generator: torch.Generator, cfg: TrainConfig) -> torch.Tensor:
        """The loss of one random training batch drawn with ``generator``."""
        raise NotImplementedError

    def evaluate(self, model: nn.Module) -> dict:
        """Metrics on the held-out data: ``{metric: value, ...}``."""
        raise NotImplementedError

    def sample_input(self) -> tuple:
        """One input tuple for timing: ``model(*task.sample_input())``."""
        raise NotImplementedError

    def calibration_input(self, seed: int = 0):
        """Calibration inputs drawn from the **training** data (``model(*x)``), for data-aware compression
        (``hl.compress(..., X=...)``: the greedy allocation's output error, the ``activation`` heuristic); a
        few thousand positions, the draw fixed by ``seed``. ``None`` (the default): the task offers none, and
        whatever needs them falls back to the weights alone."""
        return None

    def vocab_payload(self):
        """The vocabulary as plain data (saved in checkpoints); :meth:`from_vocab` reverses it."""
        raise NotImplementedError

    @classmethod
    def from_vocab(cls, vocab, **kwargs) -> "Task":
        """The task with the vocabulary of :meth:`vocab_payload` (the one a checkpoint was trained with)."""
        raise NotImplementedError

    # -- shared by every task -----------------------------------------------------------------

    @classmethod
    def vocab_permutation(cls, old, new) -> dict:
        """Per vocabulary (key of :attr:`vocab_rows`) the ids ``perm`` with ``new[i] == old[perm[i]]``.

        ``old`` and ``new`` are :meth:`vocab_payload` values holding the same symbols; the special word
        symbols (``<pad> <unk> <s> </s>``, ids 0-3) must stay where they are.

        >>> LMTask.vocab_permutation("abc", "cab")[None].tolist()
        [2, 0, 1]
        """
        out = {}
        for key in cls.vocab_rows:
            a, b = (old, new) if key is None else (_vocab_part(old, key), _vocab_part(new, key))
            a, b = list(a), list(b)
            where = "the vocabulary" if key is None else f"vocabulary {key!r}"
            if len(set(a)) != len(a) or len(set(b)) != len(b):
                raise ValueError(f"{where} holds a symbol twice; expected distinct symbols (a vocab_payload())")
            if set(a) != set(b):
                extra, gone = sorted(set(b) - set(a))[:5], sorted(set(a) - set(b))[:5]
                raise ValueError(f"{where}: the new order must hold the same {len(a)} symbols as the old one, "
                                 f"got {len(b)} (new ones {extra}, missing {gone}); reindex only re-orders")
            if a[:len(_SPECIALS)] == _SPECIALS and b[:len(_SPECIALS)] != _SPECIALS:
                raise ValueError(f"{where}: the special symbols {_SPECIALS} must keep ids 0-3 (the code uses "
                                 f"them), got {b[:len(_SPECIALS)]}")
            idx = {s: i for i, s in enumerate(a)}
            out[key] = torch.tensor([idx[s] for s in b], dtype=torch.long)
        return out

    @classmethod
    def reindex_state(cls, state_dict: dict, old, new) -> dict:
        """A copy of a dense model's ``state_dict`` for vocabulary ``new`` instead of ``old``: the rows of
        the parameters of :attr:`vocab_rows` permuted (any dtype; exact), the rest as it is.

        >>> sd = {"embedding.weight": torch.eye(3), "decoder.weight": torch.eye(3), "decoder.bias": torch.arange(3.)}
        >>> LMTask.reindex_state(sd, "abc", "cab")["decoder.bias"].tolist()
        [2.0, 0.0, 1.0]
        """
        out = dict(state_dict)
        for key, perm in cls.vocab_permutation(old, new).items():
            for name in cls.vocab_rows[key]:
                if name not in state_dict:
                    raise ValueError(f"the state dict has no {name!r} (found {sorted(state_dict)[:6]}); "
                                     f"{cls.__name__}.reindex works on the task's dense model")
                t = state_dict[name]
                if t.shape[0] != len(perm):
                    raise ValueError(f"{name} has {t.shape[0]} rows but the vocabulary has {len(perm)} symbols; "
                                     f"pass the vocabulary this model was trained with")
                out[name] = t[perm].clone()
        return out

    @classmethod
    def reindex(cls, model: nn.Module, old, new) -> nn.Module:
        """The same model (a copy) for vocabulary order ``new``: it computes the same function, its outputs
        (and input ids) re-ordered, ``model_new(x_new)[..., i] == model(x_old)[..., perm[i]]``.

        >>> m = CharLM(3, embed=4, hidden=8)
        >>> r = LMTask.reindex(m, "abc", "cab")
        >>> x_old, x_new = CharVocab("abc").encode("ab")[None], CharVocab("cab").encode("ab")[None]
        >>> torch.allclose(r(x_new), m(x_old)[..., [2, 0, 1]])
        True
        """
        out = copy.deepcopy(model)
        out.load_state_dict(cls.reindex_state(model.state_dict(), old, new))
        return out

    @classmethod
    def settings(cls, quick: bool = False) -> Settings:
        """The experiments' :class:`Settings` of this task: :attr:`full_settings`, or :attr:`quick_settings`
        (default: the full ones with a few steps, evaluated at :attr:`quick_eval`'s size).

        >>> IntentTask.settings().scratch_steps, IntentTask.settings(quick=True).scratch_steps
        (800, 6)
        """
        if not quick:
            return cls.full_settings
        if cls.quick_settings is not None:
            return cls.quick_settings
        return replace(cls.full_settings, eval_kw=dict(cls.quick_eval), **_QUICK)

    def is_better(self, a: float, b: float) -> bool:
        """True when metric value ``a`` beats ``b`` in this task's direction."""
        return a > b if self.higher_is_better else a < b

    def train(self, model: nn.Module, cfg: TrainConfig, progress: bool = True, callback=None) -> list[float]:
        """:func:`hmf_lab.nlp.training.train` on this task's batches; returns the loss per step."""
        return train(model, cfg, lambda step, g: self.batch_loss(model, g, cfg), self.train_desc, progress,
                     callback)

    def train_base(self, steps=None, progress=True, **arch):
        """Train a fresh model with :attr:`base_cfg` (``steps`` overrides its length): ``(model, info)``."""
        cfg = TrainConfig(**{**self.base_cfg.__dict__, **({"steps": steps} if steps else {})})
        torch.manual_seed(cfg.seed)
        model = self.build(**arch)
        losses = self.train(model, cfg, progress)
        return model, {"train_config": dict(cfg.__dict__), "final_train_loss": sum(losses[-50:]) / len(losses[-50:])}

    def fine_tune(self, model, steps, lr=1e-3, seed=1, progress=True, callback=None) -> list[float]:
        """Continue training ``model`` for ``steps`` at learning rate ``lr`` (batches as the base run)."""
        cfg = TrainConfig(steps=steps, batch_size=self.base_cfg.batch_size, seq_len=self.base_cfg.seq_len,
                          lr=lr, seed=seed)
        return self.train(model, cfg, progress, callback)

    @classmethod
    def pretrained(cls, quick: bool = False, **kwargs):
        """``(task, shipped dense model)``: the checkpoint's vocabulary; ``quick`` adds :attr:`quick_eval`.

        >>> task, model = LMTask.pretrained(quick=True)  # doctest: +SKIP
        """
        from hmf_lab.nlp.checkpoints import load_pretrained  # late: checkpoints are package data, not needed to train

        model, payload = load_pretrained(cls.name, with_payload=True)
        kw = {**(cls.quick_eval if quick else {}), **kwargs}
        return cls.from_vocab(payload["vocab"], **kw), model


#: registry name -> Task subclass
TASKS: dict[str, type[Task]] = {}


def register_task(cls: type[Task]) -> type[Task]:
    """Class decorator: add a :class:`Task` subclass to :data:`TASKS` under ``cls.name``.

    ``cli_name`` and ``train_desc`` default to the class's **own** (set in its body), else ``name`` and
    ``"train <cli_name>"``: a subclass of a registered task (``TransformerIntentTask(IntentTask)``) does not
    inherit its parent's command-line name. Two tasks with one command-line name are refused.
    """
    if not (isinstance(cls, type) and issubclass(cls, Task)):
        raise TypeError(f"register_task expects a subclass of hmf_lab.nlp.tasks.Task, got {cls!r}")
    if "name" not in cls.__dict__ or not cls.name:
        raise ValueError(f"{cls.__name__} must set the class attribute `name` in its own body (and may set "
                         f"`cli_name`), got name={cls.__dict__.get('name')!r}")
    cli = cls.__dict__.get("cli_name") or cls.name
    clash = [key for key, t in TASKS.items() if key != cls.name and (t.cli_name == cli or key == cli)]
    if clash:
        raise ValueError(f"{cls.__name__}: command-line name {cli!r} is taken by task {clash[0]!r}; set a "
                         f"distinct `cli_name` in the class body")
    cls.cli_name = cli
    cls.train_desc = cls.__dict__.get("train_desc") or f"train {cli}"
    TASKS[cls.name] = cls
    return cls


@register_task
class LMTask(Task):
    """Character LM on Tiny Shakespeare: data, vocabulary, base training, metric and fine-tuning.

    The first 90% of the text trains, the last 10% validates. ``text`` replaces the corpus (tests use
    ``hl.data.fallback_text()``).

    >>> t = LMTask(text="to be or not to be " * 50)
    >>> m = t.build(hidden=8, embed=4)
    >>> t.metric, t.higher_is_better
    ('bits_per_char', False)
    """

    name = "char_lm"
    cli_name = "lm"
    metric = "bits_per_char"
    higher_is_better = False
    base_cfg = TrainConfig(steps=2600, batch_size=32, seq_len=128, lr=3e-3, seed=0)
    arch = dict(embed=64, hidden=256)
    quick_eval = {"eval_chars": 3_000}
    train_desc = "train LM"
    eval_size_kw = "eval_chars"
    vocab_rows = {None: ("embedding.weight", "decoder.weight", "decoder.bias")}
    # the grid's full run (hmf_lab/assets/results/README.md): scratch 400 steps, ~1.5 epochs of Tiny
    # Shakespeare (the shipped model had 2600), post fine-tuning 100
    full_settings = Settings(post_steps=100, scratch_steps=400, eval_kw={"eval_chars": 10_000}, prune_every=10,
                             live_post_steps=10, live_scratch_steps=30, step_cost=0.35)
    quick_settings = Settings(post_steps=3, scratch_steps=4, eval_kw={"eval_chars": 1_000}, prune_every=1,
                              min_run_time=0.04, timing_rounds=2, step_cost=0.35)

    def __init__(self, text: str | None = None, vocab: CharVocab | None = None, eval_chars: int | None = None):
        if text is None:
            from hmf_lab.nlp.data import load_text
            text = load_text("tinyshakespeare")
        self.vocab = vocab or CharVocab(text)
        ids = self.vocab.encode(text)
        cut = int(0.9 * ids.numel())
        self.train_ids, self.val_ids = ids[:cut], ids[cut:]
        self.eval_chars = eval_chars

    def build(self, **arch) -> CharLM:
        return CharLM(len(self.vocab), **{**self.arch, **arch})

    def batch_loss(self, model, generator, cfg):
        return lm_loss(model, self.train_ids, cfg.batch_size, cfg.seq_len, generator)

    def evaluate(self, model) -> dict:
        return evaluate_lm(model, self.val_ids, seq_len=256, max_chars=self.eval_chars)

    def sample_input(self, length: int = 128):
        """One sequence for timing: ``(1, length)`` character ids."""
        return (self.val_ids[:length][None],)

    def calibration_input(self, seed: int = 0, batches: int = 8, length: int = 512):
        """``batches`` windows of ``length`` training characters at random offsets (``seed``): ``((batches, length),)``.

        >>> t = LMTask(text="to be or not to be " * 200)
        >>> t.calibration_input()[0].shape
        torch.Size([8, 512])
        """
        g = torch.Generator().manual_seed(int(seed))
        hi = max(1, self.train_ids.numel() - length)
        starts = torch.randint(0, hi, (batches,), generator=g)
        return (torch.stack([self.train_ids[int(s):int(s) + length] for s in starts]),)

    def vocab_payload(self):
        return self.vocab.chars

    @classmethod
    def from_vocab(cls, vocab, **kwargs) -> "LMTask":
        if not isinstance(vocab, str):
            raise TypeError(f"a character vocabulary is a str of distinct characters in id order (a checkpoint's "
                            f"'vocab'), got {type(vocab).__name__}; pass the checkpoint's vocabulary as saved")
        if len(set(vocab)) != len(vocab):
            raise ValueError(f"a character vocabulary is a str of distinct characters in id order, got {len(vocab)} "
                             f"characters of which {len(set(vocab))} distinct; pass the checkpoint's vocabulary as saved")
        return cls(vocab=CharVocab(vocab), **kwargs)


@register_task
class IntentTask(Task):
    """SNIPS intent detection: word vocabulary (train words seen twice or more), padded ids, accuracy.

    Words and intent labels are ordered by their frequency in the training data (most frequent first).

    ``pairs`` replaces the data: ``(train_pairs, test_pairs)`` of ``(intent, text)``.

    >>> t = IntentTask(pairs=([("a", "play music"), ("b", "book a table")] * 5, [("a", "play it")]))
    >>> t.metric, t.n_classes, t.x_test.shape
    ('accuracy', 2, torch.Size([1, 2]))
    """

    name = "intent"
    metric = "accuracy"
    higher_is_better = True
    base_cfg = TrainConfig(steps=800, batch_size=64, lr=3e-3, seed=0)
    arch = dict(embed=64, hidden=128)
    quick_eval = {"eval_n": 100}
    # scratch: the dense model's own 800 steps; live sliders: 150 / 50 steps, a few seconds per model
    full_settings = Settings(post_steps=200, scratch_steps=800, prune_every=20, live_post_steps=50,
                             live_scratch_steps=150, step_cost=0.02)
    quick_settings = Settings(post_steps=4, scratch_steps=6, eval_kw={"eval_n": 60}, prune_every=1,
                              min_run_time=0.04, timing_rounds=2, step_cost=0.02)
    max_len = 40
    vocab_rows = {"words": ("embedding.weight",), "labels": ("classifier.weight", "classifier.bias")}

    def __init__(self, pairs=None, vocab=None, labels=None, eval_n: int | None = None):
        if pairs is None:
            from hmf_lab.nlp.data import load_snips
            pairs = (load_snips("train"), load_snips("test"))
        train, test = pairs
        tok_train = [tokenize(t) for _, t in train]
        self.vocab = vocab or WordVocab(tok_train, max_size=20_000, min_count=2)
        self.labels = list(labels) if labels is not None else frequency_order(i for i, _ in train)
        lab = {l: i for i, l in enumerate(self.labels)}
        self.x_train = _pad([self.vocab.encode(t) or [UNK] for t in tok_train], None)[:, :self.max_len]
        self.y_train = torch.tensor([lab[i] for i, _ in train])
        test = test[:eval_n] if eval_n else test
        self.x_test = _pad([self.vocab.encode(tokenize(t)) or [UNK] for _, t in test])[:, :self.max_len]
        self.y_test = torch.tensor([lab[i] for i, _ in test])

    @property
    def n_classes(self):
        return len(self.labels)

    def build(self, **arch) -> IntentClassifier:
        return IntentClassifier(len(self.vocab), self.n_classes, **{**self.arch, **arch})

    def batch_loss(self, model, generator, cfg):
        return intent_loss(model, self.x_train, self.y_train, cfg.batch_size, generator)

    def evaluate(self, model) -> dict:
        return evaluate_intent(model, self.x_test, self.y_test)

    def sample_input(self):
        """One utterance for timing: ``(1, T)`` word ids (the first test utterance)."""
        x = self.x_test[:1]
        return (x[:, :max(1, int((x != PAD).sum()))],)

    def calibration_input(self, seed: int = 0, n: int = 256):
        """``n`` training utterances drawn at random (``seed``), padded to the longest: ``((n, T),)``."""
        g = torch.Generator().manual_seed(int(seed))
        x = self.x_train[torch.randperm(self.x_train.shape[0], generator=g)[:n]]
        return (x[:, :max(1, int((x != PAD).sum(1).max()))],)

    def vocab_payload(self):
        return {"words": self.vocab.words, "labels": self.labels}

    @classmethod
    def from_vocab(cls, vocab, **kwargs) -> "IntentTask":
        return cls(vocab=WordVocab(None, words=vocab["words"]), labels=vocab["labels"], **kwargs)


@register_task
class TranslationTask(Task):
    """English -> Spanish verse pairs: word vocabularies (3000 most frequent each), seeded 95/5 split.

    Sentences are cut at ``max_len`` tokens; BLEU is computed on lower-cased word tokens, with the
    reference's out-of-vocabulary words kept as ``<unk>`` (so a perfect model can reach 100).

    >>> pairs = [("the house", "la casa"), ("a dog", "un perro")] * 20
    >>> t = TranslationTask(pairs=pairs)
    >>> t.metric, t.src_test.shape[0]
    ('bleu', 2)
    """

    name = "translation"
    metric = "bleu"
    higher_is_better = True
    base_cfg = TrainConfig(steps=1800, batch_size=32, lr=3e-3, seed=0)
    arch = dict(embed=64, hidden=192)
    quick_eval = {"eval_n": 12}
    # scratch 400 steps (the shipped model had 1800), post fine-tuning 100
    full_settings = Settings(post_steps=100, scratch_steps=400, eval_kw={"eval_n": 200}, prune_every=10,
                             live_post_steps=10, live_scratch_steps=30, step_cost=0.23)
    quick_settings = Settings(post_steps=2, scratch_steps=3, eval_kw={"eval_n": 8}, prune_every=1,
                              min_run_time=0.04, timing_rounds=2, step_cost=0.23)
    max_len = 40
    vocab_size = 3000
    vocab_rows = {"src": ("src_embedding.weight",), "tgt": ("tgt_embedding.weight", "out.weight", "out.bias")}

    def __init__(self, pairs=None, vocabs=None, eval_n: int | None = None, test_fraction: float = 0.05):
        if pairs is None:
            from hmf_lab.nlp.data import load_translation
            pairs = load_translation()
        en = [tokenize(e)[:self.max_len] for e, _ in pairs]
        es = [tokenize(s)[:self.max_len] for _, s in pairs]
        perm = torch.randperm(len(pairs), generator=torch.Generator().manual_seed(0)).tolist()
        n_test = max(1, int(round(test_fraction * len(pairs))))
        test, train = perm[:n_test], perm[n_test:]
        if vocabs is None:
            vocabs = (WordVocab([en[i] for i in train], self.vocab_size), WordVocab([es[i] for i in train], self.vocab_size))
        self.src_vocab, self.tgt_vocab = vocabs

        def enc(idx):
            s = _pad([self.src_vocab.encode(en[i]) + [EOS] for i in idx])
            t = _pad([[BOS] + self.tgt_vocab.encode(es[i]) + [EOS] for i in idx])
            return s, t
        self.src_train, self.tgt_train = enc(train)
        test = test[:eval_n] if eval_n else test
        self.src_test, self.tgt_test = enc(test)

    def build(self, **arch) -> Translator:
        return Translator(len(self.src_vocab), len(self.tgt_vocab), **{**self.arch, **arch})

    def batch_loss(self, model, generator, cfg):
        return translation_loss(model, self.src_train, self.tgt_train, cfg.batch_size, generator)

    def evaluate(self, model) -> dict:
        return evaluate_translation(model, self.src_test, self.tgt_test, self.tgt_vocab)

    def sample_input(self):
        """One sentence pair for timing (teacher-forced forward): ``src (1, S)``, ``tgt_in (1, T)``."""
        s, t = self.src_test[:1], self.tgt_test[:1]
        s = s[:, :int((s != PAD).sum())]
        t = t[:, :int((t != PAD).sum()) - 1]
        return (s, t)

    def calibration_input(self, seed: int = 0, n: int = 64):
        """``n`` training pairs drawn at random (``seed``), teacher-forced: ``(src (n, S), tgt_in (n, T))``."""
        g = torch.Generator().manual_seed(int(seed))
        idx = torch.randperm(self.src_train.shape[0], generator=g)[:n]
        s, t = self.src_train[idx], self.tgt_train[idx]
        s = s[:, :max(1, int((s != PAD).sum(1).max()))]
        t = t[:, :max(2, int((t != PAD).sum(1).max())) - 1]
        return (s, t)

    def vocab_payload(self):
        return {"src": self.src_vocab.words, "tgt": self.tgt_vocab.words}

    @classmethod
    def from_vocab(cls, vocab, **kwargs) -> "TranslationTask":
        return cls(vocabs=(WordVocab(None, words=vocab["src"]), WordVocab(None, words=vocab["tgt"])), **kwargs)


def _vocab_part(vocab, key):
    """``vocab[key]`` of a vocab payload, or a ValueError naming the keys it has."""
    if not isinstance(vocab, dict) or key not in vocab:
        have = sorted(vocab) if isinstance(vocab, dict) else type(vocab).__name__
        raise ValueError(f"the vocabulary payload has no {key!r} (got {have}); pass vocab_payload() of this task")
    return vocab[key]


@register_task
class TransformerLMTask(LMTask):
    """Character LM on Tiny Shakespeare with a decoder-only transformer (:class:`~hmf_lab.nlp.networks.CharTransformer`).

    The data, split and vocabulary are :class:`LMTask`'s; the model sees windows of ``arch["context"]``
    characters, so evaluation uses sliding windows (:func:`~hmf_lab.nlp.training.evaluate_causal_lm`) and
    reports nats per character too.

    >>> t = TransformerLMTask(text="to be or not to be " * 100)
    >>> m = t.build(d_model=16, heads=2, layers=1, context=32)
    >>> t.name, t.cli_name, t.sample_input()[0].shape
    ('char_tf', 'lm_tf', torch.Size([1, 128]))
    """

    name = "char_tf"
    cli_name = "lm_tf"
    base_cfg = TrainConfig(steps=1500, batch_size=32, seq_len=128, lr=2e-3, seed=0)
    arch = dict(d_model=128, heads=4, layers=4, context=128)
    quick_eval = {"eval_chars": 3_000}
    train_desc = "train char transformer"
    # rows indexed by the vocabulary (main's Task.reindex reads this; the LSTM's head is "decoder", this one's "head")
    vocab_rows = {None: ("embedding.weight", "head.weight", "head.bias")}
    full_settings = Settings(post_steps=100, scratch_steps=400, eval_kw={"eval_chars": 10_000}, prune_every=10,
                             live_post_steps=10, live_scratch_steps=30, step_cost=0.5)
    quick_settings = Settings(post_steps=3, scratch_steps=4, eval_kw={"eval_chars": 1_000}, prune_every=1,
                              min_run_time=0.04, timing_rounds=2, step_cost=0.5)

    def build(self, **arch) -> CharTransformer:
        return CharTransformer(len(self.vocab), **{**self.arch, **arch})

    def calibration_input(self, seed: int = 0, n: int = 16):
        """``n`` random training windows of ``arch["context"]`` characters drawn with ``seed``: ``((n, T),)``.

        >>> TransformerLMTask(text="to be or not to be " * 50).calibration_input(seed=1, n=4)[0].shape
        torch.Size([4, 128])
        """
        g = torch.Generator().manual_seed(int(seed))
        return (lm_batches(self.train_ids, int(n), int(self.arch["context"]), g)[0],)

    def batch_loss(self, model, generator, cfg):
        """Windows of ``cfg.seq_len`` characters, cut to the model's context."""
        return lm_loss(model, self.train_ids, cfg.batch_size, min(cfg.seq_len, model.context), generator)

    def evaluate(self, model) -> dict:
        return evaluate_causal_lm(model, self.val_ids, context=model.context, max_chars=self.eval_chars)

    def sample_input(self, length: int = 128):
        """One window for timing: ``(1, min(length, context))`` character ids."""
        return (self.val_ids[:min(int(length), self.arch["context"])][None],)


@register_task
class TransformerIntentTask(IntentTask):
    """SNIPS intent detection with PyTorch's ``nn.TransformerEncoder`` (:class:`~hmf_lab.nlp.networks.TransformerIntentClassifier`).

    The data, vocabulary and metric are :class:`IntentTask`'s; the model masks the padding
    (``src_key_padding_mask``) and averages the real tokens.

    >>> t = TransformerIntentTask(pairs=([("a", "play music"), ("b", "book a table")] * 5, [("a", "play it")]))
    >>> t.build(d_model=8, heads=2, layers=1, ff=16)(t.x_test).shape
    torch.Size([1, 2])
    """

    name = "intent_tf"
    train_desc = "train intent transformer"
    vocab_rows = {"words": ("embedding.weight",), "labels": ("classifier.weight", "classifier.bias")}
    base_cfg = TrainConfig(steps=2000, batch_size=64, lr=1e-3, seed=0)
    arch = dict(d_model=96, heads=4, layers=2, ff=384)
    full_settings = Settings(post_steps=200, scratch_steps=800, prune_every=20, live_post_steps=50,
                             live_scratch_steps=150, step_cost=0.05)
    quick_settings = Settings(post_steps=4, scratch_steps=6, eval_kw={"eval_n": 60}, prune_every=1,
                              min_run_time=0.04, timing_rounds=2, step_cost=0.05)

    def calibration_input(self, seed: int = 0, n: int = 256):
        """``n`` random training utterances drawn with ``seed``, as a list of batches ``[(x,), ...]``, one per
        length, **without padding** (hl.compress's ``X`` takes a list of batches).

        Padded positions run through every linear layer but their outputs are masked away: as calibration
        rows they would be more than half of the data (utterances are short, a batch is padded to its
        longest) and pull the activation-aware fits towards inputs that never matter.

        >>> t = TransformerIntentTask(pairs=([("a", "play music"), ("b", "book a table")] * 5, [("a", "play it")]))
        >>> sorted(tuple(b[0].shape) for b in t.calibration_input(seed=1, n=6))
        [(2, 2), (4, 3)]
        """
        g = torch.Generator().manual_seed(int(seed))
        x = self.x_train[torch.randint(0, self.x_train.shape[0], (int(n),), generator=g)]
        lengths = (x != PAD).sum(1).clamp(min=1)
        return [(x[lengths == L, :L],) for L in sorted(set(lengths.tolist()))]

    def build(self, **arch) -> TransformerIntentClassifier:
        return TransformerIntentClassifier(len(self.vocab), self.n_classes, max_len=self.max_len,
                                           **{**self.arch, **arch})


def task_class(name: str) -> type[Task]:
    """The registered :class:`Task` subclass of a registry name or a command-line name (``"lm"``).

    >>> task_class("lm").name, task_class("char_lm").cli_name
    ('char_lm', 'lm')
    """
    by_cli = {t.cli_name: key for key, t in TASKS.items()}
    key = name if name in TASKS else by_cli.get(name)
    if key is None:
        raise ValueError(f"unknown task {name!r}; expected one of {sorted(set(TASKS) | set(by_cli))}")
    return TASKS[key]


def get_task(name: str, **kwargs) -> Task:
    """A task object by registry name or command-line name (``"lm"`` is ``"char_lm"``).

    >>> get_task("nope")
    Traceback (most recent call last):
    ...
    ValueError: unknown task 'nope'; expected one of ['char_lm', 'char_tf', 'intent', 'intent_tf', 'lm', 'lm_tf', 'translation']
    """
    return task_class(name)(**kwargs)


def reorder_checkpoint(name: str, src, dst, vocab) -> str:
    """Write checkpoint ``src`` of the task ``name`` to ``dst`` with its vocabulary in the order ``vocab``;
    returns the SHA-256 of ``dst``.

    The rows of the embeddings and output layers (the task's ``vocab_rows``) are permuted with it, in the
    stored float16: an exact re-indexing, the model computes the same function with its ids re-ordered.
    Config, info and every other entry are kept as they are. ``vocab`` is a ``vocab_payload()`` of the task
    (for ``"char_lm"`` a str of the same characters).

    >>> import tempfile, os, hmf_lab as hl
    >>> from hmf_lab.nlp.checkpoints import CharLM, load_checkpoint, save_checkpoint
    >>> d = tempfile.mkdtemp()
    >>> _ = save_checkpoint(hl.models.CharLM(3, embed=4, hidden=8), os.path.join(d, "a.pt"), extra={"vocab": "abc"})
    >>> sha = reorder_checkpoint("char_lm", os.path.join(d, "a.pt"), os.path.join(d, "b.pt"), "cab")
    >>> load_checkpoint(os.path.join(d, "b.pt"), CharLM, sha256=sha)[1]["vocab"]
    'cab'
    """
    import hashlib
    from pathlib import Path

    from hmf_lab.nlp.checkpoints import PRETRAINED, load_checkpoint

    if name not in PRETRAINED or name not in TASKS:
        raise ValueError(f"unknown pretrained model {name!r}; expected one of {sorted(PRETRAINED)}")
    _, payload = load_checkpoint(src, PRETRAINED[name][1])
    if "vocab" not in payload:
        raise ValueError(f"checkpoint {src} holds no 'vocab'; expected a checkpoint written by "
                         f"scripts/train_models.py (save_checkpoint(..., extra={{'vocab': ...}}))")
    state = TASKS[name].reindex_state(payload["state_dict"], payload["vocab"], vocab)
    torch.save({**payload, "state_dict": state, "vocab": vocab}, dst)
    return hashlib.sha256(Path(dst).read_bytes()).hexdigest()
