"""Data sets that fetch themselves: a registry of each real text data set, its checksum, source and licence.

Where the files come from, in order:

1. ``HMF_LAB_DATA``: a local folder with the converted files (``tinyshakespeare/input.txt``,
   ``snips/train.tsv``, ...). When set, it is where the files are read from and where
   :func:`fetch` writes them;
2. otherwise the user cache folder (``platformdirs.user_cache_dir("hmf_lab")/data``).

A missing file is fetched on first access (unless ``HMF_LAB_OFFLINE=1``): from ``HMF_LAB_DATA_URL``
when set (a mirror, e.g. a classroom server, serving the converted files in the same layout), else from
the data set's public source, converted in code (SNIPS JSON -> TSV, SWORD Bible modules -> verse
pairs). Downloads go through pooch; every converted file is checked against the SHA-256 in the
registry, every time it is read (hashing costs ~1 ms per MB, measured, so nothing is cached).
A wrong download is deleted and rejected with an error that names its source; a download goes to a
temporary file and replaces the file in place only once verified, so a failed fetch loses nothing.
``HMF_LAB_OFFLINE=1`` means no network at all: :func:`fetch` then refuses to download, saying so.

Notebooks ask :func:`available` before their live cells and print :func:`skip_note` otherwise.
This module is the registry, the folders, fetching and the loaders; the format converters
(:func:`snips_to_tsv`, :func:`sword_to_tsv`, re-exported here) live in :mod:`hmf_lab.nlp._converters`.
``pydoc_data.topics`` (shipped with every CPython) is an always-present fallback corpus for tests.

>>> import hmf_lab as hl
>>> sorted(hl.data.DATASETS)
['snips', 'tinyshakespeare', 'translation_en_es']
>>> len(hl.data.fallback_text()) > 100_000
True
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

from hmf_lab.nlp._converters import SNIPS_INTENTS, snips_to_tsv, sword_to_tsv

__all__ = ["Dataset", "DATASETS", "data_dir", "cache_dir", "path", "verify", "available", "skip_note", "fetch",
           "load_text", "load_snips", "load_translation", "fallback_text", "registry_json",
           "snips_to_tsv", "sword_to_tsv", "SNIPS_INTENTS", "ENV_DIR", "ENV_URL", "ENV_OFFLINE"]

#: a local folder with the converted files (read from there; :func:`fetch` writes there)
ENV_DIR = "HMF_LAB_DATA"
#: a mirror base URL serving the converted files in the same layout (pooch ``base_url``)
ENV_URL = "HMF_LAB_DATA_URL"
#: set to 1 to never download (missing data then raises / :func:`available` says False)
ENV_OFFLINE = "HMF_LAB_OFFLINE"

#: sonos/nlu-benchmark commit the SNIPS JSON files are downloaded from (SNIPS_INTENTS: the converters' list)
SNIPS_COMMIT = "997306f09d1f518d7149094584b18aa42520affd"
_SNIPS_BASE = f"https://raw.githubusercontent.com/sonos/nlu-benchmark/{SNIPS_COMMIT}/2017-06-custom-intent-engines"
_DEBIAN = "https://deb.debian.org/debian/pool/main/s"


@dataclass(frozen=True)
class Dataset:
    """One registered data set: its converted files (relative path -> SHA-256), raw sources, provenance.

    ``raw`` maps each file downloaded from the public source to ``[url, sha256 or ""]`` ("" when the
    upstream file has no published checksum: then the converted output's SHA-256 is what is checked);
    ``convert`` names the conversion (``"copy"``, ``"snips"``, ``"sword"``).
    """

    name: str
    task: str
    files: dict = field(default_factory=dict)   # relative path -> sha256 hex (of the converted file)
    source: str = ""                            # where it comes from, in words
    licence: str = ""
    notes: str = ""
    raw: dict = field(default_factory=dict)     # raw file name -> [url, sha256 or ""]
    convert: str = "copy"


DATASETS: dict[str, Dataset] = {
    "tinyshakespeare": Dataset(
        name="tinyshakespeare", task="character-level language modelling",
        files={"tinyshakespeare/input.txt":
               "86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed"},
        source="https://raw.githubusercontent.com/karpathy/char-rnn/6f9487a6fe5b420b7ca9afb0d7c078e37c1d1b4e/"
               "data/tinyshakespeare/input.txt",
        licence="text public domain (Shakespeare); collection MIT (karpathy/char-rnn Readme)",
        notes="1,115,394 characters, 40,000 lines, plain UTF-8",
        raw={"input.txt": ["https://raw.githubusercontent.com/karpathy/char-rnn/"
                           "6f9487a6fe5b420b7ca9afb0d7c078e37c1d1b4e/data/tinyshakespeare/input.txt",
                           "86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed"]},
        convert="copy"),
    "snips": Dataset(
        name="snips", task="intent detection (7 intents)",
        files={"snips/train.tsv": "397b3648743f0116f5565efc8b094e7fb357d6faf2e8379707bf92f12ba7325d",
               "snips/test.tsv": "9b07babf3e46a687e5f3245a41b2e820a900e464e244eb4d93d488ff044c8d58"},
        source=f"https://github.com/sonos/nlu-benchmark/tree/{SNIPS_COMMIT}/2017-06-custom-intent-engines "
               "(train = train_*_full.json, test = validate_*.json; converted to TSV)",
        licence="CC0 1.0 (cite Coucke et al. 2018, arXiv:1805.10190)",
        notes="intent<TAB>text<TAB>BIO tags; 13,784 train / 700 test utterances",
        raw={f"{split}_{intent}{suffix}.json": [f"{_SNIPS_BASE}/{intent}/{split}_{intent}{suffix}.json", ""]
             for intent in SNIPS_INTENTS for split, suffix in (("train", "_full"), ("validate", ""))},
        convert="snips"),
    "translation_en_es": Dataset(
        name="translation_en_es", task="translation English -> Spanish (verse pairs)",
        files={"translation_en_es/kjv_rv1909.nt.en-es.tsv":
               "6660bf32f9ff2d1065211d04d593c50312258c86bfe1921ea0b8d418868e027f"},
        source="Debian bookworm packages sword-text-kjv 14.3-1 and sword-text-sparv 2.60-1 "
               "(https://packages.debian.org/bookworm/sword-text-kjv, "
               "https://packages.debian.org/bookworm/sword-text-sparv); New Testament, verse i aligned with verse i",
        licence="public domain (King James Version; Reina-Valera 1909), per debian/copyright",
        notes="english<TAB>spanish, 7982 verse pairs, first lines are book titles, markup stripped",
        raw={"sword-text-kjv_14.3-1_all.deb": [
                 f"{_DEBIAN}/sword-text-kjv/sword-text-kjv_14.3-1_all.deb",
                 "9f463f28ce665f6f528fc723179722bced880a4c5485f7a41bf742838315de57"],
             "sword-text-sparv_2.60-1_all.deb": [
                 f"{_DEBIAN}/sword-text-sparv/sword-text-sparv_2.60-1_all.deb",
                 "5c87f9b2bc97457e8a872f5bae7ea7ce59cb3de1dcee73e4d4740451863694cf"]},
        convert="sword"),
}


# ------------------------------------------------------------------------------------------ folders

def _offline() -> bool:
    return os.environ.get(ENV_OFFLINE, "").strip().lower() not in ("", "0", "false", "no", "off")


def cache_dir() -> Path:
    """The user cache folder of hmf_lab (``platformdirs.user_cache_dir("hmf_lab")``).

    >>> cache_dir().name
    'hmf_lab'
    """
    import platformdirs
    return Path(platformdirs.user_cache_dir("hmf_lab", appauthor=False))


def data_dir() -> Path:
    """The folder of the converted data files: ``$HMF_LAB_DATA``, else ``cache_dir() / "data"``.

    >>> isinstance(data_dir(), Path)
    True
    """
    env = os.environ.get(ENV_DIR)
    if not env:
        return cache_dir() / "data"
    try:
        folder = Path(env).expanduser()
    except RuntimeError:   # "~nouser/x": no such user to expand
        raise ValueError(f"{ENV_DIR}={env!r} starts with a '~user' that does not exist on this machine; set "
                         f"{ENV_DIR} to a folder path (e.g. an absolute path, or ~/data for your own home), "
                         f"or unset it to use the cache {cache_dir() / 'data'}") from None
    for part in (folder, *folder.parents):   # the folder, or the nearest part of its path that exists
        if part.exists():
            if not part.is_dir():
                where = "points at a file" if part == folder else f"goes through the file {str(part)!r}"
                raise ValueError(f"{ENV_DIR}={env!r} {where}, not a folder; set {ENV_DIR} to the folder that "
                                 f"holds (or will hold) {', '.join(sorted({r.split('/')[0] for d in DATASETS.values() for r in d.files}))}/ "
                                 f"or unset it to use the cache {cache_dir() / 'data'}")
            break
    return folder


def _get(name: str) -> Dataset:
    if not isinstance(name, str):
        raise TypeError(f"data set name must be a str, got {type(name).__name__}")
    if name not in DATASETS:
        raise ValueError(f"unknown data set {name!r}; expected one of {sorted(DATASETS)}")
    return DATASETS[name]


def _sha256(p: Path) -> str:
    h = hashlib.sha256()
    with open(p, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _how_to_get(name: str) -> str:
    first = (f"turn offline mode off (unset {ENV_OFFLINE} or set it to 0) and run hl.data.fetch({name!r})"
             if _offline() else f"run hl.data.fetch({name!r}) with network access")
    return (f"{first}, set {ENV_DIR} to a folder holding "
            f"{', '.join(_get(name).files)}, or set {ENV_URL} to a mirror serving that layout")


def _offline_error(name: str) -> FileNotFoundError:
    return FileNotFoundError(
        f"data set {name!r} was not downloaded: offline mode is on ({ENV_OFFLINE}="
        f"{os.environ.get(ENV_OFFLINE, '')!r}), so hl.data.fetch never touches the network. To download it, unset "
        f"{ENV_OFFLINE} (or set it to 0); or set {ENV_DIR} to a folder holding {', '.join(_get(name).files)}")


def _check_not_a_folder(name: str, p: Path) -> None:
    """A folder (or anything else that is not a regular file) where a data file should be: say so."""
    if p.exists() and not p.is_file():
        kind = "a folder" if p.is_dir() else "not a regular file"
        raise ValueError(f"data set {name!r}: {p} is {kind}, where the data file should be; move or delete it "
                         f"(hl.data.fetch({name!r}) then downloads the file), or set {ENV_DIR} to another folder")


# ------------------------------------------------------------------------------------------- lookup

def path(name: str, file: str | None = None, *, check: bool = True, download: bool | None = None) -> Path:
    """Path of a registered data-set file, fetched when missing and checked against its SHA-256.

    ``file`` is the relative path in the registry (default: the data set's first file). A missing
    file is fetched with :func:`fetch` unless ``download=False`` or ``HMF_LAB_OFFLINE=1``. The
    checksum is computed on every call (about 1 ms per MB), so an edited file is always caught.

    >>> path("tinyshakespeare").name  # doctest: +SKIP
    'input.txt'
    """
    ds = _get(name)
    rel = file if file is not None else next(iter(ds.files))
    if rel not in ds.files:
        raise ValueError(f"data set {name!r} has no file {rel!r}; expected one of {sorted(ds.files)}")
    p = data_dir() / rel
    _check_not_a_folder(name, p)
    if not p.is_file():
        if download is None:
            download = not _offline()
        if not download:
            off = f" (downloads are off: {ENV_OFFLINE}=1)" if _offline() else ""
            raise FileNotFoundError(
                f"data set {name!r}: file {p} is missing{off}. "
                f"Source: {ds.source} (licence: {ds.licence}). To get it: {_how_to_get(name)}.")
        fetch(name)
    if check:
        got = _sha256(p)
        if got != ds.files[rel]:
            raise ValueError(
                f"data set {name!r}: file {p} is corrupt or a different version: SHA-256 {got}, "
                f"expected {ds.files[rel]}. Delete it and download it again: hl.data.fetch({name!r}) "
                f"(source: {ds.source}).")
    return p


def verify(name: str | None = None) -> dict[str, bool]:
    """Check every file of one data set (or all) against the registry, without downloading.

    Returns ``{relative path: ok}``.

    >>> isinstance(verify, object)
    True
    """
    names = [name] if name is not None else list(DATASETS)
    out = {}
    for n in names:
        for rel in _get(n).files:
            try:
                path(n, rel, download=False)
                out[rel] = True
            except (FileNotFoundError, ValueError):
                out[rel] = False
    return out


#: the last reason each data set was not available (shown by :func:`skip_note`)
_WHY: dict[str, str] = {}


def available(name: str, *, download: bool | None = None) -> bool:
    """True when data set ``name`` can be loaded now without error (every file present and verified).

    "Available" means loadable now: a missing data set is first fetched (see :func:`fetch`) unless
    ``download=False`` or ``HMF_LAB_OFFLINE=1``; a failed fetch (no network) gives False, not an
    error, and :func:`skip_note` says why. A failed download is not retried within the same Python
    session (call :func:`fetch` to retry), so notebooks can ask as often as they like.

    >>> import hmf_lab as hl
    >>> hl.data.available("tinyshakespeare", download=False) in (True, False)
    True
    """
    ds = _get(name)
    missing = False
    try:
        for rel in ds.files:
            path(name, rel, download=False)
        _WHY.pop(name, None)
        return True
    except FileNotFoundError as e:
        _WHY[name], missing = str(e).split(". ")[0], True
    except (ValueError, OSError) as e:   # corrupt file, a folder in its place, a bad HMF_LAB_DATA: say that
        _WHY[name] = str(e).split(". ")[0]
    if download is None:
        if _offline():             # offline mode: the note says so (not an older download failure)
            return False
        if name in _FAILED:        # tried and failed in this session: say why, do not retry
            if missing:
                _WHY[name] = _FAILED[name]
            return False
        download = True
    if not download:
        return False
    try:
        fetch(name)
        for rel in ds.files:
            path(name, rel, download=False)
    except (FileNotFoundError, ValueError, OSError) as e:
        _WHY[name] = str(e).split(". ")[0]
        return False
    _WHY.pop(name, None)
    return True


def skip_note(name: str) -> str:
    """One line for a notebook or a skipped test: which live cells were skipped and how to get the data.

    >>> import hmf_lab as hl
    >>> "hl.data.fetch('snips')" in hl.data.skip_note("snips")
    True
    """
    ds = _get(name)
    why = _WHY.get(name) or _FAILED.get(name) or "not checked yet"
    why = re.sub(r"https?://([^/\s]+)\S*", r"\1", why)   # one line: hosts, not whole URLs
    return (f"Skipped the live cells that need the {name!r} data set ({ds.task}): {why}. "
            f"To run them: {_how_to_get(name)}.")


# -------------------------------------------------------------------------------------------- fetch

_FAILED: dict[str, str] = {}   # name -> why the last automatic download failed (this session)


def _retrieve(url: str, known_hash: str | None, dest: Path, source_label: str) -> Path:
    """Download ``url`` to ``dest`` with pooch, SHA-256 verified when ``known_hash`` is given."""
    import pooch

    dest.parent.mkdir(parents=True, exist_ok=True)
    from hmf_lab.factor._validation import quick_mode
    downloader = pooch.HTTPDownloader(progressbar=not quick_mode(), timeout=30)
    try:
        got = pooch.retrieve(url, known_hash=f"sha256:{known_hash}" if known_hash else None, fname=dest.name,
                             path=dest.parent, downloader=downloader)
    except ValueError as e:   # pooch: hash mismatch (the downloaded file is deleted)
        dest.unlink(missing_ok=True)
        raise ValueError(f"download of {url} ({source_label}) was rejected and deleted: its SHA-256 does not "
                         f"match the registry ({e}). The source or the mirror serves a different or corrupt "
                         f"file.") from None
    except Exception as e:  # network errors (requests.ConnectionError, HTTPError, timeouts)
        dest.unlink(missing_ok=True)
        raise FileNotFoundError(f"could not download from {url} ({source_label}): {_net_reason(e)}") from None
    return Path(got)


def _net_reason(e: Exception) -> str:
    """A short reason for a failed download (no network, HTTP status, timeout)."""
    import requests

    if isinstance(e, requests.HTTPError) and e.response is not None:
        return f"HTTP {e.response.status_code} {e.response.reason}"
    if isinstance(e, requests.Timeout):
        return "timed out"
    if isinstance(e, requests.ConnectionError):
        return "no network connection"
    return f"{type(e).__name__}: {str(e)[:120]}"


def _install(tmp: Path, dest: Path, sha: str, label: str) -> None:
    """Move a downloaded or converted file into place if its SHA-256 matches; else delete it and raise (the
    file already in place, if any, is left as it was)."""
    got = _sha256(tmp)
    if got != sha:
        tmp.unlink(missing_ok=True)
        raise ValueError(f"the file converted from {label} does not match the registry: SHA-256 {got}, "
                         f"expected {sha}; it was deleted. The source may have changed; use a mirror "
                         f"({ENV_URL}) or a local copy ({ENV_DIR}).")
    dest.parent.mkdir(parents=True, exist_ok=True)
    os.replace(tmp, dest)


def fetch(name: str, *, force: bool = False) -> dict[str, Path]:
    """Download data set ``name``, convert it, verify it and store it in :func:`data_dir`.

    From ``HMF_LAB_DATA_URL`` when set (the converted files, same layout), else from the public
    source (converted here). Files already present and verified are kept unless ``force=True``.
    Every file is downloaded (or converted) into a temporary file beside its place and moved into
    place only after its SHA-256 matches the registry, so a failed download (no network, HTTP error,
    truncated, wrong file) never costs a good copy, even with ``force=True``. Returns
    ``{relative path: local path}``. A download or a converted file whose SHA-256 differs from the
    registry is deleted and raises ``ValueError`` naming the source; no network raises
    ``FileNotFoundError``; so does offline mode (``HMF_LAB_OFFLINE=1``) when anything is missing or
    ``force=True``: it never touches the network.

    >>> paths = fetch("tinyshakespeare")  # doctest: +SKIP
    """
    ds = _get(name)
    if not isinstance(force, bool):
        raise TypeError(f"force must be True or False, got {type(force).__name__} {force!r}; pass force=True to "
                        f"download again files that are present and verified")
    try:
        root = data_dir()
        for rel in ds.files:
            _check_not_a_folder(name, root / rel)
        todo = {rel: sha for rel, sha in ds.files.items()
                if force or not (root / rel).is_file() or _sha256(root / rel) != sha}
        if todo and _offline():
            raise _offline_error(name)
        if todo:
            root.mkdir(parents=True, exist_ok=True)
            work = Path(tempfile.mkdtemp(prefix=".fetch-", dir=root))   # same file system: os.replace is atomic
            try:
                mirror = os.environ.get(ENV_URL, "").strip()
                if mirror:
                    for rel, sha in todo.items():
                        label = f"mirror {ENV_URL}={mirror}"
                        got = _retrieve(mirror.rstrip("/") + "/" + rel, sha, work / rel, label)
                        _install(got, root / rel, sha, label)
                else:
                    _fetch_source(ds, root, todo, work)
            finally:
                shutil.rmtree(work, ignore_errors=True)
    except (FileNotFoundError, ValueError, OSError) as e:
        _FAILED[name] = str(e).split(". ")[0]
        raise
    _FAILED.pop(name, None)
    _WHY.pop(name, None)
    return {rel: root / rel for rel in ds.files}


def _fetch_source(ds: Dataset, root: Path, todo: dict, work: Path) -> None:
    """Download (and convert) ``todo``'s files into ``work``; each goes to ``root`` once its SHA-256 matches."""
    raw_dir = cache_dir() / "raw" / ds.name
    label = f"the public source of {ds.name!r} ({ds.source[:80]})"
    if ds.convert == "copy":
        (rel, sha), = ds.files.items()
        (fname, (url, _)), = ds.raw.items()
        got = _retrieve(url, sha, work / rel, f"public source of {ds.name!r}")
        _install(got, root / rel, sha, label)
        return
    raws = {fname: _retrieve(url, sha or None, raw_dir / fname, f"public source of {ds.name!r}")
            for fname, (url, sha) in ds.raw.items()}
    if ds.convert == "snips":
        outputs = snips_to_tsv({f: p.read_bytes() for f, p in raws.items()})
    elif ds.convert == "sword":
        outputs = sword_to_tsv(raws, work=raw_dir / "unpacked")
    else:  # pragma: no cover - registry entries are fixed above
        raise ValueError(f"unknown conversion {ds.convert!r}")
    for rel, text in outputs.items():
        if rel not in todo:
            continue
        tmp = work / (rel + ".part")
        tmp.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_bytes(text.encode("utf-8"))
        _install(tmp, root / rel, ds.files[rel], label)


# ------------------------------------------------------------------------------------------ loaders

def load_text(name: str = "tinyshakespeare") -> str:
    """The whole text of a plain-text data set (Tiny Shakespeare), fetched on first use.

    >>> text = load_text()  # doctest: +SKIP
    """
    if _get(name).name != "tinyshakespeare":
        raise ValueError(f"load_text reads plain-text data sets ('tinyshakespeare'), got {name!r}; "
                         f"use load_snips or load_translation")
    return path(name).read_text(encoding="utf-8")


def load_snips(split: str = "train") -> list[tuple[str, str]]:
    """SNIPS utterances as ``(intent, text)`` pairs; ``split`` is "train" or "test".

    >>> pairs = load_snips("test")  # doctest: +SKIP
    """
    if not isinstance(split, str) or split not in ("train", "test"):  # a str check first: arrays compare elementwise
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    out = []
    for line in path("snips", f"snips/{split}.tsv").read_text(encoding="utf-8").splitlines():
        if line.strip():
            parts = line.split("\t")
            out.append((parts[0], parts[1]))
    return out


def load_translation() -> list[tuple[str, str]]:
    """English–Spanish verse pairs as ``(english, spanish)``.

    >>> pairs = load_translation()  # doctest: +SKIP
    """
    out = []
    for line in path("translation_en_es").read_text(encoding="utf-8").splitlines():
        parts = line.split("\t")
        if len(parts) == 2 and parts[0].strip() and parts[1].strip():
            out.append((parts[0].strip(), parts[1].strip()))
    return out


def fallback_text() -> str:
    """An always-present English corpus: Python's own ``pydoc_data.topics`` help text (for tests).

    >>> "class" in fallback_text()
    True
    """
    from pydoc_data.topics import topics
    return "\n".join(topics[k] for k in sorted(topics))


def registry_json() -> str:
    """The registry as JSON text (what ``hmf_lab/assets/datasets.json`` holds).

    >>> import json; sorted(json.loads(registry_json()))
    ['snips', 'tinyshakespeare', 'translation_en_es']
    """
    return json.dumps({k: asdict(v) for k, v in DATASETS.items()}, indent=2, ensure_ascii=False) + "\n"
