"""Reproduce the shipped checkpoints in hmf_lab/assets/: char_lm.pt, intent.pt, translation.pt, char_tf.pt, intent_tf.pt.

    python scripts/train_models.py --task char_lm intent translation
    python scripts/train_models.py --task char_tf intent_tf        # the two transformers

Seeded, single-threaded by default (the numbers depend a little on the torch build and thread count).
Each checkpoint stores the model config, a float16 state dict, the vocabulary, the training settings
and the metrics measured at the end of training (also written, with the file's SHA-256, to hmf_lab/assets/checkpoints.json).
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch


from hmf_lab.nlp.checkpoints import PRETRAINED, assets_dir, checkpoint_path, save_checkpoint
from hmf_lab.nlp import get_task


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--task", nargs="+", default=["char_lm", "intent", "translation"],
                   choices=sorted(PRETRAINED))
    p.add_argument("--steps", type=int, default=None, help="override the number of training steps")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", type=Path, default=None, help="folder for the checkpoints (default: hmf_lab/assets/)")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    summary_file = assets_dir() / "checkpoints.json"
    for name in args.task:
        t0, c0 = time.time(), time.process_time()
        task = get_task(name)
        model, info = task.train_base(steps=args.steps)
        metrics = task.evaluate(model)
        info = {**info, "params": sum(p.numel() for p in model.parameters()), "metrics": metrics, "train_seconds": round(time.time() - t0, 1),
                "cpu_seconds": round(time.process_time() - c0, 1),
                "threads": args.threads, "torch": str(torch.__version__)}
        out = (args.out / checkpoint_path(name).name) if args.out else checkpoint_path(name)
        out.parent.mkdir(parents=True, exist_ok=True)
        sha = save_checkpoint(model, out, extra={"vocab": task.vocab_payload(), "info": info})
        print(name, sha, json.dumps(info))
        if args.out is None:   # read again: another run may have written its entry meanwhile
            summary = json.loads(summary_file.read_text()) if summary_file.is_file() else {}
            summary[name] = {"file": out.name, "sha256": sha, **info}
            summary_file.write_text(json.dumps(summary, indent=2) + "\n")


if __name__ == "__main__":
    main()
