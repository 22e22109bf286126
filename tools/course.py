"""Course builds from the notebook series: student and instructor copies, and a static HTML book (private).

Works on whatever lessons ``notebooks/NN_*.ipynb`` exist (a glob, never a fixed list). Student copies
drop every cell tagged ``solution`` (nbconvert's ``TagRemovePreprocessor``); instructor copies keep
them. The book executes each lesson with nbclient (a per-cell timeout, and one fresh retry when a cell
times out or the kernel dies, since a lost kernel message once made one notebook stall for 600 s),
exports it with nbconvert's ``HTMLExporter`` and renders ``docs/syllabus.md`` as ``index.html``.
Command line (what ``make student``, ``make instructor`` and ``make book`` call)::

    python -m tools.course student  [--src notebooks] [--out build/student]
    python -m tools.course book     [--out build/book] [--quick] [--timeout 900]

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


# ----------------------------------------------------------------------------------------------- CLI
def main(argv=None) -> int:
    """``python -m tools.course {student,instructor,book}``; returns the exit status."""
    from hmf_lab.factor._validation import quick_mode

    ap = argparse.ArgumentParser(prog="python -m tools.course", description=__doc__.split("\n")[0])
    ap.add_argument("what", choices=[*KINDS, "book"])
    ap.add_argument("--src", default=str(REPO / "notebooks"), help="folder of NN_*.ipynb (default: notebooks/)")
    ap.add_argument("--out", default=None, help="output folder (default: build/<what>)")
    ap.add_argument("--syllabus", default=str(REPO / "docs" / "syllabus.md"), help="the book's index page source")
    ap.add_argument("--quick", action="store_true", default=None,
                    help="run the book in quick mode (default: HMF_LAB_QUICK from the environment, else full)")
    ap.add_argument("--timeout", type=int, default=900, help="per-cell timeout in seconds (default 900)")
    a = ap.parse_args(argv)
    if a.what in KINDS:
        paths = build_copies(a.what, a.src, a.out)
        print(f"wrote {len(paths)} {a.what} notebooks to {paths[0].parent}")
        return 0
    quick = quick_mode() if a.quick is None else a.quick
    book = build_book(a.src, a.out, syllabus=a.syllabus, quick=quick, timeout=a.timeout)
    print(f"wrote {len(book.pages)} pages to {book.pages[0].parent} in {book.seconds:.0f} s "
          f"({'quick' if quick else 'full'} mode):")
    for p in book.pages:
        print(f"  {p.name}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
