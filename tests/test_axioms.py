"""Shapley axioms on the engine's real output (``iaside.explain`` on real networks).

test_game.py checks the axioms on game functions; here the games are made by the engine:
coalition images rendered from band splits, fills, a model, log-probabilities. Hypothesis
draws M (2–8), image shapes, channels, partitions and fills.

Tolerances: Σφ and v(N) − v(∅) come from the same float64 table, so efficiency holds to float64
rounding (1e-9). Anything that compares two different model inputs carries float32 rendering
noise (coalition images are float32 sums of band images): 2e-5 nats on logits of size ≲ 50
(the largest error measured over 60 random draws was 1e-6; see docs/proofs.md). Every test
discards (hypothesis ``assume``) draws whose game is trivial (every |φ| < 50× the tolerance):
they would pass whatever the engine did; if most draws were trivial hypothesis fails the test.
"""

from __future__ import annotations

import numpy as np
import torch
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from torch import nn

import iaside
from iaside.data.tensors import TensorImages
from iaside.fills import make_fill, partner_index
from iaside.models.base import Classifier
from iaside.spectral import band_masks, split_bands

FILLS = ["partner", "zero", "mean", "noise"]
PARTITIONS = ["linf", "l2"]
FLOAT32_TOL = 2e-5
AXIOM_SETTINGS = settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def small_cnn(channels: int, n_classes: int, seed: int, gain: float = 20.0) -> nn.Module:
    """A real CNN with fixed random weights; logits × gain so that bands clearly matter."""
    torch.manual_seed(seed)
    net = nn.Sequential(
        nn.Conv2d(channels, 6, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(6, 8, 3, stride=2, padding=1),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(2),
        nn.Flatten(),
        nn.Linear(32, n_classes),
    )
    return Scaled(net, gain).eval()


class Scaled(nn.Module):
    def __init__(self, net: nn.Module, gain: float) -> None:
        super().__init__()
        self.net, self.gain = net, gain

    def forward(self, x):
        return self.gain * self.net(x)


def wrap(net: nn.Module, channels: int) -> Classifier:
    """Identity normalisation for any channel count (see docs/proofs.md, 'known issues')."""
    return Classifier(net, (0.0,) * channels, (1.0,) * channels)


def run(model, x, y, **kw):
    kw.setdefault("n_bootstrap", 0)
    # TensorImages: these signals leave [0, 1] (the API's range check is for images)
    return iaside.explain(wrap(model, x.shape[1]), TensorImages(x, y), show_progress=False, **kw)


@st.composite
def setups(draw, fills=tuple(FILLS), max_bands=8):
    m = draw(st.integers(2, max_bands))
    return {
        "m": m,
        "h": draw(st.integers(max(2 * m, 8), 2 * m + 12)),
        "w": draw(st.integers(max(2 * m, 8), 2 * m + 12)),
        "channels": draw(st.sampled_from([1, 3])),
        "n": draw(st.integers(2, 4)),
        "partition": draw(st.sampled_from(PARTITIONS)),
        "fill": draw(st.sampled_from(list(fills))),
        "seed": draw(st.integers(0, 2**16)),
    }


def random_images(s, n_classes=5):
    """Uniform noise around a random brightness per image and channel, (N, C, H, W) in [0, 1]."""
    g = torch.Generator().manual_seed(s["seed"])
    brightness = torch.rand(s["n"], s["channels"], 1, 1, generator=g)
    x = 0.5 * brightness + 0.5 * torch.rand(s["n"], s["channels"], s["h"], s["w"], generator=g)
    return x, torch.randint(0, n_classes, (s["n"],), generator=g)


def independent_fill(fill: str, x: torch.Tensor, seed: int, masks) -> torch.Tensor:
    """The fill image b for every image, built here from docs/method.md §3 (noise: the library's fill)."""
    if fill == "zero":
        return torch.zeros_like(x)
    if fill == "partner":
        return x[torch.from_numpy(partner_index(x.shape[0], seed))]
    if fill == "mean":
        return x.double().mean(0, keepdim=True).float().expand_as(x)
    noise = make_fill("noise", seed)
    noise.fit([x], masks)
    return noise(x, torch.arange(x.shape[0]))


@AXIOM_SETTINGS
@given(setups())
def test_efficiency_on_engine_output(s):
    """Σφ = v(N) − v(∅) per image and globally; v(N) is the clean image, v(∅) the fill image."""
    x, y = random_images(s)
    model = small_cnn(s["channels"], 5, s["seed"])
    r = run(model, x, y, bands=s["m"], partition=s["partition"], fill=s["fill"], seed=s["seed"])
    logp = r.per_image["logp_nats"]
    phi = r.per_image["phi_per_image"]
    assert logp.shape == (s["n"], 2 ** s["m"]) and logp.dtype == np.float64
    assert np.abs(phi.sum(1) - (logp[:, -1] - logp[:, 0])).max() < 1e-9
    assert abs(r.phi.value.sum() - (r.v_nats[-1] - r.v_nats[0])) < 1e-9
    assert np.allclose(r.phi.value, phi.mean(0), atol=1e-12)
    # the two ends of the game are the images docs/method.md §3 names, computed independently here
    with torch.no_grad():
        masks = band_masks(s["h"], s["w"], s["m"], s["partition"])
        b = independent_fill(s["fill"], x, s["seed"], masks)
        expect_empty = torch.log_softmax(model(b), 1).gather(1, y[:, None])[:, 0].double().numpy()
        expect_full = torch.log_softmax(model(x), 1).gather(1, y[:, None])[:, 0].double().numpy()
    assert np.abs(logp[:, -1] - expect_full).max() < FLOAT32_TOL
    assert np.abs(logp[:, 0] - expect_empty).max() < FLOAT32_TOL
    assume(np.abs(logp[:, -1] - logp[:, 0]).max() > 50 * FLOAT32_TOL)  # a trivial game proves nothing


class BandStop(nn.Module):
    """Removes the given bands with an ideal filter built from the same masks, then runs ``net``."""

    def __init__(self, net: nn.Module, masks: torch.Tensor, removed) -> None:
        super().__init__()
        self.net = net
        self.register_buffer("keep", ~masks[list(removed)].any(0))

    def forward(self, x):
        return self.net(torch.fft.ifft2(torch.fft.fft2(x) * self.keep).real)


@AXIOM_SETTINGS
@given(setups(), st.data())
def test_removed_bands_are_dummy_players(s, data):
    """A model that filters out bands k … M−1 first gives them φ = 0 for every image, any fill."""
    k = data.draw(st.integers(1, s["m"] - 1), label="first removed band")
    x, y = random_images(s)
    masks = band_masks(s["h"], s["w"], s["m"], s["partition"])
    model = BandStop(small_cnn(s["channels"], 5, s["seed"], gain=50.0), masks, range(k, s["m"]))
    r = run(model, x, y, bands=s["m"], partition=s["partition"], fill=s["fill"], seed=s["seed"])
    phi = r.per_image["phi_per_image"]
    assert np.abs(phi[:, k:]).max() < FLOAT32_TOL
    assert np.abs(r.phi.value[k:]).max() < FLOAT32_TOL
    if np.ptp(r.phi.value) > 1e3 * FLOAT32_TOL:  # the SID divides by Σψ: meaningless when φ is all noise
        assert np.ptp(r.sid.value[k:]) < 1e-3  # dummies share one ψ = 0 − min φ (not 0: SID shifts by min φ)
    assume(np.abs(phi[:, :k]).max() > 50 * FLOAT32_TOL)  # the kept bands are real players


@AXIOM_SETTINGS
@given(setups(max_bands=6), st.data())
def test_any_removed_subset_is_null(s, data):
    """Null player for an arbitrary set of removed bands (not only the top ones)."""
    removed = data.draw(st.sets(st.integers(0, s["m"] - 1), min_size=1, max_size=s["m"] - 1), label="removed")
    x, y = random_images(s)
    masks = band_masks(s["h"], s["w"], s["m"], s["partition"])
    model = BandStop(small_cnn(s["channels"], 5, s["seed"], gain=50.0), masks, removed)
    r = run(model, x, y, bands=s["m"], partition=s["partition"], fill=s["fill"], seed=s["seed"])
    phi = r.per_image["phi_per_image"]
    kept = [i for i in range(s["m"]) if i not in removed]
    assert np.abs(phi[:, sorted(removed)]).max() < FLOAT32_TOL
    assume(np.abs(phi[:, kept]).max() > 50 * FLOAT32_TOL)


class BandEnergyNet(nn.Module):
    """logits = MLP(log1p band energies), symmetric in bands i and j: it sees only
    log1p(E_i) + log1p(E_j) and log1p(E_i)·log1p(E_j)."""

    def __init__(self, masks: torch.Tensor, i: int, j: int, n_classes: int, seed: int) -> None:
        super().__init__()
        self.register_buffer("masks", masks.float())
        self.i, self.j = i, j
        self.others = [b for b in range(masks.shape[0]) if b not in (i, j)]
        torch.manual_seed(seed)
        self.mlp = nn.Sequential(nn.Linear(len(self.others) + 2, 16), nn.Tanh(), nn.Linear(16, n_classes))

    def forward(self, x):
        power = torch.fft.fft2(x).abs().square().sum(1) / (x.shape[-1] * x.shape[-2])  # (B, H, W)
        e = torch.log1p(torch.einsum("bhw,mhw->bm", power, self.masks))
        sym = torch.stack([e[:, self.i] + e[:, self.j], e[:, self.i] * e[:, self.j]], 1)
        return 10 * self.mlp(torch.cat([e[:, self.others], sym], 1))


def equalise_bands(x: torch.Tensor, masks: torch.Tensor, i: int, j: int) -> torch.Tensor:
    """x with band j rescaled, per image and channel, to band i's energy."""
    bands = split_bands(x.double(), masks)  # (B, M, C, H, W)
    e_i = bands[:, i].square().sum((-2, -1), keepdim=True)
    e_j = bands[:, j].square().sum((-2, -1), keepdim=True)
    return (x.double() + bands[:, j] * ((e_i / e_j).sqrt() - 1)).float()


@AXIOM_SETTINGS
@given(setups(fills=("partner", "zero", "noise"), max_bands=6), st.data())
def test_symmetric_bands_get_equal_values(s, data):
    """Bands i and j that the model treats alike, with equal energy in every image (and so in
    every partner and in the noise fill), get φ_i = φ_j per image."""
    i, j = data.draw(st.lists(st.integers(0, s["m"] - 1), min_size=2, max_size=2, unique=True), label="i, j")
    x, y = random_images(s)
    masks = band_masks(s["h"], s["w"], s["m"], s["partition"])
    x = equalise_bands(x, masks, i, j)
    model = BandEnergyNet(masks, i, j, 5, s["seed"]).eval()
    r = run(model, x, y, bands=s["m"], partition=s["partition"], fill=s["fill"], seed=s["seed"])
    phi = r.per_image["phi_per_image"]
    scale = max(1.0, np.abs(phi).max())
    assert np.abs(phi[:, i] - phi[:, j]).max() < FLOAT32_TOL * scale
    assume(np.abs(phi).max() > 50 * FLOAT32_TOL)


class ProductModel(nn.Module):
    """Classes are pairs (c1, c2): logits[c1·K2 + c2] = f1(x)[c1] + f2(x)[c2], so
    log_softmax(f)[(c1, c2)] = log_softmax(f1)[c1] + log_softmax(f2)[c2] exactly: v = v1 + v2."""

    def __init__(self, f1: nn.Module, f2: nn.Module) -> None:
        super().__init__()
        self.f1, self.f2 = f1, f2

    def forward(self, x):
        a, b = self.f1(x), self.f2(x)
        return (a[:, :, None] + b[:, None, :]).flatten(1)


@AXIOM_SETTINGS
@given(setups(max_bands=6))
def test_linearity_sum_of_games(s):
    """φ of the game v1 + v2 (a product classifier) is φ of v1 plus φ of v2, per image."""
    k1, k2 = 3, 4
    x, _ = random_images(s)
    g = torch.Generator().manual_seed(s["seed"] + 1)
    y1, y2 = torch.randint(0, k1, (s["n"],), generator=g), torch.randint(0, k2, (s["n"],), generator=g)
    f1, f2 = small_cnn(s["channels"], k1, s["seed"]), small_cnn(s["channels"], k2, s["seed"] + 7)
    common = dict(bands=s["m"], partition=s["partition"], fill=s["fill"], seed=s["seed"])
    r1, r2 = run(f1, x, y1, **common), run(f2, x, y2, **common)
    r12 = run(ProductModel(f1, f2), x, y1 * k2 + y2, **common)
    phi1, phi2, phi12 = (r.per_image["phi_per_image"] for r in (r1, r2, r12))
    assert np.abs(phi12 - (phi1 + phi2)).max() < FLOAT32_TOL
    assert np.abs(r12.phi.value - (r1.phi.value + r2.phi.value)).max() < FLOAT32_TOL
    assume(np.abs(phi1).max() > 50 * FLOAT32_TOL and np.abs(phi2).max() > 50 * FLOAT32_TOL)
