"""The format converters of :mod:`hmf_lab.nlp.data`: raw public files in, the registry's converted text out.

SNIPS benchmark JSON (CESU-8 tolerant) -> ``intent<TAB>words<TAB>BIO tags`` TSV (:func:`snips_to_tsv`);
the Debian SWORD Bible packages (KJV, Reina-Valera 1909) -> New Testament verse pairs
(:func:`sword_to_tsv`). Pure functions of their inputs (no network, no registry): ``hl.data`` fetches the
raw files, calls these, and checks the output's SHA-256. ``hl.data.snips_to_tsv`` / ``sword_to_tsv`` /
``SNIPS_INTENTS`` are these names.
"""
from __future__ import annotations

import functools
import io
import json
import re
import shutil
import tarfile
from pathlib import Path

__all__ = ["SNIPS_INTENTS", "snips_to_tsv", "sword_to_tsv"]

SNIPS_INTENTS = ("AddToPlaylist", "BookRestaurant", "GetWeather", "PlayMusic", "RateBook", "SearchCreativeWork",
                 "SearchScreeningEvent")


def _json_cesu8(raw: bytes, label: str):
    """Parse JSON bytes that may hold CESU-8 (surrogate pairs encoded one by one, as SNIPS' PlayMusic)."""
    try:
        text = raw.decode("utf-8", "surrogatepass")
        text = text.encode("utf-16", "surrogatepass").decode("utf-16")   # joins surrogate pairs
        return json.loads(text)
    except (UnicodeError, json.JSONDecodeError) as e:
        raise ValueError(f"{label}: not valid UTF-8/CESU-8 JSON ({e})") from None


def _snips_lines(obj, intent: str, label: str) -> list[str]:
    if not isinstance(obj, dict) or list(obj) != [intent] or not isinstance(obj[intent], list):
        raise ValueError(f"{label}: expected a JSON object with the single key {intent!r} holding a list of "
                         f"utterances, got keys {list(obj)[:5] if isinstance(obj, dict) else type(obj).__name__}")
    lines = []
    for i, utt in enumerate(obj[intent]):
        words, tags = [], []
        try:
            chunks = utt["data"]
            for chunk in chunks:
                entity = chunk.get("entity")
                for j, w in enumerate(chunk["text"].split()):
                    words.append(w)
                    tags.append("O" if not entity else f"{'B' if j == 0 else 'I'}-{entity}")
        except (KeyError, TypeError, AttributeError):
            raise ValueError(f"{label}: utterance {i} is not {{'data': [{{'text': ..., 'entity'?: ...}}]}}") from None
        lines.append(f"{intent}\t{' '.join(words)}\t{' '.join(tags)}\n")
    return lines


def snips_to_tsv(raw: dict[str, bytes]) -> dict[str, str]:
    """Convert the SNIPS benchmark JSON files to ``{"snips/train.tsv": text, "snips/test.tsv": text}``.

    ``raw`` maps file names (``train_<Intent>_full.json``, ``validate_<Intent>.json``) to their bytes.
    Each utterance becomes ``intent<TAB>words<TAB>BIO tags``: the words are each text chunk split on
    white space, joined by one space; an entity chunk's words are tagged ``B-entity I-entity ...``,
    the others ``O``. Intents in alphabetical order, utterances in file order.

    >>> chunk = {"data": [{"text": "play "}, {"text": "Daft Punk", "entity": "artist"}, {"text": "!"}]}
    >>> files = {f"{s}_{i}{x}.json": json.dumps({i: [chunk]}).encode()
    ...          for i in SNIPS_INTENTS for s, x in (("train", "_full"), ("validate", ""))}
    >>> snips_to_tsv(files)["snips/test.tsv"].splitlines()[0]
    'AddToPlaylist\\tplay Daft Punk !\\tO B-artist I-artist O'
    """
    out = {}
    for split, prefix, suffix in (("train", "train_", "_full"), ("test", "validate_", "")):
        lines = []
        for intent in sorted(SNIPS_INTENTS):
            fname = f"{prefix}{intent}{suffix}.json"
            if fname not in raw:
                raise ValueError(f"SNIPS conversion needs {fname}; got {sorted(raw)}")
            lines += _snips_lines(_json_cesu8(raw[fname], fname), intent, fname)
        out[f"snips/{split}.tsv"] = "".join(lines)
    return out


def _deb_members(deb: Path) -> dict[str, bytes]:
    """Files of a Debian package (an ``ar`` archive holding ``data.tar.*``): ``{path: bytes}``."""
    blob = deb.read_bytes()
    if not blob.startswith(b"!<arch>\n"):
        raise ValueError(f"{deb.name} is not a Debian package (no ar header)")
    pos, data = 8, None
    while pos + 60 <= len(blob):
        header = blob[pos:pos + 60]
        fname = header[:16].decode().strip().rstrip("/")
        size = int(header[48:58].decode().strip())
        if fname.startswith("data.tar"):
            data = blob[pos + 60:pos + 60 + size]
        pos += 60 + size + (size & 1)
    if data is None:
        raise ValueError(f"{deb.name} holds no data.tar.* member")
    out = {}
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        for m in tar.getmembers():
            if m.isfile():
                out[m.name.lstrip("./")] = tar.extractfile(m).read()
    return out


def sword_to_tsv(debs: dict[str, Path], work: Path) -> dict[str, str]:
    """The New Testament verse pairs (KJV English, Reina-Valera 1909 Spanish) from the SWORD packages.

    Unpacks the ``usr/share/sword`` tree of both Debian packages into ``work``, reads both modules
    with ``pysword`` (markup stripped), and pairs verse i with verse i (both use the KJV
    versification). The first line of each book is its title pair.
    """
    from pysword.modules import SwordModules

    if work.exists():
        shutil.rmtree(work)
    for deb in debs.values():
        for name, blob in _deb_members(Path(deb)).items():
            if name.startswith("usr/share/sword/"):
                dest = work / name[len("usr/share/sword/"):]
                dest.parent.mkdir(parents=True, exist_ok=True)
                dest.write_bytes(blob)
    modules = SwordModules(str(work))
    found = modules.parse_modules()
    if not set(_SWORD_MODULES) <= set(found):
        raise ValueError(f"expected the SWORD modules {list(_SWORD_MODULES)}, found {sorted(found)}")
    bibles = [modules.get_bible_from_module(m) for m in _SWORD_MODULES]
    for b in bibles:   # pysword inflates a whole book per verse read: keep the last block (measured 65 s -> 6 s)
        b._decompressed_text = functools.lru_cache(maxsize=2)(b._decompressed_text)
    return _pair_verses(*bibles)


#: module ids inside sword-text-kjv 14.3-1 and sword-text-sparv 2.60-1 (English, Spanish)
_SWORD_MODULES = ("engKJV2006eb", "spaRV1909eb")


def _strip_markup(osis: str) -> str:
    """Plain text of one OSIS entry: every tag removed (a title's text kept), white space collapsed."""
    return re.sub(r"\s+", " ", re.sub(r"<[^>]*>", "", osis)).strip()


def _pair_verses(en, es) -> dict[str, str]:
    """Book title then every verse of each New Testament book, pairs where both sides have text.

    Reads the raw entries (pysword's own cleaner drops the book titles), in versification order: a
    book's title entry sits at the book's offset, its verses at ``BookStructure.get_indicies``.
    """
    structure = en.get_structure()
    lines = []
    for book in structure.get_books()["nt"]:
        offset = structure._book_offset(book.name)
        for index in [offset] + book.get_indicies(offset=offset):
            e = _strip_markup(en._text_for_index("nt", index))
            s = _strip_markup(es._text_for_index("nt", index))
            if e and s:
                lines.append(f"{e}\t{s}\n")
    return {"translation_en_es/kjv_rv1909.nt.en-es.tsv": "".join(lines)}
