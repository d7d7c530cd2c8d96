"""Alternative robustness predictors beside score / score_signed: summaries of the band
interactions, the band-limited curves (both from the exact run's 2**M table, no extra pass) and
the Fourier heat map (its own passes). Used by studies/zoo.py to re-test, on the same models,
whether any of them ranks models by mCE or PGD accuracy better than the score does
(docs/robustness.md §3, "The claim, re-tested"). Defined before the study's results were seen.

Bands are split into a low half {0…M/2−1} and a high half {M/2…M−1} (M even; for odd M the
middle band goes to the high half).

- ``interaction_low_high``: the mean pairwise Shapley interaction index I_ij (nats) over the
  low-half × high-half pairs: > 0, low and high bands work together (synergy); < 0, they carry
  the same information (redundancy).
- ``interaction_low_share``: the share of the interaction mass Σ_{i<j}|I_ij| on pairs with both
  bands in the low half.
- ``nonadditive_share``: the share of the Möbius (Harsanyi) mass Σ_{|T|≥1}|m(T)| on coalitions
  of two or more bands: 0 for a model whose bands add up (v(S) = v(∅) + Σ_{i∈S} m({i})).
- ``lowpass_auc`` / ``highpass_auc``: the mean over the M cut-offs of low-pass {0…k} /
  high-pass {k…M−1} top-1 accuracy, relative to the all-bands accuracy (1: nothing lost).
- ``half_cutoff``: the low-pass cut-off k (linearly interpolated between cut-offs) where the
  accuracy first reaches half the all-bands accuracy; small = the low bands alone suffice.
- ``heatmap_error_mean``: the Fourier heat map's error rate averaged over the measured cells.
- ``heatmap_error_high``: the same over the high-frequency cells, max(|u|/H, |v|/W) ≥ 1/4 (the
  outer half of the ℓ∞ radius, where the high bands of the ℓ∞ partition lie).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from ..errors import IasideError
from ..game import coalition_bits
from ..interactions import _n_players

PREDICTORS = (
    "interaction_low_high",
    "interaction_low_share",
    "nonadditive_share",
    "lowpass_auc",
    "highpass_auc",
    "half_cutoff",
    "heatmap_error_mean",
    "heatmap_error_high",
)
"""The alternative predictors, in the order the study reports them."""


def _low_half(n_bands: int) -> int:
    return n_bands // 2


def interaction_low_high(index) -> float:
    """Mean I_ij over i in the low half and j in the high half, (M, M) -> float (nats)."""
    index = np.asarray(index, np.float64)
    h = _low_half(index.shape[0])
    if h == 0:
        raise IasideError("interaction_low_high needs at least 2 bands")
    return float(index[:h, h:].mean())


def interaction_low_share(index) -> float:
    """Σ_{i<j<M/2}|I_ij| / Σ_{i<j}|I_ij| (NaN when every interaction is 0), (M, M) -> float."""
    index = np.abs(np.asarray(index, np.float64))
    h = _low_half(index.shape[0])
    i, j = np.triu_indices(index.shape[0], k=1)
    total = index[i, j].sum()
    if total == 0:
        return float("nan")
    low = (i < h) & (j < h)
    return float(index[i[low], j[low]].sum() / total)


def nonadditive_share(dividends) -> float:
    """Σ_{|T|≥2}|m(T)| / Σ_{|T|≥1}|m(T)| of Möbius dividends indexed by bit mask, (2**M,) -> float
    (NaN when every dividend but m(∅) is 0)."""
    d = np.abs(np.asarray(dividends, np.float64))
    try:
        n_bands = _n_players(d.size)  # the one check that a table has 2**M entries
    except ValueError as err:
        raise IasideError(f"dividends: {err}") from err
    size = coalition_bits(n_bands).sum(axis=1)
    total = d[size >= 1].sum()
    return float(d[size >= 2].sum() / total) if total > 0 else float("nan")


def _relative(curve, full: float) -> np.ndarray:
    curve = np.asarray(curve, np.float64)
    if not full > 0:
        return np.full_like(curve, np.nan)
    return curve / full


def lowpass_auc(lowpass_accuracy) -> float:
    """Mean low-pass accuracy over cut-offs k = 0…M−1 relative to the last (all bands)."""
    acc = np.asarray(lowpass_accuracy, np.float64)
    return float(_relative(acc, acc[-1]).mean())


def highpass_auc(highpass_accuracy) -> float:
    """Mean high-pass accuracy over cut-offs k = 0…M−1 relative to the first (all bands)."""
    acc = np.asarray(highpass_accuracy, np.float64)
    return float(_relative(acc, acc[0]).mean())


def half_cutoff(lowpass_accuracy) -> float:
    """The first cut-off where low-pass accuracy reaches half the all-bands accuracy, linearly
    interpolated from the cut-off before (0 when band 0 alone reaches it; NaN when the
    all-bands accuracy is 0)."""
    acc = np.asarray(lowpass_accuracy, np.float64)
    half = acc[-1] / 2
    if not half > 0:
        return float("nan")
    k = int(np.argmax(acc >= half))  # exists: the last cut-off reaches it
    if k == 0:
        return 0.0
    below, above = acc[k - 1], acc[k]
    return float(k - 1 + (half - below) / (above - below))


def high_frequency_cells(cells, height: int, width: int) -> np.ndarray:
    """(K,) bool: cells (K, 2) rows (u, v) with max(|u|/H, |v|/W) ≥ 1/4 (u, v centred)."""
    cells = np.asarray(cells, np.int64).reshape(-1, 2)
    u = np.abs((cells[:, 0] + height // 2) % height - height // 2) / height
    v = np.abs((cells[:, 1] + width // 2) % width - width // 2) / width
    return np.maximum(u, v) >= 0.25


def heatmap_error_mean(error_rate) -> float:
    """The heat map's error rate averaged over its measured cells, (K,) -> float."""
    return float(np.mean(np.asarray(error_rate, np.float64)))


def heatmap_error_high(cells, error_rate, height: int, width: int) -> float:
    """The heat map's error rate averaged over the high-frequency cells (``high_frequency_cells``)."""
    high = high_frequency_cells(cells, height, width)
    if not high.any():
        raise IasideError("the heat map has no cell in the high-frequency half; use a smaller stride")
    return float(np.asarray(error_rate, np.float64)[high].mean())


def result_predictors(result) -> dict[str, float]:
    """The interaction and band-limited predictors of an exact run's ``Result`` (NaN for any
    view the run does not hold: a sampled estimator, or a run without top-1 records)."""
    nan = float("nan")
    out = dict.fromkeys(PREDICTORS[:6], nan)
    inter = getattr(result, "interactions", None)
    if inter is not None:
        index = np.asarray(inter["index"].value)
        out["interaction_low_high"] = interaction_low_high(index)
        out["interaction_low_share"] = interaction_low_share(index)
        out["nonadditive_share"] = nonadditive_share(np.asarray(inter["mobius"].value))
    curves = getattr(result, "band_limited", None)
    if curves is not None and curves["lowpass"]["accuracy"] is not None:
        low = np.asarray(curves["lowpass"]["accuracy"].value)
        out["lowpass_auc"] = lowpass_auc(low)
        out["highpass_auc"] = highpass_auc(np.asarray(curves["highpass"]["accuracy"].value))
        out["half_cutoff"] = half_cutoff(low)
    return out


def heatmap_predictors(summary: Mapping[str, Any], height: int, width: int) -> dict[str, float]:
    """The heat-map predictors from ``iaside.heatmap`` 's summary (its "cells" and "error_rate")."""
    return {
        "heatmap_error_mean": heatmap_error_mean(summary["error_rate"]),
        "heatmap_error_high": heatmap_error_high(summary["cells"], summary["error_rate"], height, width),
    }
