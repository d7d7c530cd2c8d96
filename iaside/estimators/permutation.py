"""Antithetic permutation sampling (docs/method.md §5): unbiased for φ, with per-image or
shared draws. P permutations are P/2 uniform ones and their reverses; each permutation walks
from the empty to the grand coalition and credits each band with its marginal contribution."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import IasideError
from .base import Estimator, draw_rng
from .kernel import default_kernel_coalitions


def default_permutations(n_bands: int) -> int:
    """Permutations per image when not given: the largest even P whose 2 + P(M−1) coalitions
    fit in the kernel default (at least one antithetic pair)."""
    return max(2, 2 * ((default_kernel_coalitions(n_bands) - 2) // (2 * max(n_bands - 1, 1))))


def antithetic_permutations(n_players: int, n_permutations: int, seed: int | tuple[int, ...] = 0) -> np.ndarray:
    """n_permutations/2 uniform permutations, then their reverses, (P, M) int64: pair k and
    k + P/2 are antithetic."""
    if n_permutations < 2 or n_permutations % 2:
        raise ValueError(f"n_permutations must be an even number >= 2, got {n_permutations}")
    rng = draw_rng(seed, 0x5A3B)
    half = np.stack([rng.permutation(n_players) for _ in range(n_permutations // 2)])
    return np.concatenate([half, half[:, ::-1]])


def permutation_plan(
    n_players: int, n_permutations: int, seed: int | tuple[int, ...] = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Coalitions needed by antithetic permutation sampling, and the permutations.

    Returns (masks (K,) int64: every prefix coalition once, the empty one first and the grand
    one last; perms (P, M) int64 from ``antithetic_permutations``).
    """
    perms = antithetic_permutations(n_players, n_permutations, seed)
    prefixes = np.concatenate([np.zeros((len(perms), 1), np.int64), np.cumsum(1 << perms, axis=1)], axis=1)
    full = 2**n_players - 1
    inner = np.setdiff1d(np.unique(prefixes), [0, full])
    return np.concatenate([[0], inner, [full]]).astype(np.int64), perms


def walk_masks(perms: np.ndarray) -> np.ndarray:
    """The coalitions of ``permutation_walk`` for permutations (P, M): (K,) int64, K = 2 + P(M−1)."""
    m = perms.shape[1]
    prefixes = np.cumsum(np.int64(1) << perms, axis=1)[:, :-1]  # (P, M−1)
    return np.concatenate([[0], prefixes.ravel(), [2**m - 1]]).astype(np.int64)


def permutation_walk(
    n_players: int, n_permutations: int, seed: int | tuple[int, ...] = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Antithetic permutation sampling with a fixed number of coalitions: (masks (K,) int64,
    map (K, M) float64) with K = 2 + P(M−1): the empty coalition, each permutation's M−1
    proper prefixes in turn (repeats are kept), the grand coalition. φ̂ = v @ map is the
    estimate of ``permutation_matrix`` for the same permutations; every image of a per-image
    run then has the same K."""
    perms = antithetic_permutations(n_players, n_permutations, seed)
    n_perm, m = perms.shape
    n_cols = 2 + n_perm * (m - 1)
    cols = np.empty((n_perm, m + 1), np.int64)  # column of the prefix of length j of permutation p
    cols[:, 0], cols[:, m] = 0, n_cols - 1
    cols[:, 1:m] = 1 + np.arange(n_perm)[:, None] * (m - 1) + np.arange(m - 1)
    mat = np.zeros((n_cols, m))
    np.add.at(mat, (cols[:, 1:].ravel(), perms.ravel()), 1.0)
    np.add.at(mat, (cols[:, :-1].ravel(), perms.ravel()), -1.0)
    return walk_masks(perms), mat / n_perm


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
    per_pair = np.stack([values @ permutation_matrix(masks, perms[[k, k + half]]) for k in range(half)])  # (P/2, M)
    return per_pair.std(axis=0, ddof=1) / np.sqrt(half) if half > 1 else np.full(perms.shape[1], np.nan)


class PermutationEstimator(Estimator):
    """Antithetic permutation sampling: K = 2 + P(M−1) coalitions per image (per-image draws,
    repeats kept) or the distinct prefixes of P shared permutations."""

    name = "permutation"
    budget_field = "permutations"
    per_image_draws = True

    @classmethod
    def default_budget(cls, n_bands: int) -> int:
        return default_permutations(n_bands)

    @classmethod
    def _build(cls, n_bands: int, draws: str, budget: int | None, seed: int) -> Estimator:
        setting = int(budget or default_permutations(n_bands))
        if setting < 2 or setting % 2:
            raise IasideError(f"--permutations must be an even number >= 2, got {setting}")
        return cls(n_bands, draws, setting, seed)

    def _draw(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        if self.per_image:
            return permutation_walk(self.n_bands, self.setting, self._seed(index))
        masks, perms = permutation_plan(self.n_bands, self.setting, self.seed)
        return masks, permutation_matrix(masks, perms)

    def _masks_only(self, index: int) -> np.ndarray:
        return walk_masks(antithetic_permutations(self.n_bands, self.setting, self._seed(index)))

    def _describe(self) -> dict[str, Any]:
        return {"permutations": self.setting}

    def _shared_standard_error(self, mean_values: np.ndarray) -> np.ndarray:
        masks, perms = permutation_plan(self.n_bands, self.setting, self.seed)
        return permutation_standard_error(mean_values, masks, perms)
