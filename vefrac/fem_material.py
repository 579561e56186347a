"""The material response of the finite-element reference, in numpy: the split densities W+, W−
of energy.split_energy and their stress and (generalised) tangent in the engineering strain."""

from __future__ import annotations

import numpy as np

def stress_tangent(exx: np.ndarray, eyy: np.ndarray, gam: np.ndarray, g: np.ndarray | float, *,
                   lam: float, mu: float, split: str) -> tuple[np.ndarray, np.ndarray]:
    """Derivatives of ψ = g W+ + W− in the engineering strain (εxx, εyy, γ = 2εxy).

    Arrays of any shape S. Returns the stress (S + (3,)) = (σxx, σyy, σxy) and the tangent
    (S + (3, 3)): the Hessian where ψ is smooth, the derivative of the branch the strain is on
    at the kinks (an element of the generalised Jacobian, what a semi-smooth Newton step needs).
    """
    g = np.broadcast_to(g, exx.shape)
    tr = exx + eyy
    ones, vol = np.array([1.0, 1.0, 0.0]), np.array([[1.0, 1.0, 0.0], [1.0, 1.0, 0.0], [0.0, 0.0, 0.0]])
    if split == "none":
        c = np.array([[lam + 2 * mu, lam, 0.0], [lam, lam + 2 * mu, 0.0], [0.0, 0.0, mu]])
        tangent = g[..., None, None] * c
        return np.einsum("...ij,...j->...i", tangent, np.stack([exx, eyy, gam], -1)), tangent
    c_tr = np.where(tr > 0, g, 1.0)  # which side of the volumetric kink
    if split == "amor":
        dev = np.array([[1.0, -1.0, 0.0], [-1.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
        kc, gm = (lam + mu) * c_tr, g * mu
        stress = (kc * tr)[..., None] * ones + gm[..., None] * np.stack([exx - eyy, eyy - exx, gam], -1)
        return stress, kc[..., None, None] * vol + gm[..., None, None] * dev
    if split == "spectral":
        d, exy = 0.5 * (exx - eyy), 0.5 * gam
        radius = np.sqrt(d * d + exy * exy)
        safe = np.where(radius > 0, radius, 1.0)
        cos2, sin2 = np.where(radius > 0, d / safe, 1.0), np.where(radius > 0, exy / safe, 0.0)
        c2, s2, cs = 0.5 * (1 + cos2), 0.5 * (1 - cos2), 0.5 * sin2
        v1, v2 = np.stack([c2, s2, cs], -1), np.stack([s2, c2, -cs], -1)  # ∂e1/∂ε, ∂e2/∂ε
        v12 = np.stack([-cs, cs, 0.5 * (c2 - s2)], -1)  # n1·H n2 as a function of (hxx, hyy, hγ)
        e1, e2 = 0.5 * tr + radius, 0.5 * tr - radius
        k1, k2 = np.where(e1 > 0, g, 1.0), np.where(e2 > 0, g, 1.0)  # f(e) = k e², f' = 2ke, f'' = 2k
        f1, f2 = 2 * k1 * e1, 2 * k2 * e2
        gap = e1 - e2
        divided = np.where(gap > 1e-12 * (np.abs(e1) + np.abs(e2) + 1e-300), (f1 - f2) / np.where(gap > 0, gap, 1.0),
                           2 * k1)
        stress = (lam * c_tr * tr)[..., None] * ones + mu * (f1[..., None] * v1 + f2[..., None] * v2)
        outer = lambda a, b: a[..., :, None] * b[..., None, :]  # noqa: E731
        tangent = ((lam * c_tr)[..., None, None] * vol
                   + mu * ((2 * k1)[..., None, None] * outer(v1, v1) + (2 * k2)[..., None, None] * outer(v2, v2)
                           + (2 * divided)[..., None, None] * outer(v12, v12)))
        return stress, tangent
    raise ValueError(f"unknown split {split!r}")


def split_densities(exx: np.ndarray, eyy: np.ndarray, gam: np.ndarray, *, lam: float, mu: float,
                    split: str) -> tuple[np.ndarray, np.ndarray]:
    """(W+, W−) of energy.split_energy, in numpy (tests pin the two together), γ = 2εxy.

    numpy, not torch: the inner loop is many small element-wise operations, where torch's thread
    pool can cost more than the arithmetic (1000× on a loaded 2-core machine).
    """
    tr = exx + eyy
    if split == "amor":
        pos, neg = np.maximum(tr, 0.0), np.minimum(tr, 0.0)
        dev2 = 0.5 * (exx - eyy) ** 2 + 0.5 * gam**2
        return 0.5 * (lam + mu) * pos**2 + mu * dev2, 0.5 * (lam + mu) * neg**2
    if split == "spectral":
        radius = np.sqrt(0.25 * (exx - eyy) ** 2 + 0.25 * gam**2)
        e1, e2 = 0.5 * tr + radius, 0.5 * tr - radius
        w_pos = 0.5 * lam * np.maximum(tr, 0.0) ** 2 + mu * (np.maximum(e1, 0.0) ** 2 + np.maximum(e2, 0.0) ** 2)
        w_neg = 0.5 * lam * np.minimum(tr, 0.0) ** 2 + mu * (np.minimum(e1, 0.0) ** 2 + np.minimum(e2, 0.0) ** 2)
        return w_pos, w_neg
    if split == "none":
        return 0.5 * lam * tr**2 + mu * (exx**2 + eyy**2 + 0.5 * gam**2), np.zeros_like(tr)
    raise ValueError(f"unknown split {split!r}")
