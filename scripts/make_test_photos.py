"""Make the small copies of public crack photographs kept in tests/data (see tests/data/README.md).

    python3 scripts/make_test_photos.py ORIGINAL.jpg tests/data/mud_patrignani.jpg

The stored (sensor-layout) pixels are reduced 4× by block means (Pillow's Image.reduce) and saved
as a JPEG (quality 85) whose only metadata is the original EXIF orientation tag, so the copy is
still stored sideways, as the phone wrote it, and must be turned upright on reading.
"""

import sys

from PIL import Image

ORIENTATION = 0x0112


def main(src: str, dst: str, factor: int = 4) -> None:
    with Image.open(src) as img:
        orientation = img.getexif().get(ORIENTATION, 1)
        small = img.convert("RGB").reduce(factor)
    exif = Image.Exif()
    exif[ORIENTATION] = orientation
    small.save(dst, quality=85, exif=exif)
    print(f"{dst}: {small.size[0]} × {small.size[1]} stored, EXIF orientation {orientation}")


if __name__ == "__main__":
    main(*sys.argv[1:3])
