"""Every fill against its definition computed here with numpy on tiny images (docs/method.md §3
and §9): the pixel fills, the paper preset's Gaussian spectrum, the per-image view's image-mean
and fixed fills, the per-image generators they draw from, and what each fill declares to the
engine. Fast: the module's mutation selection (benchmarks/mutation.py ``fills``) runs this file."""

import numpy as np
import pytest
import torch

from iaside.errors import IasideError
from iaside.fills import (
    FILLS,
    IMAGE_FILLS,
    FixedFill,
    GaussianSpectrumFill,
    ImageMeanFill,
    MeanFill,
    NoiseFill,
    PartnerFill,
    ZeroFill,
    image_generator,
    make_fill,
    make_image_fill,
)
from iaside.spectral import band_masks


def _torch_seed(seed: int, index: int, salt: int) -> int:
    """The 64-bit torch seed of (seed, image index, salt): NumPy's SeedSequence's first two
    32-bit words, high word first."""
    words = np.random.SeedSequence([seed, index, salt]).generate_state(4, dtype=np.uint32)
    return int(words[0]) * 2**32 + int(words[1])


def _images(b: int = 3, c: int = 2, h: int = 6, w: int = 8, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = rng.uniform(size=(b, c, h, w)).astype(np.float32)
    x[:, -1] *= 0.2  # channels of different energy and mean
    return x


def test_image_generators_depend_on_seed_index_and_salt_and_use_all_64_bits():
    for args in ((0, 0, 1), (7, 3, 2), (2**31, 12345, 1)):
        g = image_generator(*args)
        assert g.initial_seed() == _torch_seed(*args)
        expected = torch.randn(5, generator=torch.Generator().manual_seed(_torch_seed(*args)))
        assert torch.equal(torch.randn(5, generator=g), expected)
    seeds = {image_generator(s, i, k).initial_seed() for s in (0, 1) for i in (0, 1) for k in (1, 2)}
    assert len(seeds) == 8 and max(seeds) >= 2**32  # every (seed, index, salt) its own stream, above 32 bits


def test_zero_partner_and_mean_fills_are_their_images():
    x = torch.from_numpy(_images())
    zero = make_fill("zero", seed=3)(x, torch.tensor([0, 1, 2]))
    assert zero.dtype == torch.float32 and zero.shape == x.shape and not zero.any()
    partner = x.flip(0)
    assert make_fill("partner", seed=3)(x, torch.tensor([0, 1, 2]), partner) is partner
    data = _images(5, seed=1)
    mean = make_fill("mean")
    mean.fit([torch.from_numpy(data[:2]), torch.from_numpy(data[2:])], band_masks(6, 8, 2))
    got = mean(x[:2], torch.tensor([4, 0]))
    assert got.dtype == torch.float32 and got.shape == (2, 2, 6, 8)
    np.testing.assert_allclose(
        got.numpy(), np.broadcast_to(data.astype(np.float64).mean(axis=0), (2, 2, 6, 8)), rtol=1e-6
    )


def _noise_by_numpy(data: np.ndarray, masks: np.ndarray, seed: int, indices: list[int], c: int, h: int, w: int):
    """The noise fill from its definition: white noise of the image's generator (salt 1), split
    into bands by the DFT, each band and channel scaled to the data's mean energy there."""
    m = masks.astype(np.float64)
    target = np.einsum("bchw,khw->ck", np.abs(np.fft.fft2(data.astype(np.float64))) ** 2, m) / len(data)
    out = []
    for i in indices:
        white = torch.randn((c, h, w), generator=torch.Generator().manual_seed(_torch_seed(seed, i, 1)))
        spectrum = np.fft.fft2(white.numpy().astype(np.float64))  # (C, H, W)
        bands = np.fft.ifft2(spectrum[None] * m[:, None]).real  # (M, C, H, W)
        energy = np.einsum("chw,khw->ck", np.abs(spectrum) ** 2, m)
        out.append(np.einsum("kchw,ck->chw", bands, np.sqrt(target / energy)))
    return target, np.stack(out)


def test_noise_fill_is_white_noise_of_the_image_scaled_band_by_band():
    data = _images(4, seed=2)
    masks = band_masks(6, 8, 3)
    fill = make_fill("noise", seed=5)
    fill.fit([torch.from_numpy(data[:1]), torch.from_numpy(data[1:])], masks)
    target, expected = _noise_by_numpy(data, masks.numpy(), 5, [7, 2], 2, 6, 8)
    assert fill.energy_per_band.dtype == torch.float64 and fill.energy_per_band.shape == (2, 3)
    np.testing.assert_allclose(fill.energy_per_band.numpy(), target, rtol=1e-12)
    got = fill(torch.from_numpy(data[:2]), torch.tensor([7, 2]))
    assert got.dtype == torch.float32 and got.shape == (2, 2, 6, 8)
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-4, atol=1e-5 * np.abs(expected).max())
    other = make_fill("noise", seed=6)
    other.fit([torch.from_numpy(data)], masks)
    assert not np.allclose(other(torch.from_numpy(data[:1]), torch.tensor([7])).numpy()[0], expected[0], atol=1e-3)


def test_gaussian_spectrum_fill_is_the_image_generators_complex_normal():
    x = torch.from_numpy(_images(2, 3, 4, 4))
    fill = make_fill("gaussian", seed=9)
    got = fill(x, torch.tensor([3, 0]))
    assert got.dtype == torch.complex64 and got.shape == (2, 3, 4, 4)
    for row, index in zip(got, (3, 0), strict=True):
        draw = 0.5 * torch.randn((2, 3, 4, 4), generator=torch.Generator().manual_seed(_torch_seed(9, index, 2)))
        assert torch.equal(row.real, draw[0]) and torch.equal(row.imag, draw[1])


def test_image_mean_fill_is_each_images_own_mean_colour():
    x = _images(3, 2, 5, 7)
    got = ImageMeanFill()(torch.from_numpy(x), torch.tensor([0, 1, 2]))
    expected = np.broadcast_to(x.astype(np.float64).mean(axis=(2, 3))[:, :, None, None], x.shape)
    assert got.shape == x.shape and got.dtype == torch.float32 and got.is_contiguous()
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-6)
    got[0, 0, 0, 0] = -1.0  # a real image, not a view of one value
    assert got[0, 0, 1, 1] != -1.0


def test_fixed_fill_is_the_given_image_for_every_image_in_the_batch_dtype():
    image = torch.from_numpy(_images(1, 2, 5, 7, seed=4)[0].astype(np.float64))
    fill = FixedFill(image, seed=3)
    assert fill.seed == 3 and fill.image is image and repr(fill) == "FixedFill(seed=3)"
    x = torch.zeros(4, 2, 5, 7, dtype=torch.float32)
    got = fill(x, torch.arange(4))
    assert got.dtype == torch.float32 and got.shape == x.shape and got.is_contiguous()
    np.testing.assert_allclose(got.numpy(), np.broadcast_to(image.numpy(), x.shape), rtol=1e-7)
    got[0, 0, 0, 0] = -1.0
    assert got[1, 0, 0, 0] != -1.0 and image[0, 0, 0] != -1.0


def test_image_fills_by_name_and_the_error_listing_them():
    assert IMAGE_FILLS == ("image-mean", "zero")
    assert type(make_image_fill("image-mean")) is ImageMeanFill and type(make_image_fill("zero")) is ZeroFill
    for name in ("partner", "mean", "fixed", "Image-mean"):
        with pytest.raises(IasideError) as caught:
            make_image_fill(name)
        assert str(caught.value) == f"--fill {name!r} is not one of image-mean, zero (or give --fill-from FOLDER)"


def test_every_fill_declares_its_domain_partner_fit_and_reuse():
    """The engine reads these, never the name (docs/method.md §9's table)."""
    image = torch.zeros(1, 2, 2)
    declared = {
        type(f).__name__: (f.name, f.domain, f.needs_partner, f.needs_fit, f.reuse_empty)
        for f in [make_fill(n) for n in FILLS] + [ImageMeanFill(), FixedFill(image)]
    }
    assert declared == {
        "PartnerFill": ("partner", "pixels", True, False, "partner"),
        "ZeroFill": ("zero", "pixels", False, False, "shared"),
        "MeanFill": ("mean", "pixels", False, True, "shared"),
        "NoiseFill": ("noise", "pixels", False, True, None),
        "GaussianSpectrumFill": ("gaussian", "spectrum", False, False, None),
        "ImageMeanFill": ("image-mean", "pixels", False, False, None),
        "FixedFill": ("fixed", "pixels", False, False, None),
    }
    assert [type(make_fill(n)) for n in FILLS] == [PartnerFill, ZeroFill, MeanFill, NoiseFill, GaussianSpectrumFill]
    assert make_fill("noise", seed=11).seed == 11 and GaussianSpectrumFill(seed=2).seed == 2


def test_every_fill_lands_on_the_batchs_device():
    """The fill is built on the CPU (fitted statistics, seeded CPU generators) and handed back on the
    images' device: torch's meta device stands in for an accelerator here (placement, no data)."""
    x = torch.from_numpy(_images(2, 2, 6, 8))
    meta, indices = x.to("meta"), torch.arange(2)
    # (zero and image-mean are built from the images themselves, on their device by construction)
    fills = [make_fill(n, seed=1) for n in ("mean", "noise", "gaussian")] + [FixedFill(torch.ones(2, 6, 8).double())]
    for fill in fills:
        fill.fit([x], band_masks(6, 8, 2))
        got = fill(meta, indices)
        assert got.device.type == "meta" and got.shape == x.shape, type(fill).__name__
        assert got.dtype == (torch.complex64 if fill.domain == "spectrum" else torch.float32), type(fill).__name__
