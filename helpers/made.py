"""Question 1: a small MADE (Germain et al., 2015) for binary vectors, built from explicit masks.

Degrees m(.): input d has degree d (1..n); each hidden unit gets a degree in 1..n-1 (a unit of
degree n could feed no output). A hidden unit may see a unit of the layer below only if
m(below) <= m(hidden); output d may see a hidden unit only if m(hidden) < d. So output d depends
on x_1..x_{d-1} alone, and the joint p(x) = prod_d p(x_d | x_<d) is a product of normalised
Bernoulli conditionals.
"""

from __future__ import annotations

import itertools

import torch
import torch.nn.functional as F
from torch import nn


def made_degrees(n: int, hidden: tuple[int, ...]) -> list[torch.Tensor]:
    """Degrees of the input and hidden layers; hidden degrees rise evenly through 1..n-1."""
    if n < 2:
        raise ValueError(f"MADE needs n >= 2 inputs, got {n}.")
    degrees = [torch.arange(1, n + 1)]
    # sorted, so that each mask is a staircase a reader can check at a glance
    degrees += [torch.arange(h) * (n - 1) // h + 1 for h in hidden]
    return degrees


def made_masks(degrees: list[torch.Tensor], n: int) -> list[torch.Tensor]:
    """Masks (out x in) for every layer: >= between hidden layers, strict > into the outputs."""
    masks = [(d_out[:, None] >= d_in[None, :]).float()
             for d_in, d_out in zip(degrees[:-1], degrees[1:], strict=True)]
    output_degrees = torch.arange(1, n + 1)
    masks.append((output_degrees[:, None] > degrees[-1][None, :]).float())
    return masks


class MaskedLinear(nn.Linear):
    """A linear layer whose weight is multiplied by a fixed 0/1 mask."""

    def __init__(self, mask: torch.Tensor) -> None:
        super().__init__(mask.shape[1], mask.shape[0])
        self.register_buffer("mask", mask)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x W_masked^T + b."""
        return F.linear(x, self.weight * self.mask, self.bias)


class MADE(nn.Module):
    """MADE over n binary inputs: output d is the logit of p(x_d = 1 | x_<d)."""

    def __init__(self, n: int = 4, hidden: tuple[int, ...] = (5, 5), seed: int = 0) -> None:
        super().__init__()
        self.n = n
        self.degrees = made_degrees(n, hidden)
        self.masks = made_masks(self.degrees, n)
        # ``seed`` decides the initial weights alone: the global stream is left as it was.
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            layers: list[nn.Module] = []
            for mask in self.masks[:-1]:
                layers += [MaskedLinear(mask), nn.ReLU()]
            layers.append(MaskedLinear(self.masks[-1]))
            self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits of the n conditionals, shape (B, n)."""
        return self.net(x)

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """log p(x) = sum_d log Bernoulli(x_d; sigmoid(logit_d(x_<d))), shape (B,)."""
        return -F.binary_cross_entropy_with_logits(self(x), x, reduction="none").sum(dim=1)


def all_binary_vectors(n: int) -> torch.Tensor:
    """All 2^n binary vectors of length n, shape (2^n, n)."""
    return torch.tensor(list(itertools.product([0.0, 1.0], repeat=n)))


def input_jacobian(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """d outputs / d inputs at one point x of shape (n,): an (n, n) matrix."""
    return torch.autograd.functional.jacobian(lambda v: model(v.unsqueeze(0)).squeeze(0), x)
