"""helpers.pdf on small notebooks: browser discovery, the command line, the widget's static frame,
the display check itself, and paper sizes."""

from __future__ import annotations

import base64
import io
import os
import stat
import subprocess
import sys
from pathlib import Path

import nbformat
import pypdf
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output
from PIL import Image

from helpers import pdf
from helpers.files import current_umask

ROOT = Path(__file__).resolve().parent.parent
LONG = "$$" + " + ".join(f"\\frac{{a_{{{i}}}}}{{b_{{{i}}}}}" for i in range(40)) + "$$"
SHORT = "$$\\sum_{i=1}^{k} x_i^2$$"


def _png() -> str:
    """A small PNG, base64 as in a notebook."""
    buf = io.BytesIO()
    Image.new("RGB", (60, 40), "red").save(buf, format="PNG", dpi=(100, 100))
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
    monkeypatch.setattr(pdf, "BROWSER_PATHS", [])
    monkeypatch.setattr(pdf, "BROWSER_NAMES", [])


def test_browser_override_comes_first(tmp_path, monkeypatch):
    flag, env, bundled, usual = (_fake(tmp_path / n) for n in ("flag", "env", "bundled", "usual"))
    monkeypatch.setattr(pdf, "BROWSER_PATHS", [usual])
    monkeypatch.setenv(pdf.BROWSER_ENV, env)
    assert pdf.find_browser(flag, bundled=bundled) == flag
    assert pdf.find_browser(None, bundled=bundled) == env
    monkeypatch.delenv(pdf.BROWSER_ENV)
    assert pdf.find_browser(None, bundled=bundled) == bundled
    assert pdf.find_browser(None, bundled=str(tmp_path / "not-installed")) == usual


def test_an_override_that_is_not_a_file_is_refused(tmp_path):
    with pytest.raises(pdf.NoBrowserError, match="not a file"):
        pdf.find_browser(str(tmp_path / "missing"))


def test_no_browser_names_the_command_that_gets_one(no_browser):
    with pytest.raises(pdf.NoBrowserError) as e:
        pdf.find_browser(None, bundled=None)
    assert pdf.GET_BROWSER in str(e.value)


def test_command_line_without_a_browser_says_how_to_get_one(no_browser, tmp_path, capsys):
    notebook = _notebook(tmp_path / "nb.ipynb", SHORT)
    with pytest.raises(SystemExit) as e:
        pdf.main([str(notebook), str(tmp_path / "out.pdf")])
    assert pdf.GET_BROWSER in str(e.value.code)
    assert not (tmp_path / "out.pdf").exists()


def test_command_line_prints_a_message_not_a_traceback(tmp_path):
    notebook = _notebook(tmp_path / "nb.ipynb", SHORT)
    run = subprocess.run([sys.executable, "-m", "helpers.pdf", str(notebook),
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


def test_a_widget_with_a_png_prints_the_png(tmp_path):
    view = {"model_id": "0" * 32, "version_major": 2, "version_minor": 0}
    both = new_output("display_data", {pdf.WIDGET_VIEW: view, "image/png": _png(),
                                       "text/plain": "VBox()"})
    alone = new_output("display_data", {pdf.WIDGET_VIEW: view, "text/plain": "HBox()"})
    notebook = _notebook(tmp_path / "nb.ipynb", SHORT, outputs=[both, alone])
    nb = pdf.prefer_static_frames(nbformat.read(notebook, as_version=4))
    kept = [sorted(out["data"]) for out in nb.cells[-1].outputs]
    assert kept == [["image/png", "text/plain"], [pdf.WIDGET_VIEW, "text/plain"]]
    assert pdf.to_html(notebook).count('src="data:image/png;base64,') == 1


def test_exported_html_turns_automatic_line_breaks_off(tmp_path):
    html = pdf.to_html(_notebook(tmp_path / "nb.ipynb", SHORT))
    assert "automatic: true" not in html and "automatic: false" in html
    assert f"{pdf.ORIGIN}/mathjax/MathJax.js?config=" in html


def test_the_display_check_sees_breaks_and_overflow(browser, tmp_path):
    notebook = _notebook(tmp_path / "nb.ipynb", LONG, SHORT)
    broken, fine = pdf.display_report(notebook, browser=browser, linebreaks=True)
    assert broken["broken"] and not fine["broken"] and not fine["overflow"]
    long, short = pdf.display_report(notebook, browser=browser)
    assert long["overflow"] and not long["broken"] and long["width"] > long["available"]
    assert not short["overflow"] and short["text"].startswith("\\sum")


def test_a4_flag_prints_on_a4(browser, tmp_path, capsys):
    notebook = _notebook(tmp_path / "nb.ipynb", "# Title\n\n" + SHORT)
    pdf.main([str(notebook), str(tmp_path / "out.pdf"), "--paper", "a4", "--browser", browser])
    page = pypdf.PdfReader(tmp_path / "out.pdf").pages[0]
    # A4 is 595.3 x 841.9 pt; Chromium rounds the page to whole device pixels.
    assert abs(float(page.mediabox.width) - 595.3) < 1
    assert abs(float(page.mediabox.height) - 841.9) < 1
    assert "wrote" in capsys.readouterr().out
    # Written through a temporary file, yet with the permissions of any new file of the user.
    assert stat.S_IMODE((tmp_path / "out.pdf").stat().st_mode) == 0o666 & ~current_umask()


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


def test_page_fill_is_the_lowest_part_ending_on_a_page_or_full_where_one_runs_on():
    where = {"s0-0": (0, 0.0), "e0-0": (0, 0.3),   # ends on page 0 at 30%
             "s1-0": (0, 0.3), "e1-0": (1, 0.2),   # breaks across pages 0 and 1
             "s2-0": (2, 0.0), "e2-0": (2, 0.4),   # a tall block in two parts on page 2
             "s2-1": (2, 0.4), "e2-1": (2, 0.55)}
    blocks = [{"parts": 1}, {"parts": 1}, {"parts": 2}]
    assert pdf.page_fills(where, blocks) == [1.0, 0.2, 0.55]
