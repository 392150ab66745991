"""Export the executed notebook to a print-ready PDF, offline, on macOS, Windows, Linux or Colab.

    python -m tools.pdf hw1.ipynb hw1.pdf [--paper a4] [--browser PATH]

nbconvert writes the HTML through the template in `tools/pdf_template/` (its print rules are
CSS there); MathJax 2.7 comes from the `jupyter-server-mathjax` package; Playwright drives Chrome,
Chromium or Edge, which lays the page out at the paper's text width, waits until MathJax has
typeset everything, and prints with a bookmark for every heading. Nothing is fetched from the
network: the page, MathJax and its fonts are served from memory and disk, and every other request
is refused.
"""

from __future__ import annotations

import argparse
import mimetypes
import os
import re
import shutil
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from helpers.files import write_atomic

PAPERS = {"letter": (8.5, 11.0), "a4": (210 / 25.4, 297 / 25.4)}  # width, height in inches
MARGIN_IN = 0.5
# The page number, centred in the bottom margin (Chromium fills in the classed spans).
FOOTER = ('<div style="width: 100%; text-align: center; font-size: 8pt; color: #555;">'
          '<span class="pageNumber"></span> / <span class="totalPages"></span></div>')
PX_PER_IN = 96  # CSS pixels per inch, on screen and on paper
TEMPLATE = Path(__file__).with_name("pdf_template")
BROWSER_ENV = "HW1_BROWSER"
GET_BROWSER = "python -m playwright install chromium"
CHANNELS = ("chrome", "msedge")  # Playwright finds these where they install on each system
BROWSER_NAMES = ("chromium", "chromium-browser", "google-chrome")  # then these, on PATH
# Root needs no sandbox flag (Playwright adds it); these keep Chromium inside containers.
BROWSER_ARGS = ["--disable-gpu", "--disable-dev-shm-usage"]
# The page and MathJax are served under this origin inside the browser; `.invalid` never resolves.
ORIGIN = "http://hw1.invalid"
# jupyter-server-mathjax ships only the combined HTML-CSS config, not the CommonHTML ones.
MATHJAX_CONFIG = "TeX-AMS-MML_HTMLorMML-full,Safe"
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
NOT_PRINTED = "no-pdf"  # a cell tag: the cell stays in the notebook and is left out of the PDF
TEST_MARKER = re.compile(r"^[ \t]*# ?NBVAL_\w+.*(?:\n|$)", re.M)  # nbval's comments, not printed
TIMEOUT_S = 300  # a guard against a hung browser, not a wait: printing starts when MathJax is done
# Resolves once MathJax's start-up typesetting and everything queued after it have finished.
# (The hooks return nothing: MathJax would wait for a callback that a hook returned.)
TYPESET_DONE = """() => new Promise(done => MathJax.Hub.Register.StartupHook("End", () => {
  MathJax.Hub.Queue(() => { document.fonts.ready.then(() => done(true)); });
}))"""


class NoBrowserError(RuntimeError):
    """No usable Chrome, Chromium or Edge."""


class ExportError(RuntimeError):
    """The notebook could not be exported (MathJax or Playwright missing, MathJax stuck, ...)."""


def text_width_px(paper: str = "letter") -> int:
    """Width of the printable area of ``paper`` in CSS pixels (Letter 720, A4 697)."""
    return int((PAPERS[paper][0] - 2 * MARGIN_IN) * PX_PER_IN)


def mathjax_folder() -> Path:
    """The folder of MathJax 2.7 inside the jupyter-server-mathjax package."""
    try:
        import jupyter_server_mathjax
    except ImportError as e:
        raise ExportError("MathJax not found: `pip install jupyter-server-mathjax` (a dependency "
                          "of this project: `pip install -e .`).") from e
    return Path(jupyter_server_mathjax.__file__).parent / "static"


def browser_candidates(override: str | None = None,
                       bundled: str | None = None) -> list[dict[str, str]]:
    """Playwright launch options to try, in order: ``override`` or $HW1_BROWSER alone; else
    Playwright's own Chromium (``bundled``), the Chrome and Edge channels, browsers on PATH."""
    for source, given in (("--browser", override), (BROWSER_ENV, os.environ.get(BROWSER_ENV))):
        if not given:
            continue
        path = shutil.which(given) or given  # a command on PATH or a path
        if Path(path).is_file():
            return [{"executable_path": path}]
        if given in CHANNELS:
            return [{"channel": given}]
        raise NoBrowserError(f"{source} names {given!r}, which is not a file, a command on PATH "
                             f"or one of the channels {', '.join(CHANNELS)}.")
    options = [{"executable_path": bundled}] if bundled and Path(bundled).is_file() else []
    options += [{"channel": channel} for channel in CHANNELS]
    return options + [{"executable_path": path} for name in BROWSER_NAMES
                      if (path := shutil.which(name))]


def _playwright() -> Any:
    """Playwright's sync API, or a clear error naming the install command."""
    try:
        from playwright import sync_api
    except ImportError as e:
        raise ExportError("Playwright is missing: `pip install -e .` installs it "
                          "(or `pip install playwright`).") from e
    return sync_api


@contextmanager
def launch(browser: str | None = None) -> Iterator[tuple[Any, str]]:
    """The first browser of ``browser_candidates`` that starts, with its path or channel."""
    sync_api = _playwright()
    with sync_api.sync_playwright() as p:
        skipped = []
        for option in browser_candidates(browser, p.chromium.executable_path):
            name = option.get("executable_path") or option["channel"]
            try:
                chromium = p.chromium.launch(**option, args=BROWSER_ARGS, timeout=60_000)
            except sync_api.Error as e:
                reason = str(e).splitlines()[0].removeprefix("BrowserType.launch: ")
                if "channel" in option:  # most often not installed: try the next
                    skipped.append(f"\n    {name}: {reason}")
                    continue
                raise NoBrowserError(f"{name} did not start ({reason}). Get a browser "
                                     f"Playwright can drive with:\n\n    {GET_BROWSER}") from e
            try:
                yield chromium, name
            finally:
                chromium.close()
            return
        raise NoBrowserError(f"no Chrome, Chromium or Edge found{':' if skipped else '.'}"
                             f"{''.join(skipped)}\n\nGet one with:\n\n    {GET_BROWSER}\n\n"
                             f"or name one with --browser PATH or ${BROWSER_ENV}.")


def which_browser(override: str | None = None) -> str:
    """The path or channel of the browser ``to_pdf`` would use (it is started once to check)."""
    with launch(override) as (_, name):
        return name


def printable(nb: Any) -> Any:
    """``nb`` as printed: without cells tagged NOT_PRINTED and nbval's comments, and with the
    static PNG of a widget instead of its view."""
    nb.cells = [c for c in nb.cells if NOT_PRINTED not in c.get("metadata", {}).get("tags", [])]
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.source = TEST_MARKER.sub("", cell.source)
        for out in cell.get("outputs", []):
            data = out.get("data", {})
            if WIDGET_VIEW in data and "image/png" in data:
                del data[WIDGET_VIEW]
    return nb


def to_html(notebook: Path | str) -> str:
    """The notebook as one HTML page for print that loads MathJax from ``ORIGIN/mathjax/``."""
    import nbformat
    from nbconvert import HTMLExporter

    if not (TEMPLATE / "index.html.j2").is_file():
        raise ExportError(f"the print template is missing from {TEMPLATE}: reinstall this "
                          "project (`pip install -e .`).")
    exporter = HTMLExporter(template_name=TEMPLATE.name,
                            extra_template_basedirs=[str(TEMPLATE.parent)],
                            exclude_input_prompt=True, exclude_output_prompt=True,
                            mathjax_url=f"{ORIGIN}/mathjax/MathJax.js?config={MATHJAX_CONFIG}")
    nb = printable(nbformat.read(str(notebook), as_version=4))
    return exporter.from_notebook_node(nb, {"metadata": {"name": Path(notebook).stem}})[0]


def _serve(route: Any, html: str, mathjax: Path) -> None:
    """Answer the page's requests: the page and MathJax's files; refuse everything else."""
    url = urlsplit(route.request.url)
    if f"{url.scheme}://{url.netloc}" != ORIGIN:
        return route.abort()
    if url.path == "/index.html":
        return route.fulfill(body=html, content_type="text/html; charset=utf-8")
    path = (mathjax / unquote(url.path.removeprefix("/mathjax/"))).resolve()
    if not (url.path.startswith("/mathjax/") and path.is_relative_to(mathjax.resolve())
            and path.is_file()):
        return route.fulfill(status=404)
    # Explicit types: Windows' registry may map .js to text/plain.
    types = {".js": "text/javascript", ".woff": "font/woff", ".otf": "font/otf"}
    kind = types.get(path.suffix) or mimetypes.guess_type(path.name)[0]
    route.fulfill(body=path.read_bytes(), content_type=kind or "application/octet-stream")


@contextmanager
def typeset_page(html: str, paper: str = "letter", browser: str | None = None) -> Iterator[Any]:
    """A Playwright page holding ``html``, laid out at the text width, with MathJax finished."""
    mathjax = mathjax_folder()
    if not (mathjax / "MathJax.js").is_file():
        raise ExportError(f"MathJax.js is missing from {mathjax}: "
                          "`pip install --force-reinstall jupyter-server-mathjax`.")
    with launch(browser) as (chromium, _):
        # Lay out and typeset at the printed width: MathJax measures the page as it is now, and a
        # layout made for a wider window would be cut off on paper.
        page = chromium.new_page(viewport={"width": text_width_px(paper), "height": 1000})
        page.set_default_timeout(TIMEOUT_S * 1000)
        page.emulate_media(media="print")
        page.route("**/*", lambda route: _serve(route, html, mathjax))
        page.goto(f"{ORIGIN}/index.html", wait_until="load")
        if not page.evaluate("() => !!(window.MathJax && MathJax.Hub)"):
            raise ExportError(f"MathJax did not load from {mathjax}.")
        try:
            page.evaluate(TYPESET_DONE)
        except _playwright().TimeoutError as e:
            raise ExportError(f"MathJax did not finish within {TIMEOUT_S} s.") from e
        yield page


def print_page(page: Any, paper: str = "letter") -> bytes:
    """``page`` printed on ``paper`` with the export's margins, bookmarks and tags, undated."""
    width, height = PAPERS[paper]
    data = page.pdf(width=f"{width:.4f}in", height=f"{height:.4f}in",
                    margin={side: f"{MARGIN_IN}in" for side in ("top", "right", "bottom", "left")},
                    print_background=True, outline=True, tagged=True,
                    display_header_footer=True, header_template="<span></span>",
                    footer_template=FOOTER)
    return without_dates(data)


def to_pdf(notebook: Path | str, pdf: Path | str, paper: str = "letter",
           browser: str | None = None) -> Path:
    """Write ``pdf`` from ``notebook``: maths typeset, figures embedded, a bookmark per heading."""
    with typeset_page(to_html(notebook), paper, browser) as page:
        data = print_page(page, paper)
    return write_atomic(Path(pdf).resolve(), data)  # a failed export never leaves half a PDF


def without_dates(data: bytes) -> bytes:
    """Blank the PDF's creation and modification dates, so the same notebook gives the same bytes.

    Each entry becomes spaces of the same length: the byte offsets of the cross-reference table
    stay valid, and a PDF may omit both dates.
    """
    return re.sub(rb"/(?:CreationDate|ModDate) ?\(D:[^)]*\)", lambda m: b" " * len(m.group()),
                  data)


def main(argv: list[str] | None = None) -> None:
    """Command line: on failure a clear message and a non-zero exit, never a traceback."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("notebook", type=Path)
    p.add_argument("pdf", type=Path, help="the PDF to write")
    p.add_argument("--paper", choices=sorted(PAPERS), default="letter")
    p.add_argument("--browser", help=f"Chrome, Chromium or Edge: a path, a command or one of "
                                     f"{', '.join(CHANNELS)} (or ${BROWSER_ENV})")
    args = p.parse_args(argv)
    start = time.monotonic()
    try:
        out = to_pdf(args.notebook, args.pdf, args.paper, args.browser)
    except (NoBrowserError, ExportError, OSError) as e:
        sys.exit(f"tools.pdf: {e}")
    print(f"wrote {out} in {time.monotonic() - start:.0f} s")


if __name__ == "__main__":
    main()
