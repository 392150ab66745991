"""The Canvas PDF of hw1.ipynb, exported as a student would: MathJax from the Python package,
every display within the text width, bookmarks, legible figures, the widget's static frame.

Needs a browser (Chrome, Chromium or Edge; `python -m playwright install chromium` gets one);
the figure checks also need poppler's `pdfimages`.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import nbformat
import numpy as np
import pypdf
import pytest
from PIL import Image

from helpers import pdf

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOK = ROOT / "hw1.ipynb"
REEXECUTE = "re-execute the notebook (`make run`) so its outputs are current"
MIN_FILL = 0.6  # of the text height, on every page but the last of a section
MIN_END_FILL = 0.15  # the last page of a section: more than a few stray lines


@pytest.fixture(scope="module")
def rendered(browser: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """hw1.pdf on Letter, with Debian's MathJax out of reach: the package's must do."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(pdf, "DEBIAN_MATHJAX", tmp_path_factory.mktemp("no-debian") / "mathjax")
        assert pdf.mathjax_source()[0].parent.name == "jupyter_server_mathjax"
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
    for raw in ("$$", "\\frac", "\\sum", "\\mathcal", "\\begin{aligned}"):
        assert raw not in text, f"raw LaTeX {raw!r} in the PDF: MathJax did not finish"
    assert "∑" in text, "no typeset ∑ in the PDF's text"


def test_pages_are_letter(rendered):
    sizes = {(round(float(p.mediabox.width)), round(float(p.mediabox.height)))
             for p in pypdf.PdfReader(rendered).pages}
    assert sizes == {(612, 792)}


@pytest.fixture(scope="module", params=sorted(pdf.PAPERS))
def layout(request, browser) -> tuple[str, dict[str, list[dict]]]:
    """The printed layout on each paper size."""
    return request.param, pdf.print_report(NOTEBOOK, request.param, browser)


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


def test_every_page_is_well_filled_and_no_section_ends_in_stray_lines(rendered, tmp_path):
    if shutil.which("pdftoppm") is None:
        pytest.skip("needs poppler's pdftoppm (Debian: poppler-utils)")
    subprocess.run(["pdftoppm", "-r", "30", "-gray", str(rendered), str(tmp_path / "p")],
                   check=True)
    reader = pypdf.PdfReader(rendered)
    ends = {page - 1 for page in _section_starts(reader)} | {len(reader.pages)}
    margin = round(pdf.MARGIN_IN * 30)
    sparse = []
    for number, path in enumerate(sorted(tmp_path.glob("p-*.pgm")), start=1):
        ink = np.asarray(Image.open(path)) < 240
        rows = np.flatnonzero(ink.any(axis=1))
        fill = (rows.max() - margin) / (ink.shape[0] - 2 * margin) if len(rows) else 0.0
        if fill < (MIN_END_FILL if number in ends else MIN_FILL):
            sparse.append(f"page {number}: {fill:.0%}")
    assert len(ends) > 2 and not sparse, (
        f"pages less than {MIN_FILL:.0%} full (the last of a section: {MIN_END_FILL:.0%}): "
        f"{sparse}")


def test_no_code_or_output_line_wraps(layout):
    paper, report = layout
    wrapped = [f"{r['chars']} characters: {r['line']}" for r in report["wrapped"]]
    assert not wrapped, (f"lines too long for {paper} ({pdf.text_width_px(paper)} px); "
                         "shorten them:\n" + "\n".join(wrapped))


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


@pytest.fixture(scope="module")
def figures(rendered: Path) -> list[dict]:
    """figure_report for the rendered PDF (needs poppler's pdfimages)."""
    if shutil.which("pdfimages") is None:
        pytest.skip("needs poppler's pdfimages (Debian: poppler-utils)")
    return pdf.figure_report(NOTEBOOK, rendered)


def test_figures_print_at_most_1_5_times_smaller(figures):
    drawn = [f for f in figures if f["ppi"]]
    assert drawn, "no figure found in the PDF"
    small = [f"{f['name']} (cell {f['cell']}): drawn {f['width_in']} in wide at {f['dpi']:g} dpi, "
             f"printed at {f['ppi']} ppi = {f['reduction']}x smaller; passes at "
             f"<= {f['max_width_in']} in" for f in drawn if f["reduction"] > pdf.MAX_REDUCTION]
    assert not small, "figures too small on paper (10-pt labels below 6.7 pt):\n" + "\n".join(small)


def test_pdf_embeds_every_figure_and_the_widget_frame(rendered, figures):
    nb = nbformat.read(NOTEBOOK, as_version=4)
    widget_outputs = [out for cell in nb.cells for out in cell.get("outputs", [])
                      if pdf.WIDGET_VIEW in out.get("data", {})]
    assert widget_outputs, f"no widget output in the notebook: {REEXECUTE}"
    frames = [f for f in figures if f["widget"]]
    assert frames, f"the widget's output has no image/png frame beside it: {REEXECUTE}"
    n_figures = len([f for f in figures if not f["widget"]])
    images = pdf.pdf_images(rendered)
    assert len(images) == n_figures + 1, f"{len(images)} images for {n_figures} figures + widget"
    assert all(f["ppi"] for f in figures), [f["name"] for f in figures if not f["ppi"]]


def test_final_numbers_and_every_question_are_in_the_pdf(text):
    for needed in ("Question 1", "Question 2", "Question 3", "Question 4", "Final -ELBO"):
        assert needed in text, f"{needed!r} missing: {REEXECUTE}"


def test_the_colab_setup_cell_is_not_printed(text):
    assert "REPO_URL" not in text and "YOUR-ACCOUNT" not in text
