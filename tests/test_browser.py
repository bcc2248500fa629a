"""The reranking chapter in a real browser: JupyterLab on loopback, headless Chromium at 1280x800.

Opens notebooks/03-reranking.ipynb, runs all cells from the Run menu, then uses the compare widget as a
learner would (pick another question, move the K, N and threshold sliders) and checks the lists on screen change.
Saves a screenshot to the test's tmp dir and to tests/artifacts/ (gitignored) for a human to look at.

Needs Debian's Chromium (`apt-get install chromium`) and `pip install playwright`; no browser download.
Nothing is written to the repository except tests/artifacts/: JupyterLab runs with a temporary HOME and
Jupyter dirs, autosave off, checkpoints in the tmp dir, and the notebook is checked unchanged at the end.
"""
from __future__ import annotations

import hashlib
import json
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

from conftest import REPO

CHROMIUM = Path("/usr/bin/chromium")
NOTEBOOK = "notebooks/03-reranking.ipynb"
ARTIFACTS = REPO / "tests" / "artifacts"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]

if not CHROMIUM.exists():
    pytest.skip(f"{CHROMIUM} is missing: apt-get install chromium (Debian's build; Playwright's own "
                f"download is not used)", allow_module_level=True)
sync_playwright = pytest.importorskip("playwright.sync_api", reason="playwright is not installed: "
                                      "pip install playwright (no `playwright install` needed)").sync_playwright


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def write_json(path: Path, data: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data), encoding="utf-8")


@pytest.fixture
def jupyterlab(tmp_path):
    """JupyterLab serving the repo on 127.0.0.1 with a token; yields its base URL and token."""
    home, config, data, runtime = (tmp_path / d for d in ("home", "jupyter-config", "jupyter-data", "jupyter-runtime"))
    settings = config / "lab" / "user-settings" / "@jupyterlab"
    # a quiet, read-only lab: no autosave (the notebook stays commit-ready), no news or update pop-ups
    write_json(settings / "docmanager-extension" / "plugin.jupyterlab-settings", {"autosave": False})
    write_json(settings / "notebook-extension" / "tracker.jupyterlab-settings", {"autoStartDefaultKernel": True})
    write_json(settings / "apputils-extension" / "notification.jupyterlab-settings",
               {"fetchNews": "false", "checkForUpdates": False})
    write_json(config / "labconfig" / "page_config.json",
               {"disabledExtensions": {"@jupyterlab/apputils-extension:announcements": True}})
    home.mkdir()
    env = {**os.environ, "HOME": str(home), "JUPYTER_CONFIG_DIR": str(config), "JUPYTER_DATA_DIR": str(data),
           "JUPYTER_RUNTIME_DIR": str(runtime), "IPYTHONDIR": str(home / ".ipython"),
           "MPLCONFIGDIR": str(home / ".matplotlib"), "JUPYTER_PLATFORM_DIRS": "1", "PYTHONUNBUFFERED": "1"}
    port, token = free_port(), secrets.token_hex(16)
    log = open(tmp_path / "jupyterlab.log", "w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "jupyterlab", "--no-browser", "--ip=127.0.0.1", f"--port={port}",
         f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={REPO}",
         f"--FileCheckpoints.root_dir={tmp_path / 'checkpoints'}", f"--LabApp.workspaces_dir={tmp_path / 'ws'}",
         "--ServerApp.port_retries=0", "--ServerApp.terminals_enabled=False",
         *(["--allow-root"] if hasattr(os, "geteuid") and os.geteuid() == 0 else [])],
        env=env, stdout=log, stderr=subprocess.STDOUT, cwd=tmp_path)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                pytest.fail(f"JupyterLab exited with {proc.returncode}:\n{(tmp_path / 'jupyterlab.log').read_text()}")
            try:
                with urllib.request.urlopen(f"{base}/api/status?token={token}", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"JupyterLab not ready in 60 s:\n{(tmp_path / 'jupyterlab.log').read_text()}")
            time.sleep(0.3)
        yield base, token
    finally:
        try:  # a clean shutdown also stops the kernel
            request = urllib.request.Request(f"{base}/api/shutdown", method="POST",
                                             headers={"Authorization": f"token {token}"})
            urllib.request.urlopen(request, timeout=5).close()
            proc.wait(timeout=15)
        except Exception:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        log.close()


def rerank_rows(page) -> list[str]:
    return page.locator(".ragkit-compare .ragkit-rerank-list tr.ragkit-row").evaluate_all(
        "rows => rows.map(r => r.dataset.chunk + (r.classList.contains('kept') ? '*' : ''))")


def test_compare_widget_in_jupyterlab(jupyterlab, tmp_path):
    base, token = jupyterlab
    notebook = REPO / NOTEBOOK
    digest = hashlib.sha256(notebook.read_bytes()).hexdigest()
    started = time.monotonic()
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 800})
            page.goto(f"{base}/lab/tree/{NOTEBOOK}?reset&token={token}")
            page.locator(".jp-NotebookPanel .jp-Cell").first.wait_for(timeout=60_000)
            page.get_by_text("Python 3 (ipykernel) | Idle").wait_for(timeout=60_000)  # the kernel is up
            choose = page.locator(".jp-Dialog button.jp-mod-accept", has_text="Select")
            if choose.count():  # older settings may still ask which kernel: the notebook's own
                choose.click()

            page.locator(".lm-MenuBar-itemLabel", has_text="Run").first.click()
            page.locator(".lm-Menu-itemLabel", has_text="Run All Cells").first.click()

            rows = page.locator(".ragkit-compare .ragkit-rerank-list tr.ragkit-row")
            rows.first.wait_for(timeout=90_000)
            # all cells done: the self-check cell (the last) printed its message
            page.locator(".jp-OutputArea-output", has_text="Fill in my_answer above").wait_for(timeout=90_000)
            errors = page.locator(".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr'] "
                                  ":text('Traceback')")
            assert errors.count() == 0, errors.first.inner_text()

            widget = page.locator(".ragkit-compare").first
            widget.scroll_into_view_if_needed()
            dense_list = page.locator(".ragkit-compare .ragkit-dense-list").first
            rerank_list = page.locator(".ragkit-compare .ragkit-rerank-list").first
            first_question = rerank_list.get_attribute("data-question")
            before = rerank_rows(page)
            assert len(before) == 20

            # another question from the dropdown: new lists (one new ask(), answer=False)
            select = page.locator(".ragkit-compare .ragkit-question-dropdown select")
            options = select.locator("option").evaluate_all("os => os.map(o => o.value)")  # labels use &nbsp;
            select.select_option(value=options[1])
            page.wait_for_function(
                "q => document.querySelector('.ragkit-compare .ragkit-rerank-list').dataset.question === q",
                arg=options[1], timeout=30_000)
            assert options[1] != first_question
            assert page.locator(".ragkit-compare .ragkit-question-text input").input_value() == options[1]
            after_question = rerank_rows(page)
            assert after_question != before

            # K: from 5 down to 2 with the keyboard, the kept rows change (no backend call: "from cache")
            k_handle = page.locator(".ragkit-compare .ragkit-k-slider .noUi-handle")
            k_handle.focus()
            k_handle.press("ArrowLeft")
            k_handle.press("ArrowLeft")
            k_handle.press("ArrowLeft")
            page.wait_for_function(
                "() => document.querySelector('.ragkit-compare .ragkit-rerank-list').dataset.kept !== undefined"
                " && document.querySelector('.ragkit-compare .ragkit-k-slider .widget-readout').textContent.trim() === '2'",
                timeout=30_000)
            page.wait_for_function(
                "() => document.querySelector('.ragkit-compare .ragkit-rerank-list').querySelectorAll('tr.kept').length <= 2",
                timeout=30_000)
            assert "from cache" in page.locator(".ragkit-compare .ragkit-status").inner_text()

            # N: from 20 up to 25, both lists get longer (a new ask()); on this question the answer,
            # 20th by embedding, is among the candidates either way
            n_handle = page.locator(".ragkit-compare .ragkit-n-slider .noUi-handle")
            n_handle.focus()
            for _ in range(5):
                n_handle.press("ArrowRight")
            page.wait_for_function(
                "() => document.querySelector('.ragkit-compare .ragkit-rerank-list').dataset.n === '25'",
                timeout=30_000)
            after_n = rerank_rows(page)
            assert len(after_n) == 25 and dense_list.locator("tr.ragkit-row").count() == 25
            assert after_n != after_question
            assert "asked now" in page.locator(".ragkit-compare .ragkit-status").inner_text()

            # threshold: all the way down (Home), so nothing is greyed and exactly K=2 rows are kept
            t_handle = page.locator(".ragkit-compare .ragkit-threshold-slider .noUi-handle")
            t_handle.focus()
            t_handle.press("Home")
            page.wait_for_function(
                "() => { const l = document.querySelector('.ragkit-compare .ragkit-rerank-list');"
                " return l.querySelectorAll('tr.below').length === 0 && l.querySelectorAll('tr.kept').length === 2; }",
                timeout=30_000)
            assert [r.endswith("*") for r in rerank_rows(page)] == [True, True] + [False] * 23

            widget.scroll_into_view_if_needed()
            page.evaluate("el => el.scrollIntoView({block: 'start'})", widget.element_handle())
            shot = tmp_path / "compare-widget.png"
            page.screenshot(path=str(shot))
            widget.screenshot(path=str(tmp_path / "compare-widget-element.png"))
            ARTIFACTS.mkdir(exist_ok=True)
            (ARTIFACTS / "compare-widget-failure.png").unlink(missing_ok=True)
            shutil.copy(shot, ARTIFACTS / shot.name)
            shutil.copy(tmp_path / "compare-widget-element.png", ARTIFACTS / "compare-widget-element.png")
        except BaseException:
            ARTIFACTS.mkdir(exist_ok=True)  # what the browser showed when it failed, for a human
            page.screenshot(path=str(ARTIFACTS / "compare-widget-failure.png"))
            raise
        finally:
            browser.close()
    assert hashlib.sha256(notebook.read_bytes()).hexdigest() == digest, "the notebook was modified on disk"
    assert time.monotonic() - started < 150
