"""SID, score and score_signed against the values docs/method.md §6 states; bootstrap behaviour."""

import numpy as np
import pytest

from iaside.game import exact_shapley
from iaside.summary import score, score_signed, sid_from_phi, signed_shares, summarize


def test_sid_paper_normalisation_by_hand():
    assert sid_from_phi(np.array([3.0, 1.0, 2.0])) == pytest.approx([2 / 3, 0.0, 1 / 3])
    assert sid_from_phi(np.array([1.0, 1.0])) == pytest.approx([0.5, 0.5])  # all equal -> uniform
    assert signed_shares(np.array([3.0, -1.0])) == pytest.approx([1.5, -0.5])


def test_score_formula_values_from_spec():
    m = 8
    # By hand: ‖b‖₁ = (1 − .75⁸)/.25 = 3.59955, ‖b‖₂ = sqrt((1 − .75¹⁶)/.4375) = 1.50426,
    # η = 3.59955/(8·1.50426) = 0.299113; band 0: (1/1.50426 − η)/(1 − η) = 0.52173.
    uniform = np.full(m, 1 / m)
    low = np.eye(m)[0]
    high = np.eye(m)[-1]
    assert score(uniform) == pytest.approx(0.0, abs=1e-12)
    assert score(low) == pytest.approx(0.52173, abs=5e-5)
    # |b̂₇ − η|/(1 − η) = |0.088737 − 0.299112|/0.700888 = 0.30016: the abs() quirk
    assert score(high) == pytest.approx(0.30016, abs=5e-5)
    assert score_signed(low) == pytest.approx(1.0)
    assert score_signed(uniform) == pytest.approx(0.0, abs=1e-12)
    assert score_signed(high) < 0


def test_summarize_efficiency_intervals_and_classes():
    rng = np.random.default_rng(0)
    n, m = 40, 3
    logp = rng.normal(size=(n, 2**m)) - 2
    labels = np.repeat([0, 1], n // 2)
    s = summarize(exact_shapley(logp), labels, n_bootstrap=300, seed=1)
    assert s["phi"].value.sum() == pytest.approx(logp[:, -1].mean() - logp[:, 0].mean())
    assert np.all(s["sid"].low <= s["sid"].value + 1e-12) and np.all(s["sid"].value <= s["sid"].high + 1e-12)
    assert s["score"].low <= s["score"].value <= s["score"].high
    assert set(s["per_class"]) == {0, 1} and s["per_class"][0]["n"] == 20
    assert np.allclose(s["phi_per_image"].sum(1), logp[:, -1] - logp[:, 0])
    again = summarize(exact_shapley(logp), labels, n_bootstrap=300, seed=1)
    assert again["score"].low == s["score"].low  # seeded bootstrap


def test_bootstrap_interval_narrows_with_more_images():
    rng = np.random.default_rng(3)
    small = summarize(rng.normal(size=(20, 8)), np.zeros(20), n_bootstrap=400)
    large = summarize(rng.normal(size=(2000, 8)), np.zeros(2000), n_bootstrap=400)
    width = lambda e: np.mean(e.high - e.low)
    assert width(large["phi"]) < width(small["phi"]) / 4


def test_shares_are_nan_not_infinite_where_the_phi_sum_is_zero():
    """φ/Σφ is undefined where Σφ = 0 even when φ ≠ 0: NaN (as result.json's check and the
    reports' nan-aware quantiles expect), never ±inf, row by row and in the bootstrap."""
    from iaside.summary import bootstrap_means

    shares = signed_shares(np.array([[1.0, -1.0], [1.0, 3.0], [0.0, 0.0]]))
    assert np.isnan(shares[0]).all() and np.isnan(shares[2]).all()
    assert shares[1].tolist() == [0.25, 0.75]
    # image sums +1 and -1: the mean has Σφ = 0, and so has every resample that draws each image once
    per_image = np.array([[2.0, -1.0], [-1.0, 0.0]])
    out = summarize(per_image, np.zeros(2, int), n_bootstrap=200, seed=4)
    assert np.isnan(out["shares"].value).all()
    means = bootstrap_means(per_image, 200, 4)
    sums = means[:, 0] + means[:, 1]
    assert (sums == 0).any() and (sums != 0).any()
    expected = np.full_like(means, np.nan)
    expected[sums != 0] = means[sums != 0] / sums[sums != 0, None]
    assert np.isfinite(out["shares"].low).all() and np.isfinite(out["shares"].high).all()
    np.testing.assert_allclose(out["shares"].low, np.nanpercentile(expected, 2.5, axis=0))
    np.testing.assert_allclose(out["shares"].high, np.nanpercentile(expected, 97.5, axis=0))
