"""The notebook's figures: how each is made, and how it is saved and shown.

Each registered function draws one figure from what the notebook holds; calling it saves the
figure under figures/ and returns the saved bytes for display, so the notebook shows exactly
what figures/ holds. ``FIGURES`` (file name -> drawing function) is the one list of them, which
the tests make one by one. Plots are saved as SVG (dense scatters rasterised inside), image grids
as PNG at whole output pixels per image pixel; the same call writes the same bytes every time
(no dates, no software names, a fixed SVG id salt).
"""

from __future__ import annotations

import functools
import io
import os
from collections.abc import Callable
from pathlib import Path

import matplotlib
import torch
from IPython.display import Image
from matplotlib.figure import Figure

from helpers import analysis, flows, plots
from helpers.data import MNIST, REPO_ROOT
from helpers.made import MADE
from helpers.vae import VAE

# HW1_FIGURES lets the tests execute the notebook without touching the committed figures.
FIGURE_DIR = Path(os.environ.get("HW1_FIGURES", REPO_ROOT / "figures"))
SVG_RC = {"svg.hashsalt": "hw1", "svg.fonttype": "path"}  # fixed ids; text as outlines
RASTER_DPI = 200  # rasterised parts of an SVG (dense scatters and curves)
CSS_PX_PER_IN = 96


class SVG:
    """Saved SVG bytes, shown from the ``<svg`` tag on (the notebook's HTML takes no XML
    prolog, and IPython's SVG would re-serialise the rest)."""

    def __init__(self, data: bytes) -> None:
        self.data = data

    def _repr_svg_(self) -> str:
        """The SVG element, byte for byte as saved."""
        text = self.data.decode("utf-8")
        return text[text.index("<svg"):]

    def __repr__(self) -> str:
        """A stand-in with no memory address, so a re-run stores the same notebook."""
        return f"<SVG figure, {len(self.data):,} bytes>"


def svg_bytes(fig: Figure) -> bytes:
    """``fig`` as SVG, cropped to its contents; the same bytes on every call."""
    buf = io.BytesIO()
    with matplotlib.rc_context(SVG_RC):
        fig.savefig(buf, format="svg", bbox_inches="tight", dpi=RASTER_DPI,
                    metadata={"Date": None, "Creator": None})
    return buf.getvalue()


def png_bytes(fig: Figure) -> bytes:
    """``fig`` as PNG at its own dpi, uncropped (so image pixels stay on whole output pixels)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=fig.dpi, metadata={"Software": None})
    return buf.getvalue()


def save(fig: Figure, fname: str | Path | None) -> SVG | Image:
    """Write ``fig`` to ``fname`` (relative: under figures/), PNG for an image grid and SVG
    otherwise, and return those bytes for display; a PNG shows at its printed size."""
    kind = "png" if is_grid(fig) else "svg"
    if fname is not None and Path(fname).suffix != f".{kind}":
        raise ValueError(f"{fname}: this figure is saved as {kind.upper()}; name it "
                         f"{Path(fname).stem}.{kind}.")
    data = png_bytes(fig) if kind == "png" else svg_bytes(fig)
    if fname is not None:
        path = FIGURE_DIR / fname  # an absolute fname stays as it is
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    if kind == "svg":
        return SVG(data)
    width_px = int.from_bytes(data[16:20], "big")  # the PNG header's width field
    return Image(data=data, format="png", width=round(width_px * CSS_PX_PER_IN / fig.dpi))


def is_grid(fig: Figure) -> bool:
    """Whether ``fig`` is an image grid (drawn by ``plots.grid_figure``)."""
    return bool(fig.images) and not fig.axes


FIGURES: dict[str, Callable[..., Figure]] = {}


def figure(fname: str) -> Callable[[Callable[..., Figure]], Callable[..., SVG | Image]]:
    """Register a drawing function under ``fname``; calling it then saves and shows its figure."""
    def register(draw: Callable[..., Figure]) -> Callable[..., SVG | Image]:
        FIGURES[fname] = draw

        @functools.wraps(draw)
        def show(*args, **kwargs) -> SVG | Image:
            return save(draw(*args, **kwargs), fname)
        return show
    return register


@figure("made.svg")
def made(made_model: MADE) -> Figure:
    """Question 1: the MADE's units, its masks, and the paths into output 3."""
    return plots.made_figure(made_model)


@figure("flow_density.svg")
def flow_density(flow: list) -> Figure:
    """Question 3: 20,000 samples of the flow beside its density q_t on a 200 x 200 grid."""
    z0 = torch.randn(20_000, 2, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    samples, _ = flows.push_forward(flow, z0)
    axis = torch.linspace(-4, 7, 200, dtype=torch.float64)
    gx, gy = torch.meshgrid(axis, axis, indexing="xy")
    density = flows.log_density(flow, torch.stack([gx.flatten(), gy.flatten()], 1)).exp()
    return plots.flow_density_figure(
        samples.numpy(), (gx.numpy(), gy.numpy(), density.view(200, 200).numpy()))


@figure("vae_training_curves.svg")
def training_curves(history: dict) -> Figure:
    """Question 4: train (per minibatch) and test (per epoch) curves of the trained VAE."""
    return plots.training_curves_figure(history["train"].numpy(), history["test"].numpy(),
                                        "VAE on MNIST: training curves")


@figure("vae_samples.png")
def samples(model: VAE, seed: int = 0) -> Figure:
    """100 decoder means for z ~ N(0, I), drawn after ``torch.manual_seed(seed)``."""
    torch.manual_seed(seed)
    return plots.samples_figure(plots.to_uint8(model.sample(100)),
                                title=r"100 samples: decoder means $\mu_\phi(z)$, "
                                      r"$z \sim N(0, I)$")


@figure("vae_reconstructions.png")
def reconstructions(model: VAE, mnist: MNIST) -> Figure:
    """The first 50 test images, each followed by its reconstruction."""
    x_real = mnist.test_x[:50]
    pairs = torch.stack([x_real, model.reconstruct(x_real)], dim=1).flatten(0, 1)
    return plots.samples_figure(plots.to_uint8(pairs), title="Test images (odd columns), "
                                                              "reconstructions (even columns)")


@figure("vae_interpolations.png")
def interpolations(model: VAE, mnist: MNIST) -> Figure:
    """Ten decoded paths, from test image i to test image i + 10, ten steps each."""
    path = model.interpolate(mnist.test_x[:10], mnist.test_x[10:20], steps=10)
    return plots.samples_figure(plots.to_uint8(path.flatten(0, 1)),
                                title=r"Decoded paths from $\mu(x_i)$ to $\mu(x_{i+10})$, "
                                      r"$i = 0, \dots, 9$")


@figure("vae_active_units.svg")
def active_units(mu_test: torch.Tensor, log_sigma_test: torch.Tensor) -> Figure:
    """KL and activity per latent dimension of the test-set encodings."""
    kl_per_dim, activity, _ = analysis.active_units(mu_test, log_sigma_test)
    return plots.active_units_figure(kl_per_dim.numpy(), activity.numpy())


@figure("vae_latent_pca.svg")
def latent_pca(mu_test: torch.Tensor, mnist: MNIST) -> Figure:
    """The test-set encoder means on their first two principal components, by digit."""
    mu_2d, explained = analysis.pca_2d(mu_test)
    return plots.latent_means_figure(mu_2d.numpy(), mnist.test_y.numpy(), explained.numpy())


@figure("vae_seed_study.svg")
def seed_study(recipes: dict[str, dict[int, dict]]) -> Figure:
    """The plain and the warm-up recipe over seeds: early KL, test -ELBO after epochs 1-3."""
    return plots.seed_study_figure({"plain": recipes["plain fp32"],
                                    "warm-up, 200 steps": recipes["warmup200 fp32"]})
