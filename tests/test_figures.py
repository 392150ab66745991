"""Every figure of the notebook, made through ``helpers.figures.FIGURES`` from the notebook's
own inputs: byte-identical on every call (with one thread or two) and on every CPU setting,
image grids pixel-exact, every figure within the narrowest paper's text width (so none is
shrunk in print), and no text overprinted, cut off or below 8 pt."""

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
from figure_checks import text_overlaps, text_width_in, texts_cut_off, texts_too_small
from matplotlib.figure import Figure
from PIL import Image

from helpers import analysis, figures, flows, made, plots, reports, study, train

ROOT = Path(__file__).resolve().parent.parent
GRID_MIN_IN = 3.5  # an image grid's printed width at least


@pytest.fixture(scope="module")
def notebook_inputs(mnist) -> dict:
    """What the notebook holds when it makes its figures, under the notebook's names."""
    model, state, _ = reports.load_or_train(train.Config())
    mu_test, log_sigma_test = analysis.latent_means(model, mnist.test_x)
    recipes = study.load_study()  # the notebook labels the two recipes it compares
    runs = {"plain": recipes["plain fp32"], "warm-up, 200 steps": recipes["warmup200 fp32"]}
    return {"made_model": made.MADE(n=4, hidden=(5, 5)), "flow": flows.example_flow(),
            "model": model, "mnist": mnist, "history": state["history"], "mu_test": mu_test,
            "log_sigma_test": log_sigma_test, "runs": runs}


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
            shown = {name: plots.save(fig, out / name) for name, fig in figs.items()}
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


def printed_size_in(data: bytes) -> tuple[float, float]:
    """The size a saved figure prints at, in inches: an SVG's own size in pt, a PNG's pixels
    over its dpi (the notebook shows it at that width)."""
    if data.startswith(b"<?xml"):
        svg = data.decode()
        width_pt = float(svg.split('width="', 1)[1].split("pt", 1)[0])
        height_pt = float(svg.split('height="', 1)[1].split("pt", 1)[0])
        return width_pt / 72, height_pt / 72
    image = Image.open(io.BytesIO(data))
    return image.width / image.info["dpi"][0], image.height / image.info["dpi"][1]


def wider_than_the_text(saved: dict[str, bytes], paper: str | None = None) -> dict:
    """The figures wider than ``paper``'s text width (default: the narrowest paper's), which
    print shrunk, their 8 pt text with them: name -> printed size in inches."""
    sizes = {name: printed_size_in(data) for name, data in saved.items()}
    return {name: size for name, size in sizes.items() if size[0] > text_width_in(paper)}


def test_every_figure_fits_the_narrowest_papers_text_width(made_twice):
    assert text_width_in() < text_width_in("letter")  # A4 is the narrower
    assert wider_than_the_text(made_twice[2][1]) == {}


def test_the_width_check_sees_a_figure_wider_than_the_text(tmp_path):
    fig = Figure(figsize=(text_width_in() - 0.1, 1))  # saved with 0.1 in of padding a side
    ax = fig.add_axes((0, 0, 1, 1))  # the whole figure: nothing is cropped off when saved
    ax.set_xticks([])
    ax.set_yticks([])
    plots.save(fig, tmp_path / "wide.svg")
    saved = {"wide.svg": (tmp_path / "wide.svg").read_bytes()}
    assert list(wider_than_the_text(saved)) == ["wide.svg"]
    assert wider_than_the_text(saved, "letter") == {}  # 7.37 in: it fits Letter's 7.5 in


def test_every_image_grid_prints_at_least_3_5_in_wide_and_plots_stay_compact(made_twice):
    sizes = {name: printed_size_in(data) for name, data in made_twice[2][1].items()}
    grids = {name: size for name, size in sizes.items() if name.endswith(".png")}
    assert len(grids) == 3 and all(w >= GRID_MIN_IN for w, _ in grids.values()), grids
    for name, fig in made_twice[2][0].items():  # the images themselves, labels aside
        if name in grids:
            assert fig.images[0].get_array().shape[1] / fig.dpi >= GRID_MIN_IN, name
    made_w, made_h = sizes["made.svg"]
    assert made_h <= 3.0, sizes["made.svg"]
    curves_w, curves_h = sizes["vae_training_curves.svg"]
    assert curves_w <= 7.1 and 3.2 <= curves_h <= 4.5, sizes["vae_training_curves.svg"]


def _grid_region(png: bytes, fig: Figure) -> np.ndarray:
    """The enlarged grid's pixels in a saved grid PNG (pasted at the bottom, at its offset)."""
    pixels = np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))
    height, width = fig.images[0].get_array().shape[:2]
    left = fig.images[0].ox
    return pixels[-height:, left:left + width]


def _blocks(region: np.ndarray, k: int) -> np.ndarray:
    """An enlarged grid as (rows, k, cols, k, RGB): each image pixel one k x k block."""
    return region.reshape(region.shape[0] // k, k, region.shape[1] // k, k, 3)


def test_every_grid_pixel_is_an_exact_block_of_grey(made_twice):
    figs, saved = made_twice[2][0], made_twice[2][1]
    for name, data in saved.items():
        if name.endswith(".png"):
            region = _grid_region(data, figs[name])
            assert np.array_equal(region, figs[name].images[0].get_array()), name
            blocks = _blocks(region, plots.GRID_SCALE)
            corner = blocks[:, :1, :, :1]
            assert (blocks == corner).all(), f"{name}: a {plots.GRID_SCALE}-px block is not uniform"
            assert (corner == corner[..., :1]).all(), f"{name}: a pixel is not grey"


def test_a_saved_grid_holds_the_images_pixel_for_pixel(mnist, tmp_path):
    images = plots.to_uint8(mnist.test_x[:12])  # real digits: every grey level they use
    fig = plots.grid_figure(plots.image_grid(images, nrow=4), title="twelve test digits")
    plots.save(fig, tmp_path / "digits.png")
    region = _grid_region((tmp_path / "digits.png").read_bytes(), fig)
    assert region.shape[:2] == ((3 * 30 + 2) * plots.GRID_SCALE, (4 * 30 + 2) * plots.GRID_SCALE)
    blocks = _blocks(region, plots.GRID_SCALE)
    shown = blocks[:, 0, :, 0, 0]
    assert (blocks == blocks[:, :1, :, :1]).all()
    for n, image in enumerate(images):
        row, col = divmod(n, 4)
        tile = shown[2 + 30 * row:30 * (row + 1), 2 + 30 * col:30 * (col + 1)]
        assert np.array_equal(tile, image[..., 0]), n


def test_the_pairs_figure_shows_test_rows_over_their_reconstructions(made_twice,
                                                                     notebook_inputs):
    fig = made_twice[2][0]["vae_reconstructions.png"]
    grid = fig.images[0].get_array()[::plots.GRID_SCALE, ::plots.GRID_SCALE, 0]
    x = notebook_inputs["mnist"].test_x[:50]
    real = plots.to_uint8(x)[..., 0]
    recon = plots.to_uint8(notebook_inputs["model"].reconstruct(x))[..., 0]
    tops = plots.row_tops(10, 28, group=2, group_gap=8)
    for n in range(50):
        pair, col = divmod(n, 10)
        left = 2 + 30 * col
        assert np.array_equal(grid[tops[2 * pair]:tops[2 * pair] + 28, left:left + 28], real[n])
        assert np.array_equal(grid[tops[2 * pair + 1]:tops[2 * pair + 1] + 28, left:left + 28],
                              recon[n])
    for pair in range(1, 5):  # a white band between two pairs of rows, none inside a pair
        assert (grid[tops[2 * pair - 1] + 30:tops[2 * pair] - 2] == 255).all()
        assert grid[tops[2 * pair - 1] + 30:tops[2 * pair] - 2].shape[0] == 6
    title = " ".join(t.get_text() for t in fig.texts)
    assert "test images 0–49\nabove, their reconstructions below" in title


def test_the_training_curves_draw_every_line_inside_its_axes(made_twice, notebook_inputs):
    fig = made_twice[2][0]["vae_training_curves.svg"]
    history = notebook_inputs["history"]
    epochs, steps = len(history["test"]) - 1, len(history["train"])
    assert len(fig.axes) == 6  # three losses, each in an early and a late column
    for row, name in enumerate(("-ELBO", "reconstruction", "KL")):
        shown = [[], [], []]  # x of the minibatches, epoch means and test points, both columns
        for ax in fig.axes[2 * row:2 * row + 2]:
            low, high = ax.get_ylim()
            left, right = ax.get_xlim()
            lines = [line for line in ax.get_lines() if len(line.get_xdata()) > 1]
            assert len(lines) == 3, name  # minibatches, epoch means, test
            for line, xs in zip(lines, shown, strict=True):
                x, y = np.asarray(line.get_xdata()), np.asarray(line.get_ydata())
                assert low < y.min() and y.max() < high, (name, line.get_label())
                assert left <= x.min() and x.max() <= right, (name, line.get_label())
                xs.extend(x.tolist())
        band, means, test = (sorted(set(xs)) for xs in shown)
        assert np.allclose(band, np.linspace(0, epochs, steps))  # every minibatch, from the first
        assert means == list(range(1, epochs + 1))
        assert test == list(range(epochs + 1))  # epoch 0: before training
        assert fig.axes[2 * row].get_ylabel().strip(), name  # with its unit
    labels = [t.get_text() for t in fig.legends[0].get_texts()]
    assert "at its end" in labels[1] and "before training" in labels[2]  # where points sit


def test_no_figure_names_the_dataset(made_twice):
    named = {name: [t.get_text() for t in fig.findobj(plt.Text) if "MNIST" in t.get_text()]
             for name, fig in made_twice[2][0].items()}
    assert {name: texts for name, texts in named.items() if texts} == {}


def test_a_figure_saved_under_the_wrong_kind_of_name_is_refused(tmp_path, mnist):
    grid = plots.image_grid(plots.to_uint8(mnist.test_x[:4]), nrow=2)
    with pytest.raises(ValueError, match=r"saved as PNG; name it digits\.png"):
        plots.save(plots.grid_figure(grid, "four digits"), tmp_path / "digits.svg")
    with pytest.raises(ValueError, match=r"saved as SVG; name it made\.svg"):
        plots.save(figures.FIGURES["made.svg"](made.MADE(n=4, hidden=(5, 5))),
                   tmp_path / "made.png")


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
    assert "output (index d)" in texts and "input $x_j$ (degree $j$)" in texts
    assert any("degree" in t and "index d" in t for t in texts)  # the title says both


def test_the_bold_paths_reach_output_3_only_from_x1_and_x2():
    made_model = made.MADE(n=4, hidden=(5, 5))
    first_mask = figures.paths_into(made_model, output=2)[0]  # output 3 is unit index 2
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
    fig = figures.FIGURES["made.svg"](made.MADE(n=4, hidden=(5, 5)))
    first, second = plots.save(fig, tmp_path / "a.svg"), plots.save(fig, tmp_path / "b.svg")
    assert repr(first) == repr(second) and "0x" not in repr(first)  # no address in the notebook
