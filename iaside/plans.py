"""Which coalitions each image is evaluated on, and the linear map that turns them into φ.

exact: all 2**M coalitions in bit-mask order. kernel (paired KernelSHAP) and permutation
(antithetic permutation sampling) evaluate K < 2**M coalitions per image, drawn either

- per image (``draws='per-image'``, the default for permutation): image n draws its
  permutations from (seed, n). The estimate is unbiased and its sampling error independent
  between images, so it averages out over the data set like the images' own spread, and the
  bootstrap over images covers both;
- once for the whole run (``draws='shared'``, always for kernel and exact): every image is
  evaluated on the same coalitions, so the data set's mean game is known on them; the
  sampling error does not shrink with N and is reported separately (``estimator.phi_se``).
  KernelSHAP is a regression, biased for a finite draw, so averaging per-image draws would
  not converge to the Shapley values; it is shared only.

Every plan has the same K for every image, the empty coalition first and the grand one last.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np

from .config import ExplainConfig
from .errors import IasideError
from .game import (
    KernelPlan, full_coalition_masks, kernel_matrix, kernel_plan, kernel_standard_error, masks_to_bits,
    antithetic_permutations, permutation_matrix, permutation_plan, permutation_standard_error, permutation_walk,
    shapley_matrix, walk_masks,
)

ESTIMATORS = ("exact", "kernel", "permutation")
DRAWS = ("per-image", "shared")
MAX_EXACT_BANDS = 16


def default_kernel_coalitions(n_bands: int) -> int:
    """Coalitions per image for --estimator kernel when not given: 10 % of 2**M, at most 1024."""
    return max(2 * n_bands + 2, min(2**n_bands // 10, 1024))


def default_permutations(n_bands: int) -> int:
    """Permutations per image for --estimator permutation when not given: the largest even P
    whose 2 + P(M−1) coalitions fit in the kernel default (at least one antithetic pair)."""
    return max(2, 2 * ((default_kernel_coalitions(n_bands) - 2) // (2 * max(n_bands - 1, 1))))


def resolve_budget(config: ExplainConfig) -> ExplainConfig:
    """The config with the sampling budget written out (permutations or coalitions per image),
    so a saved run names its plan even if the defaults change."""
    if config.estimator == "permutation" and config.permutations is None:
        return ExplainConfig.from_dict({**config.to_dict(), "permutations": default_permutations(config.bands)})
    if config.estimator == "kernel" and config.coalitions is None:
        return ExplainConfig.from_dict({**config.to_dict(), "coalitions": default_kernel_coalitions(config.bands)})
    return config


@dataclass(frozen=True)
class CoalitionPlan:
    """The coalitions of a run: ``masks(index)`` (K,) int64 and ``shapley_map(index)`` (K, M)
    for the image with data-set index ``index`` (the same for every image unless per-image)."""

    n_bands: int
    estimator: str
    draws: str
    setting: int  # coalitions (kernel), permutations (permutation), 2**M (exact)
    seed: int

    @classmethod
    def from_config(cls, config: ExplainConfig) -> "CoalitionPlan":
        m = config.bands
        if config.estimator not in ESTIMATORS:
            raise IasideError(f"--estimator {config.estimator!r} is not one of {', '.join(ESTIMATORS)}")
        if config.draws not in DRAWS:
            raise IasideError(f"--draws {config.draws!r} is not one of {', '.join(DRAWS)}")
        if config.draws == "per-image" and config.estimator != "permutation":
            raise IasideError(f"--draws per-image needs --estimator permutation ({config.estimator} shares its "
                              "coalitions between images); use --draws shared")
        if config.estimator == "exact":
            if m > MAX_EXACT_BANDS:
                raise IasideError(f"exact I-ASIDE with {m} bands needs 2**{m} passes per image; "
                                  "use --estimator kernel (or permutation)")
            return cls(m, "exact", "shared", 2**m, config.seed)
        if config.estimator == "kernel":
            setting = config.coalitions or default_kernel_coalitions(m)
        else:
            setting = config.permutations or default_permutations(m)
            if setting < 2 or setting % 2:
                raise IasideError(f"--permutations must be an even number >= 2, got {setting}")
        plan = cls(m, config.estimator, config.draws, int(setting), config.seed)
        plan.masks(0)  # a budget too small for the estimator fails here, before any work
        return plan

    @property
    def per_image(self) -> bool:
        return self.draws == "per-image" and self.estimator == "permutation"

    @property
    def n_coalitions(self) -> int:
        """K, the coalitions evaluated per image."""
        return len(self.masks(0))

    def _seed(self, index: int) -> int | tuple[int, int]:
        return (self.seed, int(index)) if self.per_image else self.seed

    def kernel(self, index: int = 0) -> KernelPlan:
        try:
            return kernel_plan(self.n_bands, self.setting, self._seed(index))
        except ValueError as err:
            raise IasideError(f"--coalitions: {err}") from err

    @cached_property
    def _shared(self) -> tuple[np.ndarray, np.ndarray]:
        return self._draw(0)

    def _draw(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        if self.estimator == "exact":
            return full_coalition_masks(self.n_bands), shapley_matrix(self.n_bands)
        if self.estimator == "kernel":
            plan = self.kernel(index)
            return plan.masks, kernel_matrix(plan)
        if self.per_image:
            return permutation_walk(self.n_bands, self.setting, self._seed(index))
        masks, perms = permutation_plan(self.n_bands, self.setting, self.seed)
        return masks, permutation_matrix(masks, perms)

    def masks(self, index: int = 0) -> np.ndarray:
        """Bit masks of the coalitions image ``index`` is evaluated on, (K,) int64."""
        if self.per_image:  # the masks alone: the engine needs no Shapley map
            return walk_masks(antithetic_permutations(self.n_bands, self.setting, self._seed(index)))
        return self._shared[0]

    def bits(self, index: int = 0) -> np.ndarray:
        """Membership of those coalitions, (K, M) bool."""
        return masks_to_bits(self.masks(index), self.n_bands)

    def shapley_map(self, index: int = 0) -> np.ndarray:
        """The linear map from image ``index``'s K values to its φ, (K, M) float64."""
        return self._draw(index)[1] if self.per_image else self._shared[1]

    def phi(self, logp_nats: np.ndarray, indices: np.ndarray) -> np.ndarray:
        """Per-image φ (N, M) float64 from the per-image values (N, K) of images ``indices`` (N,)."""
        if not self.per_image:
            return logp_nats @ self.shapley_map()
        return np.stack([row @ self.shapley_map(int(i)) for row, i in zip(logp_nats, indices)]) \
            if len(indices) else np.zeros((0, self.n_bands))

    def common_values(self, logp_nats: np.ndarray, indices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The coalitions every image is evaluated on (K_c,) int64 and their mean values (K_c,)
        nats: all of them for shared plans; the empty and grand ones (first and last) for per-image plans."""
        if not self.per_image:
            return self.masks(), logp_nats.mean(axis=0)
        return np.array([0, 2**self.n_bands - 1], np.int64), logp_nats[:, [0, -1]].mean(axis=0)

    def info(self, logp_nats: np.ndarray, phi_per_image: np.ndarray) -> dict[str, Any]:
        """The estimator's name, its cost and the standard error of the data set's φ that the
        coalition draws leave: over the draws (shared) or over images and draws (per-image)."""
        info: dict[str, Any] = {"name": self.estimator}
        if self.estimator == "exact":
            return info
        info.update(draws=self.draws, passes_per_image=self.n_coalitions)
        if self.estimator == "kernel":
            k0 = self.kernel(0)
            info.update(coalitions=len(k0.masks),
                        enumerated_sizes=[s for s in range(1, self.n_bands)
                                          if s < k0.enumerated_below or s > self.n_bands - k0.enumerated_below])
        else:
            info.update(permutations=self.setting)
        if self.per_image:  # over images and draws: the same error the bootstrap intervals carry
            n = phi_per_image.shape[0]
            se = phi_per_image.std(axis=0, ddof=1) / np.sqrt(n) if n > 1 else np.full(self.n_bands, np.nan)
        elif self.estimator == "kernel":
            se = kernel_standard_error(logp_nats.mean(axis=0), self.kernel(0), seed=self.seed)
        else:
            masks, perms = permutation_plan(self.n_bands, self.setting, self.seed)
            se = permutation_standard_error(logp_nats.mean(axis=0), masks, perms)
        info["phi_se"] = [None if np.isnan(x) else float(x) for x in se]  # None: nothing to estimate it from
        return info
