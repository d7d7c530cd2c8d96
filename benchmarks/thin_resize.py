"""How far the thin-strip route of ``preprocess`` is from the full resize (THIN_FACTOR's docstring):

    python benchmarks/thin_resize.py [--strips 400] [--seed 0]

An image whose resized form holds more than THIN_FACTOR crops is resized over the crop's region
only (``Image.resize(..., box=...)``) instead of resizing the whole image and cropping. For
random thin strips (crop side 8-63 pixels, resize side 1-8/7 times the crop, strips 20-60
times longer than wide, both orientations) this prints, per interpolation, the largest difference per channel between the
two routes in levels of 255 and the share of pixels that differ, on random pixels and on a
smooth image (a sinusoid, at most 13 levels between neighbouring pixels). CPU only, ~1 min.
"""

from __future__ import annotations

import argparse

import numpy as np
from PIL import Image

from iaside.config import INTERPOLATIONS, DataConfig
from iaside.data.transforms import RESAMPLING, THIN_FACTOR, preprocess, resized_size


def full_route(img: Image.Image, cfg: DataConfig) -> np.ndarray:
    """Resize the whole image, then centre-crop: (H, W, 3) uint8 levels."""
    crop_h, crop_w = cfg.input_size
    size = resized_size(*img.size, cfg.resize_size, cfg.input_size)
    top, left = round((size[1] - crop_h) / 2), round((size[0] - crop_w) / 2)
    big = img.resize(size, RESAMPLING[cfg.interpolation])
    return np.asarray(big.crop((left, top, left + crop_w, top + crop_h)), dtype=np.int16)


def strip(rng: np.random.Generator, smooth: bool) -> tuple[Image.Image, int, int]:
    crop = int(rng.integers(8, 64))
    resize = int(rng.integers(crop, crop * 8 // 7 + 2))  # crop_pct 0.875-1, as in timm's configs
    short = int(rng.integers(crop, 2 * crop))
    long = int(short * rng.uniform(20, 60))
    if smooth:  # at most 13 levels between neighbouring pixels along the strip
        t = np.arange(long)[:, None, None] * (2 * np.pi / 40) + rng.uniform(0, 2 * np.pi, (1, 1, 3))
        pixels = np.broadcast_to(127.5 + 80 * np.sin(t), (long, short, 3)).round().astype(np.uint8)
    else:
        pixels = rng.integers(0, 256, (long, short, 3), dtype=np.uint8)
    if rng.integers(2):
        pixels = np.ascontiguousarray(pixels.transpose(1, 0, 2))
    return Image.fromarray(pixels), crop, resize


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--strips", type=int, default=400)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    print(
        "| interpolation | random: max diff | random: pixels differing | smooth: max diff | smooth: pixels differing |"
    )
    print("|---|---:|---:|---:|---:|")
    for interpolation in INTERPOLATIONS:
        cells = []
        for smooth in (False, True):
            rng = np.random.default_rng([args.seed, int(smooth)])
            worst, differ, total, thin = 0, 0, 0, 0
            for _ in range(args.strips):
                img, crop, resize = strip(rng, smooth)
                cfg = DataConfig(input_size=(crop, crop), resize_size=resize, interpolation=interpolation)
                size = resized_size(*img.size, cfg.resize_size, cfg.input_size)
                thin += size[0] * size[1] > THIN_FACTOR * crop * crop
                mine = (preprocess(img, cfg).permute(1, 2, 0).numpy() * 255).round().astype(np.int16)
                d = np.abs(mine - full_route(img, cfg))
                worst, differ, total = max(worst, int(d.max())), differ + int((d > 0).sum()), total + d.size
            assert thin == args.strips, "every strip must take the thin route"
            cells += [str(worst), f"{differ / total:.3f}"]
        print(f"| {interpolation} | " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    main()
