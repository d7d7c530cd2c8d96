"""The paper preset (docs/method.md §9) pinned: configuration, masks, post-processing, empty coalition,
and a whole run (coalition images → v → φ → SID → score) computed by hand on a 4×4 image.

test_spectral.py pins the squares for d = 8, 10 (M = 4); test_engine.py checks rendering
against the authors' recipe in NumPy. This file adds what those do not cover.
"""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

import iaside
from iaside.coalitions import CoalitionSynthesizer
from iaside.config import ExplainConfig
from iaside.fills import GaussianSpectrumFill, PartnerFill, make_fill
from iaside.game import coalition_bits
from iaside.models.base import Classifier
from iaside.spectral import band_masks, square_band_masks_centred


def test_preset_is_a_configuration():
    cfg = ExplainConfig.build("paper")
    assert (cfg.partition, cfg.synthesis, cfg.fill, cfg.clip, cfg.preset) == ("square", "paper", "partner", False, "paper")
    assert ExplainConfig.build("paper", fill="gaussian").fill == "gaussian"  # the user's choice wins
    assert ExplainConfig.build().synthesis == "sum"
    assert isinstance(make_fill("random"), PartnerFill)  # the authors' name for the partner fill


def test_square_masks_for_the_default_size_and_odd_sizes():
    # d = 32, M = 8: sides 4, 8, …, 32, so band i holds (4(i+1))² − (4i)² bins.
    centred = square_band_masks_centred(32, 8)
    assert centred.reshape(8, -1).sum(1).tolist() == [16 * (2 * i + 1) for i in range(8)]
    assert centred[0, 14:18, 14:18].all() and centred[0].sum() == 16  # starts at (32 − 4)//2 = 14
    # d = 9, M = 3 (odd): sides 3, 6, 9 start at 3, 1, 0; the centre (DC) is index 4.
    c9 = square_band_masks_centred(9, 3)
    assert c9[0, 3:6, 3:6].all() and c9[0].sum() == 9
    assert c9[1, 1:7, 1:7].sum() == 36 - 9 and not c9[1, 0, 0] and c9[1, 1, 1]
    assert c9[2, 0, 0] and c9[2].sum() == 81 - 36
    # unshifted (the engine's order): for d = 8, M = 4 band 0 is the 2×2 square of frequencies
    # {−1, 0}²: bins (0, 0), (0, 7), (7, 0), (7, 7), an asymmetric set (not Hermitian).
    m = band_masks(8, 8, 4, "square")
    assert np.argwhere(m[0].numpy()).tolist() == [[0, 0], [0, 7], [7, 0], [7, 7]]
    assert torch.all(m.sum(0) == 1)
    for d, bands in [(16, 8), (17, 4), (224, 8)]:
        sq = band_masks(d, d, bands, "square")
        assert torch.all(sq.sum(0) == 1) and sq[0, 0, 0]


def test_post_processing_abs_minmax_clip_and_empty():
    """Every non-empty coalition image is abs(), min–max'd to exactly [0, 1]; the empty one is 0."""
    d, m = 16, 4
    g = torch.Generator().manual_seed(0)
    x = torch.rand(2, 3, d, d, generator=g)
    synth = CoalitionSynthesizer(band_masks(d, d, m, "square"), "paper")
    for fill in (torch.zeros_like(x), x.flip(0), GaussianSpectrumFill(seed=1)(x, torch.tensor([0, 1]))):
        prep = synth.prepare(x, fill)
        bits = torch.from_numpy(coalition_bits(m)).float()
        images = synth.render(prep.base[0], prep.deltas[0], bits)
        assert images[0].abs().max() == 0  # the empty coalition, whatever the fill
        flat = images[1:].flatten(1)
        assert torch.all(flat.min(1).values == 0) and torch.allclose(flat.max(1).values, torch.ones(2**m - 1))
    # a non-Hermitian band makes complex coalition images: abs() is not the real part
    z = torch.fft.ifft2(torch.fft.fft2(x[0]) * band_masks(d, d, m, "square")[1])
    assert z.imag.abs().max() > 1e-2


def test_gaussian_fill_statistics_and_seeding():
    x = torch.zeros(3, 3, 32, 32)
    f = GaussianSpectrumFill(seed=4)
    z = f(x, torch.tensor([0, 1, 2]))
    assert z.is_complex() and z.shape == x.shape
    assert abs(z.real.std().item() - 0.5) < 0.02 and abs(z.imag.std().item() - 0.5) < 0.02
    assert abs(z.real.mean().item()) < 0.02
    assert torch.equal(z[2], f(x[:1], torch.tensor([2]))[0])  # seeded by image index


class MeanLogit(nn.Module):
    """Two classes, logits [4·mean(x), 0]: log p(class 0 | x) = log σ(4·mean(x))."""

    def forward(self, x):
        s = 4 * x.mean(dim=(1, 2, 3))
        return torch.stack([s, torch.zeros_like(s)], 1)


def log_sigmoid(t: float) -> float:
    return -math.log1p(math.exp(-t))


def test_whole_run_by_hand_on_a_4x4_image():
    """x[m, n] = 0.5 + 0.4·cos(2πm/4) (rows 0.9, 0.5, 0.1, 0.5), d = 4, M = 2, zero fill.

    Squares: band 0 = frequencies {−1, 0}² (DC and u = −1), band 1 = the rest (u = +1).
    - S = ∅: the all-zero image; mean 0.
    - S = {0}: 0.5 + 0.2·e^{−iπm/2}, abs = 0.7, √0.29, 0.3, √0.29 per row, min–max →
      1, (√0.29 − 0.3)/0.4, 0, (√0.29 − 0.3)/0.4; mean = (1 + 2·0.596291)/4 = 0.548146.
    - S = {1}: 0.2·e^{+iπm/2}, abs = 0.2 everywhere, a constant: min–max has no span and the
      preset returns 0 (the authors' script would divide by zero); mean 0.
    - S = N: x itself, min–max → 1, 0.5, 0, 0.5 per row; mean 0.5.
    v(S) = log σ(4·mean); φ0 = ½[v{0} − v∅] + ½[vN − v{1}], φ1 = ½[v{1} − v∅] + ½[vN − v{0}].
    SID = ψ/Σψ with ψ = φ − min φ = (1, 0) since φ0 > φ1; b = (1, 0.75), ‖b‖₂ = 1.25,
    b̂ = (0.8, 0.6), η = 1.75/2.5 = 0.7: score = |0.8 − 0.7|/|1 − 0.7| = 1/3,
    score_signed = (0.8 − 0.7)/(0.8 − 0.7) = 1.
    """
    rows = 0.5 + 0.4 * np.cos(2 * np.pi * np.arange(4) / 4)
    x = torch.tensor(np.repeat(rows[:, None], 4, 1), dtype=torch.float32)[None, None]
    r = iaside.explain(
        Classifier(MeanLogit(), (0.0,), (1.0,)), (x, torch.tensor([0])), bands=2, preset="paper", fill="zero",
        n_bootstrap=0, show_progress=False,
    )
    s0 = (math.sqrt(0.29) - 0.3) / 0.4
    v = np.array([log_sigmoid(0.0), log_sigmoid(4 * (1 + 2 * s0) / 4), log_sigmoid(0.0), log_sigmoid(4 * 0.5)])
    assert r.v_nats == pytest.approx(v, abs=1e-6)
    phi = np.array([0.5 * (v[1] - v[0]) + 0.5 * (v[3] - v[2]), 0.5 * (v[2] - v[0]) + 0.5 * (v[3] - v[1])])
    assert r.phi.value == pytest.approx(phi, abs=1e-6)
    assert phi[0] > phi[1]
    assert r.sid.value == pytest.approx([1.0, 0.0])
    assert r.score.value == pytest.approx(1 / 3)
    assert r.score_signed.value == pytest.approx(1.0)
    assert r.config["preset"] == "paper" and r.config["partition"] == "square"


def test_empty_coalition_is_zero_whatever_the_fill():
    """v(∅) is log p(y | all-zero image) for partner, zero and gaussian fills alike."""
    g = torch.Generator().manual_seed(2)
    x, y = torch.rand(4, 3, 16, 16, generator=g), torch.tensor([0, 1, 2, 0])
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 3)).eval()
    with torch.no_grad():
        expect = torch.log_softmax(net(torch.zeros(1, 3, 16, 16)), 1)[0, y].double().numpy()
    rows = []
    for fill in ("partner", "zero", "gaussian"):
        r = iaside.explain(net, (x, y), bands=4, preset="paper", fill=fill, n_bootstrap=0, show_progress=False)
        assert r.per_image["logp_nats"][:, 0] == pytest.approx(expect, abs=1e-6)
        rows.append(r.per_image["logp_nats"])
    assert not np.allclose(rows[0][:, 1:], rows[1][:, 1:])  # the fill matters elsewhere


def test_the_random_alias_is_stored_as_partner():
    """'random' (the authors' name) and 'partner' are one configuration: same identity in run folders and the store."""
    assert iaside.ExplainConfig.build(fill="random") == iaside.ExplainConfig.build(fill="partner")
    assert iaside.ExplainConfig.from_dict({"fill": "random"}).to_dict()["fill"] == "partner"
    with pytest.raises(iaside.IasideError, match="--fill 'blur' is not one of"):
        iaside.ExplainConfig.build(fill="blur")


def test_fills_declare_how_the_empty_coalition_is_reused():
    """The engine reads the declaration, never the name: a fill's reuse drives which passes are shared."""
    from iaside.fills import _FILL_CLASSES

    declared = {name: cls.reuse_empty for name, cls in _FILL_CLASSES.items()}
    assert declared == {"partner": "partner", "zero": "shared", "mean": "shared", "noise": None, "gaussian": None}


def test_explain_takes_a_configuration_and_keywords_override_it(cnn):
    """One object carries the numbers' settings; a keyword given beside it wins; a new estimator brings its draws."""
    x = torch.rand(4, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    base = iaside.ExplainConfig(bands=3, fill="zero", seed=5, n_bootstrap=20)
    result = iaside.explain(cnn, x, base, show_progress=False)
    assert {k: result.config[k] for k in ("bands", "fill", "seed", "n_bootstrap")} == \
        {"bands": 3, "fill": "zero", "seed": 5, "n_bootstrap": 20}
    again = iaside.explain(cnn, x, base, seed=6, show_progress=False)
    assert again.config["seed"] == 6 and again.config["bands"] == 3
    assert not np.allclose(again.score.low, result.score.low)  # the bootstrap seed changed the intervals
    built = iaside.ExplainConfig.build(base=iaside.ExplainConfig(estimator="kernel"), estimator="permutation")
    assert built.draws == "per-image" and iaside.ExplainConfig.build(preset="paper", base=base).partition == "square"
