"""Correlation between the I-ASIDE score and measured robustness across models (docs/method.md §8).

Spearman, Kendall (τ-b) and Pearson, each with a two-sided p-value on the models given and a
percentile bootstrap interval over models (resample models with replacement). p-values come
from scipy: for up to 8 models the exact permutation test (``scipy.stats.permutation_test``
over all n! pairings; scipy's t-based p-value says p = 0 for r = 1 with 3 models), beyond that
``pearsonr``/``spearmanr``/``kendalltau``. The
bootstrap statistics are computed vectorised here and equal scipy's on every resample (the
tests check it); resamples where x or y is constant have no correlation and are dropped,
and how many were kept is reported.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from scipy import stats

from ..errors import IasideError

METHODS = ("spearman", "kendall", "pearson")
EXACT_MAX_N = 8
"""Up to this many models the p-value is the exact permutation test (8! = 40320 pairings)."""


@dataclass(frozen=True)
class Correlation:
    """r with its p-value (scipy, two-sided) and a bootstrap interval over the n models."""

    method: str
    x: str
    y: str
    n: int
    r: float
    p_value: float
    low: float
    high: float
    n_bootstrap: int
    n_valid: int
    confidence: float
    p_method: str = ""

    def to_dict(self) -> dict:
        return asdict(self)

    def line(self) -> str:
        return (
            f"{self.x} vs {self.y}: {self.method} {self.r:+.3f} (p={self.p_value:.3g}, "
            f"{int(round(100 * self.confidence))}% CI {self.low:+.3f} – {self.high:+.3f}, n={self.n})"
        )


def _pearson_rows(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Pearson r of each row pair, (R, n) × (R, n) -> (R,); NaN where a row is constant."""
    xc = x - x.mean(axis=1, keepdims=True)
    yc = y - y.mean(axis=1, keepdims=True)
    sx = np.sqrt((xc * xc).sum(axis=1))
    sy = np.sqrt((yc * yc).sum(axis=1))
    ok = (np.ptp(x, axis=1) > 0) & (np.ptp(y, axis=1) > 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        r = (xc * yc).sum(axis=1) / (sx * sy)
    return np.where(ok, np.clip(r, -1.0, 1.0), np.nan)


def _kendall_rows(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Kendall τ-b of each row pair: Σ sign(Δx)sign(Δy) / sqrt(Σ sign(Δx)² Σ sign(Δy)²) over pairs."""
    sx = np.sign(x[:, :, None] - x[:, None, :])
    sy = np.sign(y[:, :, None] - y[:, None, :])
    num = (sx * sy).sum(axis=(1, 2))
    den = np.sqrt((sx * sx).sum(axis=(1, 2)) * (sy * sy).sum(axis=(1, 2)))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1.0), np.nan)


def statistic_rows(method: str, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """The correlation of each row pair, (R, n) × (R, n) -> (R,) float64 (NaN when undefined)."""
    x, y = np.atleast_2d(np.asarray(x, np.float64)), np.atleast_2d(np.asarray(y, np.float64))
    if method == "pearson":
        return _pearson_rows(x, y)
    if method == "spearman":
        return _pearson_rows(stats.rankdata(x, axis=1), stats.rankdata(y, axis=1))
    if method == "kendall":
        return _kendall_rows(x, y)
    raise IasideError(f"correlation method {method!r} is not one of {', '.join(METHODS)}")


def _scipy(method: str, x: np.ndarray, y: np.ndarray) -> tuple[float, float, str]:
    """(r, two-sided p, how p was computed)."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # constant input: scipy warns and returns NaN, as we report
        if method == "pearson":
            res = stats.pearsonr(x, y)
        elif method == "spearman":
            res = stats.spearmanr(x, y)
        else:
            res = stats.kendalltau(x, y)
        r, p, how = float(res.statistic), float(res.pvalue), f"scipy.stats.{res.__class__.__name__}"
        n = x.size
        if n <= EXACT_MAX_N and np.isfinite(r):

            def statistic(b, axis=-1):  # x fixed, y in every order: n! pairings
                b = np.moveaxis(b, axis, -1)
                rows = b.reshape(-1, n)
                return statistic_rows(method, np.broadcast_to(x, rows.shape), rows).reshape(b.shape[:-1])

            res = stats.permutation_test(
                (y,),
                statistic,
                permutation_type="pairings",
                vectorized=True,
                n_resamples=np.inf,
                alternative="two-sided",
            )
            p, how = float(res.pvalue), f"exact permutation test over {n}! pairings (scipy)"
    return r, p, how


def correlate(
    x,
    y,
    method: str = "spearman",
    *,
    x_name: str = "x",
    y_name: str = "y",
    n_bootstrap: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
) -> Correlation:
    """Correlation of x and y (one value per model) with p-value and bootstrap interval.

    x, y: (n,) float; models where either is NaN are left out. With fewer than 3 models,
    r and the interval are NaN (no correlation can be tested).
    """
    if method not in METHODS:
        raise IasideError(f"correlation method {method!r} is not one of {', '.join(METHODS)}")
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    if x.shape != y.shape or x.ndim != 1:
        raise IasideError(f"x and y need one value per model, got shapes {x.shape} and {y.shape}")
    keep = np.isfinite(x) & np.isfinite(y)
    x, y = x[keep], y[keep]
    n = int(x.size)
    nan = float("nan")
    if n < 3:
        return Correlation(method, x_name, y_name, n, nan, nan, nan, nan, n_bootstrap, 0, confidence, "n < 3")
    r, p, how = _scipy(method, x, y)
    if not np.isfinite(r):
        how = f"undefined: {x_name} or {y_name} is constant"
    low = high = nan
    n_valid = 0
    if n_bootstrap > 0:
        rng = np.random.default_rng(np.random.SeedSequence([seed, 0xC0FF]))
        rows = rng.integers(0, n, size=(n_bootstrap, n))
        boot = statistic_rows(method, x[rows], y[rows])
        valid = boot[np.isfinite(boot)]
        n_valid = int(valid.size)
        if n_valid:
            alpha = (1.0 - confidence) / 2
            low, high = (float(v) for v in np.quantile(valid, [alpha, 1 - alpha]))
    return Correlation(method, x_name, y_name, n, r, p, low, high, n_bootstrap, n_valid, confidence, how)


def correlation_table(
    scores: dict[str, np.ndarray],
    measures: dict[str, np.ndarray],
    *,
    methods=METHODS,
    n_bootstrap: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
) -> list[Correlation]:
    """Every (score, measure, method) combination, in that nesting order."""
    return [
        correlate(sx, my, method, x_name=xs, y_name=ym, n_bootstrap=n_bootstrap, confidence=confidence, seed=seed)
        for xs, sx in scores.items()
        for ym, my in measures.items()
        for method in methods
    ]


PARTIAL_METHODS = ("pearson", "spearman")


def _partial_rows(x: np.ndarray, y: np.ndarray, z: np.ndarray) -> np.ndarray:
    """Partial Pearson r of x and y given z, row by row, (R, n)³ -> (R,):
    (r_xy − r_xz·r_yz) / sqrt((1 − r_xz²)(1 − r_yz²)); NaN where undefined: x, y or z constant,
    or x or y a linear function of z (nothing is left of it once z is held fixed). Each factor
    1 − r² is tested on its own: when x is exactly linear in z, rounding leaves 1 − r_xz² at a
    few ulp (about 1e-16) and the product with a large 1 − r_yz² can pass a test on the
    product, giving a rounding residue (r ≈ 1e-8, p ≈ 1) instead of NaN."""
    r_xy, r_xz, r_yz = _pearson_rows(x, y), _pearson_rows(x, z), _pearson_rows(y, z)
    with np.errstate(invalid="ignore", divide="ignore"):
        left_x, left_y = 1 - r_xz**2, 1 - r_yz**2
        r = (r_xy - r_xz * r_yz) / np.sqrt(left_x * left_y)
    return np.where((left_x > 1e-12) & (left_y > 1e-12), np.clip(r, -1.0, 1.0), np.nan)


def partial_statistic_rows(method: str, x, y, z) -> np.ndarray:
    """Partial correlation of x and y controlling for z, row by row (Spearman: on ranks)."""
    x, y, z = (np.atleast_2d(np.asarray(a, np.float64)) for a in (x, y, z))
    if method == "spearman":
        x, y, z = (stats.rankdata(a, axis=1) for a in (x, y, z))
    elif method != "pearson":
        raise IasideError(f"partial correlation method {method!r} is not one of {', '.join(PARTIAL_METHODS)}")
    return _partial_rows(x, y, z)


def partial_correlate(
    x,
    y,
    z,
    method: str = "spearman",
    *,
    x_name: str = "x",
    y_name: str = "y",
    z_name: str = "clean accuracy",
    n_bootstrap: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
) -> Correlation:
    """Partial correlation of x and y with z held fixed (one value per model), with a two-sided
    p-value (t = r·sqrt((n−3)/(1−r²)), n−3 degrees of freedom) and a bootstrap interval over
    models. Models where any of x, y, z is NaN are left out; fewer than 4 models: NaN."""
    if method not in PARTIAL_METHODS:
        raise IasideError(f"partial correlation method {method!r} is not one of {', '.join(PARTIAL_METHODS)}")
    x, y, z = (np.asarray(a, np.float64) for a in (x, y, z))
    if not (x.shape == y.shape == z.shape) or x.ndim != 1:
        raise IasideError(f"x, y and z need one value per model, got shapes {x.shape}, {y.shape}, {z.shape}")
    keep = np.isfinite(x) & np.isfinite(y) & np.isfinite(z)
    x, y, z = x[keep], y[keep], z[keep]
    n = int(x.size)
    nan = float("nan")
    name = f"partial {method} | {z_name}"
    if n < 4:
        return Correlation(name, x_name, y_name, n, nan, nan, nan, nan, n_bootstrap, 0, confidence, "n < 4")
    r = float(partial_statistic_rows(method, x, y, z)[0])
    p = nan
    how = f"t test on n−3 = {n - 3} degrees of freedom, controlling for {z_name}"
    if np.isfinite(r):
        t = r * np.sqrt((n - 3) / max(1.0 - r * r, 1e-300))
        p = float(2 * stats.t.sf(abs(t), n - 3))
    else:
        kind = "monotone" if method == "spearman" else "linear"
        how = f"undefined: nothing is left of {x_name} or {y_name} with {z_name} held fixed (a constant, or a {kind} function of it)"

    low = high = nan
    n_valid = 0
    if n_bootstrap > 0:
        rng = np.random.default_rng(np.random.SeedSequence([seed, 0xC0FF, 0x9A]))
        rows = rng.integers(0, n, size=(n_bootstrap, n))
        boot = partial_statistic_rows(method, x[rows], y[rows], z[rows])
        valid = boot[np.isfinite(boot)]
        n_valid = int(valid.size)
        if n_valid:
            alpha = (1.0 - confidence) / 2
            low, high = (float(v) for v in np.quantile(valid, [alpha, 1 - alpha]))
    return Correlation(
        name,
        x_name,
        y_name,
        n,
        r,
        p,
        low,
        high,
        n_bootstrap,
        n_valid,
        confidence,
        how,
    )
