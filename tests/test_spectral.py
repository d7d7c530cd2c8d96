"""Band masks against hand-computed cases; band split exactness; Hermitian symmetry; SNR."""

import numpy as np
import pytest
import torch

from iaside.errors import IasideError
from iaside.spectral import (
    band_energy,
    band_masks,
    freq_index,
    freq_radius,
    is_hermitian,
    snr_db,
    split_bands,
    split_bands_complex,
    square_band_masks_centred,
)


def band_of(masks: torch.Tensor) -> np.ndarray:
    """(M, H, W) one-hot masks -> (H, W) band index."""
    assert torch.all(masks.sum(0) == 1), "bands must be disjoint and cover the spectrum"
    return masks.int().argmax(0).numpy()


def test_freq_index_follows_dft_order():
    assert freq_index(4).tolist() == [0, 1, -2, -1]
    assert freq_index(5).tolist() == [0, 1, 2, -2, -1]
    assert freq_radius(4, 4, "linf")[2, 0] == 1.0  # Nyquist is 1


def test_linf_masks_by_hand():
    # 8x8, M=4: band = max(|u|, |v|) capped at 3; |u| over the DFT order is 0 1 2 3 4 3 2 1.
    bands = band_of(band_masks(8, 8, 4, "linf"))
    absu = np.array([0, 1, 2, 3, 4, 3, 2, 1])
    assert np.array_equal(bands, np.minimum(np.maximum(absu[:, None], absu[None, :]), 3))
    assert band_masks(8, 8, 4, "linf").flatten(1).sum(1).tolist() == [1, 8, 16, 39]


def test_l2_masks_by_hand_and_differ_from_linf():
    # 16x16, M=8: band = floor(sqrt(u² + v²)) capped at 7.
    l2 = band_of(band_masks(16, 16, 8, "l2"))
    linf = band_of(band_masks(16, 16, 8, "linf"))
    assert l2[3, 3] == 4 and linf[3, 3] == 3  # r = sqrt(18) = 4.24 versus max = 3
    assert l2[0, 5] == 5 and l2[4, 3] == 5  # 3-4-5 triangle lands exactly on the edge of band 5
    assert l2[8, 8] == 7  # the corner goes to the last band


def test_band_edge_goes_to_upper_band():
    # 6x6, M=3: M·r = |u| exactly, so |u| = 1 is on the edge between bands 0 and 1.
    bands = band_of(band_masks(6, 6, 3, "linf"))
    assert bands[0, 0] == 0 and bands[1, 0] == 1 and bands[0, 2] == 2 and bands[3, 3] == 2


def test_rectangular_masks_normalise_each_axis():
    # 8x16, M=4: M·|fu| = |u|, M·|fv| = |v|/2.
    bands = band_of(band_masks(8, 16, 4, "linf"))
    assert bands[0, 1] == 0 and bands[0, 2] == 1 and bands[0, 3] == 1 and bands[1, 0] == 1
    assert bands[0, 8] == 3 and bands[4, 0] == 3


def test_paper_squares_by_hand():
    # d=8, M=4: sides 2, 4, 6, 8 starting at 3, 2, 1, 0 on the centred spectrum.
    centred = square_band_masks_centred(8, 4)
    assert centred.reshape(4, -1).sum(1).tolist() == [4, 12, 20, 28]
    assert centred[0, 3:5, 3:5].all() and not centred[0, 2, 2]
    # d=10, M=4: sides int(2.5)=2, 5, int(7.5)=7, 10; starts 4, 2, 1, 0 (asymmetric).
    c10 = square_band_masks_centred(10, 4)
    assert c10[0, 4:6, 4:6].all() and c10[0].sum() == 4
    assert c10[1, 2, 2] and c10[1, 6, 6] and not c10[1, 7, 7] and c10[1].sum() == 25 - 4
    assert c10[2, 1, 1] and c10[2, 7, 7] and not c10[2, 8, 8]
    # the unshifted version puts DC in band 0
    m = band_masks(10, 10, 4, "square")
    assert m[0, 0, 0] and torch.all(m.sum(0) == 1)
    assert not is_hermitian(m)


@pytest.mark.parametrize("h,w", [(16, 16), (17, 23), (32, 20), (9, 64)])
@pytest.mark.parametrize("partition", ["linf", "l2"])
def test_bands_sum_to_input_and_are_hermitian(h, w, partition):
    m = 4
    masks = band_masks(h, w, m, partition)
    assert is_hermitian(masks)
    x = torch.rand(3, 2, h, w)
    bands = split_bands(x, masks)
    assert bands.shape == (3, m, 2, h, w)
    assert torch.allclose(bands.sum(1), x, atol=1e-5)
    # the real rFFT path equals the full complex split, whose imaginary part vanishes
    full = split_bands_complex(torch.fft.fft2(x), masks)
    assert torch.allclose(full.real, bands, atol=1e-5)
    assert full.imag.abs().max() < 1e-5


def test_too_small_and_non_square_are_refused():
    with pytest.raises(IasideError, match="too small"):
        band_masks(15, 64, 8, "linf")
    with pytest.raises(IasideError, match="square"):
        band_masks(32, 48, 4, "square")
    with pytest.raises(IasideError, match="partition"):
        band_masks(32, 32, 4, "l3")


def test_band_energy_is_parseval_and_snr_localises():
    x = torch.rand(2, 3, 16, 16, dtype=torch.float64)
    masks = band_masks(16, 16, 4, "linf")
    energy = band_energy(x, masks)
    assert torch.allclose(energy.sum(1), (x**2).sum((1, 2, 3)) * 256)  # Parseval: Σ|X|² = HW Σ x²
    delta = split_bands(torch.randn(2, 3, 16, 16, dtype=torch.float64), masks)[:, 2] * 0.1
    snr = snr_db(x, x + delta, masks)
    assert torch.isfinite(snr[:, 2]).all()
    assert (snr[:, [0, 1, 3]] > 100).all()  # a perturbation confined to band 2 leaves the others clean
