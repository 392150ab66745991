"""Record in a checkpoint or history file a config field it predates, the weights untouched.

    python -m tools.restamp checkpoints/training-study.pt dataset=mnist
    python -m tools.restamp checkpoints/vae-z16-b128-lr0.001-e20-s0-log_sigma-w200.pt dropout=0.0

A new ``Config`` field makes every older file "record no <field>", and ``helpers.train`` refuses
it. Where the run did use the value (the new field's default is what the code did before), this
writes it into the file's config, or every run's config in a history file, and nothing else: a
field the file already records with another value is refused. Else retrain.
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

import torch

from helpers import checkpoints
from helpers.train import Config

TYPES = {f.name: type(f.default) for f in dataclasses.fields(Config)}


def restamp(path: Path, values: dict[str, object]) -> int:
    """Add ``values`` to the config of the checkpoint (or of each run of the history file) at
    ``path``; return how many configs were stamped."""
    state = torch.load(path, map_location="cpu", weights_only=True)
    configs = [state["config"]] if "config" in state else [run["config"] for run in state.values()]
    for config in configs:
        clash = {k: (config[k], v) for k, v in values.items() if config.get(k, v) != v}
        if clash:
            raise SystemExit(f"{path} already records {clash} (stored, asked): not restamped.")
        config.update(values)
    checkpoints.save_checkpoint(path, state)
    return len(configs)


def parse(pair: str) -> tuple[str, object]:
    """``"field=value"`` as the field's name and its value, typed as its ``Config`` default."""
    name, _, text = pair.partition("=")
    if name not in TYPES:
        raise SystemExit(f"{name!r} is not a Config field (those are {', '.join(TYPES)}).")
    return name, TYPES[name](text)


def main(argv: list[str] | None = None) -> None:
    """Command-line entry: a file, then ``field=value`` pairs."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("path", type=Path)
    p.add_argument("values", nargs="+", metavar="field=value")
    args = p.parse_args(argv)
    n = restamp(args.path, dict(parse(v) for v in args.values))
    print(f"{args.path}: {n} config(s) now record {', '.join(args.values)}")


if __name__ == "__main__":
    main()
