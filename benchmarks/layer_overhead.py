"""HMFLinear and LMFLinear at batch 1 against their raw GEMV floor, and where HMF's old gap to LMF went.

Two tables from one run (``hl.timing.race``: interleaved rounds, eval mode, ``torch.inference_mode``,
one torch thread, medians; the harness's verdict is printed under each table):

1. **Layer vs raw floor** at 1024 and 2048 (4x, balanced split): each layer beside the same
   matrix-vector kernels called directly on pre-packed tensors (``hl.timing.raw_kernels``). ``overhead``
   is layer - floor in µs; ``of_floor`` = floor / layer (1.0: no overhead; the target is >= 0.9).
2. **HMF vs LMF at equal bytes** (1024², 4x: HMF k=87, r=88 stores 261,000 values, LMF r=128 stores
   262,144): the previous HMF forward (reproduced op for op below), today's, LMF, and both floors.

What the measurement explains (quote it in notebook 03). At equal bytes, HMF and LMF stream the same
weights through two matrix-vector kernels each, so their floors are equal within noise. The previous
HMF forward was slower than LMF for three reasons, none of them bytes:

- in training mode (what the explorer timed) it rebuilt the packed [D ; V] (k+r, n) on every call,
  copying 0.7 MB per call: that alone made HMF look slower than dense (issue 13);
- in eval mode it still ran two more small ops than LMF: the dense rows' bias was added in a separate
  ``add`` into a slice of the output, and the cache key was rebuilt from a generator each call;
- LMF took the ``addmm`` path with a (1, n) matrix, HMF the ``mv`` path, so the two were not even timing
  the same kernels.

Today's forward packs [V ; D] once (cached, valid in train and eval mode), fuses both biases into the
two ``addmv`` calls, and writes both into one buffer whose tail is the output, so HMF and LMF run the
same two kernels plus the same few Python-level operations. What remains above the floor is the
module call, the input check, the cache's staleness check, the output assembly and its (1, m) shape.

**How close can a layer get?** Three more rows answer it in the same run:

- ``HMF bare module (ceiling)`` / ``LMF bare module (ceiling)``: a module that does only what any
  such layer must (the module call, the two kernels with fused biases, HMF's concatenation, the (1, m)
  shape) with no input check, no cache check and no other shapes: an upper bound for a usable layer.
- ``HMF bare module, C++ op (ceiling)`` (``--compiled``, needs a C++ compiler): the same work issued
  from one C++ function (``torch.utils.cpp_extension.load_inline``), to see whether Python is the cost.
- ``floor:HMF twin copy (noise control)``: a second copy of HMF's floor timed against the first: how far
  identical work reads from 1.0 in this run (the 10% target is only meaningful well outside it).

On this 2-core AMD EPYC (2 MiB L2 per core) the bare HMF module reads ~0.84 of the floor at 1024² and the
C++ op no better (~0.81): the ATen calls themselves (allocation, dispatch, the bias-fused addmv's extra
pass) cost more than the 2.6 µs that 10% of a ~26 µs floor allows, so at 1024² the target is out of
reach for any HMF layer built on torch ops, compiled or not. At 2048² the weights (4 MB) leave L2 and
the twin control itself moves by up to ~6%. The measured numbers, not this text, are the result:
rerun on a quiet machine.

    python benchmarks/layer_overhead.py                  # about a minute
    python benchmarks/layer_overhead.py --clock thread   # on a busy machine: CPU time of the timing thread
    python benchmarks/layer_overhead.py --compiled       # add the C++-op ceiling row (builds once, ~30 s)
"""
from __future__ import annotations

import argparse

import pandas as pd
import torch

import hmf_lab as hl
from hmf_lab.perf.timing import race, raw_kernels, weight_bytes


class PreviousHMFLinear(hl.HMFLinear):
    """HMFLinear with the eval-mode batch-1 forward it had before this change, op for op (for comparison)."""

    def _forward_fast(self, x):
        k, r, m, n = self.split, self.rank, self.out_features, self.in_features
        p = self._parameters
        D, U, V, bias = p["dense"], p["U"], p["V"], p.get("bias")
        key = tuple((t.data_ptr(), t._version) for t in (D, V))  # the old cache key, rebuilt per call
        store = self.__dict__.setdefault("_prev", {})
        if store.get("key") != key:
            store["key"], store["DV"] = key, torch.cat([D, V]).contiguous()  # (k+r, n)
        DV = store["DV"]
        t = torch.mv(DV, x.reshape(n))  # (k+r,)
        y = x.new_empty(m)
        torch.add(t[:k], bias[:k], out=y[:k])  # the dense rows' bias: a separate op
        torch.addmv(bias[k:], U, t[k:], out=y[k:])
        return y.reshape(*x.shape[:-1], m)


class BareHMF(torch.nn.Module):
    """The least any HMF module can do at batch 1, to show the ceiling: the module call, HMFLinear's two
    kernels with their fused biases on its packed tensors, the concatenation and the (1, m) shape -- and
    nothing else: no input check, no stale-cache check, no other shapes. Not a usable layer."""

    def __init__(self, h: hl.HMFLinear, op=None):
        super().__init__()
        self.VD, self.b_vd, self.b_low = (t.detach().clone() for t in h._pack())
        self.Ut, self.r, self.op = h.U.detach().clone(), h.rank, op

    def forward(self, x):
        if self.op is not None:  # the compiled op (--compiled): the same ATen calls, issued from C++
            return self.op(x, self.VD, self.b_vd, self.Ut, self.b_low, self.r)
        t = torch.addmv(self.b_vd, self.VD, x.view(-1))
        r = self.r
        return torch.cat((t[r:], torch.addmv(self.b_low, self.Ut, t[:r]))).unsqueeze(0)


class BareLMF(torch.nn.Module):
    """LMF's ceiling, as :class:`BareHMF`: the module call, LMFLinear's two kernels (bias fused) and the
    (1, m) shape, nothing else."""

    def __init__(self, f: hl.LMFLinear):
        super().__init__()
        self.Ut, self.Vt, self.b = (t.detach().clone() for t in (f.U, f.V, f.bias))

    def forward(self, x):
        return torch.addmv(self.b, self.Ut, torch.mv(self.Vt, x.view(-1))).unsqueeze(0)


_CPP = r"""
#include <torch/extension.h>
torch::Tensor hmf_batch1(const torch::Tensor& x, const torch::Tensor& VD, const torch::Tensor& b_vd,
                         const torch::Tensor& U, const torch::Tensor& b_low, int64_t r) {
  auto t = at::addmv(b_vd, VD, x.view({-1}));
  int64_t k = VD.size(0) - r, mk = U.size(0);
  auto y = at::empty({1, k + mk}, x.options());
  auto flat = y.view({-1});
  auto low = flat.narrow(0, k, mk);
  at::addmv_out(low, b_low, U, t.narrow(0, 0, r));
  flat.narrow(0, 0, k).copy_(t.narrow(0, r, k));
  return y;
}
"""


def compiled_op():
    """HMF's batch-1 forward as one C++ function (torch.utils.cpp_extension.load_inline: needs a C++
    compiler and ninja; about 30 s to build the first time), or None with the reason printed."""
    try:
        from torch.utils.cpp_extension import load_inline
        return load_inline("hmf_batch1_bench", cpp_sources=_CPP, functions=["hmf_batch1"]).hmf_batch1
    except Exception as e:  # no compiler, no ninja, no headers: the row is skipped, said below
        print(f"--compiled: skipped, the C++ op did not build ({type(e).__name__}: {str(e).splitlines()[0][:200]})")
        return None


def layers(n: int, c: float = 4.0, seed: int = 0) -> dict:
    torch.manual_seed(seed)
    k, r = hl.choose_split_rank((n, n), c)
    h = hl.HMFLinear(n, n, k, r).eval().requires_grad_(False)
    prev = PreviousHMFLinear(n, n, k, r).eval().requires_grad_(False)
    prev.load_state_dict(h.state_dict())
    lm = hl.LMFLinear(n, n, hl.lmf_rank((n, n), c)).eval().requires_grad_(False)
    dense = torch.nn.Linear(n, n).eval().requires_grad_(False)
    return {"dense": dense, "HMF": h, "HMF (previous forward)": prev, "LMF": lm}


def overhead_parts(n: int, c: float = 4.0) -> pd.DataFrame:
    """What each Python-level step of HMFLinear's batch-1 forward costs on its own (torch.utils.benchmark,
    median of blocked runs, 1 thread): the overhead column above is roughly their sum, and no single
    step dominates, which is why the 10% target is out of reach at 1024 in eager PyTorch."""
    from torch.utils.benchmark import Timer

    torch.manual_seed(0)
    k, r = hl.choose_split_rank((n, n), c)
    h = hl.HMFLinear(n, n, k, r).eval().requires_grad_(False)
    x = torch.randn(1, n)
    p = h._parameters
    with torch.inference_mode():
        h(x)
        VD = h._cached("pack", h._pack, p["dense"], p["U"], p["V"], p["bias"])[0]
        t = torch.mv(VD, x.view(n))
        low = torch.mv(p["U"], t[:r])
        steps = {
            "module dispatch (nn.Module.__call__ of an empty forward)": ("ident(x)", {"ident": torch.nn.Identity()}),
            "input check (type, dtype, width)": ("type(x) is not T or x.dtype is not V.dtype or not x.ndim or "
                                                 "x.shape[-1] != n", {"T": torch.Tensor, "V": p["V"], "n": n}),
            "cache look-up ([V ; D] and biases, version-keyed, as the layer writes it)": (
                "hit = h.__dict__.get('_inference_cache').get('pack'); "
                "hit[0] == [D._version, U._version, V._version, b._version, "
                "D.data_ptr(), U.data_ptr(), V.data_ptr(), b.data_ptr()]",
                {"h": h, "D": p["dense"], "U": p["U"], "V": p["V"], "b": p["bias"]}),
            "x to a vector (view)": ("x.view(n)", {"n": n}),
            "slice t[r:]": ("t[r:]", {"t": t, "r": r}),
            "concatenate [D x ; U V x] (m floats)": ("torch.cat((t[r:], low))", {"t": t, "low": low, "r": r}),
            "output shape (unsqueeze)": ("low.unsqueeze(0)", {"low": low}),
        }
        rows = []
        for name, (stmt, g) in steps.items():
            g = {"torch": torch, "x": x, **g}
            m = Timer(stmt, globals=g, num_threads=1).blocked_autorange(min_run_time=0.2)
            rows.append(dict(step=name, us=m.median * 1e6))
    rows.append(dict(step="sum of the steps", us=sum(r["us"] for r in rows)))
    return pd.DataFrame(rows)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", nargs="+", type=int, default=[1024, 2048])
    p.add_argument("--rounds", type=int, default=7)
    p.add_argument("--min-run-time", type=float, default=0.1)
    p.add_argument("--clock", choices=("wall", "thread"), default="wall")
    p.add_argument("--no-parts", action="store_true", help="skip the per-step overhead breakdown")
    p.add_argument("--compiled", action="store_true",
                   help="add a row with HMF's batch-1 forward compiled as one C++ op (needs a C++ compiler)")
    a = p.parse_args(argv)
    op = compiled_op() if a.compiled else None
    for n in a.sizes:
        L = layers(n)
        fns = {}
        for name, mod in L.items():
            fns[name] = mod
            if name != "HMF (previous forward)":
                fns["floor:" + name] = raw_kernels(mod)
        # the ceiling rows: what any HMF module must pay at least, and the noise between identical work
        extra = {"HMF bare module (ceiling)": BareHMF(L["HMF"]), "LMF bare module (ceiling)": BareLMF(L["LMF"])}
        if op is not None:
            extra["HMF bare module, C++ op (ceiling)"] = BareHMF(L["HMF"], op)
        twin = hl.HMFLinear(n, n, L["HMF"].split, L["HMF"].rank).eval().requires_grad_(False)
        twin.load_state_dict(L["HMF"].state_dict())
        fns.update(extra)
        fns["floor:HMF twin copy (noise control)"] = raw_kernels(twin)
        x = torch.randn(1, n)
        r = race(fns, x, rounds=a.rounds, min_run_time=a.min_run_time, threads=1, clock=a.clock, inference=True)
        med = dict(zip(r.table["name"], r.table["median"]))
        rows = []
        # each timed row with the module whose weights it reads (the ceiling rows and the control read HMF's)
        sized = {**L, **{e: L[e.split()[0]] for e in extra}, "floor:HMF twin copy (noise control)": L["HMF"]}
        for name, mod in sized.items():
            # HMF and LMF variants are set against their layer's floor
            t, floor = med[name], med.get("floor:" + name, med["floor:LMF" if name.startswith("LMF") else "floor:HMF"])
            rows.append(dict(layer=name, values=getattr(mod, "n_params", n * n), bytes=weight_bytes(mod),
                             layer_us=t * 1e6, floor_us=floor * 1e6, overhead_us=(t - floor) * 1e6,
                             of_floor=floor / t, speedup_vs_dense=med["dense"] / t,
                             ideal=weight_bytes(L["dense"]) / weight_bytes(mod)))
        df = pd.DataFrame(rows)
        k, rk = L["HMF"].split, L["HMF"].rank
        print(f"\n## {n}x{n}, 4x (HMF k={k}, r={rk}; LMF r={L['LMF'].rank}), batch 1, {r.threads} thread, eval, "
              f"clock={a.clock}, {a.rounds} interleaved rounds")
        print(df.to_string(index=False, float_format=lambda v: f"{v:.3g}"))
        gap = med["HMF"] / med["LMF"]
        print(f"HMF / LMF time: {gap:.2f} (previous forward: {med['HMF (previous forward)'] / med['LMF']:.2f}); "
              f"floors HMF / LMF: {med['floor:HMF'] / med['floor:LMF']:.2f}")
        print(r.warning or "harness: timing looks reliable")
        if not a.no_parts:
            parts = overhead_parts(n)
            print(f"\nwhere HMF's overhead goes at {n}x{n} (each step alone, µs; besides these the layer "
                  "adds both biases inside its two addmv kernels):")
            print(parts.to_string(index=False, float_format=lambda v: f"{v:.2f}"))


if __name__ == "__main__":
    main()
