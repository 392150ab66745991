"""Question 3: the flow density formula, checked with autograd and by integration."""

from __future__ import annotations

import torch

from helpers import flows


def test_closed_form_log_dets_match_autograd_jacobians():
    flow = flows.example_flow()
    assert len(flow) >= 3
    z0 = torch.randn(50, 2, dtype=torch.float64)
    closed = flows.closed_form_log_dets(flow, z0)
    assert closed.shape == (50, len(flow))
    assert torch.allclose(closed, flows.autograd_log_dets(flow, z0), atol=1e-10)
    _, log_q = flows.push_forward(flow, z0)
    assert torch.allclose(log_q, flows.standard_normal_log_prob(z0) - closed.sum(1), atol=1e-12)


def test_each_map_is_invertible():
    z = torch.randn(100, 2, dtype=torch.float64)
    for g in flows.example_flow():
        assert torch.allclose(g.inverse(g.forward(z)), z, atol=1e-10)


def test_density_integrates_to_one():
    assert abs(flows.grid_mass(flows.example_flow(), limit=10, n=500) - 1) < 1e-3


def test_density_matches_a_histogram_of_samples():
    flow = flows.example_flow()
    z_t, log_q = flows.push_forward(flow, torch.randn(400_000, 2, dtype=torch.float64))
    # Probability of a small box around a point: histogram fraction vs density x area.
    centre, h = torch.tensor([0.5, 0.0], dtype=torch.float64), 0.25
    inside = ((z_t - centre).abs() < h / 2).all(dim=1).double().mean()
    predicted = flows.log_density(flow, centre[None]).exp() * h * h
    assert abs(inside - predicted) < 0.05 * predicted
    assert torch.allclose(flows.log_density(flow, z_t[:100]), log_q[:100], atol=1e-10)


def test_formula_equals_the_direct_change_of_variables_for_a_single_affine_map():
    A = torch.tensor([[2.0, 1.0], [0.0, 0.5]], dtype=torch.float64)
    b = torch.tensor([1.0, -1.0], dtype=torch.float64)
    y = torch.randn(10, 2, dtype=torch.float64)
    # z_1 = A z_0 + b with z_0 ~ N(0, I) is N(b, A A^T): compare with its density directly.
    direct = torch.distributions.MultivariateNormal(b, A @ A.T).log_prob(y)
    assert torch.allclose(flows.log_density([flows.Affine(A, b)], y), direct, atol=1e-10)


def test_mass_inside_a_contour_of_a_gaussian_is_its_closed_form():
    # q_t = N(b, A A^T): q_t > c exactly where the Mahalanobis r^2 < -2 log(2 pi |det A| c),
    # a region of mass 1 - exp(-r^2 / 2) = 1 - 2 pi |det A| c.
    A = torch.tensor([[0.9, 0.4], [-0.3, 0.7]], dtype=torch.float64)
    flow = [flows.Affine(A, torch.tensor([0.5, -0.2], dtype=torch.float64))]
    for c in (0.1, 0.01, 0.001):
        exact = 1 - 2 * torch.pi * float(torch.linalg.det(A)) * c
        assert abs(flows.grid_mass(flow, limit=10, n=500, above=c) - exact) < 2e-3


def test_samples_fall_inside_each_contour_as_often_as_its_mass_says():
    flow = flows.example_flow()
    z0 = torch.randn(20_000, 2, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    _, log_q = flows.push_forward(flow, z0)
    for c in (1e-1, 1e-2, 1e-3, 1e-4):
        mass = flows.grid_mass(flow, limit=10, n=1000, above=c)
        share = float((log_q.exp() > c).double().mean())
        # the figure's samples (seed 1): question 3 says each share is within 2 standard errors
        assert abs(share - mass) < 2 * (mass * (1 - mass) / 20_000) ** 0.5
