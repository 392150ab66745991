"""Train the question-4 VAE: Adam, learning rate 1e-3, batch 128, 20 epochs, atomic checkpoints.

    python -m helpers.train                      # the 20-epoch run, into runs/vae-<config>.pt
    python -m helpers.train --epochs 2 --out runs/try.pt
    python -m helpers.train                      # again after an interruption: it continues

Training never writes checkpoints/, which holds the shipped model: a run goes to its own file
under runs/ and continues that file's history when started again (files: ``helpers.checkpoints``).

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

from helpers import checkpoints
from helpers.checkpoints import CheckpointError, MismatchError, load_checkpoint, retrain_path
from helpers.data import MNIST, batches, load_mnist
from helpers.devices import PRECISIONS, as_input, pick_device, pick_precision, prepare_model
from helpers.vae import LATENT_DIM, SCALES, VAE, check_images, exact_neg_elbo, losses

EVAL_BATCH = 500
DATASETS = ("mnist",)  # those ``load_data`` has a loader for


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
        """A file-name-safe summary, e.g. ``z16-b128-lr0.001-e20-s0-log_sigma-w200``."""
        warmup = f"-w{self.warmup}" if self.warmup else ""
        dataset = f"-{self.dataset}" if self.dataset != "mnist" else ""
        return (f"z{self.latent_dim}-b{self.batch_size}-lr{self.lr:g}-e{self.epochs}"
                f"-s{self.seed}-{self.scale}{warmup}{dataset}")

    @classmethod
    def from_stored(cls, stored: dict) -> Config:
        """The config a checkpoint records (``checkpoints.LEGACY`` for fields it predates)."""
        names = [f.name for f in dataclasses.fields(cls)]
        return cls(**checkpoints.stored_config(stored, names))

    def flags(self) -> str:
        """The command-line options that ask for this config, e.g. ``--latent-dim 32``."""
        return " ".join(f"--{f.name.replace('_', '-')} {getattr(self, f.name)}"
                        for f in dataclasses.fields(self) if getattr(self, f.name) != f.default)


class NonFiniteLossError(RuntimeError):
    """Training produced NaN or infinite losses."""


def load_data(dataset: str) -> MNIST:
    """The images ``Config.dataset`` names."""
    if dataset != "mnist":
        raise ValueError(f"no loader for dataset {dataset!r} (only {DATASETS}): add one to "
                         "helpers/data.py and call it here, or pass data= to train.")
    return load_mnist()


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
    model = prepare_model(VAE(config.latent_dim, scale=config.scale).to(device), fast)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    if state is None:
        test = evaluate(model, as_input(test_x, model))
        return Run(model, optimizer, shuffle, {"train": [], "test": [test]})
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    checkpoints.restore_rng(state["rng"], shuffle, device)
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
    state = load_checkpoint(out, config, resuming=True) if resume and out.exists() else None
    if state is not None and config.precision == "auto":
        precision = checkpoints.stored_config(state["config"])["precision"]
    config = dataclasses.replace(config, precision=precision)
    data = data if data is not None else load_data(config.dataset)
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
        state = checkpoints.state_of(run, config, device, epoch + 1)
        checkpoints.save_checkpoint(out, state)
        if progress:
            print(f"epoch {epoch + 1:2d}/{config.epochs}: test -ELBO {test[0]:.2f} "
                  f"(recon {test[1]:.2f}, KL {test[2]:.2f})  [{run.spent / 60:.1f} min]",
                  flush=True)
    run.model.eval()
    return run.model, state


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
    print(f"Exact Gaussian -ELBO: {exact_neg_elbo(recon, kl):.2f} nats; checkpoint {out}; "
          f"{state['meta']['wall_seconds'] / 60:.1f} min on {state['meta']['hardware']} "
          f"({state['config']['precision']})")


def _resumable(out: Path, config: Config) -> dict:
    """The run at ``out`` if ``config`` may continue it; else exit, saying which options would."""
    try:
        return load_checkpoint(out, config, resuming=True)
    except MismatchError as e:
        keep = " ".join(f"--{k.replace('_', '-')} {a}" for k, (a, _) in e.diff.items())
        fix = f"To continue it, pass {keep}; to" if keep else "To"
        sys.exit(f"{e.what} {fix} start over, delete it or pass --out another file.")
    except CheckpointError as e:
        sys.exit(str(e))


if __name__ == "__main__":
    main()
