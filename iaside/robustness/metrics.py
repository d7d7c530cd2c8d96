"""Corruption error arithmetic (docs/method.md §8): E_{c,s}, CE_c, mCE and the unnormalised mean error."""

from __future__ import annotations

import numpy as np

from ..errors import IasideError


def top1_error(predictions: np.ndarray, labels: np.ndarray) -> float:
    """Fraction of wrong top-1 predictions, (N,) × (N,) int -> float in [0, 1]."""
    predictions, labels = np.asarray(predictions), np.asarray(labels)
    if predictions.shape != labels.shape or predictions.size == 0:
        raise IasideError(f"need equally many predictions and labels, got {predictions.shape} and {labels.shape}")
    return float(np.mean(predictions != labels))


def corruption_errors(errors: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """CE_c = Σ_s E_{c,s}(f) / Σ_s E_{c,s}(reference), (C, S) × (C, S) -> (C,).

    NaN for a corruption on which the reference makes no error at any severity (the ratio is
    undefined; small data sets and strong references produce it): ``mean_ce`` skips it.
    """
    errors, reference = np.asarray(errors, np.float64), np.asarray(reference, np.float64)
    if errors.shape != reference.shape or errors.ndim != 2:
        raise IasideError(
            f"the model's error table {errors.shape} and the reference's {reference.shape} must both be "
            "(corruptions, severities) of the same shape: evaluate both on the same corruptions and severities"
        )
    model_sum, reference_sum = errors.sum(axis=1), reference.sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(reference_sum > 0, model_sum / np.where(reference_sum > 0, reference_sum, 1.0), np.nan)


def mean_ce(ce: np.ndarray) -> float:
    """mCE = mean_c CE_c over the corruptions where CE is defined; NaN when none is."""
    ce = np.asarray(ce, np.float64)
    defined = np.isfinite(ce)
    return float(ce[defined].mean()) if defined.any() else float("nan")


def mean_corruption_error(errors: np.ndarray) -> float:
    """The unnormalised mean corruption error: mean over corruptions and severities of E_{c,s}."""
    errors = np.asarray(errors, np.float64)
    return float(errors.mean()) if errors.size else float("nan")
