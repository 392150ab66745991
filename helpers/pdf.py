"""Export the executed notebook to PDF offline: nbconvert HTML with local MathJax, then Chromium.

    python -m helpers.pdf hw1.ipynb hw1.pdf
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

MATHJAX = Path("/usr/share/javascript/mathjax/MathJax.js")
MATHJAX_URL = f"file://{MATHJAX}?config=TeX-AMS_CHTML-full,Safe"
# Printed pages cannot scroll: wrap long code lines and keep figures inside the page.
PRINT_CSS = """<style>
pre, .highlight pre, .jp-OutputArea-output pre { white-space: pre-wrap !important;
  overflow-wrap: anywhere; }
.jp-OutputArea-output img { max-width: 100% !important; height: auto; }
.jp-OutputArea-output { break-inside: avoid-page; }
</style>"""
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                  "--disable-background-networking", "--no-first-run", "--disable-extensions"]


def chromium() -> str:
    """Path of a Chromium binary, or a clear error saying how to get one."""
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if path := shutil.which(name):
            return path
    raise FileNotFoundError("no Chromium found: run `make system-deps` (Debian: apt-get install "
                            "chromium libjs-mathjax fonts-mathjax).")


def to_html(notebook: Path, html: Path) -> None:
    """Render the notebook to HTML that loads MathJax from local files."""
    if not MATHJAX.exists():
        raise FileNotFoundError(f"{MATHJAX} missing: run `make system-deps` (Debian: "
                                "apt-get install libjs-mathjax fonts-mathjax).")
    subprocess.run([sys.executable, "-m", "jupyter", "nbconvert", "--to", "html", str(notebook),
                    "--output", html.stem, "--output-dir", str(html.parent),
                    f"--HTMLExporter.mathjax_url={MATHJAX_URL}"],
                   check=True, capture_output=True, text=True)
    html.write_text(html.read_text(encoding="utf-8").replace("</head>", PRINT_CSS + "</head>", 1),
                    encoding="utf-8")


def to_pdf(notebook: Path | str, pdf: Path | str, timeout: float = 180) -> Path:
    """Write ``pdf`` from ``notebook``; maths typeset, figures embedded, widgets left blank."""
    notebook, pdf = Path(notebook).resolve(), Path(pdf).resolve()
    with tempfile.TemporaryDirectory() as tmp:
        html = Path(tmp) / "notebook.html"
        to_html(notebook, html)
        tmp_pdf = pdf.with_name(f".{pdf.name}.tmp")
        subprocess.run([chromium(), *CHROMIUM_FLAGS, f"--user-data-dir={tmp}/profile",
                        "--no-pdf-header-footer", "--virtual-time-budget=30000",
                        f"--print-to-pdf={tmp_pdf}", html.as_uri()],
                       check=True, capture_output=True, text=True, timeout=timeout)
        tmp_pdf.replace(pdf)
    return pdf


def main() -> None:
    """Command-line entry."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("notebook", type=Path)
    p.add_argument("pdf", type=Path)
    args = p.parse_args()
    print(f"wrote {to_pdf(args.notebook, args.pdf)}")


if __name__ == "__main__":
    main()
