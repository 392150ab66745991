"""Train the question-4 VAE: Adam, learning rate 1e-3, batch 128, 20 epochs, atomic checkpoints.

    python -m helpers.train                      # the 20-epoch run, into runs/vae-<config>.pt
    python -m helpers.train --epochs 2 --out runs/try.pt
    python -m helpers.train                      # again after an interruption: it continues

Training never writes checkpoints/, which holds the shipped model: a run goes to its own file
under runs/ and continues that file's history when started again.

The history records [-ELBO, reconstruction, KL] for every training minibatch and for the whole
test set at initialisation and after every epoch, the layout the course's plotting code expects.
"""

from __future__ import annotations

import argparse
import dataclasses
import io
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
from helpers.files import write_atomic
from helpers.vae import LOSS_NAMES, SCALES, VAE, check_images, exact_neg_elbo, losses

CHECKPOINT_DIR = REPO_ROOT / "checkpoints"  # the shipped models: read, never written by training
RUNS_DIR = REPO_ROOT / "runs"  # retrains and study runs (git-ignored)
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
    warmup: int = 200  # steps of linear learning-rate warm-up to ``lr`` (0: none)
    precision: str = "auto"  # training arithmetic: fp32, bf16 (autocast), or auto

    def tag(self) -> str:
        """A file-name-safe summary, e.g. ``z16-b128-lr0.001-e20-s0-log_sigma``."""
        warmup = f"-w{self.warmup}" if self.warmup else ""
        return (f"z{self.latent_dim}-b{self.batch_size}-lr{self.lr:g}-e{self.epochs}"
                f"-s{self.seed}-{self.scale}{warmup}")

    @classmethod
    def from_stored(cls, stored: dict) -> Config:
        """The config a checkpoint records; those saved before ``scale`` existed used logvar."""
        return cls(**{"scale": "logvar", "warmup": 0, "precision": "fp32", **stored})


def checkpoint_path(config: Config) -> Path:
    """Where the shipped checkpoint for ``config`` lives (the default config's ships)."""
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


PRECISIONS = ("fp32", "bf16", "auto")


def pick_precision(name: str, device: torch.device) -> str:
    """``fp32`` or ``bf16``; ``auto`` picks bf16 only where ``device`` runs it natively."""
    if name not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {name!r}.")
    if name != "auto":
        return name
    return "bf16" if native_bf16(device) else "fp32"


def native_bf16(device: torch.device) -> bool:
    """Does ``device`` do bf16 arithmetic in hardware (a CUDA GPU with bf16, a CPU with
    AVX512-BF16 or AMX)? MPS and older CPUs/GPUs emulate it, which is slower than fp32."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported(including_emulation=False)
    if device.type == "cpu":
        return bool({"avx512_bf16", "amx_bf16"} & cpu_flags())
    return False


def cpu_flags() -> set[str]:
    """The CPU's feature flags as Linux reports them (empty elsewhere: auto then means fp32)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return set()
    return {f for line in text.splitlines() if line.startswith("flags") for f in line.split()}


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
    """Write ``state`` atomically (``files.write_atomic``): never half a checkpoint."""
    buffer = io.BytesIO()
    torch.save(state, buffer)
    write_atomic(path, buffer.getvalue())


def load_checkpoint(path: Path, config: Config | None = None, *, resuming: bool = False) -> dict:
    """Load a checkpoint with ``weights_only=True``; check it is whole and matches ``config``.

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
    keys = {"model", "optimizer", "history", "config", "meta", "rng"}
    missing = keys - set(state) if isinstance(state, dict) else keys
    if missing:
        raise CheckpointError(f"{path} lacks {sorted(missing)}: it is not a helpers.train "
                              "checkpoint. Retrain with `python -m helpers.train`.")
    if config is not None:
        _check_config(path, state, config, resuming)
    return state


def _check_config(path: Path, state: dict, config: Config, resuming: bool) -> None:
    """Raise CheckpointError where the checkpoint was trained with another config."""
    stored = Config.from_stored(state["config"])
    skip = {"epochs"} if resuming else set()
    if config.precision == "auto":
        skip.add("precision")
    diff = {f.name: (getattr(stored, f.name), getattr(config, f.name))
            for f in dataclasses.fields(Config)
            if f.name not in skip and getattr(stored, f.name) != getattr(config, f.name)}
    if diff:
        text = ", ".join(f"{k}: checkpoint {a!r} vs requested {b!r}" for k, (a, b) in diff.items())
        raise CheckpointError(f"{path} was trained with another config ({text}). Retrain "
                              "for this config (into another file), or load with the "
                              "checkpoint's config.")
    done = state["meta"]["epochs_done"]
    if resuming and config.epochs < done:
        raise CheckpointError(f"{path} already holds {done} epochs, more than the {config.epochs} "
                              f"requested. Ask for --epochs {done} or more to use or continue "
                              "it, or train into another file.")


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
    _set_rng(state["rng"], shuffle, device)
    history = {k: list(v.unbind(0)) for k, v in state["history"].items()}
    return Run(model, optimizer, shuffle, history, state["meta"]["wall_seconds"])


def train(config: Config = Config(), *, out: Path | None = None, data: MNIST | None = None,
          device: str | torch.device = "auto", resume: bool = False, fast: bool = True,
          progress: bool = True) -> tuple[VAE, dict]:
    """Train (or resume) the VAE, checkpointing after every epoch; return the model and state.

    ``config.precision="auto"`` is resolved for the device first (``pick_precision``); the
    checkpoint records the precision that ran.
    """
    if config.epochs < 1:
        raise ValueError(f"epochs must be at least 1, got {config.epochs}.")
    device = pick_device(str(device))
    config = dataclasses.replace(config, precision=pick_precision(config.precision, device))
    out = Path(out) if out is not None else checkpoint_path(config)
    data = data if data is not None else load_mnist()
    check_images(data.train_x)
    check_images(data.test_x)
    train_x, test_x = data.train_x.to(device), data.test_x.to(device)

    state = load_checkpoint(out, config, resuming=True) if resume and out.exists() else None
    run = start_run(config, test_x, device, fast=fast, state=state)
    model, optimizer = run.model, run.optimizer
    start_epoch = len(run.history["test"]) - 1
    steps = math.ceil(train_x.shape[0] / config.batch_size)

    for epoch in range(start_epoch, config.epochs):
        t0 = time.perf_counter()
        model.train()
        epoch_losses = torch.empty(steps, 3, device=device)
        bar = tqdm(batches(train_x, config.batch_size, generator=run.shuffle), total=steps,
                   desc=f"epoch {epoch + 1}/{config.epochs}", disable=not progress, leave=False)
        for i, x in enumerate(bar):
            set_learning_rate(optimizer, learning_rate(config, epoch * steps + i))
            epoch_losses[i] = train_step(model, optimizer, as_input(x, model), config.precision)
            if i % 25 == 0:  # a host sync only now and then
                _check_finite(epoch_losses[i], epoch, i, out)
                bar.set_postfix(neg_elbo=f"{epoch_losses[i, 0].item():.1f}")
        _check_finite(epoch_losses, epoch, steps - 1, out)
        test = evaluate(model, as_input(test_x, model))
        _check_finite(test, epoch, steps - 1, out)
        run.history["train"].extend(epoch_losses.cpu().unbind(0))
        run.history["test"].append(test)
        run.spent += time.perf_counter() - t0
        state = _state(run, config, device, epoch + 1)
        save_checkpoint(out, state)
        if progress:
            print(f"epoch {epoch + 1:2d}/{config.epochs}: test -ELBO {test[0]:.2f} "
                  f"(recon {test[1]:.2f}, KL {test[2]:.2f})  [{run.spent / 60:.1f} min]",
                  flush=True)
    model.eval()
    return model, state


def set_learning_rate(optimizer: torch.optim.Optimizer, lr: float) -> None:
    """Set every parameter group's learning rate (the warm-up is a function of the step)."""
    for group in optimizer.param_groups:
        group["lr"] = lr


def _check_finite(values: torch.Tensor, epoch: int, step: int, out: Path) -> None:
    """Stop with a clear message on NaN/inf; the last good checkpoint stays untouched."""
    if not torch.isfinite(values).all():
        raise NonFiniteLossError(
            f"non-finite loss {values.tolist()} in epoch {epoch + 1} near step {step}. Training "
            f"stopped; the last good checkpoint ({out}, if any) is kept. Lower the learning rate "
            "or check the data."
        )


def _state(run: Run, config: Config, device: torch.device, epochs_done: int) -> dict:
    """Everything a checkpoint holds, as plain tensors/containers (loadable with weights_only)."""
    weights = {k: v.detach().cpu().contiguous() for k, v in run.model.state_dict().items()}
    rng = {"torch": torch.get_rng_state(), "shuffle": run.shuffle.get_state()}
    if device.type == "cuda":
        rng["cuda"] = torch.cuda.get_rng_state(device)
    elif device.type == "mps":
        rng["mps"] = torch.mps.get_rng_state()
    return {
        "model": weights,
        "optimizer": run.optimizer.state_dict(),
        "history": {k: torch.stack(v) for k, v in run.history.items()},
        "config": dataclasses.asdict(config),
        "meta": _meta(device, run.spent, epochs_done),
        "rng": rng,
    }


def _set_rng(rng: dict, shuffle: torch.Generator, device: torch.device) -> None:
    """Restore the random streams so a resumed run continues exactly."""
    torch.set_rng_state(rng["torch"])
    shuffle.set_state(rng["shuffle"])
    if device.type == "cuda" and "cuda" in rng:
        torch.cuda.set_rng_state(rng["cuda"], device)
    elif device.type == "mps" and "mps" in rng:
        torch.mps.set_rng_state(rng["mps"])


def final_test(state: dict) -> dict[str, float]:
    """The final test numbers: -ELBO, reconstruction, KL and the exact Gaussian -ELBO in nats."""
    final = dict(zip(LOSS_NAMES, (float(v) for v in state["history"]["test"][-1]), strict=True))
    final["exact -ELBO (nats)"] = exact_neg_elbo(final["reconstruction"], final["KL"])
    return final


def retrain_path(config: Config) -> Path:
    """Where a retrain of ``config`` lives: its own file under runs/, never the shipped one."""
    return RUNS_DIR / f"vae-{config.tag()}.pt"


def load_or_train(config: Config = Config(), *, retrain: bool = False,
                  **kwargs) -> tuple[VAE, dict, Path]:
    """The shipped checkpoint for ``config``, or a retrain; returns (model, state, its file).

    ``retrain=True``, or no shipped checkpoint, trains into ``retrain_path(config)`` and resumes
    that file if a run there was interrupted: the shipped checkpoint is never written. The
    model always comes back on the CPU, in eval mode, where ``load_mnist`` puts the data:
    training may use a GPU, and everything after it then runs the same way.
    """
    shipped = checkpoint_path(config)
    if shipped.exists() and not retrain:
        state = load_checkpoint(shipped, config)
        if state["meta"]["epochs_done"] < config.epochs:
            raise CheckpointError(f"{shipped} holds {state['meta']['epochs_done']} of "
                                  f"{config.epochs} epochs; restore the shipped file with "
                                  f"`git checkout -- {shipped}`, or retrain.")
        return model_from_state(state), state, shipped
    out = retrain_path(config)
    model, state = train(config, out=out, resume=True, **kwargs)
    return _to_cpu(model), state, out


def describe(state: dict, path: Path) -> str:
    """Three lines on a checkpoint: where it is, what config trained it, on what and how long."""
    config, meta = Config.from_stored(state["config"]), state["meta"]
    where = Path(path).resolve()
    shown = where.relative_to(REPO_ROOT) if where.is_relative_to(REPO_ROOT) else where
    autocast = " (autocast)" if config.precision == "bf16" else ""
    return (f"checkpoint: {shown}\n"
            f"trained: {meta['epochs_done']} epochs, seed {config.seed}, warm-up "
            f"{config.warmup} steps, precision {config.precision}{autocast}\n"
            f"on: {meta['hardware']} ({meta['device']}, torch {meta['torch']}), "
            f"{meta['wall_seconds'] / 60:.1f} min")


def compare_with_shipped(state: dict, config: Config = Config()) -> str:
    """Say whether ``state`` is the shipped model the text describes; if not, set the two
    final test results side by side."""
    shipped = checkpoint_path(config)
    mine = final_test(state)
    if shipped.exists():
        reference = load_checkpoint(shipped, config)
        if torch.equal(reference["history"]["test"], state["history"]["test"]):
            return ("This is the shipped model: the numbers quoted in the text below are "
                    "this model's.")
        theirs = final_test(reference)
    else:
        theirs = dict.fromkeys(mine, float("nan"))
    rows = [f"{'final test':<22}{'this model':>12}{'shipped':>12}"]
    rows += [f"{k:<22}{mine[k]:12.2f}{theirs[k]:12.2f}" for k in mine]
    return ("This is a retrained model. The text below quotes the shipped run; this model's "
            "numbers are in the outputs.\n" + "\n".join(rows))


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
    """Command-line entry: train (or continue) a run, print the final test numbers."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    defaults = Config()
    p.add_argument("--epochs", type=int, default=defaults.epochs)
    p.add_argument("--seed", type=int, default=defaults.seed)
    p.add_argument("--batch-size", type=int, default=defaults.batch_size)
    p.add_argument("--lr", type=float, default=defaults.lr)
    p.add_argument("--latent-dim", type=int, default=defaults.latent_dim)
    p.add_argument("--scale", choices=SCALES, default=defaults.scale,
                   help="read the encoder's second half as log sigma (default) or log sigma^2")
    p.add_argument("--warmup", type=int, default=defaults.warmup,
                   help=f"steps of linear learning-rate warm-up (default {defaults.warmup})")
    p.add_argument("--precision", choices=PRECISIONS, default=defaults.precision,
                   help="training arithmetic; auto = bf16 where the hardware has it, else fp32 "
                        "(evaluation is always fp32)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, mps")
    p.add_argument("--out", type=Path,
                   help="checkpoint path (default: runs/vae-<config>.pt); an unfinished run "
                        "there is continued")
    p.add_argument("--plain", action="store_true", help="no channels_last (for comparison)")
    args = p.parse_args(argv)
    config = Config(args.epochs, args.batch_size, args.lr, args.latent_dim, args.seed,
                    args.scale, args.warmup, args.precision)
    out = (args.out or retrain_path(config)).resolve()
    if out.is_relative_to(CHECKPOINT_DIR.resolve()):
        sys.exit(f"{out} is in {CHECKPOINT_DIR}, which holds the shipped models: training never "
                 "writes there. Train into runs/ (the default), then copy the finished file.")
    if out.exists():
        done = load_checkpoint(out)["meta"]["epochs_done"]
        print(f"continuing {out} ({done} epochs done); delete it or pass --out to start over")
    try:
        _, state = train(config, out=out, device=args.device, resume=True, fast=not args.plain)
    except CheckpointError as e:
        sys.exit(str(e))
    r = final_test(state)
    print(f"Final -ELBO: {r['-ELBO']:.4f}, Recon Loss: {r['reconstruction']:.4f}, "
          f"KL Loss: {r['KL']:.4f}")
    print(f"Exact Gaussian -ELBO: {r['exact -ELBO (nats)']:.2f} nats; checkpoint {out}; "
          f"{state['meta']['wall_seconds'] / 60:.1f} min on {state['meta']['hardware']} "
          f"({state['config']['precision']})")


if __name__ == "__main__":
    main()
