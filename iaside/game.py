"""Coalitions as bit masks and exact Shapley values (SPEC §5).

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


def permutation_plan(n_players: int, n_permutations: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Coalitions needed by antithetic permutation sampling, and the permutations.

    Draws n_permutations/2 uniform permutations and pairs each with its reverse (antithetic).
    Returns (masks (K,) int64: every prefix coalition once, the empty one first and the grand
    one last; perms (P, M) int64).
    """
    if n_permutations < 2 or n_permutations % 2:
        raise ValueError(f"n_permutations must be an even number >= 2, got {n_permutations}")
    rng = np.random.default_rng(np.random.SeedSequence([seed, 0x5A3B]))
    half = np.stack([rng.permutation(n_players) for _ in range(n_permutations // 2)])
    perms = np.concatenate([half, half[:, ::-1]])  # pair k and k + P/2 are antithetic
    prefixes = np.concatenate([np.zeros((len(perms), 1), np.int64), np.cumsum(1 << perms, axis=1)], axis=1)
    full = 2**n_players - 1
    inner = np.setdiff1d(np.unique(prefixes), [0, full])
    return np.concatenate([[0], inner, [full]]).astype(np.int64), perms


def permutation_matrix(masks: np.ndarray, perms: np.ndarray) -> np.ndarray:
    """The linear map of the permutation estimator, (K, M) float64: φ̂ = v @ W for v over ``masks``.

    φ̂_i = mean over permutations π of v(pre_π(i) ∪ {i}) − v(pre_π(i)): unbiased for φ_i.
    """
    n_perm, n_players = perms.shape
    column = {int(m): k for k, m in enumerate(masks)}
    mat = np.zeros((len(masks), n_players))
    for perm in perms:
        before = 0
        for player in perm:
            after = before | (1 << int(player))
            mat[column[after], player] += 1.0
            mat[column[before], player] -= 1.0
            before = after
    return mat / n_perm


def permutation_standard_error(values: np.ndarray, masks: np.ndarray, perms: np.ndarray) -> np.ndarray:
    """Standard error of the permutation estimate of a game v over ``masks``, (K,) -> (M,).

    Each antithetic pair (π, reversed π) is one sample; SE = std over pairs / sqrt(pairs).
    """
    half = len(perms) // 2
    per_pair = np.stack(
        [values @ permutation_matrix(masks, perms[[k, k + half]]) for k in range(half)]
    )  # (P/2, M)
    return per_pair.std(axis=0, ddof=1) / np.sqrt(half) if half > 1 else np.full(perms.shape[1], np.nan)
