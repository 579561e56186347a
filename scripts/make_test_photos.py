"""Make the small copies of public crack photographs kept in tests/data (see tests/data/README.md).

    python3 scripts/make_test_photos.py ORIGINAL.jpg tests/data/NAME.jpg [--factor 4] [--grey]
        [--store-orientation N]

The pixels are reduced `factor`× by block means (Pillow's Image.reduce) and saved as a JPEG
(quality 85). The original's EXIF orientation tag is kept, and it is the only metadata kept.
--grey stores one grey channel (ITU-R 601 luma, Pillow's "L").
--store-orientation N (an original without an orientation tag only): store the picture the way a
phone held sideways writes it, with EXIF orientation N, so that a reader must turn it upright: for
N = 6 the stored pixels are the picture turned a quarter counter-clockwise and the tag says "turn
a quarter clockwise to show". Only 1, 3, 6 and 8 (pure rotations) are offered.
"""

import argparse

from PIL import Image

ORIENTATION = 0x0112
# stored = upright.transpose(op) for a tag that shows the stored pixels upright
_STORE = {1: None, 3: Image.Transpose.ROTATE_180, 6: Image.Transpose.ROTATE_90, 8: Image.Transpose.ROTATE_270}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("src")
    parser.add_argument("dst")
    parser.add_argument("--factor", type=int, default=4)
    parser.add_argument("--grey", action="store_true")
    parser.add_argument("--store-orientation", type=int, choices=sorted(_STORE), default=None)
    args = parser.parse_args(argv)
    with Image.open(args.src) as img:
        orientation = img.getexif().get(ORIENTATION, 1)
        small = img.convert("L" if args.grey else "RGB").reduce(args.factor)
    if args.store_orientation is not None:
        if orientation != 1:
            parser.error(f"{args.src} already has EXIF orientation {orientation}")
        orientation = args.store_orientation
        if _STORE[orientation] is not None:
            small = small.transpose(_STORE[orientation])
    exif = Image.Exif()
    exif[ORIENTATION] = orientation
    small.save(args.dst, quality=85, exif=exif)
    print(f"{args.dst}: {small.size[0]} × {small.size[1]} stored, EXIF orientation {orientation}")


if __name__ == "__main__":
    main()
