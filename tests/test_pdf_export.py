"""tools.pdf on small notebooks: browser discovery, the command line, what prints of a cell
(widget frames, nbval's comments, untagged cells), the print rules, links, vector figures and
paper sizes."""

from __future__ import annotations

import base64
import io
import os
import re
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import nbformat
import pypdf
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output
from PIL import Image

from helpers.files import current_umask
from tools import pdf

ROOT = Path(__file__).resolve().parent.parent
SHORT = "$$\\sum_{i=1}^{k} x_i^2$$"
# Lines and text, and a bitmap inside (as matplotlib embeds an imshow): only that is a raster.
SVG = ('<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink" '
       'width="240" height="120"><rect width="240" height="120" fill="#36c"/>'
       '<text x="20" y="60">vector label</text>'
       '<image x="150" y="10" width="60" height="40" xlink:href="data:image/png;base64,{png}"/>'
       '</svg>')


def _png(size: tuple[int, int] = (60, 40)) -> str:
    """A small PNG, base64 as in a notebook."""
    buf = io.BytesIO()
    Image.new("RGB", size, "red").save(buf, format="PNG", dpi=(100, 100))
    return base64.b64encode(buf.getvalue()).decode()


def _notebook(path: Path, *markdown: str, outputs: list | None = None) -> Path:
    """A notebook of markdown cells and one code cell holding ``outputs``."""
    cells = [new_markdown_cell(m) for m in markdown]
    cells.append(new_code_cell("show()", outputs=outputs or []))
    nbformat.write(new_notebook(cells=cells), path)
    return path


def _fake(path: Path) -> str:
    """A file standing where a browser would be: a script that exits at once."""
    path.write_text("#!/bin/sh\nexit 1\n")
    path.chmod(0o755)
    return str(path)


@pytest.fixture
def no_browser(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """A machine with no browser anywhere: no override, none of Playwright's, none installed."""
    monkeypatch.delenv(pdf.BROWSER_ENV, raising=False)
    monkeypatch.setenv("PLAYWRIGHT_BROWSERS_PATH", str(tmp_path / "no-playwright-browsers"))
    monkeypatch.setattr(pdf, "CHANNELS", ())
    monkeypatch.setattr(pdf, "BROWSER_NAMES", ())


def test_browser_override_comes_first_then_playwright_then_channels_then_path(tmp_path,
                                                                              monkeypatch):
    flag, env, bundled = (_fake(tmp_path / n) for n in ("flag", "env", "bundled"))
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    on_path = _fake(bin_dir / "chromium")
    monkeypatch.setenv("PATH", str(bin_dir))
    monkeypatch.setenv(pdf.BROWSER_ENV, env)
    assert pdf.browser_candidates(flag, bundled) == [{"executable_path": flag}]
    assert pdf.browser_candidates(None, bundled) == [{"executable_path": env}]
    monkeypatch.delenv(pdf.BROWSER_ENV)
    channels = [{"channel": "chrome"}, {"channel": "msedge"}]
    assert pdf.browser_candidates(None, bundled) == [
        {"executable_path": bundled}, *channels, {"executable_path": on_path}]
    assert pdf.browser_candidates(None, str(tmp_path / "not-installed")) == [
        *channels, {"executable_path": on_path}]


def test_an_override_may_be_a_command_or_a_channel(tmp_path, monkeypatch):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    command = _fake(bin_dir / "my-chrome")
    monkeypatch.setenv("PATH", str(bin_dir))
    assert pdf.browser_candidates("my-chrome") == [{"executable_path": command}]
    assert pdf.browser_candidates("msedge") == [{"channel": "msedge"}]


def test_an_override_that_is_not_a_file_is_refused(tmp_path):
    with pytest.raises(pdf.NoBrowserError, match="not a file"):
        pdf.browser_candidates(str(tmp_path / "missing"))


def test_no_browser_names_the_command_that_gets_one(no_browser):
    with pytest.raises(pdf.NoBrowserError) as e, pdf.launch():
        pass
    assert pdf.GET_BROWSER in str(e.value)


def test_command_line_without_a_browser_says_how_to_get_one(no_browser, tmp_path):
    notebook = _notebook(tmp_path / "nb.ipynb", SHORT)
    with pytest.raises(SystemExit) as e:
        pdf.main([str(notebook), str(tmp_path / "out.pdf")])
    assert pdf.GET_BROWSER in str(e.value.code)
    assert not (tmp_path / "out.pdf").exists()


@pytest.mark.slow
def test_command_line_prints_a_message_not_a_traceback(tmp_path):
    notebook = _notebook(tmp_path / "nb.ipynb", SHORT)
    run = subprocess.run([sys.executable, "-m", "tools.pdf", str(notebook),
                          str(tmp_path / "out.pdf"), "--browser", str(tmp_path / "missing")],
                         capture_output=True, text=True, cwd=ROOT,
                         env={**os.environ, "PYTHONWARNINGS": "ignore"})
    assert run.returncode != 0
    assert "Traceback" not in run.stderr and "not a file" in run.stderr, run.stderr


@pytest.mark.skipif(sys.platform == "win32", reason="the fake browser is a shell script")
def test_a_browser_that_does_not_start_is_reported(tmp_path):
    notebook = _notebook(tmp_path / "nb.ipynb", SHORT)
    with pytest.raises(pdf.NoBrowserError, match="did not start") as e:
        pdf.to_pdf(notebook, tmp_path / "out.pdf", browser=_fake(tmp_path / "chrome"))
    assert pdf.GET_BROWSER in str(e.value)
    assert not (tmp_path / "out.pdf").exists()


def test_a_widget_with_a_png_prints_the_png(tmp_path):
    view = {"model_id": "0" * 32, "version_major": 2, "version_minor": 0}
    both = new_output("display_data", {pdf.WIDGET_VIEW: view, "image/png": _png(),
                                       "text/plain": "VBox()"})
    alone = new_output("display_data", {pdf.WIDGET_VIEW: view, "text/plain": "HBox()"})
    notebook = _notebook(tmp_path / "nb.ipynb", SHORT, outputs=[both, alone])
    nb = pdf.printable(nbformat.read(notebook, as_version=4))
    kept = [sorted(out["data"]) for out in nb.cells[-1].outputs]
    assert kept == [["image/png", "text/plain"], [pdf.WIDGET_VIEW, "text/plain"]]
    assert pdf.to_html(notebook).count('src="data:image/png;base64,') == 1


def test_exported_html_turns_line_breaks_off_and_loads_only_from_the_page_origin(tmp_path):
    html = pdf.to_html(_notebook(tmp_path / "nb.ipynb", SHORT))
    assert "automatic: true" not in html and html.count("automatic: false") == 3
    assert f'src="{pdf.ORIGIN}/mathjax/MathJax.js?config=' in html
    remote = {url for url in re.findall(r'(?:src|href)="(\w+://[^"]*)"', html)
              if not url.startswith(pdf.ORIGIN + "/")}
    assert not remote, f"the page would fetch {remote}"


def test_dates_are_blanked_without_moving_any_byte():
    data = (b"%PDF-1.4\n1 0 obj <</Title (hw1) /CreationDate (D:20261128091527+00'00')\n"
            b"/ModDate (D:20261128091527+00'00')>> endobj\nstartxref 123\n%%EOF")
    blanked = pdf.without_dates(data)
    assert len(blanked) == len(data)  # the cross-reference offsets stay valid
    assert b"D:2026" not in blanked and b"/Title (hw1)" in blanked
    assert blanked.index(b"startxref") == data.index(b"startxref")


def test_a_cell_tagged_no_pdf_is_left_out(tmp_path):
    nb = new_notebook(cells=[new_markdown_cell("# Kept"), new_code_cell("SECRET_SETUP = 1")])
    nb.cells[1].metadata["tags"] = [pdf.NOT_PRINTED]
    path = tmp_path / "nb.ipynb"
    nbformat.write(nb, path)
    html = pdf.to_html(path)
    assert "Kept" in html and "SECRET_SETUP" not in html


def test_nbval_comment_lines_are_not_printed_and_the_notebook_keeps_them(tmp_path):
    source = ("# NBVAL_IGNORE_OUTPUT\nfirst = 1\n  # NBVAL_SKIP\n#NBVAL_CHECK_OUTPUT\n"
              "second = 2  # NBVAL_RAISES_EXCEPTION after code stays\n# NBVAL_SKIP")
    nb = new_notebook(cells=[new_code_cell(source)])
    printed = pdf.printable(nbformat.from_dict(nb)).cells[0].source
    assert printed == "first = 1\nsecond = 2  # NBVAL_RAISES_EXCEPTION after code stays\n"
    path = tmp_path / "nb.ipynb"
    nbformat.write(nb, path)
    html = pdf.to_html(path)
    assert "NBVAL_IGNORE_OUTPUT" not in html and "NBVAL_SKIP" not in html
    assert nbformat.read(path, as_version=4).cells[0].source == source


FILLER = "\n\n".join(f"Filler paragraph {i}. " + "Words that fill a line of text. " * 12
                     for i in range(7))


@pytest.fixture(scope="module")
def sample(browser: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One A4 export, through the command line, of a notebook with each case the layout handles:
    a cover with links to headings, an introduced code cell that cannot fit under the text above
    it, nbval comments, an SVG and a PNG figure."""
    folder = tmp_path_factory.mktemp("sample")
    lines = "".join(f"output line {i}\n" for i in range(40))
    cells = [
        new_markdown_cell("# Title\n\n[Go to part two](#Part-two), [to the samples]"
                          f"(#4(c)-100-samples).\n\n{FILLER}\n\nINTRO introduces the code."),
        new_code_cell("# NBVAL_IGNORE_OUTPUT\nshow()",
                      outputs=[new_output("stream", name="stdout", text=lines)]),
        new_markdown_cell("## Part two\n\n### 4(c) 100 samples\n\nTwo figures."),
        new_code_cell("figures()", outputs=[
            new_output("display_data", {"image/svg+xml": SVG.format(png=_png((30, 20))),
                                        "text/plain": "<svg>"}),
            new_output("display_data", {"image/png": _png((300, 200)), "text/plain": "<png>"})]),
    ]
    notebook = folder / "nb.ipynb"
    nbformat.write(new_notebook(cells=cells), notebook)
    pdf.main([str(notebook), str(folder / "out.pdf"), "--paper", "a4", "--browser", browser])
    return folder / "out.pdf"


def test_a4_flag_prints_on_a4_through_a_fresh_file(sample, capsys):
    for page in pypdf.PdfReader(sample).pages:
        # A4 is 595.3 x 841.9 pt; Chromium rounds the page to whole device pixels.
        assert abs(float(page.mediabox.width) - 595.3) < 1
        assert abs(float(page.mediabox.height) - 841.9) < 1
    # Written through a temporary file, yet with the permissions of any new file of the user.
    assert stat.S_IMODE(sample.stat().st_mode) == 0o666 & ~current_umask()


def test_the_paragraph_before_a_code_cell_moves_with_it(sample):
    pages = [page.extract_text() for page in pypdf.PdfReader(sample).pages]
    on = {word: [i for i, t in enumerate(pages) if word in t]
          for word in ("Filler paragraph 6", "INTRO", "output line 0", "output line 39")}
    assert on["Filler paragraph 6"] == [0], on
    assert on["INTRO"] == on["output line 0"] == on["output line 39"] == [1], on
    assert "Part two" in pages[2] and "Part two" not in pages[1], "## must start a page"


def test_links_to_headings_go_to_their_page_and_anchor_glyphs_do_not_print(sample):
    reader = pypdf.PdfReader(sample)
    links = [a.get_object() for a in reader.pages[0].get("/Annots") or []]
    assert len(links) == 2, links
    for link in links:
        assert "/URI" not in str(link.get("/A", {})), f"an outside link: {link}"
        dest = link.get("/Dest") or link["/A"]["/D"]  # a named or an explicit destination
        page = (reader.get_destination_page_number(reader.named_destinations[str(dest)])
                if isinstance(dest, str) else reader.get_page_number(dest[0].get_object()))
        assert page == 2, f"{dest} goes to page {page + 1}"
    text = "".join(page.extract_text() for page in reader.pages)
    assert "¶" not in text and "NBVAL" not in text


def test_an_svg_prints_as_vectors_and_a_png_as_one_image(sample):
    """Only the bitmap inside the SVG and the PNG figure are raster images in the PDF."""
    if shutil.which("pdfimages") is None:
        pytest.skip("needs poppler's pdfimages (Debian: poppler-utils)")
    listing = subprocess.run(["pdfimages", "-list", str(sample)], check=True,
                             capture_output=True, text=True).stdout.splitlines()[2:]
    sizes = [(int(f[3]), int(f[4])) for f in map(str.split, listing) if f[2] == "image"]
    assert sorted(sizes) == [(30, 20), (300, 200)], f"raster images in the PDF: {sizes}"
    assert "vector label" in pypdf.PdfReader(sample).pages[2].extract_text()
