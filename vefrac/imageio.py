"""Reading images as users have them (PNG, JPEG, TIFF; grey or colour)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .errors import InputError


def read_grey(path: str | Path) -> np.ndarray:
    """Read an image as grey levels in [0, 1].

    Returns (H, W) float64; row 0 is the TOP row of the picture as seen. Colour images are
    converted with the ITU-R 601 luma weights; an alpha channel is ignored.
    """
    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    if not path.is_file():
        raise InputError(f"image file {str(path)!r} does not exist")
    try:
        with Image.open(path) as img:
            img.load()
            mode = img.mode
            if mode in ("I;16", "I;16B", "I;16L", "I"):
                arr = np.asarray(img, dtype=np.float64)
                top = 65535.0 if mode.startswith("I;16") else max(float(arr.max()), 1.0)
                grey = arr / top
            elif mode == "F":
                grey = np.asarray(img, dtype=np.float64)
                lo, hi = float(grey.min()), float(grey.max())
                grey = (grey - lo) / (hi - lo) if hi > lo else np.zeros_like(grey)
            else:
                grey = np.asarray(img.convert("L"), dtype=np.float64) / 255.0
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        raise InputError(f"image file {str(path)!r} cannot be read as an image "
                         f"(PNG, JPEG or TIFF expected): {exc}") from None
    if grey.ndim != 2 or grey.shape[0] < 2 or grey.shape[1] < 2:
        raise InputError(f"image file {str(path)!r} is empty or not a 2D picture (shape {grey.shape})")
    if not np.all(np.isfinite(grey)):
        raise InputError(f"image file {str(path)!r} holds non-finite values")
    return np.clip(grey, 0.0, 1.0)
