"""Training-stability and precision studies: short runs over several seeds, histories shipped.

    python -m helpers.study run --name plain --seeds 0 1 2 3 4 5 6 7 --epochs 3 --warmup 0
    python -m helpers.study collect checkpoints/seed-study.pt runs/study/*.pt
    python -m helpers.study probe --seeds 0 1 2 --steps 50     # the first Adam steps, measured

Each run trains with ``helpers.train.train`` into ``runs/study/<name>-<precision>-s<seed>.pt``
(resumable: start the same command again after an interruption). ``collect`` keeps only the
histories, which the notebook plots without retraining.
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

import torch

from helpers import train
from helpers.data import REPO_ROOT, batches, load_mnist
from helpers.vae import VAE, logvar

STUDY_DIR = REPO_ROOT / "runs" / "study"


def run_path(name: str, config: train.Config) -> Path:
    """Where the study run ``name`` with ``config`` is checkpointed."""
    return STUDY_DIR / f"{name}-{config.precision}-s{config.seed}.pt"


def run_seeds(name: str, config: train.Config, seeds: list[int]) -> dict[int, dict]:
    """Train ``config`` once per seed (resuming any unfinished run); return each final state."""
    data = load_mnist()
    states = {}
    for seed in seeds:
        c = dataclasses.replace(config, seed=seed)
        out = run_path(name, c)
        print(f"{name} seed {seed}: {out}", flush=True)
        _, states[seed] = train.train(c, out=out, data=data, device="cpu", resume=True,
                                      progress=False)
    return states


# ---------------------------------------------------------------------------- the first steps


def head_stats(model: VAE, x: torch.Tensor) -> dict[str, float]:
    """What the encoder head and decoder produce on ``x``: sizes of mu, log sigma and x_hat."""
    with torch.no_grad():
        mu, log_sigma = model.encode(x)
        x_hat = model.decode(mu)
    return {"mu_rms": mu.pow(2).mean().sqrt().item(), "log_sigma_mean": log_sigma.mean().item(),
            "log_sigma_max": log_sigma.max().item(), "x_hat_mean": x_hat.mean().item(),
            "x_hat_std": x_hat.std().item()}


def probe(config: train.Config, steps: int = 50) -> dict[str, torch.Tensor]:
    """Run the first ``steps`` Adam steps of ``config`` exactly as ``train`` does, and measure
    each step: losses, the encoder head's outputs, its gradient and update sizes, the decoder."""
    data = load_mnist()
    device = torch.device("cpu")
    run = train.start_run(config, data.test_x, device)
    model, optimizer = run.model, run.optimizer
    head = model.encoder[-1]
    rows = []
    for step, x in zip(range(steps), batches(data.train_x, config.batch_size,
                                             generator=run.shuffle), strict=False):
        x = train.as_input(x, model)
        before = head.weight.detach().clone()
        stats = head_stats(model, x)  # before the step: what this step's loss saw
        train.set_learning_rate(optimizer, train.learning_rate(config, step))
        loss = train.train_step(model, optimizer, x, config.precision)
        rows.append({"neg_elbo": loss[0].item(), "recon": loss[1].item(), "KL": loss[2].item(),
                     **stats, "head_grad": head.weight.grad.norm().item(),
                     "head_update": (head.weight.detach() - before).norm().item(),
                     "lr": optimizer.param_groups[0]["lr"]})
    return {k: torch.tensor([r[k] for r in rows]) for k in rows[0]}


def kl_of_sigma(log_sigma: float) -> float:
    """The KL of one latent dimension with mu = 0 and the given log sigma (for the text)."""
    from helpers.kl import gaussian_kl_terms

    s = torch.tensor([log_sigma])
    return gaussian_kl_terms(torch.zeros(1), logvar(s)).item()


# ---------------------------------------------------------------------------- entry


def main(argv: list[str] | None = None) -> None:
    """Command-line entry: ``run``, ``collect`` or ``probe``."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run", help="train one recipe over several seeds")
    r.add_argument("--name", required=True)
    r.add_argument("--seeds", type=int, nargs="+", required=True)
    r.add_argument("--epochs", type=int, default=3)
    r.add_argument("--warmup", type=int, default=0)
    r.add_argument("--precision", choices=train.PRECISIONS[:2], default="fp32")
    c = sub.add_parser("collect", help="ship the histories (no weights) of finished runs")
    c.add_argument("out", type=Path)
    c.add_argument("runs", type=Path, nargs="+")
    q = sub.add_parser("probe", help="measure the first Adam steps")
    q.add_argument("--seeds", type=int, nargs="+", required=True)
    q.add_argument("--steps", type=int, default=50)
    q.add_argument("--warmup", type=int, default=0)
    q.add_argument("--out", type=Path, required=True)
    args = p.parse_args(argv)
    if args.cmd == "run":
        config = train.Config(epochs=args.epochs, warmup=args.warmup, precision=args.precision)
        run_seeds(args.name, config, args.seeds)
    elif args.cmd == "collect":
        states = {path.stem: train.load_checkpoint(path) for path in args.runs}
        train.save_histories(states, args.out)
        print(f"{len(states)} histories -> {args.out}")
    else:
        config = train.Config(warmup=args.warmup)
        probes = {s: probe(dataclasses.replace(config, seed=s), args.steps) for s in args.seeds}
        train.save_checkpoint(args.out, {f"s{s}": v for s, v in probes.items()})
        for s, v in probes.items():
            i = int(v["KL"].argmax())
            print(f"seed {s}: KL peak {v['KL'][i]:.1f} at step {i}, log_sigma_max "
                  f"{v['log_sigma_max'].max():.2f}, KL at end {v['KL'][-1]:.3f}")


if __name__ == "__main__":
    main()
