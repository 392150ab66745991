"""The interpolation explorer, driven through its real ipywidgets controls (no kernel needed)."""

from __future__ import annotations

import io
import json
import re
import uuid
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from helpers.vae import VAE
from helpers.widgets import InterpolationExplorer, interpolation_widget
from tools.widget_ids import VIEW, stable_widget_ids

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def explorer(mnist) -> InterpolationExplorer:
    torch.manual_seed(0)
    return InterpolationExplorer(VAE().eval(), mnist.test_x[:30], a=0, b=10)


def _pixels(png: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(png)))


def test_slider_changes_the_image(explorer):
    explorer.t.value = 0
    before = explorer.image.value
    explorer.t.value = explorer.t.max
    after = explorer.image.value
    assert _pixels(before).shape == (28 * 6, 28 * 6)
    assert not np.array_equal(_pixels(before), _pixels(after))
    assert explorer.label.value == "z = 0.00 * mu(x_a) + 1.00 * mu(x_b)"


def test_frames_are_the_models_interpolation(explorer, mnist):
    explorer.t.value = 4
    path = explorer.model.interpolate(mnist.test_x[0:1], mnist.test_x[10:11], steps=10)[0]
    expected = ((path[4, 0, 2:-2, 2:-2].clamp(-1, 1) + 1) * 127.5).round().byte().numpy()
    shown = _pixels(explorer.image.value)[::6, ::6]
    assert np.array_equal(shown, expected)


def test_choosing_another_pair_redraws(explorer):
    explorer.t.value = 9
    before = explorer.image.value
    explorer.b.value = 20
    assert explorer.image.value != before


def test_widget_box_holds_the_controls(mnist):
    box = interpolation_widget(VAE().eval(), mnist.test_x[:12], a=1, b=2).box
    kinds = {type(w).__name__ for w in box.children}
    assert {"HBox", "IntSlider", "Image", "Label"} <= kinds


def test_display_is_the_live_widget_alone(explorer):
    bundle = explorer._repr_mimebundle_()
    assert bundle["application/vnd.jupyter.widget-view+json"]["model_id"] == explorer.box.model_id
    assert "image/png" not in bundle  # no static strip: the PDF shows the interpolation grid


def test_a_path_of_one_step_is_refused(mnist):
    with pytest.raises(ValueError, match="steps must be at least 2"):
        InterpolationExplorer(VAE().eval(), mnist.test_x[:30], steps=1)


def _randomise_widget_ids(text: str, ids: list[str]) -> str:
    for old in ids:
        text = text.replace(old, uuid.uuid4().hex)
    return text


def test_saved_widget_ids_come_out_the_same_after_every_run(tmp_path):
    committed = (ROOT / "hw1.ipynb").read_text()
    state = json.loads(committed)["metadata"]["widgets"]
    ids = [i for s in state.values() for i in s["state"]]
    assert len(ids) > 3, "the committed notebook should carry the explorer's widget state"
    runs = []
    for n in range(2):  # two executions: the kernel draws new random ids each time
        path = tmp_path / f"run{n}.ipynb"
        path.write_text(_randomise_widget_ids(committed, ids))
        assert stable_widget_ids(path) == len(ids)
        runs.append(path.read_bytes())
    assert runs[0] == runs[1]
    nb = json.loads(runs[0])
    saved = {i for s in nb["metadata"]["widgets"].values() for i in s["state"]}
    shown = [o["data"][VIEW]["model_id"] for c in nb["cells"] for o in c.get("outputs", [])
             if VIEW in o.get("data", {})]
    refs = set(re.findall(r"IPY_MODEL_([0-9a-f]{32})", json.dumps(nb["metadata"])))
    assert shown and set(shown) <= saved and refs <= saved  # every link still resolves
