"""The previous load step's φ as a grid function that never lies below it: an upper envelope.

Load stepping carries φ_{k−1} from one step to the next on a grid (spacing about s/3) and
interpolates it bilinearly; step k's φ is φ_{k−1} + (1 − φ_{k−1}) σ(z_k), never below the
interpolant. Sampling φ_k at the nodes alone is not enough: the interpolant of the nodal values
cuts the cusp of each crack band, so step k + 1 would start from less damage than step k had
there (measured on square-mud: up to 0.0097 at 0.1–1.3 % of the export grid's points).

`upper_envelope` raises the nodal values just enough that the interpolant is at least φ_k at
every check point (the nodes, a sub-grid of every cell, and the export grid): each node goes up
by the largest deficit over the check points of the cells around it. Since every check point
lies in a cell around each of its four nodes, and the bilinear weights are ≥ 0 and sum to one,
the interpolant at a check point rises by at least that point's deficit. The raise is measured
against φ_k, not against the previous cache, so it does not accumulate from step to step: where
no new damage grows, φ_{k+1} is the previous interpolant itself, which has no deficit.

What holds exactly (in the arithmetic the model itself uses, tests/test_phi_cache.py):
- at every check point, the cache's interpolant ≥ φ_k, so φ_{k+1} ≥ φ_k there, the exported
  snapshots included;
- at every point, the nodal values only grow from step to step (a node is a check point), so the
  interpolants (the committed lower bounds) are non-decreasing everywhere.
"""

from __future__ import annotations

import contextlib
import math
from typing import TYPE_CHECKING, Callable

import numpy as np
import torch

from .fields import bilinear
from .geometry import Grid

if TYPE_CHECKING:
    from .pinn_model import FieldModel
    from .problem import Problem

SUBDIVISIONS = 2  # check points per cell side beyond the nodes: a sub-grid of spacing s/6
MAX_PASSES = 4  # deficit passes before the fallback that lifts a cell's nodes to the point's φ


def sub_grid_points(grid: Grid, subdivisions: int, *, dtype: torch.dtype = torch.float64,
                    device: torch.device | str = "cpu") -> torch.Tensor:
    """(M, 2) points of the grid refined `subdivisions` times per cell side, x fastest. Every
    `subdivisions`-th point along each axis is a node of the grid, with exactly the coordinates
    Grid.points() gives it (origin + spacing·(k·i)/k = origin + spacing·i in binary floating point
    when k is a power of two; tests/test_phi_cache.py checks it)."""
    ny, nx = grid.shape
    xs = grid.origin[0] + grid.spacing[0] * torch.arange((nx - 1) * subdivisions + 1, dtype=torch.float64) / subdivisions
    ys = grid.origin[1] + grid.spacing[1] * torch.arange((ny - 1) * subdivisions + 1, dtype=torch.float64) / subdivisions
    yy, xx = torch.meshgrid(ys, xs, indexing="ij")
    return torch.stack([xx.ravel(), yy.ravel()], 1).to(device=device, dtype=dtype)


def cell_of(points: torch.Tensor, grid: Grid) -> torch.Tensor:
    """(M,) flat index j·nx + i of the lower-left node of the cell each point falls in, as `bilinear` picks it."""
    ny, nx = grid.shape
    fx = ((points[:, 0] - grid.origin[0]) / grid.spacing[0]).clamp(0, nx - 1)
    fy = ((points[:, 1] - grid.origin[1]) / grid.spacing[1]).clamp(0, ny - 1)
    i0 = fx.floor().long().clamp(max=nx - 2)
    j0 = fy.floor().long().clamp(max=ny - 2)
    return j0 * nx + i0


def cells_touching(points: torch.Tensor, grid: Grid, *, tolerance: float = 1e-6) -> torch.Tensor:
    """(4, M) the cells each point lies in, a point on (or within `tolerance` cells of) a cell's
    edge counted in the cells on both sides: which of them `bilinear` picks for such a point
    depends on rounding (and so on the units the scenario is written in), and the deficit must
    be lifted in whichever it is."""
    nudges = [(sx * tolerance * grid.spacing[0], sy * tolerance * grid.spacing[1]) for sx in (-1, 1) for sy in (-1, 1)]
    return torch.stack([cell_of(points + points.new_tensor(d), grid) for d in nudges])


def raise_nodes(nodal: torch.Tensor, cells: torch.Tensor, deficit: torch.Tensor, grid: Grid) -> torch.Tensor:
    """Each node raised by the largest deficit over the check points of its (up to four) cells.

    nodal: (ny, nx); cells: (M,) lower-left node of each point's cell, or (K, M) several cells per
    point (cells_touching); deficit: (M,) ≥ 0. Returns (ny, nx), capped at 1."""
    ny, nx = grid.shape
    per_cell = torch.zeros(ny * nx, dtype=deficit.dtype, device=deficit.device)
    for row in cells.reshape(-1, deficit.shape[0]):
        per_cell.scatter_reduce_(0, row, deficit, reduce="amax")
    per_cell = per_cell.reshape(ny, nx)[:-1, :-1]  # cell (j, i) keyed by its lower-left node
    lift = torch.zeros_like(nodal)
    for dj in (0, 1):  # the cell's four corners
        for di in (0, 1):
            corner = lift[dj:dj + ny - 1, di:di + nx - 1]
            torch.maximum(corner, per_cell, out=corner)
    return (nodal + lift).clamp(max=1.0)


def upper_envelope(nodal: torch.Tensor, check: torch.Tensor, values: torch.Tensor, grid: Grid, *,
                   interpolate: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]) -> tuple[torch.Tensor, dict]:
    """Nodal values whose interpolant is ≥ `values` at every check point.

    nodal: (ny, nx) φ_k at the grid's nodes; check: (M, 2) points; values: (M,) φ_k there, ≤ 1.
    interpolate(nodal, points) -> (M,): the interpolation the model itself evaluates (so the
    comparison is exact in its arithmetic, rounding included).
    Returns the raised nodal values (ny, nx) and a record: the largest deficit before, the share
    of nodes raised by more than 1e-6 and the passes taken.
    """
    cells = cells_touching(check, grid)
    out = nodal.clone()
    first = None
    passes = 0
    for passes in range(1, MAX_PASSES + 1):
        deficit = (values - interpolate(out, check)).clamp_min(0)
        if first is None:
            first = float(deficit.max()) if deficit.numel() else 0.0
        if not bool((deficit > 0).any()):
            break
        # a deficit of a few ulps left by rounding: lift by a little more than it
        margin = torch.where(deficit > 0, deficit * 1e-3 + 4 * torch.finfo(out.dtype).eps * values, 0.0)
        out = raise_nodes(out, cells, deficit + margin, grid)
    else:  # rare (nodes capped at 1 next to a point below 1): lift the cell's nodes to the point's φ
        short = values > interpolate(out, check)
        ny, nx = grid.shape
        flat = out.reshape(-1)
        for row in cells:
            for offset in (0, 1, nx, nx + 1):
                flat.scatter_reduce_(0, row[short] + offset, values[short], reduce="amax")
    raised = float((out > nodal + 1e-6).double().mean())  # rounding-level lifts not counted
    return out, {"largest_deficit": first, "nodes_raised": raised, "passes": passes}


def model_interpolation(grid: Grid) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """`interpolate` for `upper_envelope`: the cache's bilinear interpolation, as FieldModel does it."""
    return lambda nodal, x: bilinear(nodal, x, origin=grid.origin, spacing=grid.spacing)


# ----------------------------------------------------------------------------- the model's cache


def evaluation_chunk(device) -> int:
    """Points per chunk when a grid is evaluated without gradients. On a CPU small enough that
    each layer's (3, N, width) stack stays off freshly mapped pages: at 65536 half the time went
    to page faults, and 4096 evaluates twice as fast (measured on the 2-core CPU). On a GPU,
    large: fewer kernel launches."""
    return 65536 if torch.device(device).type == "cuda" else 4096


@torch.no_grad()
def phase_field_at(model: "FieldModel", points: np.ndarray, t: float, *, device, dtype,
                   chunk: int | None = None) -> torch.Tensor:
    """(M, 3) φ, ∂φ/∂x, ∂φ/∂y of the model at points (M, 2) at time t, in chunks, on `device`."""
    out = []
    chunk = chunk or evaluation_chunk(device)
    for start in range(0, points.shape[0], chunk):
        x = torch.as_tensor(points[start:start + chunk], device=device, dtype=dtype)
        if t == 0.0:  # the unloaded state is exactly φ = 0
            out.append(x.new_zeros((x.shape[0], 3)))
            continue
        phi, grad_phi = model.phase_field(x, x.new_full((x.shape[0],), t))
        out.append(torch.cat([phi[:, None], grad_phi], 1))
    return torch.cat(out)


@contextlib.contextmanager
def committed_state(model: "FieldModel"):
    """Inside, the model's φ is the state the last `refresh_cache` committed (the cache's
    interpolant, without the current φ-net's increment). Snapshots taken after refresh_cache
    read this: the interpolants only grow with the nodal values, so the exported φ never
    decreases at any point, and the envelope makes it at least the step's φ at the export grid."""
    before = model.committed_only
    model.committed_only = model.cache is not None and not model.space_time
    try:
        yield model
    finally:
        model.committed_only = before


@torch.no_grad()
def refresh_cache(problem: "Problem", model: "FieldModel", t: float, *, points_per_length: float, device,
                  dtype, check: Grid | None = None) -> dict | None:
    """Store the current φ and ∇φ on the cache grid: the next step's lower bound.

    The nodal φ is raised to an upper envelope (upper_envelope) of the current φ over a
    sub-grid of every cell and, when given, the points of `check` (the export grid): there the
    next step's φ is never below this one's. Returns the envelope's record (None without fracture)."""
    if not model.fracture:
        return None
    if model.cache_grid is None:
        res = int(math.ceil(problem.domain.length * points_per_length / problem.physics.s)) + 1
        model.cache_grid = problem.domain.grid(max(res, 16))
    grid = model.cache_grid
    ny, nx = grid.shape
    sub = SUBDIVISIONS
    # φ of this step where the envelope must hold (a sub-grid of every cell, whose every sub-th
    # point is a node: the nodes' φ and ∇φ are the cache), by the model's own arithmetic; the
    # u-net, which the envelope does not need, is not evaluated
    points = [sub_grid_points(grid, sub, dtype=torch.float64).numpy()]
    if check is not None:
        points.append(check.points())
    fields = [phase_field_at(model, p, t, device=device, dtype=dtype) for p in points]
    cache = fields[0].reshape((ny - 1) * sub + 1, (nx - 1) * sub + 1, 3)[::sub, ::sub].contiguous()
    phi = torch.cat([f[:, 0] for f in fields])
    x = torch.cat([torch.as_tensor(p, device=device, dtype=dtype) for p in points])
    raised, record = upper_envelope(cache[..., 0], x, phi, grid,
                                              interpolate=model_interpolation(grid))
    cache[..., 0] = raised
    model.cache = cache
    return record
