"""Data that fetches itself, against a local HTTP server (no network): mirror, public-source conversion,
corrupted downloads rejected and deleted, no network -> a clear message, never a crash."""
from __future__ import annotations

import functools
import hashlib
import http.server
import json
import threading
from pathlib import Path

import pytest

from hmf_lab.nlp import _converters, data


@pytest.fixture
def serve():
    """``serve(folder) -> base URL``: a threaded static HTTP server on localhost."""
    servers = []

    def start(folder: Path) -> str:
        handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(folder))
        handler.log_message = lambda *a, **k: None
        httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=httpd.serve_forever, daemon=True).start()
        servers.append(httpd)
        return f"http://127.0.0.1:{httpd.server_address[1]}"

    yield start
    for s in servers:
        s.shutdown()
        s.server_close()


@pytest.fixture
def cache(monkeypatch, tmp_path):
    """A fresh user cache and no HMF_LAB_DATA: the code's defaults."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("HMF_LAB_DATA", raising=False)
    monkeypatch.delenv("HMF_LAB_DATA_URL", raising=False)
    monkeypatch.delenv("HMF_LAB_OFFLINE", raising=False)
    monkeypatch.setattr(data, "_FAILED", {})
    monkeypatch.setattr(data, "_WHY", {})
    return tmp_path / "cache" / "hmf_lab"


TEXT = "First Citizen:\nBefore we proceed any further, hear me speak.\n" * 50


def _sha(b: bytes) -> str:
    return hashlib.sha256(b).hexdigest()


def _fake_text_dataset(monkeypatch, url: str, sha: str):
    ds = data.Dataset(name="tinyshakespeare", task="character-level language modelling",
                      files={"tinyshakespeare/input.txt": sha}, source=url, licence="test",
                      raw={"input.txt": [url, sha]}, convert="copy")
    monkeypatch.setitem(data.DATASETS, "tinyshakespeare", ds)


def test_public_source_download_on_first_access(serve, cache, monkeypatch, tmp_path):
    (tmp_path / "www").mkdir()
    (tmp_path / "www" / "input.txt").write_text(TEXT)
    _fake_text_dataset(monkeypatch, serve(tmp_path / "www") + "/input.txt", _sha(TEXT.encode()))
    assert data.load_text() == TEXT                                  # fetched on first access
    assert (cache / "data" / "tinyshakespeare" / "input.txt").read_text() == TEXT
    assert data.available("tinyshakespeare", download=False)


def test_corrupted_download_is_rejected_deleted_and_named(serve, cache, monkeypatch, tmp_path):
    (tmp_path / "www").mkdir()
    (tmp_path / "www" / "input.txt").write_text(TEXT.replace("Citizen", "Citizem", 1))   # one byte off
    url = serve(tmp_path / "www") + "/input.txt"
    _fake_text_dataset(monkeypatch, url, _sha(TEXT.encode()))
    with pytest.raises(ValueError, match=r"download of http://127\.0\.0\.1:\d+/input\.txt .*rejected and deleted"):
        data.fetch("tinyshakespeare")
    assert not (cache / "data" / "tinyshakespeare" / "input.txt").exists()
    assert not any((cache / "data").rglob("*.txt"))
    assert data.available("tinyshakespeare") is False
    assert "rejected" in data.skip_note("tinyshakespeare")


def test_snips_is_converted_from_its_json(serve, cache, monkeypatch, tmp_path):
    www = tmp_path / "www"
    www.mkdir()
    utt = {"data": [{"text": "add "}, {"text": "Daft Punk", "entity": "artist"}, {"text": " to my "},
                    {"text": "Café 🍕 Mix", "entity": "playlist"}, {"text": "?"}]}
    raw = {}
    for intent in data.SNIPS_INTENTS:
        for split, suffix in (("train", "_full"), ("validate", "")):
            body = json.dumps({intent: [utt, utt]}, ensure_ascii=False).encode("utf-8")
            if intent == "PlayMusic":   # upstream stores this emoji as CESU-8 (two encoded surrogates)
                body = body.replace("🍕".encode("utf-8"), b"\xed\xa0\xbc\xed\xbd\x95")
            (www / f"{split}_{intent}{suffix}.json").write_bytes(body)
            raw[f"{split}_{intent}{suffix}.json"] = body
    expected = data.snips_to_tsv(raw)
    line = "AddToPlaylist\tadd Daft Punk to my Café 🍕 Mix ?\tO B-artist I-artist O O B-playlist I-playlist I-playlist O\n"
    assert expected["snips/test.tsv"].startswith(line * 2)
    assert "PlayMusic\tadd Daft Punk to my Café 🍕 Mix ?" in expected["snips/train.tsv"]
    base = serve(www)
    ds = data.Dataset(name="snips", task="intent", source=base, licence="test", convert="snips",
                      files={rel: _sha(text.encode()) for rel, text in expected.items()},
                      raw={f: [f"{base}/{f}", ""] for f in raw})
    monkeypatch.setitem(data.DATASETS, "snips", ds)
    pairs = data.load_snips("test")
    assert pairs[0] == ("AddToPlaylist", "add Daft Punk to my Café 🍕 Mix ?") and len(pairs) == 14
    # a converted output that does not match the registry is deleted and rejected, naming the source
    monkeypatch.setitem(data.DATASETS, "snips", data.Dataset(**{**ds.__dict__, "files": {
        "snips/train.tsv": "0" * 64, "snips/test.tsv": ds.files["snips/test.tsv"]}}))
    good = (cache / "data" / "snips" / "train.tsv").read_bytes()
    with pytest.raises(ValueError, match="converted from the public source of 'snips'.*deleted"):
        data.fetch("snips", force=True)
    # the rejected conversion is deleted; the file in place stays (it no longer matches this registry, so
    # reading it is refused, but a failed fetch deletes nothing it did not write)
    assert (cache / "data" / "snips" / "train.tsv").read_bytes() == good
    assert not list((cache / "data").rglob("*.part")) and not list((cache / "data").glob(".fetch-*"))


def test_snips_conversion_errors():
    with pytest.raises(ValueError, match="SNIPS conversion needs train_AddToPlaylist_full.json"):
        data.snips_to_tsv({})
    files = {f"{s}_{i}{x}.json": json.dumps({i: []}).encode()
             for i in data.SNIPS_INTENTS for s, x in (("train", "_full"), ("validate", ""))}
    files["validate_GetWeather.json"] = json.dumps({"Other": []}).encode()
    with pytest.raises(ValueError, match="validate_GetWeather.json: expected a JSON object with the single key 'GetWeather'"):
        data.snips_to_tsv(files)
    files["validate_GetWeather.json"] = b"\xff not json"
    with pytest.raises(ValueError, match="validate_GetWeather.json: not valid UTF-8/CESU-8 JSON"):
        data.snips_to_tsv(files)
    files["validate_GetWeather.json"] = json.dumps({"GetWeather": [{"nodata": 1}]}).encode()
    with pytest.raises(ValueError, match="utterance 0 is not"):
        data.snips_to_tsv(files)


def test_deb_reader_rejects_non_packages(tmp_path):
    f = tmp_path / "x.deb"
    f.write_bytes(b"not an archive")
    with pytest.raises(ValueError, match="x.deb is not a Debian package"):
        _converters._deb_members(f)
    f.write_bytes(b"!<arch>\n")
    with pytest.raises(ValueError, match="holds no data.tar"):
        _converters._deb_members(f)


def test_no_network_gives_a_clear_message_not_a_crash(cache, monkeypatch):
    _fake_text_dataset(monkeypatch, "http://127.0.0.1:9/input.txt", "0" * 64)   # port 9: nothing listens
    with pytest.raises(FileNotFoundError, match=r"could not download from http://127\.0\.0\.1:9/input\.txt.*no network"):
        data.fetch("tinyshakespeare")
    assert data.available("tinyshakespeare") is False
    note = data.skip_note("tinyshakespeare")
    assert "no network connection" in note and "hl.data.fetch('tinyshakespeare')" in note and "\n" not in note


def test_offline_switch_never_downloads(cache, monkeypatch):
    monkeypatch.setenv("HMF_LAB_OFFLINE", "1")
    _fake_text_dataset(monkeypatch, "http://127.0.0.1:9/input.txt", "0" * 64)
    with pytest.raises(FileNotFoundError, match="downloads are off: HMF_LAB_OFFLINE=1"):
        data.load_text()


def test_mirror_serves_the_converted_layout(serve, cache, monkeypatch, tmp_path):
    """HMF_LAB_DATA_URL: the converted files in the HMF_LAB_DATA layout, same SHA-256."""
    www = tmp_path / "mirror"
    (www / "tinyshakespeare").mkdir(parents=True)
    (www / "tinyshakespeare" / "input.txt").write_text(TEXT)
    _fake_text_dataset(monkeypatch, "http://127.0.0.1:9/unused", _sha(TEXT.encode()))
    monkeypatch.setenv("HMF_LAB_DATA_URL", serve(www) + "/")
    assert data.available("tinyshakespeare") and data.load_text() == TEXT
    # a mirror serving a corrupt copy is rejected and the bad download deleted; the good copy stays
    (www / "tinyshakespeare" / "input.txt").write_text(TEXT + "extra")
    with pytest.raises(ValueError, match=r"mirror HMF_LAB_DATA_URL=.*rejected and deleted"):
        data.fetch("tinyshakespeare", force=True)
    assert (cache / "data" / "tinyshakespeare" / "input.txt").read_text() == TEXT
    assert data.load_text() == TEXT


@pytest.mark.data
def test_mirror_round_trip_of_the_real_data(serve, monkeypatch, tmp_path):
    """Serve the real converted data (wherever it came from) as a mirror; a fresh cache fetches all of it."""
    src = {n: data.fetch(n) for n in data.DATASETS}     # available (data marker): already present
    www = tmp_path / "mirror"
    for files in src.values():
        for rel, p in files.items():
            (www / rel).parent.mkdir(parents=True, exist_ok=True)
            (www / rel).write_bytes(Path(p).read_bytes())
    monkeypatch.delenv("HMF_LAB_DATA", raising=False)
    monkeypatch.delenv("HMF_LAB_OFFLINE", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "fresh"))
    monkeypatch.setenv("HMF_LAB_DATA_URL", serve(www))
    monkeypatch.setattr(data, "_FAILED", {})
    for name in data.DATASETS:
        assert data.available(name), data.skip_note(name)
    assert data.verify() == {rel: True for ds in data.DATASETS.values() for rel in ds.files}
    assert data.data_dir() == tmp_path / "fresh" / "hmf_lab" / "data"


def test_sword_pairs_titles_and_verses_with_markup_stripped():
    """The verse-pair conversion on a two-chapter fake module (the real one needs the Debian packages)."""
    from types import SimpleNamespace

    book = SimpleNamespace(name="Matthew", get_indicies=lambda offset: [offset + 2, offset + 3, offset + 5])
    structure = SimpleNamespace(get_books=lambda: {"nt": [book]}, _book_offset=lambda name: 10)

    def bible(texts):
        return SimpleNamespace(get_structure=lambda: structure, _text_for_index=lambda t, i: texts.get(i, ""))

    en = bible({10: '<div type="book"/> <milestone n="Mt" type="x-usfm-h"/> <title type="main">THE GOSPEL</title>',
                12: '<w lemma="strong:G0976">The</w>  book\n of <note>a footnote-free module</note>',
                13: "verse missing in Spanish", 15: "Then"})
    es = bible({10: '<title type="main">San Mateo</title>', 12: "<w>LIBRO</w> de", 15: "Entonces"})
    out = _converters._pair_verses(en, es)["translation_en_es/kjv_rv1909.nt.en-es.tsv"]
    assert out == ("THE GOSPEL\tSan Mateo\n"
                   "The book of a footnote-free module\tLIBRO de\n"
                   "Then\tEntonces\n")


# ------------------------------------------------------------------ issue 18: a failed fetch loses nothing

@pytest.fixture
def bad_server():
    """``bad_server(kind, body) -> (base URL, requests)``: every GET answers with one kind of failure."""
    servers = []

    def start(kind: str, body: bytes):
        hits = []

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *a, **k):
                pass

            def do_GET(self):
                hits.append(self.path)
                if kind in ("404", "500"):
                    self.send_error(int(kind))
                    return
                payload = {"wrong": body.replace(b"Citizen", b"Citizem", 1),
                           "html": b"<!DOCTYPE html><html><body>Sign in to continue</body></html>",
                           "truncated": body}[kind]
                self.send_response(200)
                self.send_header("Content-Type", "text/html" if kind == "html" else "text/plain")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload[: len(payload) // 2] if kind == "truncated" else payload)
                if kind == "truncated":
                    self.close_connection = True

        httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        servers.append(httpd)
        return f"http://127.0.0.1:{httpd.server_address[1]}", hits

    yield start
    for s in servers:
        s.shutdown()
        s.server_close()


FAILURES = ["truncated", "wrong", "404", "500", "html", "no network"]


def _good_copy(cache, monkeypatch, url):
    """A verified tinyshakespeare file in place, the registry's source pointing at ``url``."""
    _fake_text_dataset(monkeypatch, url, _sha(TEXT.encode()))
    f = cache / "data" / "tinyshakespeare" / "input.txt"
    f.parent.mkdir(parents=True)
    f.write_text(TEXT)
    assert data.verify("tinyshakespeare") == {"tinyshakespeare/input.txt": True}
    return f


@pytest.mark.parametrize("via", ["source", "mirror"])
@pytest.mark.parametrize("kind", FAILURES)
def test_forced_fetch_that_fails_keeps_the_good_file(bad_server, cache, monkeypatch, kind, via):
    """fetch(force=True) deleted the verified files before downloading; a failed download then lost them."""
    base, hits = ("http://127.0.0.1:9", []) if kind == "no network" else bad_server(kind, TEXT.encode())
    if via == "mirror":
        monkeypatch.setenv("HMF_LAB_DATA_URL", base)
        f = _good_copy(cache, monkeypatch, "http://127.0.0.1:9/unused")
    else:
        f = _good_copy(cache, monkeypatch, base + "/input.txt")
    exc = ValueError if kind in ("wrong", "html") else (FileNotFoundError, ValueError)
    with pytest.raises(exc):
        data.fetch("tinyshakespeare", force=True)
    assert kind == "no network" or hits, "the server was asked"
    assert f.read_text() == TEXT                                  # the good file survived
    assert data.available("tinyshakespeare", download=False) and data.load_text() == TEXT
    left = [p.name for p in (cache / "data").rglob("*") if p.is_file()]
    assert left == ["input.txt"], left                              # no temporary files left behind


@pytest.mark.parametrize("kind", ["404", "wrong"])
def test_forced_fetch_of_a_converted_data_set_that_fails_keeps_its_files(bad_server, cache, monkeypatch, kind):
    """The same for SNIPS (raw JSON downloaded and converted): both converted files survive."""
    base, _ = bad_server(kind, b"{}")
    files = {"snips/train.tsv": b"AddToPlaylist\tadd it\tO O\n", "snips/test.tsv": b"GetWeather\train ?\tO O\n"}
    for rel, blob in files.items():
        (cache / "data" / rel).parent.mkdir(parents=True, exist_ok=True)
        (cache / "data" / rel).write_bytes(blob)
    ds = data.Dataset(name="snips", task="intent", source=base, licence="test", convert="snips",
                      files={rel: _sha(blob) for rel, blob in files.items()},
                      raw={"train_AddToPlaylist_full.json": [f"{base}/train_AddToPlaylist_full.json",
                                                             "0" * 64 if kind == "wrong" else ""]})
    monkeypatch.setitem(data.DATASETS, "snips", ds)
    with pytest.raises((FileNotFoundError, ValueError)):
        data.fetch("snips", force=True)
    for rel, blob in files.items():
        assert (cache / "data" / rel).read_bytes() == blob
    assert data.verify("snips") == {rel: True for rel in files}


def test_a_successful_forced_fetch_replaces_the_file(serve, cache, monkeypatch, tmp_path):
    (tmp_path / "www").mkdir()
    (tmp_path / "www" / "input.txt").write_text(TEXT)
    f = _good_copy(cache, monkeypatch, serve(tmp_path / "www") + "/input.txt")
    before = f.stat().st_ino
    assert data.fetch("tinyshakespeare", force=True) == {"tinyshakespeare/input.txt": f}
    assert f.read_text() == TEXT and f.stat().st_ino != before      # a new file, moved into place
    with pytest.raises(TypeError, match="force must be True or False, got str 'yes'"):
        data.fetch("tinyshakespeare", force="yes")


# ------------------------------------------------------------------ issue 18: HMF_LAB_OFFLINE=1 never downloads

@pytest.mark.parametrize("mirror", [False, True], ids=["source", "mirror"])
def test_offline_fetch_never_touches_the_network(bad_server, cache, monkeypatch, mirror):
    base, hits = bad_server("wrong", TEXT.encode())
    monkeypatch.setenv("HMF_LAB_OFFLINE", "1")
    if mirror:
        monkeypatch.setenv("HMF_LAB_DATA_URL", base)
    _fake_text_dataset(monkeypatch, base + "/input.txt", _sha(TEXT.encode()))
    with pytest.raises(FileNotFoundError, match=r"data set 'tinyshakespeare' was not downloaded: offline mode is "
                                                r"on \(HMF_LAB_OFFLINE='1'\).*unset HMF_LAB_OFFLINE \(or set it to 0\)"):
        data.fetch("tinyshakespeare")
    with pytest.raises(FileNotFoundError, match="offline mode is on"):
        data.path("tinyshakespeare", download=True)
    assert data.available("tinyshakespeare") is False
    note = data.skip_note("tinyshakespeare")
    assert "downloads are off: HMF_LAB_OFFLINE=1" in note and "unset HMF_LAB_OFFLINE" in note and "\n" not in note
    # files present and verified: fetch returns them; force=True would download, so it refuses
    f = cache / "data" / "tinyshakespeare" / "input.txt"
    f.parent.mkdir(parents=True)
    f.write_text(TEXT)
    assert data.fetch("tinyshakespeare") == {"tinyshakespeare/input.txt": f}
    with pytest.raises(FileNotFoundError, match="offline mode is on"):
        data.fetch("tinyshakespeare", force=True)
    assert f.read_text() == TEXT
    assert hits == []                                               # not one request reached the server
    monkeypatch.setenv("HMF_LAB_OFFLINE", "0")                      # the switch off: it downloads again
    with pytest.raises(ValueError, match="rejected"):
        data.fetch("tinyshakespeare", force=True)
    assert hits and f.read_text() == TEXT


# ------------------------------------------------------------------ issue 18: folders and files in the wrong place

def test_a_folder_where_a_data_file_should_be(cache, monkeypatch):
    _fake_text_dataset(monkeypatch, "http://127.0.0.1:9/input.txt", _sha(TEXT.encode()))
    (cache / "data" / "tinyshakespeare" / "input.txt").mkdir(parents=True)
    msg = r"data set 'tinyshakespeare': .*input.txt is a folder, where the data file should be; move or delete it"
    for call in (lambda: data.path("tinyshakespeare"), lambda: data.fetch("tinyshakespeare"),
                 lambda: data.fetch("tinyshakespeare", force=True), data.load_text):
        with pytest.raises(ValueError, match=msg):
            call()
    assert data.verify("tinyshakespeare") == {"tinyshakespeare/input.txt": False}
    assert data.available("tinyshakespeare") is False
    assert "is a folder" in data.skip_note("tinyshakespeare")
    assert (cache / "data" / "tinyshakespeare" / "input.txt").is_dir()   # nothing deleted


@pytest.mark.parametrize("where", ["a file", "through a file", "~nouser"])
def test_hmf_lab_data_that_is_not_a_folder(cache, monkeypatch, tmp_path, where):
    f = tmp_path / "notes.txt"
    f.write_text("x")
    value = {"a file": str(f), "through a file": str(f / "sub"), "~nouser": "~hmf_lab_no_such_user_x/data"}[where]
    monkeypatch.setenv("HMF_LAB_DATA", value)
    msg = {"a file": r"HMF_LAB_DATA='.*notes.txt' points at a file, not a folder; set HMF_LAB_DATA to the folder",
           "through a file": r"HMF_LAB_DATA='.*sub' goes through the file '.*notes.txt', not a folder",
           "~nouser": r"HMF_LAB_DATA='~hmf_lab_no_such_user_x/data' starts with a '~user' that does not exist"}[where]
    for call in (data.data_dir, lambda: data.path("tinyshakespeare"), lambda: data.fetch("tinyshakespeare"),
                 data.load_text):
        with pytest.raises(ValueError, match=msg):
            call()
    assert data.available("tinyshakespeare") is False                   # never raises
    assert "HMF_LAB_DATA" in data.skip_note("tinyshakespeare")
    assert f.read_text() == "x"


def test_something_else_where_a_data_file_should_be(cache, monkeypatch):
    import os
    if not hasattr(os, "mkfifo"):
        pytest.skip("no named pipes on this platform")
    _fake_text_dataset(monkeypatch, "http://127.0.0.1:9/input.txt", _sha(TEXT.encode()))
    (cache / "data" / "tinyshakespeare").mkdir(parents=True)
    os.mkfifo(cache / "data" / "tinyshakespeare" / "input.txt")
    with pytest.raises(ValueError, match=r"input.txt is not a regular file, where the data file should be"):
        data.path("tinyshakespeare")
    assert data.available("tinyshakespeare") is False
