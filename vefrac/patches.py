"""A partition of unity of local Fourier-feature networks (finite-basis PINNs).

    f(x̂) = Σ_p w_p(x̂) f_p(ξ_p),    ∇f = Σ_p (∇w_p f_p + w_p ∇f_p),    ξ_p = (x̂ − c_p) / h

The patches are squares of side h on a regular grid over the domain's bounding box; each
overlaps its neighbours by a band of width `overlap`·h. The windows are products of 1-D windows
a_i(x) b_j(y), each 1-D family built from one smooth step H (quintic smoothstep, C²) as
a_i = H((x − l_i)/δ) − H((x − r_i)/δ): the sum telescopes to one at every point of the plane
(the first and last steps of a non-periodic axis are 1 and 0), so Σ w_p = 1 and Σ ∇w_p = 0
hold by construction, outside the box too. With overlap < 1/2 a point lies in at most two
windows per axis: it evaluates at most four local networks in 2-D, whatever the domain's size.

The local networks are one stack of `FourierMLP`-like networks, parameters (P, ...), evaluated
in one batched matmul chain: the (point, patch) pairs with a non-zero window are sorted by
patch into blocks of equal rows (each block one patch's, the last of a patch padded), and
every block is evaluated with its patch's weights, gathered: no Python loop over patches. Each local network sees its
own coordinates ξ ∈ [−½, ½]², so its Fourier scale is in units of the patch.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from .nets import column_scales


def smooth_step(t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """H(t): 0 for t ≤ −1, 1 for t ≥ 1, quintic in between, H(t) + H(−t) = 1. Returns H, dH/dt."""
    p = ((1 + t) / 2).clamp(0, 1)
    return p**3 * (10 - 15 * p + 6 * p * p), 15 * (p * (1 - p)) ** 2


@dataclass(frozen=True)
class PatchLayout:
    """The patch grid in non-dimensional coordinates x̂: `counts` (nx, ny) cells of `spacing`
    (Δx, Δy) from `origin`, windows rising over 2δ = overlap·side around every cell edge.
    Patch p = j·nx + i is cell (i, j), its support the cell grown by δ on every side."""

    origin: tuple[float, float]
    spacing: tuple[float, float]
    counts: tuple[int, int]
    overlap: float
    periodic: tuple[bool, bool] = (False, False)

    @classmethod
    def over(cls, lower: Sequence[float], upper: Sequence[float], *, side: float, overlap: float,
             periodic: Sequence[bool] = (False, False)) -> PatchLayout:
        """Patches of side at most `side` covering the box [lower, upper]: as many cells per axis
        as a spacing of side·(1 − overlap) needs (two at least on a periodic axis, so that no
        patch has to be periodic itself), stretched to tile the box exactly."""
        if not 0 < overlap < 0.5:
            raise ValueError(f"patch overlap {overlap}: need 0 < overlap < 0.5")
        counts = tuple(max(2 if p else 1, math.ceil((hi - lo) / (side * (1 - overlap)) - 1e-9))
                       for lo, hi, p in zip(lower, upper, periodic))
        spacing = tuple((hi - lo) / n for lo, hi, n in zip(lower, upper, counts))
        return cls(origin=tuple(lower), spacing=spacing, counts=counts, overlap=overlap, periodic=tuple(periodic))

    @property
    def size(self) -> int:
        return self.counts[0] * self.counts[1]

    @property
    def side(self) -> float:
        """The side h of a patch (the larger axis's): the unit of the local coordinates ξ."""
        return max(self.spacing) / (1 - self.overlap)

    def centres(self) -> torch.Tensor:
        """(P, 2) float64 patch centres, patch p = j·nx + i."""
        (nx, ny), (dx, dy) = self.counts, self.spacing
        cx = self.origin[0] + dx * (torch.arange(nx, dtype=torch.float64) + 0.5)
        cy = self.origin[1] + dy * (torch.arange(ny, dtype=torch.float64) + 0.5)
        return torch.stack([cx.repeat(ny), cy.repeat_interleave(nx)], dim=1)

    def _axis(self, x: torch.Tensor, axis: int):
        """The two cells of `axis` that may cover each x (N,): the own cell and the nearer
        neighbour. Returns cells (N, 2) long, offsets x − centre (N, 2), windows a (N, 2) and
        da/dx (N, 2); a is 0 where the neighbour does not exist."""
        n, dx, lo = self.counts[axis], self.spacing[axis], self.origin[axis]
        delta = self.overlap * dx / (2 * (1 - self.overlap))
        period = n * dx
        own = torch.floor((x - lo) / dx).long()
        own = own.remainder(n) if self.periodic[axis] else own.clamp(0, n - 1)
        d_own = self._offset(x, own, axis, period)
        step = torch.where(d_own >= 0, 1, -1)
        nb = own + step
        exists = torch.ones_like(nb, dtype=torch.bool) if self.periodic[axis] else (nb >= 0) & (nb < n)
        nb = nb.remainder(n) if self.periodic[axis] else nb.clamp(0, n - 1)
        cells = torch.stack([own, nb], dim=1)
        d = torch.stack([d_own, self._offset(x, nb, axis, period)], dim=1)
        rise, d_rise = smooth_step((d + dx / 2) / delta)
        fall, d_fall = smooth_step((d - dx / 2) / delta)
        if not self.periodic[axis]:  # the first cell has no rising edge, the last no falling one
            rise = torch.where(cells == 0, torch.ones_like(rise), rise)
            d_rise = torch.where(cells == 0, torch.zeros_like(d_rise), d_rise)
            fall = torch.where(cells == n - 1, torch.zeros_like(fall), fall)
            d_fall = torch.where(cells == n - 1, torch.zeros_like(d_fall), d_fall)
        keep = torch.stack([torch.ones_like(exists), exists], dim=1).to(x.dtype)
        return cells, d, (rise - fall) * keep, (d_rise - d_fall) / delta * keep

    def _offset(self, x: torch.Tensor, cell: torch.Tensor, axis: int, period: float) -> torch.Tensor:
        d = x - (self.origin[axis] + self.spacing[axis] * (cell.to(x.dtype) + 0.5))
        if self.periodic[axis]:  # the nearest image of the centre
            d = d - period * torch.round(d / period)
        return d

    def cover(self, x: torch.Tensor):
        """The (point, patch) pairs with a non-zero window. x: (N, 2) in x̂.
        Returns point (M,), patch (M,) long, w (M,), ∇w (M, 2), ξ (M, 2) local coordinates;
        M ≤ 4N, and Σ over a point's pairs of w is 1, of ∇w is 0."""
        cx, dx, ax, gx = self._axis(x[:, 0], 0)
        cy, dy, ay, gy = self._axis(x[:, 1], 1)
        # the 2 × 2 products, pair k = 2·(y choice) + (x choice): (N, 4)
        patch = (cy[:, :, None] * self.counts[0] + cx[:, None, :]).reshape(-1, 4)
        w = (ay[:, :, None] * ax[:, None, :]).reshape(-1, 4)
        grad = torch.stack([(ay[:, :, None] * gx[:, None, :]).reshape(-1, 4),
                            (gy[:, :, None] * ax[:, None, :]).reshape(-1, 4)], dim=-1)
        xi = torch.stack([dx[:, None, :].expand(-1, 2, -1).reshape(-1, 4),
                          dy[:, :, None].expand(-1, -1, 2).reshape(-1, 4)], dim=-1) / self.side
        keep = (w > 0).reshape(-1).nonzero().squeeze(1)
        point = torch.arange(x.shape[0], device=x.device).repeat_interleave(4)[keep]
        return point, patch.reshape(-1)[keep], w.reshape(-1)[keep], grad.reshape(-1, 2)[keep], xi.reshape(-1, 2)[keep]


def block_rows(pairs: int, patches: int) -> int:
    """Rows per block: an eighth of the mean pairs per patch, rounded up to a multiple of 32, so
    padding (< one block per patch) stays a small share of the work and the weights gathered
    per block stay cheap beside the block's matmuls."""
    return 32 * max(1, math.ceil(pairs / (8 * patches * 32)))


def _glorot(shape: tuple[int, ...], generator: torch.Generator) -> torch.Tensor:
    fan_out, fan_in = shape[-2:]
    return torch.randn(shape, generator=generator, dtype=torch.float64) * math.sqrt(2.0 / (fan_in + fan_out))


class PatchNet(nn.Module):
    """Σ_p w_p f_p with one tanh Fourier-feature MLP f_p per patch of `layout`.

    forward(x̂ (N, 2), extra (N, E) or None) -> value (N, out), grad (N, out, 2), as FourierMLP.
    `scale`: σ of the local frequencies in units of 1/h (one number, or one per feature group,
    see nets.column_scales). Each patch draws its own B and weights from `generator`.
    """

    def __init__(self, layout: PatchLayout, *, out: int, features: int, scale: float | Sequence[float],
                 hidden_layers: int, width: int, generator: torch.Generator, extra: int = 0):
        super().__init__()
        self.layout = layout
        p = layout.size
        B = torch.randn((p, 2, features), generator=generator, dtype=torch.float64) * column_scales(scale, features)
        self.register_buffer("two_pi_B", 2 * math.pi * B)
        self.first = nn.Parameter(_glorot((p, width, 2 * features), generator))
        self.first_bias = nn.Parameter(torch.zeros(p, width, dtype=torch.float64))
        self.extra = nn.Parameter(_glorot((p, width, extra), generator)) if extra else None
        self.hidden = nn.ParameterList([nn.Parameter(_glorot((p, width, width), generator))
                                        for _ in range(hidden_layers - 1)])
        self.hidden_bias = nn.ParameterList([nn.Parameter(torch.zeros(p, width, dtype=torch.float64))
                                             for _ in range(hidden_layers - 1)])
        self.last = nn.Parameter(_glorot((p, out, width), generator))
        self.last_bias = nn.Parameter(torch.zeros(p, out, dtype=torch.float64))

    def forward(self, x: torch.Tensor, extra: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        point, patch, w, grad_w, xi = self.layout.cover(x)
        block = block_rows(patch.numel(), self.layout.size)
        slots, owner = blocks_by_patch(patch, self.layout.size, rows=block)
        rows = owner.shape[0] * block
        xs = x.new_zeros((rows, 2)).index_copy(0, slots, xi).view(-1, block, 2)
        es = None
        if self.extra is not None:
            es = extra.new_zeros((rows, extra.shape[1])).index_copy(0, slots, extra[point])
            es = es.view(-1, block, extra.shape[1])
        value, grad = self.local(xs, es, owner)  # (B, rows, out), (B, rows, out, 2) in ξ
        out = value.shape[-1]
        value = value.reshape(rows, out)[slots]
        grad = grad.reshape(rows, out, 2)[slots] / self.layout.side
        n = x.shape[0]
        f = x.new_zeros((n, out)).index_add(0, point, w[:, None] * value)
        df = x.new_zeros((n, out, 2)).index_add(0, point, grad_w[:, None, :] * value[:, :, None]
                                                 + w[:, None, None] * grad)
        return f, df

    def local(self, xi: torch.Tensor, extra: torch.Tensor | None,
              owner: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Blocks of points, each block evaluated by the network of its patch. xi: (B, C, 2) local
        coordinates, extra: (B, C, E) or None, owner: (B,) the patch of each block.
        Returns value (B, C, out), grad (B, C, out, 2) with respect to ξ (forward mode, as
        nets.FourierMLP: value and both derivatives travel as one stack through each matmul)."""
        z = xi @ self.two_pi_B[owner]  # (B, C, m)
        feats = torch.cat([torch.cos(z), torch.sin(z)], dim=-1)
        m = z.shape[-1]
        w_cos, w_sin = self.first[..., :m], self.first[..., m:]
        bx, by = self.two_pi_B[:, None, 0], self.two_pi_B[:, None, 1]  # (P, 1, m)
        # per patch, then gathered per block: built once per patch, not once per block
        stacked = torch.cat([self.first,
                             torch.cat([w_sin * bx, -w_cos * bx], dim=-1),
                             torch.cat([w_sin * by, -w_cos * by], dim=-1)], dim=1)[owner]  # (B, 3w, 2m)
        b, c, width = xi.shape[0], xi.shape[1], self.first.shape[1]
        a = (feats @ stacked.mT).view(b, c, 3, width).permute(2, 0, 1, 3)  # (3, B, C, w)
        pre = a[0] + self.first_bias[owner][:, None]
        if self.extra is not None:
            pre = pre + extra @ self.extra[owner].mT
        h = torch.tanh(pre)
        d = (1 - h * h) * a[1:]  # (2, B, C, w)
        for weight, bias in zip(self.hidden, self.hidden_bias):
            weight = weight[owner]
            h = torch.tanh(h @ weight.mT + bias[owner][:, None])
            d = (1 - h * h) * (d @ weight.mT)
        value = h @ self.last[owner].mT + self.last_bias[owner][:, None]
        grad = (d @ self.last[owner].mT).permute(1, 2, 3, 0)  # (B, C, out, 2)
        return value, grad

    def output_parameters(self) -> list[nn.Parameter]:
        """Every patch's last layer and bias (what reset_output sets)."""
        return [self.last, self.last_bias]

    @torch.no_grad()
    def reset_output(self, bias: float) -> None:
        """Zero every patch's last layer and set its bias: since the windows sum to one, the
        whole field starts from that constant."""
        self.last.zero_()
        self.last_bias.fill_(bias)


def blocks_by_patch(patch: torch.Tensor, size: int, *, rows: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Blocks of `rows` slots for the pairs of `patch` (M,) (values in [0, size)): each patch's
    pairs fill ceil(count/rows) blocks of their own, so padding costs < rows per patch however
    unevenly the points fall (importance sampling, a line of points). Returns slots (M,) long,
    pair k at row slots[k] of the (B·rows) block rows, and owner (B,) long, each block's patch."""
    counts = torch.bincount(patch, minlength=size)
    blocks = (counts + rows - 1) // rows
    owner = torch.repeat_interleave(torch.arange(size, device=patch.device), blocks)
    order = torch.argsort(patch, stable=True)
    starts = torch.cumsum(counts, 0) - counts
    rank = torch.empty_like(order)
    rank[order] = torch.arange(patch.numel(), device=patch.device) - starts[patch[order]]
    first_block = torch.cumsum(blocks, 0) - blocks
    return (first_block[patch] + rank // rows) * rows + rank % rows, owner
