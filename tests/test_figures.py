"""Every figure of the notebook, made through ``helpers.figures.FIGURES`` from the notebook's
own inputs: byte-identical on every call (with one thread or two) and on every CPU setting,
image grids pixel-exact, and no text overprinted, cut off or below 8 pt."""

from __future__ import annotations

import inspect
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch
from figure_checks import text_overlaps, texts_cut_off, texts_too_small
from matplotlib.figure import Figure
from PIL import Image

from helpers import analysis, figures, flows, made, plots, reports, study, train

ROOT = Path(__file__).resolve().parent.parent
PAGE_WIDTH_IN = 7.5  # the printed text width (letter, half-inch margins)


@pytest.fixture(scope="module")
def notebook_inputs(mnist) -> dict:
    """What the notebook holds when it makes its figures, under the notebook's names."""
    model, state, _ = reports.load_or_train(train.Config())
    mu_test, log_sigma_test = analysis.latent_means(model, mnist.test_x)
    return {"made_model": made.MADE(n=4, hidden=(5, 5)), "flow": flows.example_flow(),
            "model": model, "mnist": mnist, "history": state["history"], "mu_test": mu_test,
            "log_sigma_test": log_sigma_test,
            "recipes": study.load_study()}


def draw(name: str, inputs: dict) -> Figure:
    """Figure ``name`` of the registry, from the notebook inputs its function names."""
    function = figures.FIGURES[name]
    return function(**{p: inputs[p] for p in inspect.signature(function).parameters
                       if p in inputs})


@pytest.fixture(scope="module")
def made_twice(tmp_path_factory, notebook_inputs) -> dict[int, tuple[dict, dict[str, bytes]]]:
    """Every figure and its saved bytes, made once with one thread and once with two."""
    threads = torch.get_num_threads()
    made_with = {}
    try:
        for n in (1, 2):
            torch.set_num_threads(n)
            out = tmp_path_factory.mktemp(f"threads{n}")
            figs = {name: draw(name, notebook_inputs) for name in figures.FIGURES}
            shown = {name: figures.save(fig, out / name) for name, fig in figs.items()}
            made_with[n] = figs, {name: (out / name).read_bytes() for name in figs}, shown
    finally:
        torch.set_num_threads(threads)
    return made_with


def test_every_figure_is_byte_identical_on_every_call_with_one_or_two_threads(made_twice):
    one, two = made_twice[1][1], made_twice[2][1]
    assert set(one) == set(two) == set(figures.FIGURES)
    assert [name for name in sorted(one) if one[name] != two[name]] == []


def test_the_notebook_shows_exactly_the_saved_bytes(made_twice):
    _, saved, shown = made_twice[2]
    for name, data in saved.items():
        if name.endswith(".svg"):
            text = data.decode()
            assert shown[name]._repr_svg_() == text[text.index("<svg"):], name
        else:
            assert shown[name].data == data, name


def test_plots_are_svg_and_image_grids_png_without_metadata(made_twice):
    for name, data in made_twice[2][1].items():
        if name.endswith(".svg"):
            assert data.startswith(b"<?xml") and b"<svg" in data[:400], name
            assert b"<dc:date>" not in data and b"Matplotlib v" not in data, name
        else:
            image = Image.open(io.BytesIO(data))
            assert image.format == "PNG" and set(image.text) == set(), (name, image.text)
            assert b"tIME" not in data, name


def test_dense_scatters_are_rasterised_inside_their_svg(made_twice):
    sizes = {name: len(data) for name, data in made_twice[2][1].items() if name.endswith(".svg")}
    for name in ("flow_density.svg", "vae_latent_pca.svg", "vae_training_curves.svg"):
        assert b"data:image/png;base64" in made_twice[2][1][name], name
    assert max(sizes.values()) < 1_000_000, sizes


def test_every_figure_fits_the_page_and_the_made_diagram_is_compact(made_twice):
    too_wide = {}
    for name, data in made_twice[2][1].items():
        if name.endswith(".svg"):
            svg = data.decode()
            width_pt = float(svg.split('width="', 1)[1].split("pt", 1)[0])
            height_pt = float(svg.split('height="', 1)[1].split("pt", 1)[0])
            size_in = width_pt / 72, height_pt / 72
        else:
            image = Image.open(io.BytesIO(data))
            size_in = image.width / image.info["dpi"][0], image.height / image.info["dpi"][1]
        if size_in[0] > PAGE_WIDTH_IN:
            too_wide[name] = size_in
        if name == "made.svg":
            assert size_in[0] <= 7.0 and size_in[1] <= 3.5, size_in
    assert too_wide == {}


def _grid_blocks(png: bytes, grid_shape: tuple[int, int], k: int) -> np.ndarray:
    """The grid region of a saved grid PNG (bottom, centred), as (rows, k, cols, k, RGB)."""
    pixels = np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))
    rows, cols = grid_shape
    left = (pixels.shape[1] - cols * k) // 2
    region = pixels[-rows * k:, left:left + cols * k]
    return region.reshape(rows, k, cols, k, 3)


def test_every_grid_pixel_is_an_exact_block_of_grey(made_twice):
    grid_shape = (10 * 30 + 2, 10 * 30 + 2)  # ten rows of ten 28 x 28 digits, 2 px apart
    for name, data in made_twice[2][1].items():
        if name.endswith(".png"):
            blocks = _grid_blocks(data, grid_shape, plots.GRID_SCALE)
            corner = blocks[:, :1, :, :1]
            assert (blocks == corner).all(), f"{name}: a {plots.GRID_SCALE}-px block is not uniform"
            assert (corner == corner[..., :1]).all(), f"{name}: a pixel is not grey"


def test_a_saved_grid_holds_the_images_pixel_for_pixel(mnist, tmp_path):
    images = plots.to_uint8(mnist.test_x[:12])  # real digits: every grey level they use
    figures.save(plots.samples_figure(images, nrow=4, title="twelve test digits"),
                 tmp_path / "digits.png")
    blocks = _grid_blocks((tmp_path / "digits.png").read_bytes(), (3 * 30 + 2, 4 * 30 + 2),
                          plots.GRID_SCALE)
    shown = blocks[:, 0, :, 0, 0]
    assert (blocks == blocks[:, :1, :, :1]).all()
    for n, image in enumerate(images):
        row, col = divmod(n, 4)
        tile = shown[2 + 30 * row:30 * (row + 1), 2 + 30 * col:30 * (col + 1)]
        assert np.array_equal(tile, image[..., 0]), n


def test_a_figure_saved_under_the_wrong_kind_of_name_is_refused(tmp_path, mnist):
    with pytest.raises(ValueError, match=r"saved as PNG; name it digits\.png"):
        figures.save(plots.samples_figure(plots.to_uint8(mnist.test_x[:4]), nrow=2),
                     tmp_path / "digits.svg")
    with pytest.raises(ValueError, match=r"saved as SVG; name it made\.svg"):
        figures.save(plots.made_figure(made.MADE(n=4, hidden=(5, 5))), tmp_path / "made.png")


def test_no_text_overprints_another_in_any_figure(made_twice):
    overlaps = {name: text_overlaps(fig) for name, fig in made_twice[2][0].items()}
    assert {name: pairs for name, pairs in overlaps.items() if pairs} == {}


def test_no_text_is_cut_off_in_any_figure(made_twice):
    cut = {name: texts_cut_off(fig) for name, fig in made_twice[2][0].items()}
    assert {name: texts for name, texts in cut.items() if texts} == {}


def test_no_text_is_below_8_pt_in_any_figure(made_twice):
    small = {name: texts_too_small(fig) for name, fig in made_twice[2][0].items()}
    assert {name: texts for name, texts in small.items() if texts} == {}


def test_the_made_diagram_labels_its_three_masks(made_twice):
    texts = [t.get_text() for t in made_twice[2][0]["made.svg"].findobj(plt.Text)]
    assert [t for t in texts if t.startswith("mask ")] == [
        "mask $M^{(1)}$", "mask $M^{(2)}$", r"mask $M^{\mathrm{out}}$"]


def test_the_bold_paths_reach_output_3_only_from_x1_and_x2():
    made_model = made.MADE(n=4, hidden=(5, 5))
    first_mask = plots.paths_into(made_model, output=2)[0]  # output 3 is unit index 2
    assert {source for _, source in first_mask} == {0, 1}  # inputs x_1 and x_2
    reach = made_model.masks[2] @ made_model.masks[1] @ made_model.masks[0]
    assert set(reach[2].nonzero().flatten().tolist()) == {0, 1}


# The first two pick other oneDNN conv kernels on an AVX-512 CPU; SSE41 does so on AVX2 as well.
SETTINGS = {"none": {}, "ONEDNN_MAX_CPU_ISA=AVX2": {"ONEDNN_MAX_CPU_ISA": "AVX2"},
            "ONEDNN_MAX_CPU_ISA=SSE41": {"ONEDNN_MAX_CPU_ISA": "SSE41"},
            "ATEN_CPU_CAPABILITY=default": {"ATEN_CPU_CAPABILITY": "default"},
            "ATEN_CPU_CAPABILITY=avx2": {"ATEN_CPU_CAPABILITY": "avx2"}}


@pytest.mark.slow
def test_grids_and_pca_are_byte_identical_under_every_cpu_kernel_choice():
    # Each setting picks other float32 kernels, so it needs a fresh process.
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    runs = {label: subprocess.Popen([sys.executable, str(ROOT / "tests" / "figure_bytes.py")],
                                    cwd=ROOT, env={**env, **extra}, stdout=subprocess.PIPE,
                                    text=True)
            for label, extra in SETTINGS.items()}
    digests = {label: json.loads(run.communicate(timeout=600)[0]) for label, run in runs.items()}
    assert all(run.returncode == 0 for run in runs.values())
    base = digests["none"]
    assert {"vae_samples.png", "vae_reconstructions.png", "vae_interpolations.png",
            "PCA"} <= set(base)
    differ = {label: sorted(k for k in base if d[k] != base[k]) for label, d in digests.items()}
    assert differ == {label: [] for label in SETTINGS}


@pytest.mark.slow
def test_float32_normal_draws_differ_without_avx2_so_the_samples_draw_float64():
    # Why ``VAE.sample`` draws z in float64: float32's sampler has an AVX2 variant.
    script = ("import hashlib, torch\n"
              "for dtype in (torch.float32, torch.float64):\n"
              "    torch.manual_seed(0)\n"
              "    print(hashlib.sha256(torch.randn(100, 16, dtype=dtype).numpy()).hexdigest())")
    sums = {cap: subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                                env={**os.environ, "ATEN_CPU_CAPABILITY": cap}).stdout.split()
            for cap in ("default", "avx2")}
    if sums["default"] == sums["avx2"]:
        pytest.skip("this CPU has no AVX2: both settings run the same kernels")
    assert sums["default"][0] != sums["avx2"][0] and sums["default"][1] == sums["avx2"][1]


def test_the_cut_off_check_sees_a_text_beyond_the_edge_or_its_clip_box():
    fig, ax = plt.subplots(figsize=(3, 2))
    ax.set_title("inside")
    assert texts_cut_off(fig) == []
    ax.text(0.5, 2.0, "left out of the saved area", transform=ax.transAxes).set_in_layout(False)
    ax.text(0.9, 0.5, "clipped at the axes", transform=ax.transAxes, clip_on=True)
    assert sorted(texts_cut_off(fig)) == ["clipped at the axes", "left out of the saved area"]
    plt.close(fig)


def test_the_overprint_check_sees_two_titles_that_collide():
    fig, ax = plt.subplots(figsize=(4, 3))
    ax.set_title("a long title on the left of the axes", loc="left")
    ax.set_title("and a long note on the right", loc="right", fontsize=8)
    ax.set_xlabel("x")
    assert text_overlaps(fig) == [("a long title on the left of the axes",
                                   "and a long note on the right")]
    ax.set_title("short", loc="left")
    assert text_overlaps(fig) == []
    plt.close(fig)


def test_the_size_check_sees_a_small_tick_label():
    fig, ax = plt.subplots(figsize=(3, 2))
    ax.set_title("a title", fontsize=9)
    ax.tick_params(labelsize=8)
    assert texts_too_small(fig) == []
    ax.set_xlabel("tiny", fontsize=6)
    assert texts_too_small(fig) == [("tiny", 6)]
    plt.close(fig)


def test_a_saved_svg_shows_as_the_same_text_every_time(tmp_path):
    fig = plots.made_figure(made.MADE(n=4, hidden=(5, 5)))
    first, second = figures.save(fig, tmp_path / "a.svg"), figures.save(fig, tmp_path / "b.svg")
    assert repr(first) == repr(second) and "0x" not in repr(first)  # no address in the notebook
