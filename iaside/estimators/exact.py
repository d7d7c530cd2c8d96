"""Exact Shapley values: all 2**M coalitions in bit-mask order (docs/method.md §5)."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import IasideError
from ..game import full_coalition_masks, shapley_matrix
from .base import Estimator

MAX_EXACT_BANDS = 16


class ExactEstimator(Estimator):
    """Every coalition, so no sampling error; K = 2**M (M ≤ 16)."""

    name = "exact"

    @classmethod
    def default_budget(cls, n_bands: int) -> int:
        return 2**n_bands

    @classmethod
    def _build(cls, n_bands: int, draws: str, budget: int | None, seed: int) -> Estimator:
        if n_bands > MAX_EXACT_BANDS:
            raise IasideError(
                f"exact I-ASIDE with {n_bands} bands needs 2**{n_bands} passes per image; "
                "use --estimator kernel (or permutation)"
            )
        return cls(n_bands, "shared", 2**n_bands, seed)

    def _draw(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        return full_coalition_masks(self.n_bands), shapley_matrix(self.n_bands)

    def info(self, logp_nats: np.ndarray, phi_per_image: np.ndarray) -> dict[str, Any]:
        return {"name": self.name}
