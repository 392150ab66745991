"""Beyond the assignment: an importance-weighted log-likelihood, active units, latent means."""

from __future__ import annotations

import math

import torch

from helpers.data import batches
from helpers.kl import gaussian_kl_terms
from helpers.vae import VAE, D


@torch.no_grad()
def latent_means(model: VAE, x: torch.Tensor, batch_size: int = 1000) -> tuple[torch.Tensor, ...]:
    """Encoder ``mu`` and ``logvar`` for every image of ``x``."""
    parts = [model.encode(xb) for xb in batches(x, batch_size, shuffle=False)]
    return torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts])


def log_normal(x: torch.Tensor, mean: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """log N(x; mean, diag(exp(logvar))), summed over the last dimension."""
    return -0.5 * ((x - mean).pow(2) / logvar.exp() + logvar + math.log(2 * math.pi)).sum(-1)


@torch.no_grad()
def iwae_log_likelihood(model: VAE, x: torch.Tensor, k: int = 100,
                        chunk: int = 25) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-image importance-weighted bound log 1/k sum_j p(x, z_j)/q(z_j|x), and the ELBO.

    The ELBO is estimated from the same k samples (mean of the log-weights), so it is never
    above the importance-weighted bound.

    Both in nats under p(x|z) = N(x; mu(z), I) on the [-1, 1]-scaled 32x32 images; the bound
    rises towards log p(x) as k grows (Burda et al., 2016).
    """
    iw, elbo = [], []
    for xb in batches(x, chunk, shuffle=False):
        mu, logvar = model.encode(xb)
        z = mu + (0.5 * logvar).exp() * torch.randn(k, *mu.shape)  # (k, B, latent)
        x_hat = model.decode(z.flatten(0, 1)).unflatten(0, (k, xb.shape[0]))
        log_px_z = -0.5 * (xb - x_hat).pow(2).flatten(2).sum(-1) - 0.5 * D * math.log(2 * math.pi)
        log_pz = log_normal(z, torch.zeros_like(z), torch.zeros_like(z))
        log_qz = log_normal(z, mu, logvar)
        log_w = log_px_z + log_pz - log_qz
        iw.append(torch.logsumexp(log_w, dim=0) - math.log(k))
        elbo.append(log_w.mean(0))  # same samples: Jensen makes iw >= elbo per image
    return torch.cat(iw), torch.cat(elbo)


def active_units(mu: torch.Tensor, logvar: torch.Tensor,
                 threshold: float = 0.01) -> tuple[torch.Tensor, torch.Tensor, int]:
    """Mean KL per dimension, activity Var_x(mu_u(x)), and how many exceed ``threshold``."""
    kl_per_dim = gaussian_kl_terms(mu, logvar).mean(0)
    activity = mu.var(0)
    return kl_per_dim, activity, int((activity > threshold).sum())


def pca_2d(mu: torch.Tensor) -> torch.Tensor:
    """Project the rows of ``mu`` on their first two principal components."""
    centred = mu - mu.mean(0)
    _, _, v = torch.linalg.svd(centred, full_matrices=False)
    return centred @ v[:2].T
