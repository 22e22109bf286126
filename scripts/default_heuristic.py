"""Which row heuristic should ``hl.compress(model, "hmf", compression=c)`` use by default? (issue 19, part 4)

Measures, on the shipped models' output layers (char_lm ``decoder`` 65x256, intent ``classifier`` 7x128,
translation ``combine`` 192x384 and ``out`` 3004x192), at compression 4 and 8 with ``hl.compress``'s
(split, rank): the weight error ``||W - W_hat|| / ||W||`` and the held-out output error
``||X W^T - X W_hat^T|| / ||X W^T||`` (X: the layer's real inputs on evaluation data; the data-aware
heuristic is calibrated on *training* data). Deterministic (no random draws; batches are fixed slices).

    HMF_LAB_DATA=... python scripts/default_heuristic.py
"""
from __future__ import annotations

import torch

import hmf_lab as hl
from hmf_lab.nlp.tasks import IntentTask, LMTask, TranslationTask

HEURISTICS = ("top", "row_norm", "residual", "leverage", "greedy", "activation")


def _inputs(model, layer, *args):
    got = []
    h = model.get_submodule(layer).register_forward_hook(lambda mod, a, out: got.append(a[0].detach()))
    with torch.no_grad():
        model(*args)
    h.remove()
    X = got[0]
    return X.reshape(-1, X.shape[-1])


def batches():
    t, m = LMTask.pretrained()
    yield "char_lm", m, "decoder", (t.train_ids[:8192].reshape(8, 1024),), (t.val_ids[:8192].reshape(8, 1024),)
    t, m = IntentTask.pretrained()
    yield "intent", m, "classifier", (t.x_train[:512],), (t.x_test[:512],)
    t, m = TranslationTask.pretrained()
    for layer in ("combine", "out"):
        yield ("translation", m, layer, (t.src_train[:256], t.tgt_train[:256, :-1]),
               (t.src_test[:256], t.tgt_test[:256, :-1]))


def main():
    torch.set_num_threads(1)
    rows = []
    for task, model, layer, cal, ev in batches():
        W = model.get_submodule(layer).weight.detach()
        Xc, Xe = _inputs(model, layer, *cal), _inputs(model, layer, *ev)
        Y = Xe @ W.T
        for c in (4, 8):
            try:
                k, r = hl.choose_split_rank(tuple(W.shape), c)
            except ValueError:
                continue
            for h in HEURISTICS:
                f = hl.hmf(W, k, r, heuristic=h, X=Xc if h == "activation" else None)
                out = float((Y - f(Xe)).norm() / Y.norm())
                rows.append((task, layer, tuple(W.shape), c, k, r, h, hl.relative_error(W, f), out))
                print(f"{task:12s} {layer:10s} {str(tuple(W.shape)):12s} c={c} k={k:3d} r={r:3d} {h:10s} "
                      f"weight {rows[-1][-2]:.4f}  output {out:.4f}", flush=True)
    return rows


def columns():
    """The column split beside the row split and LMF on the same layers, at LMF's size (held-out output error)."""
    torch.set_num_threads(1)
    for task, model, layer, cal, ev in batches():
        W = model.get_submodule(layer).weight.detach()
        Xc, Xe = _inputs(model, layer, *cal), _inputs(model, layer, *ev)
        Y = Xe @ W.T
        for c in (4, 8):
            try:
                k, r = hl.choose_split_rank(tuple(W.shape), c)
                kc, rc = hl.choose_col_split_rank(tuple(W.shape), c)
                rl = hl.lmf_rank(tuple(W.shape), c)
            except ValueError:
                continue
            fits = {"lmf": hl.lmf(W, rl),
                    f"rows k={k} r={r} row_norm": hl.hmf(W, k, r, heuristic="row_norm"),
                    f"rows k={k} r={r} activation": hl.hmf(W, k, r, heuristic="activation", X=Xc),
                    f"cols k={kc} r={rc} col_norm": hl.hmf_cols(W, kc, rc, heuristic="col_norm"),
                    f"cols k={kc} r={rc} activation": hl.hmf_cols(W, kc, rc, heuristic="activation", X=Xc)}
            for name, f in fits.items():
                out = float((Y - f(Xe)).norm() / Y.norm())
                print(f"{task:12s} {layer:10s} {str(tuple(W.shape)):12s} c={c} {name:28s} values {f.n_params:6d} "
                      f"weight {hl.relative_error(W, f):.4f}  output {out:.4f}", flush=True)


if __name__ == "__main__":
    import sys
    columns() if "--cols" in sys.argv else main()
