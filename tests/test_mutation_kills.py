"""Tests that kill mutants `make mutation` (mutmut) found surviving; docs/proofs.md §6 lists
each module's survivors and why the ones left are equivalent."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from iaside.errors import IasideError
from iaside.spectral import band_masks, freq_radius, square_band_masks_centred


@pytest.mark.parametrize("h, w", [(6, 10), (9, 4)])
def test_freq_radius_is_the_normalised_distance_of_every_bin(h, w):
    """Nyquist is 1 on each axis: radius of bin (u, v) = |2·f_u| and |2·f_v| combined by max (ℓ∞)
    or Euclidean norm (ℓ2), with f the cycles per sample of numpy's fftfreq."""
    fu, fv = np.abs(2 * np.fft.fftfreq(h))[:, None], np.abs(2 * np.fft.fftfreq(w))[None, :]
    np.testing.assert_allclose(freq_radius(h, w, "linf"), np.maximum(fu, fv), rtol=0, atol=1e-15)
    np.testing.assert_allclose(freq_radius(h, w, "l2"), np.sqrt(fu**2 + fv**2), rtol=0, atol=1e-15)
    assert freq_radius(h, w).shape == (h, w)
    # the radial bands are floor(M·r), capped at M − 1
    for partition in ("linf", "l2"):
        r = freq_radius(h, w, partition)
        index = np.minimum(np.floor(2 * r + 1e-12), 1).astype(int)
        np.testing.assert_array_equal(band_masks(h, w, 2, partition).numpy().argmax(axis=0), index)
    with pytest.raises(IasideError, match="radius"):
        freq_radius(h, w, "square")


def test_square_masks_are_boolean():
    masks = square_band_masks_centred(8, 3)
    assert masks.dtype == np.bool_ and band_masks(8, 8, 3, "square").dtype == torch.bool
    assert masks.sum(axis=0).max() == 1 and masks.sum() == 64
