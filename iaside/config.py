"""Data configuration that travels with a model (timm-style): how a model wants its images."""
from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace
from typing import Any

import numpy as np

INTERPOLATIONS = ("nearest", "bilinear", "bicubic", "lanczos")
DEFAULT_BANDS = 8
"""M, the number of spectral bands, when the user names none."""


@dataclass(frozen=True)
class DataConfig:
    """Preprocessing up to (not including) normalisation, plus the normalisation itself.

    Pixels reach the engine as float in [0, 1], shape (C, H, W) = (channels, *input_size),
    after: resize the shorter side to ``resize_size`` with ``interpolation``, centre-crop to
    ``input_size``. ``mean``/``std`` (per channel, in [0, 1] pixel units) are applied inside
    the model wrapper, after the band split.
    """

    input_size: tuple[int, int] = (224, 224)
    resize_size: int = 256
    interpolation: str = "bilinear"
    mean: tuple[float, ...] = (0.485, 0.456, 0.406)
    std: tuple[float, ...] = (0.229, 0.224, 0.225)
    channels: int = 3

    def __post_init__(self) -> None:
        from .errors import IasideError

        if self.interpolation not in INTERPOLATIONS:
            raise IasideError(
                f"interpolation {self.interpolation!r} is not one of {', '.join(INTERPOLATIONS)}"
            )
        if len(self.mean) != self.channels or len(self.std) != self.channels:
            raise IasideError(
                f"mean {self.mean} and std {self.std} need {self.channels} values (one per channel)"
            )
        if any(s <= 0 for s in self.std):
            raise IasideError(f"std {self.std} must be positive")
        h, w = self.input_size
        if h < 1 or w < 1 or self.resize_size < 1:
            raise IasideError(f"input_size {self.input_size} and resize_size must be positive")

    def to_dict(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "DataConfig":
        names = {f.name for f in fields(cls)}
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in d.items() if k in names})

    def override(self, **changes: Any) -> "DataConfig":
        """A copy with the given fields replaced; ``None`` values are ignored."""
        changes = {k: v for k, v in changes.items() if v is not None}
        if "input_size" in changes and isinstance(changes["input_size"], int):
            changes["input_size"] = (changes["input_size"], changes["input_size"])
        channels = changes.get("channels", self.channels)
        for key in ("mean", "std"):
            if key in changes and len(changes[key]) == 1:
                changes[key] = tuple(changes[key]) * channels
            elif key not in changes and channels != self.channels:  # a channel change keeps the mean value
                changes[key] = (float(np.mean(getattr(self, key))),) * channels
        return replace(self, **{k: tuple(v) if isinstance(v, list) else v for k, v in changes.items()})


PRESETS: dict[str, dict[str, Any]] = {
    "paper": {"partition": "square", "synthesis": "paper", "fill": "partner"},
}
"""Named configurations. 'paper' reproduces the authors' script (docs/method.md §9)."""

@dataclass(frozen=True)
class ExplainConfig:
    """Everything that decides the numbers of a run (batch size and device do not).

    bands: M; partition: linf | l2 | square; fill: partner | zero | mean | noise | gaussian;
    synthesis: sum | paper; clip: clip coalition images to [0, 1] (sum synthesis);
    labels: 'given' or 'predicted'; samples: seeded subset size (None = all);
    estimator: 'exact' (all 2**M coalitions), 'kernel' (paired KernelSHAP on ``coalitions``
    coalitions per image) or 'permutation' (antithetic permutation sampling with
    ``permutations`` permutations), the last two for large M; draws: 'per-image' (each image
    draws its own permutations from (seed, index); the default for permutation) or 'shared'
    (one draw for the run; exact, kernel, and results saved before per-image draws existed);
    n_bootstrap / confidence: the bootstrap intervals; beta: the score's band decay.
    """

    bands: int = DEFAULT_BANDS
    partition: str = "linf"
    fill: str = "partner"
    synthesis: str = "sum"
    clip: bool = False
    preset: str | None = None
    labels: str = "given"
    samples: int | None = None
    seed: int = 0
    estimator: str = "exact"
    permutations: int | None = None
    coalitions: int | None = None
    draws: str | None = None
    n_bootstrap: int = 1000
    confidence: float = 0.95
    beta: float = 0.75

    def __post_init__(self) -> None:
        from .fills import canonical_fill

        object.__setattr__(self, "fill", canonical_fill(self.fill))  # aliases are stored by the fill's own name
        if self.draws is None:  # the estimator's own default, settled here once
            from .estimators import REGISTRY

            per_image = self.estimator in REGISTRY and REGISTRY[self.estimator].per_image_draws
            object.__setattr__(self, "draws", "per-image" if per_image else "shared")

    @classmethod
    def build(cls, preset: str | None = None, **given: Any) -> "ExplainConfig":
        """The field defaults, then the preset, then what the user gave (``None`` = not given)."""
        from .errors import IasideError

        if preset is not None and preset not in PRESETS:
            raise IasideError(f"--preset {preset!r} is not one of {', '.join(PRESETS)}")
        values = {**(PRESETS[preset] if preset else {}), **{k: v for k, v in given.items() if v is not None}}
        return cls(preset=preset, **values)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "ExplainConfig":
        """Also reads configs saved before ``draws`` existed: they drew one set of coalitions for
        the run, and their permutation default was 32."""
        values = {k: v for k, v in d.items() if k in {f.name for f in fields(cls)}}
        if "draws" not in d:
            values["draws"] = "shared"
            if values.get("estimator") == "permutation" and values.get("permutations") is None:
                values["permutations"] = 32
        return cls(**values)
