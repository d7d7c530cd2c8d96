"""What replaces a removed band (docs/method.md §3 and §9): partner, zero, mean, noise, gaussian;
and for the per-image view, image-mean and a fixed image.

A fill maps a batch of images to the fill image b (pixels) or, for the paper preset's
``gaussian``, to a fill spectrum. Everything random is seeded per (run seed, image index), so
a result does not depend on batch size, order, shards or resumption.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
import torch

from .errors import IasideError
from .spectral import band_energy, split_bands

FILLS = ("partner", "zero", "mean", "noise", "gaussian")
FILL_ALIASES = {"random": "partner"}  # the authors' script's name for the partner fill


def processing_order(n_images: int, seed: int) -> np.ndarray:
    """The seeded permutation σ, (N,) int64, that images are processed in: any prefix is a
    random sample (for --target-ci), and consecutive images are partners (for pass reuse)."""
    return np.random.default_rng(np.random.SeedSequence([seed, 0x9A27])).permutation(n_images)


def partner_index(n_images: int, seed: int, exclude: Sequence[int] = ()) -> np.ndarray:
    """Seeded pairing, (N,) int64: image i is filled from image partner[i] ≠ i.

    One random cycle through the data set: partner[σ_k] = the next image after σ_k in
    σ = processing_order that is not excluded (unreadable, skipped), so leaving an image out
    changes only the partner of the image before it. Excluded images get −1.
    """
    order = processing_order(n_images, seed)
    good = order[~np.isin(order, np.asarray(exclude, dtype=np.int64))]
    if len(good) < 2:
        raise IasideError("the partner fill needs at least 2 images; use --fill zero or add images")
    partner = np.full(n_images, -1, dtype=np.int64)
    partner[good] = np.roll(good, -1)
    return partner


def image_generator(seed: int, index: int, salt: int) -> torch.Generator:
    """A CPU generator that depends only on (seed, image index, salt)."""
    state = np.random.SeedSequence([seed, index, salt]).generate_state(2, dtype=np.uint32)
    return torch.Generator().manual_seed(int(state[0]) << 32 | int(state[1]))


class Fill:
    """Base class. Each fill declares what it is, so the engine never branches on its name:

    domain: 'pixels' (b is an image) or 'spectrum' (b is an unshifted DFT);
    needs_partner: b is built from the partner image's pixels;
    needs_fit: b needs one pass over the data set first (``fit``);
    reuse_empty: how the empty coalition's image (the fill alone) can be shared between images,
    so its forward pass is reused: 'shared' (one image for the whole data set), 'partner'
    (the partner's clean image, already evaluated), or None (every image's own: evaluated).
    """

    name = ""
    domain = "pixels"
    needs_partner = False
    needs_fit = False
    reuse_empty: str | None = None

    def __init__(self, seed: int = 0) -> None:
        self.seed = seed

    def fit(self, batches: Iterable[torch.Tensor], masks: torch.Tensor) -> None:
        """Collect data set statistics from (B, C, H, W) pixel batches (one pass)."""

    def __call__(self, x: torch.Tensor, indices: torch.Tensor, partner: torch.Tensor | None = None) -> torch.Tensor:
        """(B, C, H, W) images and their data set indices (B,) -> (B, C, H, W) fill."""
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}(seed={self.seed})"


class PartnerFill(Fill):
    """b = another image of the data set (seeded pairing, never the image itself)."""

    name = "partner"
    needs_partner = True
    reuse_empty = "partner"

    def __call__(self, x, indices, partner=None):
        if partner is None:
            raise ValueError("PartnerFill needs the partner images")
        return partner


class ZeroFill(Fill):
    """b = 0: removed bands are cut out by an ideal band-stop filter."""

    name = "zero"
    reuse_empty = "shared"

    def __call__(self, x, indices, partner=None):
        return torch.zeros_like(x)


class MeanFill(Fill):
    """b = the data set's mean image."""

    name = "mean"
    needs_fit = True
    reuse_empty = "shared"

    def fit(self, batches, masks):
        total, count = None, 0
        for x in batches:
            s = x.to(torch.float64).sum(dim=0)
            total = s if total is None else total + s
            count += x.shape[0]
        self.mean_image = (total / count).to(torch.float32)

    def __call__(self, x, indices, partner=None):
        return self.mean_image.to(x.device).expand_as(x)


class NoiseFill(Fill):
    """b = Gaussian noise whose energy in every band and channel equals the data set's mean."""

    name = "noise"
    needs_fit = True

    def fit(self, batches, masks):
        total, count = None, 0
        for x in batches:
            s = band_energy(x, masks, per_channel=True).sum(dim=0)  # (C, M)
            total = s if total is None else total + s
            count += x.shape[0]
        self.masks = masks
        self.energy_per_band = total / count  # (C, M) float64

    def __call__(self, x, indices, partner=None):
        _, c, h, w = x.shape
        white = torch.stack([torch.randn((c, h, w), generator=image_generator(self.seed, int(i), 1)) for i in indices])
        bands = split_bands(white, self.masks)  # (B, M, C, H, W)
        got = band_energy(white, self.masks, per_channel=True)  # (B, C, M)
        gain = (self.energy_per_band[None] / got.clamp_min(1e-30)).sqrt().to(torch.float32)
        return torch.einsum("bmchw,bcm->bchw", bands, gain).to(x.device)


class GaussianSpectrumFill(Fill):
    """The paper preset's 'gaussian': a complex spectrum with real, imaginary parts ~ N(0, 0.5²)."""

    name = "gaussian"
    domain = "spectrum"

    def __call__(self, x, indices, partner=None):
        _, c, h, w = x.shape
        noise = torch.stack(
            [0.5 * torch.randn((2, c, h, w), generator=image_generator(self.seed, int(i), 2)) for i in indices]
        )
        return torch.complex(noise[:, 0], noise[:, 1]).to(x.device)


class ImageMeanFill(Fill):
    """b = the image's own per-channel mean colour: a constant image, so band 0's DC alone
    (the per-image view's default: removing a band keeps the image's brightness and colour)."""

    name = "image-mean"

    def __call__(self, x, indices, partner=None):
        return x.mean(dim=(-2, -1), keepdim=True).expand_as(x).contiguous()


class FixedFill(Fill):
    """b = one given image (C, H, W), for every image: a partner of the per-image view."""

    name = "fixed"

    def __init__(self, image: torch.Tensor, seed: int = 0) -> None:
        super().__init__(seed)
        self.image = image

    def __call__(self, x, indices, partner=None):
        return self.image.to(x.device, x.dtype).expand_as(x).contiguous()


IMAGE_FILLS = ("image-mean", "zero")
"""The fills of the per-image view without partner images (``iaside explain-image --fill``)."""


_FILL_CLASSES = {cls.name: cls for cls in (PartnerFill, ZeroFill, MeanFill, NoiseFill, GaussianSpectrumFill)}


def canonical_fill(name: str) -> str:
    """The fill's own name for ``name`` or one of its aliases ('random' is 'partner')."""
    key = FILL_ALIASES.get(name, name)
    if key not in _FILL_CLASSES:
        raise IasideError(f"--fill {name!r} is not one of {', '.join(FILLS)}")
    return key


def make_fill(name: str, seed: int = 0) -> Fill:
    """The fill called ``name`` (or an alias such as 'random'), seeded."""
    return _FILL_CLASSES[canonical_fill(name)](seed=seed)


def make_image_fill(name: str) -> Fill:
    """The per-image view's fill called ``name`` (one of ``IMAGE_FILLS``)."""
    if name not in IMAGE_FILLS:
        raise IasideError(f"--fill {name!r} is not one of {', '.join(IMAGE_FILLS)} (or give --fill-from FOLDER)")
    return ImageMeanFill() if name == "image-mean" else ZeroFill()
