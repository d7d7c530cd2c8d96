"""The estimator interface: which coalitions each image is evaluated on, and the linear map
from their values to φ (docs/method.md §5).

Every estimator evaluates the same number K of coalitions on every image, the empty one first
and the grand one last. Coalitions are drawn either once for the whole run (``draws='shared'``:
every image sees the same coalitions, so the sampling error does not shrink with N and is
reported separately) or per image (``draws='per-image'``: image n draws from (seed, n), so the
sampling error averages out over images and the bootstrap over images covers it).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Any, ClassVar

import numpy as np

from ..config import MAX_BANDS
from ..errors import IasideError
from ..game import masks_to_bits

DRAWS = ("per-image", "shared")


def draw_rng(seed: int | tuple[int, ...], tag: int) -> np.random.Generator:
    """The generator of one draw: ``seed`` is the run's seed, or (seed, image index) for per-image
    draws (with a trailing word of their own, so no run seed can reproduce an image's draw)."""
    entropy = [*seed, tag, 0x1D] if isinstance(seed, tuple) else [seed, tag]
    return np.random.default_rng(np.random.SeedSequence(entropy))


@dataclass(frozen=True)
class Estimator:
    """One estimator of a run: ``masks(index)`` (K,) int64 and ``shapley_map(index)`` (K, M)
    float64 for the image with data-set index ``index`` (the same for every image unless the
    draws are per image). Subclasses set ``name`` and implement ``_draw``; those that sample
    also set ``budget_field`` (the config field holding their budget) and ``default_budget``.

    n_bands: M; draws: 'shared' or 'per-image'; setting: the budget (coalitions, permutations,
    or 2**M for exact); seed: the run's seed.
    """

    n_bands: int
    draws: str
    setting: int
    seed: int

    name: ClassVar[str] = ""
    budget_field: ClassVar[str | None] = None
    per_image_draws: ClassVar[bool] = False  # whether draws='per-image' is meaningful

    @classmethod
    def default_budget(cls, n_bands: int) -> int:
        """The budget used when the user gives none."""
        raise NotImplementedError

    @classmethod
    def from_config(cls, config: Any) -> Estimator:
        """The estimator of an ``ExplainConfig`` (validated: a bad budget fails before any work)."""
        if config.draws not in DRAWS:
            raise IasideError(f"--draws {config.draws!r} is not one of {', '.join(DRAWS)}")
        if config.draws == "per-image" and not cls.per_image_draws:
            raise IasideError(
                f"--draws per-image needs --estimator permutation ({cls.name} shares its "
                "coalitions between images); use --draws shared"
            )
        budget = getattr(config, cls.budget_field) if cls.budget_field else None
        estimator = cls._build(config.bands, config.draws, budget, config.seed)
        if config.bands > MAX_BANDS:
            raise IasideError(
                f"--bands {config.bands}: coalitions are stored as 64-bit signed bit masks, so at most {MAX_BANDS} bands"
            )
        estimator.masks(0)
        return estimator

    @classmethod
    def _build(cls, n_bands: int, draws: str, budget: int | None, seed: int) -> Estimator:
        return cls(n_bands, draws, int(budget or cls.default_budget(n_bands)), seed)

    @property
    def per_image(self) -> bool:
        return self.draws == "per-image" and self.per_image_draws

    @property
    def n_coalitions(self) -> int:
        """K, the coalitions evaluated per image."""
        return len(self.masks(0))

    def _seed(self, index: int) -> int | tuple[int, int]:
        return (self.seed, int(index)) if self.per_image else self.seed

    def _draw(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """(masks (K,) int64, map (K, M) float64) of image ``index``."""
        raise NotImplementedError

    def _masks_only(self, index: int) -> np.ndarray:
        """The masks of a per-image draw without its map (the engine needs no map)."""
        return self._draw(index)[0]

    @cached_property
    def _shared(self) -> tuple[np.ndarray, np.ndarray]:
        return self._draw(0)

    def masks(self, index: int = 0) -> np.ndarray:
        """Bit masks of the coalitions image ``index`` is evaluated on, (K,) int64."""
        return self._masks_only(index) if self.per_image else self._shared[0]

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
        if not len(indices):
            return np.zeros((0, self.n_bands))
        return np.stack([row @ self.shapley_map(int(i)) for row, i in zip(logp_nats, indices)])

    def common_values(self, logp_nats: np.ndarray, indices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The coalitions every image is evaluated on (K_c,) int64 and their mean values (K_c,)
        nats: all of them for shared draws; the empty and grand ones (first and last) per image."""
        if not self.per_image:
            return self.masks(), logp_nats.mean(axis=0)
        return np.array([0, 2**self.n_bands - 1], np.int64), logp_nats[:, [0, -1]].mean(axis=0)

    def info(self, logp_nats: np.ndarray, phi_per_image: np.ndarray) -> dict[str, Any]:
        """The estimator's name, its cost and the standard error of the data set's φ that the
        coalition draws leave: over the draws (shared) or over images and draws (per-image)."""
        info: dict[str, Any] = {"name": self.name, "draws": self.draws, "passes_per_image": self.n_coalitions}
        info.update(self._describe())
        if self.per_image:  # over images and draws: the same error the bootstrap intervals carry
            n = phi_per_image.shape[0]
            se = phi_per_image.std(axis=0, ddof=1) / np.sqrt(n) if n > 1 else np.full(self.n_bands, np.nan)
        else:
            se = self._shared_standard_error(logp_nats.mean(axis=0))
        info["phi_se"] = [None if np.isnan(x) else float(x) for x in se]  # None: nothing to estimate it from
        return info

    def _describe(self) -> dict[str, Any]:
        """The estimator's own entries in ``info`` (its budget)."""
        return {}

    def _shared_standard_error(self, mean_values: np.ndarray) -> np.ndarray:
        """SE of φ of the mean game over the shared draw, (K,) -> (M,)."""
        raise NotImplementedError
