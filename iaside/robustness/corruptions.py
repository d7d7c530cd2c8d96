"""ImageNet-C corruptions on pixel tensors, repeatable per image (docs/method.md §7, §8).

Through ``imagecorruptions`` (the ``imagecorruptions-imaug`` fork: the original fails 3 of the
19 on NumPy 2). The library draws from the global NumPy RNG, except ``glass_blur`` and
``impulse_noise``, which ignore it and take a ``seed`` argument: both are seeded here, from
one seed per (run seed, corruption, severity, image index), so a corrupted image never
depends on the batch it was computed in.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
import torch

from ..errors import IasideError

COMMON = (
    "gaussian_noise",
    "shot_noise",
    "impulse_noise",
    "defocus_blur",
    "glass_blur",
    "motion_blur",
    "zoom_blur",
    "snow",
    "frost",
    "fog",
    "brightness",
    "contrast",
    "elastic_transform",
    "pixelate",
    "jpeg_compression",
)
"""The 15 ImageNet-C corruptions that enter the mCE of the ImageNet-C paper."""
EXTRA = ("speckle_noise", "gaussian_blur", "spatter", "saturate")
"""The 4 held-out ('validation') ImageNet-C corruptions."""
CORRUPTIONS = COMMON + EXTRA
SEVERITIES = (1, 2, 3, 4, 5)
FAMILIES = {
    "noise": ("gaussian_noise", "shot_noise", "impulse_noise", "speckle_noise"),
    "blur": ("defocus_blur", "glass_blur", "motion_blur", "zoom_blur", "gaussian_blur"),
    "weather": ("snow", "frost", "fog", "spatter"),
    "digital": ("brightness", "contrast", "elastic_transform", "pixelate", "jpeg_compression", "saturate"),
}
"""ImageNet-C's grouping, with each extra corruption in its natural family."""
MIN_SIDE = 32
"""imagecorruptions refuses images smaller than 32 pixels on a side."""
_SEED_ARGUMENT = ("glass_blur", "impulse_noise")
LUMA = np.array([0.299, 0.587, 0.114], np.float32)
"""ITU-R 601-2 luma, as PIL's RGB -> L."""


def family_of(corruption: str) -> str:
    """'noise', 'blur', 'weather' or 'digital'."""
    for family, members in FAMILIES.items():
        if corruption in members:
            return family
    raise IasideError(f"{corruption!r} is not an ImageNet-C corruption; choose from {', '.join(CORRUPTIONS)}")


def corruption_names(spec: str | Iterable[str] | None = "all") -> tuple[str, ...]:
    """Resolve 'all' (19), 'common' (15), 'extra' (4), 'none', a family name, or a comma list."""
    if spec is None or spec == "none":
        return ()
    if isinstance(spec, str):
        named = {"all": CORRUPTIONS, "common": COMMON, "extra": EXTRA, **FAMILIES}
        if spec in named:
            return tuple(named[spec])
        spec = [s.strip() for s in spec.split(",") if s.strip()]
    names = tuple(spec)
    unknown = [n for n in names if n not in CORRUPTIONS]
    if unknown:
        raise IasideError(
            f"unknown corruption(s) {', '.join(unknown)}; choose all, common, extra, none, "
            f"{', '.join(FAMILIES)} or names from {', '.join(CORRUPTIONS)}"
        )
    return names


def check_severities(severities: Iterable[int]) -> tuple[int, ...]:
    """The severities as a tuple, or an IasideError when one is outside 1…5."""
    out = tuple(int(s) for s in severities)
    bad = [s for s in out if s not in SEVERITIES]
    if bad or not out:
        raise IasideError(f"severities must be among 1, 2, 3, 4, 5; got {list(out)}")
    return out


def image_seed(seed: int, corruption: str, severity: int, index: int) -> int:
    """The NumPy seed of one corrupted image, a uint32 fixed by (seed, corruption, severity, index)."""
    entropy = [int(seed), CORRUPTIONS.index(corruption), int(severity), int(index)]
    return int(np.random.SeedSequence(entropy).generate_state(1)[0])


def quantize(images: torch.Tensor) -> torch.Tensor:
    """Pixels rounded to 8 bits, (B, C, H, W) float in [0, 1] -> same: what the corruptions see."""
    return torch.round(images.clamp(0, 1) * 255) / 255


def _library():
    try:
        import imagecorruptions
    except ImportError as err:
        from ..install import pip_hint

        raise IasideError(
            f"corruptions need imagecorruptions ({err}); {pip_hint('iaside[robustness]')} "
            "(imagecorruptions-imaug==1.1.5)"
        ) from err
    return imagecorruptions


def _corrupt_one(lib, img: np.ndarray, corruption: str, severity: int, extra: dict) -> np.ndarray:
    """One library call. spatter divides by the peak of its liquid mask, which is 0 when no liquid
    survives its threshold (small images, low severity: about 1 in 50 at 32 px, severity 1); the
    library then casts NaN to uint8 (a black image). The right answer there is no spatter at all,
    i.e. the image unchanged, so that case is caught and answered here."""
    if corruption != "spatter":
        return lib.corrupt(img, corruption_name=corruption, severity=severity, **extra)
    try:
        with np.errstate(invalid="raise"):
            return lib.corrupt(img, corruption_name=corruption, severity=severity, **extra)
    except FloatingPointError:
        return np.stack((img,) * 3, axis=-1) if img.ndim == 2 else img.copy()


def corrupt_images(
    images: torch.Tensor,
    corruption: str,
    severity: int,
    *,
    seed: int = 0,
    indices: Sequence[int] | None = None,
) -> torch.Tensor:
    """One ImageNet-C corruption at one severity, (B, C, H, W) float in [0, 1] -> same, float32.

    C is 1 or 3. Images are quantised to 8 bits first (the library works on uint8); a
    grayscale image is corrupted as three equal channels and turned back into 8-bit grey with
    PIL's luma weights (what ``Image.convert('L')`` does to the colour corruptions). ``indices`` are
    the images' positions in the data set (default 0…B−1): they fix each image's seed.
    """
    corruption_names([corruption])
    check_severities([severity])
    if images.dim() != 4 or images.shape[1] not in (1, 3):
        raise IasideError(f"corruptions need (B, 1 or 3, H, W) images, got shape {tuple(images.shape)}")
    h, w = images.shape[-2:]
    if min(h, w) < MIN_SIDE:
        raise IasideError(
            f"ImageNet-C corruptions need images of at least {MIN_SIDE}x{MIN_SIDE} pixels, got {h}x{w}; "
            f"resize or pad the images (e.g. --input-size {MIN_SIDE})"
        )
    lib = _library()
    indices = list(range(images.shape[0])) if indices is None else list(indices)
    pixels = (quantize(images) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()
    out = np.empty(pixels.shape, dtype=np.float32)
    for k, index in enumerate(indices):
        img_seed = image_seed(seed, corruption, severity, index)
        np.random.seed(img_seed)
        extra = {"seed": img_seed} if corruption in _SEED_ARGUMENT else {}
        img = pixels[k] if pixels.shape[-1] == 3 else pixels[k, :, :, 0]
        try:
            corrupted = _corrupt_one(lib, img, corruption, severity, extra)
        except Exception as err:  # the library raises anything from AttributeError to cv2.error
            raise IasideError(
                f"corruption {corruption} at severity {severity} failed on image {index} ({h}x{w}, "
                f"{images.shape[1]} channels): {type(err).__name__}: {err}"
            ) from err
        corrupted = np.asarray(corrupted, dtype=np.float32)
        if corrupted.shape[:2] != (h, w):
            raise IasideError(
                f"corruption {corruption} at severity {severity} returned {corrupted.shape[:2]} for a {h}x{w} "
                f"image {index}; this size is not supported by imagecorruptions"
            )
        if pixels.shape[-1] == 1:
            corrupted = np.round(corrupted @ LUMA)[..., None] if corrupted.ndim == 3 else corrupted[..., None]
        out[k] = corrupted
    return torch.from_numpy(out / 255.0).permute(0, 3, 1, 2).contiguous().to(images.device)
