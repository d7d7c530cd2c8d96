"""Tests that kill mutants `make mutation` (mutmut) found surviving; docs/proofs.md §6 lists
each module's survivors and why the ones left are equivalent."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import stats

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


def _signed_bins(n: int) -> list[int]:
    """The signed frequency of DFT bin i of an n-point transform: i up to ⌊(n−1)/2⌋, then i − n."""
    return [i if i <= (n - 1) // 2 else i - n for i in range(n)]


def _exact_band(h: int, w: int, m: int, partition: str) -> np.ndarray:
    """docs/method.md §2 with exact integers: band = min(⌊M·r⌋, M − 1), r = |2u/H| ∨ |2v/W| (ℓ∞) or
    the Euclidean norm (ℓ2); ⌊√x⌋ = isqrt(⌊x⌋) for the ℓ2 radius."""
    import math

    out = np.zeros((h, w), dtype=int)
    for i, u in enumerate(_signed_bins(h)):
        for j, v in enumerate(_signed_bins(w)):
            if partition == "linf":
                k = max((2 * m * abs(u)) // h, (2 * m * abs(v)) // w)
            else:  # M²r² = 4M²(u²/H² + v²/W²) = 4M²(u²W² + v²H²) / (HW)²
                k = math.isqrt((4 * m * m * (u * u * w * w + v * v * h * h)) // (h * w) ** 2)
            out[i, j] = min(k, m - 1)
    return out


@pytest.mark.parametrize("h, w, m", [(5, 7, 2), (7, 6, 3), (8, 13, 3), (16, 16, 4)])
def test_l2_bands_put_bins_just_below_an_edge_in_the_lower_band(h, w, m):
    """Sizes where a bin's M·r lies within 1/(HW) below a band edge: an integer square root off by
    one moves it to the upper band."""
    np.testing.assert_array_equal(band_masks(h, w, m, "l2").numpy().argmax(axis=0), _exact_band(h, w, m, "l2"))


def test_masks_default_to_the_linf_partition_and_rings_follow_the_same_rule():
    from iaside.spectral import radial_grid_masks

    assert torch.equal(
        band_masks(9, 12, 3), torch.from_numpy(_exact_band(9, 12, 3, "linf") == np.arange(3)[:, None, None])
    )
    rings = radial_grid_masks(12, 12, 6)
    assert rings.dtype == torch.bool and rings.shape == (6, 12, 12)
    np.testing.assert_array_equal(rings.numpy().argmax(axis=0), _exact_band(12, 12, 6, "linf"))
    np.testing.assert_array_equal(
        radial_grid_masks(12, 10, 5, "l2").numpy().argmax(axis=0), _exact_band(12, 10, 5, "l2")
    )


def test_one_band_is_the_whole_spectrum_and_bad_band_counts_say_why():
    from iaside.spectral import freq_index

    assert band_masks(4, 6, 1).numpy().tolist() == [[[True] * 6] * 4]
    assert freq_index(6).dtype == np.int64 and freq_index(6).tolist() == _signed_bins(6)
    with pytest.raises(IasideError, match=r"partition 'ring' is not one of linf, l2, square"):
        band_masks(8, 8, 2, "ring")
    with pytest.raises(IasideError, match=r"--bands must be at least 1, got 0"):
        band_masks(8, 8, 0)
    with pytest.raises(IasideError, match=r"image 6x9 is too small for 4 bands: min\(H, W\) must be >= 8"):
        band_masks(6, 9, 4)


def test_band_energy_and_snr_are_float64_sums_of_the_power_spectrum():
    """ESD_i = Σ_{c, (u,v) ∈ band i} |X|² in float64 (numpy's FFT of the float64 image), per channel
    on request; SNR_i = 10·log10(ESD_i(x) / ESD_i(x̃ − x))."""
    from iaside.spectral import band_energy, snr_db

    rng = np.random.default_rng(7)
    x = rng.normal(size=(2, 3, 8, 10)).astype(np.float32) * 1000 + 0.001
    masks = band_masks(8, 10, 3)
    power = np.abs(np.fft.fft2(x.astype(np.float64))) ** 2
    per_channel = np.einsum("bchw,mhw->bcm", power, masks.numpy().astype(np.float64))
    got = band_energy(torch.from_numpy(x), masks, per_channel=True)
    assert got.dtype == torch.float64 and got.shape == (2, 3, 3)
    np.testing.assert_allclose(got.numpy(), per_channel, rtol=1e-12)
    np.testing.assert_allclose(band_energy(torch.from_numpy(x), masks).numpy(), per_channel.sum(axis=1), rtol=1e-12)
    perturbed = x + rng.normal(size=x.shape).astype(np.float32)
    noise = (perturbed - x).astype(np.float64)  # the difference as the clean image's dtype holds it
    noise_energy = np.einsum("bchw,mhw->bm", np.abs(np.fft.fft2(noise)) ** 2, masks.numpy().astype(np.float64))
    got = snr_db(torch.from_numpy(x), torch.from_numpy(perturbed), masks)
    np.testing.assert_allclose(got.numpy(), 10 * np.log10(per_channel.sum(axis=1) / noise_energy), rtol=1e-10)


# ---------------------------------------------------------------- game


def test_exact_shapley_of_a_tensor_that_requires_grad_is_the_average_marginal_contribution():
    """φ_i = mean over the M! orders of v(players before i, and i) − v(players before i), for a
    model output that still carries its autograd graph; a wrong length says what it got."""
    import itertools

    from iaside.game import exact_shapley

    rng = np.random.default_rng(2)
    m = 3
    v = rng.normal(size=2**m)
    orders = list(itertools.permutations(range(m)))
    expected = np.zeros(m)
    for order in orders:
        s = 0
        for i in order:
            expected[i] += (v[s | 1 << i] - v[s]) / len(orders)
            s |= 1 << i
    phi = exact_shapley(torch.tensor(v, requires_grad=True))
    assert phi.dtype == np.float64
    np.testing.assert_allclose(phi, expected, rtol=1e-12)
    with pytest.raises(ValueError, match=r"last axis must have 2\*\*M entries, got 6$"):
        exact_shapley(np.zeros((2, 3, 6)))


# ---------------------------------------------------------------- fills


def test_partner_is_the_next_image_of_the_processing_order_skipping_the_excluded():
    from iaside.fills import partner_index, processing_order

    order = processing_order(9, seed=6)
    assert sorted(order.tolist()) == list(range(9)) and order.dtype == np.int64
    partner = partner_index(9, 6)
    assert [int(partner[order[k]]) for k in range(9)] == [int(order[(k + 1) % 9]) for k in range(9)]
    excluded = [int(order[3]), int(order[8])]
    kept = [int(i) for i in order if int(i) not in excluded]
    partner = partner_index(9, 6, exclude=excluded)
    assert partner.dtype == np.int64 and [int(partner[i]) for i in excluded] == [-1, -1]
    assert [int(partner[kept[k]]) for k in range(7)] == [kept[(k + 1) % 7] for k in range(7)]
    assert partner_index(3, 6, exclude=[0]).tolist().count(-1) == 1  # two images left: still a pairing
    with pytest.raises(IasideError, match=r"^the partner fill needs at least 2 images; use --fill zero or add images$"):
        partner_index(3, 6, exclude=[0, 1])
    from iaside.fills import make_fill

    with pytest.raises(ValueError, match=r"^PartnerFill needs the partner images$"):
        make_fill("partner")(torch.zeros(1, 1, 4, 4), torch.tensor([0]))


def test_fill_names_aliases_and_the_error_listing_them():
    from iaside.fills import FILLS, canonical_fill, make_fill

    assert [canonical_fill(n) for n in FILLS] == list(FILLS) and canonical_fill("random") == "partner"
    assert make_fill("random", seed=4).name == "partner" and make_fill("noise", seed=4).seed == 4
    assert repr(make_fill("zero", 7)) == "ZeroFill(seed=7)"
    with pytest.raises(IasideError, match=r"--fill 'blur' is not one of partner, zero, mean, noise, gaussian"):
        canonical_fill("blur")


def test_gaussian_spectrum_fill_has_standard_deviation_one_half_per_part_seeded_per_image():
    from iaside.fills import make_fill

    fill = make_fill("gaussian", seed=1)
    x = torch.zeros(2, 3, 64, 64)
    b = fill(x, torch.tensor([4, 9]))
    assert b.is_complex() and b.shape == x.shape
    for part in (b.real, b.imag):
        assert abs(float(part.std()) - 0.5) < 0.01 and abs(float(part.mean())) < 0.01
    assert abs(np.corrcoef(b.real.flatten().numpy(), b.imag.flatten().numpy())[0, 1]) < 0.03  # independent parts
    assert torch.equal(b[1], fill(x[:1], torch.tensor([9]))[0])  # image 9's fill, wherever it sits in the batch
    assert not torch.equal(b[0], make_fill("gaussian", seed=2)(x[:1], torch.tensor([4]))[0])


def test_noise_fill_matches_the_mean_band_energy_of_each_channel():
    """ESD of the fill per channel and band = the data set's mean ESD there (numpy float64 FFTs)."""
    from iaside.fills import make_fill

    rng = np.random.default_rng(3)
    x = rng.uniform(size=(6, 2, 16, 16)).astype(np.float32)
    x[:, 1] *= 0.1  # channels of very different energy
    masks = band_masks(16, 16, 3)
    m = masks.numpy().astype(np.float64)
    fill = make_fill("noise", seed=2)
    fill.fit([torch.from_numpy(x[:4]), torch.from_numpy(x[4:])], masks)
    target = np.einsum("bchw,mhw->cm", np.abs(np.fft.fft2(x.astype(np.float64))) ** 2, m) / 6
    np.testing.assert_allclose(fill.energy_per_band.numpy(), target, rtol=1e-10)
    b = fill(torch.from_numpy(x[:2]), torch.tensor([0, 5])).numpy().astype(np.float64)
    got = np.einsum("bchw,mhw->bcm", np.abs(np.fft.fft2(b)) ** 2, m)
    np.testing.assert_allclose(got, np.broadcast_to(target, got.shape), rtol=1e-4)
    # 4 × 4 pixels, 2 bands: band 0 is the DC bin alone, whose white-noise energy is often below 1
    small, small_masks = torch.from_numpy(x[:, :, :4, :4].copy()), band_masks(4, 4, 2)
    fill.fit([small], small_masks)
    b = fill(small[:1].expand(40, -1, -1, -1), torch.arange(40)).numpy().astype(np.float64)
    got = np.einsum("bchw,mhw->bcm", np.abs(np.fft.fft2(b)) ** 2, small_masks.numpy().astype(np.float64))
    np.testing.assert_allclose(got, np.broadcast_to(fill.energy_per_band.numpy(), got.shape), rtol=1e-4)
    mean = make_fill("mean")
    mean.fit([torch.from_numpy(x[:1]), torch.from_numpy(x[1:])], masks)
    big = torch.tensor([2.0**24, 1.0, -(2.0**24)]).view(3, 1, 1, 1).expand(3, 2, 16, 16)
    exact = make_fill("mean")
    exact.fit([big[:2], big[2:]], masks)  # summed in float64: a float32 running sum loses the 1
    np.testing.assert_allclose(exact(big[:1], torch.arange(1)).numpy(), np.full((1, 2, 16, 16), 1 / 3), rtol=1e-7)
    np.testing.assert_allclose(
        mean(torch.from_numpy(x[:3]), torch.arange(3)).numpy(), np.broadcast_to(x.mean(0), (3, 2, 16, 16)), rtol=1e-6
    )


# ---------------------------------------------------------------- coalitions


def _band_images(x: np.ndarray, masks: np.ndarray) -> np.ndarray:
    """Band images of (C, H, W) by numpy's complex FFT, (M, C, H, W) complex128."""
    spectrum = np.fft.fft2(x.astype(np.float64))
    return np.stack([np.fft.ifft2(spectrum * m) for m in masks.astype(np.float64)])


@pytest.mark.parametrize("clip", [False, True])
def test_sum_synthesis_is_the_fill_plus_the_chosen_band_images(clip):
    """x_S = b + Σ_{i∈S} band_i(x − b) (docs/method.md §3), clipped to [0, 1] on request, into a
    caller's channels-last buffer too."""
    from iaside.coalitions import CoalitionSynthesizer
    from iaside.game import coalition_bits

    rng = np.random.default_rng(11)
    x = rng.uniform(-0.5, 1.5, size=(2, 3, 8, 10)).astype(np.float32)
    fill = rng.uniform(size=(2, 3, 8, 10)).astype(np.float32)
    masks = band_masks(8, 10, 3)
    synth = CoalitionSynthesizer(masks, "sum", clip=clip)
    assert synth.n_bands == 3
    prep = synth.prepare(torch.from_numpy(x), torch.from_numpy(fill))
    bits = coalition_bits(3)
    for i in range(2):
        bands = _band_images(x[i] - fill[i], masks.numpy()).real
        expected = np.stack([fill[i] + bands[row].sum(axis=0) for row in bits])
        if clip:
            expected = np.clip(expected, 0, 1)
        got = synth.render(prep.base[i], prep.deltas[i], torch.from_numpy(bits).float())
        assert got.shape == (8, 3, 8, 10) and got.dtype == torch.float32
        np.testing.assert_allclose(got.numpy(), expected, atol=2e-6)
        out = torch.full((8, 8 * 10 * 3), np.nan)
        into = synth.render(prep.base[i], prep.deltas[i], torch.from_numpy(bits).float(), out=out)
        np.testing.assert_allclose(into.numpy(), expected, atol=2e-6)
        np.testing.assert_allclose(out.view(8, 8, 10, 3).numpy(), expected.transpose(0, 2, 3, 1), atol=2e-6)


def test_paper_synthesis_is_the_min_max_scaled_magnitude_and_the_empty_coalition_is_black():
    """docs/method.md §9: |ifft(F(b) + Σ_{i∈S} m_i·(F(x) − F(b)))|, scaled to [0, 1] per image;
    the empty coalition is 0; into a caller's buffer too."""
    from iaside.coalitions import CoalitionSynthesizer
    from iaside.game import coalition_bits

    rng = np.random.default_rng(12)
    x = rng.uniform(size=(1, 2, 8, 8)).astype(np.float32)
    fill = rng.uniform(size=(1, 2, 8, 8)).astype(np.float32)
    masks = band_masks(8, 8, 2, "square")
    synth = CoalitionSynthesizer(masks, "paper")
    prep = synth.prepare(torch.from_numpy(x), torch.from_numpy(fill))
    bits = coalition_bits(2)
    fx, fb = np.fft.fft2(x[0].astype(np.float64)), np.fft.fft2(fill[0].astype(np.float64))
    m = masks.numpy().astype(np.float64)
    expected = []
    for row in bits:
        a = np.abs(np.fft.ifft2(fb + sum(m[j][None] * (fx - fb) for j in range(2) if row[j])))
        expected.append((a - a.min()) / (a.max() - a.min()) if row.any() else np.zeros_like(a))
    got = synth.render(prep.base[0], prep.deltas[0], torch.from_numpy(bits).float())
    np.testing.assert_allclose(got.numpy(), np.stack(expected), atol=1e-5)
    out = torch.full((4, 8 * 8 * 2), np.nan)
    into = synth.render(prep.base[0], prep.deltas[0], torch.from_numpy(bits).float(), out=out)
    np.testing.assert_allclose(into.numpy(), np.stack(expected), atol=1e-5)
    np.testing.assert_allclose(out.view(4, 8, 8, 2).numpy(), np.stack(expected).transpose(0, 2, 3, 1), atol=1e-5)
    flat = synth.prepare(torch.ones(1, 2, 8, 8), torch.ones(1, 2, 8, 8))  # x = b: a constant image, span 0
    assert synth.render(flat.base[0], flat.deltas[0], torch.ones(1, 2)).abs().max() == 0


def test_synthesizer_refuses_what_it_cannot_build_saying_why():
    from iaside.coalitions import CoalitionSynthesizer

    with pytest.raises(IasideError, match=r"^synthesis 'blend' is not one of sum, paper$"):
        CoalitionSynthesizer(band_masks(8, 8, 2), "blend")
    with pytest.raises(IasideError, match=r"^these band masks are not Hermitian-symmetric; use the paper synthesis$"):
        CoalitionSynthesizer(band_masks(8, 8, 2, "square"), "sum")
    with pytest.raises(IasideError, match=r"^a spectrum fill \(gaussian\) needs the paper preset; use --fill noise$"):
        CoalitionSynthesizer(band_masks(8, 8, 2)).prepare(
            torch.zeros(1, 1, 8, 8), torch.zeros(1, 1, 8, 8, dtype=torch.complex64)
        )


# ---------------------------------------------------------------- estimators


def test_default_budgets_follow_their_documented_rules():
    """kernel: 10 % of 2**M, at most 1024, at least 2M + 2; permutation: the largest even P whose
    2 + P(M − 1) coalitions fit in that, at least 2; exact: 2**M. Written into the config."""
    from iaside.config import ExplainConfig
    from iaside.estimators import estimator_from_config, resolve_budget

    for m, kernel in [(3, 8), (5, 12), (8, 25), (12, 409), (14, 1024)]:
        assert max(2 * m + 2, min(2**m // 10, 1024)) == kernel  # the rule, by hand
        perms = max(p for p in range(2, 2000, 2) if 2 + p * (m - 1) <= kernel) if 2 + 2 * (m - 1) <= kernel else 2
        assert resolve_budget(ExplainConfig(bands=m, estimator="kernel")).coalitions == kernel
        assert resolve_budget(ExplainConfig(bands=m, estimator="permutation")).permutations == perms
        assert estimator_from_config(ExplainConfig(bands=m, estimator="kernel")).setting == kernel
        assert estimator_from_config(ExplainConfig(bands=m, estimator="permutation")).setting == perms
    exact = estimator_from_config(ExplainConfig(bands=3))
    assert exact.setting == 8 and exact.n_coalitions == 8 and exact.draws == "shared"
    kernel = estimator_from_config(ExplainConfig(bands=4, estimator="kernel", coalitions=12))
    assert kernel.draws == "shared" and kernel.info(np.zeros((3, 12)), np.zeros((3, 4)))["draws"] == "shared"
    with pytest.raises(
        IasideError, match=r"^--coalitions: KernelSHAP with 4 bands needs at least 10 coalitions per image, got 5$"
    ):
        estimator_from_config(ExplainConfig(bands=4, estimator="kernel", coalitions=5))


def test_kernel_plans_spend_their_budget_and_two_bands_are_exact():
    from iaside.estimators.kernel import kernel_matrix, kernel_plan
    from iaside.game import shapley_matrix

    np.testing.assert_allclose(kernel_matrix(kernel_plan(2, 4)), shapley_matrix(2), atol=1e-12)
    # M = 4: sizes 1 and 3 (8 coalitions) are enumerated, the 4 left go to two drawn pairs of size 2
    for seed in range(5):
        plan = kernel_plan(4, 14, seed)
        assert len(plan.masks) == 14 and len(set(plan.masks.tolist())) == 14 and plan.enumerated_below == 2
        assert sorted(bin(int(s)).count("1") for s in plan.masks).count(2) == 4
    assert not np.array_equal(kernel_plan(6, 30, 3).masks, kernel_plan(6, 30).masks)


def _marginal_estimate(values: dict, perms) -> np.ndarray:
    """φ̂_i = mean over the orders of v(before i, and i) − v(before i), from the values by mask."""
    m = len(perms[0])
    phi = np.zeros(m)
    for perm in perms:
        before = 0
        for i in perm:
            phi[i] += values[before | 1 << int(i)] - values[before]
            before |= 1 << int(i)
    return phi / len(perms)


def test_permutation_standard_error_is_the_spread_of_the_antithetic_pairs():
    """SE = std (ddof 1) over the P/2 antithetic pairs' estimates / sqrt(P/2); NaN, quietly,
    with one pair."""
    import warnings

    from iaside.estimators.permutation import permutation_plan, permutation_standard_error

    rng = np.random.default_rng(8)
    for p in (4, 6, 10):
        masks, perms = permutation_plan(5, p, seed=p)
        v = rng.normal(size=len(masks))
        values = dict(zip(masks.tolist(), v))
        half = p // 2
        pairs = np.stack([_marginal_estimate(values, [perms[k], perms[k + half]]) for k in range(half)])
        np.testing.assert_allclose(
            permutation_standard_error(v, masks, perms), pairs.std(axis=0, ddof=1) / np.sqrt(half)
        )
    masks, perms = permutation_plan(5, 2, seed=1)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        se = permutation_standard_error(np.ones(len(masks)), masks, perms)
    assert se.shape == (5,) and se.dtype == np.float64 and np.isnan(se).all()


def test_kernel_standard_error_is_a_reproducible_bootstrap_of_the_drawn_pairs():
    """0 when every coalition is evaluated, NaN under two drawn pairs; with two pairs the
    bootstrap picks one of four ordered pair choices, so with 2 resamples SE·√2 is the distance
    between two of those four estimates (ddof 1), and with many it nears their spread."""
    from iaside.estimators.kernel import kernel_matrix, kernel_plan, kernel_standard_error

    assert kernel_standard_error(np.arange(16.0), kernel_plan(4, 16)).tolist() == [0.0] * 4
    plan = next(p for p in (kernel_plan(4, 14, s) for s in range(50)) if len(p.draws) == 4)
    pairs = plan.draws.reshape(2, 2)
    v = np.random.default_rng(1).normal(size=len(plan.masks))
    outcomes = np.stack([v @ kernel_matrix(plan, pairs[list(c)].ravel()) for c in [(0, 0), (0, 1), (1, 0), (1, 1)]])
    assert np.ptp(outcomes, axis=0).max() > 1e-3  # the draws matter
    for seed in range(3):
        se = kernel_standard_error(v, plan, n_resamples=2, seed=seed)
        gaps = [np.abs(a - b) for a in outcomes for b in outcomes]
        assert any(np.allclose(se * np.sqrt(2), g, atol=1e-12) for g in gaps)
    se = kernel_standard_error(v, plan, n_resamples=4000, seed=3)
    np.testing.assert_allclose(se, outcomes.std(axis=0), rtol=0.1)
    assert np.array_equal(se, kernel_standard_error(v, plan, n_resamples=4000, seed=3))
    one_pair = next(p for p in (kernel_plan(4, 12, s) for s in range(50)) if len(p.draws) == 2)
    assert np.isnan(kernel_standard_error(v[:12], one_pair)).all()


def test_shared_estimators_report_the_standard_error_of_their_own_seeded_draw():
    from iaside.config import ExplainConfig
    from iaside.estimators import estimator_from_config
    from iaside.estimators.kernel import kernel_plan, kernel_standard_error
    from iaside.estimators.permutation import permutation_plan, permutation_standard_error

    rng = np.random.default_rng(4)
    kernel = estimator_from_config(ExplainConfig(bands=6, estimator="kernel", coalitions=30, seed=7))
    plan = kernel_plan(6, 30, 7)
    assert np.array_equal(kernel.masks(), plan.masks)
    logp = rng.normal(size=(5, len(plan.masks)))
    expected = kernel_standard_error(logp.mean(axis=0), plan, seed=7)
    assert kernel.info(logp, np.zeros((5, 6)))["phi_se"] == pytest.approx(expected.tolist(), rel=1e-12)
    assert not np.allclose(expected, kernel_standard_error(logp.mean(axis=0), plan, seed=0))
    perm = estimator_from_config(
        ExplainConfig(bands=5, estimator="permutation", permutations=6, draws="shared", seed=7)
    )
    masks, perms = permutation_plan(5, 6, 7)
    logp = rng.normal(size=(5, len(masks)))
    expected = permutation_standard_error(logp.mean(axis=0), masks, perms)
    assert perm.info(logp, np.zeros((5, 5)))["phi_se"] == pytest.approx(expected.tolist(), rel=1e-12)


# ---------------------------------------------------------------- summary


def _phi(n: int, m: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, m)) * 0.3 + np.linspace(1.0, 0.1, m)


def test_summarize_reports_every_statistic_with_the_given_beta():
    from iaside.summary import score, score_signed, sid_from_phi, signed_shares, summarize

    phi = _phi(9, 5)
    out = summarize(phi, np.arange(9) % 2, n_bootstrap=50, beta=0.5)
    mean = phi.mean(axis=0)
    b = 0.5 ** np.arange(5)
    b_hat, eta = b / np.linalg.norm(b), b.sum() / (5 * np.linalg.norm(b))
    sid = sid_from_phi(mean)
    assert float(out["score"].value) == pytest.approx(abs(sid @ b_hat - eta) / (1 - eta))
    assert float(out["score_signed"].value) == pytest.approx((sid @ b_hat - eta) / (b_hat[0] - eta))
    assert float(out["score"].value) != pytest.approx(float(score(sid)))  # β = 0.75 would differ
    assert float(out["score_signed"].value) != pytest.approx(float(score_signed(sid)))
    np.testing.assert_allclose(out["shares"].value, mean / mean.sum())
    np.testing.assert_allclose(out["shares"].value, signed_shares(mean))
    assert np.all(out["shares"].low <= out["shares"].high) and np.all(np.isfinite(out["score_signed"].low))


def test_summarize_defaults_are_the_documented_ones():
    from iaside.summary import summarize

    phi = _phi(7, 4, seed=1)
    default = summarize(phi, np.zeros(7, int))
    explicit = summarize(phi, np.zeros(7, int), n_bootstrap=1000, confidence=0.95, seed=0, beta=0.75)
    for key in ("phi", "sid", "shares", "score", "score_signed"):
        for part in ("value", "low", "high"):
            np.testing.assert_array_equal(getattr(default[key], part), getattr(explicit[key], part))


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # M = 1: the score is 0/0
@pytest.mark.parametrize(
    "n_images, n_bands, n_bootstrap, has_interval",
    [
        (1, 4, 100, False),  # one image: nothing to resample
        (2, 4, 100, True),
        (3, 1, 100, True),  # one band still has an interval
        (5, 4, 0, False),  # resampling switched off
        (5, 4, 1, True),
    ],
)
def test_intervals_exist_exactly_when_there_is_something_to_resample(n_images, n_bands, n_bootstrap, has_interval):
    import warnings

    from iaside.summary import summarize

    phi = _phi(n_images, n_bands, seed=2)
    with warnings.catch_warnings():
        if n_bands > 1:  # nothing to resample is not an error: no empty-slice warnings either
            warnings.simplefilter("error")
        out = summarize(phi, np.zeros(n_images, int), n_bootstrap=n_bootstrap)
    for key in ("phi", "sid", "shares", "score", "score_signed") if n_bands > 1 else ("phi", "sid", "shares"):
        low, high = np.asarray(out[key].low, np.float64), np.asarray(out[key].high, np.float64)
        assert low.shape == high.shape == np.shape(out[key].value), key
        assert np.all(np.isfinite(low)) == has_interval and np.all(np.isnan(high)) != has_interval, key
    np.testing.assert_allclose(out["phi"].value, phi.mean(axis=0))


def test_per_class_statistics_use_each_labels_own_images():
    from iaside.summary import sid_from_phi, summarize

    phi = _phi(7, 3, seed=4)
    labels = np.array([2, 0, 2, 2, 5, 0, 2])
    per_class = summarize(phi, labels, n_bootstrap=0)["per_class"]
    assert sorted(per_class) == [0, 2, 5] and [per_class[k]["n"] for k in (0, 2, 5)] == [2, 4, 1]
    for k in (0, 2, 5):
        np.testing.assert_allclose(per_class[k]["phi"], phi[labels == k].mean(axis=0))
        np.testing.assert_allclose(per_class[k]["sid"], sid_from_phi(phi[labels == k].mean(axis=0)))


def test_estimate_round_trips_scalars_as_floats_and_vectors_as_float64():
    from iaside.summary import Estimate

    e = Estimate(np.array([0.25, 0.75]), np.array([0.1, 0.5]), np.array([0.4, 0.9]))
    d = e.to_dict()
    assert d == {"value": [0.25, 0.75], "low": [0.1, 0.5], "high": [0.4, 0.9]}
    back = Estimate.from_dict(d)
    assert back.value.dtype == np.float64 and back.value.tolist() == [0.25, 0.75] and back.high.tolist() == [0.4, 0.9]
    s = Estimate.from_dict(Estimate(np.float64(0.5), 0.25, 1).to_dict())
    assert (s.value, s.low, s.high) == (0.5, 0.25, 1.0) and all(type(v) is float for v in (s.value, s.low, s.high))
    ints = Estimate.from_dict({"value": [1, 2], "low": [0, 1], "high": [2, 3]})
    assert ints.value.dtype == np.float64


def test_sid_and_shares_work_row_by_row_and_quietly():
    import warnings

    from iaside.summary import bootstrap_means, sid_from_phi, signed_shares, summarize

    phi = np.array([[0.5, 0.25, 0.25], [1.0, 2.0, 1.0]])
    np.testing.assert_allclose(signed_shares(phi), [[0.5, 0.25, 0.25], [0.25, 0.5, 0.25]])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a constant φ has Σψ = 0: uniform, without a 0/0 on the way
        flat = sid_from_phi(np.array([[0.3, 0.3, 0.3, 0.3], [1.0, 0.0, 0.0, 1.0]]))
        undefined = signed_shares(np.array([[0.0, 0.0], [0.0, 0.0]]))  # Σφ = 0: NaN, quietly
        signed_shares(np.array([1.0, -1.0]))  # Σφ = 0 with φ ≠ 0: no divide warning either
    assert flat.dtype == np.float64 and flat.tolist() == [[0.25] * 4, [0.5, 0.0, 0.0, 0.5]]
    assert np.isnan(undefined).all()
    per_image = _phi(10, 4, seed=5)
    out = summarize(per_image, np.zeros(10, int), n_bootstrap=300, seed=3)
    means = bootstrap_means(per_image, 300, 3)
    shares = means / means.sum(axis=1, keepdims=True)
    np.testing.assert_allclose(out["shares"].low, np.percentile(shares, 2.5, axis=0), rtol=1e-12)
    np.testing.assert_allclose(out["shares"].high, np.percentile(shares, 97.5, axis=0), rtol=1e-12)


# ---------------------------------------------------------------- robustness/metrics


def test_top1_error_counts_the_wrong_predictions():
    from iaside.robustness.metrics import top1_error

    assert top1_error(np.array([1, 2, 3, 4, 5]), np.array([1, 0, 0, 0, 5])) == pytest.approx(0.6)  # accuracy 0.4
    assert top1_error(np.array([3]), np.array([3])) == 0.0 and top1_error([2], [1]) == 1.0
    with pytest.raises(IasideError, match=r"got \(3,\) and \(2,\)$"):
        top1_error(np.array([1, 2, 3]), np.array([1, 2]))
    with pytest.raises(IasideError, match="equally many"):
        top1_error(np.array([], int), np.array([], int))


def test_ce_tables_from_json_nulls_and_empty_inputs_are_nan_quietly():
    import warnings

    from iaside.robustness.metrics import corruption_errors, mean_ce, mean_corruption_error

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert mean_ce([0.8, None, 1.2]) == pytest.approx(1.0)  # null in JSON = undefined CE
        assert np.isnan(mean_ce([float("nan"), float("nan")])) and np.isnan(mean_ce([]))
        assert np.isnan(mean_corruption_error(np.zeros((0, 5)))) and np.isnan(mean_corruption_error([[0.2, None]]))
        ce = corruption_errors([[0.1, 0.3], [0.2, 0.2]], [[0.0, 0.0], [0.1, 0.3]])
    assert np.isnan(ce[0]) and ce[1] == pytest.approx(1.0)
    with pytest.raises(IasideError, match="same corruptions and severities$"):
        corruption_errors(np.zeros((2, 3)), np.zeros((2, 2)))


# ---------------------------------------------------------------- robustness/correlation


def test_correlation_table_nests_score_measure_method_and_passes_its_options():
    from iaside.robustness.correlation import METHODS, correlate, correlation_table

    scores = {"score": np.array([0.1, 0.4, 0.2, 0.5, 0.3]), "score_signed": np.array([0.3, -0.2, 0.1, -0.4, 0.0])}
    measures = {"mCE": np.array([1.2, 0.7, 1.0, 0.8, 0.9]), "acc": np.array([0.1, 0.5, 0.2, 0.3, 0.6])}
    table = correlation_table(scores, measures, n_bootstrap=60, confidence=0.8, seed=3)
    keys = [(c.x, c.y, c.method) for c in table]
    assert keys == [(x, y, m) for x in scores for y in measures for m in METHODS]
    for c in table:
        expected = correlate(
            scores[c.x], measures[c.y], c.method, x_name=c.x, y_name=c.y, n_bootstrap=60, confidence=0.8, seed=3
        )
        assert c == expected and c.n_bootstrap == 60 and c.confidence == 0.8
    default = correlation_table(scores, measures, methods=("pearson",))
    assert [c.method for c in default] == ["pearson"] * 4 and {c.n_bootstrap for c in default} == {2000}
    assert {(c.confidence, c.n_valid > 1900) for c in default} == {(0.95, True)}
    assert default[0] == correlate(scores["score"], measures["mCE"], "pearson", x_name="score", y_name="mCE")
    d = table[0].to_dict()
    assert d["x"] == "score" and d["y"] == "mCE" and d["method"] == METHODS[0] and d["r"] == table[0].r
    assert set(d) == {
        "method",
        "x",
        "y",
        "n",
        "r",
        "p_value",
        "low",
        "high",
        "n_bootstrap",
        "n_valid",
        "confidence",
        "p_method",
    }


def test_correlation_of_fewer_than_three_models_is_a_full_record_of_nothing():
    import math

    from iaside.robustness.correlation import correlate

    c = correlate(
        [0.1, 0.5, np.nan], [1.0, 2.0, 3.0], "kendall", x_name="score", y_name="mCE", n_bootstrap=50, confidence=0.9
    )
    d = c.to_dict()
    assert [d[k] for k in ("method", "x", "y", "n", "n_bootstrap", "n_valid", "confidence", "p_method")] == [
        "kendall",
        "score",
        "mCE",
        2,
        50,
        0,
        0.9,
        "n < 3",
    ]
    assert all(isinstance(d[k], float) and math.isnan(d[k]) for k in ("r", "p_value", "low", "high"))
    default = correlate([1, 2, 3, 4], [2, 1, 4, 3])  # the defaults: Spearman, named x and y
    assert (default.method, default.x, default.y) == ("spearman", "x", "y") and default.line().startswith(
        "x vs y: spearman "
    )
    assert default.r == pytest.approx(0.6)  # 1 − 6·Σd²/(n(n²−1)) = 1 − 6·4/60


def test_correlation_refusals_and_bootstrap_counts():
    from iaside.robustness.correlation import correlate, statistic_rows

    for call in (lambda: correlate([1, 2, 3], [1, 2, 3], "tau"), lambda: statistic_rows("tau", [1, 2], [1, 2])):
        with pytest.raises(IasideError, match=r"^correlation method 'tau' is not one of spearman, kendall, pearson$"):
            call()
    with pytest.raises(IasideError, match=r"^x and y need one value per model, got shapes \(3,\) and \(4,\)$"):
        correlate([1, 2, 3], [1, 2, 3, 4])
    with pytest.raises(IasideError, match=r"got shapes \(2, 2\) and \(2, 2\)"):
        correlate([[1, 2], [3, 4]], [[1, 2], [3, 4]])
    x, y = [0.1, 0.4, 0.2, 0.9, 0.5, 0.7], [3.0, 1.0, 2.0, 0.5, 2.5, 1.5]
    none = correlate(x, y, "pearson", n_bootstrap=0)
    assert none.n_valid == 0 and np.isnan(none.low) and np.isnan(none.high) and np.isfinite(none.r)
    one = correlate(x, y, "pearson", n_bootstrap=1)
    assert one.n_valid == 1 and one.low == one.high and -1 <= one.low <= 1


def test_pearson_rows_are_undefined_on_constant_rows_and_never_beyond_one():
    """A row of 0.1s has a float mean that is not 0.1: without the constant-row check its r is
    noise. Rounding can put |r| of a perfect line above 1; r is clipped to [−1, 1]."""
    import warnings

    from iaside.robustness.correlation import statistic_rows

    assert np.full(7, 0.1).mean() != 0.1  # the precondition: centring leaves a residue
    x = np.array([np.full(7, 0.1), np.arange(7.0), np.arange(7.0)])
    y = np.array([np.arange(7.0), np.full(7, 0.1), np.arange(7.0) ** 2])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        r = statistic_rows("pearson", x, y)
    assert np.isnan(r[:2]).all() and r[2] == pytest.approx(np.corrcoef(x[2], y[2])[0, 1])
    a = np.array(
        [0.09401229776087457, -0.7434992493538084, -0.9217253762584194, -0.45772582566733916, 0.2201951234700494]
    )
    assert statistic_rows("pearson", a, a * 3.7 + 1.3)[0] == 1.0 and statistic_rows("pearson", a, -3.7 * a)[0] == -1.0


def test_eight_models_still_get_the_exact_permutation_p_value():
    """Up to 8 models the p-value is the exact test over all 8! pairings (scipy's own
    permutation test of its Spearman ρ, here), not the asymptotic one."""
    from iaside.robustness.correlation import correlate

    x = np.array([0.3, 0.1, 0.8, 0.5, 0.9, 0.2, 0.7, 0.4])
    y = np.array([2.0, 1.0, 5.0, 3.0, 4.0, 2.5, 6.0, 1.5])
    c = correlate(x, y, "spearman", n_bootstrap=0)
    rx = stats.rankdata(x) - 4.5

    def rho(b, axis=-1):  # Spearman ρ = Pearson r of the ranks, for every pairing at once
        rb = np.moveaxis(stats.rankdata(b, axis=axis), axis, -1) - 4.5
        return (rb @ rx) / np.sqrt((rb**2).sum(axis=-1) * (rx**2).sum())

    exact = stats.permutation_test((y,), rho, permutation_type="pairings", n_resamples=np.inf, vectorized=True).pvalue
    assert c.p_value == pytest.approx(exact, rel=1e-9) and c.p_value != pytest.approx(
        stats.spearmanr(x, y).pvalue, rel=1e-3
    )
    assert c.p_method.startswith("exact permutation test over 8! pairings")


# ---------------------------------------------------------------- robustness/snr


def test_snr_files_hold_every_number_and_load_back(tmp_path):
    """snr.csv: one row per perturbation and level with the mean dB per band (4 decimals) and
    the three fits; snr_grid.csv: dB per ring under the ring centres; snr.json loads back
    equal, +inf (no perturbation energy in a band) included. Saved into new nested folders,
    twice."""
    import csv
    import json

    from iaside.robustness.snr import SnrCurve, SnrResult

    band = np.array([[20.0, 14.0, 9.0, np.inf], [18.0, 15.0, 7.0, np.inf]])
    grid = np.array([[30.0, 26.0, 21.0], [28.0, 25.0, 20.0]])
    curves = [
        SnrCurve.from_per_image("gaussian_noise", "noise", 3, band, grid, 4, 3),
        SnrCurve.from_per_image("fog", "weather", 1, band - 5, grid - 2, 4, 3),
    ]
    result = SnrResult(4, "l2", 3, {"spec": "imgs"}, {"spec": "m"}, 7, curves)
    out = tmp_path / "a" / "b"
    result.save(out)
    result.save(out)
    rows = list(csv.reader((out / "snr.csv").open()))
    assert rows[0] == [
        "perturbation", "family", "level", "n_images", "band0_db", "band1_db", "band2_db", "band3_db",
        "slope_db_per_band", "r2_band", "grid_slope_db_per_radius", "r2_grid_exponential",
        "grid_slope_db_per_decade", "r2_grid_power",
    ]  # fmt: skip
    slope_band = np.polyfit([0, 1, 2], [19.0, 14.5, 8.0], 1)[0]  # the finite band means
    centres = np.array([1, 3, 5]) / 6
    slope_exp = np.polyfit(centres, [29.0, 25.5, 20.5], 1)[0]
    slope_pow = np.polyfit(np.log10(centres), [29.0, 25.5, 20.5], 1)[0]
    assert rows[1][:8] == ["gaussian_noise", "noise", "3", "2", "19.0000", "14.5000", "8.0000", "inf"]
    assert [float(v) for v in rows[1][8:13:2]] == pytest.approx([slope_band, slope_exp, slope_pow], abs=1e-4)
    assert rows[2][:7] == ["fog", "weather", "1", "2", "14.0000", "9.5000", "3.0000"]
    grid_rows = list(csv.reader((out / "snr_grid.csv").open()))
    assert grid_rows[0] == ["perturbation", "family", "level", "r0.1667", "r0.5000", "r0.8333"]
    assert grid_rows[1] == ["gaussian_noise", "noise", "3", "29.0000", "25.5000", "20.5000"]
    assert json.loads((out / "snr.json").read_text())["curves"][0]["band_db"][3] is None
    back = SnrResult.load(out)
    assert (back.n_bands, back.partition, back.n_rings, back.data, back.model, back.seed) == (
        4,
        "l2",
        3,
        {"spec": "imgs"},
        {"spec": "m"},
        7,
    )
    for a, b in zip(back.curves, curves):
        assert (a.name, a.family, a.level, a.n_images, a.fits) == (b.name, b.family, b.level, b.n_images, b.fits)
        for key in ("band_db", "band_db_sd", "grid_db"):
            assert getattr(a, key).dtype == np.float64
            np.testing.assert_array_equal(getattr(a, key)[:3], getattr(b, key)[:3])
        np.testing.assert_array_equal(a.band_db, b.band_db)
        np.testing.assert_array_equal(a.band_db_sd, b.band_db_sd)  # NaN where the SD over +inf is undefined
    assert back.curves[0].band_db[3] == np.inf
    assert np.isnan(curves[0].band_db_sd[3]) and np.isnan(back.curves[0].band_db_sd[3])


def test_per_image_estimators_report_the_standard_error_over_images():
    """Per-image draws: SE of the data set's φ = std over images (ddof 1) / √N, None (JSON null)
    with one image; the info names the estimator, its draws, passes and permutations."""
    from iaside.config import ExplainConfig
    from iaside.estimators import estimator_from_config

    est = estimator_from_config(ExplainConfig(bands=4, estimator="permutation", permutations=4, seed=2))
    phi = np.random.default_rng(5).normal(size=(7, 4))
    info = est.info(np.zeros((7, est.n_coalitions)), phi)
    assert {k: info[k] for k in ("name", "draws", "passes_per_image", "permutations")} == {
        "name": "permutation",
        "draws": "per-image",
        "passes_per_image": 2 + 4 * 3,
        "permutations": 4,
    }
    assert info["phi_se"] == pytest.approx((phi.std(axis=0, ddof=1) / np.sqrt(7)).tolist(), rel=1e-12)
    assert est.info(np.zeros((1, est.n_coalitions)), phi[:1])["phi_se"] == [None] * 4
    assert estimator_from_config(ExplainConfig(bands=3, seed=4)).info(np.zeros((2, 8)), phi[:2, :3]) == {
        "name": "exact"
    }


def test_kernel_shap_with_one_band_is_refused_in_one_line():
    """One band leaves sizes 0 and M only (every kernel weight 0): a named refusal, not numpy's
    'Singular matrix' from inverting a zero system."""
    from iaside.config import ExplainConfig
    from iaside.errors import IasideError
    from iaside.estimators import estimator_from_config, resolve_budget
    from iaside.estimators.kernel import kernel_plan

    with pytest.raises(
        IasideError, match="^--estimator kernel: KernelSHAP needs at least 2 bands, got 1; use --estimator exact$"
    ):
        estimator_from_config(resolve_budget(ExplainConfig(bands=1, estimator="kernel"))).bits()
    with pytest.raises(ValueError, match="KernelSHAP needs at least 2 bands, got 1"):
        kernel_plan(1, 4)
