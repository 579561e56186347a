"""Reading images as users have them (PNG, JPEG, TIFF; grey or colour), upright as viewers show them.

Cameras and phones store a portrait photo in the sensor's landscape layout and record in the EXIF
orientation tag (0x0112, values 1–8) how to turn it for display; every viewer applies the tag, and
so does vefrac: an array read here is the picture as seen.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .errors import InputError

_ORIENTATION = 0x0112


def _transpose_methods():
    """EXIF orientation -> the Pillow transpose that shows the picture upright (the table of
    `PIL.ImageOps.exif_transpose`; applied here after any reduction, so a big photo is turned small)."""
    from PIL import Image

    t = Image.Transpose
    return {2: t.FLIP_LEFT_RIGHT, 3: t.ROTATE_180, 4: t.FLIP_TOP_BOTTOM, 5: t.TRANSPOSE,
            6: t.ROTATE_270, 7: t.TRANSVERSE, 8: t.ROTATE_90}


def _pil_errors():
    from PIL import UnidentifiedImageError

    return (UnidentifiedImageError, OSError, ValueError, SyntaxError)


def _open(path: Path):
    from PIL import Image

    if not path.is_file():
        raise InputError(f"image file {str(path)!r} does not exist")
    return Image.open(path)


def _unreadable(path: Path, exc: Exception) -> InputError:
    return InputError(f"image file {str(path)!r} cannot be read as an image "
                      f"(PNG, JPEG or TIFF expected): {exc}")


def _orientation(img) -> int:
    value = img.getexif().get(_ORIENTATION, 1)
    return value if value in range(1, 9) else 1


def picture_size(path: str | Path) -> tuple[int, int]:
    """(width, height) in pixels of the picture as seen (EXIF orientation applied); reads the header only."""
    path = Path(path)
    try:
        with _open(path) as img:
            (w, h), orientation = img.size, _orientation(img)
    except _pil_errors() as exc:
        raise _unreadable(path, exc) from None
    return (h, w) if orientation >= 5 else (w, h)


def _block_mean(arr: np.ndarray, factor: int) -> np.ndarray:
    """(H, W) -> (ceil(H/f), ceil(W/f)) means over f × f blocks (partial blocks: over what they hold)."""
    h, w = arr.shape
    rows = np.add.reduceat(arr, np.arange(0, h, factor), axis=0)
    sums = np.add.reduceat(rows, np.arange(0, w, factor), axis=1)
    counts = np.outer(np.diff(np.append(np.arange(0, h, factor), h)), np.diff(np.append(np.arange(0, w, factor), w)))
    return sums / counts


def read_grey(path: str | Path, *, shrink: int = 1, dtype=np.float64) -> np.ndarray:
    """Read an image as grey levels in [0, 1], upright (EXIF orientation applied).

    shrink: integer factor ≥ 1 by which the picture is reduced (means over shrink × shrink pixel
        blocks; the last partial block over what it holds). A JPEG is decoded at 1/2, 1/4 or 1/8
        scale directly by the power of 2 in shrink (its DCT allows it), so a 12-megapixel photo read
        for a coarse use never exists at full size in memory.
    dtype: float64 (default) or float32 (half the memory of a large photo).
    Returns (H, W) array of `dtype`; row 0 is the TOP row of the picture as seen. Colour images
    are converted with the ITU-R 601 luma weights; an alpha channel is ignored.
    """
    from PIL import Image

    path, shrink = Path(path), int(shrink)
    if shrink < 1:
        raise ValueError(f"shrink must be an integer >= 1, got {shrink}")
    try:
        with _open(path) as img:
            orientation, full_width = _orientation(img), img.size[0]
            dct = min(8, shrink & -shrink)  # the largest power of 2 dividing shrink, at most 8
            if dct > 1 and img.format == "JPEG":
                img.draft("L", (max(1, img.size[0] // dct), max(1, img.size[1] // dct)))
            img.load()
            factor = shrink // max(1, round(full_width / img.size[0]))  # what the decoder left to do
            if img.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
                arr = np.asarray(img, dtype=np.float64)
                if img.mode.startswith("I;16"):
                    arr = arr / 65535.0
                elif img.mode == "I":
                    arr = arr / max(float(arr.max()), 1.0)
                else:
                    lo, hi = float(arr.min()), float(arr.max())
                    arr = (arr - lo) / (hi - lo) if hi > lo else np.zeros_like(arr)
                arr = _block_mean(arr, factor) if factor > 1 else arr
                grey = Image.fromarray(arr.astype(np.float32))  # mode F
                scale = 1.0
            else:
                grey = img.convert("L")
                grey = grey.reduce(factor) if factor > 1 else grey
                scale = 1.0 / 255.0
            if orientation > 1:
                grey = grey.transpose(_transpose_methods()[orientation])
            arr = np.array(grey, dtype=dtype)
            arr *= scale
    except InputError:
        raise
    except _pil_errors() as exc:
        raise _unreadable(path, exc) from None
    if arr.ndim != 2 or arr.shape[0] < 2 or arr.shape[1] < 2:
        raise InputError(f"image file {str(path)!r} is empty or not a 2D picture (shape {arr.shape})")
    if not np.all(np.isfinite(arr)):
        raise InputError(f"image file {str(path)!r} holds non-finite values")
    return np.clip(arr, 0.0, 1.0, out=arr)
