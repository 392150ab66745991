"""The latent-interpolation explorer: pick a pair of test images, slide along the latent line.

Only the live widget: a PDF or a static view shows no frame of it (the notebook's static
interpolation grid, ``figures.interpolations``, is the printed answer).
"""

from __future__ import annotations

import io

import ipywidgets as widgets
import numpy as np
import torch
from PIL import Image

from helpers.plots import to_uint8
from helpers.vae import VAE


def tile_png(image: np.ndarray, scale: int = 6) -> bytes:
    """A (H, W, 1) uint8 image as PNG bytes, enlarged ``scale`` times without smoothing."""
    pil = Image.fromarray(image[..., 0], mode="L")
    pil = pil.resize((pil.width * scale, pil.height * scale), Image.NEAREST)
    buf = io.BytesIO()
    pil.save(buf, format="PNG")
    return buf.getvalue()


class InterpolationExplorer:
    """Two test-image indices and a position t in [0, 1]; shows the decoded latent point.

    The path is the straight line between the encoder means, as in ``VAE.interpolate``.
    """

    def __init__(self, model: VAE, test_x: torch.Tensor, a: int = 0, b: int = 10,
                 steps: int = 10) -> None:
        if steps < 2:
            raise ValueError(f"steps must be at least 2 (the path's two ends), got {steps}.")
        self.model, self.test_x = model, test_x
        last = test_x.shape[0] - 1
        self.a = widgets.BoundedIntText(value=a, min=0, max=last, description="image a")
        self.b = widgets.BoundedIntText(value=b, min=0, max=last, description="image b")
        self.t = widgets.IntSlider(value=0, min=0, max=steps - 1, description="step",
                                   continuous_update=True)
        self.image = widgets.Image(format="png", width=168, height=168)
        self.ends = widgets.HBox([widgets.Image(format="png", width=84, height=84)
                                  for _ in range(2)])
        self.label = widgets.Label()
        for w in (self.a, self.b):
            w.observe(self._new_pair, names="value")
        self.t.observe(self._redraw, names="value")
        self._new_pair()
        self.box = widgets.VBox([widgets.HBox([self.a, self.b]), self.ends, self.t,
                                 self.image, self.label])

    def _new_pair(self, _change: dict | None = None) -> None:
        """Decode the whole path for the chosen pair once; the slider then only picks a frame."""
        xa = self.test_x[self.a.value:self.a.value + 1]
        xb = self.test_x[self.b.value:self.b.value + 1]
        self.path = self.model.interpolate(xa, xb, steps=self.t.max + 1)[0]
        self.frames = [tile_png(img) for img in to_uint8(self.path)]
        self.ends.children[0].value = tile_png(to_uint8(xa)[0], scale=3)
        self.ends.children[1].value = tile_png(to_uint8(xb)[0], scale=3)
        self._redraw()

    def _redraw(self, _change: dict | None = None) -> None:
        """Show the frame at the slider's step."""
        self.image.value = self.frames[self.t.value]
        t = self.t.value / self.t.max
        self.label.value = f"z = {1 - t:.2f} * mu(x_a) + {t:.2f} * mu(x_b)"

    def _repr_mimebundle_(self, **kwargs) -> dict:
        """The live widget (its controls, ``.box``)."""
        return self.box._repr_mimebundle_(**kwargs)


def interpolation_widget(model: VAE, test_x: torch.Tensor, **kwargs) -> InterpolationExplorer:
    """The explorer, ready to display in a notebook (its controls are ``.box``)."""
    return InterpolationExplorer(model, test_x, **kwargs)
