"""Layer 4, real NLP: data sets, BLEU, vocabularies, the small LSTM and transformer networks, the one
training loop, the task registry and the shipped checkpoints. ``hl.models`` is this package.

- :mod:`~hmf_lab.nlp.data`: data-set registry, fetch (pooch, SHA-256), converters, loaders;
- :mod:`~hmf_lab.nlp.vocab`: tokenizer and vocabularies; :mod:`~hmf_lab.nlp.bleu`: corpus BLEU;
- :mod:`~hmf_lab.nlp.networks`: ``CharLM`` (Tiny Shakespeare, bits per character), ``IntentClassifier``
  (SNIPS, accuracy), ``Translator`` (English -> Spanish verse pairs, BLEU); the transformers ``CharTransformer``
  (decoder-only, Tiny Shakespeare) and ``TransformerIntentClassifier`` (``nn.TransformerEncoder``, SNIPS);
- :mod:`~hmf_lab.nlp.training`: the one seeded training loop, per-task batch losses and metrics;
- :mod:`~hmf_lab.nlp.tasks`: the :class:`~hmf_lab.nlp.tasks.Task` base class and the registry ``TASKS``
  (each task carries its experiment settings);
- :mod:`~hmf_lab.nlp.checkpoints`: ``load_pretrained(name)`` rebuilds a shipped model (float16 state dict,
  SHA-256 checked, ``torch.load(weights_only=True)``); ``pretrained_weights(name)`` gives its 2-D weights;
  ``reorder_checkpoint`` re-orders a checkpoint's vocabulary (and its rows) exactly.

>>> import torch, hmf_lab as hl
>>> m = hl.models.CharLM(vocab_size=10, embed=8, hidden=16)
>>> m(torch.zeros(2, 5, dtype=torch.long)).shape
torch.Size([2, 5, 10])
"""
from hmf_lab.nlp.checkpoints import (PRETRAINED, checkpoint_path, load_checkpoint, load_pretrained,
                                     pretrained_weights, save_checkpoint)
from hmf_lab.nlp.networks import CharLM, CharTransformer, IntentClassifier, TransformerIntentClassifier, Translator
from hmf_lab.nlp.tasks import (TASKS, IntentTask, LMTask, Task, TransformerIntentTask, TransformerLMTask, TranslationTask,
                               get_task, register_task, reorder_checkpoint)
from hmf_lab.nlp.training import (TrainConfig, evaluate_causal_lm, evaluate_intent, evaluate_lm, evaluate_translation,
                                  lm_batches, train, train_intent, train_lm, train_translation)
from hmf_lab.nlp.vocab import BOS, EOS, PAD, UNK, CharVocab, WordVocab, frequency_order, tokenize

__all__ = ["CharLM", "IntentClassifier", "Translator", "CharVocab", "WordVocab", "tokenize", "frequency_order", "PAD", "UNK", "BOS",
           "EOS", "PRETRAINED", "checkpoint_path", "load_pretrained", "pretrained_weights", "save_checkpoint",
           "load_checkpoint", "reorder_checkpoint", "TASKS", "Task", "LMTask", "IntentTask", "TranslationTask", "get_task",
           "register_task", "TrainConfig", "train", "lm_batches", "train_lm", "evaluate_lm", "train_intent",
           "evaluate_intent", "train_translation", "evaluate_translation", "CharTransformer",
           "TransformerIntentClassifier", "TransformerLMTask", "TransformerIntentTask", "evaluate_causal_lm"]
