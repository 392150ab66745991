"""Question 2: KL(q(z|x) || N(0, I)) for a diagonal Gaussian q, in closed form and two checks."""

from __future__ import annotations

import torch
from torch.distributions import Independent, Normal, kl_divergence


def gaussian_kl_terms(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """The per-dimension terms 1/2 (sigma_i^2 + mu_i^2 - log sigma_i^2 - 1)."""
    return 0.5 * (logvar.exp() + mu.pow(2) - logvar - 1)


def gaussian_kl(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """Closed form 1/2 sum_i (sigma_i^2 + mu_i^2 - log sigma_i^2 - 1), summed over the last dim."""
    return gaussian_kl_terms(mu, logvar).sum(dim=-1)


def _q_and_p(mu: torch.Tensor, logvar: torch.Tensor) -> tuple[Independent, Independent]:
    """q = N(mu, diag(sigma^2)) and p = N(0, I) as torch.distributions objects."""
    q = Independent(Normal(mu, (0.5 * logvar).exp()), 1)
    p = Independent(Normal(torch.zeros_like(mu), torch.ones_like(mu)), 1)
    return q, p


def kl_reference(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """The same KL as computed by ``torch.distributions`` (an independent implementation)."""
    q, p = _q_and_p(mu, logvar)
    return kl_divergence(q, p)


def kl_monte_carlo(mu: torch.Tensor, logvar: torch.Tensor, n: int = 100_000,
                   generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Monte-Carlo estimate E_q[log q(z) - log p(z)] from n samples, and its standard error."""
    q, p = _q_and_p(mu, logvar)
    eps = torch.randn((n, *mu.shape), generator=generator, dtype=mu.dtype)
    z = mu + (0.5 * logvar).exp() * eps
    terms = q.log_prob(z) - p.log_prob(z)
    return terms.mean(0), terms.std(0) / n**0.5
