"""The engine's φ against two independent Shapley implementations on small real networks.

One band-gate forward function drives both oracles: gates g ∈ {0, 1}^M for one image →
coalition image x_g = IDFT(DFT(b) + mask_g · DFT(x − b)) with mask_g = Σ g_i mask_i, one FFT per
coalition in float64, with band masks re-derived here from docs/method.md §2 (not iaside.spectral) → the
model → log_softmax[y]. captum's ``ShapleyValues`` (exact, over all M! orders) and shap's
``ExactExplainer`` (exact, over all 2^M coalitions) attribute that function.

Tolerance 1e-5 nats for both, and why it is honest: shap works in float64, so engine − shap
differs only by the float32 rendering of coalition images (engine: float32 band sums; here:
float64 FFT then float32 model input), ~1e-7. captum returns float32 attributions whatever the
input dtype (float32 accumulators), an error of a few eps32·|v|; the test requires |v| < 10 nats
so that this stays below ~5e-6. Measured maxima (docs/proofs.md): engine − shap 1.3e-7,
engine − captum 1.4e-7, shap − captum 3.7e-8 nats, on games with |φ| up to 0.38 nats.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

import iaside
from iaside.fills import partner_index
from iaside.models.base import Classifier

ORACLE_TOL = 1e-5


def spec_band_index(h: int, w: int, n_bands: int, partition: str) -> np.ndarray:
    """Band of every DFT bin, (H, W) int, from docs/method.md §2 in exact integer arithmetic.

    M·|fu| = 2M|u|/H; band = floor(M·r) capped at M−1, edges go up.
    """
    u = [round(f * h) for f in np.fft.fftfreq(h)]
    v = [round(f * w) for f in np.fft.fftfreq(w)]
    out = np.zeros((h, w), dtype=np.int64)
    for a, fu in enumerate(u):
        for b, fv in enumerate(v):
            nu, nv = 2 * n_bands * abs(fu) * w, 2 * n_bands * abs(fv) * h  # M·r·H·W on each axis
            scaled = max(nu, nv) if partition == "linf" else math.isqrt(nu * nu + nv * nv)
            out[a, b] = min(scaled // (h * w), n_bands - 1)
    return out


def spec_masks(h: int, w: int, n_bands: int, partition: str) -> torch.Tensor:
    """(M, H, W) float64 masks from ``spec_band_index``."""
    index = torch.from_numpy(spec_band_index(h, w, n_bands, partition))
    return (index[None] == torch.arange(n_bands)[:, None, None]).double()


class BandGate:
    """The band-gate game of one image: gates (K, M) in {0, 1} -> log p(y | x_g), (K,) float64."""

    def __init__(self, model: nn.Module, x: torch.Tensor, b: torch.Tensor, y: int, masks: torch.Tensor):
        self.model, self.y, self.masks = model, y, masks
        self.spec_b = torch.fft.fft2(b.double())
        self.spec_delta = torch.fft.fft2(x.double()) - self.spec_b

    @torch.no_grad()
    def __call__(self, gates) -> torch.Tensor:
        g = torch.as_tensor(np.asarray(gates, dtype=np.float64)).round()
        mask = torch.einsum("km,mhw->khw", g, self.masks)  # (K, H, W) in {0, 1}
        images = torch.fft.ifft2(self.spec_b[None] + mask[:, None] * self.spec_delta[None]).real
        logits = self.model(images.float())
        return torch.log_softmax(logits.double(), 1)[:, self.y]


def captum_phi(gate: BandGate, m: int) -> np.ndarray:
    captum_attr = pytest.importorskip("captum.attr")
    sv = captum_attr.ShapleyValues(gate)
    phi = sv.attribute(
        torch.ones(1, m, dtype=torch.float64),
        baselines=torch.zeros(1, m, dtype=torch.float64),
        perturbations_per_eval=m,
    )
    return phi[0].double().numpy()


def shap_phi(gate: BandGate, m: int) -> tuple[np.ndarray, float]:
    shap = pytest.importorskip("shap")
    explainer = shap.explainers.Exact(lambda g: gate(g).numpy(), shap.maskers.Independent(np.zeros((1, m))))
    out = explainer(np.ones((1, m)), silent=True)
    return out.values[0], float(np.ravel(out.base_values)[0])


def conv_net(seed: int, n_classes: int = 6) -> nn.Module:
    """Three conv layers with fixed random weights, logits × 8 (log-probs of a few nats)."""
    torch.manual_seed(seed)
    net = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(8, 12, 3, stride=2, padding=1),
        nn.ReLU(),
        nn.Conv2d(12, 12, 3, stride=2, padding=1),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(12, n_classes),
    )
    for p in net.parameters():
        p.data *= 2.0
    return net.eval()


def fill_images(fill: str, x: torch.Tensor, seed: int) -> torch.Tensor:
    if fill == "zero":
        return torch.zeros_like(x)
    if fill == "mean":
        return x.double().mean(0, keepdim=True).float().expand_as(x)
    return x[torch.from_numpy(partner_index(x.shape[0], seed))]


CASES = [(3, "linf", "partner", 20), (4, "l2", "zero", 21), (4, "linf", "mean", 16), (5, "l2", "partner", 24)]


@pytest.mark.parametrize("m,partition,fill,size", CASES)
def test_engine_matches_captum_and_shap(m, partition, fill, size):
    seed = 10 * m + size
    g = torch.Generator().manual_seed(seed)
    n = 3
    x = 0.5 * torch.rand(n, 3, 1, 1, generator=g) + 0.5 * torch.rand(n, 3, size, size + 3, generator=g)
    y = torch.randint(0, 6, (n,), generator=g)
    net = conv_net(seed)
    r = iaside.explain(
        Classifier(net, (0.0,) * 3, (1.0,) * 3),
        (x, y),
        bands=m,
        partition=partition,
        fill=fill,
        seed=seed,
        n_bootstrap=0,
        show_progress=False,
    )
    phi_engine = r.per_image["phi_per_image"]
    masks = spec_masks(size, size + 3, m, partition)
    b = fill_images(fill, x, seed)
    for i in range(n):
        gate = BandGate(net, x[i], b[i], int(y[i]), masks)
        phi_shap, base = shap_phi(gate, m)
        phi_captum = captum_phi(gate, m)
        assert np.abs(r.per_image["logp_nats"][i]).max() < 10  # where the float32 argument holds
        assert np.abs(phi_engine[i] - phi_shap).max() < ORACLE_TOL, (i, phi_engine[i], phi_shap)
        assert np.abs(phi_engine[i] - phi_captum).max() < ORACLE_TOL, (i, phi_engine[i], phi_captum)
        assert abs(r.per_image["logp_nats"][i, 0] - base) < ORACLE_TOL  # v(∅): shap's base value
        assert np.abs(phi_shap).max() > 100 * ORACLE_TOL  # a game worth checking


def test_spec_masks_equal_library_masks():
    """The re-derived masks are docs/method.md §2; the library must agree (else every oracle test fails)."""
    from iaside.spectral import band_masks

    for h, w, m in [(16, 16, 8), (17, 23, 4), (20, 12, 3), (32, 32, 8)]:
        for partition in ("linf", "l2"):
            assert torch.equal(band_masks(h, w, m, partition).double(), spec_masks(h, w, m, partition))
