"""The partial correlation ``iaside compare`` prints for each score and measure with clean
accuracy held fixed: every field of its record against values computed here independently —
r by the residual route (least squares on z, then the correlation of what is left), the
p-value as the t test of x's coefficient in the regression of y on (1, z, x), the interval as
the percentile interval of the residual-route r over the documented model resamples — and the
cases where it is undefined; and None (a JSON null) as a missing number in every correlation
(docs/proofs.md §6 lists the mutants these kill).
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from scipy import stats

from iaside.errors import IasideError
from iaside.robustness.correlation import correlate, partial_correlate, partial_statistic_rows

Z = np.array([71.2, 64.5, 80.3, 58.9, 76.0])  # clean accuracy of five models
X = np.array([0.42, 0.31, 0.18, 0.55, 0.27])  # a score
Y = np.array([0.82, 1.05, 0.92, 1.09, 0.76])  # a measure


def _residual_r(x, y, z) -> float:
    """Correlation of x and y after a least-squares line on z; NaN when nothing is left of x
    or of y (x or y constant, or a linear function of z)."""
    design = np.column_stack([np.ones_like(z), z])
    rx = x - design @ np.linalg.lstsq(design, x, rcond=None)[0]
    ry = y - design @ np.linalg.lstsq(design, y, rcond=None)[0]
    spread = [np.linalg.norm(a - a.mean()) for a in (x, y)]
    if min(np.linalg.norm(rx) - 1e-9 * spread[0], np.linalg.norm(ry) - 1e-9 * spread[1]) <= 0:
        return float("nan")
    return float(rx @ ry / np.sqrt((rx @ rx) * (ry @ ry)))


def _ols_t_p(x, y, z) -> float:
    """Two-sided p of x's coefficient in the least-squares fit y ~ 1 + z + x (n − 3 degrees of freedom)."""
    design = np.column_stack([np.ones_like(z), z, x])
    beta, rss = np.linalg.lstsq(design, y, rcond=None)[:2]
    dof = len(y) - 3
    cov = rss[0] / dof * np.linalg.inv(design.T @ design)
    return float(2 * stats.t.sf(abs(beta[2] / np.sqrt(cov[2, 2])), dof))


def _bootstrap(x, y, z, method, seed, n_bootstrap):
    """The residual-route r on every resample of the models (rows drawn with replacement from
    the generator seeded by SeedSequence([seed, 0xC0FF, 0x9A])), NaN where it is undefined;
    the least-squares lines through the pseudo-inverse, all resamples at once."""
    rng = np.random.default_rng(np.random.SeedSequence([seed, 0xC0FF, 0x9A]))
    rows = rng.integers(0, len(x), size=(n_bootstrap, len(x)))
    a, b, c = x[rows], y[rows], z[rows]
    if method == "spearman":
        a, b, c = (stats.rankdata(v, axis=1) for v in (a, b, c))
    design = np.stack([np.ones_like(c), c], axis=-1)  # (R, n, 2)
    fit = design @ np.linalg.pinv(design)  # the projection on (1, z) of each resample
    ra, rb = (v - (fit @ v[..., None])[..., 0] for v in (a, b))
    left = [
        np.linalg.norm(r, axis=1) - 1e-9 * np.linalg.norm(v - v.mean(axis=1, keepdims=True), axis=1)
        for r, v in ((ra, a), (rb, b))
    ]
    with np.errstate(invalid="ignore", divide="ignore"):
        r = (ra * rb).sum(axis=1) / np.sqrt((ra * ra).sum(axis=1) * (rb * rb).sum(axis=1))
    return np.where((left[0] > 0) & (left[1] > 0), r, np.nan), rows


def test_partial_pearson_record_is_the_residual_route_with_the_regression_t_test_and_its_bootstrap():
    """Mutants: r from another formula (r_xy alone, a wrong denominator), the t test on other
    degrees of freedom or one-sided, any field of the record (names, method, n, level, counts)
    swapped or dropped, another resampling, undefined resamples kept, another percentile."""
    c = partial_correlate(
        X, Y, Z, "pearson", x_name="score", y_name="mCE", z_name="clean top-1", n_bootstrap=300, confidence=0.9, seed=5
    )
    r = _residual_r(X, Y, Z)
    plain = stats.pearsonr(X, Y).statistic
    assert r < -0.3 and abs(r - plain) > 0.5  # a negative partial r, far from the plain one
    assert c.r == pytest.approx(r, abs=1e-12)
    p = _ols_t_p(X, Y, Z)
    t = r * np.sqrt(2 / (1 - r * r))
    assert p == pytest.approx(2 * stats.t.sf(abs(t), 2), rel=1e-9)  # the two routes agree
    assert c.p_value == pytest.approx(p, rel=1e-9) and 0.01 < p < 0.9
    boot, rows = _bootstrap(X, Y, Z, "pearson", 5, 300)
    valid = boot[np.isfinite(boot)]
    few = np.array([len(set(i)) < 3 for i in rows])
    assert few.sum() > 10 and np.array_equal(np.isnan(boot), few)  # two models leave no residual
    assert c.n_valid == valid.size
    assert (c.low, c.high) == pytest.approx(tuple(np.percentile(valid, [5, 95])), abs=1e-9)
    assert c.to_dict() == {
        "method": "partial pearson | clean top-1",
        "x": "score",
        "y": "mCE",
        "n": 5,
        "r": c.r,
        "p_value": c.p_value,
        "low": c.low,
        "high": c.high,
        "n_bootstrap": 300,
        "n_valid": valid.size,
        "confidence": 0.9,
        "p_method": "t test on n−3 = 2 degrees of freedom, controlling for clean top-1",
    }
    lo, hi = np.percentile(valid, [5, 95])
    assert c.line() == (
        f"score vs mCE: partial pearson | clean top-1 {r:+.3f} (p={p:.3g}, 90% CI {lo:+.3f} – {hi:+.3f}, n=5)"
    )


def test_partial_spearman_defaults_rank_hold_clean_accuracy_and_bootstrap_2000_times_at_95():
    """The defaults: Spearman (the residual route on ranks, ties averaged), z named "clean
    accuracy", 2000 resamples from seed 0, a 95 % interval."""
    z = np.array([71.2, 64.5, 80.3, 58.9, 76.0, 69.9])
    x = np.array([0.42, 0.31, 0.18, 0.55, 0.27, 0.31])  # ties in x and in y
    y = np.array([0.74, 1.20, 1.20, 1.05, 1.34, 0.76])
    c = partial_correlate(x, y, z)
    ranks = [stats.rankdata(a) for a in (x, y, z)]
    r = _residual_r(*ranks)
    assert abs(r - _residual_r(x, y, z)) > 0.3  # ranks, not values
    assert c.r == pytest.approx(r, abs=1e-12)
    assert c.p_value == pytest.approx(_ols_t_p(*ranks), rel=1e-9)
    boot, _ = _bootstrap(x, y, z, "spearman", 0, 2000)
    valid = boot[np.isfinite(boot)]
    assert c.n_valid == valid.size and 1000 < valid.size < 2000
    assert (c.low, c.high) == pytest.approx(tuple(np.percentile(valid, [2.5, 97.5])), abs=1e-9)
    assert (c.method, c.x, c.y, c.n, c.n_bootstrap, c.confidence) == (
        "partial spearman | clean accuracy",
        "x",
        "y",
        6,
        2000,
        0.95,
    )
    assert c.p_method == "t test on n−3 = 3 degrees of freedom, controlling for clean accuracy"
    assert "(p=" in c.line() and "95% CI" in c.line() and c.line().endswith(", n=6)")


def test_partial_correlation_leaves_out_models_with_a_missing_number_and_needs_four():
    """A NaN in any of x, y, z leaves that model out (the others' r and resamples are those of
    the kept models alone); with fewer than four left the record is a full record of nothing."""
    nan = float("nan")
    x = np.append(X, [nan, 0.30, 0.50])  # model 6 lacks x,
    y = np.append(Y, [0.90, nan, 1.00])  # model 7 lacks y,
    z = np.append(Z, [70.0, 66.0, nan])  # model 8 lacks z
    c = partial_correlate(x, y, z, "pearson", n_bootstrap=200, seed=2)
    assert c == partial_correlate(X, Y, Z, "pearson", n_bootstrap=200, seed=2) and c.n == 5
    four = partial_correlate(X[:4], Y[:4], Z[:4], "pearson", n_bootstrap=0)
    assert four.n == 4 and four.r == pytest.approx(_residual_r(X[:4], Y[:4], Z[:4]), abs=1e-12)
    assert four.p_value == pytest.approx(_ols_t_p(X[:4], Y[:4], Z[:4]), rel=1e-9)
    assert four.p_method == "t test on n−3 = 1 degrees of freedom, controlling for clean accuracy"
    kept = [0, 1, 2, 5, 6, 7]  # three complete models
    three = partial_correlate(x[kept], y[kept], z[kept], x_name="s", y_name="m", z_name="acc", n_bootstrap=40)
    assert [getattr(three, k) for k in ("method", "x", "y", "n", "n_bootstrap", "n_valid", "confidence")] == [
        "partial spearman | acc",
        "s",
        "m",
        3,
        40,
        0,
        0.95,
    ]
    assert three.p_method == "n < 4"
    assert all(np.isnan(getattr(three, k)) for k in ("r", "p_value", "low", "high"))


def test_partial_correlation_is_undefined_quietly_when_nothing_is_left_of_x_or_y():
    """Constant z, or x or y a linear function of z (Pearson) or ranked exactly like it
    (Spearman: a measure such as the clean error, 100 − accuracy): no residual is left, so r,
    p and the interval are NaN — not a rounding residue reported as r ≈ 0, p ≈ 1 — and no
    warning is printed."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        cases = {
            "constant z": partial_correlate(X, Y, np.full(5, 70.0), "pearson", n_bootstrap=100),
            "x linear in z": partial_correlate(0.02 * Z + 0.3, Y, Z, "pearson", n_bootstrap=100),
            "x = z": partial_correlate(Z, Y, Z, "pearson", n_bootstrap=100),
            "y ranked like -z": partial_correlate(X, 100 - Z, Z, "spearman", n_bootstrap=100),
            "constant x": partial_correlate(np.full(5, 0.1), Y, Z, "spearman", n_bootstrap=100),
        }
    for what, c in cases.items():
        assert all(np.isnan(getattr(c, k)) for k in ("r", "p_value", "low", "high")), what
        assert (c.n, c.n_valid, c.n_bootstrap) == (5, 0, 100), what
        kind = "monotone" if what in ("y ranked like -z", "constant x") else "linear"
        assert c.p_method == (  # what `iaside compare` prints as "n/a (...)": why, not a test never run
            f"undefined: nothing is left of x or y with clean accuracy held fixed (a constant, or a {kind} function of it)"
        ), what
    assert np.isnan(_residual_r(0.02 * Z + 0.3, Y, Z)) and np.isnan(_residual_r(X, 100 - Z, Z))


@pytest.mark.parametrize("sign", [1, -1])
def test_a_perfect_partial_correlation_is_plus_or_minus_one_with_p_zero(sign):
    """y a linear function of x: the partial r is ±1 whatever z is; rounding puts the raw ratio
    beyond ±1 on these numbers (precondition), r is clipped back, and the t statistic is
    infinite, so p = 0."""
    x = np.array([0.13, 0.57, 0.23, 0.64, 0.12, 0.35])
    z = np.array([87.5, 71.5, 82.5, 76.3, 74.4, 57.7])
    if sign < 0:
        x = np.array([0.18, 0.68, 0.72, 0.76, 0.64, 0.4])
        z = np.array([52.6, 70.8, 80.3, 57.6, 60.6, 71.4])
    y = sign * 3.7 * x + 1.3
    c = partial_correlate(x, y, z, "pearson", n_bootstrap=50)
    centred = [a - a.mean() for a in (x, y, z)]  # the ratio as computed from centred sums

    def r(a, b):
        return min(1.0, max(-1.0, (a * b).sum() / (np.sqrt((a * a).sum()) * np.sqrt((b * b).sum()))))

    r_xy, r_xz, r_yz = r(centred[0], centred[1]), r(centred[0], centred[2]), r(centred[1], centred[2])
    assert abs((r_xy - r_xz * r_yz) / np.sqrt((1 - r_xz**2) * (1 - r_yz**2))) > 1  # precondition
    assert c.r == sign * 1.0 and c.p_value == 0.0
    assert c.low == pytest.approx(sign, abs=1e-12) and c.high == pytest.approx(sign, abs=1e-12) and c.n_valid > 40


def test_partial_correlation_refusals():
    with pytest.raises(IasideError, match=r"^partial correlation method 'kendall' is not one of pearson, spearman$"):
        partial_correlate(X, Y, Z, "kendall")
    with pytest.raises(IasideError, match=r"^partial correlation method 'tau' is not one of pearson, spearman$"):
        partial_statistic_rows("tau", X, Y, Z)
    with pytest.raises(IasideError, match=r"^x, y and z need one value per model, got shapes \(5,\), \(5,\), \(4,\)$"):
        partial_correlate(X, Y, Z[:4])
    with pytest.raises(IasideError, match=r"got shapes \(5,\), \(4,\), \(5,\)$"):
        partial_correlate(X, Y[:4], Z)
    with pytest.raises(IasideError, match=r"got shapes \(1, 5\), \(1, 5\), \(1, 5\)$"):
        partial_correlate(X[None], Y[None], Z[None])


def test_partial_correlation_with_no_or_one_resample():
    """n_bootstrap = 0: no interval; 1: the one resample's r as both ends."""
    none = partial_correlate(X, Y, Z, "pearson", n_bootstrap=0)
    assert none.n_valid == 0 and np.isnan(none.low) and np.isnan(none.high)
    assert none.r == pytest.approx(_residual_r(X, Y, Z), abs=1e-12) and none.n_bootstrap == 0
    for seed in range(4):
        one = partial_correlate(X, Y, Z, "pearson", n_bootstrap=1, seed=seed)
        boot, _ = _bootstrap(X, Y, Z, "pearson", seed, 1)
        if np.isfinite(boot[0]):
            assert one.n_valid == 1 and one.low == pytest.approx(boot[0], abs=1e-12) and one.low == one.high
        else:
            assert one.n_valid == 0 and np.isnan(one.low)


def test_a_null_number_is_a_missing_model_in_every_correlation():
    """A model's number read as None (null in compare.json, an empty cell) is a missing number:
    that model is left out of r, p and the resamples, as NaN is; a row with one has no
    correlation. Mutant: the float conversion dropped (None then breaks the arithmetic)."""
    from iaside.robustness.correlation import METHODS, correlate, statistic_rows

    full = [*X, 0.6], [*Y, 0.6], [*Z, 70.0]  # a sixth model
    assert abs(_residual_r(*map(np.array, full)) - _residual_r(X, Y, Z)) > 0.1  # it would change r
    assert abs(stats.pearsonr(*full[:2]).statistic - stats.pearsonr(X, Y).statistic) > 0.1
    for k in range(3):  # with each of its numbers missing in turn
        xyz = [v if j != k else [*v[:5], None] for j, v in enumerate(full)]
        assert partial_correlate(*xyz, "pearson", n_bootstrap=100) == partial_correlate(
            X, Y, Z, "pearson", n_bootstrap=100
        )
        for method in ("pearson", "spearman"):
            assert np.isnan(partial_statistic_rows(method, *([v] for v in xyz))).all()
        if k < 2:
            for method in METHODS:
                assert correlate(*xyz[:2], method, n_bootstrap=100) == correlate(X, Y, method, n_bootstrap=100)
                assert np.isnan(statistic_rows(method, *([v] for v in xyz[:2]))).all()


def test_an_undefined_correlation_says_why_and_an_unknown_method_is_refused_at_any_n():
    """A constant measure has no correlation: the record says so instead of naming a scipy
    class; an unknown partial method is refused even with too few models to compute anything."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for method in ("pearson", "spearman", "kendall"):
            c = correlate([0.3, 0.3, 0.3, 0.3], [1.0, 2.0, 4.0, 3.0], method, x_name="score", y_name="mCE")
            assert np.isnan(c.r) and np.isnan(c.p_value) and c.p_method == "undefined: score or mCE is constant"
    for n in (3, 5):
        with pytest.raises(IasideError, match="partial correlation method 'kendall' is not one of pearson, spearman"):
            partial_correlate(np.arange(n), np.arange(n), np.arange(n), "kendall")
