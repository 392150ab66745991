"""The Canvas PDF: rendered offline, maths typeset, figures present."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from helpers import pdf

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.skipif(
    shutil.which("chromium") is None or shutil.which("pdftotext") is None
    or not pdf.MATHJAX.exists(),
    reason="needs Debian's chromium, libjs-mathjax and poppler-utils (`make system-deps` as root)",
)


@pytest.fixture(scope="module")
def rendered(tmp_path_factory) -> Path:
    return pdf.to_pdf(ROOT / "hw1.ipynb", tmp_path_factory.mktemp("pdf") / "hw1.pdf")


def _text(path: Path) -> str:
    return subprocess.run(["pdftotext", "-layout", str(path), "-"], check=True,
                          capture_output=True, text=True).stdout


def test_maths_is_typeset_not_raw(rendered):
    text = _text(rendered)
    assert "Question 2: KL divergence" in text
    for raw in ("$$", "\\frac", "\\sum", "\\mathcal", "\\log"):
        assert raw not in text, f"raw LaTeX {raw!r} in the PDF: MathJax did not run"
    assert "∑" in text or "∏" in text  # typeset symbols made it into the text layer


def test_figures_are_embedded(rendered):
    listing = subprocess.run(["pdfimages", "-list", str(rendered)], check=True,
                             capture_output=True, text=True).stdout
    assert len(listing.strip().splitlines()) - 2 >= 8  # header lines, then one line per figure


def test_final_numbers_and_every_section_are_in_the_pdf(rendered):
    text = _text(rendered)
    for heading in ("Question 1", "Question 3", "Question 4", "Final -ELBO", "100 samples",
                    "real / reconstruction", "Interpolations", "Beyond the assignment"):
        assert heading in text, heading


def test_first_page_renders_to_an_image(rendered, tmp_path):
    subprocess.run(["pdftoppm", "-png", "-r", "40", "-f", "1", "-l", "1", str(rendered),
                    str(tmp_path / "page")], check=True)
    page = next(tmp_path.glob("page*.png"))
    assert page.stat().st_size > 5000
