"""The alternative robustness predictors of the zoo re-test: each against a value computed by hand
on a small input chosen so that the plausible mistakes (no abs, no normalisation, no
interpolation, the wrong half, the ℓ2 instead of the ℓ∞ radius) give other numbers."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from iaside.bandlimited import band_limited
from iaside.errors import IasideError
from iaside.game import coalition_bits
from iaside.interactions import mobius, summarize_interactions
from iaside.robustness import predictors as P

INDEX = np.array(
    [
        [0.0, 10.0, 2.0, 3.0],
        [10.0, 0.0, 4.0, 5.0],
        [2.0, 4.0, 0.0, -6.0],
        [3.0, 5.0, -6.0, 0.0],
    ]
)


def test_interaction_low_high_is_the_mean_of_the_cross_block():
    assert P.interaction_low_high(INDEX) == pytest.approx((2 + 3 + 4 + 5) / 4)  # not 3.0 (upper triangle)
    odd = np.zeros((5, 5))
    odd[1, 2] = odd[2, 1] = 6.0  # band 2 of 5 is in the high half {2, 3, 4}
    assert P.interaction_low_high(odd) == pytest.approx(6.0 / 6)


def test_interaction_low_share_uses_absolute_values_of_low_low_pairs():
    # |I| over i < j: 10, 2, 3, 4, 5, 6 = 30; low-low: (0, 1) = 10
    assert P.interaction_low_share(INDEX) == pytest.approx(10 / 30)
    assert np.isnan(P.interaction_low_share(np.zeros((4, 4))))


def test_nonadditive_share_counts_coalitions_of_two_or_more_bands():
    # masks 0..7 of M = 3: sizes 0 1 1 2 1 2 2 3; m(∅) = 100 is left out
    d = np.array([100.0, 1.0, 2.0, 3.0, 4.0, -5.0, 6.0, 7.0])
    assert P.nonadditive_share(d) == pytest.approx((3 + 5 + 6 + 7) / (1 + 2 + 3 + 4 + 5 + 6 + 7))
    additive = coalition_bits(3) @ np.array([0.5, -1.0, 2.0]) + 3.0
    assert P.nonadditive_share(mobius(additive)) == pytest.approx(0.0, abs=1e-12)
    with pytest.raises(IasideError):
        P.nonadditive_share(np.ones(6))


def test_band_limited_summaries():
    low = [0.2, 0.4, 0.8, 0.8]
    assert P.lowpass_auc(low) == pytest.approx((0.25 + 0.5 + 1 + 1) / 4)  # relative to all bands
    high = [0.8, 0.9, 0.2, 0.0]  # relative to the first (all bands), not to the largest
    assert P.highpass_auc(high) == pytest.approx((1 + 1.125 + 0.25 + 0) / 4)
    assert P.half_cutoff([0.1, 0.3, 0.7, 0.8]) == pytest.approx(1.25)  # 1 + (0.4 − 0.3)/(0.7 − 0.3)
    assert P.half_cutoff([0.5, 0.6, 0.9, 0.8]) == 0.0
    assert np.isnan(P.half_cutoff([0.0, 0.0, 0.0]))
    assert np.isnan(P.lowpass_auc([0.1, 0.0]))


CELLS = np.array([(0, 0), (8, 0), (7, 7), (-8, 3), (0, 16), (-16, 0), (4, 9)])
ERRORS = np.array([0.0, 0.5, 0.1, 0.7, 0.9, 1.0, 0.3])


def test_heatmap_summaries_use_the_linf_radius():
    # (7, 7) has ℓ2 radius 9.9 ≥ 8 but ℓ∞ radius 7 < 8: low; (−8, 3): high (absolute value)
    np.testing.assert_array_equal(P.high_frequency_cells(CELLS, 32, 32), [0, 1, 0, 1, 1, 1, 1])
    assert P.heatmap_error_high(CELLS, ERRORS, 32, 32) == pytest.approx((0.5 + 0.7 + 0.9 + 1.0 + 0.3) / 5)
    assert P.heatmap_error_mean(ERRORS) == pytest.approx(3.5 / 7)
    got = P.heatmap_predictors({"cells": CELLS.tolist(), "error_rate": ERRORS.tolist()}, 32, 32)
    assert got == pytest.approx({"heatmap_error_mean": 0.5, "heatmap_error_high": 0.68})
    with pytest.raises(IasideError, match="high-frequency"):
        P.heatmap_error_high(CELLS[:1], ERRORS[:1], 32, 32)


def test_result_predictors_from_an_exact_runs_views():
    """A game v(S) = [0 ∈ S] + 2·[2 ∈ S] − [0, 3 ∈ S] (one interaction, I_03 = −1) and recorded
    top-1 hits with low-pass accuracy 0, ½, ½, 1 and high-pass 1, ½, 0, 0."""
    bits = coalition_bits(4).astype(float)  # (16, 4)
    v = bits[:, 0] + 2 * bits[:, 2] - bits[:, 0] * bits[:, 3]
    logp = np.stack([v, v])
    hits = np.zeros((2, 16), bool)
    hits[:, 15] = True
    hits[0, 3] = hits[1, 7] = True  # low-pass {0, 1}, {0, 1, 2}: one of two images each
    hits[0, 14] = True  # high-pass {1, 2, 3}: one of two
    inter = summarize_interactions(logp, n_bootstrap=0)
    result = SimpleNamespace(
        interactions={"index": inter["index"], "mobius": inter["mobius"]},
        band_limited=band_limited(logp, hits, fill="zero", n_bootstrap=0),
    )
    got = P.result_predictors(result)
    assert got == pytest.approx(
        {
            "interaction_low_high": -1 / 4,
            "interaction_low_share": 0.0,
            "nonadditive_share": 1 / 4,  # |m({0,3})| / (|m({0})| + |m({2})| + |m({0,3})|)
            "lowpass_auc": 0.5,
            "highpass_auc": 0.375,
            "half_cutoff": 1.0,
        }
    )
    empty = P.result_predictors(SimpleNamespace(interactions=None, band_limited=None))
    assert set(empty) == set(P.PREDICTORS[:6]) and all(np.isnan(x) for x in empty.values())


def test_a_dividend_table_that_is_not_2_to_the_m_is_refused():
    with pytest.raises(IasideError, match="dividends: last axis must have 2\\*\\*M entries .* got 6"):
        P.nonadditive_share(np.ones(6))
