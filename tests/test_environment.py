"""The dependency list lives in pyproject.toml; environment.yml must mirror it exactly."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _normalise(req: str) -> str:
    return re.sub(r"\s+", "", req).lower()


def test_environment_yml_mirrors_pyproject():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    declared = project["dependencies"] + project["optional-dependencies"]["dev"]
    pip_section = (ROOT / "environment.yml").read_text().split("- pip:", 1)[1]
    pip_lines = re.findall(r"^\s+- (\S.*)$", pip_section, re.M)
    mirrored = [line for line in pip_lines if not line.startswith("-e")]
    assert sorted(map(_normalise, mirrored)) == sorted(map(_normalise, declared))


def test_torch_is_not_pinned_hard():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    for req in project["dependencies"]:
        assert "==" not in req, f"{req}: keep ranges loose so Colab keeps its own torch"
