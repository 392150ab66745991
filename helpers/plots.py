"""Every figure of the notebook. Each function draws one figure, saves it as PNG, returns it.

Figures are closed before they are returned, so a notebook shows each exactly once: where a cell
returns it (or passes it to ``display``), not again at the end of the cell.

``plot_vae_training_plot`` and ``show_samples`` keep the signatures and array conventions of
the course's helper code (CS294-158), so the same arrays can be handed to either.
"""

from __future__ import annotations

import os
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg, RendererAgg
from matplotlib.figure import Figure
from matplotlib.legend import Legend
from matplotlib.text import Text
from matplotlib.transforms import Bbox
from torchvision.utils import make_grid

from helpers.data import PAD, REPO_ROOT
from helpers.made import MADE
from helpers.vae import LOSS_NAMES

# HW1_FIGURES lets the tests execute the notebook without touching the committed figures.
FIGURES = Path(os.environ.get("HW1_FIGURES", REPO_ROOT / "figures"))


def save(fig: Figure, fname: str | Path | None) -> Figure:
    """Save ``fig`` (relative names go under figures/) and return it."""
    if fname is not None:
        path = Path(fname)
        path = path if path.is_absolute() else FIGURES / path
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=110, bbox_inches="tight", metadata={"Software": None})
    plt.close(fig)
    return fig


def to_uint8(x: torch.Tensor, crop: bool = True) -> np.ndarray:
    """Model images in [-1, 1], (N, 1, 32, 32) -> (N, H, W, 1) uint8 in 0..255.

    Decoder means are clamped to [-1, 1]; ``crop`` drops the 2-pixel padding (28x28 MNIST).
    """
    x = x.detach().float().cpu().clamp(-1, 1)
    if crop:
        x = x[..., PAD:-PAD, PAD:-PAD]
    return ((x + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()


def show_samples(samples: np.ndarray, fname: str | Path | None = None, nrow: int = 10,
                 title: str = "Samples") -> Figure:
    """A grid of (N, H, W, C) uint8 images, ``nrow`` per row (the course helper's convention)."""
    samples = np.asarray(samples)
    if samples.ndim != 4 or samples.dtype != np.uint8:
        raise ValueError(f"expected (N, H, W, C) uint8 images, got {samples.shape} "
                         f"{samples.dtype}: convert model outputs with plots.to_uint8.")
    grid = make_grid(torch.from_numpy(samples).permute(0, 3, 1, 2), nrow=nrow, padding=2)
    rows = int(np.ceil(len(samples) / nrow))
    fig, ax = plt.subplots(figsize=(nrow * 0.36, rows * 0.36 + 0.4))
    ax.imshow(grid.permute(1, 2, 0).numpy())  # make_grid gives 3 channels, grey stays grey
    ax.set_title(title)
    ax.axis("off")
    return save(fig, fname)


# Units of each column: the assignment's reconstruction term is a squared error, not nats.
UNITS = {"-ELBO": "squared error + nats", "reconstruction": "squared error", "KL": "nats"}
TITLES = {"-ELBO": "-ELBO", "reconstruction": "reconstruction (summed over 1024 pixels)",
          "KL": "KL"}


def y_top(train_column: np.ndarray, test_column: np.ndarray) -> float:
    """Where a curve's y-axis is cut: 1.1 x max(99th pct. of minibatches, test after epoch 0)."""
    return 1.1 * max(np.percentile(train_column, 99), test_column[1:].max())


def plot_vae_training_plot(train_losses: np.ndarray, test_losses: np.ndarray, title: str,
                           fname: str | Path | None = None) -> Figure:
    """Train curves per minibatch and test curves per epoch, columns [-ELBO, recon, KL].

    Stacked so the figure prints at full page width. Values above the cut (the first Adam
    steps, the untrained model) are marked by triangles on the top edge.
    """
    train_losses, test_losses = np.asarray(train_losses), np.asarray(test_losses)
    epochs = len(test_losses) - 1
    x_train = np.linspace(0, epochs, len(train_losses))
    x_test = np.arange(epochs + 1)
    fig, axes = plt.subplots(3, 1, figsize=(8, 5.0), sharex=True)
    for i, (ax, name) in enumerate(zip(axes, LOSS_NAMES, strict=True)):
        ax.plot(x_train, train_losses[:, i], lw=0.6, alpha=0.7, label="train (per minibatch)")
        ax.plot(x_test, test_losses[:, i], "o-", ms=3, label="test (whole set)")
        ax.set_title(TITLES[name], loc="left")
        ax.set_ylabel(UNITS[name])
        if len(train_losses) and epochs:  # the first steps are ~10x larger; show the tail
            top = y_top(train_losses[:, i], test_losses[:, i])
            above = train_losses[:, i] > top
            ax.set_ylim(0, top)
            ax.plot(x_train[above], np.full(above.sum(), top), "v", ms=4, color="C3",
                    clip_on=False, label="cut off (value above the axis)")
            n = int(above.sum())
            ax.set_title(f"axis cut at {top:.1f}; {n} minibatch{'es' * (n != 1)} above it, the "
                         f"largest {train_losses[:, i].max():,.1f}\ntest at epoch 0: "
                         f"{test_losses[0, i]:,.1f}", loc="right", fontsize=8)
    axes[0].legend(fontsize=8, loc="upper right")  # where the -ELBO panel has no data
    axes[-1].set_xlabel("epoch")
    fig.suptitle(title)
    fig.tight_layout()
    return save(fig, fname)


def plot_seed_study(recipes: dict[str, dict[int, dict]], steps: int = 100,
                    fname: str | Path | None = None) -> Figure:
    """Per seed and recipe: minibatch KL over the first ``steps`` Adam steps, and test -ELBO
    after each of the first three epochs.

    ``recipes`` maps a label to ``{seed: history}`` with the layout of ``train`` histories.
    """
    fig, axes = plt.subplots(2, 1, figsize=(8, 5.0))
    colours = plt.cm.tab10(np.arange(len(recipes)))
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
    axes[0].set_xlabel("Adam step")
    axes[0].set_ylabel(UNITS["KL"])
    axes[0].set_title(f"minibatch KL in the first {steps} steps, one line per seed")
    axes[0].legend(fontsize=8)
    axes[1].set_xlabel("seed")
    axes[1].set_ylabel(UNITS["-ELBO"])
    axes[1].set_title("test -ELBO after epoch 1 (●), 2 (■) and 3 (▲), colours as above\n"
                      "a value above the axis is written beside its marker", fontsize=10)
    axes[1].set_ylim(top=top)
    fig.tight_layout()
    return save(fig, fname)


def draw_made(made: MADE, fname: str | Path | None = None) -> Figure:
    """MADE's units labelled with their degrees (inputs also x_1..x_n), and only the connections
    its masks keep, coloured by the degree of their source unit (with a legend)."""
    layers = [d.tolist() for d in made.degrees] + [list(range(1, made.n + 1))]
    names = ["input"] + [f"hidden {i}" for i in range(1, len(made.degrees))] + ["output"]
    width = max(len(layer) for layer in layers)
    gap = 1.5  # horizontal distance between units, room for the output labels
    pos = [[(gap * ((width - len(layer)) / 2 + k), len(layers) - 1 - j)
            for k in range(len(layer))] for j, layer in enumerate(layers)]
    fig, ax = plt.subplots(figsize=(1.3 * width + 2, 1.15 * len(layers)))
    colours = plt.cm.tab10(np.arange(made.n))
    source_degrees = set()  # degrees that have an outgoing edge, for the legend
    for j, mask in enumerate(made.masks):
        for out_k, in_k in zip(*np.nonzero(mask.numpy()), strict=True):
            (x0, y0), (x1, y1) = pos[j][in_k], pos[j + 1][out_k]
            ax.plot([x0, x1], [y0, y1], color=colours[layers[j][in_k] - 1], lw=1, alpha=0.6)
            source_degrees.add(layers[j][in_k])
    for j, layer in enumerate(layers):
        for k, m in enumerate(layer):
            x, y = pos[j][k]
            ax.scatter([x], [y], s=650, color="white", edgecolor="black", zorder=3)
            ax.text(x, y, str(m), ha="center", va="center", fontsize=11, zorder=4)
            if j == 0:  # inputs: the variable each one is (input x_d has degree d)
                ax.text(x, y + 0.3, f"$x_{m}$", ha="center", va="bottom", fontsize=12)
            if j == len(layers) - 1:  # outputs: the conditional each one parameterises
                cond = f"$p(x_{m})$" if m == 1 else f"$p(x_{m} \\mid x_{{<{m}}})$"
                ax.text(x, y - 0.32, cond, ha="center", va="top", fontsize=10)
        ax.text(-1.3, pos[j][0][1], names[j], ha="right", va="center", fontsize=10)
    ax.set_title(f"MADE with n = {made.n} inputs: the number in each input or hidden unit is its "
                 "degree,\noutputs are numbered by their index d; an edge exists only where the "
                 "mask is 1", fontsize=11)
    handles = [plt.Line2D([], [], color=colours[m - 1], lw=2) for m in sorted(source_degrees)]
    ax.legend(handles, [f"from a unit of degree {m}" for m in sorted(source_degrees)],
              loc="upper center", bbox_to_anchor=(0.5, 0.0), ncol=len(handles), fontsize=10,
              frameon=False, title="edge colour (degree of the edge's source unit)",
              title_fontsize=10)
    ax.set_xlim(-3.2, gap * width)
    ax.set_ylim(-0.8, len(layers) - 0.25)
    ax.axis("off")
    return save(fig, fname)


def plot_flow_density(samples: np.ndarray, grid: tuple[np.ndarray, np.ndarray, np.ndarray],
                      fname: str | Path | None = None) -> Figure:
    """Samples z_t of the flow beside the density q_t from the formula, on the same axes."""
    gx, gy, density = grid
    # Constrained layout gives the colour bar its own room: both panels keep the same size.
    fig, axes = plt.subplots(1, 2, figsize=(9, 4.2), layout="constrained")
    axes[0].scatter(samples[:, 0], samples[:, 1], s=1, alpha=0.3)
    axes[0].set_title(r"samples $z_t = g_3(g_2(g_1(z_0)))$, $z_0 \sim \mathcal{N}(0, I)$")
    filled = axes[1].contourf(gx, gy, density, levels=30, cmap="viridis")
    axes[1].set_title(r"$q_t(z_t)$ from the formula")
    fig.colorbar(filled, ax=axes[1], label=r"density $q_t$", shrink=0.85)
    for ax in axes:
        ax.set_xlabel(r"first coordinate of $z_t$")
        ax.set_ylabel(r"second coordinate of $z_t$")
        ax.set_aspect("equal")
        ax.set_xlim(gx.min(), gx.max())
        ax.set_ylim(gy.min(), gy.max())
    return save(fig, fname)


def plot_latent_means(mu_2d: np.ndarray, labels: np.ndarray, explained: np.ndarray,
                      fname: str | Path | None = None) -> Figure:
    """Test-set encoder means projected to 2-D, coloured by digit; axes say their variance share."""
    fig, ax = plt.subplots(figsize=(5.0, 3.7))
    sc = ax.scatter(mu_2d[:, 0], mu_2d[:, 1], c=labels, cmap="tab10", s=2, alpha=0.6)
    ax.legend(*sc.legend_elements(), title="digit", fontsize=8, markerscale=1.5,
              loc="center left", bbox_to_anchor=(1, 0.5))
    ax.set_xlabel(f"component 1 ({explained[0]:.0%} of the variance)")
    ax.set_ylabel(f"component 2 ({explained[1]:.0%} of the variance)")
    ax.set_title(r"Test-set latent means $\mu(x)$, first two principal components")
    return save(fig, fname)


def plot_active_units(kl_per_dim: np.ndarray, activity: np.ndarray, threshold: float = 0.01,
                      fname: str | Path | None = None) -> Figure:
    """Mean KL per latent dimension, and the activity Cov_x(E_q[z_u]) against its threshold."""
    fig, axes = plt.subplots(1, 2, figsize=(9.5, 3.5))
    dims = np.arange(1, len(kl_per_dim) + 1)
    axes[0].bar(dims, kl_per_dim)
    axes[0].set_title("mean KL per latent dimension (nats)")
    axes[1].bar(dims, activity, color=["C0" if a > threshold else "C3" for a in activity])
    axes[1].axhline(threshold, color="k", ls="--", lw=1)
    axes[1].set_yscale("log")
    axes[1].set_title(r"activity $\mathrm{Var}_x(\mu_u(x))$; active above the dashed line")
    for ax in axes:
        ax.set_xlabel("latent dimension u")
        ax.set_xticks(dims)
    fig.tight_layout()
    return save(fig, fname)


def _drawn_texts(fig: Figure) -> tuple[RendererAgg, list[tuple[Text | Legend, Bbox]]]:
    """Lay ``fig`` out; every text it draws, and each legend as one piece, with its box in px."""
    canvas = FigureCanvasAgg(fig)  # a closed figure has lost its canvas; lay it out again
    canvas.draw()
    renderer = canvas.get_renderer()
    legends = [leg for leg in fig.findobj(Legend) if leg.get_visible()]
    skip = {id(t) for leg in legends for t in leg.findobj(Text)}
    for ax in fig.axes:  # hidden axes, and tick labels outside the view, are not drawn
        for axis in (ax.xaxis, ax.yaxis):
            if not ax.axison or not axis.get_visible():
                skip.update(id(t) for t in axis.findobj(Text))
            low, high = sorted(axis.get_view_interval())
            for tick in axis.get_major_ticks() + axis.get_minor_ticks():
                if not low - 1e-9 * (high - low) <= tick.get_loc() <= high + 1e-9 * (high - low):
                    skip.update((id(tick.label1), id(tick.label2)))
    texts = [t for t in fig.findobj(Text)
             if id(t) not in skip and t.get_visible() and t.get_text().strip()]
    return renderer, [(a, a.get_window_extent(renderer)) for a in [*texts, *legends]]


def text_boxes(fig: Figure) -> list[tuple[str, Bbox]]:
    """Every text ``fig`` draws with its box in pixels; a legend counts as one box."""
    return [(a.get_text() if isinstance(a, Text) else "legend", box)
            for a, box in _drawn_texts(fig)[1]]


def text_overlaps(fig: Figure, slack: float = 0.5) -> list[tuple[str, str]]:
    """Pairs of texts (or legends) of ``fig`` whose boxes overlap by more than ``slack`` px."""
    boxes = [(text, box.expanded(1, 1).padded(-slack)) for text, box in text_boxes(fig)]
    return [(a, b) for i, (a, box_a) in enumerate(boxes) for b, box_b in boxes[i + 1:]
            if box_a.overlaps(box_b)]


def texts_cut_off(fig: Figure, slack: float = 0.5) -> list[str]:
    """Texts of ``fig`` that would be cut: outside the area a tight save keeps, or outside the
    clip box of a text drawn clipped (such as ``ax.text(..., clip_on=True)``)."""
    renderer, drawn = _drawn_texts(fig)
    kept = fig.get_tightbbox(renderer).padded(0.1).transformed(fig.dpi_scale_trans)
    cut = []
    for artist, box in drawn:
        clipped = artist.get_clip_on() and artist.get_clip_box() is not None
        area = artist.get_clip_box() if clipped else kept
        inner = box.padded(-slack)
        if not (area.x0 <= inner.x0 and inner.x1 <= area.x1 and area.y0 <= inner.y0
                and inner.y1 <= area.y1):
            cut.append(artist.get_text() if isinstance(artist, Text) else "legend")
    return cut
