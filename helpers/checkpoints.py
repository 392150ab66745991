"""Checkpoints as files: atomic save, whole-file load, the architecture fingerprint, histories.

A checkpoint is a dict of plain tensors and containers (loadable with ``weights_only=True``):
``model``, ``optimizer``, ``history``, ``config`` (a dict), ``meta``, ``rng`` and
``architecture`` (``fingerprint`` of the model that trained it). This module knows files and
dicts only; ``helpers.train`` writes its runs into them and checks them against a ``Config``.
"""

from __future__ import annotations

import io
import os
import platform
import time
from pathlib import Path

import torch
from torch import nn

from helpers.data import REPO_ROOT
from helpers.files import write_atomic

CHECKPOINT_DIR = REPO_ROOT / "checkpoints"  # the shipped models: read, never written by training
RUNS_DIR = REPO_ROOT / "runs"  # retrains and study runs (git-ignored)
KEYS = ("model", "optimizer", "history", "config", "meta", "rng")


class CheckpointError(RuntimeError):
    """A checkpoint is missing, damaged, or was trained with another config or architecture."""


class MismatchError(CheckpointError):
    """A whole checkpoint of another config or architecture; ``diff``: field -> (stored, asked)."""

    def __init__(self, what: str, fix: str, diff: dict | None = None) -> None:
        super().__init__(f"{what} {fix}")
        self.what, self.fix, self.diff = what, fix, diff or {}


GENERIC_FIX = "Retrain for this config (into another file), or load with the checkpoint's config."


def save_checkpoint(path: Path, state: dict) -> None:
    """Write ``state`` atomically (``files.write_atomic``): never half a checkpoint."""
    buffer = io.BytesIO()
    torch.save(state, buffer)
    write_atomic(path, buffer.getvalue())


def load_checkpoint(path: Path) -> dict:
    """Load a checkpoint with ``weights_only=True`` and check it is whole (every key of ``KEYS``);
    ``train.load_trained`` also checks it against a config and the VAE of this code."""
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"no checkpoint at {path}: train one with `python -m helpers.train`.")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises several kinds for a damaged zip/pickle
        raise CheckpointError(
            f"{path} is damaged or not a checkpoint ({type(e).__name__}: {e}). Delete it and "
            "retrain with `python -m helpers.train`."
        ) from e
    missing = set(KEYS) - set(state) if isinstance(state, dict) else set(KEYS)
    if missing:
        raise CheckpointError(f"{path} lacks {sorted(missing)}: it is not a helpers.train "
                              "checkpoint. Retrain with `python -m helpers.train`.")
    return state


def fingerprint(model: nn.Module) -> list[str]:
    """Every leaf module in order as ``"name: Type(arguments)"``: what decides the weights and
    what a state dict cannot show (activations, strides). ``inplace`` is left out: it saves
    memory and changes no result."""
    return [f"{name}: {type(m).__name__}({_arguments(m)})"
            for name, m in model.named_modules() if not any(m.children())]


def _arguments(module: nn.Module) -> str:
    """The module's ``extra_repr`` without ``inplace=...``."""
    return ", ".join(a for a in module.extra_repr().split(", ") if not a.startswith("inplace="))


def check_architecture(state: dict, model: nn.Module, path: Path | str = "the checkpoint") -> None:
    """Raise MismatchError unless ``state`` was trained by ``model``'s architecture."""
    if "architecture" not in state:
        raise MismatchError(f"{path} records no architecture (saved before it was recorded), so "
                            "it cannot be checked against the VAE.", "Retrain it with "
                            "`python -m helpers.train`.")
    stored, current = _by_name(state["architecture"]), _by_name(fingerprint(model))
    names = list(dict.fromkeys([*stored, *current]))
    diff = [f"{n}: checkpoint {stored.get(n, 'nothing')} vs model {current.get(n, 'nothing')}"
            for n in names if stored.get(n) != current.get(n)]
    if diff:
        more = f" and {len(diff) - 3} more" if len(diff) > 3 else ""
        raise MismatchError(f"{path} was trained by another architecture ({'; '.join(diff[:3])}"
                            f"{more}).", GENERIC_FIX)


def _by_name(entries: list[str]) -> dict[str, str]:
    """Fingerprint entries as {module name: description}."""
    return dict(entry.split(": ", 1) for entry in entries)


def meta(device: torch.device, seconds: float, epochs_done: int) -> dict:
    """Library versions, hardware and wall time, for the record."""
    return {
        "torch": str(torch.__version__), "python": platform.python_version(),
        "device": str(device), "hardware": _hardware(device), "threads": torch.get_num_threads(),
        "wall_seconds": seconds, "epochs_done": epochs_done,
        "saved_at": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
    }


def _hardware(device: torch.device) -> str:
    """A short description of what ran the training."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores"


# ---------------------------------------------------------------------------- histories


HISTORY_KEYS = ("history", "config", "meta")


def save_histories(runs: dict[str, dict], path: Path) -> None:
    """Write the history, config and meta of named runs (no weights): small enough to ship."""
    save_checkpoint(path, {name: {k: state[k] for k in HISTORY_KEYS}
                           for name, state in runs.items()})


def load_histories(path: Path) -> dict[str, dict]:
    """Load a file of named run histories ``{name: {history, config, meta}}`` (weights_only)."""
    path = Path(path)
    try:
        runs = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise CheckpointError(f"no history file at {path}: it ships with the repository; "
                              f"restore it with `git checkout -- {path}`.") from None
    except Exception as e:
        raise CheckpointError(f"{path} is damaged or not a history file ({type(e).__name__}: "
                              f"{e}). Restore it with `git checkout -- {path}`.") from e
    bad = [name for name, run in (runs.items() if isinstance(runs, dict) else [("?", None)])
           if not isinstance(run, dict) or set(HISTORY_KEYS) - set(run)]
    if bad:
        raise CheckpointError(f"{path} is not a file of run histories (bad entries: {bad}).")
    return runs
