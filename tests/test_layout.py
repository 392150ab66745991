"""The package's layout: its docstring names every module, and no module outgrows a reading
(300 lines)."""

from __future__ import annotations

import pkgutil
import re
from pathlib import Path

import pytest

import helpers

HELPERS = Path(helpers.__file__).parent


def test_the_package_docstring_names_every_module():
    modules = [m.name for m in pkgutil.iter_modules([str(HELPERS)])]
    unnamed = [m for m in modules if not re.search(rf"\b{m}\b", helpers.__doc__)]
    assert not unnamed, f"add {unnamed} to the docstring of helpers/__init__.py"


@pytest.mark.parametrize("module", sorted(p.stem for p in HELPERS.glob("*.py")))
def test_every_module_stays_short(module):
    lines = len((HELPERS / f"{module}.py").read_text().splitlines())
    assert lines <= 300, f"helpers/{module}.py has {lines} lines: split it by concern"
