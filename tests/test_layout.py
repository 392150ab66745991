"""The package's layout: its docstring names every module; inside ``helpers`` the imports run
one way (no cycle, counting imports under TYPE_CHECKING and inside functions), every module is
reachable from what the notebook imports, and no module imports a tool."""

from __future__ import annotations

import ast
import json
import pkgutil
import re
from graphlib import CycleError, TopologicalSorter
from pathlib import Path

import helpers

ROOT = Path(__file__).resolve().parent.parent
HELPERS = ROOT / "helpers"


def imports(tree: ast.AST, package: str = "helpers") -> set[str]:
    """Every top-level module named by an import anywhere in ``tree`` (functions and
    ``if TYPE_CHECKING:`` blocks included), as ``helpers.x`` for the package's own modules."""
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            if node.module == package:  # from helpers import data, train
                found |= {f"{package}.{a.name}" for a in node.names}
    return {".".join(name.split(".")[:2]) if name.startswith(f"{package}.") else name
            for name in found}


def graph() -> dict[str, set[str]]:
    """``helpers.x`` -> the package's modules it imports."""
    modules = {f"helpers.{p.stem}": p for p in HELPERS.glob("*.py") if p.stem != "__init__"}
    return {name: {m for m in imports(ast.parse(path.read_text())) if m in modules} - {name}
            for name, path in modules.items()}


def test_the_package_docstring_names_every_module():
    modules = [m.name for m in pkgutil.iter_modules([str(HELPERS)])]
    unnamed = [m for m in modules if not re.search(rf"\b{m}\b", helpers.__doc__)]
    assert not unnamed, f"add {unnamed} to the docstring of helpers/__init__.py"


def test_the_imports_inside_helpers_have_no_cycle():
    try:
        tuple(TopologicalSorter(graph()).static_order())
    except CycleError as e:
        raise AssertionError(f"an import cycle in helpers/: {' -> '.join(e.args[1])}") from None


def test_the_cycle_check_sees_imports_in_functions_and_type_checking_blocks():
    tree = ast.parse("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
                     "    from helpers.train import Config\n"
                     "def f():\n    from helpers import reports, vae\n")
    assert {"helpers.train", "helpers.reports", "helpers.vae"} <= imports(tree)


def test_no_module_of_the_library_imports_a_tool():
    for path in [*HELPERS.glob("*.py")]:
        used = {m.split(".")[0] for m in imports(ast.parse(path.read_text()))}
        assert "tools" not in used, f"{path.name} imports tools: the library imports no tool"


def test_every_module_is_reachable_from_the_notebooks_imports():
    cells = json.loads((ROOT / "hw1.ipynb").read_text())["cells"]
    code = "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "code")
    lines = [line for line in code.splitlines() if re.match(r"\s*(from|import) helpers\b", line)]
    todo = list(imports(ast.parse("\n".join(s.strip() for s in lines))))
    seen, edges = set(), graph()
    while todo:
        name = todo.pop()
        if name in edges and name not in seen:
            seen.add(name)
            todo += edges[name]
    assert set(edges) - seen == set(), "modules of helpers/ the notebook never reaches"
