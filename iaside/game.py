"""Coalitions as bit masks and exact Shapley values (docs/method.md §5).

Coalition index s ∈ [0, 2**M): band i is in the coalition iff bit i of s is set, so s = 0 is
the empty coalition and s = 2**M − 1 the grand coalition.
"""

from __future__ import annotations

from functools import lru_cache
from math import factorial

import numpy as np
import torch


def coalition_bits(n_players: int) -> np.ndarray:
    """Membership of every coalition, (2**M, M) bool: bits[s, i] = band i ∈ S."""
    s = np.arange(2**n_players, dtype=np.int64)[:, None]
    return ((s >> np.arange(n_players)) & 1).astype(bool)


def coalition_size(n_players: int) -> np.ndarray:
    """|S| of every coalition, (2**M,) int64."""
    return coalition_bits(n_players).sum(axis=1)


def shapley_weight(n_players: int, size: int) -> float:
    """|S|!(M−|S|−1)!/M!: the weight of the marginal contribution to a coalition of this size."""
    return factorial(size) * factorial(n_players - size - 1) / factorial(n_players)


@lru_cache(maxsize=32)
def _shapley_matrix(n_players: int) -> np.ndarray:
    bits = coalition_bits(n_players)
    size = bits.sum(axis=1)
    w = np.array([shapley_weight(n_players, k) for k in range(n_players)] + [0.0])
    # v(S) enters φ_i with +w(|S|−1) when i ∈ S (as S∪{i}) and −w(|S|) when i ∉ S (as S).
    mat = np.where(bits, w[np.maximum(size - 1, 0)][:, None], -w[size][:, None])
    mat.setflags(write=False)
    return mat


def shapley_matrix(n_players: int) -> np.ndarray:
    """The linear map from a game to its Shapley values, (2**M, M) float64: φ = v @ W."""
    return _shapley_matrix(n_players)


def exact_shapley(values: np.ndarray | torch.Tensor) -> np.ndarray:
    """Exact Shapley values of games, (..., 2**M) -> (..., M) float64.

    ``values[..., s]`` is v(S) for the coalition with bit mask s. Σ_i φ_i = v(N) − v(∅).
    """
    v = np.asarray(values.detach().cpu() if isinstance(values, torch.Tensor) else values, np.float64)
    n_players = int(round(np.log2(v.shape[-1])))
    if 2**n_players != v.shape[-1]:
        raise ValueError(f"last axis must have 2**M entries, got {v.shape[-1]}")
    return v @ shapley_matrix(n_players)


def full_coalition_masks(n_players: int) -> np.ndarray:
    """Bit masks of all coalitions in order, (2**M,) int64."""
    return np.arange(2**n_players, dtype=np.int64)


def masks_to_bits(masks: np.ndarray, n_players: int) -> np.ndarray:
    """Bit masks (K,) int64 -> membership (K, M) bool."""
    return ((np.asarray(masks, dtype=np.int64)[:, None] >> np.arange(n_players)) & 1).astype(bool)
