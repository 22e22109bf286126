"""Course builds from the notebook series: student and instructor copies, and a static HTML book (private).

Works on whatever lessons ``notebooks/NN_*.ipynb`` exist (a glob, never a fixed list). Student copies
drop every cell tagged ``solution`` (nbconvert's ``TagRemovePreprocessor``); instructor copies keep
them. The book executes each lesson with nbclient (a per-cell timeout, and one fresh retry when a cell
times out or the kernel dies, since a lost kernel message once made one notebook stall for 600 s),
exports it with nbconvert's ``HTMLExporter`` and renders ``docs/syllabus.md`` as ``index.html``.
The slides are reveal.js decks (nbconvert's ``SlidesExporter``) of the student copies: :func:`slide_types`
gives every cell its slide type (a heading starts a slide, code goes on a sub-slide below it), so the
notebooks carry no slide metadata of their own (an author's ``slideshow`` metadata still wins).
Command line (what ``make student``, ``make instructor``, ``make book`` and ``make slides`` call)::

    python -m tools.course student  [--src notebooks] [--out build/student]
    python -m tools.course book     [--out build/book] [--quick] [--timeout 900]
    python -m tools.course slides   [--out build/slides] [--quick | --full | --no-execute] [--cdn]

>>> from tools.course import book_href
>>> book_href("../notebooks/02_hybrid_structure.ipynb#sliders", {"02_hybrid_structure"})
'02_hybrid_structure.html#sliders'
"""
from __future__ import annotations

import argparse
import copy
import html
import os
import re
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
LESSON_GLOB = "[0-9][0-9]_*.ipynb"  # the numbered series; apps and scratch notebooks stay out
SOLUTION_TAG = "solution"
KINDS = ("student", "instructor")


def lessons(src: str | os.PathLike = REPO / "notebooks") -> list[Path]:
    """The lesson notebooks ``NN_*.ipynb`` in ``src``, sorted by name.

    >>> [p.name[:3] for p in lessons()][:2]
    ['01_', '02_']
    """
    src = Path(src)
    if not src.is_dir():
        raise ValueError(f"expected a folder of notebooks NN_*.ipynb, got {str(src)!r} (no such folder); "
                         "pass --src with the notebooks/ folder of the repository")
    return sorted(src.glob(LESSON_GLOB))


def _read(path: Path):
    import nbformat

    return nbformat.read(path, as_version=4)


def course_copy(nb, kind: str):
    """A copy of notebook ``nb`` for ``kind`` ("student": ``solution`` cells removed; "instructor": kept).

    Outputs and execution counts are cleared and the jupytext pairing is dropped (a copy is not a source).

    >>> import nbformat.v4 as v4
    >>> nb = v4.new_notebook(cells=[v4.new_code_cell("x = None"), v4.new_code_cell("x = 1", metadata={"tags": ["solution"]})])
    >>> [c.source for c in course_copy(nb, "student").cells], len(course_copy(nb, "instructor").cells)
    (['x = None'], 2)
    """
    from nbconvert.preprocessors import ClearOutputPreprocessor, TagRemovePreprocessor

    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    nb = copy.deepcopy(nb)
    nb.metadata.pop("jupytext", None)
    resources: dict = {}
    nb, resources = ClearOutputPreprocessor().preprocess(nb, resources)
    if kind == "student":
        nb, resources = TagRemovePreprocessor(remove_cell_tags={SOLUTION_TAG}, enabled=True).preprocess(nb, resources)
    return nb


def build_copies(kind: str, src=REPO / "notebooks", out=None) -> list[Path]:
    """Write the ``kind`` copy ("student" or "instructor") of every lesson in ``src`` to ``out``; return the paths."""
    import nbformat

    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    out = Path(out if out is not None else REPO / "build" / kind)
    paths = lessons(src)
    if not paths:
        raise ValueError(f"no notebooks {LESSON_GLOB} in {src}; pass --src with the notebooks/ folder")
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for p in paths:
        target = out / p.name
        nbformat.write(course_copy(_read(p), kind), target)
        written.append(target)
    return written


# ----------------------------------------------------------------------------------------------- running
@dataclass
class Run:
    """One notebook execution: the executed notebook, wall seconds, tries, the slowest cells, kernel CPU seconds."""

    nb: object
    seconds: float
    tries: int
    slowest: list = field(default_factory=list)  # [(seconds, cell index), ...] longest first
    cpu: float | None = None  # the kernel's user+sys CPU seconds (all threads): steadier than wall time on a busy machine


def kernel_env(quick: bool) -> dict:
    """The environment a notebook kernel gets: this one, with ``HMF_LAB_QUICK`` set to ``quick``.

    The kernel imports the same ``hmf_lab`` as this process (its folder goes first on ``PYTHONPATH``),
    so a build from a checkout runs that checkout's package, whatever is installed.

    >>> kernel_env(quick=True)["HMF_LAB_QUICK"], kernel_env(quick=False)["HMF_LAB_QUICK"]
    ('1', '0')
    """
    path = [str(REPO), *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
    return dict(os.environ, HMF_LAB_QUICK="1" if quick else "0", PYTHONPATH=os.pathsep.join(path),
                MPLBACKEND="module://matplotlib_inline.backend_inline")


def _cell_seconds(nb) -> list:
    from datetime import datetime

    out = []
    for i, c in enumerate(nb.cells):
        ex = c.get("metadata", {}).get("execution", {})
        a, b = ex.get("iopub.execute_input"), ex.get("shell.execute_reply")
        if a and b:
            t = (datetime.fromisoformat(b.replace("Z", "+00:00")) - datetime.fromisoformat(a.replace("Z", "+00:00")))
            out.append((t.total_seconds(), i))
    return sorted(out, reverse=True)


def execute(path, *, quick: bool, timeout: int = 900, cwd=None, retries: int = 1) -> Run:
    """Run the notebook at ``path`` top to bottom in a fresh ``python3`` kernel and return a :class:`Run`.

    ``timeout`` is per cell. A cell that times out or a kernel that dies (a lost message once stalled a
    notebook) gets ``retries`` fresh runs; a cell that raises is a real failure and is not retried.
    ``Run.seconds`` is the wall time of the successful try, ``Run.cpu`` the kernel's CPU seconds (read by
    one extra cell appended for the run and removed from ``Run.nb``).
    """
    from nbclient import NotebookClient
    from nbclient.exceptions import CellTimeoutError, DeadKernelError

    import nbformat.v4 as v4

    path = Path(path)
    cwd = str(cwd or path.parent)
    tries, t0 = 0, time.perf_counter()
    while True:
        tries += 1
        nb = _read(path)
        nb.cells.append(v4.new_code_cell(_CPU_PROBE))  # removed again below
        client = NotebookClient(nb, timeout=int(timeout), kernel_name="python3", store_widget_state=True,
                                resources={"metadata": {"path": cwd}})
        t0 = time.perf_counter()
        try:
            client.execute(env=kernel_env(quick))
            break
        except (CellTimeoutError, DeadKernelError) as e:
            if tries > retries:
                raise
            print(f"[course] {path.name}: {type(e).__name__} after {time.perf_counter() - t0:.0f} s; "
                  "retrying once in a fresh kernel", file=sys.stderr)
    seconds = time.perf_counter() - t0
    probe = nb.cells.pop()
    text = "".join(o.get("text", "") for o in probe.outputs if o.get("output_type") == "stream").split()
    cpu = float(text[-1]) if text else None
    return Run(nb, seconds, tries, _cell_seconds(nb)[:3], cpu)


_CPU_PROBE = "import resource as _r; _u = _r.getrusage(_r.RUSAGE_SELF); print(_u.ru_utime + _u.ru_stime)"


# ----------------------------------------------------------------------------------------------- the book
_IPYNB_LINK = re.compile(r"^(?:[^\"'#?]*/)?(\d\d_[\w.-]+?)\.(?:ipynb|py|md)(#[^\"']*)?$")


def book_href(href: str, pages: set) -> str:
    """The book's link for ``href``: a link to lesson ``NN_name`` (.ipynb, .py or .md) becomes ``NN_name.html``."""
    m = _IPYNB_LINK.match(href)
    if m and m.group(1) in pages:
        return f"{m.group(1)}.html{m.group(2) or ''}"
    return href


class _Localizer:
    """Makes a page's relative links work inside the book folder.

    A link to a lesson goes to its page; a link to another existing Markdown file (README, CONTRIBUTING,
    docs/...) goes to that file rendered as a page of its own; any other existing file (an image, a
    CSV) is copied under ``files/``. Links to missing files are left as they are (a test finds them).
    """

    def __init__(self, out: Path, pages: set, render_markdown):
        self.out, self.pages, self.render_markdown = out, pages, render_markdown
        self.done: dict[Path, str] = {}  # source file -> its name in the book
        self.taken = {"index.html", *(f"{p}.html" for p in pages)}

    def _name(self, target: Path, suffix: str) -> str:
        name, parts = target.stem + suffix, list(target.parent.parts)
        while name in self.taken and parts:
            name = parts.pop() + "_" + name
        self.taken.add(name)
        return name

    def _target(self, path: str, base: Path) -> str | None:
        target = (base / path).resolve()
        if not target.is_file():
            return None
        if target in self.done:
            return self.done[target]
        if target.suffix.lower() == ".md":
            name = self.done[target] = self._name(target, ".html")
            body = self.render_markdown(target.read_text(encoding="utf-8"), target.stem)
            (self.out / name).write_text(self(body, target.parent), encoding="utf-8")
        else:
            name = self.done[target] = "files/" + self._name(target, target.suffix)
            (self.out / "files").mkdir(exist_ok=True)
            (self.out / name).write_bytes(target.read_bytes())
        return name

    def __call__(self, page_html: str, base: Path) -> str:
        def sub(m):
            href = html.unescape(m.group(2))
            new = book_href(href, self.pages)
            if new == href and not re.match(r"^(?:[a-z][a-z0-9+.-]*:|#|/)", href, re.I):
                path, _, frag = href.partition("#")
                name = self._target(path, base) if path else None
                new = name + (f"#{frag}" if frag else "") if name else href
            return f'{m.group(1)}="{html.escape(new, quote=True)}"'

        return re.sub(r'\b(href|src)="([^"]*)"', sub, page_html)


def _title(nb, fallback: str) -> str:
    for c in nb.cells:
        if c.cell_type == "markdown":
            for line in c.source.splitlines():
                if line.startswith("# "):
                    return line[2:].strip()
    return fallback


def _exporter():
    from nbconvert import HTMLExporter

    exp = HTMLExporter(template_name="lab")
    exp.exclude_input_prompt = False
    return exp


def _nav(prev: tuple | None, nxt: tuple | None) -> str:
    parts = ["[Course index](index.html)"]
    if prev:
        parts.insert(0, f"← [{prev[1]}]({prev[0]}.html)")
    if nxt:
        parts.append(f"[{nxt[1]}]({nxt[0]}.html) →")
    return " · ".join(parts)


_PLACEHOLDER_ALT = "No description has been provided for this image"


def _figure_alts(nb, title: str) -> list[str]:
    """One alt text per image output of ``nb``, in page order: the notebook, the figure number, the code line."""
    alts = []
    for c in nb.cells:
        if c.cell_type != "code":
            continue
        code = [ln.strip() for ln in c.source.splitlines() if ln.strip() and not ln.strip().startswith("#")]
        plotting = [ln for ln in code if re.search(r"plots?\.|\.plot|plt\.|imshow|hist\(|heatmap", ln)
                    and not re.search(r"tight_layout|plt\.show|subplots\(", ln)]
        line = (plotting or code or [""])[0][:80]
        what = f"drawn by `{line}`" if line else "a plot"
        for o in c.get("outputs", []):
            if any(k in o.get("data", {}) for k in ("image/png", "image/jpeg")):
                alts.append(f"{title}, figure {len(alts) + 1}: {what}")
    return alts


def _alt_text(page_html: str, alts: list[str]) -> str:
    """Give each output figure an alt text (nbconvert's own is a placeholder, or none)."""
    it = iter(alts)

    def sub(m):
        alt = next(it, None)
        return m.group(0) if alt is None else f'<img alt="{html.escape(alt, quote=True)}"'

    page_html = re.sub(r'<img alt="' + _PLACEHOLDER_ALT + '"', sub, page_html)
    return re.sub(r"<img(?![^>]*\balt=)", sub, page_html)


@dataclass
class Book:
    """What :func:`build_book` wrote: the pages (index, the lessons, then linked Markdown files) and the runs."""

    pages: list
    runs: dict
    seconds: float


def build_book(src=REPO / "notebooks", out=None, *, syllabus=REPO / "docs" / "syllabus.md", quick: bool = False,
               timeout: int = 900, executed: dict | None = None, log=sys.stderr) -> Book:
    """Execute every lesson in ``src`` and write ``out/index.html`` (the syllabus) plus one page per lesson.

    ``quick`` runs the kernels with ``HMF_LAB_QUICK=1``. ``executed`` may map a notebook's file name to
    an already executed notebook (tests reuse their runs); the rest are executed here.
    """
    import nbformat.v4 as v4

    t_start = time.perf_counter()
    out = Path(out if out is not None else REPO / "build" / "book")
    paths = lessons(src)
    if not paths:
        raise ValueError(f"no notebooks {LESSON_GLOB} in {src}; pass --src with the notebooks/ folder")
    out.mkdir(parents=True, exist_ok=True)
    stems = {p.stem for p in paths}
    exporter = _exporter()

    def render_markdown(text: str, name: str) -> str:
        page_nb = v4.new_notebook(cells=[v4.new_markdown_cell(text)])
        return exporter.from_notebook_node(page_nb, resources={"metadata": {"name": _title(page_nb, name)}})[0]

    localize = _Localizer(out, stems, render_markdown)
    runs, titles, written = {}, {}, []
    nbs = {}
    for p in paths:
        if executed and p.name in executed:
            nbs[p.stem] = copy.deepcopy(executed[p.name])
        else:
            run = execute(p, quick=quick, timeout=timeout)
            runs[p.name] = run
            nbs[p.stem] = run.nb
            print(f"[course] {p.name}: {run.seconds:.1f} s ({'quick' if quick else 'full'} mode"
                  f"{', retried' if run.tries > 1 else ''})", file=log)
        titles[p.stem] = _title(nbs[p.stem], p.stem)
    order = [p.stem for p in paths]
    for i, stem in enumerate(order):
        nb = nbs[stem]
        prev = (order[i - 1], titles[order[i - 1]]) if i else None
        nxt = (order[i + 1], titles[order[i + 1]]) if i + 1 < len(order) else None
        nb.metadata.pop("jupytext", None)
        nb.cells.insert(0, v4.new_markdown_cell(_nav(prev, nxt)))
        body, _ = exporter.from_notebook_node(nb, resources={"metadata": {"name": titles[stem]}})
        page = out / f"{stem}.html"
        page.write_text(_alt_text(localize(body, Path(src)), _figure_alts(nb, titles[stem])), encoding="utf-8")
        written.append(page)
    # the index: the syllabus (if there is one) and a list of every page, through the same exporter
    syllabus = Path(syllabus)
    text = syllabus.read_text(encoding="utf-8") if syllabus.is_file() else "# hmf_lab: the course\n"
    mode = "quick mode (HMF_LAB_QUICK=1: smaller sizes)" if quick else "full mode"
    listing = "\n".join(f"{i + 1}. [{titles[s]}]({s}.html) (`{s}`)" for i, s in enumerate(order))
    text += f"\n\n## The notebooks in this book\n\nEach page is the notebook run top to bottom in {mode}.\n\n{listing}\n"
    index = out / "index.html"
    index.write_text(localize(render_markdown(text, "hmf_lab"), syllabus.parent), encoding="utf-8")
    extra = sorted(out / name for name in localize.done.values() if name.endswith(".html"))
    return Book([index, *written, *extra], runs, time.perf_counter() - t_start)


# ----------------------------------------------------------------------------------------------- slides
# reveal.js and what nbconvert's reveal template loads with it (require.js, jQuery, MathJax), as npm packages: `make slides` copies them
# next to the decks (build/slides/_static/) so the slides open offline. nbconvert's defaults (unpkg/cdnjs URLs)
# are used only when npm cannot fetch them (--cdn, or no npm/network): then viewing needs the network.
SLIDE_ASSETS = {  # npm package -> files (in the package) the decks load
    "reveal.js@4.0.2": ("dist", "plugin"),  # nbconvert 7's default reveal.js version
    "requirejs@2.1.10": ("require.js",),   # nbconvert's default require.js version
    "jquery@2.2.4": ("dist/jquery.min.js",),  # nbconvert's default 2.0.3 is not on npm; 2.x API, used for scrolling
    # nbconvert's default MathJax (2.7.7, TeX in, CommonHTML out): the parts that configuration loads, 4 of its 60 MB
    "mathjax@2.7.7": ("MathJax.js", "config/TeX-AMS_CHTML-full.js", "extensions", "jax/input/TeX", "jax/element",
                      "jax/output/CommonHTML", "fonts/HTML-CSS/TeX/woff", "localization/en"),
}
STATIC = "_static"
# nbconvert leaves an empty prompt column (110 px) left of every cell, which pushes text off a slide's right edge
# and reveal's white theme sizes a title for a few words, not for a lesson's title
SLIDE_CSS = ("<style>.jp-InputPrompt, .jp-OutputPrompt { display: none; } "
             ".reveal h1 { font-size: 2.0em; } .reveal h2 { font-size: 1.5em; } .reveal h3 { font-size: 1.2em; }</style>")
LIVE_NOTE = "[a live control: run this cell in JupyterLab (make lab) or open the explorer (make app)]"


def _heading_level(source: str) -> int:
    """The level of the Markdown heading a cell starts with (``# x`` is 1), 0 when it starts with none.

    >>> _heading_level("## Eckart–Young"), _heading_level("\\n### a detail"), _heading_level("plain text")
    (2, 3, 0)
    """
    first = next((ln for ln in source.splitlines() if ln.strip()), "")
    m = re.match(r"^(#{1,6})\s", first)
    return len(m.group(1)) if m else 0


def slide_types(nb):
    """``nb`` with a reveal.js slide type in every cell's ``metadata.slideshow.slide_type`` (in place; returned).

    A Markdown cell that starts with a ``#`` or ``##`` heading starts a new slide, a ``###`` (or deeper) heading a
    sub-slide; a code cell starts a sub-slide with its output (reveal.js: below the text it follows, press the down
    arrow). Text right after code stays on the code's sub-slide when it is a caption (it starts in italics,
    ``*Figure: ...*``) and starts a sub-slide of its own otherwise; other text continues the slide it is on.
    Empty cells are skipped, and a cell that already has a slide type keeps it.

    >>> import nbformat.v4 as v4
    >>> nb = v4.new_notebook(cells=[v4.new_markdown_cell("# Title"), v4.new_markdown_cell("Intro"),
    ...     v4.new_code_cell("plot()"), v4.new_markdown_cell("*Figure: ...*"), v4.new_markdown_cell("Next, ..."),
    ...     v4.new_markdown_cell("## Next"), v4.new_code_cell(""),
    ...     v4.new_code_cell("x", metadata={"slideshow": {"slide_type": "skip"}})])
    >>> [c.metadata.slideshow.slide_type for c in slide_types(nb).cells]
    ['slide', '-', 'subslide', '-', 'subslide', 'slide', 'skip', 'skip']
    """
    previous = None  # the kind of the sub-slide so far: "code" (code, perhaps with its caption) or "markdown"
    for c in nb.cells:
        given = c.metadata.get("slideshow", {}).get("slide_type")
        level = _heading_level(c.source) if c.cell_type == "markdown" else 0
        if given:
            kind = given
        elif not c.source.strip():
            kind = "skip"
        elif c.cell_type == "code":
            kind = "subslide"
        elif 1 <= level <= 2:
            kind = "slide"
        elif level >= 3:
            kind = "subslide"
        elif previous == "code" and not re.match(r"^\s*[*_]", c.source):
            kind = "subslide"
        else:
            kind = "-"
        c.metadata["slideshow"] = {"slide_type": kind}
        if kind not in ("skip", "notes"):
            previous = "code" if c.cell_type == "code" or (kind == "-" and previous == "code") else c.cell_type
    return nb


def _without_widgets(nb):
    """``nb`` with each widget output replaced by a one-line note (a deck has no kernel to drive a slider)."""
    import nbformat.v4 as v4

    nb.metadata.pop("widgets", None)
    for c in nb.cells:
        if c.cell_type != "code":
            continue
        outs, noted = [], False
        for o in c.get("outputs", []):
            if "application/vnd.jupyter.widget-view+json" in o.get("data", {}):
                if not noted:
                    outs.append(v4.new_output("stream", name="stdout", text=LIVE_NOTE + "\n"))
                    noted = True
            else:
                outs.append(o)
        c.outputs = outs
    return nb


def slide_assets(out, *, fetch: bool = True, log=sys.stderr) -> dict | None:
    """The ``SlidesExporter`` settings that load reveal.js, require.js, jQuery and MathJax from ``out/_static`` (relative URLs).

    The files are copied there once from their npm packages (``npm pack``, the npm registry); later builds reuse
    them. Returns ``None`` (nbconvert's CDN URLs: the slides then need the network to be viewed) with a message
    on ``log`` when ``fetch`` is false and the files are not there yet, or when npm is missing or fails.
    """
    import shutil
    import subprocess
    import tarfile
    import tempfile

    static = Path(out) / STATIC
    settings = {"reveal_url_prefix": f"{STATIC}/reveal.js", "require_js_url": f"{STATIC}/require.js",
                "jquery_url": f"{STATIC}/jquery.min.js",
                "mathjax_url": f"{STATIC}/mathjax/MathJax.js?config=TeX-AMS_CHTML-full,Safe"}
    wanted = [static / "reveal.js" / "dist" / "reveal.js", static / "require.js", static / "jquery.min.js",
              static / "mathjax" / "MathJax.js"]
    if all(p.is_file() for p in wanted):
        return settings
    why = ("--cdn was given" if not fetch else
           "npm is not on PATH (install Node.js, which brings npm)" if shutil.which("npm") is None else None)
    if why is None:
        with tempfile.TemporaryDirectory() as tmp:
            r = subprocess.run(["npm", "pack", "--silent", *SLIDE_ASSETS, "--pack-destination", tmp],
                               capture_output=True, text=True, timeout=300)
            if r.returncode == 0:
                for spec, members in SLIDE_ASSETS.items():
                    name, version = spec.rsplit("@", 1)
                    with tarfile.open(Path(tmp) / f"{name}-{version}.tgz") as tar:
                        keep = [m for m in tar.getmembers() if m.isfile() and any(
                            m.name == f"package/{x}" or m.name.startswith(f"package/{x}/") for x in members)]
                        for m in keep:
                            rel = m.name[len("package/"):]
                            dest = static / name / rel if name in ("reveal.js", "mathjax") else static / Path(rel).name
                            dest.parent.mkdir(parents=True, exist_ok=True)
                            dest.write_bytes(tar.extractfile(m).read())
                if all(p.is_file() for p in wanted):
                    return settings
                why = f"npm pack gave packages without {[str(p) for p in wanted if not p.is_file()]}"
            else:
                why = f"npm pack {' '.join(SLIDE_ASSETS)} failed: {(r.stderr.strip().splitlines() or ['?'])[-1]}"
    print(f"[course] slides: reveal.js, require.js, jQuery and MathJax load from unpkg.com/cdnjs when a deck is opened, "
          f"so viewing needs the network ({why}). For offline viewing run `make slides` once where npm reaches "
          f"its registry: it copies them to {static}/.", file=log)
    return None


def slides_exporter(assets: dict | None):
    """nbconvert's reveal.js exporter with the kit's settings (``assets``: from :func:`slide_assets`, or ``None``)."""
    from nbconvert import SlidesExporter

    exp = SlidesExporter(reveal_scroll=True, reveal_number="c/t", **(assets or {}))
    exp.exclude_input_prompt = True
    exp.exclude_output_prompt = True
    return exp


@dataclass
class Slides:
    """What :func:`build_slides` wrote: one deck per lesson, whether it was executed, and its runs."""

    decks: list
    executed: bool
    offline: bool  # reveal.js & co. copied next to the decks (else loaded from a CDN when viewed)
    runs: dict
    seconds: float


def build_slides(src=REPO / "notebooks", out=None, *, quick: bool = False, execute_cells: bool = True,
                 fetch: bool = True, timeout: int = 900, only=None, log=sys.stderr) -> Slides:
    """Write ``out/NN_name.slides.html``, a reveal.js deck, for every lesson in ``src`` (or those named in ``only``).

    Each deck is made from the lesson's **student** copy (no solution cells), executed top to bottom when
    ``execute_cells`` (``quick``: ``HMF_LAB_QUICK=1``), so its figures and printed numbers are on the slides and
    its check cells say "Not answered yet" rather than showing an answer. Sliders become a one-line note.
    """
    import tempfile

    import nbformat

    t_start = time.perf_counter()
    out = Path(out if out is not None else REPO / "build" / "slides")
    paths = lessons(src)
    if only is not None:
        wanted = set(only)
        paths = [p for p in paths if p.name in wanted or p.stem in wanted]
        if not paths:
            raise ValueError(f"only={sorted(wanted)!r} names none of the lessons in {src} "
                             f"({[p.stem for p in lessons(src)]}); pass lesson names such as '01_low_rank_basics'")
    if not paths:
        raise ValueError(f"no notebooks {LESSON_GLOB} in {src}; pass --src with the notebooks/ folder")
    out.mkdir(parents=True, exist_ok=True)
    exporter = slides_exporter(assets := slide_assets(out, fetch=fetch, log=log))
    runs, decks = {}, []
    with tempfile.TemporaryDirectory() as tmp:
        for p in paths:
            nb = course_copy(_read(p), "student")
            if execute_cells:
                copy_path = Path(tmp) / p.name
                nbformat.write(nb, copy_path)
                run = runs[p.name] = execute(copy_path, quick=quick, timeout=timeout, cwd=Path(src).resolve())
                nb = run.nb
                print(f"[course] {p.name}: executed in {run.seconds:.1f} s ({'quick' if quick else 'full'} mode)",
                      file=log)
            nb = slide_types(_without_widgets(nb))
            body, _ = exporter.from_notebook_node(nb, resources={"metadata": {"name": _title(nb, p.stem)}})
            deck = out / f"{p.stem}.slides.html"
            body = body.replace("</head>", SLIDE_CSS + "\n</head>", 1)
            deck.write_text(_alt_text(body, _figure_alts(nb, _title(nb, p.stem))), encoding="utf-8")
            decks.append(deck)
    return Slides(decks, execute_cells, assets is not None, runs, time.perf_counter() - t_start)


# ----------------------------------------------------------------------------------------------- CLI
def main(argv=None) -> int:
    """``python -m tools.course {student,instructor,book}``; returns the exit status."""
    from hmf_lab.factor._validation import quick_mode

    ap = argparse.ArgumentParser(prog="python -m tools.course", description=__doc__.split("\n")[0])
    ap.add_argument("what", choices=[*KINDS, "book", "slides"])
    ap.add_argument("--src", default=str(REPO / "notebooks"), help="folder of NN_*.ipynb (default: notebooks/)")
    ap.add_argument("--out", default=None, help="output folder (default: build/<what>)")
    ap.add_argument("--syllabus", default=str(REPO / "docs" / "syllabus.md"), help="the book's index page source")
    ap.add_argument("--quick", action="store_true", default=None,
                    help="run the notebooks in quick mode (default: HMF_LAB_QUICK from the environment, else full)")
    ap.add_argument("--full", dest="quick", action="store_false", help="run the notebooks in full mode")
    ap.add_argument("--timeout", type=int, default=900, help="per-cell timeout in seconds (default 900)")
    ap.add_argument("--no-execute", action="store_true",
                    help="slides: do not run the notebooks (code and text only, no figures; seconds instead of minutes)")
    ap.add_argument("--cdn", action="store_true",
                    help="slides: do not copy reveal.js next to the decks; they load it from unpkg.com when viewed")
    a = ap.parse_args(argv)
    if a.what in KINDS:
        paths = build_copies(a.what, a.src, a.out)
        print(f"wrote {len(paths)} {a.what} notebooks to {paths[0].parent}")
        return 0
    quick = quick_mode() if a.quick is None else a.quick
    if a.what == "slides":
        sl = build_slides(a.src, a.out, quick=quick, execute_cells=not a.no_execute, fetch=not a.cdn,
                          timeout=a.timeout)
        how = f"executed in {'quick' if quick else 'full'} mode" if sl.executed else "not executed"
        where = f"reveal.js from {STATIC}/ (offline)" if sl.offline else "reveal.js from unpkg.com (needs the network)"
        print(f"wrote {len(sl.decks)} slide decks to {sl.decks[0].parent} in {sl.seconds:.0f} s ({how}; {where}):")
        for p in sl.decks:
            print(f"  {p.name}")
        return 0
    book = build_book(a.src, a.out, syllabus=a.syllabus, quick=quick, timeout=a.timeout)
    print(f"wrote {len(book.pages)} pages to {book.pages[0].parent} in {book.seconds:.0f} s "
          f"({'quick' if quick else 'full'} mode):")
    for p in book.pages:
        print(f"  {p.name}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
