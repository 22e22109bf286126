"""Re-order the vocabularies of the shipped checkpoints by frequency (most frequent first), without retraining.

    python scripts/reorder_vocab.py                 # hmf_lab/assets/*.pt in place; checkpoints.json updated
    python scripts/reorder_vocab.py --src OLD --out NEW   # from other files, e.g. the sorted originals:
        mkdir -p OLD && git show cd4332a:hmf_lab/assets/char_lm.pt > OLD/char_lm.pt   (likewise intent.pt)

For each checkpoint the new order is the vocabulary its task builds from the data today
(``get_task(name).vocab_payload()``: characters, words and intent labels by frequency), which must hold
the same symbols as the checkpoint's. The rows of the embeddings and output layers are permuted with it in
the stored float16 (``hl.models.reorder_checkpoint``): an exact re-indexing, the model computes the same
function. Before a file is written the script checks that: the task metric of the re-ordered model, on
the same data, equals the original's (bits per character on the first 10,000 validation characters,
intent accuracy on the test set, BLEU on 50 test pairs) within 1e-5. A checkpoint already in that order
is left as it is. Deterministic: the same input files give byte-identical outputs (torch.save writes no
time stamps).
"""
from __future__ import annotations

import argparse
import hashlib
import json
import tempfile
from pathlib import Path

import torch

from hmf_lab.nlp.checkpoints import PRETRAINED, assets_dir, checkpoint_path, load_checkpoint
from hmf_lab.nlp.tasks import get_task, reorder_checkpoint, task_class

EVAL = {"char_lm": {"eval_chars": 10_000}, "intent": {}, "translation": {"eval_n": 50}}


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def convert(name: str, src: Path, dst: Path, log=print) -> dict | None:
    """Re-order checkpoint ``src`` of ``name`` into ``dst``; None when it is already in frequency order."""
    cls = task_class(name)
    old_sha = _sha(src)  # before dst (maybe src itself) is written
    model, payload = load_checkpoint(src, PRETRAINED[name][1])
    new_vocab = get_task(name).vocab_payload()
    if payload["vocab"] == new_vocab:
        log(f"{name}: already in frequency order ({src.name}, SHA-256 {old_sha[:12]}), left as it is")
        return None
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / dst.name  # torch.save names the archive after the file: the same name as dst
        sha = reorder_checkpoint(name, src, out, new_vocab)
        new_model, _ = load_checkpoint(out, PRETRAINED[name][1], sha256=sha)
        metric = cls.metric
        before = cls.from_vocab(payload["vocab"], **EVAL[name]).evaluate(model)[metric]
        after = cls.from_vocab(new_vocab, **EVAL[name]).evaluate(new_model)[metric]
        if abs(before - after) > 1e-5:
            raise SystemExit(f"{name}: {metric} changed from {before!r} to {after!r}; not written")
        dst.parent.mkdir(parents=True, exist_ok=True)
        dst.write_bytes(out.read_bytes())
    log(f"{name}: {metric} {before:.6f} -> {after:.6f} (same function); SHA-256 {old_sha} -> {sha}")
    return {"from_sha256": old_sha, "sha256": sha, "metric": metric, "before": before, "after": after}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--task", nargs="+", default=list(PRETRAINED), choices=list(PRETRAINED))
    p.add_argument("--src", type=Path, default=None, help="folder of the checkpoints to read (default: hmf_lab/assets/)")
    p.add_argument("--out", type=Path, default=None,
                   help="folder to write (default: hmf_lab/assets/, in place, and checkpoints.json updated)")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    summary_file = assets_dir() / "checkpoints.json"
    summary = json.loads(summary_file.read_text())
    for name in args.task:
        src = (args.src / checkpoint_path(name).name) if args.src else checkpoint_path(name)
        dst = (args.out / checkpoint_path(name).name) if args.out else checkpoint_path(name)
        done = convert(name, src, dst)
        if done and args.out is None:
            summary[name]["sha256"] = done["sha256"]
            summary[name]["vocab_order"] = {
                "order": "frequency, most frequent first (hmf_lab.nlp.vocab)",
                "reordered_from_sha256": done["from_sha256"], "by": "scripts/reorder_vocab.py",
                "check": f"{done['metric']} {done['before']!r} before, {done['after']!r} after ({EVAL[name] or 'full test set'})"}
            summary_file.write_text(json.dumps(summary, indent=2) + "\n")


if __name__ == "__main__":
    main()
