"""Beyond the assignment: importance weighting, active units and PCA."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch

from helpers import analysis, train
from helpers.vae import VAE, reconstruction_loss


def test_iwae_bound_is_above_the_elbo_and_grows_with_k(mnist):
    torch.manual_seed(0)
    model = VAE().eval()
    x = mnist.test_x[:20]
    torch.manual_seed(1)
    iw_1, elbo_1 = analysis.iwae_log_likelihood(model, x, n_samples=1, chunk=10)
    assert torch.allclose(iw_1, elbo_1, atol=1e-3)  # k = 1: the bound is the ELBO
    torch.manual_seed(1)
    iw, elbo = analysis.iwae_log_likelihood(model, x, n_samples=50, chunk=10)
    assert (iw >= elbo - 1e-3).all()
    assert iw.mean() > elbo.mean()


def test_iwae_runs_on_the_models_device(mnist):
    # "meta" stands in for a GPU: noise drawn on the CPU by mistake could not meet the model's.
    model = VAE().to("meta").eval()
    iw, elbo = analysis.iwae_log_likelihood(model, mnist.test_x[:6], n_samples=3, chunk=4)
    assert iw.device.type == elbo.device.type == "meta" and iw.shape == (6,)
    # latent_means encodes on a float64 copy of the model on the host: the meta device has no
    # weights to copy there.
    with pytest.raises(NotImplementedError, match="meta"):
        analysis.latent_means(model, mnist.test_x[:6], batch_size=4)


def test_log_normal_matches_torch_distributions():
    x, m, log_sigma = torch.randn(5, 3), torch.randn(5, 3), torch.randn(5, 3)
    expected = torch.distributions.Normal(m, log_sigma.exp()).log_prob(x).sum(-1)
    assert torch.allclose(analysis.log_normal(x, m, log_sigma), expected, atol=1e-5)


def test_active_units_counts_dimensions_that_vary():
    mu = torch.zeros(1000, 4)
    mu[:, 0] = torch.randn(1000)  # only dimension 0 varies with x
    log_sigma = torch.zeros(1000, 4)
    kl_per_dim, activity, n = analysis.active_units(mu, log_sigma)
    assert n == 1
    assert kl_per_dim[1:].abs().max() == 0
    assert kl_per_dim[0].item() == pytest.approx(0.5 * (mu[:, 0] ** 2).mean().item(), rel=1e-5)
    assert activity[0].item() == pytest.approx(mu[:, 0].var(unbiased=False).item())


def test_pca_keeps_the_largest_variance_direction():
    torch.manual_seed(0)
    direction = torch.tensor([3.0, 4.0, 0.0]) / 5
    mu = torch.randn(2000, 1) * 5 * direction + 0.1 * torch.randn(2000, 3)
    projected, explained = analysis.pca_2d(mu)
    assert projected.shape == (2000, 2)
    assert projected[:, 0].var() > 20 * projected[:, 1].var()
    assert math.isclose(projected.mean().item(), 0.0, abs_tol=1e-4)
    total = mu.var(0).sum()
    assert explained[0].item() == pytest.approx((projected[:, 0].var() / total).item(), rel=1e-4)
    assert explained[0] > 0.9 and explained.sum() <= 1


def test_pca_does_not_depend_on_the_sign_or_order_of_rows():
    torch.manual_seed(1)
    mu = torch.randn(500, 6) @ torch.randn(6, 6)
    a, _ = analysis.pca_2d(mu)
    b, _ = analysis.pca_2d(mu.flip(0))
    assert torch.allclose(a.flip(0), b, atol=1e-5)  # same components, same signs


def test_aggregate_variance_is_the_mixtures_variance():
    torch.manual_seed(2)
    mu, log_sigma = torch.randn(4000, 3) * 0.5, torch.full((4000, 3), math.log(0.6))
    z = mu + log_sigma.exp() * torch.randn(4000, 3)  # one draw from each q(z|x)
    expected = torch.full((3,), 0.25 + 0.36)
    assert torch.allclose(analysis.aggregate_variance(mu, log_sigma), expected, atol=0.05)
    assert torch.allclose(z.var(0), expected, atol=0.05)


def test_the_first_draw_repeats_evaluate_and_the_padding_is_part_of_the_reconstruction(mnist):
    torch.manual_seed(0)
    model = VAE().eval()
    x = mnist.test_x[:80]
    torch.manual_seed(4)
    draws = analysis.test_draws(model, x, draws=3, batch_size=40)
    torch.manual_seed(4)
    assert torch.allclose(draws[0, :3], train.evaluate(model, x, batch_size=40), rtol=1e-5)
    assert torch.allclose(draws[:, 0], draws[:, 1] + draws[:, 2], rtol=1e-5)
    assert (draws[:, 2] == draws[0, 2]).all()  # the KL is in closed form: no draw changes it
    assert (draws[:, 1] != draws[0, 1]).any()  # the reconstruction does
    torch.manual_seed(4)
    x_hat = model(x[:40])[0]  # the first batch's sampled z
    ring = (x[:40] - x_hat)[..., :, :2].pow(2).sum() + (x[:40] - x_hat)[..., :, -2:].pow(2).sum()
    assert 0 < ring.item() / 40 / 2 < draws[0, 3] < draws[0, 1]  # padding also has top rows


@pytest.mark.slow
def test_the_spread_of_draws_is_that_of_whole_set_estimates(mnist):
    torch.manual_seed(0)
    model = VAE().eval()
    x = mnist.test_x[:100]
    with torch.no_grad():
        mu, log_sigma = model.encode(x)
        means = [reconstruction_loss(model.decode(mu + log_sigma.exp() * torch.randn_like(mu)),
                                     x).mean().item() for _ in range(60)]
    measured = torch.tensor(means).std().item()  # 60 whole-set estimates, written out here
    spread = analysis.test_draws(model, x, draws=60, batch_size=30)[:, 0].std().item()
    assert spread == pytest.approx(measured, rel=0.3)


def test_final_table_sets_the_recorded_test_against_train_and_subtracts_them():
    final = {"-ELBO": 55.2, "reconstruction": 30.1, "KL": 25.1, "-ELBO in nats": 981.14}
    test = torch.tensor([[55.3, 30.2, 25.1, 0.02], [55.5, 30.4, 25.1, 0.02]])
    train_row = torch.tensor([53.0, 27.5, 25.5, 0.01])
    lines = analysis.final_table(final, test, train_row).splitlines()
    # 32 x 32 - 28 x 28 = 240 padding pixels, each with 1/2 log(2 pi) nats of constant
    assert lines[0] == (f"-ELBO in nats of the test set: 981.14 "
                        f"({240 * 0.5 * math.log(2 * math.pi):.2f} of them the 240 padding "
                        "pixels' constant)")
    rows = {line[:19].strip(): [float(v) for v in line[19:].split()] for line in lines[2:6]}
    assert rows["-ELBO"] == [53.0, pytest.approx(2.2)]
    assert rows["KL"] == [25.5, pytest.approx(-0.4)]
    # -ELBO in nats = recon / 2 + 512 log(2 pi) + KL
    constant = 512 * math.log(2 * math.pi)
    assert rows["-ELBO in nats"][0] == pytest.approx(13.75 + constant + 25.5, abs=0.01)
    assert rows["-ELBO in nats"][1] == pytest.approx(981.14 - 13.75 - constant - 25.5,
                                                     abs=0.01)
    assert "3 draws" in lines[6] and "55.20 to 55.50" in lines[6]  # the recorded one is lowest
    assert lines[6].endswith(f", mean {(55.2 + 55.3 + 55.5) / 3:.2f}")
    assert lines[7].endswith(" 0.020 per image")


def test_final_draws_are_seeded_draws_that_leave_the_random_stream_alone(mnist):
    model = VAE().eval()
    small = dataclasses.replace(mnist, train_x=mnist.train_x[:40], test_x=mnist.test_x[:30])
    before = torch.get_rng_state()
    test, train_row = analysis.final_draws(model, small, draws=2, n_train=20, seed=3)
    assert torch.equal(torch.get_rng_state(), before)
    torch.manual_seed(3)  # the same draws, taken by hand in the same order
    assert torch.equal(test, analysis.test_draws(model, small.test_x, draws=2))
    assert torch.equal(train_row, analysis.test_draws(model, small.train_x[:20], draws=1)[0])
