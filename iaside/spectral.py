"""Spectral players: band masks, band split, energy per band and spectral SNR.

Every mask here is in *unshifted* DFT order (index 0 = DC), shape (M, H, W) bool, and the
masks of one partition are disjoint and cover the whole spectrum. Band 0 holds DC.
"""

from __future__ import annotations

import numpy as np
import torch

from .errors import IasideError

PARTITIONS = ("linf", "l2", "square")
"""linf / l2: docs/method.md §2 radial bands (Hermitian-symmetric). square: the paper preset's nested
squares on the centred spectrum (docs/method.md §9; not Hermitian-symmetric)."""


def freq_index(n: int) -> np.ndarray:
    """Signed integer frequency of each DFT bin, (n,) int64, in −⌊n/2⌋ … ⌈n/2⌉−1."""
    return np.round(np.fft.fftfreq(n) * n).astype(np.int64)


def freq_radius(h: int, w: int, partition: str = "linf") -> np.ndarray:
    """Normalised radius of every DFT bin, (H, W) float64; Nyquist is 1 on each axis."""
    fu = freq_index(h)[:, None] / (h / 2)
    fv = freq_index(w)[None, :] / (w / 2)
    if partition == "linf":
        return np.maximum(np.abs(fu), np.abs(fv))
    if partition == "l2":
        return np.sqrt(fu**2 + fv**2)
    raise IasideError(f"partition {partition!r} has no radius; use 'linf' or 'l2'")


def _radial_band_index(h: int, w: int, n_bands: int, partition: str) -> np.ndarray:
    """Band of every DFT bin, (H, W) int64: floor(M·r) capped at M−1, in exact integers.

    r·M = 2|u|M/H on each axis, so scaling by H·W keeps every comparison an integer one and
    bins that sit exactly on a band edge land in the upper band, as docs/method.md §2 says.
    """
    a = np.abs(freq_index(h))[:, None] * (2 * n_bands * w)  # = M·|fu| · H·W
    b = np.abs(freq_index(w))[None, :] * (2 * n_bands * h)  # = M·|fv| · H·W
    scale = h * w
    if partition == "linf":
        band = np.maximum(a, b) // scale
    else:
        q = a * a + b * b  # (M·r·H·W)², exact in int64 for any realistic size
        root = np.floor(np.sqrt(q.astype(np.float64))).astype(np.int64)
        root -= (root * root > q).astype(np.int64)
        root += ((root + 1) * (root + 1) <= q).astype(np.int64)  # root = isqrt(q)
        band = root // scale
    return np.minimum(band, n_bands - 1)


def square_band_masks_centred(d: int, n_bands: int) -> np.ndarray:
    """The paper preset's nested squares on the fftshift-ed d×d spectrum, (M, d, d) bool.

    Band i = square of side int(d·(i+1)/M) minus square of side int(d·i/M), each square
    starting at index (d − side)//2.
    """
    masks = np.zeros((n_bands, d, d), dtype=bool)
    covered = np.zeros((d, d), dtype=bool)
    for i in range(n_bands):
        side = int(d * (i + 1) / n_bands)
        start = (d - side) // 2
        square = np.zeros((d, d), dtype=bool)
        square[start : start + side, start : start + side] = True
        masks[i] = square & ~covered
        covered |= square
    return masks


def band_masks(h: int, w: int, n_bands: int, partition: str = "linf") -> torch.Tensor:
    """Disjoint band masks covering the spectrum, (M, H, W) bool, unshifted DFT order.

    Raises IasideError when min(H, W) < 2M (a band would be empty) or, for 'square', when the
    image is not square (the paper's masks are defined on a d×d spectrum).
    """
    if partition not in PARTITIONS:
        raise IasideError(f"partition {partition!r} is not one of {', '.join(PARTITIONS)}")
    if n_bands < 1:
        raise IasideError(f"--bands must be at least 1, got {n_bands}")
    if min(h, w) < 2 * n_bands:
        raise IasideError(
            f"image {h}x{w} is too small for {n_bands} bands: min(H, W) must be >= {2 * n_bands}; "
            f"use fewer bands or a larger --input-size"
        )
    if partition == "square":
        if h != w:
            raise IasideError(f"the paper preset needs square images, got {h}x{w}; set --input-size to a square")
        centred = square_band_masks_centred(h, n_bands)
        return torch.from_numpy(np.fft.ifftshift(centred, axes=(-2, -1)).copy())
    index = _radial_band_index(h, w, n_bands, partition)
    return torch.from_numpy(index[None] == np.arange(n_bands)[:, None, None])


def is_hermitian(masks: torch.Tensor) -> bool:
    """Whether every mask equals its point reflection m[−u, −v] (real band images)."""
    reflected = torch.roll(torch.flip(masks, dims=(-2, -1)), shifts=(1, 1), dims=(-2, -1))
    return bool(torch.equal(masks, reflected))


def _rfft_masks(masks: torch.Tensor) -> torch.Tensor:
    """Hermitian masks cut to the rfft half-spectrum, (M, H, W//2+1)."""
    return masks[..., : masks.shape[-1] // 2 + 1]


def split_bands(x: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """Band images of real images, (B, C, H, W) -> (B, M, C, H, W), real; Σ over M = x.

    Needs Hermitian-symmetric masks (linf, l2); one rFFT and M inverse rFFTs per image.
    """
    h, w = x.shape[-2:]
    spectrum = torch.fft.rfft2(x)  # (B, C, H, W//2+1)
    half = _rfft_masks(masks).to(x.device)
    return torch.fft.irfft2(spectrum[:, None] * half[None, :, None], s=(h, w))


def split_bands_complex(spectrum: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """Complex band images of a full unshifted spectrum, (B, C, H, W) -> (B, M, C, H, W).

    For masks that are not Hermitian-symmetric (the paper preset's squares).
    """
    return torch.fft.ifft2(spectrum[:, None] * masks.to(spectrum.device)[None, :, None])


def band_energy(x: torch.Tensor, masks: torch.Tensor, per_channel: bool = False) -> torch.Tensor:
    """Energy spectral density per band, (B, C, H, W) -> (B, M) float64: Σ_{c, (u,v)∈band} |X|².

    With ``per_channel`` the channel sum is skipped: (B, C, M).
    """
    power = torch.fft.fft2(x.to(torch.float64)).abs().square()  # (B, C, H, W)
    energy = torch.einsum("bchw,mhw->bcm", power, masks.to(power.device, torch.float64))
    return energy if per_channel else energy.sum(dim=1)


def radial_grid_masks(h: int, w: int, n_rings: int, partition: str = "linf") -> torch.Tensor:
    """A finer radial grid than the bands (same rule, more rings), (n_rings, H, W) bool."""
    index = _radial_band_index(h, w, n_rings, partition)
    return torch.from_numpy(index[None] == np.arange(n_rings)[:, None, None])


def snr_db(clean: torch.Tensor, perturbed: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """Spectral SNR per band in dB, (B, C, H, W) ×2 -> (B, M) float64 (docs/method.md §7).

    SNR_i = 10·log10(ESD_i(x) / ESD_i(x̃ − x)); +inf where the perturbation has no energy.
    """
    signal = band_energy(clean, masks)
    noise = band_energy(perturbed.to(clean.dtype) - clean, masks)
    return 10.0 * (torch.log10(signal) - torch.log10(noise))
