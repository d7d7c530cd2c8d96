"""From per-image Shapley values to the answers: φ, SID, shares, scores and their intervals (SPEC §6)."""
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
    with np.errstate(invalid="ignore", divide="ignore"):
        return phi / total


def _score_terms(n_bands: int, beta: float) -> tuple[np.ndarray, float]:
    b = robustness_weights(n_bands, beta)
    l2 = np.linalg.norm(b)
    return b / l2, float(b.sum() / (n_bands * l2))


def score(sid: np.ndarray, beta: float = BETA) -> np.ndarray:
    """Paper robustness score |b̂·SID − η| / |1 − η|, (..., M) -> (...)."""
    b_hat, eta = _score_terms(sid.shape[-1], beta)
    return np.abs(sid @ b_hat - eta) / abs(1.0 - eta)


def score_signed(sid: np.ndarray, beta: float = BETA) -> np.ndarray:
    """(b̂·SID − η)/(b̂₀ − η), (..., M) -> (...): 1 all mass on band 0, 0 uniform, < 0 high-dominated."""
    b_hat, eta = _score_terms(sid.shape[-1], beta)
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
    def from_dict(cls, d: dict) -> "Estimate":
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


def bootstrap_means(per_image: np.ndarray, n_resamples: int, seed: int, chunk: int = 64) -> np.ndarray:
    """Means of ``n_resamples`` bootstrap resamples of the rows, (N, M) -> (R, M) float64."""
    n = per_image.shape[0]
    rng = np.random.default_rng(np.random.SeedSequence([seed, 0xB007]))
    out = np.empty((n_resamples, per_image.shape[1]))
    for start in range(0, n_resamples, chunk):
        stop = min(start + chunk, n_resamples)
        rows = rng.integers(0, n, size=(stop - start, n))
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
    """Everything SPEC §6 reports from the per-image Shapley values (N, M) float64 nats
    (``Estimator.phi``; ``exact_shapley`` of the (N, 2**M) values for exact runs).

    Returns plain arrays and ``Estimate``s: phi/sid/shares (M,), score, score_signed (bootstrap
    over images), per-image phi (N, M), per-class {label: {n, phi, sid}}.
    """
    point = _statistics(phi_per_image.mean(axis=0), beta)
    alpha = (1.0 - confidence) / 2
    if n_bootstrap > 0 and phi_per_image.shape[0] > 1:
        boot = _statistics(bootstrap_means(phi_per_image, n_bootstrap, seed), beta)
        q = lambda a: (np.nanquantile(a, alpha, axis=0), np.nanquantile(a, 1 - alpha, axis=0))  # noqa: E731
        estimates = {k: Estimate(point[k], *q(boot[k])) for k in point}
    else:
        estimates = {k: Estimate(point[k], np.full_like(point[k], np.nan), np.full_like(point[k], np.nan)) for k in point}
    per_class = {}
    for label in np.unique(labels):
        rows = labels == label
        mean_phi = phi_per_image[rows].mean(axis=0)
        per_class[int(label)] = {"n": int(rows.sum()), "phi": mean_phi, "sid": sid_from_phi(mean_phi)}
    return {**estimates, "phi_per_image": phi_per_image, "per_class": per_class}
