"""Shared primitives of the figures: the registry, saving and showing, and image grids.

``helpers.figures`` holds the figures themselves, one registered function each; what they share
lives here once: ``figure`` (the decorator that registers a drawing function in ``FIGURES`` and
makes calling it save and show its figure), ``save`` (SVG for plots, PNG for image grids, the
same bytes on every call: no dates, no software names, a fixed SVG id salt), and image grids of
(N, H, W, C) uint8 arrays, the convention of the course's helper code (CS294-158), drawn with
whole output pixels per image pixel and no smoothing (``model_grid`` takes model images
directly); and ``log_ticks``, round tick values for a log axis.
"""

from __future__ import annotations

import functools
import io
import math
import os
from collections.abc import Callable, Sequence
from pathlib import Path

import matplotlib
import numpy as np
import torch
from IPython.display import Image
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from helpers.data import PAD, REPO_ROOT

# HW1_FIGURES lets the tests execute the notebook without touching the committed figures.
FIGURE_DIR = Path(os.environ.get("HW1_FIGURES", REPO_ROOT / "figures"))
SVG_RC = {"svg.hashsalt": "hw1", "svg.fonttype": "path"}  # fixed ids; text as outlines
RASTER_DPI = 200  # rasterised parts of an SVG (dense scatters and curves)
CSS_PX_PER_IN = 96
GRID_SCALE = 4  # output pixels per image pixel (each one a GRID_SCALE x GRID_SCALE block)
GRID_DPI = 345  # so a 10 x 10 grid of 28 x 28 digits (302 px) prints 3.50 in wide: two side
# by side fit the narrowest text width (A4's 7.27 in)
GRID_PAD = 2  # image pixels between two images of a grid, as the course's make_grid
FONT_PT = 9  # titles and labels
TICK_PT = 8  # tick labels, legends and notes: the smallest print allows

FIGURES: dict[str, Callable[..., Figure]] = {}  # file name -> the function drawing that figure


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


def figure(fname: str) -> Callable[[Callable[..., Figure]], Callable[..., SVG | Image]]:
    """Register a drawing function under ``fname``; calling it then saves and shows its figure.

    ``FIGURES[fname]`` keeps the undecorated function (it returns the unsaved Figure)."""
    def register(draw: Callable[..., Figure]) -> Callable[..., SVG | Image]:
        FIGURES[fname] = draw

        @functools.wraps(draw)
        def show(*args, **kwargs) -> SVG | Image:
            return save(draw(*args, **kwargs), fname)
        return show
    return register


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
    """Whether ``fig`` is an image grid (drawn by ``grid_figure``)."""
    return bool(fig.images) and not fig.axes


def to_uint8(x: torch.Tensor, crop: bool = True) -> np.ndarray:
    """(N, 1, 32, 32) images in [-1, 1] (clamped) as (N, H, W, 1) uint8; ``crop``: unpadded."""
    x = x.detach().float().cpu().clamp(-1, 1)
    if crop:
        x = x[..., PAD:-PAD, PAD:-PAD]
    return ((x + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()


def image_grid(samples: np.ndarray, nrow: int = 10, group: int = 1,
               group_gap: int = 0) -> np.ndarray:
    """(N, H, W, C) uint8 images as one (rows, cols, 3) uint8 grid, ``nrow`` images a row and
    ``GRID_PAD`` px of black around each (as the course's ``make_grid``); every ``group`` rows,
    ``group_gap`` px more, all but the black padding white, so rows that belong together read
    as one block."""
    samples = np.asarray(samples)
    if samples.ndim != 4 or samples.dtype != np.uint8:
        raise ValueError(f"expected (N, H, W, C) uint8 images, got {samples.shape} "
                         f"{samples.dtype}: convert model outputs with plots.to_uint8.")
    n, h, w, c = samples.shape
    rows = math.ceil(n / nrow)
    tops = row_tops(rows, h, group, group_gap)
    grid = np.zeros((tops[-1] + h + GRID_PAD, nrow * (w + GRID_PAD) + GRID_PAD, 3), np.uint8)
    for r in range(group, rows, group):  # the white band between two groups of rows
        grid[tops[r - 1] + h + GRID_PAD:tops[r] - GRID_PAD] = 255
    for k, image in enumerate(samples):
        row, col = divmod(k, nrow)
        left = GRID_PAD + col * (w + GRID_PAD)
        grid[tops[row]:tops[row] + h, left:left + w] = image  # one channel: grey stays grey
    return grid


def row_tops(n_rows: int, height: int, group: int = 1, group_gap: int = 0) -> list[int]:
    """The top pixel row of each image row of an ``image_grid`` of images ``height`` px tall,
    with ``group_gap`` px more before each group of ``group`` rows but the first."""
    return [GRID_PAD + r * (height + GRID_PAD) + group_gap * (r // group) for r in range(n_rows)]


def grid_figure(grid: np.ndarray, title: str, row_labels: Sequence[tuple[float, str]] = (),
                scale: int = GRID_SCALE, fontsize: float = FONT_PT) -> Figure:
    """``grid`` enlarged ``scale`` times, each pixel an exact block of the PNG, under ``title``;
    ``row_labels``: (grid pixel row, text) pairs written left of the grid at those rows."""
    big = np.kron(grid, np.ones((scale, scale, 1), dtype=np.uint8))
    height, width = big.shape[:2]
    fig = Figure(dpi=GRID_DPI)
    renderer = FigureCanvasAgg(fig).get_renderer()
    text = fig.text(0.5, 1, title, ha="center", va="center", fontsize=fontsize)
    text_box = text.get_window_extent(renderer)
    labels = [fig.text(0, 0, label, ha="right", va="center", fontsize=fontsize)
              for _, label in row_labels]
    gutter = max((math.ceil(t.get_window_extent(renderer).width + 0.06 * GRID_DPI)
                  for t in labels), default=0)  # the labels' column left of the grid, in px
    band = math.ceil(2.2 * text_box.height)  # the title's band above the grid, in px
    # The title is centred over the grid; side margins only where it is wider than the grid.
    spare = math.ceil(text_box.width / 2 + 0.1 * GRID_DPI - width / 2)
    left, right = max(0, spare - gutter), max(0, spare)
    full = left + gutter + width + right
    # A quarter pixel more than the size: the canvas truncates inches x dpi to whole pixels.
    fig.set_size_inches((full + 0.25) / GRID_DPI, (height + band + 0.25) / GRID_DPI)
    fig.figimage(big, xo=left + gutter, yo=0, origin="upper")  # pasted pixel for pixel
    text.set_position(((left + gutter + width / 2) / full, 1 - band / 2 / (height + band)))
    for label, (row, _) in zip(labels, row_labels, strict=True):
        label.set_position(((left + gutter - 0.04 * GRID_DPI) / full,
                            (height - row * scale) / (height + band)))
    return fig


def model_grid(images: torch.Tensor, title: str, row_labels: Sequence[str] = (),
               nrow: int = 10, group: int = 1, group_gap: int = 0) -> Figure:
    """Model images (N, 1, 32, 32) in [-1, 1] as a grid figure (``image_grid``, then
    ``grid_figure``), ``row_labels`` written left of the first rows."""
    tiles = to_uint8(images)
    grid = image_grid(tiles, nrow=nrow, group=group, group_gap=group_gap)
    tops = row_tops(len(row_labels), tiles.shape[1], group, group_gap)
    return grid_figure(grid, title, [(top + tiles.shape[1] / 2, label)
                                     for top, label in zip(tops, row_labels, strict=True)])


def log_ticks(low: float, high: float, most: int = 6) -> list[float]:
    """Round values between ``low`` and ``high`` for a log axis: 1, 1.5, 2, 3, 5, 7 x 10^k,
    thinned to 1, 2, 5 or 1 x 10^k where that would be more than ``most``."""
    for mantissas in ((1, 1.5, 2, 3, 5, 7), (1, 2, 5), (1,)):
        ticks = [m * 10.0 ** e for e in range(int(np.floor(np.log10(low))),
                                              int(np.ceil(np.log10(high))) + 1)
                 for m in mantissas if low <= m * 10.0 ** e <= high]
        if len(ticks) <= most:
            return ticks
    return ticks
