"""Data configuration that travels with a model (timm-style): how a model wants its images."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

import numpy as np

INTERPOLATIONS = ("nearest", "bilinear", "bicubic", "lanczos")
DEFAULT_BANDS = 8
"""M, the number of spectral bands, when the user names none."""
MAX_BANDS = 63
"""Most bands a run or a saved result may have: a coalition is an int64 bit mask, and band 63
would be its sign bit."""
FALLBACK = "fallback"
"""The source of a field nobody declared (``DataConfig.sources``)."""


@dataclass(frozen=True)
class DataConfig:
    """Preprocessing up to (not including) normalisation, plus the normalisation itself.

    Pixels reach the engine as float in [0, 1], shape (C, H, W) = (channels, *input_size),
    after: resize the shorter side to ``resize_size`` with ``interpolation``, centre-crop to
    ``input_size``. ``mean``/``std`` (per channel, in [0, 1] pixel units) are applied inside
    the model wrapper, after the band split. ``sources`` (set by ``resolve_data_config``) says
    where each field came from; it is not part of equality or ``to_dict``.
    """

    input_size: tuple[int, int] = (224, 224)
    resize_size: int = 256
    interpolation: str = "bilinear"
    mean: tuple[float, ...] = (0.485, 0.456, 0.406)
    std: tuple[float, ...] = (0.229, 0.224, 0.225)
    channels: int = 3
    sources: Mapping[str, str] | None = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        from .errors import IasideError

        if self.interpolation not in INTERPOLATIONS:
            raise IasideError(f"interpolation {self.interpolation!r} is not one of {', '.join(INTERPOLATIONS)}")
        if len(self.mean) != self.channels or len(self.std) != self.channels:
            raise IasideError(f"mean {self.mean} and std {self.std} need {self.channels} values (one per channel)")
        if any(s <= 0 for s in self.std):
            raise IasideError(f"std {self.std} must be positive")
        h, w = self.input_size
        if h < 1 or w < 1 or self.resize_size < 1:
            raise IasideError(f"input_size {self.input_size} and resize_size must be positive")

    def to_dict(self) -> dict[str, Any]:
        """The fields (not their sources) as JSON-ready values."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items() if k != "sources"}

    @classmethod
    def from_dict(cls, d: dict[str, Any], sources: Mapping[str, str] | None = None) -> DataConfig:
        return cls(
            **_normalised({k: v for k, v in d.items() if k in DATA_FIELDS}, "a data config"),
            sources=dict(sources) if sources else None,
        )

    def guessed(self) -> list[str]:
        """The fields nobody declared (their source is the fallback), in field order."""
        src = self.sources or {}
        return [k for k in DATA_FIELDS if src.get(k) == FALLBACK or src.get(k, "").endswith(f" of {FALLBACK}")]

    def pipeline(self) -> str:
        """The effective preprocessing in one line with the source of each step, e.g. ``resize 36
        bilinear [crop fraction 0.875 of fallback, fallback] → crop 32×32 [given] → 3 channels
        [fallback] → mean … std … [sidecar tiny.pt.json]``; one source for all is named once at the end."""
        src = dict(self.sources or {})
        one = len(set(src.values())) == 1
        tag = lambda *keys: (
            "" if one or not src else " [" + ", ".join(dict.fromkeys(src.get(k, "?") for k in keys)) + "]"
        )
        fmt = lambda v: ",".join(f"{x:.4g}" for x in v)
        h, w = self.input_size
        line = (
            f"resize {self.resize_size} {self.interpolation}{tag('resize_size', 'interpolation')} → "
            f"crop {h}×{w}{tag('input_size')} → {self.channels} channel{'s' * (self.channels != 1)}"
            f"{tag('channels')} → mean {fmt(self.mean)} std {fmt(self.std)}{tag('mean', 'std')}"
        )
        return line + (f" [all: {next(iter(src.values()))}]" if one else "")

    def override(self, **changes: Any) -> DataConfig:
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
        fields_given: dict[str, Any] = {k: tuple(v) if isinstance(v, list) else v for k, v in changes.items()}
        return replace(self, sources=None, **fields_given)


DATA_FIELDS = tuple(f.name for f in fields(DataConfig) if f.name != "sources")
"""The fields a data configuration (a flag, a file, a model) may declare."""


def _normalised(declared: Mapping[str, Any], source: str) -> dict[str, Any]:
    """``declared`` without None values, sizes as (H, W) and lists as tuples; unknown fields refused."""
    from .errors import IasideError

    unknown = sorted(set(declared) - set(DATA_FIELDS))
    if unknown:
        raise IasideError(f"{source} has unknown data-config fields {unknown}; allowed: {', '.join(DATA_FIELDS)}")
    out = {}
    for key, value in declared.items():
        if value is None:
            continue
        if key == "input_size":
            value = (int(value), int(value)) if isinstance(value, (int, float)) else tuple(int(v) for v in value)
            if len(value) == 3:  # timm's (C, H, W)
                value = value[1:]
        elif key in ("mean", "std"):
            value = (float(value),) if isinstance(value, (int, float)) else tuple(float(v) for v in value)
        elif key in ("resize_size", "channels"):
            value = int(value)
        out[key] = value
    return out


def resolve_data_config(
    layers: Sequence[tuple[Mapping[str, Any] | None, str]], fallback: DataConfig | None = None
) -> DataConfig:
    """The one data-configuration rule: ``fallback``, then each (fields, source) layer in order
    (lowest priority first: the model's own, a file beside it or named by the user, the user's
    explicit values); each field keeps the source of the layer that set it.

    Partial layers resolve consistently: a layer that sets ``input_size`` without
    ``resize_size`` moves the resize with it at the crop fraction in force (timm's rule,
    resize = floor(crop / fraction)), so a 32 crop never sits behind a 256 resize; one that
    changes ``channels`` without mean/std keeps their average value per channel; a single
    mean/std value is repeated per channel.
    """
    base = fallback or DataConfig()
    values = {k: getattr(base, k) for k in DATA_FIELDS}
    sources = {k: FALLBACK for k in DATA_FIELDS}
    for declared, source in layers:
        given = _normalised(declared or {}, source)
        said = set(given)
        if "input_size" in given and "resize_size" not in given and given["input_size"] != values["input_size"]:
            fraction = min(values["input_size"]) / values["resize_size"]
            values["resize_size"] = max(1, math.floor(min(given["input_size"]) / fraction + 1e-9))
            sources["resize_size"] = f"crop fraction {fraction:.3g} of {sources['resize_size']}"
        channels = given.get("channels", values["channels"])
        for key in ("mean", "std"):
            if key in given and len(given[key]) == 1:
                given[key] = given[key] * channels
            elif key not in given and channels != len(values[key]):
                given[key] = (float(np.mean(values[key])),) * channels
        values.update(given)
        sources.update({key: source for key in said})
    return DataConfig(**values, sources=sources)


def data_config_file(path: str, what: str = "--data-config") -> dict[str, Any]:
    """The fields of a JSON data-configuration file (DataConfig's field names), checked."""
    import json

    from .errors import IasideError

    try:
        with open(path) as fh:
            declared = json.load(fh)
    except OSError as e:
        raise IasideError(f"{what} {path} cannot be read ({e.strerror or e}); check the path") from e
    except ValueError as e:
        raise IasideError(f"{what} {path} is not valid JSON ({e}); write an object of DataConfig fields") from e
    if not isinstance(declared, dict):
        raise IasideError(f"{what} {path} holds a {type(declared).__name__}; write an object of DataConfig fields")
    return _normalised(declared, f"{what} {path}")


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
    def build(cls, preset: str | None = None, base: ExplainConfig | None = None, **given: Any) -> ExplainConfig:
        """The field defaults (or ``base``, a configuration to start from), then the preset, then
        what the user gave (``None`` = not given)."""
        from .errors import IasideError

        if preset is not None and preset not in PRESETS:
            raise IasideError(f"--preset {preset!r} is not one of {', '.join(PRESETS)}")
        given = {k: v for k, v in given.items() if v is not None}
        start = base.to_dict() if base is not None else {}
        if {"estimator", "draws"} & set(given):
            start.pop("draws", None)  # a new estimator brings its own default draws
        base_preset = start.pop("preset", None)
        preset = preset if preset is not None else base_preset
        return cls(preset=preset, **{**start, **(PRESETS[preset] if preset else {}), **given})

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ExplainConfig:
        """Also reads configs saved before ``draws`` existed: they drew one set of coalitions for
        the run, and their permutation default was 32."""
        values = {k: v for k, v in d.items() if k in {f.name for f in fields(cls)}}
        if "draws" not in d:
            values["draws"] = "shared"
            if values.get("estimator") == "permutation" and values.get("permutations") is None:
                values["permutations"] = 32
        return cls(**values)
