"""Beyond the assignment: an importance-weighted log-likelihood, active units, latent means."""

from __future__ import annotations

import math

import torch

from helpers.data import MNIST, PAD, batches
from helpers.kl import gaussian_kl, gaussian_kl_terms
from helpers.vae import IMAGE_SHAPE, LOSS_NAMES, VAE, P, float64_on_cpu, logvar, neg_elbo_nats


@torch.no_grad()
def latent_means(model: VAE, x: torch.Tensor, batch_size: int = 1000) -> tuple[torch.Tensor, ...]:
    """Encoder ``mu`` and ``log_sigma`` of every image of ``x``, on the CPU in float32;
    computed in float64 (``float64_on_cpu``), so the statistics are the same on every CPU."""
    mu, log_sigma = float64_on_cpu(_encode_all)(model, x, batch_size)
    return mu.cpu(), log_sigma.cpu()


def _encode_all(model: VAE, x: torch.Tensor, batch_size: int) -> tuple[torch.Tensor, ...]:
    """``model.encode`` of every image of ``x``, in batches, concatenated."""
    parts = [model.encode(xb.to(model.device)) for xb in batches(x, batch_size, shuffle=False)]
    return torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts])


@torch.no_grad()
def test_draws(model: VAE, x: torch.Tensor, draws: int = 4,
               batch_size: int = 500) -> torch.Tensor:
    """[-ELBO, recon, KL, recon on the padding] averaged over ``x``, for each of ``draws`` draws.

    Each image is encoded once and decoded ``draws`` times: only z changes between draws (the KL
    is in closed form). Per draw the batches and random numbers are those of
    ``train.evaluate``, so the first draw repeats it when started from the same seed.
    """
    codes = [(xb, *model.encode(xb)) for xb in
             (b.to(model.device) for b in batches(x, batch_size, shuffle=False))]
    outer = torch.ones(IMAGE_SHAPE, dtype=torch.bool, device=model.device)
    outer[:, PAD:-PAD, PAD:-PAD] = False
    rows = []
    for _ in range(draws):
        total = [0.0] * 4  # summed on the host in double precision (MPS has no float64)
        for xb, mu, log_sigma in codes:
            z = mu + log_sigma.exp() * torch.randn_like(mu)
            err = (model.decode(z) - xb).pow(2)
            recon = err.flatten(1).sum(1).mean()
            kl = gaussian_kl(mu, logvar(log_sigma)).mean()
            batch = torch.stack([recon + kl, recon, kl, err[:, outer].sum() / xb.shape[0]])
            total = [t + v * xb.shape[0] for t, v in zip(total, batch.tolist(), strict=True)]
        rows.append([t / x.shape[0] for t in total])
    return torch.tensor(rows)


def final_draws(model: VAE, data: MNIST, draws: int = 4, n_train: int = 10_000,
                seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """``test_draws`` of the whole test set (``draws`` of them) and one of the first ``n_train``
    training images, from ``torch.manual_seed(seed)``; the global random stream is left as it
    was."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        test = test_draws(model, data.test_x, draws=draws)
        train = test_draws(model, data.train_x[:n_train], draws=1)[0]
    return test, train


def final_table(final: dict[str, float], test: torch.Tensor, train: torch.Tensor) -> str:
    """The recorded evaluation ``final`` (``reports.final_test``) with its -ELBO in nats, a
    training-set draw and its difference from ``final``, then the range and mean of the test
    -ELBO over ``final`` and the further draws (rows of ``test``), and the padding's error."""
    names = (*LOSS_NAMES, "-ELBO in nats")
    trained = [*map(float, train[:3]), float(neg_elbo_nats(train[1], train[2]))]
    pad_pixels = P - (IMAGE_SHAPE[1] - 2 * PAD) * (IMAGE_SHAPE[2] - 2 * PAD)
    lines = [f"-ELBO in nats of the test set: {final[names[3]]:.2f} "
             f"({pad_pixels * 0.5 * math.log(2 * math.pi):.2f} of them the {pad_pixels} "
             "padding pixels' constant)",
             f"{'':<19}{'train (10,000)':>19}{'test - train':>19}"]
    lines += [f"{name:<19}{v:19.2f}{final[name] - v:19.2f}"
              for name, v in zip(names, trained, strict=True)]
    draws = [final["-ELBO"], *map(float, test[:, 0])]  # the recorded draw and the further ones
    lines += [f"-ELBO over {len(draws)} draws of z on the test set (first above): "
              f"{min(draws):.2f} to {max(draws):.2f}, mean {sum(draws) / len(draws):.2f}",
              f"squared error summed over the padding pixels: {test[:, 3].mean():.3f} per image"]
    return "\n".join(lines)


def log_normal(x: torch.Tensor, mean: torch.Tensor, log_sigma: torch.Tensor) -> torch.Tensor:
    """log N(x; mean, diag(sigma^2)) with sigma = exp(log_sigma), summed over the last dim."""
    return (-0.5 * ((x - mean) / log_sigma.exp()).pow(2) - log_sigma
            - 0.5 * math.log(2 * math.pi)).sum(-1)


@torch.no_grad()
def iwae_log_likelihood(model: VAE, x: torch.Tensor, n_samples: int = 100,
                        chunk: int = 25) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-image importance-weighted bound log 1/K sum_j p(x, z_j)/q(z_j|x), and the ELBO.

    The ELBO is estimated from the same K = ``n_samples`` samples (mean of the log-weights), so
    it is never above the importance-weighted bound.

    Both in nats under p(x|z) = N(x; mu(z), I) on the [-1, 1]-scaled 32x32 images; the bound
    rises towards log p(x) as K grows (Burda et al., 2016).
    """
    iw, elbo = [], []
    for xb in batches(x, chunk, shuffle=False):
        xb = xb.to(model.device)
        mu, log_sigma = model.encode(xb)
        eps = torch.randn(n_samples, *mu.shape, device=mu.device)
        z = mu + log_sigma.exp() * eps  # (K, B, latent)
        x_hat = model.decode(z.flatten(0, 1)).unflatten(0, (n_samples, xb.shape[0]))
        log_px_z = -0.5 * (xb - x_hat).pow(2).flatten(2).sum(-1) - 0.5 * P * math.log(2 * math.pi)
        log_pz = log_normal(z, torch.zeros_like(z), torch.zeros_like(z))
        log_qz = log_normal(z, mu, log_sigma)
        log_w = log_px_z + log_pz - log_qz
        iw.append(torch.logsumexp(log_w, dim=0) - math.log(n_samples))
        elbo.append(log_w.mean(0))  # same samples: Jensen makes iw >= elbo per image
    return torch.cat(iw), torch.cat(elbo)


def active_units(mu: torch.Tensor, log_sigma: torch.Tensor,
                 threshold: float = 0.01) -> tuple[torch.Tensor, torch.Tensor, int]:
    """Mean KL per dimension, activity Var_x(mu_u(x)), and how many exceed ``threshold``."""
    mu, log_sigma = as_host_double(mu, log_sigma)
    kl_per_dim = gaussian_kl_terms(mu, logvar(log_sigma)).mean(0)
    activity = mu.var(0, unbiased=False)
    return kl_per_dim.float(), activity.float(), int((activity > threshold).sum())


def aggregate_variance(mu: torch.Tensor, log_sigma: torch.Tensor) -> torch.Tensor:
    """Per-dimension variance of the aggregate posterior mean_x q(z|x): Var(mu) + E[sigma^2]."""
    mu, log_sigma = as_host_double(mu, log_sigma)
    return (mu.var(0, unbiased=False) + (2 * log_sigma).exp().mean(0)).float()


def as_host_double(*tensors: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """The tensors on the CPU in float64, whose sums do not depend on the thread count.

    Variances are over the test set as a population (divided by N), as the aggregate
    posterior's is."""
    return tuple(t.cpu().double() for t in tensors)


def pca_2d(mu: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The rows of ``mu`` on their first two principal components (in float64; each one's
    largest loading positive), and each one's share of the variance."""
    (mu,) = as_host_double(mu)
    centred = mu - mu.mean(0)
    _, s, v = torch.linalg.svd(centred, full_matrices=False)
    v = v[:2] * v[:2].gather(1, v[:2].abs().argmax(1, keepdim=True)).sign()
    return (centred @ v.T).float(), (s[:2] ** 2 / (s**2).sum()).float()


def iwae_summary(iw: torch.Tensor, elbo: torch.Tensor, k: int) -> str:
    """The mean ELBO and ``k``-sample importance-weighted bound per image, their paired gap with
    its standard error over the images, and the decoder's constant that both contain."""
    gap = iw - elbo
    rows = [("ELBO (mean of the same log-weights)", f"{elbo.mean():9.2f} nats per image"),
            (f"IWAE bound (K = {k})", f"{iw.mean():9.2f} nats per image"),
            ("paired gap, IWAE - ELBO", f"{gap.mean():9.2f} ± "
                                        f"{gap.std() / len(gap) ** 0.5:.2f} (standard error)"),
            ("decoder constant in both, -P/2 log 2 pi",
             f"{-0.5 * P * math.log(2 * math.pi):9.2f} nats")]
    return "\n".join(f"{label:<40}{value}" for label, value in rows)


def latent_summary(mu: torch.Tensor, log_sigma: torch.Tensor) -> str:
    """Active units, the spread of Var(mu) and of the KL over dimensions, and the aggregate
    posterior's variance per dimension."""
    kl_per_dim, activity, n_active = active_units(mu, log_sigma)
    spread = aggregate_variance(mu, log_sigma)
    return "\n".join([
        f"active units: {n_active} of {mu.shape[1]}; the KL per dimension sums to "
        f"{kl_per_dim.sum():.1f} nats",
        f"Var(mu) per dimension: {activity.min():.2f} to {activity.max():.2f}; "
        f"KL per dimension: {kl_per_dim.min():.2f} to {kl_per_dim.max():.2f} nats",
        f"aggregate posterior variance per dimension (prior: 1): min {spread.min():.2f}, "
        f"median {spread.median():.2f}, max {spread.max():.2f}"])
