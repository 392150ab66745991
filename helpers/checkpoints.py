"""Checkpoints: atomic save, checked load, the architecture fingerprint, history files.

A checkpoint is a dict of plain tensors and containers (loadable with ``weights_only=True``):
``model``, ``optimizer``, ``history``, ``config`` (``train.Config`` as a dict), ``meta``, ``rng``
and ``architecture`` (``fingerprint`` of the VAE that trained it). It is reused only where its
config and its architecture both match what is asked for.
"""

from __future__ import annotations

import dataclasses
import io
import os
import platform
import time
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch import nn

from helpers.data import REPO_ROOT
from helpers.files import write_atomic
from helpers.vae import VAE

if TYPE_CHECKING:
    from helpers.train import Config, Run

CHECKPOINT_DIR = REPO_ROOT / "checkpoints"  # the shipped models: read, never written by training
RUNS_DIR = REPO_ROOT / "runs"  # retrains and study runs (git-ignored)
KEYS = ("model", "optimizer", "history", "config", "meta", "rng")
# What checkpoints saved before a field existed were trained with. A new Config field must be
# added here too, or every older checkpoint is refused as not recording it.
LEGACY = {"scale": "logvar", "warmup": 0, "precision": "fp32", "dataset": "mnist"}


class CheckpointError(RuntimeError):
    """A checkpoint is missing, damaged, or was trained with another config or architecture."""


class MismatchError(CheckpointError):
    """A whole checkpoint of another config or architecture; ``diff``: field -> (stored, asked)."""

    def __init__(self, what: str, fix: str, diff: dict | None = None) -> None:
        super().__init__(f"{what} {fix}")
        self.what, self.fix, self.diff = what, fix, diff or {}


GENERIC_FIX = "Retrain for this config (into another file), or load with the checkpoint's config."


def checkpoint_path(config: Config) -> Path:
    """Where the shipped checkpoint for ``config`` lives (the default config's ships)."""
    return CHECKPOINT_DIR / f"vae-{config.tag()}.pt"


def retrain_path(config: Config) -> Path:
    """Where a retrain of ``config`` lives: its own file under runs/, never the shipped one."""
    return RUNS_DIR / f"vae-{config.tag()}.pt"


def save_checkpoint(path: Path, state: dict) -> None:
    """Write ``state`` atomically (``files.write_atomic``): never half a checkpoint."""
    buffer = io.BytesIO()
    torch.save(state, buffer)
    write_atomic(path, buffer.getvalue())


def load_checkpoint(path: Path, config: Config | None = None, *, resuming: bool = False) -> dict:
    """Load a checkpoint with ``weights_only=True``; check it is whole and matches ``config``
    and the VAE of this code.

    ``resuming``: ``config.epochs`` may exceed the epochs done (the run goes on), never fall
    short of them. A requested precision of ``auto`` matches whatever the checkpoint ran.
    """
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
    if config is not None:
        _check_config(path, state, config, resuming)
        check_architecture(state, build_model(dataclasses.asdict(config)), path)
    return state


def stored_config(stored: dict, fields: list[str] | None = None,
                  where: Path | str = "the checkpoint") -> dict:
    """A checkpoint's config with ``LEGACY`` values for fields older code did not record;
    a field of ``fields`` that is neither stored nor legacy is a MismatchError."""
    config = {**LEGACY, **stored}
    absent = [name for name in fields or [] if name not in config]
    if absent:
        raise MismatchError(f"{where} records no {', '.join(absent)} (saved before the "
                            "field existed).", "Retrain, or add what older runs used to "
                            "helpers.checkpoints.LEGACY.")
    return config


def _check_config(path: Path, state: dict, config: Config, resuming: bool) -> None:
    """Raise MismatchError where the checkpoint was trained with another config."""
    asked = dataclasses.asdict(config)
    stored = stored_config(state["config"], list(asked), path)
    skip = {"epochs"} if resuming else set()
    if config.precision == "auto":
        skip.add("precision")
    diff = {k: (stored[k], v) for k, v in asked.items() if k not in skip and stored[k] != v}
    if diff:
        text = ", ".join(f"{k}: checkpoint {a!r} vs requested {b!r}" for k, (a, b) in diff.items())
        raise MismatchError(f"{path} was trained with another config ({text}).", GENERIC_FIX,
                            diff)
    done = state["meta"]["epochs_done"]
    if resuming and config.epochs < done:
        raise CheckpointError(f"{path} already holds {done} epochs, more than the {config.epochs} "
                              f"requested. Ask for --epochs {done} or more to use or continue "
                              "it, or train into another file.")


def fingerprint(model: nn.Module) -> list[str]:
    """Every leaf module in order as ``"name: Type(arguments)"``: what decides the weights and
    what a state dict cannot show (activations, strides). ``inplace`` is left out: it saves
    memory and changes no result."""
    return [f"{name}: {type(m).__name__}({_arguments(m)})"
            for name, m in model.named_modules() if not any(m.children())]


def _arguments(module: nn.Module) -> str:
    """The module's ``extra_repr`` without ``inplace=...``."""
    return ", ".join(a for a in module.extra_repr().split(", ") if not a.startswith("inplace="))


def build_model(config: dict) -> VAE:
    """The VAE of this code for a (stored or requested) config dict."""
    return VAE(latent_dim=config["latent_dim"], scale=config["scale"])


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


def model_from_state(state: dict, device: torch.device | str = "cpu") -> VAE:
    """Rebuild the VAE from a checkpoint; another architecture is a clear CheckpointError."""
    model = build_model(stored_config(state["config"]))
    check_architecture(state, model)
    try:
        model.load_state_dict(state["model"])
    except RuntimeError as e:
        raise CheckpointError(f"checkpoint weights do not fit the VAE: {e}") from e
    return model.to(device).eval()


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


def state_of(run: Run, config: Config, device: torch.device, epochs_done: int) -> dict:
    """Everything a checkpoint of ``run`` holds, as plain tensors and containers."""
    weights = {k: v.detach().cpu().contiguous() for k, v in run.model.state_dict().items()}
    rng = {"torch": torch.get_rng_state(), "shuffle": run.shuffle.get_state()}
    if device.type != "cpu":  # the accelerator's own stream (e.g. rng["cuda"])
        rng[device.type] = torch.get_device_module(device).get_rng_state(device)
    return {
        "model": weights,
        "optimizer": run.optimizer.state_dict(),
        "history": {k: torch.stack(v) for k, v in run.history.items()},
        "config": dataclasses.asdict(config),
        "meta": meta(device, run.spent, epochs_done),
        "rng": rng,
        "architecture": fingerprint(run.model),
    }


def restore_rng(rng: dict, shuffle: torch.Generator, device: torch.device) -> None:
    """Restore the random streams of ``state_of`` so a resumed run continues exactly."""
    torch.set_rng_state(rng["torch"])
    shuffle.set_state(rng["shuffle"])
    if device.type in rng:
        torch.get_device_module(device).set_rng_state(rng[device.type], device)


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
