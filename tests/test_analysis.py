"""Beyond the assignment: importance weighting, active units and PCA."""

from __future__ import annotations

import math

import pytest
import torch

from helpers import analysis
from helpers.vae import VAE


def test_iwae_bound_is_above_the_elbo_and_grows_with_k(mnist):
    torch.manual_seed(0)
    model = VAE().eval()
    x = mnist.test_x[:20]
    torch.manual_seed(1)
    iw_1, elbo_1 = analysis.iwae_log_likelihood(model, x, k=1, chunk=10)
    assert torch.allclose(iw_1, elbo_1, atol=1e-3)  # k = 1: the bound is the ELBO
    torch.manual_seed(1)
    iw, elbo = analysis.iwae_log_likelihood(model, x, k=50, chunk=10)
    assert (iw >= elbo - 1e-3).all()
    assert iw.mean() > elbo.mean()


def test_log_normal_matches_torch_distributions():
    x, m, lv = torch.randn(5, 3), torch.randn(5, 3), torch.randn(5, 3)
    expected = torch.distributions.Normal(m, (0.5 * lv).exp()).log_prob(x).sum(-1)
    assert torch.allclose(analysis.log_normal(x, m, lv), expected, atol=1e-5)


def test_active_units_counts_dimensions_that_vary():
    mu = torch.zeros(1000, 4)
    mu[:, 0] = torch.randn(1000)  # only dimension 0 varies with x
    logvar = torch.zeros(1000, 4)
    kl_per_dim, activity, n = analysis.active_units(mu, logvar)
    assert n == 1
    assert kl_per_dim[1:].abs().max() == 0
    assert kl_per_dim[0].item() == pytest.approx(0.5 * (mu[:, 0] ** 2).mean().item(), rel=1e-5)
    assert activity[0].item() == pytest.approx(mu[:, 0].var().item())


def test_pca_keeps_the_largest_variance_direction():
    torch.manual_seed(0)
    direction = torch.tensor([3.0, 4.0, 0.0]) / 5
    mu = torch.randn(2000, 1) * 5 * direction + 0.1 * torch.randn(2000, 3)
    projected = analysis.pca_2d(mu)
    assert projected.shape == (2000, 2)
    assert projected[:, 0].var() > 20 * projected[:, 1].var()
    assert math.isclose(projected.mean().item(), 0.0, abs_tol=1e-4)
