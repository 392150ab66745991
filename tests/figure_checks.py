"""Checks the tests make on every figure: no text overprints another, none is cut off, none is
smaller than 8 pt, and none is wider than the printed text width, which would shrink it in
print. (Test utilities: the notebook never needs them.)"""

from __future__ import annotations

from matplotlib.backends.backend_agg import FigureCanvasAgg, RendererAgg
from matplotlib.figure import Figure
from matplotlib.legend import Legend
from matplotlib.text import Text
from matplotlib.transforms import Bbox

from helpers import plots
from tools import pdf

SMALLEST_PT = 8  # the smallest text that stays legible in print


def text_width_in(paper: str | None = None) -> float:
    """The printed text width in inches: ``paper``'s width less the export's two margins; with
    no ``paper``, that of the narrowest paper the export offers (A4, 7.27 in)."""
    widths = {name: size[0] - 2 * pdf.MARGIN_IN for name, size in pdf.PAPERS.items()}
    return widths[paper] if paper is not None else min(widths.values())


def _drawn_texts(fig: Figure) -> tuple[RendererAgg, list[tuple[Text | Legend, Bbox]]]:
    """Lay ``fig`` out; every text it draws, and each legend as one piece, with its box in px."""
    canvas = FigureCanvasAgg(fig)  # a figure saved elsewhere may hold another canvas
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
    """Texts of ``fig`` that would be cut: outside the area its save keeps (the contents for a
    plot, saved cropped; the canvas for an image grid), or outside the clip box of a text drawn
    clipped (such as ``ax.text(..., clip_on=True)``)."""
    renderer, drawn = _drawn_texts(fig)
    kept = (fig.bbox if plots.is_grid(fig)
            else fig.get_tightbbox(renderer).padded(0.1).transformed(fig.dpi_scale_trans))
    cut = []
    for artist, box in drawn:
        clipped = artist.get_clip_on() and artist.get_clip_box() is not None
        area = artist.get_clip_box() if clipped else kept
        inner = box.padded(-slack)
        if not (area.x0 <= inner.x0 and inner.x1 <= area.x1 and area.y0 <= inner.y0
                and inner.y1 <= area.y1):
            cut.append(artist.get_text() if isinstance(artist, Text) else "legend")
    return cut


def texts_too_small(fig: Figure, smallest: float = SMALLEST_PT) -> list[tuple[str, float]]:
    """Texts of ``fig`` (legend entries and titles included) set below ``smallest`` points."""
    drawn = [a for a, _ in _drawn_texts(fig)[1]]
    texts = [t for a in drawn for t in (a.findobj(Text) if isinstance(a, Legend) else [a])]
    return [(t.get_text(), t.get_fontsize()) for t in texts
            if t.get_text().strip() and t.get_visible() and t.get_fontsize() < smallest]
