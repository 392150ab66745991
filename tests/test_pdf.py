"""The Canvas PDF of hw1.ipynb, exported as a student would: MathJax from the Python package,
every display within the text width, no wrapped lines, well-filled pages, bookmarks, legible
figures, the widget's static frame.

Needs a browser (Chrome, Chromium or Edge; `python -m playwright install chromium` gets one);
the page and figure checks also need poppler's `pdftoppm` and `pdfimages`.
"""

from __future__ import annotations

import base64
import io
import re
import shutil
import subprocess
from pathlib import Path

import nbformat
import numpy as np
import pypdf
import pytest
from nbconvert import HTMLExporter
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output
from PIL import Image

from tools import pdf

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOK = ROOT / "hw1.ipynb"
REEXECUTE = "re-execute the notebook (`make run`) so its outputs are current"
SPARSE = 0.5  # a page less full than this, of the text height, is sparse
MAX_SPARSE = 3  # sparse pages allowed, besides the cover and the last page of each question
MAX_PAGES = 13  # on Letter: a grader's twenty minutes
MAX_REDUCTION = 1.5  # a PNG figure may print at most this much smaller than it was drawn
# Each display equation as typeset: TeX start, width and room in CSS px, broken (an automatic
# line break sets isMultiline; CommonHTML also leaves .mjx-block lines), overflow.
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
# Code and output blocks that print wrapped: laid out without wrapping, they overflow their box.
WRAPPED = """() => [...document.querySelectorAll(".jp-CodeCell pre")].flatMap(pre => {
  pre.style.setProperty("white-space", "pre", "important");
  const over = pre.scrollWidth > pre.clientWidth + 1;
  pre.style.removeProperty("white-space");
  const lines = pre.textContent.split("\\n");
  const longest = lines.reduce((a, b) => (b.length > a.length ? b : a), "");
  return over ? [{line: longest.slice(0, 60), chars: longest.length}] : [];
})"""


@pytest.fixture(scope="module")
def rendered(browser: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """hw1.pdf on Letter: the one export of the real notebook in a test run."""
    return pdf.to_pdf(NOTEBOOK, tmp_path_factory.mktemp("pdf") / "hw1.pdf", browser=browser)


@pytest.fixture(scope="module")
def text(rendered: Path) -> str:
    """The PDF's text layer."""
    return "\n".join(page.extract_text() for page in pypdf.PdfReader(rendered).pages)


def _outline(reader: pypdf.PdfReader) -> list[tuple[str, list]]:
    """The bookmarks as (title, children) trees."""
    def tree(items: list) -> list[tuple[str, list]]:
        nodes: list[tuple[str, list]] = []
        for item in items:
            if isinstance(item, list):
                nodes[-1][1].extend(tree(item))
            else:
                nodes.append((item.title, []))
        return nodes
    return tree(reader.outline)


def _walk(nodes: list[tuple[str, list]]) -> list[tuple[str, list]]:
    """Every node of the bookmark trees, depth first."""
    return [n for node in nodes for n in [node, *_walk(node[1])]]


def test_maths_is_typeset_by_the_python_package(text):
    assert pdf.mathjax_folder().parent.name == "jupyter_server_mathjax"
    for raw in ("$$", "\\frac", "\\sum", "\\mathcal", "\\begin{aligned}"):
        assert raw not in text, f"raw LaTeX {raw!r} in the PDF: MathJax did not finish"
    assert "∑" in text, "no typeset ∑ in the PDF's text"


def test_pages_are_letter_and_undated(rendered):
    sizes = {(round(float(p.mediabox.width)), round(float(p.mediabox.height)))
             for p in pypdf.PdfReader(rendered).pages}
    assert sizes == {(612, 792)}
    assert b"(D:" not in rendered.read_bytes(), "a creation or modification date is left"


@pytest.fixture(scope="module")
def layout(browser) -> tuple[str, dict[str, list[dict]]]:
    """The typeset layout of the real notebook, displays and wrapped lines, on the paper with
    the narrowest text: what fits there fits on every paper (the layout differs in width only)."""
    paper = min(pdf.PAPERS, key=pdf.text_width_px)
    with pdf.typeset_page(pdf.to_html(NOTEBOOK), paper, browser) as page:
        return paper, {"displays": page.evaluate(DISPLAYS), "wrapped": page.evaluate(WRAPPED)}


def test_every_display_fits_the_text_width(layout):
    paper, report = layout
    rows = report["displays"]
    assert rows, "no display equations found"
    bad = [f"{r['width']:.0f} px of {r['available']:.0f}"
           f"{', broken by MathJax' if r['broken'] else ''}"
           f"{', overflows' if r['overflow'] else ''}: {r['text']}"
           for r in rows if r["broken"] or r["overflow"]]
    assert not bad, (f"{len(bad)} of {len(rows)} displays do not fit {paper} "
                     f"({pdf.text_width_px(paper)} px):\n" + "\n".join(bad))


def test_no_code_or_output_line_wraps(layout):
    paper, report = layout
    wrapped = [f"{r['chars']} characters: {r['line']}" for r in report["wrapped"]]
    assert not wrapped, (f"lines too long for {paper} ({pdf.text_width_px(paper)} px); "
                         "shorten them:\n" + "\n".join(wrapped))


LONG = "$$" + " + ".join(f"\\frac{{a_{{{i}}}}}{{b_{{{i}}}}}" for i in range(40)) + "$$"
SHORT = "$$\\sum_{i=1}^{k} x_i^2$$"


def test_the_display_check_sees_breaks_and_overflow(browser, tmp_path):
    path = tmp_path / "nb.ipynb"
    nbformat.write(new_notebook(cells=[new_markdown_cell(LONG), new_markdown_cell(SHORT)]), path)
    html = pdf.to_html(path)
    with pdf.typeset_page(html.replace("automatic: false", "automatic: true"),
                          browser=browser) as page:
        broken, fine = page.evaluate(DISPLAYS)
    assert broken["broken"] and not fine["broken"] and not fine["overflow"]
    with pdf.typeset_page(html, browser=browser) as page:
        long, short = page.evaluate(DISPLAYS)
    assert long["overflow"] and not long["broken"] and long["width"] > long["available"]
    assert not short["overflow"] and short["text"].startswith("\\sum")


def _section_starts(reader: pypdf.PdfReader) -> set[int]:
    """1-based pages where a second-level heading (a question, "Beyond the assignment") starts."""
    starts: set[int] = set()
    def walk(items: list, depth: int) -> None:
        for item in items:
            if isinstance(item, list):
                walk(item, depth + 1)
            elif depth == 1:
                starts.add(reader.get_destination_page_number(item) + 1)
    walk(reader.outline, 0)
    return starts


def page_fills(pdf_path: Path, folder: Path, dpi: int = 30) -> list[float]:
    """How far down its text area each page is inked (0 to 1): the lowest non-white pixel row
    of the page rendered at ``dpi``, less the top margin, over the text height."""
    subprocess.run(["pdftoppm", "-r", str(dpi), "-gray", str(pdf_path), str(folder / "p")],
                   check=True)
    margin = round(pdf.MARGIN_IN * dpi)
    fills = []
    for path in sorted(folder.glob("p-*.pgm"), key=lambda p: int(p.stem.split("-")[1])):
        ink = np.asarray(Image.open(path))[margin:-margin] < 240  # the page number lies below
        rows = np.flatnonzero(ink.any(axis=1))
        fills.append(rows.max() / ink.shape[0] if len(rows) else 0.0)
    return fills


def test_page_fill_is_the_lowest_inked_row(tmp_path):
    if shutil.which("pdftoppm") is None:
        pytest.skip("needs poppler's pdftoppm (Debian: poppler-utils)")
    # Two Letter pages drawn at 60 dpi: a bar ending 40% down the text area, and a blank page.
    dpi, margin = 60, round(pdf.MARGIN_IN * 60)
    filled = Image.new("L", (510, 660), 255)
    filled.paste(0, (margin, margin, 200, margin + round(0.4 * (660 - 2 * margin))))
    filled.save(tmp_path / "two.pdf", resolution=dpi, save_all=True,
                append_images=[Image.new("L", (510, 660), 255)])
    bar, blank = page_fills(tmp_path / "two.pdf", tmp_path)
    assert abs(bar - 0.4) < 0.02 and blank == 0.0


def test_pages_are_well_filled(rendered, tmp_path):
    if shutil.which("pdftoppm") is None:
        pytest.skip("needs poppler's pdftoppm (Debian: poppler-utils)")
    reader = pypdf.PdfReader(rendered)
    ends = {page - 1 for page in _section_starts(reader)} | {len(reader.pages)}
    fills = page_fills(rendered, tmp_path)
    sparse = [f"page {n}: {fill:.0%}" for n, fill in enumerate(fills, start=1)
              if fill < SPARSE and n != 1 and n not in ends]
    assert len(ends) > 2 and len(sparse) <= MAX_SPARSE, (
        f"{len(sparse)} pages less than {SPARSE:.0%} full (at most {MAX_SPARSE}, not counting "
        f"the cover and the last page of each question): {sparse}")


def _top_level(reader: pypdf.PdfReader) -> dict[str, tuple[int, float]]:
    """Each second-level heading (a question, "Beyond the assignment"): its 1-based page, and
    the share of that page's text height left from its top down."""
    height = float(reader.pages[0].mediabox.height)
    margin = pdf.MARGIN_IN * 72
    found = {}
    def walk(items: list, depth: int) -> None:
        for item in items:
            if isinstance(item, list):
                walk(item, depth + 1)
            elif depth == 1:
                left = (float(item.top) - margin) / (height - 2 * margin)
                found[item.title] = (reader.get_destination_page_number(item) + 1, left)
    walk(reader.outline, 0)
    return found


def test_the_pdf_is_short_enough_to_grade_in_twenty_minutes(rendered, tmp_path):
    if shutil.which("pdftoppm") is None:
        pytest.skip("needs poppler's pdftoppm (Debian: poppler-utils)")
    reader = pypdf.PdfReader(rendered)
    pages, starts = len(reader.pages), _top_level(reader)
    q4 = next(p for t, (p, _) in starts.items() if t.startswith("Question 4"))
    beyond, left = next(v for t, v in starts.items() if t.startswith("Beyond"))
    assert pages <= MAX_PAGES, f"{pages} pages, at most {MAX_PAGES}"
    last = beyond - 1 if left > 0.97 else beyond  # Beyond at a page's top: Q4 ended before
    assert last - q4 + 1 <= 4, f"Question 4 spans pages {q4}-{last}, at most 4"
    # Beyond's length in pages: the rest of its first page, the pages between, the last one's fill
    length = left + (pages - beyond - 1) + page_fills(rendered, tmp_path)[-1]
    assert length <= 2, f"Beyond the assignment is {length:.2f} pages long, at most 2"


def test_question_4_starts_a_page_and_question_1_shares_the_cover(rendered):
    reader = pypdf.PdfReader(rendered)
    starts = _top_level(reader)
    assert next(p for t, (p, _) in starts.items() if t.startswith("Question 1")) == 1
    q4, left = next(v for t, v in starts.items() if t.startswith("Question 4"))
    assert left > 0.97, f"Question 4 starts {1 - left:.0%} down page {q4}, not at its top"


def test_bookmarks_list_the_questions_and_their_parts(rendered):
    nodes = _walk(_outline(pypdf.PdfReader(rendered)))
    questions = {m[1]: children for title, children in nodes
                 if (m := re.match(r"Question ([1-4])\b", title))}
    assert sorted(questions) == ["1", "2", "3", "4"], [t for t, _ in nodes]
    assert all(questions.values()), {q: [t for t, _ in c] for q, c in questions.items()}


def test_every_bookmark_reads_whole(rendered):
    titles = [title for title, _ in _walk(_outline(pypdf.PdfReader(rendered)))]
    headings = [re.sub(r"[*`]", "", m[1]).strip()
                for cell in nbformat.read(NOTEBOOK, as_version=4).cells
                if cell.cell_type == "markdown"
                for m in re.finditer(r"^#{1,6} +(.+)$", cell.source, re.M)]
    maths = [h for h in headings if "$" in h]
    assert not maths, f"maths in a heading drops out of its bookmark: {maths}"
    broken = [t for t in titles if "  " in t or t != t.strip() or re.search(r"[\ue000-\uf8ff]", t)
              or re.search(r"\b(between|and|of|to|with|for)$", t)]
    assert not broken, f"bookmarks with text missing: {broken}"
    assert titles == headings


def notebook_figures(notebook: Path) -> list[dict]:
    """Each figure as it prints, in order: an SVG (how many raster images it embeds) or a PNG
    (pixel size, and the dpi of its pHYs chunk: without one the browser shows one pixel per
    CSS px), whichever nbconvert shows of the output."""
    priority = HTMLExporter().config.NbConvertBase.display_data_priority
    rows = []
    for i, cell in enumerate(pdf.printable(nbformat.read(notebook, as_version=4)).cells):
        for out in cell.get("outputs", []):
            data = out.get("data", {})
            shown = next((kind for kind in priority if kind in data), None)
            # Named by the file the cell saves it to, else by its first line of code.
            saved = re.search(r"[\w-]+\.(?:png|svg)", cell.source)
            name = saved[0] if saved else cell.source.strip().splitlines()[0][:60]
            if shown == "image/svg+xml":
                rows.append({"cell": i, "name": name, "svg": True,
                             "rasters": data[shown].count("<image")})
            elif shown == "image/png":
                image = Image.open(io.BytesIO(base64.b64decode(data[shown])))
                rows.append({"cell": i, "name": name, "svg": False, "size": image.size,
                             "dpi": round(image.info.get("dpi", (pdf.PX_PER_IN,))[0], 1)})
    return rows


def test_notebook_figures_are_what_nbconvert_shows(tmp_path):
    png = Image.new("RGB", (30, 20))
    buf = io.BytesIO()
    png.save(buf, format="PNG", dpi=(100, 100))
    data = base64.b64encode(buf.getvalue()).decode()
    svg = '<svg xmlns="http://www.w3.org/2000/svg"><image href="x.png"/><image href="y"/></svg>'
    outputs = [new_output("display_data", d) for d in (
        {"image/png": data}, {"image/svg+xml": svg, "image/png": data},
        {pdf.WIDGET_VIEW: {"model_id": "0" * 32}, "image/png": data}, {"text/plain": "1"})]
    path = tmp_path / "nb.ipynb"
    nbformat.write(new_notebook(cells=[new_code_cell("plot('a.png')", outputs=outputs)]), path)
    rows = notebook_figures(path)
    assert [(r["svg"], r.get("rasters"), r.get("size"), r.get("dpi")) for r in rows] == [
        (False, None, (30, 20), 100), (True, 2, None, None), (False, None, (30, 20), 100)]
    assert {r["name"] for r in rows} == {"a.png"}


def pdf_images(path: Path) -> list[dict]:
    """Each raster image drawn in the PDF (poppler's ``pdfimages -list``): page, size, x-ppi."""
    listing = subprocess.run(["pdfimages", "-list", str(path)], check=True,
                             capture_output=True, text=True).stdout.splitlines()[2:]
    return [{"page": int(f[0]), "size": (int(f[3]), int(f[4])), "ppi": int(f[12])}
            for f in map(str.split, listing) if f[2] == "image"]


@pytest.fixture(scope="module")
def figures(rendered: Path) -> tuple[list[dict], list[dict]]:
    """The notebook's PNG figures, each with the image that prints it (ppi None where none
    does), and the PDF's images that print no PNG."""
    if shutil.which("pdfimages") is None:
        pytest.skip("needs poppler's pdfimages (Debian: poppler-utils)")
    printed = pdf_images(rendered)
    pngs = []
    for figure in (f for f in notebook_figures(NOTEBOOK) if not f["svg"]):
        match = next((p for p in printed if p["size"] == figure["size"]), None)
        if match:
            printed.remove(match)
        pngs.append({**figure, "page": match and match["page"], "ppi": match and match["ppi"]})
    return pngs, printed


def test_png_figures_print_at_most_1_5_times_smaller(figures):
    pngs, _ = figures
    missing = [f"{f['name']} (cell {f['cell']})" for f in pngs if not f["ppi"]]
    assert not missing, f"PNG figures not found in the PDF: {missing}"
    room_in = pdf.text_width_px() / pdf.PX_PER_IN
    small = [f"{f['name']} (cell {f['cell']}): drawn {f['size'][0] / f['dpi']:.2f} in wide at "
             f"{f['dpi']:g} dpi, printed at {f['ppi']} ppi = {f['ppi'] / f['dpi']:.2f}x smaller;"
             f" at most {MAX_REDUCTION * room_in:.2f} in wide passes"
             for f in pngs if f["ppi"] / f["dpi"] > MAX_REDUCTION]
    assert not small, "figures too small on paper (10-pt labels below 6.7 pt):\n" + "\n".join(small)


def test_svg_figures_print_as_vectors(figures):
    _, others = figures
    embedded = sum(f["rasters"] for f in notebook_figures(NOTEBOOK) if f["svg"])
    assert len(others) == embedded, (
        f"{len(others)} raster images print no PNG figure, but the SVG figures embed only "
        f"{embedded}: an SVG was printed as a bitmap? {others}")


def test_pdf_embeds_every_png_figure_and_no_widget():
    printed = pdf.printable(nbformat.read(NOTEBOOK, as_version=4))
    widgets = [out for cell in printed.cells for out in cell.get("outputs", [])
               if pdf.WIDGET_VIEW in out.get("data", {})]
    assert not widgets, "a live widget prints as an empty box: tag its cell no-pdf"


def test_final_numbers_and_every_question_are_in_the_pdf(text):
    for needed in ("Question 1", "Question 2", "Question 3", "Question 4", "Final -ELBO"):
        assert needed in text, f"{needed!r} missing: {REEXECUTE}"


def test_setup_cell_test_markers_and_anchor_glyphs_are_not_printed(text):
    assert "REPO_URL" not in text and "YOUR-ACCOUNT" not in text
    assert "NBVAL" not in text and "¶" not in text
