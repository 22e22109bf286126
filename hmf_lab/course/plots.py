"""Plots for HMF: spectra, to-scale block pictures, residuals, trade-off maps and timings.

Every function takes results (matrices, ``hl.hmf``/``hl.lmf`` results, ``hl.sweep`` DataFrames,
``hl.timing`` tables) and an optional ``ax``, draws, and returns the ``ax`` (never ``plt.show()``).

Example
-------
>>> import matplotlib; matplotlib.use("Agg")
>>> import torch, hmf_lab as hl
>>> W = torch.randn(64, 48, generator=torch.Generator().manual_seed(0))
>>> ax = hl.plots.spectrum(W)
>>> len(ax.lines[0].get_ydata())
48
>>> ax = hl.plots.blocks(hl.hmf(W, split=8, rank=6))
>>> sorted(p.get_label() for p in ax.patches)[:3]
['D', 'LMF U', 'LMF V']
"""
from __future__ import annotations

import math
from html import escape

import numpy as np
import pandas as pd
import torch

from hmf_lab.factor._validation import as_matrix
from hmf_lab.nn.methods import DENSE, METHODS, get_method, label_of, lookup
from hmf_lab.experiments.leaderboard import summary

__all__ = ["spectrum", "blocks", "blocks_svg", "block_layout", "residual", "error_map", "pareto", "pareto_front",
           "timing_bars", "plot_leaderboard", "plot_oracle", "plot_metric", "plot_time", "plot_regimes",
           "plot_split_sweep", "speed_crossover", "speed_regime", "never_slower"]

# The one palette of the kit: Okabe & Ito's colour-blind-safe set (Color Universal Design, 2008), as seaborn's
# "colorblind" palette is built on. Every plot takes its colours from here; importing this module also makes it
# matplotlib's default colour cycle, so pandas/matplotlib plots in the notebooks use it too.
PALETTE = ["#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442", "#000000"]
#: one colour per method, the same in every figure: the method records' ``color`` (hmf_lab.nn.methods), by name
#: ("hmf") and by label ("HMF"); a snapshot of the built-ins, :func:`method_color` also sees later registrations
METHOD_PALETTE = {**{r.name: r.color for r in (DENSE, *METHODS.values())},
                  **{r.label: r.color for r in (DENSE, *METHODS.values())},
                  "pruned (CSR)": get_method("prune").color}  # an older label of pruning
#: a second colour for a method's "best" variant drawn beside it (e.g. "hmf(best)" of the grid tables)
VARIANT_COLOR = PALETTE[4]


def method_color(key, default=None):
    """The figure colour of a method: its record's ``color``, found by name (``"hmf"``) or label (``"HMF"``);
    variants take their method's colour (``"hmf@0.5"``, ``"hmf-eager"``, ``"hmf[top]"``), a ``"(best)"``
    variant :data:`VARIANT_COLOR`; ``default`` for anything else.

    >>> method_color("hmf") == method_color("HMF") == method_color("hmf@0.5"), method_color("nope", "gray")
    (True, 'gray')
    """
    if not isinstance(key, str):
        return default
    rec = lookup(key) or next((r for r in (DENSE, *METHODS.values()) if r.label == key), None)
    if rec is not None:
        return rec.color
    if key in METHOD_PALETTE:  # older labels ("pruned (CSR)")
        return METHOD_PALETTE[key]
    if key.endswith("(best)"):
        return VARIANT_COLOR
    for sep in ("@", "-", "["):
        base = lookup(key.split(sep, 1)[0])
        if base is not None and sep in key:
            return base.color
    return default
# one colour and hatch per block kind, shared by the matplotlib and SVG pictures; the block name is written on
# every block too, so the picture never relies on colour alone
COLORS = {"W": "#BBBBBB", "D": PALETTE[0], "U": PALETTE[1], "V": PALETTE[2], "LMF U": PALETTE[5], "LMF V": PALETTE[6]}
HATCHES = {"W": "", "D": "", "U": "//", "V": "\\\\", "LMF U": "..", "LMF V": "xx"}


def _use_palette() -> None:
    import matplotlib as mpl
    from cycler import cycler

    mpl.rcParams["axes.prop_cycle"] = cycler(color=PALETTE)


_use_palette()


def _axes(ax, figsize=(6, 4)):
    if ax is not None:
        return ax
    import matplotlib.pyplot as plt

    _, ax = plt.subplots(figsize=figsize)
    return ax


def _singular_values(W_or_s) -> np.ndarray:
    if isinstance(W_or_s, (torch.Tensor, np.ndarray)) and np.ndim(W_or_s) == 1:
        s = np.asarray(torch.as_tensor(W_or_s).double().numpy(), dtype=np.float64)
        if (s < 0).any():
            raise ValueError("singular values must be >= 0; pass the matrix W or torch.linalg.svdvals(W)")
        return np.sort(s)[::-1]
    W = as_matrix(W_or_s)
    return torch.linalg.svdvals(W.double()).numpy()


def spectrum(W, ax=None, *, energy: bool = True, label: str | None = None, log: bool = True):
    """Singular values of ``W`` (log scale) and, on a twin axis, the cumulative energy captured by rank r.

    ``W`` is a matrix or its 1-D singular values. The twin axis (``ax.energy_ax``) holds the curve
    ``sum_{i<r} s_i^2 / sum s_i^2``: by Eckart–Young, ``1 - energy`` is the squared LMF error at rank r.

    >>> import matplotlib; matplotlib.use("Agg")
    >>> import torch, hmf_lab as hl
    >>> ax = hl.plots.spectrum(torch.tensor([3.0, 2.0, 1.0]))
    >>> ax.lines[0].get_ydata().tolist(), ax.energy_ax.lines[0].get_ydata().round(3).tolist()
    ([3.0, 2.0, 1.0], [0.643, 0.929, 1.0])
    """
    s = _singular_values(W)
    ax = _axes(ax)
    r = np.arange(1, len(s) + 1)
    ax.plot(r, s, color=PALETTE[0], label=label or "singular value $s_r$")
    if log and (s > 0).any():
        ax.set_yscale("log")
    ax.set_xlabel("rank r")
    ax.set_ylabel("singular value $s_r$", color=PALETTE[0])
    if energy:
        total = float((s**2).sum())
        cum = np.cumsum(s**2) / total if total > 0 else np.ones_like(s)
        twin = getattr(ax, "energy_ax", None) or ax.twinx()
        twin.plot(r, cum, color=PALETTE[3], ls="--", label="cumulative energy (dashed)")
        twin.set_ylim(0, 1.02)
        twin.set_ylabel("energy captured by rank r (dashed)", color=PALETTE[3])
        ax.energy_ax = twin
    ax.set_title("spectrum")
    return ax


def block_layout(m: int, n: int, split: int, rank: int, lmf_rank: int | None = None, gap: float | None = None):
    """To-scale rectangles ``(label, x, y, width, height)`` of dense W, HMF D/U/V and LMF U/V.

    Widths are columns, heights rows, so areas are parameter counts. ``lmf_rank`` defaults to the LMF
    rank with the HMF budget. Used by :func:`blocks` (matplotlib) and :func:`blocks_svg` (widgets).

    >>> [b[0] for b in block_layout(8, 6, 2, 1)]
    ['W', 'D', 'U', 'V', 'LMF U', 'LMF V']
    """
    k, r = int(split), int(rank)
    if lmf_rank is None:
        from hmf_lab.factor.budget import hmf_params, largest_rank  # the one home of the budget rules

        lmf_rank = largest_rank((m, n), hmf_params(m, n, k, r), 0)
    rl = int(lmf_rank)
    g = gap if gap is not None else 0.15 * max(m, n)
    out = [("W", 0.0, 0.0, n, m)]
    x0 = n + g
    # HMF: D on top of U, V to the right of U; P (the row order) is not drawn
    out.append(("D", x0, 0.0, n, k))
    out.append(("U", x0, float(k), r, m - k))
    out.append(("V", x0 + r + g / 3, float(k), n, r))
    x1 = x0 + max(n, r + g / 3 + n) + g
    out.append(("LMF U", x1, 0.0, rl, m))
    out.append(("LMF V", x1 + rl + g / 3, 0.0, n, rl))
    return out


def _block_params(m, n, k, r, rl):
    """Stored values of the three pictures: (dense, HMF, LMF)."""
    return m * n, k * n + r * (m - k) + r * n, rl * (m + n)


def blocks(f, ax=None, *, lmf=None, annotate: bool = True):
    """To-scale picture of the HMF blocks D, U, V beside the dense W and the LMF U, V.

    ``f`` is an ``hl.hmf`` result (or a tuple ``(m, n, split, rank)``); ``lmf`` an ``hl.lmf`` result or
    a rank (default: the largest LMF rank within the HMF budget). Each patch is labelled with its
    block name, so ``{p.get_label(): (p.get_width(), p.get_height())}`` reads the shapes back.

    >>> import matplotlib; matplotlib.use("Agg")
    >>> import hmf_lab as hl
    >>> ax = hl.plots.blocks((100, 80, 10, 20))
    >>> {p.get_label(): (p.get_width(), p.get_height()) for p in ax.patches}["U"]
    (20, 90)
    """
    from matplotlib.patches import Rectangle

    if isinstance(f, tuple) and len(f) == 4:
        m, n, k, r = (int(v) for v in f)
    elif hasattr(f, "rows") and hasattr(f, "U"):
        (m, n), k, r = f.shape, f.split, f.rank
    else:
        raise TypeError(f"blocks() expects an hl.hmf result or a tuple (m, n, split, rank), got {type(f).__name__}")
    rl = None if lmf is None else int(lmf.rank if hasattr(lmf, "rank") else lmf)
    # the captions above the three pictures are about 0.35 m wide once drawn (the figure's height is m rows):
    # a tall matrix (m >> n, e.g. an LSTM's (4H, H)) needs wider gaps, or its captions run into each other
    layout = block_layout(m, n, k, r, rl, gap=max(0.15 * max(m, n), 0.5 * (m - n)))
    rl = layout[-1][4]
    ax = _axes(ax, figsize=(8, 3.5))
    for name, x, y, w, h in layout:
        ax.add_patch(Rectangle((x, y), w, h, facecolor=COLORS[name], hatch=HATCHES[name], edgecolor="black", lw=0.6,
                               label=name))
        if annotate and w * h > 0:
            ax.text(x + w / 2, y + h / 2, name, ha="center", va="center", fontsize=8,
                    bbox=dict(boxstyle="round,pad=0.15", fc="white", ec="none", alpha=0.8))
    p_dense, p_hmf, p_lmf = _block_params(m, n, k, r, rl)
    if annotate:
        ax.text(layout[0][1] + n / 2, -0.04 * m, f"dense {m}x{n}\n{p_dense:,} params", ha="center", va="bottom",
                fontsize=8)
        ax.text(layout[1][1] + n / 2, -0.04 * m, f"HMF k={k}, r={r}\n{p_hmf:,} params", ha="center", va="bottom",
                fontsize=8)
        ax.text(layout[4][1] + (rl + n) / 2, -0.04 * m, f"LMF r={rl}\n{p_lmf:,} params", ha="center",
                va="bottom", fontsize=8)
    right = max(x + w for _, x, _, w, _ in layout)
    ax.set_xlim(-0.02 * right, right * 1.02)
    ax.set_ylim(m * 1.02, -0.2 * m)  # rows grow downwards, like the matrix
    ax.set_aspect("equal")
    ax.axis("off")
    return ax


def blocks_svg(m: int, n: int, split: int, rank: int, lmf_rank: int | None = None, width: int = 460,
               max_height: int = 260, lmf_only: bool = False) -> str:
    """The :func:`blocks` picture as an inline SVG string (cheap enough to redraw on every slider move).

    ``lmf_only``: only W and the LMF factors (rank ``lmf_rank``), for a notebook before HMF is introduced.

    >>> svg = blocks_svg(64, 64, 8, 4)
    >>> svg.startswith("<svg") and 'data-block="U"' in svg
    True
    >>> "HMF" in blocks_svg(64, 64, 0, 4, 4, lmf_only=True)
    False
    """
    layout = block_layout(m, n, split, rank, lmf_rank)
    if lmf_only:  # W, then the LMF blocks moved left to where HMF's would start
        shift = layout[4][1] - layout[1][1]
        layout = [layout[0]] + [(name, x - shift, y, w, h) for name, x, y, w, h in layout[4:]]
    right = max(x + w for _, x, _, w, _ in layout)
    scale = min(width / right, max_height / m)  # tall matrices: fit the height, keep the aspect
    width = int(right * scale) + 2
    top = 18
    height = int(m * scale + top + 4)
    rl = layout[-1][4]
    hmf_part = "" if lmf_only else f"HMF with D {split}x{n} (dense rows), U {m - split}x{rank}, V {rank}x{n}; "
    alt = (f"To-scale blocks: dense W {m}x{n}; {hmf_part}LMF with U {m}x{rl}, V {rl}x{n}. "
           "Areas are parameter counts.")
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img" '
             f'aria-label="{escape(alt)}" class="hmf-blocks" font-family="sans-serif" font-size="10">'
             f'<title>{escape(alt)}</title>']
    captions = {"W": f"dense {m}x{n}", "D": f"HMF k={split}, r={rank}", "LMF U": f"LMF r={layout[-1][4]}"}
    for name, x, y, w, h in layout:
        X, Y, Wd, H = x * scale, y * scale + top, w * scale, h * scale
        parts.append(f'<rect data-block="{escape(name)}" x="{X:.1f}" y="{Y:.1f}" width="{Wd:.1f}" height="{H:.1f}" '
                     f'fill="{COLORS[name]}" stroke="black" stroke-width="0.5"><title>{escape(name)}: '
                     f'{int(h)}x{int(w)}</title></rect>')
        if Wd >= 9 and H >= 9:  # the block's name on the block itself: readable without colour
            parts.append(f'<text x="{X + Wd / 2:.1f}" y="{Y + H / 2 + 3:.1f}" text-anchor="middle" '
                         f'font-weight="bold" fill="black">{escape(name.replace("LMF ", ""))}</text>')
        if name in captions:
            parts.append(f'<text x="{X:.1f}" y="12">{escape(captions[name])}</text>')
    parts.append("</svg>")
    return "".join(parts)


def residual(W, f, ax=None, *, max_size: int = 512, cbar: bool = True):
    """Heat map of the residual ``W - W_hat`` (diverging colours, symmetric limits).

    ``f`` is any result with ``to_dense()`` or a matrix. Matrices larger than ``max_size`` in a
    dimension are strided (every s-th row and column) so the image stays light;
    ``ax.images[0].get_array()`` is what is shown.

    >>> import matplotlib; matplotlib.use("Agg")
    >>> import torch, hmf_lab as hl
    >>> W = torch.randn(20, 10, generator=torch.Generator().manual_seed(0))
    >>> ax = hl.plots.residual(W, hl.hmf(W, split=20, rank=0))
    >>> float(abs(ax.images[0].get_array()).max())
    0.0
    """
    W = as_matrix(W)
    W_hat = f.to_dense() if hasattr(f, "to_dense") and not isinstance(f, torch.Tensor) else as_matrix(f, "W_hat")
    if tuple(W_hat.shape) != tuple(W.shape):
        raise ValueError(f"W_hat must have the shape of W {tuple(W.shape)}, got {tuple(W_hat.shape)}")
    R = (W - W_hat.to(W.dtype)).double().numpy()
    s = max(1, math.ceil(max(R.shape) / max_size))
    R = R[::s, ::s]
    ax = _axes(ax, figsize=(5, 4))
    v = float(np.abs(R).max()) or 1.0
    im = ax.imshow(R, cmap="RdBu_r", vmin=-v, vmax=v, aspect="auto", interpolation="nearest")
    if cbar:
        ax.figure.colorbar(im, ax=ax, label="W - W_hat")
    ax.set_xlabel("column (input)" + (f", every {s}th" if s > 1 else ""))
    ax.set_ylabel("row (output)" + (f", every {s}th" if s > 1 else ""))
    ax.set_title("residual W - W_hat")
    return ax


def error_map(df: pd.DataFrame, ax=None, *, compressions=(2, 4, 8, 16), shape=None, cbar: bool = True):
    """Relative error over (split, rank) from ``hl.sweep``'s DataFrame, with iso-compression contours.

    The heat map is ``ax.collections[0]`` (a QuadMesh over the rank x split grid, NaN where a pair is
    infeasible); ``ax.contour_set.levels`` are the drawn compressions. ``shape`` (m, n) defaults to what
    the DataFrame implies (the largest split is at most m).

    >>> import matplotlib; matplotlib.use("Agg")
    >>> import torch, hmf_lab as hl
    >>> df = hl.sweep(torch.randn(32, 32), splits=range(0, 33, 4))
    >>> ax = hl.plots.error_map(df, compressions=(2, 4))
    >>> ax.collections[0].get_array().shape, [float(c) for c in ax.contour_set.levels]
    ((8, 32), [2.0, 4.0])
    """
    need = {"split", "rank", "error", "params"}
    if not isinstance(df, pd.DataFrame) or not need <= set(df.columns):
        got = sorted(df.columns) if isinstance(df, pd.DataFrame) else type(df).__name__
        raise ValueError(f"error_map() expects hl.sweep's DataFrame with columns {sorted(need)}, got {got}")
    d = df[df["rank"] > 0]
    if d.empty:
        raise ValueError("error_map() needs at least one row with rank >= 1 (hl.sweep output)")
    E = d.pivot_table(index="split", columns="rank", values="error", aggfunc="mean")
    splits, ranks = E.index.to_numpy(), E.columns.to_numpy()
    if shape is None:
        # params = k*n + r*(m-k) + r*n: recover (m, n) from two rows of the sweep
        m, n = _infer_shape(d)
    else:
        m, n = shape
    ax = _axes(ax, figsize=(6, 4.5))
    import seaborn as sns

    cmap = sns.color_palette("rocket_r", as_cmap=True)
    mesh = ax.pcolormesh(ranks, splits, np.ma.masked_invalid(E.to_numpy()), cmap=cmap, shading="nearest")
    if cbar:
        ax.figure.colorbar(mesh, ax=ax, label="relative error")
    R, K = np.meshgrid(ranks, splits)
    C = m * n / (K * n + R * (m - K) + R * n)
    levels = sorted(float(c) for c in compressions if C.min() < c < C.max())
    if levels:
        cs = ax.contour(R, K, C, levels=levels, colors="white", linewidths=1.0)
        ax.clabel(cs, fmt=lambda c: f"{c:g}x")
        ax.contour_set = cs
    else:
        ax.contour_set = None
    ax.set_xlabel("rank r")
    ax.set_ylabel("split k (dense rows)")
    ax.set_title("relative error; white: iso-compression")
    return ax


def _infer_shape(d: pd.DataFrame) -> tuple[int, int]:
    # params = k n + r (m - k) + r n = k (n - r) + r (m + n): linear in unknowns m, n
    A = np.stack([d["rank"].to_numpy(float), (d["split"] + d["rank"]).to_numpy(float)], axis=1)
    b = (d["params"] + d["split"] * d["rank"]).to_numpy(float)  # = r m + (k + r) n
    sol, *_ = np.linalg.lstsq(A, b, rcond=None)
    m, n = (int(round(v)) for v in sol)
    if m < 1 or n < 1:
        raise ValueError("cannot infer the matrix shape from the DataFrame; pass shape=(m, n)")
    return m, n


def pareto_front(df: pd.DataFrame, x: str = "params", y: str = "error") -> pd.DataFrame:
    """Rows of ``df`` not dominated in (``x``, ``y``), both minimised, sorted by ``x``.

    >>> import pandas as pd
    >>> df = pd.DataFrame({"params": [1, 2, 3, 4], "error": [0.5, 0.6, 0.2, 0.2]})
    >>> pareto_front(df)["params"].tolist()
    [1, 3]
    """
    for c in (x, y):
        if c not in df.columns:
            raise ValueError(f"column {c!r} not in the DataFrame (columns: {list(df.columns)})")
    d = df.sort_values([x, y], kind="stable")
    best = np.inf
    keep = []
    for idx, v in zip(d.index, d[y].to_numpy()):
        if v < best:
            keep.append(idx)
            best = v
    return d.loc[keep]


def pareto(df: pd.DataFrame, ax=None, *, x: str = "params", y: str = "error", time: str | None = "time",
           hue: str | None = "method"):
    """Error vs parameters, coloured by measured time when ``df`` has a ``time`` column, with the Pareto front.

    ``hue`` groups markers (e.g. a ``method`` column: hmf / lmf / prune). The front (non-dominated in
    ``x``, ``y``) is the last line, labelled "Pareto front".

    >>> import matplotlib; matplotlib.use("Agg")
    >>> import pandas as pd, hmf_lab as hl
    >>> df = pd.DataFrame({"params": [1, 2, 3], "error": [0.5, 0.6, 0.2], "method": ["a", "b", "a"]})
    >>> ax = hl.plots.pareto(df)
    >>> ax.lines[-1].get_label(), ax.lines[-1].get_xdata().tolist()
    ('Pareto front', [1, 3])
    """
    for c in (x, y):
        if c not in df.columns:
            raise ValueError(f"pareto() needs a {c!r} column, got columns {list(df.columns)}")
    ax = _axes(ax, figsize=(6, 4))
    has_time = time is not None and time in df.columns
    groups = df.groupby(hue, sort=False) if hue is not None and hue in df.columns else [(None, df)]
    markers = "osD^v<>"
    sc = None
    vmin = vmax = None
    if has_time:
        t = df[time].to_numpy(float) * 1e6
        vmin, vmax = np.nanmin(t), np.nanmax(t)
    for i, (name, g) in enumerate(groups):
        kw = dict(marker=markers[i % len(markers)], label=None if name is None else str(name), edgecolors="k",
                  linewidths=0.3)
        if has_time:
            sc = ax.scatter(g[x], g[y], c=g[time].to_numpy(float) * 1e6, cmap="viridis", vmin=vmin, vmax=vmax, **kw)
        else:
            sc = ax.scatter(g[x], g[y], **kw)
    if has_time and sc is not None:
        ax.figure.colorbar(sc, ax=ax, label=f"{time} (µs)")
    front = pareto_front(df, x, y)
    ax.plot(front[x].to_numpy(), front[y].to_numpy(), color="black", lw=1, drawstyle="steps-post",
            label="Pareto front")
    ax.set_xlabel(x)
    ax.set_ylabel(y)
    ax.set_title("trade-off: error vs size" + (" vs time" if has_time else ""))
    if hue is not None and hue in df.columns:
        ax.legend(fontsize=8)
    return ax


def budget_line(b: pd.DataFrame, ax=None, *, current: int | None = None):
    """Error along one iso-compression line: ``hl.budget`` rows with an ``error`` column, the best split marked.

    ``current`` (a split) is marked too. Split 0 is LMF; the right end keeps the most dense rows.

    >>> import matplotlib; matplotlib.use("Agg")
    >>> import pandas as pd
    >>> b = pd.DataFrame({"split": [0, 4, 8], "rank": [6, 4, 1], "error": [0.5, 0.3, 0.6]})
    >>> ax = budget_line(b, current=8)
    >>> ax.lines[0].get_ydata().tolist(), ax.lines[1].get_xdata().tolist()
    ([0.5, 0.3, 0.6], [4])
    """
    for c in ("split", "rank", "error"):
        if c not in b.columns:
            raise ValueError(f"budget_line() needs hl.budget's columns plus 'error', got {list(b.columns)}")
    ax = _axes(ax, figsize=(6, 2.6))
    ax.plot(b["split"], b["error"], color=PALETTE[0], marker=".", label="HMF on this line")
    i = b["error"].idxmin()
    ax.plot([b.loc[i, "split"]], [b.loc[i, "error"]], "*", ms=14, color=PALETTE[3],
            label=f"best: k={int(b.loc[i, 'split'])}, r={int(b.loc[i, 'rank'])}")
    if current is not None and (b["split"] == current).any():
        j = b.index[b["split"] == current][0]
        ax.plot([current], [b.loc[j, "error"]], "o", ms=9, mfc="none", mec="black", mew=1.5,
                label=f"yours: k={current}, r={int(b.loc[j, 'rank'])}")
    ax.set_xlabel("split k (dense rows); 0 = LMF")
    ax.set_ylabel("relative error")
    ax.set_title("error along the iso-compression line")
    ax.legend(fontsize=8)
    return ax


__all__ += ["budget_line", "PALETTE", "METHOD_PALETTE", "method_color"]


def _timing_table(timings) -> pd.DataFrame:
    if isinstance(timings, pd.DataFrame):
        if "median" not in timings.columns:
            raise ValueError(f"timing_bars() expects a 'median' column (hl.timing.compare), got {list(timings.columns)}")
        names = timings["name"] if "name" in timings.columns else timings.index
        iqr = timings["iqr"] if "iqr" in timings.columns else 0.0
        return pd.DataFrame({"name": list(map(str, names)), "median": timings["median"].to_numpy(float),
                             "iqr": np.broadcast_to(np.asarray(iqr, float), (len(timings),))})
    if isinstance(timings, dict) and timings:
        rows = []
        for k, v in timings.items():
            if hasattr(v, "median"):
                rows.append((str(k), float(v.median), float(getattr(v, "iqr", 0.0))))
            elif isinstance(v, (int, float)):
                rows.append((str(k), float(v), 0.0))
            else:
                raise TypeError(f"timing_bars(): value for {k!r} must be a Timing or seconds, got {type(v).__name__}")
        return pd.DataFrame(rows, columns=["name", "median", "iqr"])
    raise TypeError(f"timing_bars() expects hl.timing.compare's DataFrame or a dict name -> Timing, "
                    f"got {type(timings).__name__}")


def timing_bars(timings, ax=None, *, unit: str = "us", baseline: str | None = None):
    """Horizontal bars of median run time (IQR as error bars), annotated with the speed-up over ``baseline``.

    ``timings``: ``hl.timing.compare``'s DataFrame (name, median, iqr), or a dict name -> ``Timing`` or
    seconds. ``baseline`` defaults to the first entry. Bar widths are in ``unit`` ("s", "ms", "us").

    >>> import matplotlib; matplotlib.use("Agg")
    >>> import hmf_lab as hl
    >>> ax = hl.plots.timing_bars({"dense": 2e-3, "hmf": 1e-3}, unit="ms")
    >>> [round(float(p.get_width()), 6) for p in ax.patches]
    [2.0, 1.0]
    """
    scale = {"s": 1.0, "ms": 1e3, "us": 1e6}
    if unit not in scale:
        raise ValueError(f"unit must be one of {list(scale)}, got {unit!r}")
    t = _timing_table(timings)
    base = t["median"].iloc[0] if baseline is None else t.set_index("name").loc[baseline, "median"]
    ax = _axes(ax, figsize=(6, 0.5 + 0.5 * len(t)))
    y = np.arange(len(t))
    colors = [method_color(name, PALETTE[i % len(PALETTE)]) for i, name in enumerate(t["name"])]
    ax.barh(y, t["median"] * scale[unit], xerr=t["iqr"] * scale[unit], color=colors)
    for i, (med, name) in enumerate(zip(t["median"], t["name"])):
        ax.text(med * scale[unit], i, f"  {base / med:.2f}x", va="center", fontsize=8)
    ax.set_yticks(y, t["name"])
    ax.invert_yaxis()
    ax.set_xlabel(f"median time ({'µs' if unit == 'us' else unit})")
    ax.set_title("inference time (speed-up vs " + (baseline or str(t['name'].iloc[0])) + ")")
    return ax


#: display labels of the methods: the method records' ``label`` (:func:`hmf_lab.nn.methods.label_of`)


def speed_crossover(df: pd.DataFrame, ax=None, *, x: str = "hidden", y: str = "speedup", ideal: str | None = None):
    """Speed-up over dense against model size per method (log2 x axis), with the sizes where HMF overtakes
    dense and CSR pruning marked (:func:`hmf_lab.perf.engines.crossover_points`). ``df``: tidy, columns
    ``x``, ``method``, ``y`` (dense = 1). ``ideal``: a column with each method's ideal speed-up from bytes,
    drawn as a thin dotted line in the method's colour (a measured point above it streams faster than dense).
    Returns the Axes.

    >>> import matplotlib; matplotlib.use("Agg")
    >>> import pandas as pd, hmf_lab as hl
    >>> df = pd.DataFrame({"hidden": [128, 256] * 3, "method": ["dense"] * 2 + ["hmf"] * 2 + ["prune"] * 2,
    ...                    "speedup": [1, 1, 0.6, 1.4, 0.5, 0.8]})
    >>> ax = hl.plots.speed_crossover(df)
    >>> [l.get_label() for l in ax.get_lines()][:3]
    ['dense', 'HMF', 'pruning (CSR)']
    """
    from hmf_lab.perf.engines import crossover_points

    if not isinstance(df, pd.DataFrame) or not {x, y, "method"} <= set(df.columns):
        raise TypeError(f"speed_crossover() expects a DataFrame with columns {x!r}, 'method' and {y!r}")
    ax = _axes(ax)
    present = set(df["method"])
    known = [r.name for r in (DENSE, *METHODS.values())]  # the registry's order, then anything else
    for method in [m for m in known if m in present] + sorted(present - set(known)):
        d = df[df["method"] == method].groupby(x)[y].median()
        ax.plot(d.index, d.values, marker="o", label=label_of(method), color=method_color(method),
                linestyle="--" if method == DENSE.name else "-")
        if ideal is not None and ideal in df.columns and method != DENSE.name:
            i = df[df["method"] == method].groupby(x)[ideal].median()
            ax.plot(i.index, i.values, color=method_color(method), linestyle=":", linewidth=1,
                    label=f"{label_of(method)}: ideal from bytes")
    ax.set_xscale("log", base=2)
    ax.set_xticks(sorted(df[x].unique()), [str(v) for v in sorted(df[x].unique())])
    hmf, csr = get_method("hmf"), get_method("prune")
    if hmf.name in present:
        refs = [DENSE.name] + ([csr.name] if csr.name in present else [])
        lo, hi = ax.get_ylim()
        for i, (ref, at) in enumerate(crossover_points(df, hmf.name, against=refs, x=x, y=y).items()):
            if at is not None:  # one label per line, stacked so that two close crossings do not overlap
                ax.axvline(at, color="gray", linestyle=":", linewidth=1)
                ax.text(at, hi - i * 0.12 * (hi - lo), f" {hmf.label} > {label_of(ref)} ~{at:.0f}", fontsize=7,
                        va="top", ha="left")
    ax.set_xlabel(x)
    ax.set_ylabel("speed-up over dense")
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))  # outside: the lines rise to the corner
    return ax


def speed_regime(table: pd.DataFrame, ax=None):
    """Measured speed-up over dense (bars) and the ideal from bytes (black ticks) per (method, compression) of
    :func:`hmf_lab.experiments.speed.regime_table`. Returns the Axes.

    >>> import matplotlib; matplotlib.use("Agg")
    >>> t = pd.DataFrame({"vs dense": [1.0, 3.0, 1.0], "ideal": [1.0, 4.0, 2.0]},
    ...                  index=pd.MultiIndex.from_tuples([("dense", 1), ("hmf", 4), ("prune", 4)]))
    >>> [round(float(p.get_height()), 1) for p in speed_regime(t).patches]
    [3.0, 1.0]
    """
    if not isinstance(table, pd.DataFrame) or not {"vs dense", "ideal"} <= set(table.columns):
        raise TypeError("speed_regime() expects hmf_lab.experiments.speed.regime_table(...): columns 'vs dense', 'ideal'")
    ax = _axes(ax, (6.5, 3.8))
    t = table[[m != DENSE.name for m, _ in table.index]]
    xs = np.arange(len(t))
    for x, ((method, c), row) in zip(xs, t.iterrows()):
        ax.bar(x, row["vs dense"], color=method_color(method), edgecolor="black", lw=0.5)
        ax.plot([x - 0.4, x + 0.4], [row["ideal"]] * 2, color="black", lw=2)
        ax.text(x, row["vs dense"], f"{row['vs dense']:.1f}x", ha="center", va="bottom", fontsize=8)
    ax.set_xticks(xs, [f"{label_of(m)}\n{c:g}x" for m, c in t.index], fontsize=8)
    ax.axhline(1.0, color="grey", lw=0.8, ls="--")
    ax.set_ylabel("speed-up over dense")
    ax.set_title("bars: measured; black ticks: ideal from bytes")
    return ax


def never_slower(df: pd.DataFrame, ax=None, *, target: float = 0.95):
    """Speed over dense of every (model, method, compression) row of ``never_slower.csv``: filled markers on
    the engines ``hl.engines.choose`` picked, hollow ones on the default compressed engines; the grey band is
    each model's dense-vs-dense control range (the noise), the dashed line the target. Returns the Axes.

    >>> import matplotlib; matplotlib.use("Agg")
    >>> d = pd.DataFrame({"model": ["a", "a"], "method": ["hmf", "lmf"], "compression": [4, 4],
    ...                   "speed": [1.0, 1.1], "speed_default": [0.5, 0.9], "control": [0.99, 1.01]})
    >>> len(never_slower(d).collections) >= 1
    True
    """
    need = {"model", "method", "compression", "speed", "speed_default", "control"}
    if not isinstance(df, pd.DataFrame) or not need <= set(df.columns):
        raise TypeError(f"never_slower() expects the never_slower.csv table, columns {sorted(need)}")
    ax = _axes(ax, (8, 3.8))
    x0, ticks, names = 0, [], []
    seen = set()
    for model, g in df.groupby("model", sort=False):
        g = g.sort_values(["method", "compression"])
        xs = np.arange(x0, x0 + len(g))
        ax.fill_between([xs[0] - 0.5, xs[-1] + 0.5], g["control"].min(), g["control"].max(), color="0.85", lw=0)
        for x, r in zip(xs, g.itertuples()):
            col = method_color(r.method)
            lab = label_of(r.method) if r.method not in seen else None
            seen.add(r.method)
            ax.plot(x, r.speed, "o", color=col, label=lab)
            ax.plot(x, r.speed_default, "o", mfc="none", color=col)
        ticks.append(xs.mean())
        names.append(model)
        x0 += len(g) + 1
    ax.axhline(target, color="black", ls="--", lw=0.8)
    ax.axhline(1.0, color="grey", lw=0.6)
    ax.set_xticks(ticks, names)
    ax.set_ylabel("speed over dense (>1 = faster)")
    ax.set_title("filled: chosen engines; hollow: default compressed engines; band: dense-vs-dense noise")
    ax.legend(fontsize=8, loc="lower right")
    return ax


def plot_generation(df: pd.DataFrame, ax=None):
    """Batch-1 generation with a key/value cache (``benchmarks/generation_speed.py``'s ``generation.csv``):
    one bar per compressed model, its speed-up over dense in tokens per second, with the ideal from bytes as a
    black tick above it; one group per model size, the ``dense copy`` control range as a grey band. Returns the
    Axes.

    >>> import matplotlib; matplotlib.use("Agg")
    >>> d = pd.DataFrame({"size": ["s"] * 3, "model": ["dense", "dense copy", "lmf 4x"],
    ...                   "speedup": [1.0, 0.98, 2.5], "ideal": [1.0, 1.0, 3.9]})
    >>> len(plot_generation(d).patches)
    1
    """
    need = {"size", "model", "speedup", "ideal"}
    if not isinstance(df, pd.DataFrame) or not need <= set(df.columns):
        raise TypeError(f"plot_generation() expects generation.csv's table with the columns {sorted(need)}, got "
                        f"{type(df).__name__}{' ' + str(sorted(df.columns)) if isinstance(df, pd.DataFrame) else ''}")
    ax = _axes(ax, (8, 3.8))
    x0, ticks, names = 0, [], []
    for size, g in df.groupby("size", sort=False):
        ctl = g[g.model.isin(["dense", "dense copy"])]["speedup"]
        rest = g[~g.model.isin(["dense", "dense copy"])]
        if not len(rest):
            continue
        xs = np.arange(x0, x0 + len(rest))
        ax.fill_between([xs[0] - 0.5, xs[-1] + 0.5], ctl.min(), ctl.max(), color="0.85", lw=0)
        for x, r in zip(xs, rest.itertuples()):
            ax.bar(x, r.speedup, color=method_color(str(r.model).split()[0]), width=0.7)
            ax.plot([x - 0.35, x + 0.35], [r.ideal, r.ideal], color="black", lw=1.5)
            ax.text(x, r.speedup, f"{r.speedup:.2f}", ha="center", va="bottom", fontsize=7)
        ticks += list(xs)
        names += [f"{m}\n{size}" for m in rest.model]
        x0 += len(rest) + 1
    ax.axhline(1.0, color="grey", lw=0.6)
    ax.set_xticks(ticks, names, fontsize=7)
    ax.set_ylabel("tokens/s over dense (>1 = faster)")
    ax.set_title("bars: measured; black ticks: the ideal from bytes; band: dense-vs-dense noise", fontsize=9)
    return ax


def grid_comparison_map(cmp: pd.DataFrame, ax=None, *, clip: float = 20.0):
    """The rerun grid against LMF (:func:`hmf_lab.experiments.fair_test.grid_comparison`) as a heat map: rows
    (task, regime, compression), columns the comparisons, colour the difference in % of LMF's mean (blue:
    better than LMF, red: worse; the colour scale stops at ±``clip``, the numbers do not), each cell annotated,
    ``~`` marking a difference inside the noise (paired t-test at 5%). Returns the Axes.

    >>> import matplotlib; matplotlib.use("Agg")
    >>> cmp = pd.DataFrame(dict(task="lm", regime="post", compression=4.0, column=["a", "b"], pct=[2.0, -30.0],
    ...                         inside_noise=[False, True]))
    >>> [t.get_text() for t in grid_comparison_map(cmp).texts]
    ['+2.0', '~-30.0']
    """
    import seaborn as sns

    need = {"task", "regime", "compression", "column", "pct", "inside_noise"}
    if not isinstance(cmp, pd.DataFrame) or not need <= set(cmp.columns):
        raise TypeError(f"grid_comparison_map() expects fair_test.grid_comparison()'s table with the columns "
                        f"{sorted(need)}, got {type(cmp).__name__}")
    if not isinstance(clip, (int, float)) or not clip > 0:
        raise ValueError(f"clip must be a number > 0 (the colour scale's end, in %), got {clip!r}")
    d = cmp.assign(row=[f"{t} · {r} · {c:g}x" for t, r, c in zip(cmp.task, cmp.regime, cmp.compression)])
    rows, cols = list(dict.fromkeys(d.row)), list(dict.fromkeys(d.column))
    val = d.pivot_table(index="row", columns="column", values="pct", aggfunc="first").reindex(index=rows, columns=cols)
    txt = d.assign(t=[("~" if n else "") + f"{p:+.1f}" for p, n in zip(d.pct, d.inside_noise)]) \
        .pivot_table(index="row", columns="column", values="t", aggfunc="first").reindex(index=rows, columns=cols)
    ax = _axes(ax, (1.3 * len(cols) + 3, 0.32 * len(rows) + 1.5))
    sns.heatmap(val.clip(-clip, clip), ax=ax, cmap="RdBu", center=0, vmin=-clip, vmax=clip, annot=txt.fillna(""),
                fmt="", annot_kws={"fontsize": 7}, cbar_kws={"label": "% of LMF's mean (+ = better than LMF)"},
                linewidths=0.5, linecolor="white")
    ax.set_xlabel("")
    ax.set_ylabel("")
    import textwrap

    ax.set_xticklabels([textwrap.fill(t.get_text(), 16) for t in ax.get_xticklabels()], fontsize=7, rotation=0)
    ax.tick_params(axis="y", labelsize=7)
    ax.set_title("every row against LMF under the same allocation (~: inside the noise)", fontsize=9)
    return ax


# ------------------------------------------------------------------ split-heuristics lab


def plot_oracle(result, marks: dict | None = None, ax=None):
    """Histogram of the error of every dense-row subset (from :func:`hmf_lab.factor.oracle.oracle`), heuristics marked.

    ``marks``: label -> row indices or HMF result; each gets a vertical line at its error.

    >>> import torch, hmf_lab as hl
    >>> W = hl.synthetic.heavy_tailed(8, 6, seed=0)
    >>> res = hl.oracle(W, 2, 2)
    >>> ax = plot_oracle(res, {"top": [0, 1]})
    >>> len(ax.lines)
    2
    """
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(7, 3.2))
    ax.hist(result.errors, bins=min(60, max(10, result.n_subsets // 20)), color="0.8", edgecolor="0.6")
    ax.axvline(result.error, color="k", lw=2, label=f"oracle {result.error:.3f}")
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, (label, rows) in enumerate((marks or {}).items()):
        e = result.error_of(rows.rows if hasattr(rows, "rows") else rows)
        ax.axvline(e, color=colors[i % len(colors)], ls="--", lw=1.5, label=f"{label} {e:.3f}")
    what = "output" if result.objective == "output" else "weight"
    ax.set_xlabel(f"relative {what} error (split {result.split}, rank {result.rank})")
    ax.set_ylabel(f"subsets (of {result.n_subsets})")
    ax.legend(fontsize=8)
    return ax


def plot_leaderboard(df: pd.DataFrame, ax=None, by: str = "vs_best"):
    """Bar chart: geometric mean of ``by`` (error over the best heuristic's, or over "top"'s) per heuristic.

    One bar per (heuristic, compression), best first; lower is better, 1 = best (or = top).

    >>> import torch, hmf_lab as hl
    >>> df = hl.leaderboard(["top", "row_norm"], [torch.randn(16, 12)], compressions=[2, 4], progress=False)
    >>> ax = plot_leaderboard(df)
    >>> len(ax.patches) >= 4
    True
    """
    import matplotlib.pyplot as plt
    import seaborn as sns

    t = summary(df, by=by)  # hmf_lab.experiments.leaderboard.summary
    long = t.reset_index().melt(id_vars="heuristic", var_name="compression", value_name=by)
    long["compression"] = long["compression"].map(lambda c: f"{c:g}x")
    if ax is None:
        _, ax = plt.subplots(figsize=(7, 3.5))
    sns.barplot(data=long, x="heuristic", y=by, hue="compression", order=list(t.index), ax=ax)
    ax.axhline(1.0, color="k", lw=0.8, ls="--")
    what = "error / best heuristic's error" if by == "vs_best" else ("error / top's error" if by == "vs_top" else by)
    ax.set_ylabel(f"{what}\n(geometric mean over matrices)")
    ax.set_xlabel("")
    ax.set_title(f"split heuristics on {df['matrix'].nunique()} matrices (lower is better)")
    ax.tick_params(axis="x", rotation=30)
    return ax


# ------------------------------------------------------------------ reproduce results (moved from reproduce.py)

#: colours of the reproduce/grid tables' method labels: the records' colours (see :func:`method_color`)
METHOD_COLORS = {**{r.name: r.color for r in (DENSE, *METHODS.values())},
                 get_method("hmf").name + "(best)": VARIANT_COLOR}


def plot_metric(df: pd.DataFrame, ax=None, before: bool = True):
    """Metric vs compression per method of one ``reproduce`` task table (after fine-tuning solid, before dashed); returns the Axes."""
    ax = _axes(ax, (5, 3.5))
    dense = df[df.method == DENSE.name]
    comp = df[df.method != DENSE.name]
    for method, g in comp.groupby("method", sort=False):
        g = g.sort_values("compression")
        ax.plot(g.compression, g.after, "o-", color=method_color(method), label=f"{method} (fine-tuned)")
        if before:
            ax.plot(g.compression, g.before, "x--", color=method_color(method), alpha=0.5, label=f"{method} (before)")
    if len(dense):
        ax.axhline(float(dense.after.iloc[0]), color=DENSE.color, lw=1, ls=":", label=DENSE.label)
    ax.set_xscale("log", base=2)
    ax.set_xlabel("compression (x)")
    ax.set_ylabel(df.metric.iloc[0])
    ax.set_title(f"{df.task.iloc[0]}: {df.metric.iloc[0]} vs compression")
    ax.legend(fontsize=7)
    return ax


def plot_time(df: pd.DataFrame, ax=None):
    """Time per sequence vs compression per method of one ``reproduce`` task table (dense as a line); returns the Axes."""
    ax = _axes(ax, (5, 3.5))
    comp = df[df.method != DENSE.name]
    for method, g in comp.groupby("method", sort=False):
        g = g.sort_values("compression")
        ax.plot(g.compression, g.time_us / 1e3, "o-", color=method_color(method), label=method)
    dense = df[df.method == DENSE.name]
    if len(dense):
        ax.axhline(float(dense.time_us.iloc[0]) / 1e3, color=DENSE.color, lw=1, ls=":", label=DENSE.label)
    ax.set_xscale("log", base=2)
    ax.set_xlabel("compression (x)")
    ax.set_ylabel("time per sequence (ms, batch 1, 1 thread)")
    ax.set_title(f"{df.task.iloc[0]}: inference time")
    ax.legend(fontsize=7)
    return ax


def plot_regimes(summary: pd.DataFrame, ax=None, labels=("dense", "hmf", "hmf(best)", "lmf", "prune")):
    """Mean ± sd of the metric per method, post vs scratch, per compression (one task of ``hl.experiments.grid.summarize``); returns the Axes.

    >>> import matplotlib; matplotlib.use("Agg")
    >>> s = pd.DataFrame(dict(task="t", metric="accuracy", regime=["post", "scratch"], compression=4.0,
    ...                       label="hmf", mean=[0.8, 0.7], sd=[0.01, 0.02], n=3))
    >>> {c.get_label(): tuple(c.lines[0].get_ydata()) for c in plot_regimes(s).containers}
    {'hmf': (0.8, 0.7)}
    """
    ax = _axes(ax, (7, 3.8))
    keys = sorted({(r, c) for r, c in zip(summary.regime, summary.compression)})
    x = {k: i for i, k in enumerate(keys)}
    present = [lab for lab in labels if lab in set(summary.label)]
    width = 0.8 / max(len(present), 1)
    for j, lab in enumerate(present):
        g = summary[summary.label == lab].sort_values(["regime", "compression"])
        xs = [x[(r, c)] - 0.4 + width * (j + 0.5) for r, c in zip(g.regime, g.compression)]
        ax.errorbar(xs, g["mean"], yerr=g["sd"], fmt="o", capsize=3, color=method_color(lab), label=lab)
    ax.set_xticks(range(len(keys)), [f"{r}\n{c:g}x" for r, c in keys])
    metric = summary.metric.iloc[0] if len(summary) else ""
    ax.set_ylabel(f"{metric} (mean ± sd over seeds)")
    if len(summary):
        ax.set_title(f"{summary.task.iloc[0]}: post-training compression vs trained from scratch")
    ax.legend(fontsize=7, ncol=len(present))
    return ax


def plot_regimes_by_task(summary: pd.DataFrame, width: float = 5.5):
    """:func:`plot_regimes` for every task of ``summary`` (``hl.experiments.grid.summarize`` of several tasks), one panel
    each, side by side; returns the array of Axes.

    >>> import matplotlib; matplotlib.use("Agg")
    >>> s = pd.DataFrame(dict(task=["a", "b"], metric="accuracy", regime="post", compression=4.0,
    ...                       label="hmf", mean=[0.8, 0.7], sd=0.01, n=3))
    >>> [ax.get_title().split(":")[0] for ax in plot_regimes_by_task(s)]
    ['a', 'b']
    """
    import matplotlib.pyplot as plt

    tasks = list(dict.fromkeys(summary.task))
    if not tasks:
        raise ValueError("summary holds no task rows; pass hl.experiments.grid.summarize(cells) of a non-empty grid")
    fig, axes = plt.subplots(1, len(tasks), figsize=(width * len(tasks), 3.8), squeeze=False)
    for ax, task in zip(axes[0], tasks):
        plot_regimes(summary[summary.task == task], ax=ax)
    fig.tight_layout()
    return axes[0]


def plot_split_sweep(cells: pd.DataFrame, ax=None):
    """Trained iso-budget split sweep: metric vs split fraction (0 = LMF, 1 = all-rows end), seed error bars, per regime; returns the Axes.

    ``cells``: rows of ``hl.grid`` for one task and compression (labels ``lmf``, ``hmf@f``, ``hmf``,
    ``hmf[heuristic]``). The default split is drawn as a dotted line, a heuristic's rows as a dashed one.

    >>> import matplotlib; matplotlib.use("Agg")
    >>> c = pd.DataFrame(dict(task="t", metric="accuracy", compression=8.0, regime="scratch", seed=[0, 1] * 3,
    ...     label=["lmf"] * 2 + ["hmf@0.5"] * 2 + ["hmf@1"] * 2, split_frac=[None] * 2 + [0.5] * 2 + [1.0] * 2,
    ...     value=[0.5, 0.6, 0.7, 0.7, 0.6, 0.6]))
    >>> {c.get_label(): tuple(c.lines[0].get_xdata()) for c in plot_split_sweep(c).containers}
    {'scratch': (0.0, 0.5, 1.0)}
    """
    ax = _axes(ax, (6, 3.8))
    styles = {"post": ("tab:red", "s"), "scratch": ("tab:blue", "o")}
    hmf, lmf = get_method("hmf").name, get_method("lmf").name  # the grid's labels: lmf, hmf, hmf@f, hmf[h]
    for regime, g in cells.groupby("regime"):
        color, marker = styles.get(regime, ("gray", "o"))
        pts = g[(g.label == lmf) | g.label.str.startswith(hmf + "@")]
        frac = pts.split_frac.where(pts.label != lmf, 0.0).astype(float)
        agg = pts.assign(frac=frac).groupby("frac")["value"].agg(["mean", "std"]).fillna(0.0).sort_index()
        ax.errorbar(agg.index, agg["mean"], yerr=agg["std"], fmt=marker + "-", capsize=3, color=color, label=regime)
        default = g[g.label == hmf]["value"]
        if len(default):
            ax.axhline(float(default.mean()), color=color, ls=":", lw=1, label=f"{regime}: default split")
        for lab, h in g[g.label.str.startswith(hmf + "[")].groupby("label"):
            ax.axhline(float(h["value"].mean()), color=color, ls="--", lw=1, label=f"{regime}: {lab[4:-1]} rows")
    if len(cells):
        c0 = cells.iloc[0]
        ax.set_title(f"{c0.task}, {float(c0.compression):g}x: trained split sweep (equal budget)")
        ax.set_ylabel(f"{c0.metric} (mean ± sd over seeds)")
    ax.set_xlabel("split: fraction of the largest feasible split (0 = LMF, 1 = all-rows end)")
    ax.legend(fontsize=7)
    return ax


def split_axes(m: int, n: int, compression: float, ax=None, *, split_frac: float = 0.5):
    """To scale, at one budget: HMF by rows (k rows of W dense, the other m - k rows U V) beside HMF by columns
    (k input columns dense, the other n - k columns U V), each at ``split_frac`` of its largest feasible split,
    with the rank bound (k + r) each reaches against LMF's rank in the title of its panel.

    The row split adds up to ``k`` to the rank for ``k * n`` values per row; the column split for ``k * m`` values
    per column: on a wide matrix (n > m, e.g. an output layer with fewer outputs than hidden units) a dense
    column is the cheaper one, and the column split reaches the higher bound. Returns the Axes.

    >>> import matplotlib; matplotlib.use("Agg")
    >>> ax = split_axes(65, 256, 8)
    >>> sorted({p.get_label() for p in ax.patches})
    ['D (columns)', 'D (rows)', 'U', 'V']
    """
    from matplotlib.patches import Rectangle

    from hmf_lab.factor.budget import (choose_col_split_rank, choose_split_rank, lmf_rank, max_col_split,
                                       max_split)

    if not 0.0 <= float(split_frac) <= 1.0:
        raise ValueError(f"split_frac must be in [0, 1] (0 = LMF, 1 = the largest split), got {split_frac!r}")
    m, n = int(m), int(n)
    kr, rr = choose_split_rank((m, n), compression, split=int(round(split_frac * max_split((m, n), compression))))
    kc, rc = choose_col_split_rank((m, n), compression,
                                   split=int(round(split_frac * max_col_split((m, n), compression))))
    rl = lmf_rank((m, n), compression)
    ax = _axes(ax, figsize=(9, 3.4))
    g = 0.12 * max(m, n)

    def rect(x, y, w, h, name, label):
        if w * h > 0:
            ax.add_patch(Rectangle((x, y), w, h, facecolor=COLORS[name], hatch=HATCHES[name], edgecolor="black",
                                   lw=0.6, label=label))
            ax.text(x + w / 2, y + h / 2, name, ha="center", va="center", fontsize=8,
                    bbox=dict(boxstyle="round,pad=0.15", fc="white", ec="none", alpha=0.8))

    # rows: D (k x n) on top; U (m-k x r), V (r x n) for the rest
    rect(0, 0, n, kr, "D", "D (rows)")
    rect(0, kr, rr, m - kr, "U", "U")
    rect(rr + g / 3, kr, n, rr, "V", "V")
    x1 = max(n, rr + g / 3 + n) + 2 * g
    # columns: D (m x k) on the left; U (m x r), V (r x n-k) for the rest
    rect(x1, 0, kc, m, "D", "D (columns)")
    rect(x1 + kc + g / 3, 0, rc, m, "U", "U")
    rect(x1 + kc + g / 3 + rc + g / 3, 0, n - kc, rc, "V", "V")
    ax.text(n / 2, -0.06 * m, f"rows: k={kr}, r={rr}: rank <= {kr + rr}\n(LMF at this budget: rank {rl})",
            ha="center", va="bottom", fontsize=8)
    ax.text(x1 + (kc + rc + n - kc) / 2, -0.06 * m,
            f"columns: k={kc}, r={rc}: rank <= {kc + rc}\n(LMF at this budget: rank {rl})", ha="center",
            va="bottom", fontsize=8)
    right = x1 + kc + rc + (n - kc) + g
    ax.set_xlim(-0.02 * right, right)
    ax.set_ylim(m * 1.05, -0.35 * m)
    ax.set_aspect("equal")
    ax.axis("off")
    ax.set_title(f"one {m}x{n} matrix at {compression:g}x: the dense split by rows or by columns", fontsize=9)
    return ax


def compression_lines(cells: pd.DataFrame, ax=None, *, ylabel: str = "metric",
                      xlabel: str = "compression (whole model)"):
    """A model-level metric against compression: one line per ``label`` (mean over ``seed``, error bars ± sd),
    ``dense`` as a grey band (mean ± sd); rows whose label holds ``@`` (sweep points) are left out. ``cells``
    needs the columns ``label``, ``compression``, ``value``. Returns the Axes.

    >>> import matplotlib; matplotlib.use("Agg")
    >>> df = pd.DataFrame(dict(label=["dense", "lmf", "lmf", "hmf"], compression=[1.0, 2.0, 4.0, 2.0],
    ...                        value=[0.9, 0.8, 0.7, 0.85], seed=0))
    >>> ax = compression_lines(df, ylabel="accuracy")
    >>> ax.get_legend_handles_labels()[1], ax.get_ylabel()
    (['hmf', 'lmf'], 'accuracy')
    """
    need = {"label", "compression", "value"} - set(cells.columns)
    if need:
        raise ValueError(f"compression_lines needs the columns label, compression and value; {sorted(need)} "
                         f"missing from {list(cells.columns)}")
    ax = _axes(ax, figsize=(6, 4))
    main = cells[~cells.label.astype(str).str.contains("@")]
    dense = main[main.label == "dense"]["value"]
    if len(dense):
        m, s = float(dense.mean()), float(dense.std(ddof=1)) if len(dense) > 1 else 0.0
        ax.axhspan(m - s, m + s, color="#BBBBBB", alpha=0.5, lw=0)
        ax.axhline(m, color="#777777", lw=1, ls="--")
        ax.text(1.0, m, " dense", va="bottom", ha="left", fontsize=8, transform=ax.get_yaxis_transform())
    rest = main[main.label != "dense"]
    for lab, g in rest.groupby("label", sort=True):
        s = g.groupby("compression")["value"].agg(["mean", "std"]).fillna(0.0)
        method = str(lab).split("+")[0]
        ax.errorbar(s.index, s["mean"], yerr=s["std"], marker="o", capsize=3, label=str(lab),
                    color=method_color(method))
    ax.set_xscale("log")
    comps = sorted(rest.compression.unique())
    ax.set_xticks(comps)
    ax.set_xticklabels([f"{c:g}x" for c in comps])
    ax.minorticks_off()
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if len(rest):
        ax.legend(fontsize=8)
    return ax


def plot_fair_test(cells: pd.DataFrame, ax=None):
    """The converged run (:mod:`hmf_lab.experiments.fair_test`): bits per character against compression, one line
    per row (mean over seeds, error bars ± sd), dense as a band (:func:`compression_lines`). Returns the Axes.

    >>> import matplotlib; matplotlib.use("Agg")
    >>> df = pd.DataFrame(dict(label=["dense", "lmf+greedy", "lmf+greedy"], compression=[1.0, 8.0, 16.0],
    ...                        value=[2.0, 2.4, 2.6], seed=0))
    >>> plot_fair_test(df).get_legend_handles_labels()[1]
    ['lmf+greedy']
    """
    return compression_lines(cells, ax, ylabel="bits per character (lower is better)",
                             xlabel="compression (whole model, greedy allocation)")


def plot_channel_energy(W, X, axes=None, *, title: str = ""):
    """Per input channel of a layer ``W`` (m, n) on its calibration inputs ``X`` (N, n): the raw energy
    ``mean x_j^2`` (left) and the channel's share of the whitened output energy (right,
    :func:`hmf_lab.factor.heuristics.channel_energy`), each with its median as a dashed line and its
    max/median in the title. Returns the two Axes (notebook 08's outlier picture).

    >>> import matplotlib; matplotlib.use("Agg")
    >>> X = torch.randn(200, 16); X[:, 3] *= 20
    >>> axes = plot_channel_energy(torch.eye(16), X)
    >>> len(axes), "max/median" in axes[0].get_title()
    (2, True)
    """
    import matplotlib.pyplot as plt

    from hmf_lab.factor.heuristics import channel_energy

    raw, wh = channel_energy(W, X)
    if axes is None:
        _, axes = plt.subplots(1, 2, figsize=(11, 3.2))
    share = wh / wh.sum().clamp(min=1e-300)
    for ax, e, what, color in ((axes[0], raw, "raw input energy mean x_j²", PALETTE[0]),
                               (axes[1], share, "share of the whitened energy", PALETTE[3])):
        e = e.numpy()
        med = float(np.median(e))
        ax.bar(np.arange(e.size), e, width=1.0, color=color)
        ax.axhline(med, color="black", ls="--", lw=0.8, label="median")
        ax.set_yscale("log")
        ax.set_xlabel("input channel j")
        ax.set_ylabel(what)
        ax.set_title(f"{title}{': ' if title else ''}{what.split(' mean')[0]}, max/median {e.max() / max(med, 1e-300):.1f}",
                     fontsize=9)
        ax.legend(fontsize=7)
    axes[0].figure.tight_layout()
    return axes


__all__.append("plot_channel_energy")
__all__ += ["split_axes", "plot_fair_test", "compression_lines", "plot_generation",
            "grid_comparison_map"]
