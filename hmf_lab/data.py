"""Data-set registry: where each real text data set lives, its checksum, source and licence.

The folder comes from ``HMF_LAB_DATA``; without it, ``../shared/data`` beside the repository when it
exists, else a per-user cache folder. A missing or corrupt file raises a clear error that names the
public source to download it from. ``pydoc_data.topics`` (shipped with every CPython) is an
always-present fallback corpus for tests.

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
from dataclasses import asdict, dataclass, field
from pathlib import Path

__all__ = ["Dataset", "DATASETS", "data_dir", "path", "verify", "load_text", "load_snips",
           "load_translation", "fallback_text", "registry_json"]

_REPO = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Dataset:
    """One registered data set: its files (relative path -> SHA-256), provenance and licence."""

    name: str
    task: str
    files: dict = field(default_factory=dict)   # relative path -> sha256 hex
    source: str = ""                            # public URL to download from
    licence: str = ""
    notes: str = ""


DATASETS: dict[str, Dataset] = {
    "tinyshakespeare": Dataset(
        name="tinyshakespeare", task="character-level language modelling",
        files={"tinyshakespeare/input.txt":
               "86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed"},
        source="https://raw.githubusercontent.com/karpathy/char-rnn/6f9487a6fe5b420b7ca9afb0d7c078e37c1d1b4e/"
               "data/tinyshakespeare/input.txt",
        licence="text public domain (Shakespeare); collection MIT (karpathy/char-rnn Readme)",
        notes="1,115,394 characters, 40,000 lines, plain UTF-8"),
    "snips": Dataset(
        name="snips", task="intent detection (7 intents)",
        files={"snips/train.tsv": "397b3648743f0116f5565efc8b094e7fb357d6faf2e8379707bf92f12ba7325d",
               "snips/test.tsv": "9b07babf3e46a687e5f3245a41b2e820a900e464e244eb4d93d488ff044c8d58"},
        source="https://github.com/sonos/nlu-benchmark/tree/master/2017-06-custom-intent-engines "
               "(train = train_*_full.json, test = validate_*.json; converted to TSV)",
        licence="CC0 1.0 (cite Coucke et al. 2018, arXiv:1805.10190)",
        notes="intent<TAB>text<TAB>BIO tags; 13,784 train / 700 test utterances"),
    "translation_en_es": Dataset(
        name="translation_en_es", task="translation English -> Spanish (verse pairs)",
        files={"translation_en_es/kjv_rv1909.nt.en-es.tsv":
               "6660bf32f9ff2d1065211d04d593c50312258c86bfe1921ea0b8d418868e027f"},
        source="Debian bookworm packages sword-text-kjv 14.3-1 and sword-text-sparv 2.60-1 "
               "(https://packages.debian.org/bookworm/sword-text-kjv, "
               "https://packages.debian.org/bookworm/sword-text-sparv); New Testament, verse i aligned with verse i",
        licence="public domain (King James Version; Reina-Valera 1909), per debian/copyright",
        notes="english<TAB>spanish, 7982 verse pairs, first lines are book titles, markup stripped"),
}


def data_dir() -> Path:
    """The data folder: ``$HMF_LAB_DATA``, else ``../shared/data`` beside the repo, else a user cache dir.

    >>> isinstance(data_dir(), Path)
    True
    """
    env = os.environ.get("HMF_LAB_DATA")
    if env:
        return Path(env).expanduser()
    shared = _REPO.parent / "shared" / "data"
    if shared.is_dir():
        return shared
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "hmf_lab" / "data"


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


_VERIFIED: set = set()


def path(name: str, file: str | None = None, *, check: bool = True) -> Path:
    """Path of a registered data-set file, checked to exist and to match its SHA-256.

    ``file`` is the relative path in the registry (default: the data set's first file).

    >>> path("tinyshakespeare").name  # doctest: +SKIP
    'input.txt'
    """
    ds = _get(name)
    rel = file if file is not None else next(iter(ds.files))
    if rel not in ds.files:
        raise ValueError(f"data set {name!r} has no file {rel!r}; expected one of {sorted(ds.files)}")
    p = data_dir() / rel
    if not p.is_file():
        raise FileNotFoundError(
            f"data set {name!r}: file {p} is missing. Download it from {ds.source} "
            f"(licence: {ds.licence}) and place it at {p}, or set HMF_LAB_DATA to the folder that holds {rel}.")
    if check and (str(p), p.stat().st_mtime) not in _VERIFIED:
        got = _sha256(p)
        if got != ds.files[rel]:
            raise ValueError(
                f"data set {name!r}: file {p} is corrupt or a different version: SHA-256 {got}, "
                f"expected {ds.files[rel]}. Download it again from {ds.source}.")
        _VERIFIED.add((str(p), p.stat().st_mtime))
    return p


def verify(name: str | None = None) -> dict[str, bool]:
    """Check every file of one data set (or all) against the registry; returns ``{relative path: ok}``.

    >>> isinstance(verify, object)
    True
    """
    names = [name] if name is not None else list(DATASETS)
    out = {}
    for n in names:
        for rel in _get(n).files:
            try:
                path(n, rel)
                out[rel] = True
            except (FileNotFoundError, ValueError):
                out[rel] = False
    return out


def load_text(name: str = "tinyshakespeare") -> str:
    """The whole text of a plain-text data set (Tiny Shakespeare).

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
    if split not in ("train", "test"):
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
    """The registry as JSON text (what ``data/datasets.json`` holds).

    >>> import json; sorted(json.loads(registry_json()))
    ['snips', 'tinyshakespeare', 'translation_en_es']
    """
    return json.dumps({k: asdict(v) for k, v in DATASETS.items()}, indent=2, ensure_ascii=False) + "\n"
