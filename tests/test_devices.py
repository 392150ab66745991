"""Device paths without a Mac: nothing the model's device computes may be float64.

Apple's MPS backend has no float64 tensors, so any float64 work on the model's device crashes
there. A dispatch mode sees every operator PyTorch runs; here it fails on any float64 result,
on any device, while the device paths run on the CPU. Work that is deliberately float64 (active
units, PCA; generation and latent means, on a float64 copy of the model) runs on the host, and
is checked separately.
"""

from __future__ import annotations

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from helpers import analysis, devices, train
from helpers.train import Config
from helpers.vae import VAE


class NoFloat64(TorchDispatchMode):
    """Raise on any operator that produces a float64 tensor, naming the operator."""

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        results = out if isinstance(out, (tuple, list)) else [out]
        if any(isinstance(t, torch.Tensor) and t.dtype == torch.float64 for t in results):
            raise AssertionError(f"{func} made a float64 tensor: MPS cannot run it")
        return out


def test_the_guard_catches_float64_work():
    with pytest.raises(AssertionError, match="float64"), NoFloat64():
        torch.zeros(3, dtype=torch.float64)


def test_auto_picks_the_accelerator_else_the_cpu_and_a_name_overrides(monkeypatch):
    monkeypatch.setattr(torch.accelerator, "current_accelerator",
                        lambda check_available=False: torch.device("mps"))
    assert devices.pick_device() == torch.device("mps")  # what torch reports, e.g. a Mac
    assert devices.pick_device("cpu") == torch.device("cpu")  # --device cpu
    monkeypatch.setattr(torch.accelerator, "current_accelerator",
                        lambda check_available=False: None)
    assert devices.pick_device() == torch.device("cpu")


def test_training_and_evaluation_make_no_float64(small, tmp_path):
    with NoFloat64():
        model, state = train.train(Config(epochs=1, precision="fp32"), out=tmp_path / "m.pt",
                                   data=small, device="cpu", progress=False)
        again = train.evaluate(model, small.test_x)
    assert state["history"]["test"].shape == (2, 3) and torch.isfinite(again).all()


def test_analysis_on_the_models_device_makes_no_float64(small):
    model = VAE().eval()
    x = small.test_x[:50]
    with NoFloat64():
        draws = analysis.test_draws(model, x, draws=2, batch_size=20)
        analysis.iwae_log_likelihood(model, x[:4], n_samples=5)
    assert (draws[:, 1] > draws[:, 3]).all() and (draws[:, 3] >= 0).all()


class Float64Devices(TorchDispatchMode):
    """Record the device of every float64 tensor an operator produces."""

    def __init__(self) -> None:
        super().__init__()
        self.devices: set[str] = set()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        results = out if isinstance(out, (tuple, list)) else [out]
        self.devices |= {t.device.type for t in results
                         if isinstance(t, torch.Tensor) and t.dtype == torch.float64}
        return out


@pytest.mark.parametrize("device", ["cpu"] + ["cuda"] * torch.cuda.is_available()
                         + ["mps"] * torch.backends.mps.is_available())
def test_generation_and_latent_means_make_float64_only_on_the_host(small, device):
    # They compute in float64 on purpose (the same figure bytes on every CPU), on a copy of the
    # model on the host: the model's own device sees float32 only.
    model = VAE().to(device).eval()
    x = small.test_x[:50]
    with Float64Devices() as seen:
        mu, _ = analysis.latent_means(model, x, batch_size=20)
        model.sample(3), model.reconstruct(x[:3]), model.interpolate(x[:2], x[2:4], steps=3)
    assert seen.devices == {"cpu"}
    assert mu.device.type == "cpu" and mu.dtype == torch.float32  # statistics run on the host


def test_per_dimension_statistics_share_one_convention():
    torch.manual_seed(0)
    mu, log_sigma = torch.randn(300, 4), torch.randn(300, 4) * 0.1
    _, activity, _ = analysis.active_units(mu, log_sigma)
    spread = analysis.aggregate_variance(mu, log_sigma)
    population = mu.double().var(0, unbiased=False)  # divided by N: the mixture's variance
    assert torch.allclose(activity.double(), population, rtol=1e-6)
    sigma2 = (2 * log_sigma.double()).exp().mean(0)
    assert torch.allclose(spread.double(), population + sigma2, rtol=1e-6)
    assert activity.dtype == spread.dtype == torch.float32
