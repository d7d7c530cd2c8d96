"""Decode an image file and bring it to a model's input: (C, H, W) float32 in [0, 1]."""

from __future__ import annotations

import os
import stat
import struct
import warnings
from collections.abc import Callable

import numpy as np
import torch
from PIL import Image, ImageOps

from ..config import DataConfig
from ..errors import IasideError

MAX_PIXELS = 178_956_970
"""Largest width × height accepted, read from the header before decoding (PIL's own limit), and
again for the size an image is resized to."""
THIN_FACTOR = 16
"""Resized images over this many times the crop's area are resized over the crop's region only.
That route is not exactly the full resize's pixels (`python benchmarks/thin_resize.py`, 400 thin
strips per kind): on random pixels the largest difference is 254 levels of 255 with nearest (a
neighbouring source pixel is taken), 2 bilinear, 19 bicubic, 34 lanczos, in about 1 % of the
pixels; on a smooth image 13 with nearest and 1 with the others."""

RESAMPLING = {
    "nearest": Image.Resampling.NEAREST,
    "bilinear": Image.Resampling.BILINEAR,
    "bicubic": Image.Resampling.BICUBIC,
    "lanczos": Image.Resampling.LANCZOS,
}


def load_image(
    path: str | os.PathLike, channels: int = 3, check_size: Callable[[int, int], object] | None = None
) -> Image.Image:
    """Decode ``path`` upright (EXIF orientation applied) as 8-bit RGB (channels 3) or L (1).

    Only a regular file is read (a FIFO, device or socket named like an image is refused
    without blocking), and an animated GIF, PNG or WebP is refused rather than reduced to one
    frame (``ANIMATED_FORMATS``). ``check_size(width, height)``
    may refuse the image from its header, before anything is decoded."""
    try:
        with warnings.catch_warnings(), _open_regular(path) as fh:
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(fh) as img:
                width, height = img.size
                if width * height > MAX_PIXELS:
                    raise Image.DecompressionBombError(f"{width}x{height} pixels")
                if check_size is not None:
                    check_size(width, height)
                frames = _frame_count(img)
                if frames > 1:
                    raise IasideError(
                        f"image {path} is animated ({frames} frames); save the frame to "
                        "analyse as a still image, or remove it from the data"
                    )
                img.load()
                ImageOps.exif_transpose(img, in_place=True)
                return to_mode(img, channels)
    except FileNotFoundError:
        raise IasideError(f"image {path} does not exist (or is a link to a missing file)") from None
    except Image.DecompressionBombError as e:
        raise IasideError(f"image {path} is too large ({e}; at most {MAX_PIXELS} pixels); downscale it first") from None
    except MemoryError:
        raise IasideError(f"image {path} needs more memory to decode than is free; downscale it first") from None
    except (OSError, SyntaxError, ValueError) as e:
        raise IasideError(
            f"image {path} is unreadable or truncated ({e}); re-export it or remove it from the data"
        ) from None


ANIMATED_FORMATS = ("GIF", "PNG", "WEBP")
"""Formats whose extra frames are an animation (refused); a multi-page TIFF or a camera's
multi-picture JPEG (MPO) is read as its first page or primary image."""


def _frame_count(img: Image.Image) -> int:
    """Frames of an animated image (1 for a still one); a damaged frame table is unreadable."""
    if img.format not in ANIMATED_FORMATS:
        return 1
    try:
        return int(img.n_frames) if getattr(img, "is_animated", False) else 1  # type: ignore[attr-defined]
    except (TypeError, KeyError, IndexError, EOFError, struct.error) as err:
        raise OSError(f"damaged frames ({type(err).__name__}: {err})") from None


_FILE_KINDS = {
    stat.S_IFIFO: "FIFO",
    stat.S_IFSOCK: "socket",
    stat.S_IFCHR: "character device",
    stat.S_IFBLK: "block device",
    stat.S_IFDIR: "folder",
}


def _open_regular(path: str | os.PathLike):
    """``path`` opened for binary reading, or IasideError when it is not a regular file. Opened
    without blocking first, so a FIFO is refused instead of waiting for a writer forever."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        kind = _FILE_KINDS.get(stat.S_IFMT(mode), "special file")
        raise IasideError(f"image {path} is not a regular file (a {kind}); remove it from the data")
    return os.fdopen(fd, "rb")


def to_mode(img: Image.Image, channels: int) -> Image.Image:
    """8-bit RGB (channels 3) or L (channels 1); 16-bit integer images scaled by 1/65535, float
    images taken as [0, 1], palette and alpha images via RGBA with the alpha dropped."""
    if channels not in (1, 3):
        raise IasideError(f"channels={channels}: only 1 (grayscale) or 3 (RGB) are supported")
    if img.mode == "I" or img.mode == "F" or img.mode.startswith("I;16"):
        full_scale = 1.0 if img.mode == "F" else 65535.0
        unit = np.asarray(img, dtype=np.float64) / full_scale
        img = Image.fromarray(np.rint(np.clip(unit, 0.0, 1.0) * 255).astype(np.uint8), "L")
    elif img.mode in ("P", "PA"):
        img = img.convert("RGBA")
    target = "L" if channels == 1 else "RGB"
    return img if img.mode == target else img.convert(target)


def resized_size(width: int, height: int, resize_size: int, crop_hw: tuple[int, int]) -> tuple[int, int]:
    """(width, height) with the shorter side at ``resize_size`` (torchvision rounding),
    enlarged when needed so that the (H, W) crop ``crop_hw`` fits inside."""
    crop_h, crop_w = crop_hw
    long_side = int(resize_size * max(width, height) / min(width, height))
    new_w, new_h = (resize_size, long_side) if width <= height else (long_side, resize_size)
    if new_w < crop_w or new_h < crop_h:
        scale = max(crop_w / width, crop_h / height)
        new_w, new_h = max(crop_w, round(width * scale)), max(crop_h, round(height * scale))
    return new_w, new_h


def check_resized_size(width: int, height: int, cfg: DataConfig, name: str = "the image") -> tuple[int, int]:
    """The (width, height) ``preprocess`` resizes to; IasideError naming ``name`` when that is
    over the pixel limit (a thin strip enlarged until its short side is ``cfg.resize_size``)."""
    size = resized_size(width, height, cfg.resize_size, cfg.input_size)
    if size[0] * size[1] > MAX_PIXELS:
        raise IasideError(
            f"{name} is {width}x{height} pixels; resized to {size[0]}x{size[1]} it would exceed "
            f"{MAX_PIXELS} pixels (an extreme aspect ratio); crop it first or remove it from the data"
        )
    return size


def preprocess(img: Image.Image, cfg: DataConfig, name: str = "the image") -> torch.Tensor:
    """Resize the shorter side, centre-crop to ``cfg.input_size``: (C, H, W) float32 in [0, 1].

    The resized image obeys the pixel limit too (``name`` is named when it does not). An image
    whose resized form would hold more than THIN_FACTOR crops (an extreme aspect ratio) is
    resized over the crop's region only, so a thin strip never allocates its whole enlargement.
    """
    crop_h, crop_w = cfg.input_size
    size = check_resized_size(*img.size, cfg, name)
    img = to_mode(img, cfg.channels)
    top, left = round((size[1] - crop_h) / 2), round((size[0] - crop_w) / 2)
    if size[0] * size[1] > THIN_FACTOR * crop_h * crop_w:
        sx, sy = img.size[0] / size[0], img.size[1] / size[1]
        box = (left * sx, top * sy, (left + crop_w) * sx, (top + crop_h) * sy)
        img = img.resize((crop_w, crop_h), RESAMPLING[cfg.interpolation], box=box)
    else:
        if size != img.size:
            img = img.resize(size, RESAMPLING[cfg.interpolation])
        img = img.crop((left, top, left + crop_w, top + crop_h))
    pixels = torch.from_numpy(np.asarray(img, dtype=np.float32) / 255.0)
    return pixels.unsqueeze(0) if pixels.ndim == 2 else pixels.permute(2, 0, 1).contiguous()
