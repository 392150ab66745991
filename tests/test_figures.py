"""Figures are byte-identical whatever the thread count: the notebook is executed twice."""

from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient
from test_notebook import FIGURES

ROOT = Path(__file__).resolve().parent.parent


def _execute(out: Path, threads: int, monkeypatch: pytest.MonkeyPatch) -> dict[str, bytes]:
    """Run hw1.ipynb in a fresh kernel limited to ``threads``; return the PNGs it saved."""
    monkeypatch.setenv("HW1_FIGURES", str(out))  # the committed figures/ stay untouched
    monkeypatch.setenv("OMP_NUM_THREADS", str(threads))
    nb = nbformat.read(ROOT / "hw1.ipynb", as_version=4)
    NotebookClient(nb, timeout=1800, kernel_name="python3",
                   resources={"metadata": {"path": str(ROOT)}}).execute()
    printed = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code"
                      for o in c.outputs)
    assert re.search(rf"\b{threads} CPU threads\b", printed), "the kernel ignored the thread limit"
    return {p.name: p.read_bytes() for p in out.glob("*.png")}


def test_every_figure_is_byte_identical_with_one_and_two_threads(tmp_path, monkeypatch):
    one = _execute(tmp_path / "one", 1, monkeypatch)
    two = _execute(tmp_path / "two", 2, monkeypatch)
    assert set(one) == set(two) == FIGURES
    assert [name for name in sorted(FIGURES) if one[name] != two[name]] == []
