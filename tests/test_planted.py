"""Planted-frequency ground truth: the generator's guarantees, and I-ASIDE finding the band.

The full study (8 bands, 32×32, low/middle/high k, two-band ratios) is studies/planted.py;
here: the generator's contract, and a tiny CNN per case trained in seconds.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from test_oracles import spec_band_index
from torch import nn

import iaside
from iaside.errors import IasideError
from iaside.models.base import Classifier
from iaside.spectral import band_masks, split_bands
from iaside.synthetic import orientation_sectors, planted_images
from iaside.training import fit_one_cycle


def sector_rule_accuracy(x: torch.Tensor, y: torch.Tensor, band: int, n_bands: int, partition: str) -> float:
    """Accuracy of 'label = the orientation sector with most energy in this band', with band
    masks re-derived from docs/method.md §2 (test_oracles), not from iaside.spectral."""
    size, n_classes = x.shape[-1], int(y.max()) + 1
    in_band = spec_band_index(size, size, n_bands, partition) == band
    sectors = orientation_sectors(size, n_classes)
    power = np.abs(np.fft.fft2(x.double().numpy())).sum(1) ** 2  # (N, H, W)
    energy = np.stack([power[:, in_band & (sectors == c)].sum(1) for c in range(n_classes)], 1)
    return float((energy.argmax(1) == y.numpy()).mean())


def test_shapes_range_labels_and_seeding():
    x, y = planted_images(40, band=2, size=24, channels=3, n_classes=5, n_bands=6, seed=3)
    assert x.shape == (40, 3, 24, 24) and x.dtype == torch.float32
    assert y.shape == (40,) and y.dtype == torch.int64
    assert x.min() >= 0.0 and x.max() <= 1.0 and x.max() - x.min() > 0.5
    assert np.bincount(y.numpy(), minlength=5).tolist() == [8] * 5  # balanced
    x2, y2 = planted_images(40, band=2, size=24, channels=3, n_classes=5, n_bands=6, seed=3)
    assert torch.equal(x, x2) and torch.equal(y, y2)
    x3, _ = planted_images(40, band=2, size=24, channels=3, n_classes=5, n_bands=6, seed=4)
    assert not torch.allclose(x, x3)
    assert not torch.allclose(x[:, 0], x[:, 1])  # colour: the background is not grey


@pytest.mark.parametrize("partition", ["linf", "l2"])
@pytest.mark.parametrize("band", [0, 3, 7])
def test_only_the_planted_band_depends_on_the_label(partition, band):
    """Same seed, other labels (4 classes vs 2): every other band is identical (no clipping,
    no label-dependent rescaling), while the planted band differs."""
    masks = band_masks(32, 32, 8, partition)
    a, ya = planted_images(24, band=band, partition=partition, n_classes=4, seed=1)
    b, yb = planted_images(24, band=band, partition=partition, n_classes=2, seed=1)
    assert not torch.equal(ya, yb)
    bands_a, bands_b = split_bands(a.double(), masks), split_bands(b.double(), masks)
    others = [j for j in range(8) if j != band]
    assert (bands_a[:, others] - bands_b[:, others]).abs().max() < 1e-6
    assert (bands_a[:, band] - bands_b[:, band]).abs().max() > 0.05
    # and the background alone (strength 0) has the same out-of-band content, up to the scale A
    bg, _ = planted_images(24, band=band, partition=partition, strength=0.0, seed=1)
    centred_a, centred_bg = split_bands(a.double() - 0.5, masks), split_bands(bg.double() - 0.5, masks)
    assert (centred_a[:, others] - 0.5 * centred_bg[:, others]).abs().max() < 1e-6  # A = 0.5/(1+1) vs 0.5/(1+0)


@pytest.mark.parametrize("partition", ["linf", "l2"])
@pytest.mark.parametrize("band", [0, 1, 4, 7])
def test_the_label_is_in_band_k_and_nowhere_else(partition, band):
    x, y = planted_images(200, band=band, partition=partition, seed=2)
    assert sector_rule_accuracy(x, y, band, 8, partition) > 0.95
    for other in {0, 3, 6, 7} - {band}:
        assert sector_rule_accuracy(x, y, other, 8, partition) < 0.45  # 4 classes: chance is 0.25


def test_two_band_variant_and_strength():
    x, y = planted_images(200, band=(1, 5), strength=(2.0, 1.0), seed=5)
    assert sector_rule_accuracy(x, y, 1, 8, "linf") > 0.95 and sector_rule_accuracy(x, y, 5, 8, "linf") > 0.95
    masks = band_masks(32, 32, 8, "linf")
    bg, _ = planted_images(200, band=(1, 5), strength=(0.0, 0.0), seed=5)
    # planted amplitude per band = band content minus the (rescaled) background's; peak ratio = s1/s2
    a = 0.5 / (1 + 3.0) / 0.5  # scale A(s) relative to A(0)
    planted = split_bands(x.double() - 0.5, masks) - a * split_bands(bg.double() - 0.5, masks)
    peak = planted.abs().amax(dim=(2, 3, 4))  # (N, M)
    assert torch.allclose(peak[:, 1] / peak[:, 5], torch.full((200,), 2.0, dtype=torch.float64), rtol=1e-4)
    assert peak[:, [0, 2, 3, 4, 6, 7]].max() < 1e-6
    x0, y0 = planted_images(200, band=(1, 5), strength=(1.0, 0.0), seed=5)
    assert sector_rule_accuracy(x0, y0, 5, 8, "linf") < 0.45  # strength 0 plants nothing


def test_refuses_what_it_cannot_plant():
    with pytest.raises(IasideError, match="Hermitian"):
        planted_images(4, partition="square")
    with pytest.raises(IasideError, match="class"):
        planted_images(4, band=0, n_classes=8)  # band 0 of 32×32 / 8 bands has 4 orientations
    with pytest.raises(IasideError, match="strengths"):
        planted_images(4, band=(1, 2), strength=(1.0,))
    with pytest.raises(IasideError, match="distinct"):
        planted_images(4, band=(2, 2))


def small_cnn(n_classes: int = 4) -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(1, 12, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(12, 24, 3, stride=2, padding=1),
        nn.ReLU(),
        nn.Conv2d(24, 24, 3, stride=2, padding=1),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(24, n_classes),
    )


def train(x: torch.Tensor, y: torch.Tensor, epochs: int = 3, lr: float = 5e-3) -> nn.Module:
    torch.manual_seed(0)
    net = small_cnn()
    return fit_one_cycle(net, x, y, epochs, lr)


@pytest.mark.parametrize("band,partition", [(0, "linf"), (3, "l2")])
def test_iaside_puts_the_largest_share_on_the_planted_band(band, partition):
    """A CNN trained on 16×16 images whose label lives in band k (of 4): SID peaks at k."""
    common = dict(band=band, partition=partition, size=16, n_bands=4)
    x, y = planted_images(1500, seed=0, **common)
    net = train(x, y)
    xt, yt = planted_images(200, seed=1, **common)
    with torch.no_grad():
        accuracy = (net(xt).argmax(1) == yt).float().mean().item()
    assert accuracy > 0.7  # measured 0.89 (k=0) and 0.84 (k=3)
    r = iaside.explain(
        Classifier(net, (0.0,), (1.0,)),
        (xt[:16], yt[:16]),
        bands=4,
        partition=partition,
        n_bootstrap=200,
        show_progress=False,
    )
    assert int(np.argmax(r.sid.value)) == band
    assert r.sid.value[band] > 0.8
    assert int(np.argmax(r.phi.value)) == band and r.shares.value[band] > 0.8
    assert r.sid.low[band] > 0.5  # the bootstrap interval agrees


def test_bare_module_on_grey_planted_images():
    """A bare nn.Module without a data config is wrapped with the identity for any channel count."""
    x, y = planted_images(4, size=16, n_bands=4)  # channels=1 by default
    net = nn.Sequential(nn.Conv2d(1, 4, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten()).eval()
    r = iaside.explain(net, (x, y), bands=4, n_bootstrap=0, show_progress=False)
    assert r.phi.value.shape == (4,)


def test_grey_planted_images_with_a_data_config_and_batchnorm():
    """The documented ways in work: a 1-channel DataConfig, and a network with batch norm
    (its 0-dim num_batches_tracked buffer once broke the model fingerprint)."""
    x, y = planted_images(4, size=16, n_bands=4)
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.AdaptiveAvgPool2d(1), nn.Flatten()).eval()
    r = iaside.explain(
        net,
        (x, y),
        bands=4,
        n_bootstrap=0,
        show_progress=False,
        data_config=iaside.DataConfig(channels=1, mean=(0.0,), std=(1.0,)),
    )
    assert r.phi.value.shape == (4,) and abs(r.phi.value.sum() - (r.v_nats[-1] - r.v_nats[0])) < 1e-9
