"""The notebook's figures, one function each: it computes what its figure shows and draws it.

Each is registered under its file name with ``@figure``; calling it saves the figure under
figures/ (or $HW1_FIGURES) and returns the saved bytes for display, so the notebook shows exactly
what figures/ holds. ``FIGURES`` (file name -> drawing function, returning the unsaved Figure) is
the one list of them, which the tests make one by one; what the figures share (the registry,
saving, image grids) is in ``helpers.plots``. Model calls feeding a figure run in float64 on the
CPU: the same bytes on every CPU and thread count. A new figure is one function here.
"""

from __future__ import annotations

import math

import matplotlib
import numpy as np
import torch
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import (
    FixedLocator,
    FormatStrFormatter,
    MaxNLocator,
    MultipleLocator,
    NullLocator,
)

from helpers import analysis, flows, plots
from helpers.data import MNIST
from helpers.made import MADE
from helpers.plots import FIGURES as FIGURES  # the registry, re-exported: name -> function
from helpers.plots import FONT_PT, TICK_PT, figure
from helpers.vae import LOSS_NAMES, VAE

# The axis label of each loss term, with its unit: the reconstruction term is the assignment's
# squared error summed over pixels, the KL is in nats, the -ELBO is their sum; all per image.
LOSS_LABELS = {"-ELBO": "−ELBO\n(recon. + KL)", "reconstruction": "recon.\n(sq. error)",
               "KL": "KL\n(nats)"}


# ----------------------------------------------------------------------------- question 1

def paths_into(made_model: MADE, output: int) -> list[set[tuple[int, int]]]:
    """Per mask, the (target, source) unit pairs on some path into output unit ``output``."""
    reach = {output}  # units of the current layer from which ``output`` can be reached
    edges: list[set[tuple[int, int]]] = []
    for mask in reversed(made_model.masks):
        kept = {(int(t), int(s)) for t, s in zip(*np.nonzero(mask.numpy()), strict=True)
                if t in reach}
        edges.insert(0, kept)
        reach = {s for _, s in kept}
    return edges


@figure("made.svg")
def made(made_model: MADE, output: int = 3) -> Figure:
    """Question 1: MADE's units, each input and hidden one labelled with its degree and each
    output with its index d; every connection a mask keeps (a removed one is not drawn), and
    every path into output ``output`` bold: it starts only at x_1 .. x_{output-1}."""
    layers = [d.tolist() for d in made_model.degrees] + [list(range(1, made_model.n + 1))]
    hidden = len(made_model.degrees) - 1
    names = (["input $x_j$ (degree $j$)"] + [f"hidden {i} (degree)" for i in range(1, hidden + 1)]
             + ["output (index d)"])
    masks = [f"$M^{{({j})}}$" for j in range(1, len(made_model.masks))] + [r"$M^{\mathrm{out}}$"]
    width = max(len(layer) for layer in layers)
    pos = [[((width - len(layer)) / 2 + k, len(layers) - 1 - j) for k in range(len(layer))]
           for j, layer in enumerate(layers)]
    fig = Figure(figsize=(6.4, 2.8), layout="constrained")
    ax = fig.subplots()
    bold = paths_into(made_model, output - 1)
    styles = {"kept": dict(color="0.45", lw=0.9, ls="-"),
              "bold": dict(color="black", lw=2.2, ls="-")}
    for j, mask in enumerate(made_model.masks):
        for t, s in zip(*np.nonzero(mask.numpy()), strict=True):
            kind = "bold" if (int(t), int(s)) in bold[j] else "kept"
            (x0, y0), (x1, y1) = pos[j][s], pos[j + 1][t]
            ax.plot([x0, x1], [y0, y1], zorder=2 if kind == "bold" else 1, **styles[kind])
        ax.text(width - 0.35, len(layers) - 1.5 - j, f"mask {masks[j]}", ha="left",
                va="center", fontsize=FONT_PT)
    starts = {s for _, s in bold[0]}
    for j, layer in enumerate(layers):
        for k, m in enumerate(layer):
            x, y = pos[j][k]
            thick = (j == 0 and k in starts) or (j == len(layers) - 1 and m == output)
            ax.scatter([x], [y], s=220, color="white", edgecolor="black", zorder=3,
                       linewidths=2.2 if thick else 0.9)
            ax.text(x, y, str(m), ha="center", va="center", fontsize=FONT_PT, zorder=4)
            if j == 0:  # inputs: the variable each one is (input x_d has degree d)
                ax.text(x, y + 0.2, f"$x_{m}$", ha="center", va="bottom", fontsize=FONT_PT)
            if j == len(layers) - 1:  # outputs: the conditional each one parameterises
                cond = f"$p(x_{m})$" if m == 1 else f"$p(x_{m} \\mid x_{{<{m}}})$"
                ax.text(x, y - 0.2, cond, ha="center", va="top", fontsize=FONT_PT)
        ax.text(-0.45, pos[j][0][1], names[j], ha="right", va="center", fontsize=FONT_PT)
    handles = [Line2D([], [], **styles[k]) for k in ("kept", "bold")]
    labels = ["connection kept by the masks", f"kept connection on a path into output {output}"]
    ax.legend(handles, labels,
              loc="upper center", bbox_to_anchor=(0.5, 0.0), ncol=3, fontsize=TICK_PT,
              frameon=False, handlelength=2.5)
    ax.set_title(f"MADE, n = {made_model.n}: input and hidden circles show their unit's degree, "
                 "output circles their index d.", fontsize=FONT_PT)
    ax.set_xlim(-2.5, width + 0.55)
    ax.set_ylim(-0.7, len(layers) - 0.6)
    ax.axis("off")
    return fig


# ----------------------------------------------------------------------------- question 3

def _contour_label(level: float, mass: float, share: float, n: int) -> str:
    """A legend entry: the formula's mass, the samples' share and their gap in binomial SEs."""
    gap = (share - mass) / math.sqrt(mass * (1 - mass) / n)
    return f"{level:g}: {mass:.2%} / {share:.2%} ({gap:+.2f})".replace("-", "\u2212")


@figure("flow_density.svg")
def flow_density(flow: list, levels: tuple[float, ...] = (1e-1, 1e-2, 1e-3, 1e-4)) -> Figure:
    """Question 3: 20,000 samples z_t of the flow under contours of its density q_t from the
    formula at ``levels``, a factor 10 apart; the legend gives, per contour, the mass the formula
    puts inside it, the share of the samples inside it, and their gap in standard errors."""
    z0 = torch.randn(20_000, 2, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    points, log_q_t = flows.push_forward(flow, z0)
    x_axis = torch.linspace(-3.5, 7.5, 221, dtype=torch.float64)  # holds the 1e-4 contour
    y_axis = torch.linspace(-5.0, 6.0, 221, dtype=torch.float64)
    gx, gy = torch.meshgrid(x_axis, y_axis, indexing="xy")
    density = flows.log_density(flow, torch.stack([gx.flatten(), gy.flatten()], 1)).exp()
    fig = Figure(figsize=(5.6, 3.3), layout="constrained")
    ax = fig.subplots()
    ax.scatter(points[:, 0], points[:, 1], s=1.0, color="0.3", alpha=0.4, linewidths=0,
               rasterized=True)
    levels = sorted(levels)  # colours from dark (the highest level) to orange: all on white
    colours = matplotlib.colormaps["plasma"](np.linspace(0.75, 0, len(levels)))
    ax.contour(gx.numpy(), gy.numpy(), density.view(gx.shape).numpy(), levels=levels,
               colors=colours, linewidths=1.1)
    labels = [_contour_label(c, flows.grid_mass(flow, 10.0, 1000, above=c),
                             float((log_q_t.exp() > c).double().mean()), len(points))
              for c in levels]
    handles = [Line2D([], [], color=colour, lw=1.1) for colour in colours]
    ax.legend(handles[::-1], labels[::-1], loc="upper left", bbox_to_anchor=(1.02, 1.0),
              fontsize=TICK_PT, title_fontsize=TICK_PT, frameon=False,
              title="level $c$: mass of\n$\\{q_t > c\\}$, by the formula /\n"
                    "share of the samples\n(gap in standard errors)")
    ax.set_title(f"{len(points):,} samples $z_t = g_3(g_2(g_1(z_0)))$ (grey), "
                 f"$z_0 \\sim \\mathcal{{N}}(0, I)$,\nunder contours of $q_t(z_t)$ "
                 "from the formula", fontsize=FONT_PT)
    ax.set_xlabel(r"first coordinate of $z_t$", fontsize=FONT_PT)
    ax.set_ylabel(r"second coordinate of $z_t$", fontsize=FONT_PT)
    ax.set_aspect("equal")
    ax.set_xlim(float(x_axis[0]), float(x_axis[-1]))
    ax.set_ylim(float(y_axis[0]), float(y_axis[-1]))
    ax.tick_params(labelsize=TICK_PT)
    return fig


# ----------------------------------------------------------------------------- question 4

@figure("vae_training_curves.svg")
def training_curves(history: dict, split: int = 5) -> Figure:
    """Question 4(a): -ELBO, reconstruction and KL of the trained VAE, one row each: the train
    loss of every minibatch (the course's x = linspace(0, epochs, iterations)), the mean of each
    epoch's minibatches at that epoch's end, and the test loss before training and after each
    epoch. The left column shows epochs 0..split (-ELBO and reconstruction on log axes), the
    right one epochs split..end on linear axes; each panel's y-range holds all it shows."""
    train, test = np.asarray(history["train"]), np.asarray(history["test"])
    epochs, steps = len(test) - 1, len(train)
    means = np.array([part.mean(0) for part in np.array_split(train, epochs)])
    curves = [(np.linspace(0, epochs, steps), train, "-",
               {"lw": 0.4, "color": "#a9cbe8", "rasterized": True,
                "label": "train, each minibatch"}),
              (np.arange(1, epochs + 1), means, "s-",
               {"ms": 3, "lw": 1.3, "color": "C0",
                "label": "train, mean of each epoch, at its end"}),
              (np.arange(epochs + 1), test, "o-",  # hollow markers: the squares show through
               {"ms": 3, "lw": 1.3, "color": "C1", "mfc": "white",
                "label": "test set, after each epoch (0: before training)"})]
    fig = Figure(figsize=(6.9, 3.3), layout="constrained")
    axes = fig.subplots(3, 2, gridspec_kw={"width_ratios": (1, 2.7)})
    for i, name in enumerate(LOSS_NAMES):
        for column, (first, last) in enumerate(((0, split), (split, epochs))):
            ax = axes[i, column]
            for x, y, fmt, style in curves:
                inside = (first <= x) & (x <= last)  # only these: no line runs off the panel
                ax.plot(x[inside], y[inside, i], fmt, **style)
            shown = np.concatenate([line.get_ydata() for line in ax.get_lines()])
            log = column == 0 and name != "KL"
            _set_range(ax, first, last, shown, log=log)
            if column == 0:  # the right column's title names its scale
                ax.text(0.97, 0.9, "log scale" if log else "linear scale", fontsize=TICK_PT,
                        transform=ax.transAxes, color="0.35", ha="right", va="top")
            ax.grid(axis="y", color="0.9", lw=0.6)
            ax.tick_params(labelsize=TICK_PT, which="both")
        axes[i, 0].set_ylabel(LOSS_LABELS[name], fontsize=FONT_PT)
    for column, title in enumerate((f"epochs 0–{split}", f"epochs {split}–{epochs}, linear scale")):
        axes[0, column].set_title(title, fontsize=TICK_PT, color="0.35", pad=3)
        axes[-1, column].set_xlabel("epoch", fontsize=FONT_PT)
    legend = fig.legend(*axes[0, 0].get_legend_handles_labels(), loc="outside upper center",
                        ncol=3, fontsize=TICK_PT, frameon=False, handlelength=1.6,
                        columnspacing=0.7)
    legend.get_lines()[0].set_linewidth(2)  # the band's colour, readable in the key
    return fig


def _set_range(ax: matplotlib.axes.Axes, first: int, last: int, shown: np.ndarray,
               log: bool) -> None:
    """Show epochs first..last, with a y-range 6% wider than ``shown`` (log axes: in log)."""
    pad = 0.03 * (last - first)
    ax.set_xlim(first - pad, last + pad)
    ax.xaxis.set_major_locator(MultipleLocator(1 if last - first <= 5 else 2))
    low, high = shown.min(), shown.max()
    if not log:
        ax.set_ylim(low - 0.06 * (high - low), high + 0.06 * (high - low))
        ax.yaxis.set_major_locator(MaxNLocator(nbins=4, steps=(1, 2, 5, 10), integer=True))
        return
    ax.set_yscale("log")
    ratio = (high / low) ** 0.06
    ax.set_ylim(low / ratio, high * ratio)
    ax.yaxis.set_major_locator(FixedLocator(plots.log_ticks(low / ratio, high * ratio, most=5)))
    ax.yaxis.set_major_formatter(FormatStrFormatter("%g"))
    ax.yaxis.set_minor_locator(NullLocator())


@figure("vae_samples.png")
def samples(model: VAE, seed: int = 0) -> Figure:
    """100 decoder means for z ~ N(0, I), drawn after ``torch.manual_seed(seed)``."""
    torch.manual_seed(seed)
    return plots.model_grid(model.sample(100),
                            r"4(c) 100 samples: decoder means $\mu_\phi(z)$, "
                            r"$z \sim \mathcal{N}(0, I)$")


@figure("vae_reconstructions.png")
def reconstructions(model: VAE, mnist: MNIST) -> Figure:
    """Test images 0-49, ten a row, each row of them followed by a row of their
    reconstructions (decoder means at the encoder means); a gap after every such pair."""
    x_real = mnist.test_x[:50]
    recon = model.reconstruct(x_real)
    rows = torch.stack([x_real.unflatten(0, (5, 10)), recon.unflatten(0, (5, 10))], dim=1)
    # No row labels: the figure prints beside the samples, and two grids fill the text width.
    return plots.model_grid(rows.flatten(0, 2), "4(d) Five pairs of rows: test images 0–49\n"
                            "above, their reconstructions below", group=2, group_gap=8)


@figure("vae_interpolations.png")
def interpolations(model: VAE, mnist: MNIST) -> Figure:
    """Ten decoded paths, from test image i to test image i + 10, ten steps each."""
    path = model.interpolate(mnist.test_x[:10], mnist.test_x[10:20], steps=10)
    return plots.model_grid(path.flatten(0, 1), r"4(e) Decoded paths $\mu(x_i) \to \mu(x_{i+10})$"
                            " between test images, ten steps",
                            [f"{i} → {i + 10}" for i in range(10)])


@figure("vae_latent_pca.svg")
def latent_pca(mu_test: torch.Tensor, mnist: MNIST, label_name: str = "digit") -> Figure:
    """The test-set encoder means on their first two principal components, coloured by their
    class (``label_name`` heads the legend); the axes say each component's variance share."""
    mu_2d, explained = (t.numpy() for t in analysis.pca_2d(mu_test))
    fig = Figure(figsize=(4.8, 3.6), layout="constrained")
    ax = fig.subplots()
    ax.set_aspect("equal")  # one unit is one unit on both axes: the two variances look alike
    sc = ax.scatter(mu_2d[:, 0], mu_2d[:, 1], c=mnist.test_y.numpy(), cmap="tab10", s=2,
                    alpha=0.6, rasterized=True)
    ax.legend(*sc.legend_elements(), title=label_name, fontsize=TICK_PT,
              title_fontsize=FONT_PT, markerscale=1.5, loc="center left",
              bbox_to_anchor=(1, 0.5))
    ax.set_xlabel(f"component 1 ({explained[0]:.0%} of the variance)", fontsize=FONT_PT)
    ax.set_ylabel(f"component 2 ({explained[1]:.0%} of the variance)", fontsize=FONT_PT)
    ax.set_title(r"Test-set latent means $\mu(x)$, first two principal components",
                 fontsize=FONT_PT)
    ax.tick_params(labelsize=TICK_PT)
    return fig
