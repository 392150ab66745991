"""Question 3: a composition of three invertible maps of R^2 with known log-determinants.

Each map has a closed-form inverse and log|det Jacobian|, so the pushforward density
log q_t(z_t) = log q_0(z_0) - sum_s log|det dg_s/dz_{s-1}| can be checked against autograd
Jacobians and by integrating q_t over a grid.
"""

from __future__ import annotations

import math

import torch


class Affine:
    """g(z) = A z + b with det A > 0."""

    def __init__(self, A: torch.Tensor, b: torch.Tensor) -> None:
        self.A, self.b = A, b

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """A z + b, row-wise."""
        return z @ self.A.T + self.b

    def inverse(self, y: torch.Tensor) -> torch.Tensor:
        """A^{-1} (y - b)."""
        return torch.linalg.solve(self.A, (y - self.b).T).T

    def log_det(self, z: torch.Tensor) -> torch.Tensor:
        """log|det A|, the same at every z."""
        return torch.linalg.slogdet(self.A)[1].expand(z.shape[0])


class Coupling:
    """Affine coupling: keep z[keep]; z[move] -> z[move] * exp(s(z[keep])) + t(z[keep])."""

    def __init__(self, keep: int, scale: float, shift: float) -> None:
        self.keep, self.move = keep, 1 - keep
        self.scale, self.shift = scale, shift

    def _s_t(self, u: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Log-scale s(u) = scale * tanh(u) and shift t(u) = shift * u^2 (a banana bend)."""
        return self.scale * torch.tanh(u), self.shift * u.pow(2)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """Apply the coupling."""
        s, t = self._s_t(z[:, self.keep])
        out = z.clone()
        out[:, self.move] = z[:, self.move] * s.exp() + t
        return out

    def inverse(self, y: torch.Tensor) -> torch.Tensor:
        """Undo the coupling: z[move] = (y[move] - t) * exp(-s)."""
        s, t = self._s_t(y[:, self.keep])
        out = y.clone()
        out[:, self.move] = (y[:, self.move] - t) * (-s).exp()
        return out

    def log_det(self, z: torch.Tensor) -> torch.Tensor:
        """The Jacobian is triangular with diagonal (1, exp(s)): log det = s."""
        return self._s_t(z[:, self.keep])[0]


def example_flow() -> list:
    """Three invertible maps g_1, g_2, g_3 used in the notebook and tests."""
    A = torch.tensor([[0.9, 0.4], [-0.3, 0.7]], dtype=torch.float64)
    b = torch.tensor([0.5, -0.2], dtype=torch.float64)
    return [Affine(A, b), Coupling(keep=0, scale=0.5, shift=0.2),
            Coupling(keep=1, scale=-0.3, shift=0.15)]


def standard_normal_log_prob(z: torch.Tensor) -> torch.Tensor:
    """log q_0(z) for q_0 = N(0, I) in 2-D."""
    return -0.5 * z.pow(2).sum(dim=1) - math.log(2 * math.pi)


def push_forward(flow: list, z0: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """z_t and log q_t(z_t) by the formula: log q_0(z_0) - sum_s log det."""
    z, log_q = z0, standard_normal_log_prob(z0)
    for g in flow:
        log_q = log_q - g.log_det(z)
        z = g.forward(z)
    return z, log_q


def log_density(flow: list, z_t: torch.Tensor) -> torch.Tensor:
    """log q_t at arbitrary points z_t: invert the flow, then apply the formula."""
    z0 = z_t
    for g in reversed(flow):
        z0 = g.inverse(z0)
    return push_forward(flow, z0)[1]


def closed_form_log_dets(flow: list, z0: torch.Tensor) -> torch.Tensor:
    """Each map's log|det| from its closed form at each point, shape (N, len(flow))."""
    dets, z = [], z0
    for g in flow:
        dets.append(g.log_det(z))
        z = g.forward(z)
    return torch.stack(dets, dim=1)


def autograd_log_dets(flow: list, z0: torch.Tensor) -> torch.Tensor:
    """log|det| of each map's Jacobian from autograd at each point, shape (N, len(flow))."""
    rows = []
    for point in z0:
        z, dets = point, []
        for g in flow:
            J = torch.autograd.functional.jacobian(lambda v, g=g: g.forward(v[None])[0], z)
            dets.append(torch.linalg.slogdet(J)[1])
            z = g.forward(z[None])[0]
        rows.append(torch.stack(dets))
    return torch.stack(rows)


def grid_mass(flow: list, limit: float = 8.0, n: int = 400, above: float = 0.0) -> float:
    """Riemann sum of q_t over the square [-limit, limit]^2 with n x n cells, counting only
    where q_t > ``above`` (0: all of it; a contour level: the mass inside that contour)."""
    centres = torch.linspace(-limit, limit, n + 1, dtype=torch.float64)
    centres = (centres[1:] + centres[:-1]) / 2
    gx, gy = torch.meshgrid(centres, centres, indexing="xy")
    pts = torch.stack([gx.flatten(), gy.flatten()], dim=1)
    cell = (2 * limit / n) ** 2
    q_t = log_density(flow, pts).exp()
    return float(q_t[q_t > above].sum() * cell)
