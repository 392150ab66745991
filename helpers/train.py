"""Train the question-4 VAE: Adam, learning rate 1e-3, batch 128, 20 epochs, atomic checkpoints.

    python -m helpers.train                      # the 20-epoch run, into runs/vae-<config>.pt
    python -m helpers.train --epochs 2 --out runs/try.pt
    python -m helpers.train                      # again after an interruption: it continues

Training never writes checkpoints/, which holds the shipped model: a run goes to its own file
under runs/ and continues that file's history when started again. This module turns a run into
a checkpoint's dict and checks a checkpoint against a ``Config``; ``helpers.checkpoints`` only
writes and reads the files.

The history records [-ELBO, reconstruction, KL] for every training minibatch and for the whole
test set at initialisation and after every epoch, the layout the course's plotting code expects.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import math
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

import helpers.data as datasets
from helpers import checkpoints
from helpers.checkpoints import CheckpointError, MismatchError
from helpers.data import MNIST, batches
from helpers.devices import PRECISIONS, as_input, pick_device, pick_precision, prepare_model
from helpers.vae import LATENT_DIM, SCALES, VAE, check_images, losses, neg_elbo_nats

EVAL_BATCH = 500
DATASETS = tuple(datasets.LOADERS)  # those ``data.load_data`` has a loader for
TAGGED = ("latent_dim", "batch_size", "lr", "epochs", "seed", "scale", "warmup")  # always named
# Other fields are named unless they hold this value (else their default). Literal, not the
# default: a changed default (say dataset="fashion-mnist") must rename the file it trains.
UNNAMED = {"precision": "auto", "dataset": "mnist"}


def _option(default: object, help: str, choices: tuple[str, ...] | None = None) -> Any:
    """A Config field with its command-line help (and choices): ``main`` builds the CLI from it."""
    return field(default=default, metadata={"help": help, "choices": choices})


@dataclass(frozen=True)
class Config:
    """Everything that decides the trained weights; a checkpoint must match it to be reused."""

    epochs: int = _option(20, "passes over the 60,000 training images")
    batch_size: int = _option(128, "images per Adam step")
    lr: float = _option(1e-3, "Adam's learning rate (after the warm-up)")
    latent_dim: int = _option(LATENT_DIM, "dimensions of the latent z")
    seed: int = _option(0, "seeds the initial weights, the shuffling and the noise")
    scale: str = _option("log_sigma", "read the encoder's second half as log sigma (default) "
                         "or log sigma^2", SCALES)
    warmup: int = _option(200, "steps of linear learning-rate warm-up to lr (0: none)")
    precision: str = _option("auto", "training arithmetic; auto = bf16 where the hardware has "
                             "it, else fp32 (evaluation is always fp32)", PRECISIONS)
    dataset: str = _option("mnist", "the training images", DATASETS)

    def tag(self) -> str:
        """A file-name-safe summary that differs whenever the config does, e.g.
        ``z16-b128-lr0.001-e20-s0-log_sigma-w200``: the fields of ``TAGGED`` always, every other
        field only where it differs from ``UNNAMED`` (else from its default):
        ``-precision-bf16``, ``-dataset-fashion-mnist``."""
        warmup = f"-w{self.warmup}" if self.warmup else ""
        rest = "".join(f"-{f.name}-{getattr(self, f.name)}" for f in dataclasses.fields(self)
                       if f.name not in TAGGED
                       and getattr(self, f.name) != UNNAMED.get(f.name, f.default))
        return (f"z{self.latent_dim}-b{self.batch_size}-lr{self.lr!r}-e{self.epochs}"
                f"-s{self.seed}-{self.scale}{warmup}{rest}")

    @classmethod
    def from_stored(cls, stored: dict, where: Path | str = "the checkpoint") -> Config:
        """The config a checkpoint records; one that lacks a field of ``cls`` (saved before the
        field existed) is a MismatchError naming how to record it."""
        names = [f.name for f in dataclasses.fields(cls)]
        absent = [name for name in names if name not in stored]
        if absent:
            values = " ".join(f"{name}=VALUE" for name in absent)
            file = where if isinstance(where, Path) else "<file>"
            raise MismatchError(f"{where} records no {', '.join(absent)} (saved before the "
                                "field existed).", "Retrain, or record the value its run used: "
                                f"`python -m tools.restamp {file} {values}`.")
        return cls(**{name: stored[name] for name in names})

    def flags(self) -> str:
        """The command-line options that ask for this config, e.g. ``--latent-dim 32``."""
        return " ".join(f"--{f.name.replace('_', '-')} {getattr(self, f.name)}"
                        for f in dataclasses.fields(self) if getattr(self, f.name) != f.default)


class NonFiniteLossError(RuntimeError):
    """Training produced NaN or infinite losses."""


def checkpoint_path(config: Config) -> Path:
    """Where the shipped checkpoint for ``config`` lives (the default config's ships)."""
    return checkpoints.CHECKPOINT_DIR / f"vae-{config.tag()}.pt"


def retrain_path(config: Config) -> Path:
    """Where a retrain of ``config`` lives: its own file under runs/, never the shipped one."""
    return checkpoints.RUNS_DIR / f"vae-{config.tag()}.pt"


def load_trained(path: Path, config: Config | None = None, *, resuming: bool = False) -> dict:
    """``checkpoints.load_checkpoint``, then check the file against ``config`` and the VAE of
    this code (MismatchError says what differs).

    ``resuming``: ``config.epochs`` may exceed the epochs done (the run goes on), never fall
    short of them. A requested precision of ``auto`` matches whatever the checkpoint ran.
    """
    state = checkpoints.load_checkpoint(path)
    if config is not None:
        _check_config(path, state, config, resuming)
        checkpoints.check_architecture(state, build_model(config), path)
    return state


def _check_config(path: Path, state: dict, config: Config, resuming: bool) -> None:
    """Raise MismatchError where the checkpoint was trained with another config."""
    asked = dataclasses.asdict(config)
    stored = dataclasses.asdict(type(config).from_stored(state["config"], path))
    skip = {"epochs"} if resuming else set()
    if config.precision == "auto":
        skip.add("precision")
    diff = {k: (stored[k], v) for k, v in asked.items() if k not in skip and stored[k] != v}
    if diff:
        text = ", ".join(f"{k}: checkpoint {a!r} vs requested {b!r}" for k, (a, b) in diff.items())
        raise MismatchError(f"{path} was trained with another config ({text}).",
                            checkpoints.GENERIC_FIX, diff)
    done = state["meta"]["epochs_done"]
    if resuming and config.epochs < done:
        raise CheckpointError(f"{path} already holds {done} epochs, more than the {config.epochs} "
                              f"requested. Ask for --epochs {done} or more to use or continue "
                              "it, or train into another file.")


def build_model(config: Config) -> VAE:
    """The VAE of this code for ``config``, marked with the dataset it is trained on."""
    model = VAE(config.latent_dim, scale=config.scale)
    model.dataset = config.dataset
    return model


def model_from_state(state: dict, device: torch.device | str = "cpu") -> VAE:
    """Rebuild the VAE from a checkpoint; another architecture is a clear CheckpointError."""
    model = build_model(Config.from_stored(state["config"]))
    checkpoints.check_architecture(state, model)
    try:
        model.load_state_dict(state["model"])
    except RuntimeError as e:
        raise CheckpointError(f"checkpoint weights do not fit the VAE: {e}") from e
    return model.to(device).eval()


# ---------------------------------------------------------------------------- steps


def learning_rate(config: Config, step: int) -> float:
    """The learning rate of (0-based) ``step``: linear warm-up over ``config.warmup`` steps."""
    if config.warmup <= 0:
        return config.lr
    return config.lr * min(1.0, (step + 1) / config.warmup)


def train_step(model: VAE, optimizer: torch.optim.Optimizer, x: torch.Tensor,
               precision: str = "fp32") -> torch.Tensor:
    """One Adam step on the batch mean of -ELBO; returns the detached [-ELBO, recon, KL].

    With ``precision="bf16"`` the forward pass runs under ``torch.autocast`` (weights, Adam
    state and the loss's reductions stay fp32); the returned losses are those of that pass.
    """
    with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=precision == "bf16"):
        loss = losses(model, x)
    optimizer.zero_grad(set_to_none=True)
    loss[0].backward()
    optimizer.step()
    return loss.detach().float()


@torch.no_grad()
def evaluate(model: VAE, x: torch.Tensor, batch_size: int = EVAL_BATCH) -> torch.Tensor:
    """[-ELBO, recon, KL] averaged over every image of ``x`` (one sampled z each)."""
    was_training = model.training
    model.eval()
    # Summed on the host in Python floats (double precision): MPS has no float64 tensors.
    total = [0.0, 0.0, 0.0]
    for xb in batches(x, batch_size, shuffle=False):
        batch = losses(model, xb).tolist()
        total = [t + v * xb.shape[0] for t, v in zip(total, batch, strict=True)]
    model.train(was_training)
    return torch.tensor([t / x.shape[0] for t in total])


# ---------------------------------------------------------------------------- the loop


@dataclass
class Run:
    """A training run's live parts: what ``train`` steps and what a checkpoint restores."""

    model: VAE
    optimizer: torch.optim.Optimizer
    shuffle: torch.Generator
    history: dict
    spent: float = 0.0


def start_run(config: Config, test_x: torch.Tensor, device: torch.device, *, fast: bool = True,
              state: dict | None = None) -> Run:
    """Seed, build the model and Adam, and evaluate at initialisation (or restore ``state``)."""
    torch.manual_seed(config.seed)
    shuffle = torch.Generator().manual_seed(config.seed)
    model = prepare_model(build_model(config).to(device), fast)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    if state is None:
        test = evaluate(model, as_input(test_x, model))
        return Run(model, optimizer, shuffle, {"train": [], "test": [test]})
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    restore_rng(state["rng"], shuffle, device)
    history = {k: list(v.unbind(0)) for k, v in state["history"].items()}
    return Run(model, optimizer, shuffle, history, state["meta"]["wall_seconds"])


Step = Callable[[torch.Tensor], torch.Tensor]
Hook = Callable[[int, torch.Tensor, Step], torch.Tensor]


def run_steps(run: Run, config: Config, train_x: torch.Tensor, epoch: int, *,
              limit: int | None = None, hook: Hook | None = None, progress: bool = False,
              out: Path | None = None) -> torch.Tensor:
    """The Adam steps of (0-based) ``epoch``, or its first ``limit``; their [-ELBO, recon, KL].

    ``hook(i, x, step)``, if given, takes each step in the loop's place: it must return
    ``step(x)``, and may look at the model before and after (``tools.study.probe`` measures so).
    """
    steps = math.ceil(train_x.shape[0] / config.batch_size)
    taken = steps if limit is None else min(limit, steps)
    run.model.train()
    rows = torch.empty(taken, 3, device=train_x.device)
    step = functools.partial(train_step, run.model, run.optimizer, precision=config.precision)
    bar = tqdm(batches(train_x, config.batch_size, generator=run.shuffle), total=taken,
               desc=f"epoch {epoch + 1}/{config.epochs}", disable=not progress, leave=False)
    for i, x in zip(range(taken), bar, strict=False):
        set_learning_rate(run.optimizer, learning_rate(config, epoch * steps + i))
        x = as_input(x, run.model)
        rows[i] = hook(i, x, step) if hook else step(x)
        if i % 25 == 0:  # a host sync only now and then
            _check_finite(rows[i], epoch, i, out)
            bar.set_postfix(neg_elbo=f"{rows[i, 0].item():.1f}")
    bar.close()
    _check_finite(rows, epoch, taken - 1, out)
    return rows


def train(config: Config = Config(), *, out: Path | None = None, data: MNIST | None = None,
          device: str | torch.device = "auto", resume: bool = False, fast: bool = True,
          progress: bool = True) -> tuple[VAE, dict]:
    """Train (or resume) the VAE into ``out`` (default ``retrain_path``), checkpointing every
    epoch; return the model and state. ``precision="auto"`` continues a resumed run in its own
    precision, else picks one for the device; the checkpoint records the one that ran."""
    if config.epochs < 1:
        raise ValueError(f"epochs must be at least 1, got {config.epochs}.")
    device = pick_device(str(device))
    precision = pick_precision(config.precision, device)
    out = Path(out) if out is not None else retrain_path(config)
    state = load_trained(out, config, resuming=True) if resume and out.exists() else None
    if state is not None and config.precision == "auto":
        precision = state["config"]["precision"]
    config = dataclasses.replace(config, precision=precision)
    data = data if data is not None else datasets.load_data(config.dataset)
    datasets.check_dataset(config.dataset, data, "train on")
    check_images(data.train_x)
    check_images(data.test_x)
    train_x, test_x = data.train_x.to(device), data.test_x.to(device)

    run = start_run(config, test_x, device, fast=fast, state=state)
    for epoch in range(len(run.history["test"]) - 1, config.epochs):
        t0 = time.perf_counter()
        rows = run_steps(run, config, train_x, epoch, progress=progress, out=out)
        test = evaluate(run.model, as_input(test_x, run.model))
        _check_finite(test, epoch, len(rows) - 1, out)
        run.history["train"].extend(rows.cpu().unbind(0))
        run.history["test"].append(test)
        run.spent += time.perf_counter() - t0
        state = state_of(run, config, device, epoch + 1)
        checkpoints.save_checkpoint(out, state)
        if progress:
            print(f"epoch {epoch + 1:2d}/{config.epochs}: test -ELBO {test[0]:.2f} "
                  f"(recon {test[1]:.2f}, KL {test[2]:.2f})  [{run.spent / 60:.1f} min]",
                  flush=True)
    run.model.eval()
    return run.model, state


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
        "meta": checkpoints.meta(device, run.spent, epochs_done),
        "rng": rng,
        "architecture": checkpoints.fingerprint(run.model),
    }


def restore_rng(rng: dict, shuffle: torch.Generator, device: torch.device) -> None:
    """Restore the random streams of ``state_of`` so a resumed run continues exactly."""
    torch.set_rng_state(rng["torch"])
    shuffle.set_state(rng["shuffle"])
    if device.type in rng:
        torch.get_device_module(device).set_rng_state(rng[device.type], device)


def set_learning_rate(optimizer: torch.optim.Optimizer, lr: float) -> None:
    """Set every parameter group's learning rate (the warm-up is a function of the step)."""
    for group in optimizer.param_groups:
        group["lr"] = lr


def _check_finite(values: torch.Tensor, epoch: int, step: int, out: Path | None) -> None:
    """Stop with a clear message on NaN/inf; the last good checkpoint stays untouched."""
    if not torch.isfinite(values).all():
        kept = f"; the last good checkpoint ({out}, if any) is kept" if out else ""
        raise NonFiniteLossError(
            f"non-finite loss {values.tolist()} in epoch {epoch + 1} near step {step}. Training "
            f"stopped{kept}. Lower the learning rate or check the data."
        )


# ---------------------------------------------------------------------------- the CLI


def main(argv: list[str] | None = None) -> None:
    """Command-line entry: train (or continue) a run, print the final test numbers."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    for f in dataclasses.fields(Config):
        p.add_argument(f"--{f.name.replace('_', '-')}", type=type(f.default), default=f.default,
                       choices=f.metadata["choices"], help=f.metadata["help"])
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, mps")
    p.add_argument("--out", type=Path,
                   help="checkpoint path (default: runs/vae-<config>.pt); an unfinished run "
                        "there is continued")
    p.add_argument("--plain", action="store_true", help="no channels_last (for comparison)")
    args = p.parse_args(argv)
    config = Config(**{f.name: getattr(args, f.name) for f in dataclasses.fields(Config)})
    out = (args.out or retrain_path(config)).resolve()
    if out.is_relative_to(checkpoints.CHECKPOINT_DIR.resolve()):
        sys.exit(f"{out} is in {checkpoints.CHECKPOINT_DIR}, which holds the shipped models: "
                 "training never writes there. Train into runs/ (the default), then copy the "
                 "finished file.")
    if out.exists():
        done = _resumable(out, config)["meta"]["epochs_done"]
        print(f"continuing {out} ({done} epochs done); delete it or pass --out to start over")
    try:
        _, state = train(config, out=out, device=args.device, resume=True, fast=not args.plain)
    except CheckpointError as e:
        sys.exit(str(e))
    neg_elbo, recon, kl = state["history"]["test"][-1].tolist()  # as reports.final_test reads
    print(f"Final -ELBO: {neg_elbo:.4f}, Recon Loss: {recon:.4f}, KL Loss: {kl:.4f}")
    print(f"Gaussian -ELBO in nats: {neg_elbo_nats(recon, kl):.2f}; checkpoint {out}; "
          f"{state['meta']['wall_seconds'] / 60:.1f} min on {state['meta']['hardware']} "
          f"({state['config']['precision']})")


def _resumable(out: Path, config: Config) -> dict:
    """The run at ``out`` if ``config`` may continue it; else exit, saying which options would."""
    try:
        return load_trained(out, config, resuming=True)
    except MismatchError as e:
        keep = " ".join(f"--{k.replace('_', '-')} {a}" for k, (a, _) in e.diff.items())
        fix = f"To continue it, pass {keep}; to" if keep else "To"
        sys.exit(f"{e.what} {fix} start over, delete it or pass --out another file.")
    except CheckpointError as e:
        sys.exit(str(e))


if __name__ == "__main__":
    main()
