"""Export the executed notebook to a print-ready PDF, offline, on macOS, Windows, Linux or Colab.

    python -m helpers.pdf hw1.ipynb hw1.pdf [--paper a4] [--browser PATH]
    python -m helpers.pdf hw1.ipynb --displays        # each display equation: width, fits or not
    python -m helpers.pdf hw1.ipynb hw1.pdf --figures  # each figure: how much paper shrinks it

nbconvert writes the HTML; MathJax 2.7 comes from the `jupyter-server-mathjax` package; Playwright
drives Chrome, Chromium or Edge, which lays the page out at the paper's text width, waits until
MathJax has typeset everything, and prints with a bookmark for every heading. Nothing is fetched
from the network: the page, MathJax and its fonts are served from memory and disk, and every
other request is refused.
"""

from __future__ import annotations

import argparse
import base64
import io
import mimetypes
import os
import re
import shutil
import subprocess
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
PX_PER_IN = 96  # CSS pixels per inch, on screen and on paper
MAX_REDUCTION = 1.5  # a figure may print at most this much smaller than it was drawn
BROWSER_ENV = "HW1_BROWSER"
GET_BROWSER = "python -m playwright install chromium"
# The page and MathJax are served under this origin inside the browser; `.invalid` never resolves.
ORIGIN = "http://hw1.invalid"
DEBIAN_MATHJAX = Path("/usr/share/javascript/mathjax")  # fallback: Debian's libjs-mathjax
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
NOT_PRINTED = "no-pdf"  # a cell tag: the cell stays in the notebook and is left out of the PDF
KEEP = "keep-with-next"  # given, for print only, to a Markdown cell that a code cell follows
TALL = "hw1-tall"  # a block without figures taller than TALL_SHARE of a page: it may break
TALL_SHARE = 0.6
MIN_SCALE = 0.8  # a figure may shrink to 80% of its width on the page to fit the room left there
INLINE_DPI = 100  # matplotlib's inline figures: pixels per inch they were drawn at
FIT_SLACK_PX = 12  # room kept free on a page when a figure is fitted to it
MIN_FILL = 0.65  # a page less full than this makes room for the block pushed off it
SPILL = 0.15  # a section's last page this empty holds lines a smaller figure lets back
TIMEOUT_S = 300  # a guard against a hung browser, not a wait: printing starts when MathJax is done

# Usual install places, tried after an override and Playwright's own Chromium.
_WINDOWS_DIRS = [os.environ.get(v, "")
                 for v in ("PROGRAMFILES", "PROGRAMFILES(X86)", "LOCALAPPDATA")]
BROWSER_PATHS = [
    *(f"{app}.app/Contents/MacOS/{app.rsplit('/', 1)[1]}" for app in [
        "/Applications/Google Chrome", "/Applications/Chromium", "/Applications/Microsoft Edge",
        f"{Path.home()}/Applications/Google Chrome"]),
    *(f"{base}\\{exe}" for base in _WINDOWS_DIRS if base for exe in [
        "Google\\Chrome\\Application\\chrome.exe", "Chromium\\Application\\chrome.exe",
        "Microsoft\\Edge\\Application\\msedge.exe"]),
    "/opt/google/chrome/chrome", "/opt/microsoft/msedge/msedge", "/snap/bin/chromium",
]
BROWSER_NAMES = ["google-chrome", "google-chrome-stable", "chromium", "chromium-browser",
                 "microsoft-edge", "msedge", "chrome"]

# Replaces nbconvert's MathJax output settings: no automatic line breaks (a display either fits
# or is rewritten by hand), and HTML-CSS output with the STIX-Web web fonts that
# jupyter-server-mathjax ships, never fonts installed locally, so every machine prints the same.
MATHJAX_CONFIG = """MMLorHTML: {prefer: "HTML"},
                "fast-preview": {disabled: true},
                AssistiveMML: {disabled: true},
                "HTML-CSS": {availableFonts: [], preferredFont: null, webFont: "STIX-Web",
                             imageFont: null, linebreaks: {automatic: %(auto)s}},
                CommonHTML: {linebreaks: {automatic: %(auto)s}},
                SVG: {linebreaks: {automatic: %(auto)s}}"""
PRINT_CSS = """<style>
@page { margin: %(margin)sin; }
html, body { margin: 0 !important; padding: 0 !important; }
body.jp-Notebook, .jp-Cell, .jp-RenderedHTMLCommon { padding-left: 0 !important;
  padding-right: 0 !important; }
/* Printed pages cannot scroll: wrap long code lines and keep figures inside the page. */
pre, .highlight pre, .jp-OutputArea-output pre { white-space: pre-wrap !important;
  overflow-wrap: anywhere; }
.jp-OutputArea-output img { max-width: 100%% !important; height: auto; }
.jp-OutputArea-output, .MathJax_Display, .MJXc-display, tr { break-inside: avoid; }
/* A display stays with the sentence that introduces it. */
.MathJax_Display, .MJXc-display { break-before: avoid; }
/* Each question starts a page. A code cell prints whole, so a figure or table stays with the
   code that makes it, and so does the paragraph that introduces it (KEEP_TOGETHER); only a tall
   block of text may break, between paragraph, code and output, never inside one. */
.jp-MarkdownCell:has(h2) { break-before: page; }
.jp-CodeCell:not(.%(tall)s), .jp-CodeCell .jp-InputArea, .%(keep)s:not(.%(tall)s) {
  break-inside: avoid; }
p, li { orphans: 2; widows: 2; }
/* pre-wrap: Chromium's bookmarks otherwise lose the space where a heading wraps. */
h1, h2, h3, h4, h5, h6 { break-after: avoid; white-space: pre-wrap; }
</style>"""
# Code and output blocks that print wrapped: laid out without wrapping, they overflow their box.
WRAPPED = """() => [...document.querySelectorAll(".jp-CodeCell pre")].flatMap(pre => {
  pre.style.setProperty("white-space", "pre", "important");
  const over = pre.scrollWidth > pre.clientWidth + 1;
  pre.style.removeProperty("white-space");
  const lines = pre.textContent.split("\\n");
  const longest = lines.reduce((a, b) => (b.length > a.length ? b : a), "");
  return over ? [{line: longest.slice(0, 60), chars: longest.length}] : [];
})"""
# Before printing: the last paragraph of each Markdown cell that a code cell follows (the one
# that introduces it, with any heading right above it) goes into one block with that code
# cell; then every code cell or such block without a figure and taller than ``limit`` (CSS px,
# at the text width) is marked tall.
KEEP_TOGETHER = """([keep, tall, limit]) => {
  for (const cell of document.querySelectorAll(".jp-MarkdownCell:has(.celltag_" + keep + ")")) {
    const text = cell.querySelector(".jp-RenderedMarkdown"), next = cell.nextElementSibling;
    if (!text || !text.lastElementChild || !next || !next.classList.contains("jp-CodeCell")) {
      continue;
    }
    const block = document.createElement("div"), intro = document.createElement("div");
    block.className = keep;
    intro.className = text.className;
    cell.after(block);
    intro.append(text.lastElementChild);
    // A heading right above that paragraph goes with it.
    while (text.lastElementChild && /^H[1-6]$/.test(text.lastElementChild.tagName)) {
      intro.prepend(text.lastElementChild);
    }
    block.append(intro, next);
  }
  const blocks = [...document.querySelectorAll(".jp-CodeCell, ." + keep)];
  blocks.filter(b => !b.querySelector("img") && b.getBoundingClientRect().height > limit)
    .forEach(b => b.classList.add(tall));
}"""
# Pagination is measured, not guessed: a first print carries a tiny link at the top and the
# bottom of every top-level block (MARK), which tells on which page and how far down each one
# starts and ends; the links are then removed (UNMARK) before the print that is kept.
MARK = """([origin, tall]) => {
  const blocks = [...document.querySelector(".jp-Cell").parentElement.children];
  return blocks.map((b, i) => {
    // A tall block may break between its parts, so each part is marked on its own.
    const parts = b.classList.contains(tall)
      ? [...b.querySelectorAll(":scope > .jp-RenderedMarkdown, .jp-Cell-inputWrapper, "
                               + ".jp-OutputArea-child")] : [b];
    parts.forEach((part, j) => {
      if (getComputedStyle(part).position === "static") part.style.position = "relative";
      for (const [end, css] of [["s", "top: 0"], ["e", "bottom: 0"]]) {
        const a = document.createElement("a");
        a.className = "hw1-mark";
        a.href = origin + "/" + end + i + "-" + j;
        a.style.cssText = "position: absolute; left: 0; width: 1px; height: 1px; " + css;
        part.append(a);
      }
    });
    return {section: b.matches(".jp-MarkdownCell:has(h2)"), parts: parts.length,
            figure: !!b.querySelector("img")};
  });
}"""
UNMARK = """() => document.querySelectorAll(".hw1-mark").forEach(a => a.remove())"""
# Makes room for block ``i`` in the ``left`` CSS px at the bottom of the page before it: shrinks
# its one figure, by at most ``1 - min_scale`` and keeping within MAX_REDUCTION of the figure's
# drawn size (``min_px`` CSS px per natural pixel); or else lets its introducing paragraph stay
# on that page (where ``release`` allows). Returns what it did.
MAKE_ROOM = """([keep, tall, fixes, minScale, minPx, slack]) => {
  const blocks = [...document.querySelector(".jp-Cell").parentElement.children];
  return fixes.map(([i, left, release]) => {
    const b = blocks[i], height = b.getBoundingClientRect().height;
    const images = b.querySelectorAll("img");
    if (images.length === 1) {
      const img = images[0], shown = img.getBoundingClientRect().height;
      const target = Math.floor(shown - (height + slack - left));
      if (target >= minScale * shown && target >= minPx * img.naturalHeight) {
        img.style.height = target + "px";
        img.style.width = "auto";
        return "block " + i + ": figure shrunk from " + Math.round(shown) + " to " + target + " px";
      }
    }
    const intro = b.firstElementChild;
    if (release && b.classList.contains(keep) && !b.classList.contains(tall)
        && intro.getBoundingClientRect().height + slack <= left) {
      b.classList.add(tall);
      return "block " + i + ": its introduction stays on the page before";
    }
    return null;
  }).filter(x => x);
}"""
# Lets block ``top`` (first on its page) leave its introducing paragraph on the page before,
# where ``above`` CSS px are free, if that frees enough room on its page for block ``pushed``,
# which missed the ``free`` px left there. Returns what it did.
MAKE_ROOM_ABOVE = """([keep, tall, top, pushed, free, above, slack]) => {
  const blocks = [...document.querySelector(".jp-Cell").parentElement.children];
  const b = blocks[top];
  if (!b.classList.contains(keep) || b.classList.contains(tall)) return [];
  const intro = b.firstElementChild.getBoundingClientRect().height;
  const need = blocks[pushed].getBoundingClientRect().height + slack - free;
  if (intro < need || intro + slack > above) return [];
  b.classList.add(tall);
  return ["block " + top + ": its introduction moves to the page before"];
}"""
# Resolves once MathJax's start-up typesetting and everything queued after it have finished.
# (The hooks return nothing: MathJax would wait for a callback that a hook returned.)
TYPESET_DONE = """() => new Promise(done => MathJax.Hub.Register.StartupHook("End", () => {
  MathJax.Hub.Queue(() => { document.fonts.ready.then(() => done(true)); });
}))"""
# An automatic break sets isMultiline on the maths (HTML-CSS and CommonHTML alike); CommonHTML
# also leaves .mjx-block lines in the display.
DISPLAYS = """() => {
  const vw = document.documentElement.clientWidth;
  return MathJax.Hub.getAllJax().filter(j => j.root.Get("display") === "block").map(j => {
    const frame = document.getElementById(j.inputID + "-Frame");
    const box = frame.closest(".MathJax_Display, .MJXc-display, .MathJax_SVG_Display")
                || frame.parentElement;
    const range = document.createRange();
    range.selectNodeContents(frame);
    const c = range.getBoundingClientRect(), b = box.getBoundingClientRect();
    const left = Math.max(b.left, 0), right = Math.min(b.right, vw);
    return {text: j.originalText.trim().replace(/\\s+/g, " ").slice(0, 80),
            width: Math.round(c.width * 10) / 10, available: Math.round((right - left) * 10) / 10,
            broken: !!j.root.isMultiline || !!box.querySelector(".mjx-block"),
            overflow: c.left < left - 0.5 || c.right > right + 0.5};
  });
}"""


class NoBrowserError(RuntimeError):
    """No usable Chrome, Chromium or Edge."""


class ExportError(RuntimeError):
    """The notebook could not be exported (MathJax missing, a changed nbconvert template, ...)."""


def text_width_px(paper: str = "letter") -> int:
    """Width of the printable area of ``paper`` in CSS pixels (Letter 720, A4 697)."""
    return int((PAPERS[paper][0] - 2 * MARGIN_IN) * PX_PER_IN)


def mathjax_source() -> tuple[Path, str]:
    """MathJax's folder and config: jupyter-server-mathjax's first, Debian's as a fallback."""
    try:
        import jupyter_server_mathjax
        folder = Path(jupyter_server_mathjax.__file__).parent / "static"
        if (folder / "MathJax.js").exists():
            # The package ships only the combined HTML-CSS config, not the CommonHTML ones.
            return folder, "TeX-AMS-MML_HTMLorMML-full,Safe"
    except ImportError:
        pass
    if (DEBIAN_MATHJAX / "MathJax.js").exists():
        return DEBIAN_MATHJAX, "TeX-AMS_CHTML-full,Safe"
    raise ExportError("MathJax not found: `pip install jupyter-server-mathjax` (a dependency "
                      "of this project: `pip install -e .`).")


def find_browser(override: str | None = None, bundled: str | None = None) -> str:
    """Browser to print with: ``override``, $HW1_BROWSER, ``bundled``, then usual places."""
    for source, given in (("--browser", override), (BROWSER_ENV, os.environ.get(BROWSER_ENV))):
        if given:
            path = shutil.which(given) or given  # a command on PATH or a path
            if not Path(path).is_file():
                raise NoBrowserError(f"{source} names {given!r}, which is not a file.")
            return path
    for path in [bundled, *BROWSER_PATHS]:
        if path and Path(path).is_file():
            return path
    for name in BROWSER_NAMES:
        if path := shutil.which(name):
            return path
    raise NoBrowserError(f"no Chrome, Chromium or Edge found. Get one with:\n\n    {GET_BROWSER}"
                         f"\n\nor name one with --browser PATH or ${BROWSER_ENV}.")


def _playwright() -> Any:
    """Playwright's sync API, or a clear error naming the install command."""
    try:
        from playwright import sync_api
    except ImportError as e:
        raise ExportError("Playwright is missing: `pip install -e .` installs it "
                          "(or `pip install playwright`).") from e
    return sync_api


def which_browser(override: str | None = None) -> str:
    """The browser ``to_pdf`` would use, Playwright's own Chromium included."""
    with _playwright().sync_playwright() as p:
        return find_browser(override, bundled=p.chromium.executable_path)


def prefer_static_frames(nb: Any) -> Any:
    """Drop the widget view from outputs that also hold a PNG, so the PNG is what prints."""
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            data = out.get("data", {})
            if WIDGET_VIEW in data and "image/png" in data:
                del data[WIDGET_VIEW]
    return nb


def to_html(notebook: Path | str, linebreaks: bool = False) -> str:
    """The notebook as one HTML page for print that loads MathJax from ``ORIGIN/mathjax/``."""
    import nbformat
    from nbconvert import HTMLExporter

    _, config = mathjax_source()
    exporter = HTMLExporter(template_name="lab", exclude_input_prompt=True,
                            exclude_output_prompt=True,
                            mathjax_url=f"{ORIGIN}/mathjax/MathJax.js?config={config}")
    nb = prefer_static_frames(nbformat.read(str(notebook), as_version=4))
    nb.cells = [c for c in nb.cells if NOT_PRINTED not in c.get("metadata", {}).get("tags", [])]
    for cell, after in zip(nb.cells, nb.cells[1:], strict=False):
        if cell.cell_type == "markdown" and after.cell_type == "code":
            cell.metadata.setdefault("tags", []).append(KEEP)
    html, _ = exporter.from_notebook_node(nb, {"metadata": {"name": Path(notebook).stem}})
    # nbconvert's template turns on automatic line breaks for CommonHTML; replace its setting.
    html, n = re.subn(r"CommonHTML:\s*\{\s*linebreaks:\s*\{\s*automatic:\s*true\s*\}\s*\}",
                      MATHJAX_CONFIG % {"auto": str(linebreaks).lower()}, html)
    if n != 1:
        raise ExportError("nbconvert's MathJax configuration has changed: update helpers/pdf.py.")
    css = PRINT_CSS % {"margin": MARGIN_IN, "keep": KEEP, "tall": TALL}
    return html.replace("</head>", css + "</head>", 1)


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
    sync_api = _playwright()
    mathjax, _ = mathjax_source()
    with sync_api.sync_playwright() as p:
        executable = find_browser(browser, bundled=p.chromium.executable_path)
        try:
            chromium = p.chromium.launch(executable_path=executable, timeout=60_000,
                                         args=["--disable-gpu", "--disable-dev-shm-usage"])
        except sync_api.Error as e:
            raise NoBrowserError(f"{executable} did not start ({str(e).splitlines()[0]}). "
                                 f"Get a browser Playwright can drive with:\n\n    {GET_BROWSER}"
                                 ) from e
        try:
            # Lay out and typeset at the printed width: MathJax measures the page as it is now,
            # and a layout made for a wider window would be cut off on paper.
            page = chromium.new_page(viewport={"width": text_width_px(paper), "height": 1000})
            page.set_default_timeout(TIMEOUT_S * 1000)
            page.emulate_media(media="print")
            page.route("**/*", lambda route: _serve(route, html, mathjax))
            page.goto(f"{ORIGIN}/index.html", wait_until="load")
            if not page.evaluate("() => !!(window.MathJax && MathJax.Hub)"):
                raise ExportError(f"MathJax did not load from {mathjax}.")
            try:
                page.evaluate(TYPESET_DONE)
            except sync_api.TimeoutError as e:
                raise ExportError(f"MathJax did not finish within {TIMEOUT_S} s.") from e
            yield page
        finally:
            chromium.close()


def to_pdf(notebook: Path | str, pdf: Path | str, paper: str = "letter",
           browser: str | None = None) -> Path:
    """Write ``pdf`` from ``notebook``: maths typeset, figures embedded, a bookmark per heading."""
    pdf = Path(pdf).resolve()
    width, height = PAPERS[paper]
    with typeset_page(to_html(notebook), paper, browser) as page:
        page.evaluate(KEEP_TOGETHER, [KEEP, TALL, TALL_SHARE * room_px(paper)])
        fill_pages(page, paper)
        data = _print(page, paper)
    return write_atomic(pdf, without_dates(data))  # a failed export never leaves half a PDF


def room_px(paper: str) -> float:
    """Height of the printable area of ``paper`` in CSS pixels (Letter 960)."""
    return (PAPERS[paper][1] - 2 * MARGIN_IN) * PX_PER_IN


def _print(page: Any, paper: str) -> bytes:
    """The page printed on ``paper`` with the export's margins, bookmarks and tags."""
    width, height = PAPERS[paper]
    return page.pdf(width=f"{width:.4f}in", height=f"{height:.4f}in",
                    margin={side: f"{MARGIN_IN}in" for side in ("top", "right", "bottom", "left")},
                    print_background=True, outline=True, tagged=True)


def block_pages(data: bytes, paper: str) -> dict[str, tuple[int, float]]:
    """Where MARK's links printed: ``"s3-0"``/``"e3-1"`` (start of block 3's first part, end of
    its second) to (page, how far down the printable area, 0 to 1)."""
    import pypdf

    top = (PAPERS[paper][1] - MARGIN_IN) * 72  # PDF points, from the bottom of the page
    room = room_px(paper) * 72 / PX_PER_IN
    where = {}
    for number, pdf_page in enumerate(pypdf.PdfReader(io.BytesIO(data)).pages):
        for annot in pdf_page.get("/Annots") or []:
            link = annot.get_object()
            uri = str(link.get("/A", {}).get("/URI", ""))
            if uri.startswith(ORIGIN + "/"):
                y = (float(link["/Rect"][1]) + float(link["/Rect"][3])) / 2
                where[uri.removeprefix(ORIGIN + "/")] = (number, (top - y) / room)
    return where


def _end(where: dict[str, tuple[int, float]], blocks: list[dict], i: int) -> tuple[int, float]:
    """Where block ``i`` ends: the end of its last part."""
    return where[f"e{i}-{blocks[i]['parts'] - 1}"]


def page_fills(where: dict[str, tuple[int, float]], blocks: list[dict]) -> list[float]:
    """How full each page is: down to the lowest part that ends on it, or full where a part
    (a paragraph that breaks) runs on to the next page."""
    pages = 1 + max(page for page, _ in where.values())
    fill = [0.0] * pages
    for i, block in enumerate(blocks):
        for j in range(block["parts"]):
            (first, _), (last, down) = where[f"s{i}-{j}"], where[f"e{i}-{j}"]
            for page in range(first, last):
                fill[page] = 1.0
            fill[last] = max(fill[last], down)
    return fill


def _pull_back_spills(where: dict[str, tuple[int, float]], blocks: list[dict],
                      fill: list[float], room: float) -> list[list]:
    """For a page that ends a section holding only the last few lines of it (less than
    SPILL full): the figure block above them, on the page before, shrunk by that much."""
    sections = [i for i, b in enumerate(blocks) if b["section"]] + [len(blocks)]
    fixes = []
    for end in sections[1:]:
        last_page = _end(where, blocks, end - 1)[0]
        if fill[last_page] >= SPILL or last_page == 0:
            continue
        above = [i for i in range(end) if blocks[i]["figure"]
                 and where[f"s{i}-0"][0] == where[f"e{i}-0"][0] == last_page - 1]
        if above:
            i = above[-1]
            height = (where[f"e{i}-0"][1] - where[f"s{i}-0"][1]) * room
            fixes.append([i, round(height - fill[last_page] * room), False])
    return fixes


def fill_pages(page: Any, paper: str, passes: int = 8) -> list[str]:
    """Print, find the first page less than MIN_FILL full (or a section ending in stray lines),
    make room for what was pushed off it, and again, up to ``passes`` times. A page that ends a
    question (the next starts with a second-level heading) and the last page may stay short.
    Returns what was changed."""
    def make_room(fixes: list[list]) -> list[str]:
        return page.evaluate(MAKE_ROOM, [KEEP, TALL, fixes, MIN_SCALE,
                                         PX_PER_IN / (MAX_REDUCTION * INLINE_DPI), FIT_SLACK_PX])

    done: list[str] = []
    tried: set[tuple] = set()
    room = room_px(paper)
    for _ in range(passes):
        blocks = page.evaluate(MARK, [ORIGIN, TALL])
        where = block_pages(_print(page, paper), paper)
        page.evaluate(UNMARK)
        if not blocks:
            break
        fill = page_fills(where, blocks)
        firsts = {}  # page -> the block that starts at its top
        for i in range(1, len(blocks)):
            start = where[f"s{i}-0"][0]
            if _end(where, blocks, i - 1)[0] < start:
                firsts[start] = i
        changed: list[str] = []
        for p, i in sorted(firsts.items()):
            free = round((1 - fill[p - 1]) * room)
            if fill[p - 1] >= MIN_FILL or blocks[i]["section"] or (p, i) in tried:
                continue
            tried.add((p, i))
            # In order of preference: shrink the pushed block's figure; let the page's own first
            # block hand its introduction to the page before, which makes room for the pushed
            # block whole; let the pushed block leave its introduction behind.
            top = firsts.get(p - 1)
            for remedy in ("shrink", "above", "release"):
                if remedy == "above":
                    if top is None or blocks[top]["section"]:
                        continue
                    changed = page.evaluate(MAKE_ROOM_ABOVE, [
                        KEEP, TALL, top, i, free, round((1 - fill[p - 2]) * room), FIT_SLACK_PX])
                else:
                    changed = make_room([[i, free, remedy == "release"]])
                if changed:
                    break
            if changed:
                break
        if not changed:
            changed = make_room(_pull_back_spills(where, blocks, fill, room))
        if not changed:
            break
        done += changed
    return done


def without_dates(data: bytes) -> bytes:
    """Blank the PDF's creation and modification dates, so the same notebook gives the same bytes.

    Each entry becomes spaces of the same length: the byte offsets of the cross-reference table
    stay valid, and a PDF may omit both dates.
    """
    return re.sub(rb"/(?:CreationDate|ModDate) ?\(D:[^)]*\)", lambda m: b" " * len(m.group()),
                  data)


def print_report(notebook: Path | str, paper: str = "letter", browser: str | None = None,
                 linebreaks: bool = False) -> dict[str, list[dict]]:
    """The printed layout at the text width: each display equation (TeX start, width and room
    in CSS px, broken, overflow), and each code or output block with a line too long to print
    on one line (its longest line and length)."""
    with typeset_page(to_html(notebook, linebreaks), paper, browser) as page:
        return {"displays": page.evaluate(DISPLAYS), "wrapped": page.evaluate(WRAPPED)}


def display_report(notebook: Path | str, paper: str = "letter", browser: str | None = None,
                   linebreaks: bool = False) -> list[dict]:
    """Each display equation as printed (see ``print_report``)."""
    return print_report(notebook, paper, browser, linebreaks)["displays"]


def notebook_images(notebook: Path | str) -> list[dict]:
    """Each PNG output in order: cell, what it is, pixel size and the dpi in its pHYs chunk."""
    import nbformat
    from PIL import Image

    rows = []
    for i, cell in enumerate(nbformat.read(str(notebook), as_version=4).cells):
        for out in cell.get("outputs", []):
            if png := out.get("data", {}).get("image/png"):
                image = Image.open(io.BytesIO(base64.b64decode(png)))
                # Named by the file the cell saves it to, else by its first line of code.
                saved = re.search(r"[\w-]+\.png", cell.source)
                first = next((ln for ln in cell.source.splitlines()
                              if ln.strip() and not ln.startswith("#")), "")
                # Without pHYs the browser shows one pixel per CSS px.
                dpi = round(image.info.get("dpi", (PX_PER_IN,))[0], 1)
                rows.append({"cell": i, "name": saved[0] if saved else first[:60],
                             "size": image.size, "dpi": dpi, "widget": WIDGET_VIEW in out["data"]})
    return rows


def pdf_images(pdf: Path | str) -> list[dict]:
    """Each image drawn in ``pdf`` (poppler's ``pdfimages -list``): page, pixel size, x-ppi."""
    if shutil.which("pdfimages") is None:
        raise ExportError("needs poppler's pdfimages (Debian: apt-get install poppler-utils; "
                          "macOS: brew install poppler).")
    listing = subprocess.run(["pdfimages", "-list", str(pdf)], check=True,
                             capture_output=True, text=True).stdout.splitlines()[2:]
    return [{"page": int(f[0]), "size": (int(f[3]), int(f[4])), "ppi": int(f[12])}
            for f in map(str.split, listing) if f[2] == "image"]


def figure_report(notebook: Path | str, pdf: Path | str, paper: str = "letter") -> list[dict]:
    """Each notebook PNG with the image that prints it: reduction = printed ppi / drawn dpi."""
    # A figure wider than the text is shrunk to fit it, so it passes if drawn at most
    # max_width_in wide; ppi is None when the PDF has no image of the PNG's pixel size.
    room_in = text_width_px(paper) / PX_PER_IN
    printed = pdf_images(pdf)
    rows = []
    for image in notebook_images(notebook):
        match = next((p for p in printed if p["size"] == image["size"]), None)
        if match:
            printed.remove(match)
        ppi = match and match["ppi"]
        fits = image["dpi"] / PX_PER_IN <= MAX_REDUCTION  # shown at one pixel per CSS px
        rows.append({**image, "page": match and match["page"], "ppi": ppi,
                     "reduction": ppi and round(ppi / image["dpi"], 2),
                     "width_in": round(image["size"][0] / image["dpi"], 2),
                     "max_width_in": round(MAX_REDUCTION * room_in, 2) if fits else 0.0})
    return rows


def main(argv: list[str] | None = None) -> None:
    """Command line: on failure a clear message and a non-zero exit, never a traceback."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("notebook", type=Path)
    p.add_argument("pdf", type=Path, nargs="?", help="the PDF to write")
    p.add_argument("--paper", choices=sorted(PAPERS), default="letter")
    p.add_argument("--browser", help=f"Chrome, Chromium or Edge to use (or ${BROWSER_ENV})")
    p.add_argument("--displays", action="store_true",
                   help="list every display equation with its printed width; write no PDF")
    p.add_argument("--figures", action="store_true",
                   help="after writing the PDF, list how much each figure is shrunk (poppler)")
    args = p.parse_args(argv)
    if not args.displays and args.pdf is None:
        p.error("name the PDF to write, or pass --displays")
    start = time.monotonic()
    try:
        if args.displays:
            print(f"text width {text_width_px(args.paper)} px ({args.paper}); width / room:")
            for r in display_report(args.notebook, args.paper, args.browser):
                flag = " ".join(k.upper() for k in ("broken", "overflow") if r[k]) or "ok"
                print(f"{r['width']:7.1f} / {r['available']:5.1f} px  {flag:8}  {r['text']}")
            return
        out = to_pdf(args.notebook, args.pdf, args.paper, args.browser)
        print(f"wrote {out} in {time.monotonic() - start:.0f} s")
        if args.figures:
            for r in figure_report(args.notebook, out, args.paper):
                print(f"cell {r['cell']:3} page {r['page']}  {r['width_in']:5.2f} in at "
                      f"{r['dpi']:g} dpi, printed at {r['ppi']} ppi: reduced {r['reduction']}x"
                      f" (passes up to {r['max_width_in']} in)  {r['name']}")
    except (NoBrowserError, ExportError, OSError, subprocess.CalledProcessError) as e:
        sys.exit(f"helpers.pdf: {e}")


if __name__ == "__main__":
    main()
