"""Print, as JSON, the SHA-256 of every image-grid PNG of the notebook and of the PCA figure's
data, made from the real checkpoint. Run in a fresh process per CPU setting by test_figures:

    python tests/figure_bytes.py
"""

from __future__ import annotations

import hashlib
import inspect
import json
import os
import sys
import tempfile

import torch

os.environ.setdefault("HW1_FIGURES", tempfile.mkdtemp(prefix="hw1-figure-bytes-"))

from helpers import analysis, figures, plots, reports, train  # noqa: E402
from helpers.data import DEFAULT_ROOT, load_mnist  # noqa: E402

PCA_IMAGES = 500  # of the test set: the float64 encoder costs ~4 s per 1,000 images here


def digests() -> dict[str, str]:
    """Hash of each saved grid PNG, and of the latent means and their PCA for the first
    ``PCA_IMAGES`` test images."""
    mnist = load_mnist(DEFAULT_ROOT, registry=False, download=False)
    model, _, _ = reports.load_or_train(train.Config())
    state = {"model": model, "mnist": mnist}
    torch.manual_seed(0)
    out = {"z draws": hashlib.sha256(torch.randn(100, 16, dtype=torch.float64).numpy().tobytes()
                                     ).hexdigest()}
    for name, draw in figures.FIGURES.items():
        if name.endswith(".png"):
            args = {p: state[p] for p in inspect.signature(draw).parameters if p in state}
            out[name] = hashlib.sha256(plots.png_bytes(draw(**args))).hexdigest()
    mu, log_sigma = analysis.latent_means(model, mnist.test_x[:PCA_IMAGES])
    mu_2d, explained = analysis.pca_2d(mu)
    for label, t in (("latent means", mu), ("log sigma", log_sigma), ("PCA", mu_2d),
                     ("explained variance", explained)):
        out[label] = hashlib.sha256(t.numpy().tobytes()).hexdigest()
    return out


if __name__ == "__main__":
    json.dump(digests(), sys.stdout)
