"""Drawing every figure: each ``*_figure`` function returns an unsaved matplotlib Figure.

Image grids take (N, H, W, C) uint8 arrays, the convention of the course's helper code
(CS294-158); ``helpers.figures`` saves and shows what these draw.
"""

from __future__ import annotations

import math

import matplotlib
import numpy as np
import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import MaxNLocator
from torchvision.utils import make_grid

from helpers.data import PAD
from helpers.made import MADE
from helpers.vae import LOSS_NAMES

GRID_SCALE = 3  # output pixels per image pixel (each one a GRID_SCALE x GRID_SCALE block)
GRID_DPI = 360  # so a 10 x 10 grid of 28 x 28 digits prints 2.5 in wide


def to_uint8(x: torch.Tensor, crop: bool = True) -> np.ndarray:
    """(N, 1, 32, 32) images in [-1, 1] (clamped) as (N, H, W, 1) uint8; ``crop``: unpadded."""
    x = x.detach().float().cpu().clamp(-1, 1)
    if crop:
        x = x[..., PAD:-PAD, PAD:-PAD]
    return ((x + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()


def image_grid(samples: np.ndarray, nrow: int = 10) -> np.ndarray:
    """(N, H, W, C) uint8 images as one (rows, cols, 3) uint8 grid, 2 px apart (make_grid)."""
    samples = np.asarray(samples)
    if samples.ndim != 4 or samples.dtype != np.uint8:
        raise ValueError(f"expected (N, H, W, C) uint8 images, got {samples.shape} "
                         f"{samples.dtype}: convert model outputs with plots.to_uint8.")
    grid = make_grid(torch.from_numpy(samples).permute(0, 3, 1, 2), nrow=nrow, padding=2)
    return grid.permute(1, 2, 0).numpy()  # make_grid gives 3 channels, grey stays grey


def grid_figure(grid: np.ndarray, title: str, scale: int = GRID_SCALE,
                fontsize: float = 9) -> Figure:
    """``grid`` enlarged ``scale`` times, each pixel an exact block of the PNG, under ``title``."""
    big = np.kron(grid, np.ones((scale, scale, 1), dtype=np.uint8))
    height, width = big.shape[:2]
    fig = Figure(dpi=GRID_DPI)
    text = fig.text(0.5, 1, title, ha="center", va="center", fontsize=fontsize)
    text_box = text.get_window_extent(FigureCanvasAgg(fig).get_renderer())
    band = math.ceil(2.2 * text_box.height)  # the title's band above the grid, in px
    full = max(width, 2 * math.ceil(text_box.width / 2 + 0.1 * GRID_DPI))  # even side margins
    # A quarter pixel more than the size: the canvas truncates inches x dpi to whole pixels.
    fig.set_size_inches((full + 0.25) / GRID_DPI, (height + band + 0.25) / GRID_DPI)
    fig.figimage(big, xo=(full - width) // 2, yo=0, origin="upper")  # pasted pixel for pixel
    text.set_position((0.5, 1 - band / 2 / (height + band)))
    return fig


def samples_figure(samples: np.ndarray, nrow: int = 10, title: str = "Samples") -> Figure:
    """A grid of (N, H, W, C) uint8 images, ``nrow`` per row (the course helper's convention)."""
    return grid_figure(image_grid(samples, nrow), title)


# Units of each column: the assignment's reconstruction term is a squared error, not nats.
UNITS = {"-ELBO": "squared error + nats", "reconstruction": "squared error", "KL": "nats"}
ROWS = {"-ELBO": "-ELBO", "reconstruction": "recon.\n(sq. error)", "KL": "KL\n(nats)"}


def zoom_limits(values: np.ndarray) -> tuple[float, float]:
    """A y-range holding ``values`` with 8% to spare on each side."""
    low, high = float(values.min()), float(values.max())
    pad = 0.08 * (high - low) or 0.5
    return low - pad, high + pad


def training_curves_figure(train_losses: np.ndarray, test_losses: np.ndarray,
                           title: str) -> Figure:
    """A row per loss term: every epoch on a log axis (the first steps are ~10x the rest), and
    epochs 2 on zoomed, with each epoch's mean minibatch loss, so the train-test gap reads."""
    train_losses, test_losses = np.asarray(train_losses), np.asarray(test_losses)
    epochs = len(test_losses) - 1
    x_train = np.linspace(0, epochs, len(train_losses))
    x_test = np.arange(epochs + 1)
    first = min(2, epochs)  # where the zoom starts
    means = np.array([part.mean(0) for part in np.array_split(train_losses, epochs)])
    x_means = np.arange(1, epochs + 1) - 0.5
    fig = Figure(figsize=(7, 3.5), layout="constrained")
    axes = fig.subplots(3, 2, sharex="col")
    for i, name in enumerate(LOSS_NAMES):
        left, right = axes[i]
        left.plot(x_train, train_losses[:, i], lw=0.5, alpha=0.7, rasterized=True,
                  label="train (per minibatch)")  # ~9,000 points: an image inside the SVG
        left.plot(x_test, test_losses[:, i], "o-", ms=3, lw=1, color="C1",
                  label="test (whole set, per epoch)")
        left.set_yscale("log")
        left.set_ylabel(ROWS[name], fontsize=9)
        late, late_means, late_test = x_train >= first, x_means >= first, x_test >= first
        right.plot(x_train[late], train_losses[late, i], lw=0.5, alpha=0.3, rasterized=True)
        right.plot(x_means[late_means], means[late_means, i], "s-", ms=3, lw=1, color="C0",
                   label="train (mean of each epoch)")
        right.plot(x_test[late_test], test_losses[late_test, i], "o-", ms=3, lw=1, color="C1")
        if late_test.any():
            right.set_ylim(*zoom_limits(np.concatenate([means[late_means, i],
                                                        test_losses[late_test, i]])))
            right.set_xlim(first - 0.6, epochs + 0.3)
    axes[0, 0].set_title("every epoch (log scale)", fontsize=9)
    axes[0, 1].set_title(f"epochs {first} to {epochs} (zoomed)", fontsize=9)
    for ax in axes[-1]:
        ax.set_xlabel("epoch", fontsize=9)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True, steps=[1, 2, 5, 10]))
    for ax in axes.flat:
        ax.tick_params(labelsize=8, which="both")
    (minibatch, test), (mean,) = (ax.get_legend_handles_labels()[0] for ax in axes[0])
    handles = [minibatch, mean, test]
    fig.legend(handles, [h.get_label() for h in handles], loc="outside lower center", ncol=3,
               fontsize=8, frameon=False)
    fig.suptitle(title, fontsize=10)
    return fig


def seed_study_figure(recipes: dict[str, dict[int, dict]], steps: int = 100) -> Figure:
    """Per seed of each recipe (``{label: {seed: history}}``): minibatch KL over the first
    ``steps`` Adam steps, and test -ELBO after each of the first three epochs."""
    fig = Figure(figsize=(7, 3.0), layout="constrained")
    axes = fig.subplots(2, 1)
    colours = matplotlib.colormaps["tab10"](np.arange(len(recipes)))
    width = 0.8 / len(recipes)
    # A stalled seed's first epoch would squash the rest: the axis stops at 1.2 x the median
    # after epoch 1, and values above it are marked on the top edge with their value.
    firsts = [float(h["test"][1, 0]) for runs in recipes.values() for h in runs.values()]
    top = 1.2 * float(np.median(firsts))
    for r, ((label, runs), colour) in enumerate(zip(recipes.items(), colours, strict=True)):
        for n, (seed, history) in enumerate(sorted(runs.items())):
            kl = np.asarray(history["train"])[:steps, 2]
            axes[0].plot(np.arange(1, len(kl) + 1), kl, color=colour, lw=0.8, alpha=0.8,
                         label=label if n == 0 else None)
            test = np.asarray(history["test"])[1:4, 0]
            x = seed + (r - (len(recipes) - 1) / 2) * width
            axes[1].plot([x] * len(test), test, color=colour, lw=0.8)
            for value, marker in zip(test, "os^", strict=False):
                axes[1].scatter([x], [min(value, top)], color=colour, marker=marker, s=18,
                                zorder=3, clip_on=False)
                if value > top:
                    axes[1].annotate(f"{value:.1f}", (x, top), xytext=(4, -10),
                                     textcoords="offset points", fontsize=8, color=colour)
    axes[0].set_yscale("log")
    axes[0].set_xlabel("Adam step", fontsize=9)
    axes[0].set_ylabel(UNITS["KL"], fontsize=9)
    axes[0].set_title(f"minibatch KL in the first {steps} steps, one line per seed", fontsize=10)
    axes[0].legend(fontsize=8, loc="upper right")  # the early spikes are on the left
    axes[1].set_xlabel("seed", fontsize=9)
    axes[1].set_ylabel(UNITS["-ELBO"], fontsize=9)
    axes[1].set_title("test -ELBO after epoch 1 (●), 2 (■) and 3 (▲), colours as above\n"
                      "a value above the axis is written beside its marker", fontsize=9)
    axes[1].set_ylim(top=top)
    for ax in axes:
        ax.tick_params(labelsize=8, which="both")
    return fig


def paths_into(made: MADE, output: int) -> list[set[tuple[int, int]]]:
    """Per mask, the (target, source) unit pairs on some path into output unit ``output``."""
    reach = {output}  # units of the current layer from which ``output`` can be reached
    edges: list[set[tuple[int, int]]] = []
    for mask in reversed(made.masks):
        kept = {(int(t), int(s)) for t, s in zip(*np.nonzero(mask.numpy()), strict=True)
                if t in reach}
        edges.insert(0, kept)
        reach = {s for _, s in kept}
    return edges


def made_figure(made: MADE, output: int = 3) -> Figure:
    """MADE's units labelled with their degrees, every connection a mask keeps (solid) or
    removes (faint, dashed), and every path into output ``output`` drawn bold: it starts only
    at x_1 .. x_{output-1}."""
    layers = [d.tolist() for d in made.degrees] + [list(range(1, made.n + 1))]
    names = ["input"] + [f"hidden {i}" for i in range(1, len(made.degrees))] + ["output"]
    masks = [f"$M^{{({j})}}$" for j in range(1, len(made.masks))] + [r"$M^{\mathrm{out}}$"]
    width = max(len(layer) for layer in layers)
    pos = [[((width - len(layer)) / 2 + k, len(layers) - 1 - j) for k in range(len(layer))]
           for j, layer in enumerate(layers)]
    fig = Figure(figsize=(6.6, 3.3), layout="constrained")
    ax = fig.subplots()
    bold = paths_into(made, output - 1)
    styles = {"removed": dict(color="0.6", lw=0.7, ls=(0, (3, 3))),
              "kept": dict(color="0.35", lw=0.9, ls="-"),
              "bold": dict(color="black", lw=2.2, ls="-")}
    for j, mask in enumerate(made.masks):
        mask = mask.numpy()
        for t in range(mask.shape[0]):
            for s in range(mask.shape[1]):
                kind = "bold" if (t, s) in bold[j] else "kept" if mask[t, s] else "removed"
                (x0, y0), (x1, y1) = pos[j][s], pos[j + 1][t]
                ax.plot([x0, x1], [y0, y1], zorder=2 if kind == "bold" else 1, **styles[kind])
        ax.text(width - 0.35, len(layers) - 1.5 - j, f"mask {masks[j]}", ha="left",
                va="center", fontsize=9)
    starts = {s for _, s in bold[0]}
    for j, layer in enumerate(layers):
        for k, m in enumerate(layer):
            x, y = pos[j][k]
            thick = (j == 0 and k in starts) or (j == len(layers) - 1 and m == output)
            ax.scatter([x], [y], s=240, color="white", edgecolor="black", zorder=3,
                       linewidths=2.2 if thick else 0.9)
            ax.text(x, y, str(m), ha="center", va="center", fontsize=9, zorder=4)
            if j == 0:  # inputs: the variable each one is (input x_d has degree d)
                ax.text(x, y + 0.22, f"$x_{m}$", ha="center", va="bottom", fontsize=10)
            if j == len(layers) - 1:  # outputs: the conditional each one parameterises
                cond = f"$p(x_{m})$" if m == 1 else f"$p(x_{m} \\mid x_{{<{m}}})$"
                ax.text(x, y - 0.22, cond, ha="center", va="top", fontsize=9)
        ax.text(-0.55, pos[j][0][1], names[j], ha="right", va="center", fontsize=9)
    handles = [Line2D([], [], **styles[k]) for k in ("kept", "removed", "bold")]
    ax.legend(handles, ["kept by the mask (1)", "removed by the mask (0)",
                        f"on a path into output {output}"],
              loc="upper center", bbox_to_anchor=(0.5, 0.0), ncol=3, fontsize=8,
              frameon=False, handlelength=2.5)
    ax.set_title(f"MADE, n = {made.n}: the number in a unit is its degree; outputs are "
                 f"numbered d.\nOutput {output} is reached only from "
                 + ", ".join(f"$x_{d}$" for d in range(1, output)), fontsize=9)
    ax.set_xlim(-1.6, width + 0.55)
    ax.set_ylim(-0.75, len(layers) - 0.55)
    ax.axis("off")
    return fig


def flow_density_figure(samples: np.ndarray,
                        grid: tuple[np.ndarray, np.ndarray, np.ndarray]) -> Figure:
    """Samples z_t of the flow beside the density q_t from the formula, on the same axes."""
    gx, gy, density = grid
    # Constrained layout gives the colour bar its own room: both panels keep the same size.
    fig = Figure(figsize=(7, 3.3), layout="constrained")
    axes = fig.subplots(1, 2)
    axes[0].scatter(samples[:, 0], samples[:, 1], s=1, alpha=0.3, rasterized=True)
    axes[0].set_title(r"samples $z_t = g_3(g_2(g_1(z_0)))$, $z_0 \sim \mathcal{N}(0, I)$",
                      fontsize=9)
    # Rasterised too: 30 filled levels as vectors weigh ~0.4 MB and show seams between them.
    filled = axes[1].contourf(gx, gy, density, levels=30, cmap="viridis", rasterized=True)
    axes[1].set_title(r"$q_t(z_t)$ from the formula", fontsize=9)
    bar = fig.colorbar(filled, ax=axes[1], shrink=0.85)
    bar.set_label(r"density $q_t$", fontsize=9)
    bar.ax.tick_params(labelsize=8)
    for ax in axes:
        ax.set_xlabel(r"first coordinate of $z_t$", fontsize=9)
        ax.set_ylabel(r"second coordinate of $z_t$", fontsize=9)
        ax.set_aspect("equal")
        ax.set_xlim(gx.min(), gx.max())
        ax.set_ylim(gy.min(), gy.max())
        ax.tick_params(labelsize=8)
    return fig


def latent_means_figure(mu_2d: np.ndarray, labels: np.ndarray, explained: np.ndarray) -> Figure:
    """Test-set encoder means projected to 2-D, coloured by digit; axes say their variance share."""
    fig = Figure(figsize=(5.0, 3.0), layout="constrained")
    ax = fig.subplots()
    sc = ax.scatter(mu_2d[:, 0], mu_2d[:, 1], c=labels, cmap="tab10", s=2, alpha=0.6,
                    rasterized=True)
    ax.legend(*sc.legend_elements(), title="digit", fontsize=8, title_fontsize=9,
              markerscale=1.5, loc="center left", bbox_to_anchor=(1, 0.5))
    ax.set_xlabel(f"component 1 ({explained[0]:.0%} of the variance)", fontsize=9)
    ax.set_ylabel(f"component 2 ({explained[1]:.0%} of the variance)", fontsize=9)
    ax.set_title(r"Test-set latent means $\mu(x)$, first two principal components",
                 fontsize=9)
    ax.tick_params(labelsize=8)
    return fig


def active_units_figure(kl_per_dim: np.ndarray, activity: np.ndarray,
                        threshold: float = 0.01) -> Figure:
    """Mean KL per latent dimension, and the activity Cov_x(E_q[z_u]) against its threshold."""
    fig = Figure(figsize=(7, 2.3), layout="constrained")
    axes = fig.subplots(1, 2)
    dims = np.arange(1, len(kl_per_dim) + 1)
    axes[0].bar(dims, kl_per_dim)
    axes[0].set_title("mean KL per latent dimension (nats)", fontsize=9)
    axes[1].bar(dims, activity, color=["C0" if a > threshold else "C3" for a in activity])
    axes[1].axhline(threshold, color="k", ls="--", lw=1)
    axes[1].set_yscale("log")
    axes[1].set_title(r"activity $\mathrm{Var}_x(\mu_u(x))$; active above the dashed line",
                      fontsize=9)
    for ax in axes:
        ax.set_xlabel("latent dimension u", fontsize=9)
        ax.set_xticks(dims)
        ax.tick_params(labelsize=8, which="both")
    return fig
