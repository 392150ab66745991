"""Every figure-making call of the notebook, run with one and with two threads: the PNGs must
match byte for byte, and no text of any figure may overprint another text or a legend."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import pytest
import torch
from matplotlib.figure import Figure
from test_notebook import FIGURES

from helpers import analysis, checkpoints, flows, made, plots, reports, study, train


def _make_every_figure(out: Path, mnist, model, history) -> dict[str, Figure]:
    """The notebook's figure calls, with its arguments, titles and seeds, saved under ``out``."""
    figs = {"made.png": plots.draw_made(made.MADE(n=4, hidden=(5, 5)), out / "made.png")}
    flow = flows.example_flow()
    z0 = torch.randn(20_000, 2, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    samples, _ = flows.push_forward(flow, z0)
    axis = torch.linspace(-4, 7, 200, dtype=torch.float64)
    gx, gy = torch.meshgrid(axis, axis, indexing="xy")
    density = flows.log_density(flow, torch.stack([gx.flatten(), gy.flatten()], 1)).exp()
    figs["flow_density.png"] = plots.plot_flow_density(
        samples.numpy(), (gx.numpy(), gy.numpy(), density.view(200, 200).numpy()),
        out / "flow_density.png")
    figs["vae_training_curves.png"] = plots.plot_vae_training_plot(
        history["train"].numpy(), history["test"].numpy(), "VAE on MNIST: training curves",
        out / "vae_training_curves.png")
    torch.manual_seed(0)
    figs["vae_samples.png"] = plots.show_samples(
        plots.to_uint8(model.sample(100)), out / "vae_samples.png",
        title=r"100 samples: decoder means $\mu_\phi(z)$, $z \sim N(0, I)$")
    x = mnist.test_x[:50]
    pairs = torch.stack([x, model.reconstruct(x)], dim=1).flatten(0, 1)
    figs["vae_reconstructions.png"] = plots.show_samples(
        plots.to_uint8(pairs), out / "vae_reconstructions.png",
        title="Test images (odd columns), reconstructions (even columns)")
    path = model.interpolate(mnist.test_x[:10], mnist.test_x[10:20], steps=10)
    figs["vae_interpolations.png"] = plots.show_samples(
        plots.to_uint8(path.flatten(0, 1)), out / "vae_interpolations.png",
        title=r"Decoded paths from $\mu(x_i)$ to $\mu(x_{i+10})$, $i = 0, \dots, 9$")
    mu, log_sigma = analysis.latent_means(model, mnist.test_x)
    kl_per_dim, activity, _ = analysis.active_units(mu, log_sigma)
    figs["vae_active_units.png"] = plots.plot_active_units(
        kl_per_dim.numpy(), activity.numpy(), fname=out / "vae_active_units.png")
    mu_2d, explained = analysis.pca_2d(mu)
    figs["vae_latent_pca.png"] = plots.plot_latent_means(
        mu_2d.numpy(), mnist.test_y.numpy(), explained.numpy(), out / "vae_latent_pca.png")
    recipes = study.by_recipe(checkpoints.load_histories(study.STUDY))
    figs["vae_seed_study.png"] = plots.plot_seed_study(
        {"plain": recipes["plain fp32"], "warm-up, 200 steps": recipes["warmup200 fp32"]},
        fname=out / "vae_seed_study.png")
    return figs


@pytest.fixture(scope="module")
def made_with(tmp_path_factory, mnist) -> dict[int, tuple[dict[str, Figure], dict[str, bytes]]]:
    """Every figure and its saved PNG, made once with one thread and once with two."""
    model, state, _ = reports.load_or_train(train.Config())
    threads = torch.get_num_threads()
    made = {}
    try:
        for n in (1, 2):
            torch.set_num_threads(n)
            out = tmp_path_factory.mktemp(f"threads{n}")
            figures = _make_every_figure(out, mnist, model, state["history"])
            made[n] = figures, {p.name: p.read_bytes() for p in out.glob("*.png")}
    finally:
        torch.set_num_threads(threads)
    return made


def test_every_figure_is_byte_identical_with_one_and_two_threads(made_with):
    one, two = made_with[1][1], made_with[2][1]
    assert set(one) == set(two) == FIGURES
    assert [name for name in sorted(FIGURES) if one[name] != two[name]] == []


def test_no_text_overprints_another_in_any_figure(made_with):
    figures = made_with[2][0]
    assert set(figures) == FIGURES
    overlaps = {name: plots.text_overlaps(fig) for name, fig in figures.items()}
    assert {name: pairs for name, pairs in overlaps.items() if pairs} == {}


def test_no_text_is_cut_off_in_any_figure(made_with):
    figures = made_with[2][0]
    assert {name: cut for name, fig in figures.items() if (cut := plots.texts_cut_off(fig))} == {}


def test_the_cut_off_check_sees_a_text_beyond_the_edge_or_its_clip_box():
    fig, ax = plt.subplots(figsize=(3, 2))
    ax.set_title("inside")
    assert plots.texts_cut_off(fig) == []
    ax.text(0.5, 2.0, "left out of the saved area", transform=ax.transAxes).set_in_layout(False)
    ax.text(0.9, 0.5, "clipped at the axes", transform=ax.transAxes, clip_on=True)
    assert sorted(plots.texts_cut_off(fig)) == ["clipped at the axes", "left out of the saved area"]
    plt.close(fig)


def test_the_overprint_check_sees_two_titles_that_collide():
    fig, ax = plt.subplots(figsize=(4, 3))
    ax.set_title("a long title on the left of the axes", loc="left")
    ax.set_title("and a long note on the right", loc="right", fontsize=8)
    ax.set_xlabel("x")
    assert plots.text_overlaps(fig) == [("a long title on the left of the axes",
                                         "and a long note on the right")]
    ax.set_title("short", loc="left")
    assert plots.text_overlaps(fig) == []
    plt.close(fig)
