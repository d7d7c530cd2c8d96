"""Paired KernelSHAP (docs/method.md §5): a weighted regression on K coalitions shared by every
image, with the smallest and largest coalition sizes enumerated and complement pairs drawn from
the rest. Biased for a finite draw, so it is offered with shared draws only."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from itertools import combinations
from math import comb
from typing import Any

import numpy as np

from ..errors import IasideError
from ..game import masks_to_bits
from .base import Estimator, draw_rng


def default_kernel_coalitions(n_bands: int) -> int:
    """Coalitions per image when not given: 10 % of 2**M, at most 1024."""
    return max(2 * n_bands + 2, min(2**n_bands // 10, 1024))


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
    if n_players < 2:  # sizes 0 and M only: every kernel weight is 0 and the system is singular
        raise ValueError(f"KernelSHAP needs at least 2 bands, got {n_players}; use --estimator exact")
    full = 2**n_players - 1
    n_coalitions = min(int(n_coalitions), 2**n_players)
    smallest = min(2 * n_players + 2, 2**n_players)
    if n_coalitions < smallest:
        raise ValueError(
            f"KernelSHAP with {n_players} bands needs at least {smallest} coalitions per image, got {n_coalitions}"
        )
    low, left, enumerated = _kernel_enumerated(n_players, n_coalitions)
    chosen = set(enumerated)
    draws: list[int] = []
    if low <= n_players - low:
        rng = draw_rng(seed, 0x4B53)
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
    return KernelPlan(
        n_players, np.concatenate([[0], inner, [full]]).astype(np.int64), low, np.array(draws, dtype=np.int64)
    )


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
    estimates = [
        values @ kernel_matrix(plan, pairs[rng.integers(0, len(pairs), len(pairs))].ravel()) for _ in range(n_resamples)
    ]
    return np.std(estimates, axis=0, ddof=1)


class KernelEstimator(Estimator):
    """Paired KernelSHAP on ``setting`` coalitions shared by every image."""

    name = "kernel"
    budget_field = "coalitions"

    @classmethod
    def default_budget(cls, n_bands: int) -> int:
        return default_kernel_coalitions(n_bands)

    def plan(self, index: int = 0) -> KernelPlan:
        try:
            return kernel_plan(self.n_bands, self.setting, self._seed(index))
        except ValueError as err:  # too few bands, or a budget below the paired minimum
            raise IasideError(f"{'--coalitions' if self.n_bands >= 2 else '--estimator kernel'}: {err}") from err

    def _draw(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        plan = self.plan(index)
        return plan.masks, kernel_matrix(plan)

    def _describe(self) -> dict[str, Any]:
        k0 = self.plan(0)
        low = k0.enumerated_below
        return {
            "coalitions": len(k0.masks),
            "enumerated_sizes": [s for s in range(1, self.n_bands) if s < low or s > self.n_bands - low],
        }

    def _shared_standard_error(self, mean_values: np.ndarray) -> np.ndarray:
        return kernel_standard_error(mean_values, self.plan(0), seed=self.seed)
