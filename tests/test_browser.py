"""End to end in a real browser: JupyterLab + headless Chromium run hw1.ipynb and drive the widget.

The browser runs the notebook from the top through the widget cell: every question and the live
widget. The cells after it ("Beyond the assignment") print text and draw figures, no widgets;
nbval executes them, and every other cell, in the same make test.
Screenshots of the widget before and after land in artifacts/ (git-ignored).
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tools.pdf import WIDGET_VIEW

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "artifacts"
CHROMIUM = shutil.which("chromium")
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
         "--disable-background-networking", "--no-first-run", "--disable-component-update",
         "--disable-sync"]
RUN_TIMEOUT = 600  # seconds for the notebook's run in the browser
KERNEL_IDLE = """() => {
  const w = window.jupyterapp && window.jupyterapp.shell.currentWidget;
  const kernel = w && w.sessionContext && w.sessionContext.session
                 && w.sessionContext.session.kernel;
  return !!kernel && kernel.status === 'idle';
}"""

pytestmark = pytest.mark.skipif(
    CHROMIUM is None,
    reason="Debian's chromium is missing; `make system-deps` installs it when run as root",
)


def _last_widget_cell() -> int:
    """Index of the last cell whose saved output is a widget: the browser runs up to it."""
    cells = json.loads((ROOT / "hw1.ipynb").read_text())["cells"]
    return max(i for i, c in enumerate(cells) for out in c.get("outputs", [])
               if WIDGET_VIEW in out.get("data", {}))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_for(url: str, timeout: float, proc: subprocess.Popen, work: Path) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            log = (work / "jupyterlab.log").read_text()[-2000:]
            raise RuntimeError(f"JupyterLab exited with {proc.returncode}:\n{log}")
        try:
            urllib.request.urlopen(url, timeout=2)
            return
        except OSError:
            time.sleep(0.5)
    raise TimeoutError(f"JupyterLab did not answer at {url} within {timeout} s")


def _settings(work: Path) -> Path:
    """Lab settings: notebook windowing off (every cell in the DOM to inspect), no news."""
    settings = work / "settings"
    tracker = settings / "@jupyterlab" / "notebook-extension" / "tracker.jupyterlab-settings"
    tracker.parent.mkdir(parents=True)
    tracker.write_text('{"windowingMode": "none"}')
    news = settings / "@jupyterlab" / "apputils-extension" / "notification.jupyterlab-settings"
    news.parent.mkdir(parents=True)
    news.write_text('{"fetchNews": "false", "checkForUpdates": false}')  # offline: no pop-ups
    return settings


@pytest.fixture(scope="module")
def lab(tmp_path_factory) -> Iterator[str]:
    """JupyterLab on 127.0.0.1 with a fresh token, serving a copy of the notebook."""
    work = tmp_path_factory.mktemp("lab")
    shutil.copy(ROOT / "hw1.ipynb", work / "hw1.ipynb")  # autosave must not touch the original
    port, token = _free_port(), secrets.token_hex(16)
    log = open(work / "jupyterlab.log", "w")  # noqa: SIM115 - closed in the finally below
    proc = subprocess.Popen(
        [sys.executable, "-m", "jupyter", "lab", "--no-browser", "--ip=127.0.0.1",
         f"--port={port}", f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={work}",
         "--LabApp.expose_app_in_browser=True", "--ServerApp.open_browser=False",
         *(["--allow-root"] if os.geteuid() == 0 else [])],
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        env={**os.environ, "JUPYTER_CONFIG_DIR": str(work / "config"),
             "JUPYTERLAB_SETTINGS_DIR": str(_settings(work))},
    )
    try:
        _wait_for(f"http://127.0.0.1:{port}/api/status?token={token}", 60, proc, work)
        yield f"http://127.0.0.1:{port}/lab/tree/hw1.ipynb?token={token}"
    finally:
        os.killpg(proc.pid, signal.SIGTERM)  # the server and the kernels it started
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        log.close()
        with socket.socket() as s:
            assert s.connect_ex(("127.0.0.1", port)) != 0, "JupyterLab still listening"


@pytest.fixture(scope="module")
def page(lab):
    """Chromium with the notebook open, every cell run."""
    playwright = pytest.importorskip("playwright.sync_api")
    ARTIFACTS.mkdir(exist_ok=True)
    with playwright.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=FLAGS, headless=True)
        try:
            pg = browser.new_page(viewport={"width": 1400, "height": 1000})
            pg.goto(lab)
            pg.wait_for_function(KERNEL_IDLE, timeout=120_000)
            # The copy carries the committed outputs: clear them, so every prompt must refill.
            pg.evaluate("() => window.jupyterapp.commands.execute("
                        "'notebook:clear-all-cell-outputs')")
            last = _last_widget_cell()
            pg.evaluate(f"""() => {{
                window.jupyterapp.shell.currentWidget.content.activeCellIndex = {last};
                return window.jupyterapp.commands.execute('notebook:run-all-above')
                    .then(() => window.jupyterapp.commands.execute('notebook:run-cell'));
            }}""")
            _wait_until_done(pg, last)
            yield pg
        finally:
            browser.close()


def _wait_until_done(pg, last: int) -> None:
    """Wait until every code cell up to cell ``last`` shows an execution count and the kernel
    is idle."""
    deadline = time.monotonic() + RUN_TIMEOUT
    pg.wait_for_timeout(2000)
    while time.monotonic() < deadline:
        prompts = pg.eval_on_selector_all(
            ".jp-Notebook .jp-Cell",
            f"""els => els.slice(0, {last + 1}).filter(e => e.classList.contains('jp-CodeCell'))
                     .map(e => e.querySelector('.jp-InputPrompt').textContent.trim())""")
        done = prompts and all(p.startswith("[") and p[1:-2].isdigit() for p in prompts)
        if done and pg.evaluate(KERNEL_IDLE):
            return
        pg.wait_for_timeout(1000)
    raise TimeoutError(f"the notebook did not finish within {RUN_TIMEOUT} s: {prompts}")


def test_no_cell_shows_an_error(page):
    errors = page.eval_on_selector_all(
        ".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']",
        "els => els.map(e => e.textContent)")
    tracebacks = [e for e in errors if "Traceback" in e or "Error" in e]
    assert not tracebacks, tracebacks[:1]


def test_markdown_maths_is_rendered(page):
    page.wait_for_timeout(1000)
    typeset = page.eval_on_selector_all(".jp-MarkdownOutput mjx-container", "els => els.length")
    assert typeset > 50
    raw = page.eval_on_selector_all(".jp-MarkdownOutput",
                                    "els => els.filter(e => e.textContent.includes('$$')).length")
    assert raw == 0


def test_widget_slider_changes_the_image(page):
    slider = page.locator(".widget-slider").first
    slider.scroll_into_view_if_needed()
    box = page.locator(".jupyter-widgets.widget-vbox").last
    image = box.locator("img").last
    before = image.get_attribute("src")
    box.screenshot(path=str(ARTIFACTS / "widget-before.png"))
    handle = slider.locator(".noUi-handle, .ui-slider-handle").first
    handle.focus()
    for _ in range(5):
        page.keyboard.press("ArrowRight")
    page.wait_for_function(
        "([img, old]) => img.getAttribute('src') !== old",
        arg=[image.element_handle(), before], timeout=30_000)
    box.screenshot(path=str(ARTIFACTS / "widget-after.png"))
    assert image.get_attribute("src") != before
    readout = box.locator(".widget-readout").first.text_content()
    assert readout.strip() == "5"
