"""Turn a model spec (a built-in name or ``prefix:target``) into a ready Classifier and its DataConfig."""
from __future__ import annotations

from typing import Any, Callable

import torch

from ..errors import IasideError
from ._common import Built, with_fields
from .base import Classifier, LoadedModel
from .factory import load_factory
from .hub_timm import load_timm
from .hub_torchvision import load_torchvision
from .lite import RESOLUTION, load_lite
from .onnxrt import load_onnx
from .torchscript import load_torchscript

Loader = Callable[..., Built]
"""``loader(target, *, weights, device, num_classes) -> Built``."""

_SOURCES: dict[str, tuple[Loader, str]] = {}
_MODELS: dict[str, Loader] = {}
PROBE_BATCH = 2


def register_source(prefix: str, loader: Loader, usage: str | None = None) -> None:
    """Make specs ``prefix:TARGET`` load through ``loader(TARGET, weights=, device=, num_classes=)``."""
    _SOURCES[prefix] = (loader, usage or f"{prefix}:TARGET")


def register_model(name: str, loader: Loader) -> None:
    """Make the bare spec ``name`` load through ``loader(name, weights=, device=, num_classes=)``."""
    _MODELS[name] = loader


def available_models() -> list[str]:
    """The named built-in models, sorted."""
    return sorted(_MODELS)


def accepted_forms() -> list[str]:
    """Every accepted spec form: built-in names, then ``prefix:...`` usages."""
    return available_models() + [usage for _, usage in _SOURCES.values()]


def _device(device: str | torch.device) -> torch.device:
    """A usable torch.device, or an IasideError."""
    try:
        dev = torch.device(device)
    except RuntimeError as e:
        raise IasideError(
            f"device {str(device)!r} is not a torch device ({e}); use e.g. cpu, cuda, cuda:1"
        ) from e
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise IasideError(
            f"device {str(device)!r} asked for but CUDA is not available here; use device='cpu'"
        )
    return dev


def _build(spec: str, **kwargs: Any) -> tuple[str, Built]:
    """(source name, Built) for ``spec``."""
    if spec in _MODELS:
        return spec, _MODELS[spec](spec, **kwargs)
    prefix, sep, target = spec.partition(":")
    if not sep or prefix not in _SOURCES or not target:
        raise IasideError(f"unknown model spec {spec!r}; accepted: {', '.join(accepted_forms())}")
    return prefix, _SOURCES[prefix][0](target, **kwargs)


def _probe_classes(model: Classifier, spec: str, shape: tuple[int, ...], device: torch.device) -> int:
    """K from a forward pass of zeros of ``shape`` (B, C, H, W), checking the output is (B, K)."""
    try:
        with torch.no_grad():
            out = model(torch.zeros(shape, device=device))
    except Exception as e:
        raise IasideError(
            f"{spec} fails on a zero batch of shape {shape} ({e}); "
            "set input_size/channels (overrides) to what it expects"
        ) from e
    if not isinstance(out, torch.Tensor) or out.dim() != 2 or out.shape[0] != shape[0]:
        got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise IasideError(f"{spec} returns {got} for input {shape}; it must return (B, K) logits")
    return int(out.shape[1])


def load_model(
    spec: str,
    *,
    weights: str | None = None,
    device: str = "cpu",
    num_classes: int | None = None,
    overrides: dict | None = None,
) -> LoadedModel:
    """Load ``spec`` as an eval-mode Classifier on ``device``: (B, C, H, W) pixels in [0, 1] -> (B, K) logits.

    ``overrides`` replaces DataConfig fields of the source's defaults (None values ignored); the
    Classifier normalises with the resulting mean/std. K is probed with a zero batch of the
    config's size and must equal ``num_classes`` when that is given.
    """
    dev = _device(device)
    source, built = _build(spec, weights=weights, device=dev, num_classes=num_classes)
    config = with_fields(built.data_config, overrides, "overrides")
    model = Classifier(built.net, config.mean, config.std, name=spec).to(dev).eval()
    k = _probe_classes(model, spec, (PROBE_BATCH, config.channels, *config.input_size), dev)
    if num_classes is not None and k != num_classes:
        raise IasideError(
            f"{spec} gives {k} classes but num_classes={num_classes}; pass matching weights or drop num_classes"
        )
    model.num_classes = k
    names = built.class_names
    model.class_names = names if names is not None and len(names) == k else None
    return LoadedModel(model, config, spec, built.fingerprint, source, built.extra)


for _name in RESOLUTION:
    register_model(_name, load_lite)
register_source("torchscript", load_torchscript, "torchscript:PATH")
register_source("onnx", load_onnx, "onnx:PATH")
register_source("module", load_factory, "module:pkg.mod:factory")
register_source("timm", load_timm, "timm:NAME")
register_source("torchvision", load_torchvision, "torchvision:NAME")
