"""Training-stability and precision studies: short runs over several seeds, histories shipped.

    python -m tools.study run --name plain --seeds 0 1 2 3 4 5 6 7 --epochs 3 --warmup 0
    python -m tools.study collect checkpoints/training-study.pt runs/study/*.pt
    python -m tools.study probe --seeds 0 1 2 --steps 50     # the first Adam steps, measured
    python -m tools.study tables       # every table of docs/training-study.md, from the files
    python -m tools.study figure       # its figure, docs/seed-study.svg

Each run trains with ``helpers.train.train`` into ``runs/study/<name>-<precision>-s<seed>.pt``
(resumable: start the same command again after an interruption). ``collect`` keeps only the
histories, which the notebook plots without retraining (``helpers.study`` reads them).
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

import matplotlib
import numpy as np
import torch
from matplotlib.figure import Figure

from helpers import checkpoints, plots, train
from helpers.data import MNIST, REPO_ROOT, load_data
from helpers.devices import PRECISIONS, pick_precision
from helpers.figures import LOSS_LABELS
from helpers.plots import FONT_PT, TICK_PT
from helpers.study import compared, epoch_header, load_study, seed_table
from helpers.vae import VAE

STUDY_DIR = REPO_ROOT / "runs" / "study"
PROBE = REPO_ROOT / "checkpoints" / "first-steps.pt"  # ``probe`` of seeds 0-7, plain recipe
SEED_FIGURE = REPO_ROOT / "docs" / "seed-study.svg"


def signed(value: float | torch.Tensor, digits: int, width: int) -> str:
    """``value`` with its sign, never as a negative zero ("-0.00")."""
    return f"{round(float(value), digits) + 0.0:+{width}.{digits}f}"


def load_probe(path: Path = PROBE) -> dict[str, dict[str, torch.Tensor]]:
    """The shipped measurements of the first Adam steps (``probe``)."""
    return torch.load(path, map_location="cpu", weights_only=True)


def run_path(name: str, config: train.Config) -> Path:
    """Where the study run ``name`` with ``config`` is checkpointed."""
    return STUDY_DIR / f"{name}-{config.precision}-s{config.seed}.pt"


def run_seeds(name: str, config: train.Config, seeds: list[int]) -> dict[int, dict]:
    """Train ``config`` once per seed (resuming any unfinished run); return each final state."""
    data = load_data(config.dataset)
    states = {}
    for seed in seeds:
        c = dataclasses.replace(config, seed=seed)
        out = run_path(name, c)
        print(f"{name} seed {seed}: {out}", flush=True)
        _, states[seed] = train.train(c, out=out, data=data, device="cpu", resume=True,
                                      progress=False)
    return states


def kl_peaks(runs: dict[int, dict], steps: int = 50) -> dict[int, tuple[float, int]]:
    """Per seed: the largest minibatch KL of the first ``steps`` Adam steps, and its step."""
    peaks = {}
    for seed, history in sorted(runs.items()):
        kl = history["train"][:steps, 2]
        peaks[seed] = (kl.max().item(), int(kl.argmax()) + 1)
    return peaks


def peak_table(recipes: dict[str, dict[int, dict]], steps: int = 50) -> str:
    """Per seed, each recipe's largest minibatch KL of the first ``steps`` steps, and its step."""
    peaks = {name: kl_peaks(runs, steps) for name, runs in recipes.items()}
    seeds = sorted(set.intersection(*(set(p) for p in peaks.values())))
    lines = ["seed" + "".join(f"{name:>24}" for name in peaks)]
    lines += [f"{s:<4}" + "".join(f"{f'{p[s][0]:.1f} nats at step {p[s][1]}':>24}"
                                  for p in peaks.values()) for s in seeds]
    return "\n".join(lines)


def difference_table(runs: dict[int, dict], baseline: dict[int, dict], epochs: int) -> str:
    """Per seed in both: test -ELBO of ``runs`` minus that of ``baseline``, epochs 1..``epochs``."""
    seeds = sorted(set(runs) & set(baseline))
    lines = [epoch_header(range(1, epochs + 1))]
    for s in seeds:
        diff = runs[s]["test"][1:epochs + 1, 0] - baseline[s]["test"][1:epochs + 1, 0]
        lines.append(f"{s:<6}" + "".join(signed(v, 2, 10) for v in diff))
    return "\n".join(lines)


def probe_table(probes: dict[str, dict[str, torch.Tensor]], steps: int = 6) -> str:
    """Per seed and step: minibatch KL, mean and max of log sigma (before the step), and the
    norm of the encoder head's gradient."""
    lines = [f"{'seed':<5}{'step':>5}{'KL':>10}{'mean log σ':>12}{'max log σ':>11}{'|grad|':>12}"]
    for name, v in probes.items():
        for i in range(steps):
            lines.append(f"{name[1:]:<5}{i + 1:>5}{v['KL'][i]:10.2f}{v['log_sigma_mean'][i]:12.3f}"
                         f"{v['log_sigma_max'][i]:11.3f}{v['head_grad'][i]:12.1f}")
    return "\n".join(lines)


def log_sigma_table(probes: dict[str, dict[str, torch.Tensor]], steps: tuple[int, ...]) -> str:
    """Mean log sigma over the minibatch before each of ``steps``, one column per seed."""
    lines = ["before step" + "".join(f"{'seed ' + name[1:]:>8}" for name in probes)]
    lines += [f"{step:<11}" + "".join(signed(v["log_sigma_mean"][step - 1], 3, 8)
                                      for v in probes.values()) for step in steps]
    return "\n".join(lines)


def run_name(config: train.Config) -> str:
    """``"<recipe> s<seed>"``: the recipe is plain or warmupN, the precision, and the scale
    where it is not the default log sigma (e.g. ``"warmup200 fp32 s3"``)."""
    recipe = f"warmup{config.warmup}" if config.warmup else "plain"
    scale = " logvar" if config.scale == "logvar" else ""
    return f"{recipe} {config.precision}{scale} s{config.seed}"


def collect(paths: list[Path]) -> dict[str, dict]:
    """The runs in checkpoints or history files, each named by its config (``run_name``)."""
    runs = {}
    for path in paths:
        try:
            found = [checkpoints.load_checkpoint(path)]
        except checkpoints.CheckpointError:
            found = list(checkpoints.load_histories(path).values())
        for run in found:
            name = run_name(train.Config.from_stored(run["config"]))
            if name in runs:
                raise ValueError(f"two runs are both {name!r} (the second in {path}).")
            runs[name] = run
    return dict(sorted(runs.items()))


# ---------------------------------------------------------------------------- the first steps


def head_stats(model: VAE, x: torch.Tensor) -> dict[str, float]:
    """What the encoder head and decoder produce on ``x``: sizes of mu, log sigma and x_hat."""
    with torch.no_grad():
        mu, log_sigma = model.encode(x)
        x_hat = model.decode(mu)
    return {"mu_rms": mu.pow(2).mean().sqrt().item(), "log_sigma_mean": log_sigma.mean().item(),
            "log_sigma_max": log_sigma.max().item(), "x_hat_mean": x_hat.mean().item(),
            "x_hat_std": x_hat.std().item()}


def probe(config: train.Config, steps: int = 50,
          data: MNIST | None = None) -> dict[str, torch.Tensor]:
    """Take the first ``steps`` Adam steps of ``config`` with ``train.run_steps`` and measure
    each: losses, the encoder head's outputs, its gradient and update sizes, the decoder."""
    data = data if data is not None else load_data(config.dataset)
    device = torch.device("cpu")
    config = dataclasses.replace(config, precision=pick_precision(config.precision, device))
    run = train.start_run(config, data.test_x, device)
    head = run.model.encoder[-1]
    rows = []

    def measure(step: int, x: torch.Tensor, take_step: train.Step) -> torch.Tensor:
        before = head.weight.detach().clone()
        stats = head_stats(run.model, x)  # before the step: what this step's loss saw
        loss = take_step(x)
        rows.append({"neg_elbo": loss[0].item(), "recon": loss[1].item(), "KL": loss[2].item(),
                     **stats, "head_grad": head.weight.grad.norm().item(),
                     "head_update": (head.weight.detach() - before).norm().item(),
                     "lr": run.optimizer.param_groups[0]["lr"]})
        return loss

    train.run_steps(run, config, data.train_x, 0, limit=steps, hook=measure)
    return {k: torch.tensor([r[k] for r in rows]) for k in rows[0]}


# ---------------------------------------------------------------------------- entry


def tables() -> str:
    """Every table of docs/training-study.md, computed from the shipped history files."""
    probes, recipes = load_probe(), load_study()
    plain, warm = recipes["plain fp32"], recipes["warmup200 fp32"]
    fp32 = {s: warm[s] for s in recipes["warmup200 bf16"]}
    update = "".join(f"{f'seed {n[1:]}':>9}" for n in probes)
    update = [f"{'step':<8}{update}"] + [f"{i:<8}" + "".join(
        f"{v['head_update'][i - 1]:9.3f}" for v in probes.values()) for i in (6, 25, 48)]
    sections = [
        ("plain recipe, first steps of seeds 2 and 1",
         probe_table({s: probes[s] for s in ("s2", "s1")}, steps=6)),
        ("mean log σ before steps 2-5", log_sigma_table(probes, (2, 3, 4, 5))),
        ("size of the encoder head's update (plain recipe)", "\n".join(update)),
        ("largest minibatch KL of the first 100 steps",
         peak_table({"plain": plain, "warm-up 200": warm}, steps=100)),
        ("test -ELBO by recipe (fp32)", seed_table({"plain": plain, "warm-up 200": warm})),
        ("warm-up 200, test -ELBO by training precision",
         seed_table({"fp32": fp32, "bf16": recipes["warmup200 bf16"]}, epochs=(1, 3, 5))),
        ("bf16 minus fp32, test -ELBO", difference_table(recipes["warmup200 bf16"], fp32, 5)),
        ("plain recipe, test -ELBO with log σ and with log σ²",
         seed_table({"log σ": {s: plain[s] for s in range(3)},
                     "log σ²": recipes["plain fp32 logvar"]}, epochs=(1, 3, 5))),
    ]
    return "\n\n".join(f"## {title}\n{table}" for title, table in sections)


def seed_figure(runs: dict[str, dict[int, dict]], steps: int = 100) -> Figure:
    """Per seed of each labelled recipe (``{label: {seed: history}}``, labels as shown):
    minibatch KL over the first ``steps`` Adam steps, and test -ELBO after epochs 1-3."""
    fig = Figure(figsize=(7, 2.9), layout="constrained")
    axes = fig.subplots(2, 1)
    colours = matplotlib.colormaps["tab10"](np.arange(len(runs)))
    width = 0.8 / len(runs)
    # A stalled seed's first epoch would squash the rest: the axis stops at 1.2 x the median
    # after epoch 1, and values above it are marked on the top edge with their value.
    firsts = [float(h["test"][1, 0]) for recipe in runs.values() for h in recipe.values()]
    top = 1.2 * float(np.median(firsts))
    for r, ((label, recipe), colour) in enumerate(zip(runs.items(), colours, strict=True)):
        for n, (seed, history) in enumerate(sorted(recipe.items())):
            kl = np.asarray(history["train"])[:steps, 2]
            axes[0].plot(np.arange(1, len(kl) + 1), kl, color=colour, lw=0.8, alpha=0.8,
                         label=label if n == 0 else None)
            test = np.asarray(history["test"])[1:4, 0]
            x = seed + (r - (len(runs) - 1) / 2) * width
            axes[1].plot([x] * len(test), test, color=colour, lw=0.8)
            for value, marker in zip(test, "os^", strict=False):
                axes[1].scatter([x], [min(value, top)], color=colour, marker=marker, s=18,
                                zorder=3, clip_on=False)
                if value > top:
                    axes[1].annotate(f"{value:.1f}", (x, top), xytext=(4, -10),
                                     textcoords="offset points", fontsize=TICK_PT,
                                     color=colour)
    axes[0].set_yscale("log")
    axes[0].set_xlabel("Adam step", fontsize=FONT_PT)
    axes[0].set_ylabel(LOSS_LABELS["KL"].replace("\n", " "), fontsize=FONT_PT)
    axes[0].set_title(f"minibatch KL in the first {steps} steps, one line per seed",
                      fontsize=FONT_PT)
    axes[0].legend(fontsize=TICK_PT, loc="upper right")  # the early spikes are on the left
    axes[1].set_xlabel("seed", fontsize=FONT_PT)
    axes[1].set_ylabel(LOSS_LABELS["-ELBO"], fontsize=FONT_PT)
    axes[1].set_title("test −ELBO after epoch 1 (●), 2 (■) and 3 (▲); a value above "
                      "the axis is written beside its marker", fontsize=FONT_PT)
    axes[1].set_ylim(top=top)
    for ax in axes:
        ax.tick_params(labelsize=TICK_PT, which="both")
    return fig


def main(argv: list[str] | None = None) -> None:
    """Command-line entry: ``run``, ``collect``, ``probe``, ``tables`` or ``figure``."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run", help="train one recipe over several seeds")
    r.add_argument("--name", required=True)
    r.add_argument("--seeds", type=int, nargs="+", required=True)
    r.add_argument("--epochs", type=int, default=3)
    r.add_argument("--warmup", type=int, default=0)
    r.add_argument("--precision", choices=PRECISIONS[:2], default="fp32")
    c = sub.add_parser("collect", help="ship the histories (no weights) of finished runs")
    c.add_argument("out", type=Path)
    c.add_argument("runs", type=Path, nargs="+")
    q = sub.add_parser("probe", help="measure the first Adam steps")
    q.add_argument("--seeds", type=int, nargs="+", required=True)
    q.add_argument("--steps", type=int, default=50)
    q.add_argument("--warmup", type=int, default=0)
    q.add_argument("--precision", choices=PRECISIONS[:2], default="fp32")
    q.add_argument("--out", type=Path, required=True)
    sub.add_parser("tables", help="print the tables of docs/training-study.md")
    f = sub.add_parser("figure", help="draw docs/seed-study.svg from the shipped histories")
    f.add_argument("--out", type=Path, default=SEED_FIGURE)
    args = p.parse_args(argv)
    if args.cmd == "tables":
        return print(tables())
    if args.cmd == "figure":
        plots.save(seed_figure(compared(load_study())), args.out.resolve())
        return print(f"wrote {args.out}")
    if args.cmd == "run":
        config = train.Config(epochs=args.epochs, warmup=args.warmup, precision=args.precision)
        run_seeds(args.name, config, args.seeds)
    elif args.cmd == "collect":
        runs = collect(args.runs)
        checkpoints.save_histories(runs, args.out)
        print(f"{len(runs)} histories -> {args.out}: " + ", ".join(runs))
    else:
        config = train.Config(warmup=args.warmup, precision=args.precision)
        probes = {s: probe(dataclasses.replace(config, seed=s), args.steps) for s in args.seeds}
        checkpoints.save_checkpoint(args.out, {f"s{s}": v for s, v in probes.items()})
        for s, v in probes.items():
            i = int(v["KL"].argmax())
            print(f"seed {s}: KL peak {v['KL'][i]:.1f} at step {i}, log_sigma_max "
                  f"{v['log_sigma_max'].max():.2f}, KL at end {v['KL'][-1]:.3f}")


if __name__ == "__main__":
    main()
