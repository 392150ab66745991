"""The prose of Question 4 and "Beyond" quotes only numbers that the notebook prints.

A retrain or a code change that moves a printed number then fails here until the text follows.
"""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DECIMAL = re.compile(r"(?<![\w.,])\d[\d,]*\.\d+(?![\w.])")
# Decimal numbers the prose may quote that are constants of the method, not results.
CONSTANTS = {"0.01": "the active-unit threshold (analysis.active_units, Burda et al. 2016)"}


def _source(cell: dict) -> str:
    return "".join(cell["source"])


def _outputs(nb: dict) -> str:
    """Every text the notebook prints: streams and plain-text results."""
    texts = [o.get("text") or o.get("data", {}).get("text/plain", "")
             for c in nb["cells"] if c["cell_type"] == "code" for o in c.get("outputs", [])]
    return "\n".join("".join(t) for t in texts)


def quoting_cells(nb: dict) -> list[dict]:
    """The Markdown that quotes results: the cover, and everything from Question 4 on."""
    cells = nb["cells"]
    start = next(i for i, c in enumerate(cells) if _source(c).startswith("## Question 4"))
    return [c for c in cells[:min(start, 1)] + cells[start:] if c["cell_type"] == "markdown"]


def printed_roundings(printed: str) -> set[str]:
    """Each printed decimal rounded to fewer places (54.9109 gives 54.911, 54.91 and 54.9)."""
    roundings = set()
    for number in DECIMAL.findall(printed):
        whole, places = number.replace(",", "").split(".")
        for k in range(1, len(places)):
            roundings.add(f"{round(float(f'{whole}.{places}'), k):,.{k}f}")
    return roundings


def stale_numbers(nb: dict) -> list[str]:
    """Decimal numbers in the quoting prose that no output prints (and no listed constant is)."""
    printed = _outputs(nb).replace("−", "-")
    rounded = printed_roundings(printed)
    stale = []
    for cell in quoting_cells(nb):
        for number in DECIMAL.findall(_source(cell)):
            if number in CONSTANTS:
                continue
            if not (re.search(rf"(?<![\d.,]){re.escape(number)}(?![\d])", printed)
                    or number in rounded):
                stale.append(number)
    return stale


def _notebook() -> dict:
    return json.loads((ROOT / "hw1.ipynb").read_text())


def test_every_decimal_number_in_the_results_prose_is_printed_by_the_notebook():
    stale = stale_numbers(_notebook())
    assert not stale, (f"numbers in the text that no output prints: {stale}. Update the prose "
                       "to the printed outputs (or list a true constant in CONSTANTS).")


def test_a_planted_stale_number_is_caught():
    nb = _notebook()
    planted = copy.deepcopy(nb)
    cell = quoting_cells(planted)[-1]
    cell["source"] = _source(cell) + " The test -ELBO was 61.37 after epoch 20."
    assert stale_numbers(planted) == stale_numbers(nb) + ["61.37"]


def test_a_printed_number_counts_only_whole():
    nb = {"cells": [
        {"cell_type": "markdown", "source": "## Question 4\n\n54.9 and 4.91 and 54.91"},
        {"cell_type": "code", "source": "", "outputs": [{"output_type": "stream",
                                                         "text": "-ELBO 54.91\n"}]}]}
    assert stale_numbers(nb) == ["4.91"]  # 54.9 is 54.91 rounded; 4.91 only a part of it


def test_a_rounded_printed_number_counts():
    nb = {"cells": [
        {"cell_type": "markdown", "source": "## Question 4\n\n54.91 and 54.92 and 1,234.6"},
        {"cell_type": "code", "source": "", "outputs": [{"output_type": "stream",
                                                         "text": "-ELBO 54.9109 1234.56\n"}]}]}
    assert stale_numbers(nb) == ["54.92"]


def test_no_paragraph_piles_up_numbers():
    crowded = [para[:60] for cell in quoting_cells(_notebook())
               for para in _source(cell).split("\n\n")
               if not para.lstrip().startswith("|") and len(DECIMAL.findall(para)) > 6]
    assert not crowded, f"paragraphs with more than 6 decimal numbers (use a table): {crowded}"
