"""Random-Fourier-feature networks that return their value and first spatial derivatives.

The derivatives are carried forward analytically, layer by layer (no double backward):
the Fourier matrix is folded into the first layer, and value, ∂/∂x and ∂/∂y travel together
as one (3, N, width) stack through each matmul. Inputs are non-dimensional coordinates
x̂ = (x − centre) / L; derivatives are with respect to x̂.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn


def _glorot(shape: tuple[int, int], generator: torch.Generator) -> torch.Tensor:
    fan_out, fan_in = shape
    return torch.randn(shape, generator=generator, dtype=torch.float64) * math.sqrt(2.0 / (fan_in + fan_out))


def column_scales(scale: float | Sequence[float], features: int) -> float | torch.Tensor:
    """σ per column of B: `scale` itself when it is one number, else (features,) float64 with
    the scales repeated over K contiguous groups of near-equal size (a first few one larger)."""
    if isinstance(scale, (int, float)):
        return scale
    k = len(scale)
    if not 1 <= k <= features:
        raise ValueError(f"{k} Fourier scales for {features} features: need 1 to {features}")
    sizes = [features // k + (i < features % k) for i in range(k)]
    return torch.repeat_interleave(torch.tensor(list(scale), dtype=torch.float64), torch.tensor(sizes))


class FourierMLP(nn.Module):
    """γ(x̂) = [cos 2πBx̂, sin 2πBx̂], B ~ N(0, scale²), then a tanh MLP.

    forward(x̂ (N, 2), extra (N, E) or None) -> value (N, out), grad (N, out, 2).
    `scale`: σ, or a sequence (σ_1, ..., σ_K) for multi-scale features: the `features`
    columns of B (2, features) are split into K contiguous groups of near-equal size (the
    first features mod K groups one column larger), group k drawn from N(0, σ_k²).
    `extra` inputs (time, say) enter the first layer linearly; no derivative is taken in them.
    `periods`: per axis, None or the period in x̂: frequencies are rounded to its multiples, so
    the network is periodic along that axis by construction.
    """

    def __init__(self, *, out: int, features: int, scale: float | Sequence[float], hidden_layers: int,
                 width: int, generator: torch.Generator, extra: int = 0,
                 periods: tuple[float | None, float | None] = (None, None)):
        super().__init__()
        B = torch.randn((2, features), generator=generator, dtype=torch.float64) * column_scales(scale, features)
        for axis, period in enumerate(periods):
            if period:
                B[axis] = torch.round(B[axis] * period) / period
        self.register_buffer("two_pi_B", 2 * math.pi * B)
        self.first = nn.Parameter(_glorot((width, 2 * features), generator))
        self.first_bias = nn.Parameter(torch.zeros(width, dtype=torch.float64))
        self.extra = nn.Parameter(_glorot((width, extra), generator)) if extra else None
        self.hidden = nn.ParameterList([nn.Parameter(_glorot((width, width), generator))
                                        for _ in range(hidden_layers - 1)])
        self.hidden_bias = nn.ParameterList([nn.Parameter(torch.zeros(width, dtype=torch.float64))
                                             for _ in range(hidden_layers - 1)])
        self.last = nn.Parameter(_glorot((out, width), generator))
        self.last_bias = nn.Parameter(torch.zeros(out, dtype=torch.float64))

    def forward(self, x: torch.Tensor, extra: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        z = x @ self.two_pi_B  # (N, m)
        feats = torch.cat([torch.cos(z), torch.sin(z)], dim=1)  # (N, 2m)
        m = z.shape[1]
        w_cos, w_sin = self.first[:, :m], self.first[:, m:]
        bx, by = self.two_pi_B[0], self.two_pi_B[1]
        # ∂/∂x_j (Wc cos z + Ws sin z) = [cos z, sin z] · [Ws 2πB_j ; −Wc 2πB_j]
        stacked = torch.cat([self.first,
                             torch.cat([w_sin * bx, -w_cos * bx], dim=1),
                             torch.cat([w_sin * by, -w_cos * by], dim=1)], dim=0)  # (3w, 2m)
        width = self.first.shape[0]
        a = (feats @ stacked.T).reshape(-1, 3, width).transpose(0, 1)  # (3, N, w)
        pre = a[0] + self.first_bias
        if self.extra is not None:
            pre = pre + extra @ self.extra.T
        h = torch.tanh(pre)
        d = (1 - h * h) * a[1:]  # (2, N, w)
        for weight, bias in zip(self.hidden, self.hidden_bias):
            h = torch.tanh(h @ weight.T + bias)
            d = (1 - h * h) * (d @ weight.T)
        value = h @ self.last.T + self.last_bias
        grad = (d @ self.last.T).permute(1, 2, 0)  # (N, out, 2)
        return value, grad

    def value(self, x: torch.Tensor, extra: torch.Tensor | None = None) -> torch.Tensor:
        """The value alone, (N, out): forward's first output without its derivatives, a third of
        the matmuls (for fields whose gradient nobody needs, such as the inverse mode's log G)."""
        z = x @ self.two_pi_B
        h = torch.cat([torch.cos(z), torch.sin(z)], dim=1) @ self.first.T + self.first_bias
        if self.extra is not None:
            h = h + extra @ self.extra.T
        h = torch.tanh(h)
        for weight, bias in zip(self.hidden, self.hidden_bias):
            h = torch.tanh(h @ weight.T + bias)
        return h @ self.last.T + self.last_bias

    def output_parameters(self) -> list[nn.Parameter]:
        """The last layer's weights and bias (what reset_output sets)."""
        return [self.last, self.last_bias]

    @torch.no_grad()
    def reset_output(self, bias: float) -> None:
        """Zero the last layer and set its bias: the network starts from a known constant."""
        self.last.zero_()
        self.last_bias.fill_(bias)


def incremental_phase_field(phi_prev: torch.Tensor, grad_prev: torch.Tensor, z: torch.Tensor,
                            grad_z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """φ = φ_prev + (1 − φ_prev) σ(z): in [0, 1] and never below φ_prev, by construction.

    phi_prev, z: (N,); grad_prev, grad_z: (N, 2). Returns φ (N,), ∇φ (N, 2).
    """
    sig = torch.sigmoid(z)
    phi = phi_prev + (1 - phi_prev) * sig
    grad = (1 - sig)[:, None] * grad_prev + ((1 - phi_prev) * sig * (1 - sig))[:, None] * grad_z
    return phi, grad


def space_time_phase_field(a: torch.Tensor, grad_a: torch.Tensor, t: torch.Tensor, *, knots: torch.Tensor,
                           width: float) -> tuple[torch.Tensor, torch.Tensor]:
    """φ(x, t) = 1 − exp(−Σ_k softplus(a_k(x)) H((t − τ_k)/w)), H a smooth step (sigmoid).

    Every term is ≥ 0 and non-decreasing in t, so φ ∈ [0, 1) and never decreases in time.
    a: (N, K) knot amplitudes, grad_a: (N, K, 2), t: (N,) non-dimensional time in [0, 1],
    knots: (K,). Returns φ (N,), ∇φ (N, 2).
    """
    step = torch.sigmoid((t[:, None] - knots) / width)  # (N, K)
    damage = (nn.functional.softplus(a) * step).sum(-1)
    grad_damage = (torch.sigmoid(a) * step)[:, :, None].mul(grad_a).sum(1)
    survive = torch.exp(-damage)
    return 1 - survive, survive[:, None] * grad_damage
