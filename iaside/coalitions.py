"""Coalition images as sums of band images: no FFT per coalition (docs/method.md §3, §9, §10).

x_S = b + Σ_{i∈S} (x − b)_i, because the band split is linear. ``prepare`` does the one
split per image; ``render`` turns coalition bit rows into model inputs with one matmul.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .errors import IasideError
from .spectral import is_hermitian, split_bands, split_bands_complex

SYNTHESES = ("sum", "paper")
"""sum: docs/method.md §3, real band images, optional clip. paper: docs/method.md §9, complex band images of the
centred-square masks, then abs, per-image min–max to [0, 1], clip; the empty coalition is 0."""


@dataclass
class Prepared:
    """Per-image terms of the coalition sum.

    base: (B, C, H, W) the fill as an image (complex for 'paper');
    deltas: (B, M, C, H, W) band images of x − b (complex for 'paper').
    For 'sum' both are stored channels-last (pixel order H, W, C), so a coalition image is one
    matrix product written straight into the model's channels-last input.
    """

    base: torch.Tensor
    deltas: torch.Tensor


class CoalitionSynthesizer:
    """Builds coalition images for one band partition and one synthesis rule."""

    def __init__(self, masks: torch.Tensor, synthesis: str = "sum", clip: bool = False) -> None:
        if synthesis not in SYNTHESES:
            raise IasideError(f"synthesis {synthesis!r} is not one of {', '.join(SYNTHESES)}")
        if synthesis == "sum" and not is_hermitian(masks):
            raise IasideError("these band masks are not Hermitian-symmetric; use the paper synthesis")
        self.masks = masks
        self.synthesis = synthesis
        self.clip = clip

    @property
    def n_bands(self) -> int:
        return self.masks.shape[0]

    def prepare(self, x: torch.Tensor, fill: torch.Tensor) -> Prepared:
        """(B, C, H, W) images and their fill (pixels, or a complex spectrum) -> Prepared."""
        masks = self.masks.to(x.device)
        if self.synthesis == "sum":
            if fill.is_complex():
                raise IasideError("a spectrum fill (gaussian) needs the paper preset; use --fill noise")
            return Prepared(base=_channels_last(fill), deltas=_channels_last(split_bands(x - fill, masks)))
        fill_spectrum = fill if fill.is_complex() else torch.fft.fft2(fill)
        return Prepared(
            base=torch.fft.ifft2(fill_spectrum),
            deltas=split_bands_complex(torch.fft.fft2(x) - fill_spectrum, masks),
        )

    def render(
        self, base: torch.Tensor, deltas: torch.Tensor, bits: torch.Tensor, out: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Coalition images of one image: base (C, H, W), deltas (M, C, H, W), bits (K, M) float
        -> (K, C, H, W) float32 pixels in channels-last memory.

        out: optional (K, H*W*C) float32 rows to write the images into (channels-last pixel
        order); the result is then a view of ``out``.
        """
        m, (c, h, w), k = deltas.shape[0], base.shape[-3:], bits.shape[0]
        if self.synthesis == "sum":
            flat_deltas = deltas.movedim(1, -1).reshape(m, -1)  # a view when prepared channels-last
            flat_base = base.movedim(0, -1).reshape(-1)
            # matmul then add (not addmm, whose rounding depends on K): a coalition's pixels must
            # not depend on how many others share its batch, or a resumed run would differ
            flat = torch.mm(bits, flat_deltas, out=out) if out is not None else bits @ flat_deltas
            images = flat.add_(flat_base).view(k, h, w, c).movedim(-1, 1)
            return images.clamp_(0.0, 1.0) if self.clip else images
        flat = torch.view_as_real(deltas).reshape(m, -1)  # complex as interleaved (re, im)
        z = torch.view_as_complex((bits @ flat).view(-1, *base.shape, 2)) + base
        images = z.abs()
        lo = images.amin(dim=(1, 2, 3), keepdim=True)
        span = images.amax(dim=(1, 2, 3), keepdim=True) - lo
        images = torch.where(span > 0, (images - lo) / span.clamp_min(1e-12), torch.zeros_like(images))
        images = images.clamp_(0.0, 1.0)
        empty = bits.sum(dim=1) == 0
        if bool(empty.any()):
            images[empty] = 0.0
        if out is None:
            return images
        target = out.view(k, h, w, c)
        target.copy_(images.movedim(1, -1))
        return target.movedim(-1, 1)


def _channels_last(t: torch.Tensor) -> torch.Tensor:
    """The same (..., C, H, W) tensor stored with C innermost."""
    return t.movedim(-3, -1).contiguous().movedim(-1, -3)
