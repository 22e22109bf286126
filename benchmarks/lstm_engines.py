"""Which per-step loop runs an HMF-LSTM fastest on CPU: Python (eager), TorchScript, or torch.compile?

    python benchmarks/lstm_engines.py [--hidden 512] [--seq 64] [--rounds 15]

The library keeps what measurably helps: TorchScript is the default inference engine of the compressed
LSTMs (``module.engine = "script"``), the Python loop stays as ``"eager"`` and the differentiable loop as
``"plain"``. torch.compile of the step is measured here only (its compile time is minutes on a small CPU
machine and its per-call guards cost more than they save on a 64-step loop). Prints min and median times.
"""
import argparse
import statistics
import time
import warnings

import torch

import hmf_lab as hl
from hmf_lab.nn.lstm import _hmf_loop, _scripted


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--hidden", type=int, default=512)
    p.add_argument("--seq", type=int, default=64)
    p.add_argument("--compression", type=float, default=4)
    p.add_argument("--rounds", type=int, default=15)
    p.add_argument("--no-compile", action="store_true", help="skip torch.compile (slow to compile)")
    a = p.parse_args()
    warnings.filterwarnings("ignore")
    torch.set_num_threads(1)
    H = a.hidden
    k, r = hl.choose_split_rank((H, H), a.compression)
    m = hl.HMFLSTM(H, H, split=k, rank=r).eval()
    hh = m.hh[0]
    with torch.inference_mode():
        xp = m._project(m.ih[0], hh, torch.randn(a.seq, 1, H))
        DV, Ut = hh._packed()
        h0 = c0 = torch.zeros(1, H)
        args = (xp, DV, Ut, hh.inverse, k, False, h0, c0, False)
        loops = {"eager": lambda: _hmf_loop(*args), "script": lambda: _scripted(_hmf_loop)(*args)}
        if not a.no_compile:
            t0 = time.perf_counter()
            step = torch.compile(_step, dynamic=False)
            step(xp[0], DV, Ut, h0, c0, k)
            print(f"torch.compile: {time.perf_counter() - t0:.0f} s to compile the step")

            def compiled():
                h, c = h0, c0
                for t in range(a.seq):
                    h, c = step(xp[t], DV, Ut, h, c, k)
                return h

            loops["compile"] = compiled
        for f in loops.values():
            for _ in range(3):
                f()
        got = {name: [] for name in loops}
        for _ in range(a.rounds):
            for name, f in loops.items():
                t0 = time.perf_counter()
                f()
                got[name].append(time.perf_counter() - t0)
    print(f"HMF-LSTM hidden {H}, seq {a.seq}, split {k} rank {r} per gate, 1 thread")
    for name, ts in got.items():
        print(f"{name:8s} min {min(ts) * 1e3:8.2f} ms   median {statistics.median(ts) * 1e3:8.2f} ms")


def _step(xpt, DV, Ut, h, c, k: int):
    z = torch.matmul(h, DV.transpose(1, 2))
    z = torch.cat([z[:, :, :k], torch.bmm(z[:, :, k:], Ut)], 2)
    g = z + xpt
    sg = torch.sigmoid(g)
    c = torch.addcmul(sg[1] * c, sg[0], torch.tanh(g[2]))
    return sg[3] * torch.tanh(c), c


if __name__ == "__main__":
    main()
