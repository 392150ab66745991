"""hw1.ipynb: one source of truth with derivations.md, committed executed, figures present."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from helpers import figures

ROOT = Path(__file__).resolve().parent.parent
FIGURES = set(figures.FIGURES)  # file name -> drawing function: the notebook's one list
BLOCK = re.compile(r"(<!-- answer:([\w-]+) -->.*?<!-- end answer -->)", re.S)


@pytest.fixture(scope="module")
def notebook() -> dict:
    return json.loads((ROOT / "hw1.ipynb").read_text())


def _source(cell: dict) -> str:
    return "".join(cell["source"])


def test_written_answers_match_derivations_md(notebook):
    in_md = {name: text for text, name in BLOCK.findall((ROOT / "derivations.md").read_text())}
    in_nb = {}
    for cell in notebook["cells"]:
        if cell["cell_type"] == "markdown":
            for text, name in BLOCK.findall(_source(cell)):
                assert name not in in_nb, f"answer {name} appears twice in the notebook"
                in_nb[name] = text
    expected = {"q1-chain-rule", "q1-made", "q1-made-proof", "q2-kl", "q3-flows", "q4-model"}
    assert set(in_md) == expected
    assert set(in_nb) == expected
    for name in expected:
        assert in_nb[name] == in_md[name], f"answer {name} differs between notebook and .md"


def test_notebook_is_committed_executed_without_errors(notebook):
    code = [c for c in notebook["cells"] if c["cell_type"] == "code" and _source(c).strip()]
    assert code and all(c["execution_count"] is not None for c in code)
    counts = [c["execution_count"] for c in code]
    assert counts == sorted(counts), "cells were not run top to bottom"
    errors = [o for c in code for o in c["outputs"] if o["output_type"] == "error"]
    assert not errors


def test_every_figure_is_made_once_and_committed(notebook):
    calls = [name for cell in notebook["cells"] if cell["cell_type"] == "code"
             for name in re.findall(r"\bfigures\.(\w+)\(", _source(cell))]
    assert sorted(calls) == sorted(f.__name__ for f in figures.FIGURES.values())
    magic = {".svg": b"<?xml", ".png": b"\x89PNG\r\n\x1a\n"}
    for name in FIGURES:
        path = ROOT / "figures" / name
        assert path.exists() and path.read_bytes().startswith(magic[path.suffix]), name


WIDGET = "application/vnd.jupyter.widget-view+json"


def test_every_figure_is_displayed_inline(notebook):
    outputs = [o.get("data", {}) for c in notebook["cells"] if c["cell_type"] == "code"
               for o in c["outputs"]]
    shown = [kind for data in outputs if WIDGET not in data
             for kind in ("image/svg+xml", "image/png") if kind in data]
    expected = ["image/svg+xml" if name.endswith(".svg") else "image/png" for name in FIGURES]
    assert sorted(shown) == sorted(expected)  # each figure shown once, as it is saved
    widgets = [data for data in outputs if WIDGET in data]
    assert len(widgets) == 1  # the interpolation widget, live in Jupyter only


def test_widget_cell_sits_next_to_a_static_grid_and_is_not_printed(notebook):
    code = [c for c in notebook["cells"] if c["cell_type"] == "code"]
    widget = next(i for i, c in enumerate(code) if "interpolation_widget" in _source(c))
    assert "figures.interpolations(" in _source(code[widget - 1])
    # A PDF cannot show a live widget: the static grid above is what prints.
    assert "no-pdf" in code[widget]["metadata"].get("tags", [])


def test_no_execution_timestamps_are_committed(notebook):
    # A re-run must not rewrite every cell: `make run` executes with record_timing off.
    stamped = [i for i, c in enumerate(notebook["cells"]) if "execution" in c["metadata"]]
    assert stamped == []
