"""The PDF speaks the course's words: none of the project's own words, tools or file paths.

A grader has the assignment and the PDF, not the repository. After the cover (which may name the
repository's files once), no Markdown cell and no printed output may use a word below.
"""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NOT_PRINTED = "no-pdf"  # the PDF export leaves such cells out (tools.pdf.NOT_PRINTED)
# The project's words, each with why a grader cannot use it.
PROJECT_WORDS = {
    r"\bshipped\b": "our word for the committed model",
    r"\brecipes?\b": "our name for a training setting",
    r"\brunaways?\b": "our name for a diverging run",
    r"\bguard\b": "our word for a precaution",
    r"\bprob(e|es|ed|ing)\b": "our name for a measurement tool",
    r"\bexplorer\b": "our name for the widget",
    r"\bRETRAIN\b": "a variable of the notebook's code",
    r"--\w[\w-]*": "a command-line flag",
    r"\bbf16 flags\b": "a CPU report of the running machine",
    r"\bautocast\b": "a PyTorch API name",
    r"\b(docs|helpers|checkpoints|tools|tests|figures|runs)/": "a path in the repository",
    r"\b[\w-]+\.(py|pt|md|ipynb|svg|png)\b": "a file of the repository",
    r"\bpython -m\b|\bmake \w": "a command",
}
PATTERN = re.compile("|".join(f"(?:{p})" for p in PROJECT_WORDS), re.I)


def _source(cell: dict) -> str:
    return "".join(cell["source"])


def printed_texts(nb: dict) -> list[tuple[str, str]]:
    """(where, text) for each Markdown cell after the cover and each printed text output."""
    texts = []
    for i, cell in enumerate(nb["cells"]):
        if NOT_PRINTED in cell.get("metadata", {}).get("tags", []):
            continue
        if cell["cell_type"] == "markdown" and i > 0:
            texts.append((f"Markdown cell {i}", _source(cell)))
        for out in cell.get("outputs", []) if cell["cell_type"] == "code" else []:
            data = out.get("data", {})
            if any(k.startswith("image/") or "widget" in k for k in data):
                continue  # a figure prints as its image, never as its text stand-in
            text = out.get("text") or data.get("text/plain", "")
            texts.append((f"output of code cell {i}", "".join(text)))
    return texts


def project_words(nb: dict) -> list[str]:
    """Every use of a project word in what the PDF prints, with where it is."""
    return [f"{where}: {m.group()!r}" for where, text in printed_texts(nb)
            for m in PATTERN.finditer(re.sub(r"<!--.*?-->", "", text, flags=re.S))]


def _notebook() -> dict:
    return json.loads((ROOT / "hw1.ipynb").read_text())


def test_the_pdf_uses_none_of_the_projects_words():
    found = project_words(_notebook())
    assert not found, "say it in the course's words, or leave it out: " + "; ".join(found)


def test_a_planted_project_word_is_caught_in_prose_and_in_outputs():
    nb = _notebook()
    prose, output = copy.deepcopy(nb), copy.deepcopy(nb)
    where = max(i for i, c in enumerate(prose["cells"]) if c["cell_type"] == "markdown")
    last = prose["cells"][where]
    last["source"] = _source(last) + " The shipped model is in checkpoints/vae.pt."
    assert project_words(prose) == project_words(nb) + [
        f"Markdown cell {where}: {w!r}" for w in ("shipped", "checkpoints/", "vae.pt")]
    cell = next(c for c in output["cells"] if c["cell_type"] == "code" and c["outputs"]
                and NOT_PRINTED not in c.get("metadata", {}).get("tags", []))
    cell["outputs"].append({"output_type": "stream", "name": "stdout",
                            "text": "this CPU: bf16 flags none; --precision auto\n"})
    planted = set(project_words(output)) - set(project_words(nb))
    assert {p.split(": ", 1)[1] for p in planted} == {"'bf16 flags'", "'--precision'"}


def test_the_cover_may_name_the_repositorys_files_but_nothing_after_it_may():
    nb = {"cells": [{"cell_type": "markdown", "source": "Code in `helpers/`; see derivations.md."},
                    {"cell_type": "markdown", "source": "As derivations.md says."},
                    {"cell_type": "code", "source": "", "metadata": {"tags": [NOT_PRINTED]},
                     "outputs": [{"output_type": "stream", "text": "python -m tools.pdf"}]}]}
    assert project_words(nb) == ["Markdown cell 1: 'derivations.md'"]
