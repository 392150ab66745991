"""The shipped training-stability and precision studies: short runs over several seeds.

The histories ship in ``checkpoints/training-study.pt``; the notebook tabulates them without
retraining. ``python -m tools.study`` trains and collects those runs, and prints the tables and
draws the figure of docs/training-study.md.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import torch

from helpers import checkpoints
from helpers.data import REPO_ROOT

STUDY = REPO_ROOT / "checkpoints" / "training-study.pt"  # histories only, no weights
# The notebook's two recipes: its label -> the recipe's name in the history file.
COMPARED = {"plain": "plain fp32", "warm-up, 200 steps": "warmup200 fp32"}


def load_study(path: Path = STUDY) -> dict[str, dict[int, dict]]:
    """The shipped study's histories as ``{recipe: {seed: history}}``."""
    return by_recipe(checkpoints.load_histories(path))


def by_recipe(runs: dict[str, dict]) -> dict[str, dict[int, dict]]:
    """Group a history file's runs ``"<recipe> s<seed>"`` as ``{recipe: {seed: history}}``."""
    grouped: dict[str, dict[int, dict]] = {}
    for name, run in runs.items():
        recipe, seed = name.rsplit(" s", 1)
        grouped.setdefault(recipe, {})[int(seed)] = run["history"]
    return grouped


def compared(recipes: dict[str, dict[int, dict]]) -> dict[str, dict[int, dict]]:
    """The recipes the notebook compares, under its labels (``COMPARED``):
    ``{label: {seed: history}}``."""
    return {label: recipes[name] for label, name in COMPARED.items()}


def seed_table(recipes: dict[str, dict[int, dict]], epochs: tuple[int, ...] = (1, 2, 3)) -> str:
    """Test -ELBO of each seed after each of ``epochs``, side by side for each named recipe
    (``{name: {seed: history}}``), then the median, the worst, and the worst minus the median."""
    seeds = sorted(set.intersection(*(set(runs) for runs in recipes.values())))
    values = torch.cat([torch.stack([runs[s]["test"][list(epochs), 0] for s in seeds])
                        for runs in recipes.values()], dim=1)
    median = values.median(0).values if len(seeds) % 2 else values.quantile(0.5, dim=0)
    worst = values.max(0).values
    width, label = 10 * len(epochs), len("worst - median ")
    lines = [" " * label + "".join(f"{name:^{width}}" for name in recipes)] * (len(recipes) > 1)
    lines.append(epoch_header([e for _ in recipes for e in epochs], label))
    rows = [(f"{s}", row) for s, row in zip(seeds, values, strict=True)]
    rows += [("median", median), ("worst", worst), ("worst - median", worst - median)]
    lines += [f"{name:<{label}}" + "".join(f"{v:10.2f}" for v in row) for name, row in rows]
    return "\n".join(lines)


def epoch_header(epochs: Iterable[int], label: int = 6) -> str:
    """The header of a per-seed table: a ``label``-wide seed column, 10 characters per epoch."""
    return f"{'seed':<{label}}" + "".join(f"{f'epoch {e}':>10}" for e in epochs)
