"""The VAE: shapes, objective, generation API, and input checks."""

from __future__ import annotations

import copy
import math

import pytest
import torch
from torch.distributions import Normal

from helpers import vae
from helpers.kl import gaussian_kl, kl_monte_carlo, kl_reference
from helpers.vae import VAE


@pytest.fixture(scope="module")
def model() -> VAE:
    torch.manual_seed(0)
    return VAE().eval()


def test_shapes_through_the_whole_model(model):
    x = torch.rand(5, 1, 32, 32) * 2 - 1
    h = x
    encoder_sides = []
    for layer in model.encoder:
        h = layer(h)
        if isinstance(layer, torch.nn.Conv2d):
            encoder_sides.append(h.shape[-1])
    assert encoder_sides == [32, 16, 8, 4]
    mu, log_sigma = model.encode(x)
    assert mu.shape == log_sigma.shape == (5, 16)
    x_hat, mu2, log_sigma2, z = model(x)
    assert x_hat.shape == x.shape and z.shape == (5, 16)
    assert torch.equal(mu, mu2) and torch.equal(log_sigma, log_sigma2)


def _fixed_encoder(scale: str, mu: torch.Tensor, s: torch.Tensor) -> VAE:
    """A VAE whose encoder outputs the constant [mu, s] whatever the image."""
    model = VAE(scale=scale).eval()
    head = model.encoder[-1]
    with torch.no_grad():
        head.weight.zero_()
        head.bias.copy_(torch.cat([mu, s]))
    return model


@pytest.mark.parametrize("scale, sigma_of", [("log_sigma", torch.exp),
                                             ("logvar", lambda s: torch.exp(s / 2))])
def test_encoder_output_is_read_as_the_configured_scale(scale, sigma_of):
    mu, s = torch.linspace(-1, 1, 16), torch.linspace(-2, 1, 16)
    model = _fixed_encoder(scale, mu, s)
    x = torch.zeros(512, 1, 32, 32)
    torch.manual_seed(3)
    _, _, log_sigma, z = model(x)
    torch.manual_seed(3)
    eps = torch.randn(512, 16)
    assert torch.allclose(z, mu + sigma_of(s) * eps, atol=1e-5)  # z = mu + sigma * eps
    assert torch.allclose(log_sigma[0], sigma_of(s).log(), atol=1e-6)
    _, _, kl = vae.losses(model, x)
    sigma2 = sigma_of(s) ** 2  # question 2's formula, written out in sigma^2
    assert kl.item() == pytest.approx(0.5 * (sigma2 + mu**2 - sigma2.log() - 1).sum().item(),
                                      rel=1e-5)


def test_unknown_scale_is_refused():
    with pytest.raises(ValueError, match="scale"):
        VAE(scale="sigma")


def test_architecture_is_the_assignments(model):
    convs = [(m.in_channels, m.out_channels, m.kernel_size[0], m.stride[0], m.padding[0])
             for m in model.modules() if isinstance(m, torch.nn.Conv2d | torch.nn.ConvTranspose2d)]
    assert convs == [(1, 32, 3, 1, 1), (32, 64, 3, 2, 1), (64, 128, 3, 2, 1), (128, 256, 3, 2, 1),
                     (128, 128, 4, 2, 1), (128, 64, 4, 2, 1), (64, 32, 4, 2, 1), (32, 1, 3, 1, 1)]
    linears = [(m.in_features, m.out_features) for m in model.modules()
               if isinstance(m, torch.nn.Linear)]
    assert linears == [(4096, 32), (16, 2048)]


def test_kl_matches_values_worked_out_by_hand():
    # KL(N(m, s^2) || N(0, 1)) = -log s + (s^2 + m^2) / 2 - 1/2 in each dimension, summed:
    # (m, s) = (1, 1) gives 1/2; (0, 2) gives 3/2 - log 2; (0, 1) gives 0.
    mu = torch.tensor([[1.0, 0.0], [0.0, 0.0]], dtype=torch.float64)
    logvar = torch.tensor([[0.0, math.log(4.0)], [0.0, 0.0]], dtype=torch.float64)
    expected = torch.tensor([0.5 + 1.5 - math.log(2.0), 0.0], dtype=torch.float64)
    assert torch.allclose(gaussian_kl(mu, logvar), expected, atol=1e-12)
    assert torch.allclose(kl_reference(mu, logvar), expected, atol=1e-12)


def test_kl_reference_agrees_with_the_closed_form_and_is_never_negative():
    mu, logvar = torch.randn(64, 16, dtype=torch.float64), torch.randn(64, 16, dtype=torch.float64)
    assert torch.allclose(kl_reference(mu, logvar), gaussian_kl(mu, logvar), atol=1e-10)
    assert (kl_reference(mu, logvar) > 0).all()


def test_kl_matches_monte_carlo():
    mu, logvar = torch.randn(16, dtype=torch.float64), torch.randn(16, dtype=torch.float64)
    est, se = kl_monte_carlo(mu, logvar, n=200_000, generator=torch.Generator().manual_seed(1))
    assert abs(est - gaussian_kl(mu, logvar)) < 4 * se


def test_kl_is_zero_only_at_the_prior():
    assert gaussian_kl(torch.zeros(3, 16), torch.zeros(3, 16)).abs().max() == 0
    assert (gaussian_kl(torch.randn(3, 16), torch.randn(3, 16)) > 0).all()


def test_reconstruction_is_squared_error_summed_over_pixels():
    x, x_hat = torch.randn(4, 1, 32, 32), torch.randn(4, 1, 32, 32)
    per_example = vae.reconstruction_loss(x_hat, x)
    expected = torch.nn.functional.mse_loss(x_hat, x, reduction="sum") / 4
    assert per_example.shape == (4,)
    assert per_example.mean().item() == pytest.approx(expected.item(), rel=1e-6)


def test_losses_are_batch_means_and_neg_elbo_is_their_sum(model):
    x = torch.rand(8, 1, 32, 32) * 2 - 1
    torch.manual_seed(5)
    neg_elbo, recon, kl = vae.losses(model, x)
    torch.manual_seed(5)
    x_hat, mu, log_sigma, _ = model(x)
    assert recon.item() == pytest.approx(((x - x_hat) ** 2).sum().item() / 8, rel=1e-5)
    assert kl.item() == pytest.approx(gaussian_kl(mu, 2 * log_sigma).mean().item(), rel=1e-5)
    assert neg_elbo.item() == pytest.approx(recon.item() + kl.item(), rel=1e-6)


def test_neg_elbo_nats_matches_gaussian_log_density():
    x, mean = torch.randn(1024, dtype=torch.float64), torch.randn(1024, dtype=torch.float64)
    recon = ((x - mean) ** 2).sum()
    nll = -Normal(mean, torch.ones_like(mean)).log_prob(x).sum()
    assert vae.neg_elbo_nats(recon, 0.0).item() == pytest.approx(nll.item(), rel=1e-12)
    assert vae.neg_elbo_nats(0.0, 2.5) == pytest.approx(512 * math.log(2 * math.pi) + 2.5)


def test_parameter_count(model):
    conv = lambda i, o, k: i * o * k * k + o  # noqa: E731
    expected = (conv(1, 32, 3) + conv(32, 64, 3) + conv(64, 128, 3) + conv(128, 256, 3)
                + 4096 * 32 + 32 + 16 * 2048 + 2048
                + conv(128, 128, 4) + conv(128, 64, 4) + conv(64, 32, 4) + conv(32, 1, 3))
    assert vae.parameter_count(model) == expected


def test_generation_api_shapes_and_endpoints(model):
    x = torch.rand(3, 1, 32, 32) * 2 - 1
    y = torch.rand(3, 1, 32, 32) * 2 - 1
    assert model.sample(7).shape == (7, 1, 32, 32)
    recon = model.reconstruct(x)
    assert torch.allclose(recon, model.decode(model.encode(x)[0]))
    path = model.interpolate(x, y, steps=10)
    assert path.shape == (3, 10, 1, 32, 32)
    assert torch.allclose(path[:, 0], recon, atol=1e-5)
    assert torch.allclose(path[:, -1], model.reconstruct(y), atol=1e-5)


@pytest.mark.parametrize("bad, match", [
    (torch.zeros(2, 28, 28), "shape"),
    (torch.zeros(2, 1, 28, 28), "shape"),
    (torch.zeros(2, 3, 32, 32), "shape"),
    (torch.zeros(2, 1, 32, 32, dtype=torch.uint8), "float"),
    (torch.full((2, 1, 32, 32), float("nan")), "NaN"),
])
def test_bad_input_gives_clear_error(model, bad, match):
    with pytest.raises(ValueError, match=match):
        model.reconstruct(bad)


def _devices() -> list[str]:
    """The CPU, and a GPU where this machine has one."""
    return ["cpu"] + [d for d, ok in (("cuda", torch.cuda.is_available()),
                                      ("mps", torch.backends.mps.is_available())) if ok]


@pytest.mark.parametrize("device", _devices())
def test_generation_comes_back_in_float32_on_the_models_device(device):
    model = VAE().to(device).eval()
    x = torch.rand(3, 1, 32, 32) * 2 - 1  # data stays on the CPU, as load_mnist gives it
    results = [model.sample(4), model.reconstruct(x), model.interpolate(x, x, steps=5)]
    assert [(r.device.type, r.dtype) for r in results] == [(device, torch.float32)] * 3
    weights = next(model.parameters())  # the float64 copy leaves the model as it was
    assert (weights.device.type, weights.dtype) == (device, torch.float32)


def test_generation_computes_in_float64_and_draws_z_in_float64(model):
    exact = copy.deepcopy(model).double()
    x = torch.rand(3, 1, 32, 32) * 2 - 1
    expected = exact.decode(exact.encode(x.double())[0])
    recon = model.reconstruct(x)
    assert (recon.double() - expected).abs().max() < 1e-6  # float32 alone is off by ~1e-6
    torch.manual_seed(0)
    z = torch.randn(8, model.latent_dim, dtype=torch.float64)  # the same code on every CPU
    torch.manual_seed(0)
    assert torch.allclose(model.sample(8).double(), exact.decode(z), atol=1e-6)


def test_interpolate_rejects_mismatched_pairs(model):
    with pytest.raises(ValueError, match="must match"):
        model.interpolate(torch.zeros(2, 1, 32, 32), torch.zeros(3, 1, 32, 32))


def test_layer_summary_reads_the_assignments_layers_off_the_model():
    model = VAE()
    encoder = vae.layer_summary(model.encoder, width=1000).strip().split(", ")
    assert "\n" not in vae.layer_summary(model.encoder, width=1000)
    assert [p for p in encoder if p != "ReLU"] == [
        "conv 1→32 3×3/1", "conv 32→64 3×3/2", "conv 64→128 3×3/2", "conv 128→256 3×3/2",
        "Flatten", "linear 4096→32"]
    decoder = vae.layer_summary(model.decoder, width=1000).strip().split(", ")
    assert [p for p in decoder if p != "ReLU"] == [
        "linear 16→2048", "reshape 128×4×4", "convT 128→128 4×4/2", "convT 128→64 4×4/2",
        "convT 64→32 4×4/2", "conv 32→1 3×3/1"]
    assert "linear 4096→64" in vae.layer_summary(VAE(latent_dim=32).encoder)
    lines = vae.layer_summary(model.decoder).splitlines()
    assert len(lines) > 1 and all(len(line) <= 92 for line in lines)
    phrases = [p.strip() for p in " ".join(lines).split(",")]
    assert [p for p in phrases if p != "ReLU"] == [p for p in decoder if p != "ReLU"]


def _documented(a: int, b: int) -> int:
    """A docstring the printout leaves out,
    over two lines."""
    total = a + b  # a comment it keeps
    return total


def test_the_printed_source_is_the_code_without_its_docstrings():
    from helpers import reports
    expected = ("def _documented(a: int, b: int) -> int:\n"
                "    total = a + b  # a comment it keeps\n"
                "    return total")
    assert reports.source(_documented) == expected
    assert reports.source(_documented, _documented) == expected + "\n\n" + expected
    printed = reports.source(vae.VAE.forward, vae.losses)
    assert '"""' not in printed and "torch.randn_like(mu)" in printed
