"""From per-image Shapley values to the answers: φ, SID, shares, scores and their intervals (docs/method.md §6)."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

BETA = 0.75


def robustness_weights(n_bands: int, beta: float = BETA) -> np.ndarray:
    """b_k = β**k, (M,) float64: the score's preference for low bands."""
    return beta ** np.arange(n_bands, dtype=np.float64)


def sid_from_phi(phi: np.ndarray) -> np.ndarray:
    """Paper normalisation, (..., M) -> (..., M): ψ = φ − min φ, SID = ψ/Σψ (uniform if Σψ = 0)."""
    psi = phi - phi.min(axis=-1, keepdims=True)
    total = psi.sum(axis=-1, keepdims=True)
    uniform = np.full_like(psi, 1.0 / psi.shape[-1])
    return np.where(total > 0, psi / np.where(total > 0, total, 1.0), uniform)


def signed_shares(phi: np.ndarray) -> np.ndarray:
    """φ/Σφ, (..., M) -> (..., M); NaN where Σφ = 0."""
    total = phi.sum(axis=-1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):  # φ ≠ 0 with Σφ = 0 would give ±inf
        return np.where(total != 0, phi / total, np.nan)


def _score_terms(n_bands: int, beta: float) -> tuple[np.ndarray, float]:
    b = robustness_weights(n_bands, beta)
    l2 = np.linalg.norm(b)
    return b / l2, float(b.sum() / (n_bands * l2))


def score(sid: np.ndarray, beta: float = BETA) -> np.ndarray:
    """Paper robustness score |b̂·SID − η| / |1 − η|, (..., M) -> (...)."""
    b_hat, eta = _score_terms(sid.shape[-1], beta)
    with np.errstate(invalid="ignore", divide="ignore"):  # M = 1: η = 1, the score is undefined (NaN)
        return np.abs(sid @ b_hat - eta) / abs(1.0 - eta)


def score_signed(sid: np.ndarray, beta: float = BETA) -> np.ndarray:
    """(b̂·SID − η)/(b̂₀ − η), (..., M) -> (...): 1 all mass on band 0, 0 uniform, < 0 high-dominated."""
    b_hat, eta = _score_terms(sid.shape[-1], beta)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (sid @ b_hat - eta) / (b_hat[0] - eta)


@dataclass
class Estimate:
    """A value with its bootstrap percentile interval (same shape as value)."""

    value: np.ndarray | float
    low: np.ndarray | float
    high: np.ndarray | float

    def to_dict(self) -> dict:
        return {k: np.asarray(v).tolist() for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, d: dict) -> Estimate:
        return cls(**{k: np.asarray(v, dtype=np.float64) if isinstance(v, list) else float(v) for k, v in d.items()})


def _statistics(mean_phi: np.ndarray, beta: float) -> dict[str, np.ndarray]:
    sid = sid_from_phi(mean_phi)
    return {
        "phi": mean_phi,
        "sid": sid,
        "shares": signed_shares(mean_phi),
        "score": score(sid, beta),
        "score_signed": score_signed(sid, beta),
    }


def bootstrap_draws(n_images: int, n_resamples: int, seed: int, chunk: int = 64):
    """The bootstrap's image draws, the one stream every interval of a run uses: yields
    (start, stop, rows) with rows (stop − start, N) the images of resamples start..stop−1."""
    rng = np.random.default_rng(np.random.SeedSequence([seed, 0xB007]))
    for start in range(0, n_resamples, chunk):
        stop = min(start + chunk, n_resamples)
        yield start, stop, rng.integers(0, n_images, size=(stop - start, n_images))


def bootstrap_means(per_image: np.ndarray, n_resamples: int, seed: int, chunk: int = 64) -> np.ndarray:
    """Means of ``n_resamples`` bootstrap resamples of the rows, (N, M) -> (R, M) float64."""
    out = np.empty((n_resamples, per_image.shape[1]))
    for start, stop, rows in bootstrap_draws(per_image.shape[0], n_resamples, seed, chunk):
        out[start:stop] = per_image[rows].mean(axis=1)
    return out


def summarize(
    phi_per_image: np.ndarray,
    labels: np.ndarray,
    *,
    n_bootstrap: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
    beta: float = BETA,
) -> dict:
    """Everything docs/method.md §6 reports from the per-image Shapley values (N, M) float64 nats
    (``Estimator.phi``; ``exact_shapley`` of the (N, 2**M) values for exact runs).

    Returns plain arrays and ``Estimate``s: phi/sid/shares (M,), score, score_signed (bootstrap
    over images), per-image phi (N, M), per-class {label: {n, phi, sid}}.
    """
    point = _statistics(phi_per_image.mean(axis=0), beta)
    alpha = (1.0 - confidence) / 2
    if n_bootstrap > 0 and phi_per_image.shape[0] > 1:
        boot = _statistics(bootstrap_means(phi_per_image, n_bootstrap, seed), beta)
        q = lambda a: (np.nanquantile(a, alpha, axis=0), np.nanquantile(a, 1 - alpha, axis=0))
        estimates = {k: Estimate(point[k], *q(boot[k])) for k in point}
    else:
        estimates = {
            k: Estimate(point[k], np.full_like(point[k], np.nan), np.full_like(point[k], np.nan)) for k in point
        }
    per_class = {}
    for label in np.unique(labels):
        rows = labels == label
        mean_phi = phi_per_image[rows].mean(axis=0)
        per_class[int(label)] = {"n": int(rows.sum()), "phi": mean_phi, "sid": sid_from_phi(mean_phi)}
    return {**estimates, "phi_per_image": phi_per_image, "per_class": per_class}


NUMERICAL_FLOOR_NATS = 1e-4
"""|Σφ| below this (nats) is float32 rounding of log-probabilities, not information."""
FULL_RANGE_FRACTION = 0.9
"""A score interval covering this fraction of the attainable range says nothing about the score."""


def score_range(n_bands: int, beta: float = BETA) -> float:
    """The largest score any SID can have (all mass on band 0), the top of the score's range [0, ·]."""
    return float(score(np.eye(n_bands)[0], beta)) if n_bands >= 2 else float("nan")


def interpret(
    *,
    phi: np.ndarray,
    sid: np.ndarray,
    total: Estimate,
    score_estimate: Estimate,
    score_signed_estimate: Estimate,
    clean_accuracy: float | None,
    chance_accuracy: float | None,
    n_classes_seen: int,
    n_classes_model: int | None,
    beta: float = BETA,
) -> dict:
    """Whether a result carries anything to interpret, and the sentence that says what.

    phi, sid (M,); total: Σφ (nats) with its bootstrap interval; clean_accuracy and
    chance_accuracy (the rate of always answering the most frequent label) for given labels,
    None for predicted ones; n_classes_seen: distinct labels among the images.

    Returns {"informative": bool, "why": str, "sentence": str}. Not informative when M < 2, when
    the images or the model have fewer than two classes, when clean accuracy is at or below
    chance, when Σφ cannot be told from zero (its interval contains 0, it has no interval, or
    |Σφ| < ``NUMERICAL_FLOOR_NATS``), or when the score's interval spans at least
    ``FULL_RANGE_FRACTION`` of its attainable range.
    """
    m = len(phi)
    reasons = _why_not_informative(
        m, total, score_estimate, clean_accuracy, chance_accuracy, n_classes_seen, n_classes_model, beta
    )
    if reasons:
        why = "; ".join(reasons)
        return {
            "informative": False,
            "why": why,
            "sentence": f"Not informative: {why}. The SID and scores of this run say nothing about the model.",
        }
    t, lo, hi = float(total.value), float(total.low), float(total.high)
    return {
        "informative": True,
        "why": f"Σφ = {t:+.4f} nats [{lo:+.4f}, {hi:+.4f}] is away from 0"
        + (
            f" and clean accuracy {clean_accuracy:.3f} is above chance ({chance_accuracy:.3f})"
            if clean_accuracy is not None and chance_accuracy is not None
            else ""
        ),
        "sentence": _reading(sid, score_signed_estimate),
    }


def _why_not_informative(
    m: int,
    total: Estimate,
    score_estimate: Estimate,
    clean_accuracy: float | None,
    chance_accuracy: float | None,
    n_classes_seen: int,
    n_classes_model: int | None,
    beta: float,
) -> list[str]:
    """Each reason the run carries nothing to interpret (``interpret``'s rules), in order."""
    reasons = []
    if m < 2:
        reasons.append(f"there is only {m} band, so there is no distribution over bands to read")
    if n_classes_model is not None and n_classes_model < 2:
        reasons.append(f"the model has {n_classes_model} class, so log p(y | x) is 0 whatever the image")
    elif n_classes_seen < 2:
        reasons.append("all images carry one label, so the game cannot tell classes apart")
    if clean_accuracy is not None and chance_accuracy is not None and clean_accuracy <= chance_accuracy:
        reasons.append(
            f"clean top-1 accuracy {clean_accuracy:.3f} is at or below chance ({chance_accuracy:.3f}, "
            "always answering the most frequent label), so the model has no predictive information "
            "to share among bands"
        )
    t, lo, hi = float(total.value), float(total.low), float(total.high)
    if abs(t) < NUMERICAL_FLOOR_NATS:
        reasons.append(
            f"Σφ = {t:+.1e} nats is below the {NUMERICAL_FLOOR_NATS:.0e}-nat resolution of the "
            "log-probabilities: the bands change nothing the model outputs"
        )
    elif not (np.isfinite(lo) and np.isfinite(hi)):
        reasons.append(
            f"Σφ = {t:+.4f} nats has no bootstrap interval (one image or no resamples), so it cannot be told from zero"
        )
    elif lo <= 0.0 <= hi:
        reasons.append(
            f"Σφ = {t:+.4f} nats and its interval [{lo:+.4f}, {hi:+.4f}] contains 0: the bands "
            "carry no measurable information in total"
        )
    top = score_range(m, beta)
    s_lo, s_hi = float(score_estimate.low), float(score_estimate.high)
    if m >= 2 and np.isfinite(s_lo) and np.isfinite(s_hi) and s_hi - s_lo >= FULL_RANGE_FRACTION * top:
        reasons.append(
            f"the score's interval [{s_lo:.3f}, {s_hi:.3f}] spans {100 * (s_hi - s_lo) / top:.0f}% "
            f"of its range [0, {top:.3f}]"
        )
    return reasons


def _reading(sid: np.ndarray, score_signed_estimate: Estimate) -> str:
    """The sentence of an informative run: the low bands' share, the top band, the lean."""
    m = len(sid)
    n_low = max(1, m // 4)
    low = float(np.sum(sid[:n_low]))
    signed, signed_lo, signed_hi = (
        float(score_signed_estimate.value),
        float(score_signed_estimate.low),
        float(score_signed_estimate.high),
    )
    if signed_lo <= 0.0 <= signed_hi:
        lean = (
            f"but whether the model relies more on low or high frequencies is not settled by these images "
            f"(score_signed {signed:+.2f}, interval [{signed_lo:+.2f}, {signed_hi:+.2f}] contains 0)"
        )
    else:
        kind = "robust low-frequency" if signed_lo > 0 else "non-robust high-frequency"  # the interval's side
        lean = f"so the model leans on {kind} features (score_signed {signed:+.2f})"
    return (
        f"The lowest {n_low} of {m} bands carry {100 * low:.0f}% of the spectral importance "
        f"(uniform would be {100 * n_low / m:.0f}%); band {int(np.argmax(sid))} matters most, {lean}."
    )


def total_estimate(phi_per_image: np.ndarray, *, n_bootstrap: int, confidence: float, seed: int) -> Estimate:
    """Σφ (nats) with its bootstrap percentile interval over images, from (N, M) per-image φ.

    Draws the same resamples as ``summarize`` (same seed), so it is the Σ of the φ resamples.
    """
    totals = phi_per_image.sum(axis=1, keepdims=True)
    value = float(totals.mean())
    if n_bootstrap <= 0 or totals.shape[0] < 2:
        return Estimate(value, float("nan"), float("nan"))
    boot = bootstrap_means(totals, n_bootstrap, seed)[:, 0]
    alpha = (1.0 - confidence) / 2
    return Estimate(value, float(np.quantile(boot, alpha)), float(np.quantile(boot, 1 - alpha)))
