"""The convolutional VAE of question 4 and its objective.

Notation follows the assignment and ``derivations.md``: the encoder gives ``mu`` and ``log_sigma``
(log sigma) of q(z|x) = N(z; mu(x), diag(sigma^2(x))); ``z`` is a reparameterised sample; the
decoder gives ``x_hat`` = mu(z), the mean of p(x|z) = N(x; mu(z), I); the prior is N(0, I).

The encoder's second half is read as log sigma (the course's reference convention). Read as
log sigma^2 instead (``scale="logvar"``), plain-recipe runs with seeds 0-2 showed no consistent
difference; see the Q4 notes in ``derivations.md``.

Adaptations for MNIST (everything else is the assignment's, layer for layer):
* one channel: the first conv is 1->32 and the last conv 32->1 (the assignment's are RGB);
* inputs are 32x32, MNIST's 28x28 padded with background (see ``helpers.data``).
"""

from __future__ import annotations

import copy
import functools
import math
from collections.abc import Callable

import torch
from torch import nn

from helpers.kl import gaussian_kl

LATENT_DIM = 16  # the one default: VAE's and train.Config's
IMAGE_SHAPE = (1, 32, 32)
P = math.prod(IMAGE_SHAPE)  # pixels per image, the dimension of x (P in derivations.md)
LOSS_NAMES = ("-ELBO", "reconstruction", "KL")  # the order of ``losses`` and of every history
SCALES = ("log_sigma", "logvar")  # how the encoder's second half is read: log sigma or log sigma^2


def float64_on_cpu(fn: Callable) -> Callable:
    """Run ``fn(model, ...)`` on a float64 copy of the model on the CPU, one thread; its tensors
    come back in float32 on the model's device.

    In float32 the conv kernels picked for the CPU (AVX-512, AVX2, none) and the thread count
    round differently, and a last bit can flip a pixel's rounding to uint8. In float64 they
    differ by about 1e-16 of a value: a pixel (or a float32 result) changes only if it lies
    that close to a rounding step, so the figures made from these calls come out byte-identical
    on every CPU. The copy is on the CPU because MPS has no float64; the models are small.
    """
    @functools.wraps(fn)
    def wrapper(model: nn.Module, *args, **kwargs):
        device = next(model.parameters()).device
        exact = copy.deepcopy(model).to("cpu", torch.float64)
        args, kwargs = _convert((args, kwargs), "cpu", torch.float64)
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            return _convert(fn(exact, *args, **kwargs), device, torch.float32)
        finally:
            torch.set_num_threads(threads)
    return wrapper


def _convert(value: object, device: torch.device | str, dtype: torch.dtype) -> object:
    """``value`` with every float tensor in it (also inside tuples, lists, dicts) on ``device``
    in ``dtype``; anything else, integer tensors included, unchanged."""
    if isinstance(value, torch.Tensor):
        return value.to(device, dtype) if value.is_floating_point() else value
    if isinstance(value, (tuple, list)):
        return type(value)(_convert(v, device, dtype) for v in value)
    if isinstance(value, dict):
        return {k: _convert(v, device, dtype) for k, v in value.items()}
    return value


class VAE(nn.Module):
    """The assignment's encoder/decoder with a diagonal-Gaussian latent (in-place ReLUs: the
    same function, one activation buffer less per layer)."""

    def __init__(self, latent_dim: int = LATENT_DIM, channels: int = 1,
                 scale: str = "log_sigma") -> None:
        super().__init__()
        if scale not in SCALES:
            raise ValueError(f"scale must be one of {SCALES}, got {scale!r}.")
        self.latent_dim = latent_dim
        self.scale = scale
        self.dataset: str | None = None  # the images it is trained on (``train.build_model``)
        self.encoder = nn.Sequential(
            nn.Conv2d(channels, 32, 3, 1, 1), nn.ReLU(inplace=True),
            nn.Conv2d(32, 64, 3, 2, 1), nn.ReLU(inplace=True),  # 16 x 16
            nn.Conv2d(64, 128, 3, 2, 1), nn.ReLU(inplace=True),  # 8 x 8
            nn.Conv2d(128, 256, 3, 2, 1), nn.ReLU(inplace=True),  # 4 x 4
            nn.Flatten(),
            nn.Linear(4 * 4 * 256, 2 * latent_dim),
        )
        self.decoder = nn.Sequential(
            nn.Linear(latent_dim, 4 * 4 * 128), nn.ReLU(inplace=True),
            nn.Unflatten(1, (128, 4, 4)),  # the assignment's reshape(4, 4, 128), channels first
            nn.ConvTranspose2d(128, 128, 4, 2, 1), nn.ReLU(inplace=True),  # 8 x 8
            nn.ConvTranspose2d(128, 64, 4, 2, 1), nn.ReLU(inplace=True),  # 16 x 16
            nn.ConvTranspose2d(64, 32, 4, 2, 1), nn.ReLU(inplace=True),  # 32 x 32
            nn.Conv2d(32, channels, 3, 1, 1),
        )

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Halves of the output: ``mu`` and ``log_sigma`` of q(z|x), each (B, latent_dim)."""
        mu, s = self.encoder(x).chunk(2, dim=1)
        return mu, (s if self.scale == "log_sigma" else 0.5 * s)  # or s is log sigma^2

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Return ``x_hat`` = mu(z), the mean of p(x|z), shape (B, 1, 32, 32)."""
        return self.decoder(z)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Encode, sample ``z = mu + sigma * eps``, decode: (x_hat, mu, log_sigma, z)."""
        # in 32-bit floats even when the layers run in bfloat16: the KL and the noise need it
        mu, log_sigma = (t.float() for t in self.encode(x))
        z = mu + log_sigma.exp() * torch.randn_like(mu)
        return self.decode(z), mu, log_sigma, z

    @torch.no_grad()
    def sample(self, n: int) -> torch.Tensor:
        """Decoder means for n draws z ~ N(0, I) (no decoder noise), shape (n, 1, 32, 32)."""
        # Drawn in float64 on the CPU: float32's normal sampler has an AVX2 variant whose last
        # bits differ from the plain one (ARM, old x86), float64's is the same code everywhere.
        z = torch.randn(n, self.latent_dim, dtype=torch.float64)
        return float64_on_cpu(VAE.decode)(self, z)

    @torch.no_grad()
    @float64_on_cpu
    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        """Decode the encoder mean of each image of ``x`` (on the model's device)."""
        check_images(x)
        return self.decode(self.encode(x.to(self.device))[0])

    @torch.no_grad()
    @float64_on_cpu
    def interpolate(self, x_a: torch.Tensor, x_b: torch.Tensor, steps: int = 10) -> torch.Tensor:
        """Decode ``steps`` points from mu(x_a) to mu(x_b), ends included: (B, steps, 1, 32, 32)."""
        check_images(x_a)
        check_images(x_b)
        if steps < 2:
            raise ValueError(f"steps must be at least 2 (both end points), got {steps}.")
        if x_a.shape != x_b.shape:
            raise ValueError(f"x_a {tuple(x_a.shape)} and x_b {tuple(x_b.shape)} must match.")
        mu_a, mu_b = (self.encode(x.to(self.device))[0] for x in (x_a, x_b))
        t = torch.linspace(0, 1, steps, device=mu_a.device, dtype=mu_a.dtype).view(1, steps, 1)
        z = (1 - t) * mu_a.unsqueeze(1) + t * mu_b.unsqueeze(1)
        return self.decode(z.flatten(0, 1)).unflatten(0, (x_a.shape[0], steps))

    @property
    def device(self) -> torch.device:
        """The device the parameters live on."""
        return next(self.parameters()).device


def check_images(x: torch.Tensor) -> None:
    """Raise a clear ValueError unless ``x`` is a finite float batch of shape (B, 1, 32, 32)."""
    if not isinstance(x, torch.Tensor) or x.dim() != 4 or tuple(x.shape[1:]) != IMAGE_SHAPE:
        shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise ValueError(
            f"expected images of shape (B, 1, 32, 32), got {shape}. Use helpers.data.load_mnist "
            "(it pads 28x28 to 32x32 and adds the channel), or x.view(-1, 1, 32, 32)."
        )
    if not x.is_floating_point():
        raise ValueError(f"expected float images in [-1, 1], got dtype {x.dtype}.")
    if not torch.isfinite(x).all():
        raise ValueError("the images contain NaN or infinite values; check the data pipeline.")


def reconstruction_loss(x_hat: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Squared error summed over pixels, one per image (the assignment's tip)."""
    return (x_hat - x).pow(2).flatten(1).sum(dim=1)  # a sum over pixels per image


def losses(model: VAE, x: torch.Tensor) -> torch.Tensor:
    """Batch means of [-ELBO, reconstruction, KL], one reparameterised z per image."""
    x_hat, mu, log_sigma, _ = model(x)
    recon = reconstruction_loss(x_hat, x).mean()  # a mean over the batch
    kl = gaussian_kl(mu, logvar(log_sigma)).mean()  # question 2's formula, sum over z
    return torch.stack([recon + kl, recon, kl])


def neg_elbo_nats(recon: float | torch.Tensor, kl: float | torch.Tensor,
                  pixels: int = P) -> float | torch.Tensor:
    """The -ELBO in nats under p(x|z) = N(x; mu(z), I), constants included, from the two terms.

    -log N(x; mu, I) = 1/2 ||x - mu||^2 + P/2 log(2 pi), so the value in nats is
    recon / 2 + P/2 log(2 pi) + KL, with P = 1024 pixels in [-1, 1] (a density, not a
    probability: it can be negative and is comparable only on this scaling).
    """
    return 0.5 * recon + 0.5 * pixels * math.log(2 * math.pi) + kl


def logvar(log_sigma: torch.Tensor) -> torch.Tensor:
    """log sigma^2 = 2 log sigma: question 2's formula is written in sigma^2."""
    return 2 * log_sigma


def layer_summary(net: nn.Sequential, width: int = 92) -> str:
    """``net``'s layers, one short phrase each (read off the modules themselves), wrapped and
    indented; ``a→b k×k/s`` is a (transposed) convolution with kernel k and stride s."""
    def phrase(m: nn.Module) -> str:
        if isinstance(m, nn.Conv2d | nn.ConvTranspose2d):
            kind = "convT" if isinstance(m, nn.ConvTranspose2d) else "conv"
            return (f"{kind} {m.in_channels}→{m.out_channels} {m.kernel_size[0]}×"
                    f"{m.kernel_size[1]}/{m.stride[0]}")
        if isinstance(m, nn.Linear):
            return f"linear {m.in_features}→{m.out_features}"
        if isinstance(m, nn.Unflatten):
            return "reshape " + "×".join(map(str, m.unflattened_size))
        return type(m).__name__
    lines = [""]
    for part in (phrase(m) for m in net):  # a layer's phrase is never split across lines
        if lines[-1] and len(lines[-1]) + len(part) + 5 > width:  # indent, ", " and ","
            lines.append("")
        lines[-1] += (", " if lines[-1] else "") + part
    return ",\n".join("  " + line for line in lines)


def parameter_count(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
