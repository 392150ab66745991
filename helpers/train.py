"""Train the question-4 VAE: Adam, learning rate 1e-3, batch 128, 20 epochs, atomic checkpoints.

    python -m helpers.train                      # the shipped 20-epoch run
    python -m helpers.train --epochs 2 --out runs/try.pt
    python -m helpers.train --resume             # continue the same history

The history records [-ELBO, reconstruction, KL] for every training minibatch and for the whole
test set at initialisation and after every epoch, the layout the course's plotting code expects.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import os
import platform
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from tqdm.auto import tqdm

from helpers.data import MNIST, REPO_ROOT, batches, load_mnist
from helpers.vae import LOSS_NAMES, SCALES, VAE, check_images, exact_neg_elbo, losses

CHECKPOINT_DIR = REPO_ROOT / "checkpoints"
# Histories (no weights) of the runs the notebook compares with the shipped model.
COMPARISON = CHECKPOINT_DIR / "scale-comparison.pt"
EVAL_BATCH = 500


@dataclass(frozen=True)
class Config:
    """Everything that decides the trained weights; a checkpoint must match it to be reused."""

    epochs: int = 20
    batch_size: int = 128
    lr: float = 1e-3
    latent_dim: int = 16
    seed: int = 0
    scale: str = "log_sigma"  # the encoder outputs log sigma ("logvar": log sigma^2)

    def tag(self) -> str:
        """A file-name-safe summary, e.g. ``z16-b128-lr0.001-e20-s0-log_sigma``."""
        return (f"z{self.latent_dim}-b{self.batch_size}-lr{self.lr:g}-e{self.epochs}"
                f"-s{self.seed}-{self.scale}")

    @classmethod
    def from_stored(cls, stored: dict) -> Config:
        """The config a checkpoint records; those saved before ``scale`` existed used logvar."""
        return cls(**{"scale": "logvar", **stored})


def checkpoint_path(config: Config) -> Path:
    """Where the checkpoint for ``config`` lives (the shipped one is the default config's)."""
    return CHECKPOINT_DIR / f"vae-{config.tag()}.pt"


class CheckpointError(RuntimeError):
    """A checkpoint is missing, damaged, or was trained with another config."""


class NonFiniteLossError(RuntimeError):
    """Training produced NaN or infinite losses."""


def pick_device(name: str = "auto") -> torch.device:
    """CUDA, then MPS, then CPU for ``auto``; otherwise the named device."""
    if name != "auto":
        return torch.device(name)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


# ---------------------------------------------------------------------------- steps


def train_step(model: VAE, optimizer: torch.optim.Optimizer, x: torch.Tensor) -> torch.Tensor:
    """One Adam step on the batch mean of -ELBO; returns the detached [-ELBO, recon, KL]."""
    loss = losses(model, x)
    optimizer.zero_grad(set_to_none=True)
    loss[0].backward()
    optimizer.step()
    return loss.detach()


@torch.no_grad()
def evaluate(model: VAE, x: torch.Tensor, batch_size: int = EVAL_BATCH) -> torch.Tensor:
    """[-ELBO, recon, KL] averaged over every image of ``x`` (one sampled z each)."""
    was_training = model.training
    model.eval()
    total = torch.zeros(3, device=x.device, dtype=torch.float64)
    for xb in batches(x, batch_size, shuffle=False):
        total += losses(model, xb).double() * xb.shape[0]
    model.train(was_training)
    return (total / x.shape[0]).float().cpu()


def prepare_model(model: VAE, fast: bool) -> VAE:
    """Use channels_last memory on the CPU when ``fast``: same math, better conv kernels."""
    if fast and next(model.parameters()).device.type == "cpu":
        model.to(memory_format=torch.channels_last)
    return model


def as_input(x: torch.Tensor, model: VAE) -> torch.Tensor:
    """Match the model's memory format (a layout change only)."""
    if model.encoder[0].weight.is_contiguous(memory_format=torch.channels_last) and x.dim() == 4:
        return x.contiguous(memory_format=torch.channels_last)
    return x


# ---------------------------------------------------------------------------- checkpoints


def save_checkpoint(path: Path, state: dict) -> None:
    """Write ``state`` atomically: a temporary file in the same folder, then a rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        torch.save(state, tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def load_checkpoint(path: Path, config: Config | None = None, *,
                    allow_more_epochs: bool = False) -> dict:
    """Load a checkpoint with ``weights_only=True``; check it is whole and matches ``config``.

    With ``allow_more_epochs`` (resuming), ``config.epochs`` may exceed the stored one.
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
    keys = {"model", "optimizer", "history", "config", "meta", "rng"}
    missing = keys - set(state) if isinstance(state, dict) else keys
    if missing:
        raise CheckpointError(f"{path} lacks {sorted(missing)}: it is not a helpers.train "
                              "checkpoint. Retrain with `python -m helpers.train`.")
    if config is not None:
        stored = Config.from_stored(state["config"])
        keys = [f.name for f in dataclasses.fields(Config)
                if not (allow_more_epochs and f.name == "epochs")]
        diff = {k: (getattr(stored, k), getattr(config, k)) for k in keys
                if getattr(stored, k) != getattr(config, k)}
        if diff:
            text = ", ".join(f"{k}: checkpoint {a!r} vs requested {b!r}"
                             for k, (a, b) in diff.items())
            raise CheckpointError(f"{path} was trained with another config ({text}). Retrain "
                                  "for this config, or load with the checkpoint's config.")
    return state


def model_from_state(state: dict, device: torch.device | str = "cpu") -> VAE:
    """Rebuild the VAE from a checkpoint; a shape mismatch is a clear CheckpointError."""
    config = Config.from_stored(state["config"])
    model = VAE(latent_dim=config.latent_dim, scale=config.scale)
    try:
        model.load_state_dict(state["model"])
    except RuntimeError as e:
        raise CheckpointError(f"checkpoint weights do not fit the VAE: {e}") from e
    return model.to(device).eval()


def _meta(device: torch.device, seconds: float, epochs_done: int) -> dict:
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


# ---------------------------------------------------------------------------- the loop


def train(config: Config = Config(), *, out: Path | None = None, data: MNIST | None = None,
          device: str | torch.device = "auto", resume: bool = False, fast: bool = True,
          progress: bool = True) -> tuple[VAE, dict]:
    """Train (or resume) the VAE, checkpointing after every epoch; return the model and state."""
    if config.epochs < 1:
        raise ValueError(f"epochs must be at least 1, got {config.epochs}.")
    device = pick_device(str(device))
    out = Path(out) if out is not None else checkpoint_path(config)
    data = data if data is not None else load_mnist()
    check_images(data.train_x)
    check_images(data.test_x)
    train_x, test_x = data.train_x.to(device), data.test_x.to(device)

    torch.manual_seed(config.seed)
    shuffle = torch.Generator().manual_seed(config.seed)
    model = prepare_model(VAE(config.latent_dim, scale=config.scale).to(device), fast)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    if resume and out.exists():
        state = load_checkpoint(out, config, allow_more_epochs=True)  # returned if nothing to do
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        history = {k: list(v.unbind(0)) for k, v in state["history"].items()}
        _set_rng(state["rng"], shuffle, device)
        spent = state["meta"]["wall_seconds"]
    else:
        history = {"train": [], "test": [evaluate(model, as_input(test_x, model))]}
        spent = 0.0
    start_epoch = len(history["test"]) - 1
    steps = math.ceil(train_x.shape[0] / config.batch_size)

    for epoch in range(start_epoch, config.epochs):
        t0 = time.perf_counter()
        model.train()
        epoch_losses = torch.empty(steps, 3, device=device)
        bar = tqdm(batches(train_x, config.batch_size, generator=shuffle), total=steps,
                   desc=f"epoch {epoch + 1}/{config.epochs}", disable=not progress, leave=False)
        for i, x in enumerate(bar):
            epoch_losses[i] = train_step(model, optimizer, as_input(x, model))
            if i % 25 == 0:  # a host sync only now and then
                _check_finite(epoch_losses[i], epoch, i, out)
                bar.set_postfix(neg_elbo=f"{epoch_losses[i, 0].item():.1f}")
        _check_finite(epoch_losses, epoch, steps - 1, out)
        test = evaluate(model, as_input(test_x, model))
        _check_finite(test, epoch, steps - 1, out)
        history["train"].extend(epoch_losses.cpu().unbind(0))
        history["test"].append(test)
        spent += time.perf_counter() - t0
        state = _state(model, optimizer, history, config, shuffle, device, spent, epoch + 1)
        save_checkpoint(out, state)
        if progress:
            print(f"epoch {epoch + 1:2d}/{config.epochs}: test -ELBO {test[0]:.2f} "
                  f"(recon {test[1]:.2f}, KL {test[2]:.2f})  [{spent / 60:.1f} min]", flush=True)
    model.eval()
    return model, state


def _check_finite(values: torch.Tensor, epoch: int, step: int, out: Path) -> None:
    """Stop with a clear message on NaN/inf; the last good checkpoint stays untouched."""
    if not torch.isfinite(values).all():
        raise NonFiniteLossError(
            f"non-finite loss {values.tolist()} in epoch {epoch + 1} near step {step}. Training "
            f"stopped; the last good checkpoint ({out}, if any) is kept. Lower the learning rate "
            "or check the data."
        )


def _state(model: VAE, optimizer: torch.optim.Optimizer, history: dict, config: Config,
           shuffle: torch.Generator, device: torch.device, spent: float, epochs_done: int) -> dict:
    """Everything a checkpoint holds, as plain tensors/containers (loadable with weights_only)."""
    weights = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    rng = {"torch": torch.get_rng_state(), "shuffle": shuffle.get_state()}
    if device.type == "cuda":
        rng["cuda"] = torch.cuda.get_rng_state(device)
    return {
        "model": weights,
        "optimizer": optimizer.state_dict(),
        "history": {k: torch.stack(v) for k, v in history.items()},
        "config": dataclasses.asdict(config),
        "meta": _meta(device, spent, epochs_done),
        "rng": rng,
    }


def _set_rng(rng: dict, shuffle: torch.Generator, device: torch.device) -> None:
    """Restore the random streams so a resumed run continues exactly."""
    torch.set_rng_state(rng["torch"])
    shuffle.set_state(rng["shuffle"])
    if device.type == "cuda" and "cuda" in rng:
        torch.cuda.set_rng_state(rng["cuda"], device)


def final_test(state: dict) -> dict[str, float]:
    """The final test numbers: -ELBO, reconstruction, KL and the exact Gaussian -ELBO in nats."""
    final = dict(zip(LOSS_NAMES, (float(v) for v in state["history"]["test"][-1]), strict=True))
    final["exact -ELBO (nats)"] = exact_neg_elbo(final["reconstruction"], final["KL"])
    return final


def load_or_train(config: Config = Config(), *, retrain: bool = False,
                  **kwargs) -> tuple[VAE, dict]:
    """Load the checkpoint for ``config`` if one exists (and matches), else train one.

    The model always comes back on the CPU, in eval mode, where ``load_mnist`` puts the data:
    training may use a GPU, and everything after it then runs the same way.
    """
    path = checkpoint_path(config)
    if path.exists() and not retrain:
        state = load_checkpoint(path, config)
        if state["meta"]["epochs_done"] < config.epochs:
            raise CheckpointError(f"{path} holds {state['meta']['epochs_done']} of "
                                  f"{config.epochs} epochs: resume it with "
                                  "`python -m helpers.train --resume`, or retrain.")
        return model_from_state(state), state
    model, state = train(config, out=path, **kwargs)
    return _to_cpu(model), state


def _to_cpu(model: VAE) -> VAE:
    """The trained model on the CPU in the default memory layout, as ``model_from_state`` gives."""
    return model.cpu().to(memory_format=torch.contiguous_format).eval()


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


def main(argv: list[str] | None = None) -> None:
    """Command-line entry: train, print the final test numbers."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    defaults = Config()
    p.add_argument("--epochs", type=int, default=defaults.epochs)
    p.add_argument("--seed", type=int, default=defaults.seed)
    p.add_argument("--batch-size", type=int, default=defaults.batch_size)
    p.add_argument("--lr", type=float, default=defaults.lr)
    p.add_argument("--latent-dim", type=int, default=defaults.latent_dim)
    p.add_argument("--scale", choices=SCALES, default=defaults.scale,
                   help="read the encoder's second half as log sigma (default) or log sigma^2")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, mps")
    p.add_argument("--out", type=Path, help="checkpoint path (default: checkpoints/vae-<cfg>.pt)")
    p.add_argument("--resume", action="store_true", help="continue the checkpoint at --out")
    p.add_argument("--plain", action="store_true", help="no channels_last (for comparison)")
    args = p.parse_args(argv)
    config = Config(args.epochs, args.batch_size, args.lr, args.latent_dim, args.seed, args.scale)
    out = args.out or checkpoint_path(config)
    if out.exists() and not args.resume:
        sys.exit(f"{out} exists: pass --resume to continue it, or --out for a new file.")
    _, state = train(config, out=out, device=args.device, resume=args.resume,
                     fast=not args.plain)
    r = final_test(state)
    print(f"Final -ELBO: {r['-ELBO']:.4f}, Recon Loss: {r['reconstruction']:.4f}, "
          f"KL Loss: {r['KL']:.4f}")
    print(f"Exact Gaussian -ELBO: {r['exact -ELBO (nats)']:.2f} nats; checkpoint {out}; "
          f"{state['meta']['wall_seconds'] / 60:.1f} min on {state['meta']['hardware']}")


if __name__ == "__main__":
    main()
