"""Figures are byte-identical whatever the thread count: every figure-making call of the notebook
runs with one and with two threads, and the PNGs must match byte for byte."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from test_notebook import FIGURES

from helpers import analysis, flows, made, plots, study, train


def _make_every_figure(out: Path, mnist, model, history) -> dict[str, bytes]:
    """The notebook's figure calls, with its arguments and seeds, saved under ``out``."""
    plots.draw_made(made.MADE(n=4, hidden=(5, 5)), out / "made.png")
    flow = flows.example_flow()
    z0 = torch.randn(20_000, 2, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    samples, _ = flows.push_forward(flow, z0)
    axis = torch.linspace(-4, 7, 200, dtype=torch.float64)
    gx, gy = torch.meshgrid(axis, axis, indexing="xy")
    density = flows.log_density(flow, torch.stack([gx.flatten(), gy.flatten()], 1)).exp()
    plots.plot_flow_density(samples.numpy(), (gx.numpy(), gy.numpy(),
                                              density.view(200, 200).numpy()),
                            out / "flow_density.png")
    plots.plot_vae_training_plot(history["train"].numpy(), history["test"].numpy(), "curves",
                                 out / "vae_training_curves.png")
    torch.manual_seed(0)
    plots.show_samples(plots.to_uint8(model.sample(100)), out / "vae_samples.png")
    x = mnist.test_x[:50]
    pairs = torch.stack([x, model.reconstruct(x)], dim=1).flatten(0, 1)
    plots.show_samples(plots.to_uint8(pairs), out / "vae_reconstructions.png")
    path = model.interpolate(mnist.test_x[:10], mnist.test_x[10:20], steps=10)
    plots.show_samples(plots.to_uint8(path.flatten(0, 1)), out / "vae_interpolations.png")
    mu, log_sigma = analysis.latent_means(model, mnist.test_x)
    kl_per_dim, activity, _ = analysis.active_units(mu, log_sigma)
    plots.plot_active_units(kl_per_dim.numpy(), activity.numpy(),
                            fname=out / "vae_active_units.png")
    mu_2d, explained = analysis.pca_2d(mu)
    plots.plot_latent_means(mu_2d.numpy(), mnist.test_y.numpy(), explained.numpy(),
                            out / "vae_latent_pca.png")
    recipes = study.by_recipe(train.load_histories(study.STUDY))
    plots.plot_seed_study({"plain": recipes["plain fp32"],
                           "warm-up, 200 steps": recipes["warmup200 fp32"]},
                          fname=out / "vae_seed_study.png")
    return {p.name: p.read_bytes() for p in out.glob("*.png")}


@pytest.fixture(scope="module")
def shipped():
    model, state, _ = train.load_or_train(train.Config())
    return model, state["history"]


def test_every_figure_is_byte_identical_with_one_and_two_threads(tmp_path, mnist, shipped):
    threads = torch.get_num_threads()
    made_with = {}
    try:
        for n in (1, 2):
            torch.set_num_threads(n)
            made_with[n] = _make_every_figure(tmp_path / str(n), mnist, *shipped)
    finally:
        torch.set_num_threads(threads)
    assert set(made_with[1]) == set(made_with[2]) == FIGURES
    assert [name for name in sorted(FIGURES) if made_with[1][name] != made_with[2][name]] == []
