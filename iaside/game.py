"""Coalitions as bit masks and exact Shapley values (SPEC §5).

Coalition index s ∈ [0, 2**M): band i is in the coalition iff bit i of s is set, so s = 0 is
the empty coalition and s = 2**M − 1 the grand coalition.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from itertools import combinations
from math import comb, factorial

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


def _rng(seed: int | tuple[int, ...], tag: int) -> np.random.Generator:
    """The generator of one draw: ``seed`` is the run's seed, or (seed, image index) for per-image
    draws (with a trailing word of their own, so no run seed can reproduce an image's draw)."""
    entropy = [*seed, tag, 0x1D] if isinstance(seed, tuple) else [seed, tag]
    return np.random.default_rng(np.random.SeedSequence(entropy))


def antithetic_permutations(n_players: int, n_permutations: int, seed: int | tuple[int, ...] = 0) -> np.ndarray:
    """n_permutations/2 uniform permutations, then their reverses, (P, M) int64: pair k and
    k + P/2 are antithetic."""
    if n_permutations < 2 or n_permutations % 2:
        raise ValueError(f"n_permutations must be an even number >= 2, got {n_permutations}")
    rng = _rng(seed, 0x5A3B)
    half = np.stack([rng.permutation(n_players) for _ in range(n_permutations // 2)])
    return np.concatenate([half, half[:, ::-1]])


def permutation_plan(n_players: int, n_permutations: int, seed: int | tuple[int, ...] = 0) -> tuple[np.ndarray, np.ndarray]:
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


def permutation_walk(n_players: int, n_permutations: int, seed: int | tuple[int, ...] = 0) -> tuple[np.ndarray, np.ndarray]:
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
    per_pair = np.stack(
        [values @ permutation_matrix(masks, perms[[k, k + half]]) for k in range(half)]
    )  # (P/2, M)
    return per_pair.std(axis=0, ddof=1) / np.sqrt(half) if half > 1 else np.full(perms.shape[1], np.nan)



# -- paired KernelSHAP (large M) ---------------------------------------------------------------
@dataclass(frozen=True)
class KernelPlan:
    """Coalitions of a paired-KernelSHAP estimate.

    masks (K,) int64: every coalition evaluated, the empty one first and the grand one last;
    enumerated_below: sizes s < enumerated_below and s > M − enumerated_below are enumerated
    completely; draws (D,) int64: the coalitions drawn (with repeats) from the other sizes.
    """

    n_players: int
    masks: np.ndarray
    enumerated_below: int
    draws: np.ndarray


def _size_mass(n_players: int) -> np.ndarray:
    """The Shapley kernel's total weight on each coalition size, (M+1,): (M−1)/(s(M−s)), 0 at 0 and M."""
    s = np.arange(1, n_players, dtype=np.float64)
    return np.concatenate([[0.0], (n_players - 1) / (s * (n_players - s)), [0.0]])


@lru_cache(maxsize=8)
def _kernel_enumerated(n_players: int, n_coalitions: int) -> tuple[int, int, tuple[int, ...]]:
    """(first size not enumerated, budget left for draws, the enumerated coalitions' masks)."""
    full = 2**n_players - 1
    left, low = n_coalitions - 2, 1
    while low <= n_players - low:  # never touches all 2**M coalitions: M may be 32
        n_pair = comb(n_players, low) + (comb(n_players, n_players - low) if 2 * low != n_players else 0)
        if n_pair > left:
            break
        left, low = left - n_pair, low + 1
    chosen: set[int] = set()
    for size in range(1, low):
        for members in combinations(range(n_players), size):
            mask = sum(1 << i for i in members)
            chosen.update((mask, full ^ mask))
    return low, left, tuple(sorted(chosen))


def kernel_plan(n_players: int, n_coalitions: int, seed: int | tuple[int, ...] = 0) -> KernelPlan:
    """Coalitions for paired KernelSHAP with a budget of ``n_coalitions`` per image.

    Sizes are taken in pairs (1 and M−1, then 2 and M−2, ...) and enumerated completely while
    they fit in the budget: they carry most of the Shapley kernel's weight. The rest of the
    budget goes to complement pairs (S, N∖S) drawn from the remaining sizes in proportion to
    their kernel weight. With a budget of 2**M every coalition is enumerated (exact Shapley).
    """
    full = 2**n_players - 1
    n_coalitions = min(int(n_coalitions), 2**n_players)
    smallest = min(2 * n_players + 2, 2**n_players)
    if n_coalitions < smallest:
        raise ValueError(f"KernelSHAP with {n_players} bands needs at least {smallest} coalitions "
                         f"per image, got {n_coalitions}")
    low, left, enumerated = _kernel_enumerated(n_players, n_coalitions)
    chosen = set(enumerated)
    draws: list[int] = []
    if low <= n_players - low:
        rng = _rng(seed, 0x4B53)
        mass = _size_mass(n_players)
        mass[:low] = mass[n_players - low + 1 :] = 0.0
        picked: set[int] = set()
        while left - len(picked) >= 2:
            size = int(rng.choice(n_players + 1, p=mass / mass.sum()))
            s = int(np.sum(1 << rng.choice(n_players, size=size, replace=False)))
            draws += [s, full ^ s]
            picked.update((s, full ^ s))
        chosen |= picked
    inner = np.array(sorted(chosen), dtype=np.int64)
    return KernelPlan(n_players, np.concatenate([[0], inner, [full]]).astype(np.int64), low,
                      np.array(draws, dtype=np.int64))


def kernel_weights(plan: KernelPlan, draws: np.ndarray | None = None) -> np.ndarray:
    """Regression weight of each coalition of ``plan``, (K,) float64; 0 for the empty and grand
    ones (they enter through the efficiency constraint). ``draws`` replaces the plan's (bootstrap)."""
    m, low = plan.n_players, plan.enumerated_below
    draws = plan.draws if draws is None else draws
    sizes = masks_to_bits(plan.masks, m).sum(axis=1)
    mass = _size_mass(m)
    enumerated = (sizes < low) | (sizes > m - low)
    counts = np.array([comb(m, int(k)) for k in sizes], dtype=np.float64)
    weights = np.where(enumerated, mass[sizes] / counts, 0.0)
    if len(draws):
        column = {int(s): k for k, s in enumerate(plan.masks)}
        drawn = np.bincount([column[int(d)] for d in draws], minlength=len(plan.masks))
        weights = weights + mass[low : m - low + 1].sum() * drawn / len(draws)
    weights[[0, -1]] = 0.0
    return weights


def kernel_matrix(plan: KernelPlan, draws: np.ndarray | None = None) -> np.ndarray:
    """The linear map of the paired-KernelSHAP estimate, (K, M) float64: φ̂ = v @ W.

    φ̂ minimises Σ_S w(S)(v(S) − v(∅) − Σ_{i∈S} φ_i)² subject to Σ φ_i = v(N) − v(∅).
    A ratio of sample sums, so it is biased for a finite draw: averaging independent draws
    does not remove the bias (use permutation sampling for per-image draws).
    """
    m = plan.n_players
    weights = kernel_weights(plan, draws)
    z = masks_to_bits(plan.masks, m).astype(np.float64)  # (K, M)
    a_inv = np.linalg.inv(z.T @ (weights[:, None] * z))  # (M, M)
    b = a_inv @ (z * weights[:, None]).T  # (M, K): unconstrained solution for y = v − v(∅)
    u = a_inv.sum(axis=1) / a_inv.sum()  # (M,) direction that restores efficiency
    project = np.eye(m) - np.outer(u, np.ones(m))
    mat = project @ b  # acts on y, whose empty and grand entries carry weight 0
    mat[:, 0] -= mat.sum(axis=1)  # y = v − v(∅): every weighted column also subtracts v(∅)
    mat[:, 0] -= u  # Δ = v(N) − v(∅)
    mat[:, -1] += u
    return mat.T


def kernel_standard_error(values: np.ndarray, plan: KernelPlan, n_resamples: int = 200, seed: int = 0) -> np.ndarray:
    """Standard error of the KernelSHAP estimate of a game v over ``plan.masks``, (K,) -> (M,):
    the spread of the estimate over bootstrap resamples of the drawn pairs; 0 when every
    coalition is evaluated (exact), NaN when fewer than two pairs were drawn (unknown)."""
    if len(plan.masks) == 2**plan.n_players:
        return np.zeros(plan.n_players)  # every coalition evaluated: exact
    if len(plan.draws) < 4:  # fewer than two drawn pairs: no spread to measure
        return np.full(plan.n_players, np.nan)
    rng = np.random.default_rng(np.random.SeedSequence([seed, 0x5E]))
    pairs = plan.draws.reshape(-1, 2)
    estimates = [values @ kernel_matrix(plan, pairs[rng.integers(0, len(pairs), len(pairs))].ravel())
                 for _ in range(n_resamples)]
    return np.std(estimates, axis=0, ddof=1)
