"""Turn a model spec (a built-in name or ``prefix:target``) into a ready Classifier and its DataConfig."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..config import DataConfig, data_config_file, resolve_data_config
from ..errors import IasideError
from ..log import warn
from ._common import Built, Declared, state_fingerprint, suggest
from .base import Classifier, LoadedModel
from .factory import load_factory
from .hub_hf import load_hf
from .hub_timm import load_timm
from .hub_torchvision import load_torchvision
from .lite import RESOLUTION, load_lite
from .onnxrt import load_onnx
from .outputs import check_scores, unpack_scores
from .torchscript import declared_attribute, load_torchscript

Loader = Callable[..., Built]
"""``loader(target, *, weights, device, num_classes) -> Built``."""

_SOURCES: dict[str, tuple[Loader, str]] = {}
_MODELS: dict[str, Loader] = {}
PROBE_BATCH = 2
SIDECAR_SUFFIX = ".json"
GIVEN = "given"
"""The source of values passed as flags (--input-size, ...) or as ``data_config=`` / ``overrides=``."""
IDENTITY = DataConfig(mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0))
"""The fallback for an nn.Module handed to the Python API: pixels in [0, 1] reach it as they are."""


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
        raise IasideError(f"device {str(device)!r} is not a torch device ({e}); use e.g. cpu, cuda, cuda:1") from e
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise IasideError(f"device {str(device)!r} asked for but CUDA is not available here; use device='cpu'")
    return dev


def _build(spec: str, **kwargs: Any) -> tuple[str, Built]:
    """(source name, Built) for ``spec``."""
    if spec in _MODELS:
        return spec, _MODELS[spec](spec, **kwargs)
    prefix, sep, target = spec.partition(":")
    if not sep or prefix not in _SOURCES or not target:
        hint = suggest(spec, available_models()) if not sep else suggest(prefix + ":", [p + ":" for p in _SOURCES])
        raise IasideError(f"unknown model spec {spec!r}{hint}; accepted: {', '.join(accepted_forms())}")
    return prefix, _SOURCES[prefix][0](target, **kwargs)


def _probe_classes(model: Classifier, spec: str, shape: tuple[int, ...], device: torch.device) -> int:
    """K from a forward pass of zeros of ``shape`` (B, C, H, W), checking the output is (B, K)."""
    try:
        with torch.no_grad():
            out = model(torch.zeros(shape, device=device))
    except Exception as e:
        raise IasideError(
            f"{spec} fails on a zero batch of shape {shape} ({e}); "
            "set input_size/channels (--input-size, --channels or --data-config) to what it expects"
        ) from e
    return int(check_scores(unpack_scores(out), shape[0], spec).shape[1])


def data_config_layers(
    declared: list[Declared],
    *,
    data_config: str | Path | Mapping | DataConfig | None = None,
    overrides: Mapping[str, Any] | None = None,
    model_files: tuple[str | None, ...] = (),
) -> list[Declared]:
    """The layers of the one data-configuration rule, lowest priority first: what the model
    declares, then a sidecar ``<model file>.json`` beside the model or weights file (or the
    ``data_config`` file the user names, which replaces the sidecar), then the user's explicit
    values (a DataConfig or dict as ``data_config``, then ``overrides``)."""
    layers = list(declared)
    if isinstance(data_config, (str, Path)):
        layers.append((data_config_file(str(data_config)), f"--data-config {data_config}"))
    else:
        for path in filter(None, model_files):
            sidecar = Path(str(path) + SIDECAR_SUFFIX)
            if sidecar.is_file():
                layers.append((data_config_file(str(sidecar), "sidecar"), f"sidecar {sidecar.name}"))
                break
        if isinstance(data_config, DataConfig):
            layers.append((data_config.to_dict(), GIVEN))
        elif data_config is not None:
            layers.append((dict(data_config), GIVEN))
    layers.append(({k: v for k, v in (overrides or {}).items() if v is not None}, GIVEN))
    return layers


def warn_guessed(config: DataConfig, spec: str, sidecar: str | None, used: tuple[str, ...] | None = None) -> None:
    """One warning line naming the fields nobody declared (of those ``used``) and where to declare them."""
    guessed = [k for k in config.guessed() if used is None or k in used]
    if not guessed:
        return
    values = ", ".join(f"{k} {config.to_dict()[k]}" for k in guessed)
    flags = "/".join("--" + k.replace("_", "-") for k in guessed)
    beside = f", a sidecar {sidecar}" if sidecar else ""
    warn(
        f"{spec} does not declare its preprocessing; guessed {values}: set them with {flags} "
        f"(data_config= in Python), --data-config FILE.json{beside}"
    )


def load_model(
    spec: str,
    *,
    weights: str | None = None,
    device: str = "cpu",
    num_classes: int | None = None,
    overrides: dict | None = None,
    data_config: str | Path | Mapping | DataConfig | None = None,
    outputs: str = "logits",
) -> LoadedModel:
    """Load ``spec`` as an eval-mode Classifier on ``device``: (B, C, H, W) pixels in [0, 1] -> (B, K) logits.

    The data configuration follows one rule (``data_config_layers``): ``overrides`` and a given
    DataConfig/dict ``data_config`` > a ``data_config`` JSON file, else a sidecar
    ``<model or weights file>.json`` > what the model declares > the fallback (one warning line
    names the guessed fields). Every field's source is in ``data_config.sources``. The Classifier
    normalises with the resolved mean/std. K is probed with a zero batch of the config's size and
    must equal ``num_classes`` when that is given. ``outputs='probs'``: the model returns
    probabilities; their log is taken.
    """
    dev = _device(device)
    source, built = _build(spec, weights=weights, device=dev, num_classes=num_classes)
    files = (built.extra.get("path"), weights)
    config = resolve_data_config(
        data_config_layers(built.declared, data_config=data_config, overrides=overrides, model_files=files)
    )
    model = Classifier(built.net, config.mean, config.std, name=spec, outputs=outputs).to(dev).eval()
    k = _probe_classes(model, spec, (PROBE_BATCH, config.channels, *config.input_size), dev)
    if num_classes is not None and k != num_classes:
        raise IasideError(
            f"{spec} gives {k} classes but num_classes={num_classes}; pass matching weights or drop num_classes"
        )
    warn_guessed(config, spec, next((f + SIDECAR_SUFFIX for f in files if f), None))
    model.num_classes = k
    names = built.class_names
    model.class_names = names if names is not None and len(names) == k else None
    return LoadedModel(model, config, spec, built.fingerprint, source, built.extra)


def wrap_module(
    net: nn.Module,
    *,
    fingerprint: str,
    data_config: str | Path | Mapping | DataConfig | None = None,
    overrides: Mapping[str, Any] | None = None,
    outputs: str = "logits",
    used: tuple[str, ...] | None = None,
) -> LoadedModel:
    """An nn.Module from the Python API under the same rule as ``load_model``; it declares its data
    config with a ``DATA_CONFIG`` attribute, and the fallback feeds it [0, 1] pixels as they are.
    ``used``: the fields the data will go through (tensors: only mean/std), for the warning."""
    name = type(net).__name__
    spec = f"module:{name}"
    inner = net.net if isinstance(net, Classifier) else net
    config = resolve_data_config(
        data_config_layers(declared_attribute(inner, name), data_config=data_config, overrides=overrides), IDENTITY
    )
    warn_guessed(config, spec, None, used)
    if isinstance(net, Classifier):
        model = net
    else:  # without a declared mean/std the wrapper is the identity, for any number of channels
        identity = {"mean", "std"} <= set(config.guessed())
        mean, std = ((0.0,), (1.0,)) if identity else (config.mean, config.std)
        model = Classifier(net, mean, std, name=name, outputs=outputs)
    return LoadedModel(model, config, spec=spec, fingerprint=fingerprint)


for _name in RESOLUTION:
    register_model(_name, load_lite)
register_source("torchscript", load_torchscript, "torchscript:PATH")
register_source("onnx", load_onnx, "onnx:PATH")
register_source("module", load_factory, "module:pkg.mod:factory")
register_source("timm", load_timm, "timm:NAME")
register_source("torchvision", load_torchvision, "torchvision:NAME")
register_source("hf", load_hf, "hf:NAME_OR_DIR")


def resolve_model(
    model, weights=None, device="cpu", data_config=None, overrides=None, num_classes=None, outputs="logits", used=None
) -> LoadedModel:
    """A spec string, a LoadedModel, a Classifier or any nn.Module -> LoadedModel, its data config
    resolved by the one rule (``iaside.models.registry.data_config_layers``)."""
    if not isinstance(model, str):
        ignored = [name for name, v in (("weights", weights), ("num_classes", num_classes)) if v is not None]
        if ignored:
            raise IasideError(
                f"{', '.join(ignored)} apply to a model spec (a hub or file model) that is loaded here; "
                f"a {type(model).__name__} is used as it is: load its weights and set its head first"
            )
    if isinstance(model, LoadedModel):
        if data_config is not None or any(v is not None for v in (overrides or {}).values()):
            raise IasideError("a LoadedModel carries its data config; pass overrides to load_model instead")
        if outputs != "logits":
            raise IasideError("a LoadedModel carries its output kind; pass outputs to load_model instead")
        return model
    if isinstance(model, str):
        return load_model(
            model,
            weights=weights,
            device=device,
            overrides=overrides,
            data_config=data_config,
            num_classes=num_classes,
            outputs=outputs,
        )
    if not isinstance(model, nn.Module):
        raise IasideError(f"model must be a spec string or an nn.Module, got {type(model).__name__}")
    return wrap_module(
        model,
        fingerprint=state_fingerprint(model),
        data_config=data_config,
        overrides=overrides,
        outputs=outputs,
        used=used,
    )
