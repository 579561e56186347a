"""The shrinkage section of a scenario: how the layer dries in time and space (no torch here).

    εs(x, t) = f(t − τ(x)) · (I + a (n⊗n − I/2)),   n = (cos θ, sin θ)

- f(t), the history of a point that has been drying since t = 0, one of
  - `rate` (default): f = rate · t, today's schedule, bit for bit;
  - `history`: piecewise linear through given (t, εs) points, constant after the last one;
  - `cycles`: `count` wet–dry cycles over [0, t_end], each rising linearly to `peak` and falling
    back to `trough`.
- τ(x), the local drying time (`front`): a drying front enters from an edge of the bounding box
  (left, right, bottom, top) or from the whole rim of the domain and moves at `speed`;
  τ = d(x)/speed with d the distance to that edge (rim: to the domain's boundary). A point starts
  its history when the front reaches it, so behind the front εs grows with the distance to the
  front (a shrinkage gradient of slope f'/speed) and ahead of it the layer is still wet (εs = 0).
  Without a front τ = 0.
- a, θ (`anisotropy`): an oriented paste shrinks more along n than across it (principal values
  f·(1 + a/2) along n, f·(1 − a/2) across; the trace, 2f, is the isotropic one's).
- `healing` (wet–dry cycles): when f falls to `threshold` after having risen above it, the layer
  is rewetted: its cracks close and re-bond, and the next drying phase starts from φ = 0 with
  G ← G · (1 − (1 − fraction) · φ) (see vefrac/cycles.py).
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

PositiveFloat = Annotated[float, Field(gt=0)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False, frozen=True)


class History(_Strict):
    """f(t) piecewise linear through (times[i], strains[i]); times start at 0 with strain 0."""

    times: Annotated[list[Annotated[float, Field(ge=0)]], Field(min_length=2)]
    strains: Annotated[list[Annotated[float, Field(ge=0)]], Field(min_length=2)]

    @field_validator("times")
    @classmethod
    def _increasing(cls, v: list[float]) -> list[float]:
        if v[0] != 0:
            raise ValueError(f"times must start at 0, the unloaded state (got {v[0]})")
        bad = [i for i in range(1, len(v)) if v[i] <= v[i - 1]]
        if bad:
            raise ValueError(f"times must increase strictly (times[{bad[0]}] = {v[bad[0]]} is not after "
                             f"times[{bad[0] - 1}] = {v[bad[0] - 1]})")
        return v

    @field_validator("strains")
    @classmethod
    def _same_length(cls, v: list[float], info) -> list[float]:
        times = info.data.get("times")
        if times is not None and len(times) != len(v):
            raise ValueError(f"one strain per time: {len(times)} times, {len(v)} strains")
        if v[0] != 0:
            raise ValueError(f"strains must start at 0 at t = 0, the unloaded state (got {v[0]})")
        return v


class Cycles(_Strict):
    """`count` cycles over [0, t_end]: a drying phase (the first `dry_fraction` of each) rising
    linearly to `peak`, then a wetting phase falling linearly to `trough`."""

    count: Annotated[int, Field(ge=1, le=1000)]
    peak: PositiveFloat
    trough: Annotated[float, Field(ge=0)] = 0.0
    dry_fraction: Annotated[float, Field(gt=0, lt=1)] = 0.5

    @field_validator("trough")
    @classmethod
    def _below_peak(cls, v: float, info) -> float:
        peak = info.data.get("peak")
        if peak is not None and v >= peak:
            raise ValueError(f"trough must be below peak = {peak} (got {v})")
        return v


class Front(_Strict):
    """A drying front entering from `edge` at `speed`: local drying time τ(x) = d(x)/speed."""

    edge: Literal["left", "right", "bottom", "top", "rim"]
    speed: PositiveFloat


class Anisotropy(_Strict):
    """Shrinkage tensor f·(I + amplitude (n⊗n − I/2)), n at `angle` degrees from the x axis."""

    amplitude: Annotated[float, Field(ge=-2, le=2)]
    angle: Annotated[float, Field(ge=-360, le=360)] = 0.0


class Healing(_Strict):
    """Rewetting: when f(t) falls to `threshold`, cracks close; the next drying phase starts from
    φ = 0 and G ← G (1 − (1 − fraction) φ)."""

    fraction: Annotated[float, Field(ge=0, le=1)] = 0.5
    threshold: Annotated[float, Field(ge=0)] = 0.0


class Shrinkage(_Strict):
    rate: PositiveFloat = 1.0
    t_end: PositiveFloat = 0.1
    history: History | None = None
    cycles: Cycles | None = None
    front: Front | None = None
    anisotropy: Anisotropy | None = None
    healing: Healing | None = None

    @model_validator(mode="before")
    @classmethod
    def _t_end_of_history(cls, data):
        """A tabulated history without t_end runs to its last time."""
        if isinstance(data, dict) and "t_end" not in data and isinstance(data.get("history"), dict):
            times = data["history"].get("times")
            if isinstance(times, list) and times and isinstance(times[-1], (int, float)) and times[-1] > 0:
                data = {**data, "t_end": float(times[-1])}
        return data

    @model_validator(mode="after")
    def _one_history(self) -> "Shrinkage":
        # a resolved config.yaml holds the default rate beside a history: only another rate conflicts
        given = [k for k in ("history", "cycles") if getattr(self, k) is not None]
        if given and self.rate != Shrinkage.model_fields["rate"].default:
            given.insert(0, "rate")
        if len(given) > 1:
            raise ValueError(f"give one of shrinkage.rate, shrinkage.history, shrinkage.cycles "
                             f"(got {' and '.join(given)})")
        if self.healing is not None:
            peaks = knots(self)[1]
            if max(peaks) <= self.healing.threshold:
                raise ValueError(f"shrinkage.healing.threshold = {self.healing.threshold} is never exceeded "
                                 f"(the largest εs of the history is {max(peaks)}); no cycle would end")
        return self


def knots(shr: Shrinkage) -> tuple[list[float], list[float]]:
    """The history f(t) as its knots (times, strains) on [0, t_end] (piecewise linear between,
    constant after the last knot); for `rate`, the two ends of the straight line."""
    if shr.history is not None:
        return list(shr.history.times), list(shr.history.strains)
    if shr.cycles is not None:
        c = shr.cycles
        period = shr.t_end / c.count
        times, strains = [0.0], [0.0]
        for k in range(c.count):
            times += [(k + c.dry_fraction) * period, (k + 1) * period]
            strains += [c.peak, c.trough]
        return times, strains
    return [0.0, shr.t_end], [0.0, shr.rate * shr.t_end]


def rewet_times(shr: Shrinkage) -> list[float]:
    """The times in (0, t_end] at which f falls to healing.threshold after rising above it since
    the last such time (empty without healing). Exact for the piecewise-linear history."""
    if shr.healing is None:
        return []
    th = shr.healing.threshold
    times, strains = knots(shr)
    out, above = [], False
    for t0, f0, t1, f1 in zip(times, strains, times[1:], strains[1:]):
        if above and f0 > th >= f1:
            t = t1 if f1 == th else t0 + (f0 - th) / (f0 - f1) * (t1 - t0)
            if t <= shr.t_end * (1 + 1e-12):
                out.append(min(t, shr.t_end))
            above = False
        above = above or f1 > th
    return out
