"""Planted-frequency ground truth: images whose label lives in one known band (or two).

Use it to test a pipeline end to end: train a model on ``planted_images(..., band=k)``, run
I-ASIDE with the same ``n_bands`` and ``partition``, and the largest share must go to band k.

How an image is made (all in float64, cast to float32 at the end):

- background: a 1/f ("natural-looking", amplitude ∝ 1/radius) random field, DC removed,
  drawn independently of the label; with C > 1 channels 80 % of its variance is shared
  across channels. It is divided by its own peak |value| (a label-independent number).
- pattern in band k for class c: the bins of band k (``iaside.spectral.band_masks``) whose
  orientation θ = angle of (u, v) mod π lies in the sector centred on c·π/n_classes, each with
  an independent complex Gaussian coefficient (random amplitude and phase, so a random
  position), and the real part of its inverse DFT. Band masks are Hermitian-symmetric and the
  sectors are made mirror-symmetric, so the pattern lies entirely inside band k. It is divided
  by its own peak |value|: a scalar, so it stays inside band k. Grey: the same in every channel.
- image = 0.5 + A · (background + Σ_j s_j · pattern_j), A = 0.5 / (1 + Σ_j s_j).

Range without clipping or rescaling: each term has peak |value| ≤ 1, so |image − 0.5| ≤
A·(1 + Σ s_j) = 0.5 and pixels lie in [0, 1] by construction. Nothing is clipped, so no energy
leaks across bands; every band other than the planted ones is A · (that band of the
background), plus the constant 0.5 in band 0, which does not depend on the label. ``strength`` is therefore a ratio of *peak*
amplitudes (pattern peak / background peak); the energy ratio it implies depends on how many
bins the band and sector hold: measured on 32×32 images with 8 bands, a pattern's peak/RMS is
1.41 in band 0 (a single grating) and 2.7–3.2 in bands 2–7, so at strength 1 the pattern's RMS
is 2.4× the background's in band 0 and 1.1–1.2× in bands 2–7.
"""

from __future__ import annotations

import numpy as np
import torch

from .errors import IasideError
from .spectral import band_masks, freq_index

BACKGROUND_SHARED = 0.8
"""Fraction of the background's variance shared by all channels (C > 1)."""


def orientation_sectors(size: int, n_classes: int) -> np.ndarray:
    """Class sector of every DFT bin of a size×size image, (size, size) int64, unshifted order.

    Sector c holds orientations θ = atan2(v, u) mod π within π/(2·n_classes) of c·π/n_classes.
    Symmetric under (u, v) → (−u, −v) (bins that are their own mirror's partner across the
    Nyquist row take the smaller sector), so a real pattern stays in its sector. DC gets −1.
    """
    u = freq_index(size)[:, None].astype(np.float64)
    v = freq_index(size)[None, :].astype(np.float64)
    flip = (u < 0) | ((u == 0) & (v < 0))  # fold onto a half-plane so mirrors compute alike
    uu, vv = np.where(flip, -u, u), np.where(flip, -v, v)
    theta = np.mod(np.arctan2(vv, uu), np.pi)
    sector = np.floor(theta / np.pi * n_classes + 0.5).astype(np.int64) % n_classes
    mirror = np.roll(np.flip(sector, axis=(0, 1)), shift=(1, 1), axis=(0, 1))
    sector = np.minimum(sector, mirror)
    sector[0, 0] = -1
    return sector


def _background(rng: np.random.Generator, n: int, channels: int, size: int) -> np.ndarray:
    """1/f random fields, (N, C, size, size) float64, zero mean, peak |value| = 1 per image."""
    if channels == 1:
        white = rng.standard_normal((n, 1, size, size))
    else:  # one draw, image-major, so image i's noise does not depend on n
        draw = rng.standard_normal((n, 1 + channels, size, size))
        white = np.sqrt(BACKGROUND_SHARED) * draw[:, :1] + np.sqrt(1 - BACKGROUND_SHARED) * draw[:, 1:]
    fu = freq_index(size)[:, None] / (size / 2)
    fv = freq_index(size)[None, :] / (size / 2)
    radius = np.sqrt(fu**2 + fv**2)
    amplitude = np.where(radius > 0, 1.0 / np.maximum(radius, 1e-12), 0.0)  # DC removed
    field = np.fft.ifft2(np.fft.fft2(white) * amplitude).real
    return field / np.abs(field).max(axis=(1, 2, 3), keepdims=True)


def _pattern(rng: np.random.Generator, labels: np.ndarray, support: np.ndarray) -> np.ndarray:
    """Band-and-sector limited random textures, (N, size, size) float64, peak |value| = 1.

    support: (n_classes, size, size) bool, the bins class c may use.
    """
    n = labels.shape[0]
    size = support.shape[-1]
    draw = rng.standard_normal((n, 2, size, size))
    coeff = draw[:, 0] + 1j * draw[:, 1]
    pattern = np.fft.ifft2(coeff * support[labels]).real
    peak = np.abs(pattern).max(axis=(1, 2), keepdims=True)
    return pattern / np.where(peak > 0, peak, 1.0)


def planted_images(
    n: int,
    *,
    band: int | tuple[int, ...] = 0,
    strength: float | tuple[float, ...] = 1.0,
    n_bands: int = 8,
    partition: str = "linf",
    size: int = 32,
    channels: int = 1,
    n_classes: int = 4,
    seed: int = 0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Images whose label is carried by band ``band`` only (see the module docstring).

    band: k in 0 … n_bands−1, or a tuple (k1, k2, …) of distinct bands that all carry the
    label, with ``strength`` (s1, s2, …) the peak amplitude of each pattern relative to the
    background's peak (strength 0 plants nothing). partition: 'linf' or 'l2' (the masks of
    ``iaside.spectral.band_masks(size, size, n_bands, partition)``).

    Returns images (N, C, size, size) float32 in [0, 1] (no clipping) and labels (N,) int64,
    balanced over ``n_classes`` and shuffled. The background of image i depends only on
    (seed, i, size, channels); labels only on (seed, n, n_classes).
    """
    bands = (band,) if isinstance(band, (int, np.integer)) else tuple(int(b) for b in band)
    strengths = (strength,) * len(bands) if isinstance(strength, (int, float)) else tuple(strength)
    if len(strengths) != len(bands):
        raise IasideError(f"{len(bands)} bands {bands} but {len(strengths)} strengths {strengths}")
    if len(set(bands)) != len(bands) or any(not 0 <= b < n_bands for b in bands):
        raise IasideError(f"band {bands} must be distinct values in 0..{n_bands - 1}")
    if any(s < 0 for s in strengths):
        raise IasideError(f"strength {strengths} must be non-negative")
    if partition not in ("linf", "l2"):
        raise IasideError(f"partition {partition!r}: planted images need Hermitian-symmetric bands, use 'linf' or 'l2'")
    if n < 1 or channels < 1 or n_classes < 2:
        raise IasideError(f"need n >= 1, channels >= 1, n_classes >= 2; got {n}, {channels}, {n_classes}")
    masks = band_masks(size, size, n_bands, partition).numpy()
    sectors = orientation_sectors(size, n_classes)
    by_class = sectors[None] == np.arange(n_classes)[:, None, None]  # (n_classes, size, size)

    labels = np.random.default_rng([seed, 2]).permutation(np.arange(n) % n_classes)
    images = _background(np.random.default_rng([seed, 0]), n, channels, size)
    pattern_rng = np.random.default_rng([seed, 1])
    for k, s in zip(bands, strengths):
        support = by_class & masks[k][None]
        empty = np.flatnonzero(~support.any(axis=(1, 2)))
        if empty.size:
            raise IasideError(
                f"band {k} of a {size}x{size} image ({partition}, {n_bands} bands) has no bins at the "
                f"orientation of class {int(empty[0])}; use fewer classes, fewer bands or a larger size"
            )
        images = images + s * _pattern(pattern_rng, labels, support)[:, None]
    images = 0.5 + 0.5 / (1.0 + sum(strengths)) * images
    # the clamp only absorbs float rounding (|image − 0.5| ≤ 0.5 holds exactly in real arithmetic)
    return torch.from_numpy(images.astype(np.float32)).clamp_(0.0, 1.0), torch.from_numpy(labels.astype(np.int64))
