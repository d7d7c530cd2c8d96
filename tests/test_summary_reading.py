"""The words and the numbers of ``interpret()`` (result.json's "interpretation", the first lines of
`iaside show` and the report), ``score_range``, ``total_estimate`` and the bootstrap's draws,
each against a value written out or computed here from its definition (docs/method.md §6).

The reasons and the reading are what the user reads, so they are pinned whole: every number in
them is formatted here by hand from the inputs, and each case sits on a rule's boundary (at
chance, at the numerical floor, an interval that touches 0, a score interval of exactly 90 % of
the range) so that a rule moved by one step gives another text."""

import math
import warnings

import numpy as np
import pytest

from iaside.summary import (
    Estimate,
    bootstrap_draws,
    interpret,
    score,
    score_range,
    score_signed,
    signed_shares,
    total_estimate,
)


def _range_by_geometric_sums(m: int, beta: float) -> float:
    """|b̂₀ − η|/|1 − η| for b_k = β**k with ‖b‖₁, ‖b‖₂ from the geometric series (not from b)."""
    l1 = (1 - beta**m) / (1 - beta)
    l2 = math.sqrt((1 - beta ** (2 * m)) / (1 - beta**2))
    eta = l1 / (m * l2)
    return (1 / l2 - eta) / (1 - eta)


def test_score_range_is_the_score_of_all_mass_on_band_zero():
    # M = 2, β = 3/4: ‖b‖₂ = 5/4, η = (7/4)/(2·5/4) = 7/10, b̂₀ = 4/5: (4/5 − 7/10)/(3/10) = 1/3
    assert score_range(2) == pytest.approx(1 / 3, rel=1e-12)
    # M = 2, β = 1/2: ‖b‖₂ = √5/2, η = 3/(2√5), b̂₀ = 2/√5: (4 − 3)/(2√5 − 3)
    assert score_range(2, beta=0.5) == pytest.approx(1 / (2 * math.sqrt(5) - 3), rel=1e-12)
    for m, beta in ((3, 0.75), (8, 0.75), (8, 0.5), (16, 0.9)):
        assert score_range(m, beta) == pytest.approx(_range_by_geometric_sums(m, beta), rel=1e-12), (m, beta)
    assert score_range(8) == pytest.approx(0.52173, abs=5e-5)  # docs/method.md §6's worked value
    assert type(score_range(3)) is float
    assert math.isnan(score_range(1)) and math.isnan(score_range(1, beta=0.5)) and math.isnan(score_range(0))


def _sid8() -> np.ndarray:
    return np.array([0.20, 0.30, 0.10, 0.05, 0.05, 0.10, 0.15, 0.05])


def test_an_informative_run_is_read_with_its_numbers():
    # M = 8: the lowest 8 // 4 = 2 bands hold 0.20 + 0.30 = 50 % (uniform 2/8 = 25 %); band 1 is the largest
    got = interpret(
        phi=_sid8() * 2,
        sid=_sid8(),
        total=Estimate(0.8125, 0.5, 1.25),
        score_estimate=Estimate(0.2, 0.15, 0.25),
        score_signed_estimate=Estimate(0.4, 0.25, 0.55),
        clean_accuracy=0.75,
        chance_accuracy=0.25,
        n_classes_seen=4,
        n_classes_model=10,
    )
    assert got == {
        "informative": True,
        "why": "Σφ = +0.8125 nats [+0.5000, +1.2500] is away from 0 and clean accuracy 0.750 is above chance (0.250)",
        "sentence": "The lowest 2 of 8 bands carry 50% of the spectral importance (uniform would be 25%); "
        "band 1 matters most, so the model leans on robust low-frequency features (score_signed +0.40).",
    }


def test_a_negative_total_and_a_high_frequency_lean_are_read_as_such():
    # M = 3: max(1, 3 // 4) = 1 band, 10 % of the importance (uniform 1/3 = 33 %); band 2 is the largest.
    # Predicted labels: no accuracy clause. Σφ < 0 but its interval excludes 0: informative.
    got = interpret(
        phi=np.array([-0.06, -0.18, -0.36]),
        sid=np.array([0.1, 0.3, 0.6]),
        total=Estimate(-0.6, -0.9, -0.3),
        score_estimate=Estimate(0.1, 0.05, 0.15),
        score_signed_estimate=Estimate(-0.3, -0.5, -0.1),
        clean_accuracy=None,
        chance_accuracy=None,
        n_classes_seen=2,
        n_classes_model=2,
    )
    assert got == {
        "informative": True,
        "why": "Σφ = -0.6000 nats [-0.9000, -0.3000] is away from 0",
        "sentence": "The lowest 1 of 3 bands carry 10% of the spectral importance (uniform would be 33%); "
        "band 2 matters most, so the model leans on non-robust high-frequency features (score_signed -0.30).",
    }


def _read_m12(signed: Estimate) -> dict:
    """interpret() of an informative M = 12 run whose lean is ``signed``: 12 // 4 = 3 low bands
    hold 0.25 + 0.25 + 0.1 = 60 % (uniform 25 %), band 0 first among equals; given labels but
    no chance rate, so no accuracy rule and no accuracy clause."""
    sid = np.array([0.25, 0.25, 0.1] + [0.4 / 9] * 9)
    return interpret(
        phi=sid,
        sid=sid,
        total=Estimate(1.0, 0.8, 1.2),
        score_estimate=Estimate(0.3, 0.25, 0.35),
        score_signed_estimate=signed,
        clean_accuracy=0.9,
        chance_accuracy=None,
        n_classes_seen=3,
        n_classes_model=None,
    )


@pytest.mark.parametrize(
    "signed, shown",
    [
        (Estimate(0.2, 0.0, 0.4), "score_signed +0.20, interval [+0.00, +0.40] contains 0"),  # touches 0 from above
        (Estimate(-0.2, -0.4, 0.0), "score_signed -0.20, interval [-0.40, +0.00] contains 0"),  # and from below
        (Estimate(0.05, -0.1, 0.3), "score_signed +0.05, interval [-0.10, +0.30] contains 0"),
    ],
)
def test_a_lean_whose_interval_reaches_zero_is_not_settled(signed, shown):
    got = _read_m12(signed)
    assert got["informative"] is True
    assert got["why"] == "Σφ = +1.0000 nats [+0.8000, +1.2000] is away from 0"
    assert got["sentence"] == (
        "The lowest 3 of 12 bands carry 60% of the spectral importance (uniform would be 25%); band 0 matters "
        f"most, but whether the model relies more on low or high frequencies is not settled by these images ({shown})."
    )


def _not_informative(why: str) -> dict:
    return {
        "informative": False,
        "why": why,
        "sentence": f"Not informative: {why}. The SID and scores of this run say nothing about the model.",
    }


def test_every_reason_at_its_boundary_in_order():
    """M = 2 (range 1/3): a one-class model (so the labels' count is not asked), clean accuracy
    equal to chance, |Σφ| below the floor, and a score interval of exactly 90 % of the range."""
    top = score_range(2)
    got = interpret(
        phi=np.array([-3e-5, -2e-5]),
        sid=np.array([0.0, 1.0]),
        total=Estimate(-5e-5, -1e-4, 1e-5),
        score_estimate=Estimate(0.1, 0.0, 0.9 * top),
        score_signed_estimate=Estimate(-0.5, -1.0, 0.5),
        clean_accuracy=0.5,
        chance_accuracy=0.5,
        n_classes_seen=1,
        n_classes_model=1,
    )
    assert got == _not_informative(
        "the model has 1 class, so log p(y | x) is 0 whatever the image; "
        "clean top-1 accuracy 0.500 is at or below chance (0.500, always answering the most frequent label), "
        "so the model has no predictive information to share among bands; "
        "Σφ = -5.0e-05 nats is below the 1e-04-nat resolution of the log-probabilities: the bands change "
        "nothing the model outputs; "
        "the score's interval [0.000, 0.300] spans 90% of its range [0, 0.333]"
    )


def test_one_band_one_label_and_no_interval():
    got = interpret(
        phi=np.array([0.7]),
        sid=np.array([1.0]),
        total=Estimate(0.7, np.nan, np.nan),
        score_estimate=Estimate(np.nan, np.nan, np.nan),
        score_signed_estimate=Estimate(np.nan, np.nan, np.nan),
        clean_accuracy=0.6,
        chance_accuracy=0.5,
        n_classes_seen=1,
        n_classes_model=None,
    )
    assert got == _not_informative(
        "there is only 1 band, so there is no distribution over bands to read; "
        "all images carry one label, so the game cannot tell classes apart; "
        "Σφ = +0.7000 nats has no bootstrap interval (one image or no resamples), so it cannot be told from zero"
    )


@pytest.mark.parametrize(
    "total, why",
    [
        (Estimate(0.5, 0.0, 0.9), "Σφ = +0.5000 nats and its interval [+0.0000, +0.9000] contains 0"),
        (Estimate(-0.5, -0.9, 0.0), "Σφ = -0.5000 nats and its interval [-0.9000, +0.0000] contains 0"),
        (Estimate(0.5, 0.2, np.nan), "Σφ = +0.5000 nats has no bootstrap interval"),
        (Estimate(0.5, np.nan, 0.8), "Σφ = +0.5000 nats has no bootstrap interval"),
        (Estimate(0.5, 0.2, np.inf), "Σφ = +0.5000 nats has no bootstrap interval"),
    ],
)
def test_a_total_that_cannot_be_told_from_zero(total, why):
    sid = np.array([0.5, 0.3, 0.2])
    got = interpret(
        phi=sid,
        sid=sid,
        total=total,
        score_estimate=Estimate(0.2, 0.18, 0.22),
        score_signed_estimate=Estimate(0.4, 0.3, 0.5),
        clean_accuracy=0.8,
        chance_accuracy=0.1,
        n_classes_seen=2,
        n_classes_model=2,
    )
    tail = (
        ": the bands carry no measurable information in total"
        if "contains" in why
        else " (one image or no resamples), so it cannot be told from zero"
    )
    assert got == _not_informative(why + tail)


def test_just_inside_every_rule_is_informative():
    """Each input one step on the informative side of its rule: two classes seen and in the model,
    accuracy just above chance, |Σφ| at the floor itself, a score interval just under 90 % of
    the range (M = 2, the smallest M the score rule applies to)."""
    top = score_range(2)
    got = interpret(
        phi=np.array([6e-5, 4e-5]),
        sid=np.array([1.0, 0.0]),
        total=Estimate(1e-4, 0.7e-4, 1.3e-4),
        score_estimate=Estimate(0.2, 0.0, 0.89 * top),
        score_signed_estimate=Estimate(0.9, 0.5, 1.0),
        clean_accuracy=0.501,
        chance_accuracy=0.5,
        n_classes_seen=2,
        n_classes_model=2,
    )
    assert got == {
        "informative": True,
        "why": "Σφ = +0.0001 nats [+0.0001, +0.0001] is away from 0 and clean accuracy 0.501 is above chance (0.500)",
        "sentence": "The lowest 1 of 2 bands carry 100% of the spectral importance (uniform would be 50%); "
        "band 0 matters most, so the model leans on robust low-frequency features (score_signed +0.90).",
    }
    # the same run with the model's two classes but one label among the images, and |Σφ| just under the floor
    low = interpret(
        phi=np.array([6e-5, 4e-5]),
        sid=np.array([1.0, 0.0]),
        total=Estimate(-9.9e-5, -1.5e-4, -5e-5),
        score_estimate=Estimate(0.2, 0.0, 0.89 * top),
        score_signed_estimate=Estimate(0.9, 0.5, 1.0),
        clean_accuracy=0.7,
        chance_accuracy=None,
        n_classes_seen=1,
        n_classes_model=2,
    )
    assert low == _not_informative(
        "all images carry one label, so the game cannot tell classes apart; "
        "Σφ = -9.9e-05 nats is below the 1e-04-nat resolution of the log-probabilities: the bands change "
        "nothing the model outputs"
    )


def test_the_score_rule_uses_the_range_at_the_given_beta_and_ignores_missing_intervals():
    # M = 4: the range at β = 0.5 is larger than at 0.75, so an interval 0.42 wide is 90+ % of one only
    r75, r50 = _range_by_geometric_sums(4, 0.75), _range_by_geometric_sums(4, 0.5)
    assert 0.9 * r75 <= 0.42 < 0.9 * r50
    sid = np.array([0.4, 0.3, 0.2, 0.1])
    common = dict(
        phi=sid,
        sid=sid,
        total=Estimate(1.0, 0.8, 1.2),
        score_signed_estimate=Estimate(0.4, 0.3, 0.5),
        clean_accuracy=0.8,
        chance_accuracy=0.1,
        n_classes_seen=2,
        n_classes_model=2,
    )
    wide = interpret(score_estimate=Estimate(0.2, 0.02, 0.44), **common)  # 0.42 wide, not from 0
    assert wide["why"] == (
        f"the score's interval [0.020, 0.440] spans {100 * 0.42 / r75:.0f}% of its range [0, {r75:.3f}]"
    )
    assert f"{100 * 0.42 / r75:.0f}" == "100" and f"{100 * 0.46 / r75:.0f}" == "109"  # its width, not lo + hi
    assert interpret(score_estimate=Estimate(0.2, 0.02, 0.44), beta=0.5, **common)["informative"] is True
    for missing in (Estimate(0.2, np.nan, 0.42), Estimate(0.2, 0.0, np.nan), Estimate(0.2, -np.inf, 0.42)):
        assert interpret(score_estimate=missing, **common)["informative"] is True


def test_total_estimate_is_the_percentile_interval_of_the_resampled_sums():
    rng = np.random.default_rng(11)
    phi = rng.normal(0.2, 1.0, size=(12, 3))
    sums = phi.sum(axis=1)
    # the resamples of the bootstrap's own draws, averaged here image by image
    draws = np.concatenate([rows for _, _, rows in bootstrap_draws(12, 250, 5)])
    resampled = sums[draws].mean(axis=1)
    for confidence in (0.95, 0.8):
        est = total_estimate(phi, n_bootstrap=250, confidence=confidence, seed=5)
        a = (1 - confidence) / 2
        assert type(est.low) is float and type(est.value) is float
        assert est.value == pytest.approx(sums.mean(), rel=1e-12)
        assert est.low == pytest.approx(np.quantile(resampled, a), rel=1e-12)
        assert est.high == pytest.approx(np.quantile(resampled, 1 - a), rel=1e-12)
    one = total_estimate(phi, n_bootstrap=1, confidence=0.95, seed=5)  # one resample: both ends are it
    assert one.low == one.high == pytest.approx(sums[next(bootstrap_draws(12, 1, 5))[2][0]].mean(), rel=1e-12)
    two = total_estimate(phi[:2], n_bootstrap=50, confidence=0.95, seed=5)  # two images: an interval
    assert np.isfinite(two.low) and np.isfinite(two.high) and two.low <= two.high
    for none in (
        total_estimate(phi[:1], n_bootstrap=50, confidence=0.95, seed=5),
        total_estimate(phi, n_bootstrap=0, confidence=0.95, seed=5),
    ):
        assert math.isnan(none.low) and math.isnan(none.high) and type(none.low) is float
    assert total_estimate(phi[:1], n_bootstrap=50, confidence=0.95, seed=5).value == pytest.approx(sums[0])


def test_bootstrap_draws_come_in_chunks_of_whole_resamples_of_every_image():
    got = list(bootstrap_draws(5, 7, seed=3, chunk=3))
    assert [(start, stop) for start, stop, _ in got] == [(0, 3), (3, 6), (6, 7)]
    assert [rows.shape for _, _, rows in got] == [(3, 5), (3, 5), (1, 5)]
    rows = np.concatenate([r for _, _, r in got])
    assert rows.min() >= 0 and rows.max() <= 4
    # one stream: the same draws whatever the chunk size, and every image index drawn somewhere
    assert np.array_equal(rows, next(iter(bootstrap_draws(5, 7, seed=3, chunk=64)))[2])
    many = np.concatenate([r for _, _, r in bootstrap_draws(4, 200, seed=0)])
    assert many.shape == (200, 4) and set(np.unique(many).tolist()) == {0, 1, 2, 3}
    assert not np.array_equal(many, np.concatenate([r for _, _, r in bootstrap_draws(4, 200, seed=1)]))


def test_signed_shares_of_negative_zero_and_mixed_sums():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        got = signed_shares(np.array([[-1.0, -3.0], [2.0, -1.0], [0.5, -0.5], [0.0, 0.0], [1e-300, 0.0]]))
    assert got.dtype == np.float64
    np.testing.assert_array_equal(got[:2], [[0.25, 0.75], [2.0, -1.0]])  # a negative Σφ keeps each sign's share
    assert np.isnan(got[2:4]).all()
    np.testing.assert_array_equal(got[4], [1.0, 0.0])  # a tiny Σφ is still a sum, not zero
    assert signed_shares(np.array([4.0])).tolist() == [1.0]


def test_the_scores_of_one_band_are_undefined_quietly():
    """M = 1: η = 1 and b̂₀ = 1, so both scores are 0/0 for the only SID, [1]: NaN, with no
    RuntimeWarning on the way (a one-band result loaded by `iaside show` prints none)."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        one = score(np.array([1.0]))
        signed = score_signed(np.array([1.0]), beta=0.5)
        rows = score(np.ones((3, 1))), score_signed(np.ones((3, 1)))
    assert np.isnan(one) and np.isnan(signed) and all(r.shape == (3,) and np.isnan(r).all() for r in rows)


@pytest.mark.parametrize(
    "signed, kind",
    [
        (Estimate(0.0, 0.05, 0.3), "robust low-frequency"),  # point exactly 0: the interval says low
        (Estimate(0.02, -0.3, -0.05), "non-robust high-frequency"),  # point above 0, interval below
    ],
)
def test_a_settled_lean_takes_its_direction_from_its_interval_not_the_point(signed, kind):
    """The score is a nonlinear function of the mean φ, so its point can sit outside its own
    percentile interval: whether the lean is settled and which way it goes are both read from
    the interval, so the sentence never calls a lean settled one way while its interval lies on
    the other side of 0."""
    got = _read_m12(signed)
    assert got["sentence"].endswith(
        f"band 0 matters most, so the model leans on {kind} features (score_signed {float(signed.value):+.2f})."
    )
