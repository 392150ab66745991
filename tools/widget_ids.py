"""Saved widget ids fixed by their order, so an unchanged notebook stays unchanged on re-running.

    python -m tools.widget_ids hw1.ipynb   # after executing the notebook (``make run`` does)
"""

from __future__ import annotations

import hashlib
import json
import re
import sys
from pathlib import Path

import nbformat

from helpers.files import write_atomic

MODEL_ID = re.compile(r"[0-9a-f]{32}")
VIEW = "application/vnd.jupyter.widget-view+json"


def stable_widget_ids(notebook: Path | str) -> int:
    """Rename the saved widget models' random ids to ones fixed by their order; return how many.

    The kernel draws a new id for every widget on every run, so an unchanged notebook would
    differ after each execution. The ids only link the saved widget state to the outputs that
    show it: renaming every occurrence consistently keeps the static views intact, and the live
    widget gets fresh ids from the kernel anyway.
    """
    path = Path(notebook)
    text = path.read_text(encoding="utf-8")
    nb = json.loads(text)
    models = {i: m for s in nb.get("metadata", {}).get("widgets", {}).values()
              for i, m in s.get("state", {}).items()}
    shown = [o["data"][VIEW]["model_id"] for c in nb["cells"] for o in c.get("outputs", [])
             if VIEW in o.get("data", {})]
    new = {old: hashlib.sha256(f"hw1-widget-{n}".encode()).hexdigest()[:32]
           for n, old in enumerate(widget_order(models, shown))}
    renamed = MODEL_ID.sub(lambda m: new.get(m.group(), m.group()), text)
    # Written as Jupyter writes notebooks (keys sorted), so the state's order follows the new ids.
    renamed = nbformat.writes(nbformat.reads(renamed, as_version=nbformat.NO_CONVERT)) + "\n"
    if renamed != text:
        write_atomic(path, renamed.encode("utf-8"))
    return len(new)


def widget_order(models: dict[str, dict], shown: list[str]) -> list[str]:
    """The model ids in an order that does not depend on the ids themselves.

    Depth first from the displayed widgets, following each model's references in the order of
    its (sorted) fields; models nothing reaches come last, ordered by their content.
    """
    order: list[str] = []

    def visit(i: str) -> None:
        if i in models and i not in order:
            order.append(i)
            fields = json.dumps(models[i].get("state", {}), sort_keys=True)
            for ref in re.findall(r"IPY_MODEL_([0-9a-f]{32})", fields):
                visit(ref)

    for i in shown:
        visit(i)
    rest = [i for i in models if i not in order]
    return order + sorted(rest, key=lambda i: MODEL_ID.sub("", json.dumps(models[i],
                                                                         sort_keys=True)))


def main(argv: list[str] | None = None) -> None:
    """Command-line entry: fix the ids of each notebook named."""
    for name in sys.argv[1:] if argv is None else argv:
        print(f"{name}: {stable_widget_ids(name)} widget ids fixed")


if __name__ == "__main__":
    main()
