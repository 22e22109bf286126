"""A real browser: JupyterLab on loopback, Debian's Chromium via Playwright, notebook 02 run end to end;
and the `make app` page (Voilà serving apps/explorer.ipynb) with a slider moved by the keyboard.

Opens a temporary copy of notebook 02 (the repository's file is never touched), runs all cells,
moves the split slider with the keyboard and checks that the error read-out changes; fails on
"Error displaying widget" or a traceback in any output; saves a screenshot (to a temporary folder,
or to the path in HMF_LAB_SCREENSHOT: `HMF_LAB_SCREENSHOT=docs/notebook02.png` refreshes the README's).
The app test saves its screenshot to HMF_LAB_SCREENSHOT_APP when set (`docs/app.png`).
Skips when Chromium is missing, unless HMF_LAB_REQUIRE_BROWSER=1 (set by .ci/run).
"""
from __future__ import annotations

import contextlib
import hashlib
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"
NOTEBOOK = next(iter(sorted((REPO / "notebooks").glob("02_*.ipynb"))), None)
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def _require_browser() -> None:
    missing = []
    if not Path(CHROMIUM).exists():
        missing.append(f"Chromium at {CHROMIUM} (apt-get install chromium)")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        missing.append("the playwright Python package")
    if missing:
        msg = "browser test needs " + " and ".join(missing)
        if os.environ.get("HMF_LAB_REQUIRE_BROWSER") == "1":
            pytest.fail(msg + " (HMF_LAB_REQUIRE_BROWSER=1)")
        pytest.skip(msg)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@contextlib.contextmanager
def _server(cmd: list[str], cwd, env: dict, log_path: Path, ready_url: str, what: str):
    """Run ``cmd`` (a web server) until the block ends; wait (90 s at most) until ``ready_url`` answers,
    failing with the server's log if it exits or never answers."""
    log = open(log_path, "w")
    proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.time() + 90
        while True:
            try:
                urllib.request.urlopen(ready_url, timeout=2).read()
                break
            except OSError:
                if proc.poll() is not None or time.time() > deadline:
                    log.flush()
                    pytest.fail(f"{what} did not start:\n" + log_path.read_text()[-3000:])
                time.sleep(0.5)
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


@contextlib.contextmanager
def _chromium_page(width: int, height: int, timeout_ms: int):
    """A page in Debian's headless Chromium (Playwright), closed when the block ends; skips (or fails under
    HMF_LAB_REQUIRE_BROWSER=1) when Chromium or Playwright is missing."""
    _require_browser()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": width, "height": height})
            page.set_default_timeout(timeout_ms)
            yield page
        finally:
            browser.close()


@pytest.fixture
def lab(tmp_path):
    """JupyterLab serving a temporary folder holding a copy of notebook 02; yields (url, token, name)."""
    work = tmp_path / "work"
    work.mkdir()
    shutil.copy(NOTEBOOK, work / NOTEBOOK.name)
    port, token = _free_port(), secrets.token_hex(16)
    settings = tmp_path / "settings"
    for plugin, values in {"notebook-extension/tracker": '{"autoStartDefaultKernel": true}',
                           "apputils-extension/notification": '{"fetchNews": "false", "checkForUpdates": false}'}.items():
        f = settings / "@jupyterlab" / f"{plugin}.jupyterlab-settings"
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_text(values)
    env = dict(os.environ, HMF_LAB_QUICK="1", JUPYTER_CONFIG_DIR=str(tmp_path / "cfg"),
               JUPYTER_RUNTIME_DIR=str(tmp_path / "runtime"), JUPYTERLAB_WORKSPACES_DIR=str(tmp_path / "ws"),
               JUPYTERLAB_SETTINGS_DIR=str(settings))
    cmd = [sys.executable, "-m", "jupyterlab", "--no-browser", "--allow-root", f"--ServerApp.port={port}",
           "--ServerApp.ip=127.0.0.1", "--ServerApp.port_retries=0", f"--IdentityProvider.token={token}",
           f"--ServerApp.root_dir={work}", f"--LabApp.workspaces_dir={tmp_path / 'ws'}",
           "--LabApp.news_url=", "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"]
    url = f"http://127.0.0.1:{port}"
    with _server(cmd, work, env, tmp_path / "lab.log", f"{url}/api/status?token={token}", "JupyterLab"):
        yield url, token, NOTEBOOK.name


def _output_problems(page) -> list[str]:
    texts = page.locator(".jp-OutputArea-output").all_inner_texts()
    bad = [t for t in texts if "Error displaying widget" in t or "Traceback" in t]
    bad += page.locator(".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']").filter(
        has_text="Error").all_inner_texts()
    return bad


@pytest.mark.browser
@pytest.mark.slow
def test_notebook02_in_jupyterlab(lab, tmp_path):
    url, token, name = lab
    before = _sha(NOTEBOOK)
    with _chromium_page(1400, 1000, 120_000) as page:
        from playwright.sync_api import expect

        page.goto(f"{url}/lab/tree/{name}?token={token}")
        page.locator(".jp-NotebookPanel").first.wait_for()
        # the python3 kernel starts by itself (settings above); answer the kernel dialog if one shows anyway
        select = page.locator(".jp-Dialog").get_by_role("button", name="Select", exact=True)
        deadline = time.time() + 10
        while time.time() < deadline:
            if select.count():
                select.click()
                break
            time.sleep(0.25)
        page.locator(".jp-Notebook-ExecutionIndicator[data-status='idle']").first.wait_for(timeout=120_000)
        page.get_by_role("menuitem", name="Run", exact=True).click()
        page.get_by_text("Run All Cells", exact=True).click()
        explorer = page.locator(".hmf-explorer")
        deadline = time.time() + 240
        while not explorer.count():  # fail fast on a traceback instead of waiting out the timeout
            problems = _output_problems(page)
            if problems or time.time() > deadline:
                page.screenshot(path=str(tmp_path / "failure.png"))
                pytest.fail(f"the explorer did not appear (screenshot {tmp_path / 'failure.png'}); "
                            f"output problems: {problems}")
            time.sleep(0.5)
        explorer.wait_for()
        readout = page.locator(".hmf-error").first
        expect(readout).not_to_have_text("", timeout=60_000)
        # wait until every cell has run: no "[*]" prompt left
        deadline = time.time() + 240
        while page.locator(".jp-InputArea-prompt", has_text="[*]").count() and time.time() < deadline:
            time.sleep(0.5)
        assert not page.locator(".jp-InputArea-prompt", has_text="[*]").count(), "cells still running"
        assert not _output_problems(page), _output_problems(page)

        first = readout.inner_text()
        explorer.scroll_into_view_if_needed()
        handle = page.locator(".hmf-split .noUi-handle").first
        handle.focus()
        page.keyboard.press("ArrowRight")
        expect(readout).not_to_have_text(first, timeout=30_000)
        assert float(readout.inner_text()) != float(first)
        # end-to-end latency (key press -> kernel callback -> read-out in the page), for the report only
        lat = []
        for _ in range(3):
            before_text = readout.inner_text()
            t0 = time.perf_counter()
            page.keyboard.press("ArrowRight")
            page.wait_for_function("(a) => document.querySelector('.hmf-error').innerText !== a",
                                   arg=before_text, polling="raf", timeout=30_000)
            lat.append(time.perf_counter() - t0)
        print(f"\n[browser] key press -> error read-out: {', '.join(f'{t * 1e3:.0f} ms' for t in lat)}",
              file=sys.stderr)
        for _ in range(3):  # back to a representative setting for the screenshot
            page.keyboard.press("ArrowLeft")
        expect(page.locator(".hmf-split .widget-readout").first).to_have_text("256", timeout=30_000)
        split = page.locator(".hmf-split .widget-readout").first.inner_text().strip()
        # the debounced timing follows the move
        expect(page.locator(".hmf-timing caption").first).to_contain_text(f"k={split},", timeout=90_000)
        assert not _output_problems(page), _output_problems(page)
        explorer.scroll_into_view_if_needed()
        shot = Path(os.environ.get("HMF_LAB_SCREENSHOT") or tmp_path / "notebook02.png")
        shot.parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(shot))
    assert _sha(NOTEBOOK) == before, "the browser test must not modify the repository's notebook"
    assert shot.stat().st_size > 10_000


# ------------------------------------------------------------------------------------------- make app
APP = REPO / "apps" / "explorer.ipynb"


@pytest.fixture
def voila_app(tmp_path):
    """Voilà serving apps/explorer.ipynb on a free loopback port, as `make app` does; yields the URL."""
    port = _free_port()
    env = dict(os.environ, HMF_LAB_QUICK="1", JUPYTER_CONFIG_DIR=str(tmp_path / "cfg"),
               JUPYTER_RUNTIME_DIR=str(tmp_path / "runtime"),
               PYTHONPATH=os.pathsep.join([str(REPO), *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]))
    cmd = [sys.executable, "-m", "voila", str(APP), "--no-browser", "--Voila.ip=127.0.0.1", f"--port={port}",
           "--show_tracebacks=True"]
    url = f"http://127.0.0.1:{port}/"
    # the static script answers without running a kernel
    with _server(cmd, REPO, env, tmp_path / "voila.log", f"{url}voila/static/voila.js", "Voilà"):
        yield url


@pytest.mark.browser
@pytest.mark.slow
def test_app_in_voila(voila_app, tmp_path):
    """`make app`: the explorer alone in a page, sliders and read-outs only; a key press moves the error."""
    before = _sha(APP)
    with _chromium_page(1200, 900, 180_000) as page:
        from playwright.sync_api import expect

        page.goto(voila_app)
        explorer = page.locator(".hmf-explorer")
        try:
            explorer.wait_for(timeout=180_000)
        except Exception:
            page.screenshot(path=str(tmp_path / "failure.png"))
            raise
        readout = page.locator(".hmf-error").first
        expect(readout).not_to_have_text("", timeout=60_000)
        body = page.locator("body").inner_text()
        code = [t for t in ("import hmf_lab", "hl.explorer(", "pretrained_weights(") if t in body]
        assert not code and not page.locator(".CodeMirror, .cm-editor").count(), f"the app shows code: {code}"
        assert "Traceback" not in body and "Error displaying widget" not in body, body[-2000:]
        first = readout.inner_text()
        handle = page.locator(".hmf-split .noUi-handle").first
        handle.focus()
        page.keyboard.press("ArrowRight")
        expect(readout).not_to_have_text(first, timeout=30_000)
        assert float(readout.inner_text()) != float(first)
        # the debounced timing follows the move before the picture is taken
        split = page.locator(".hmf-split .widget-readout").first.inner_text().strip()
        expect(page.locator(".hmf-timing caption").first).to_contain_text(f"k={split},", timeout=90_000)
        body = page.locator("body").inner_text()
        assert "Traceback" not in body and "Error displaying widget" not in body, body[-2000:]
        shot = Path(os.environ.get("HMF_LAB_SCREENSHOT_APP") or tmp_path / "app.png")
        shot.parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(shot), full_page=True)
    assert _sha(APP) == before, "the browser test must not modify the app notebook"
    assert shot.stat().st_size > 10_000
