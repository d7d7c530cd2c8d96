"""Estimators of the bands' Shapley values, one module each, registered by name.

Adding an estimator: a module with an ``Estimator`` subclass, and one line in ``REGISTRY``.
``estimator_from_config(config)`` is the one object the engine and the summary share.
"""

from __future__ import annotations

from typing import Any

from ..errors import IasideError
from .base import DRAWS, Estimator
from .exact import MAX_EXACT_BANDS, ExactEstimator
from .kernel import KernelEstimator
from .permutation import PermutationEstimator

REGISTRY: dict[str, type[Estimator]] = {
    cls.name: cls for cls in (ExactEstimator, KernelEstimator, PermutationEstimator)
}
ESTIMATORS = tuple(REGISTRY)

__all__ = ["DRAWS", "ESTIMATORS", "MAX_EXACT_BANDS", "REGISTRY", "Estimator", "estimator_from_config", "resolve_budget"]


def _class(name: str) -> type[Estimator]:
    if name not in REGISTRY:
        raise IasideError(f"--estimator {name!r} is not one of {', '.join(ESTIMATORS)}")
    return REGISTRY[name]


def estimator_from_config(config: Any) -> Estimator:
    """The estimator an ``ExplainConfig`` names, validated (a bad budget fails before any work)."""
    return _class(config.estimator).from_config(config)


def resolve_budget(config: Any) -> Any:
    """The config with the sampling budget written out (permutations or coalitions per image),
    so a saved run names its plan even if the defaults change."""
    cls = _class(config.estimator)
    if cls.budget_field is None or getattr(config, cls.budget_field) is not None:
        return config
    return type(config).from_dict({**config.to_dict(), cls.budget_field: cls.default_budget(config.bands)})
