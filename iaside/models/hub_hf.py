"""``hf:NAME_OR_DIR``: a Hugging Face image classifier and its image processor (optional extra)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import torch

from ..compat import import_transformers
from ..errors import IasideError
from ._common import Built, Declared, existing_file, hub_cache_dir, hub_offline, reject_weights, state_fingerprint

RESAMPLE = {0: "nearest", 1: "lanczos", 2: "bilinear", 3: "bicubic"}
"""PIL resampling codes (as HF image processors store them) -> DataConfig interpolation."""


def processor_fields(processor: Any) -> dict[str, Any]:
    """DataConfig fields from an HF image processor: size/crop_size/crop_pct -> resize and crop,
    resample -> interpolation, and the processor's rescale + normalise folded into mean/std in
    [0, 1] pixel units: (x·r - m)/s on 0..255 values x equals (p - m/(255 r)) / (s/(255 r)) on p = x/255.

    A processor that resizes to (H, W) without a crop squashes non-square images; iaside keeps the
    aspect ratio (resize the shorter side to min(H, W), centre-crop (H, W)): equal on square images.
    """

    def get(key: str, default: Any = None) -> Any:
        return getattr(processor, key, default)

    out: dict[str, Any] = {}
    size = get("size") or {}
    size = {"height": size, "width": size} if isinstance(size, int) else dict(size)
    crop = get("crop_size") or {}
    crop = {"height": crop, "width": crop} if isinstance(crop, int) else dict(crop)
    if get("do_center_crop") and "height" in crop:
        out["input_size"] = (crop["height"], crop["width"])
        out["resize_size"] = size.get("shortest_edge") or min(
            size.get("height", crop["height"]), size.get("width", crop["width"])
        )
    elif "height" in size:
        out["input_size"] = (size["height"], size["width"])
        out["resize_size"] = min(size["height"], size["width"])
    elif "shortest_edge" in size:
        edge = size["shortest_edge"]
        crop_pct = get("crop_pct")
        out["input_size"] = (edge, edge)
        out["resize_size"] = int(math.floor(edge / crop_pct)) if crop_pct and edge < 384 else edge
    if get("resample") is not None:
        out["interpolation"] = RESAMPLE.get(int(get("resample")), "bilinear")
    scale = 255.0 * (float(get("rescale_factor", 1 / 255)) if get("do_rescale", True) else 1.0)
    if get("do_normalize", True) and get("image_mean") is not None:
        mean, std = get("image_mean"), get("image_std")
        mean = [mean] if isinstance(mean, (int, float)) else mean
        std = [std] if isinstance(std, (int, float)) else std
        out["mean"] = tuple(float(m) / scale for m in mean)
        out["std"] = tuple(float(s) / scale for s in std)
    else:
        out["mean"], out["std"] = (0.0,), (1.0 / scale,)
    return out


def _location(target: str) -> tuple[str, dict[str, Any]]:
    """(what from_pretrained loads, its keyword arguments): a local directory, else a hub name
    read from the local hub cache first (the network only when it is missing and HF_HUB_OFFLINE is off)."""
    path = Path(target).expanduser()
    if path.is_dir():
        existing_file(path / "config.json", "Hugging Face model config")
        return str(path), {"local_files_only": True}
    if target.startswith((".", "/", "~")) or target.count("/") > 1:  # a path, not a hub name (org/name)
        raise IasideError(f"hf:{target}: no such directory; pass a folder saved with save_pretrained, or a hub name")
    return target, {"cache_dir": str(hub_cache_dir()), "local_files_only": True}


def load_hf(target: str, *, weights: str | None, device: torch.device, num_classes: int | None) -> Built:
    """``AutoModelForImageClassification`` + ``AutoImageProcessor`` from ``target``: a directory
    saved with ``save_pretrained`` or a hub name (local hub cache, then the hub unless offline).

    Declared data config: the image processor (none: the fallback applies); class names: id2label.
    """
    reject_weights(weights, "Hugging Face")
    import_transformers()  # the safe install command when it is missing; torchvision made importable first
    from transformers import AutoImageProcessor, AutoModelForImageClassification
    from transformers.utils import logging as hf_logging

    location, kwargs = _location(target)
    bars = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        return _load(target, location, kwargs, AutoModelForImageClassification, AutoImageProcessor)
    finally:
        if bars:
            hf_logging.enable_progress_bar()


def _load(target: str, location: str, kwargs: dict, model_class, processor_class) -> Built:
    """The model, its declared data config (model config, then image processor) and class names."""
    try:
        try:
            net = model_class.from_pretrained(location, **kwargs)
        except OSError:
            if kwargs.get("local_files_only") and "cache_dir" in kwargs and not hub_offline():
                kwargs["local_files_only"] = False
                net = model_class.from_pretrained(location, **kwargs)
            else:
                raise
    except Exception as e:
        where = "the hub cache " + str(hub_cache_dir()) if "cache_dir" in kwargs else location
        raise IasideError(
            f"cannot load hf:{target} as an image classifier from {where} ({str(e).splitlines()[0]}); "
            "pass a folder saved with save_pretrained, or fill the hub cache"
        ) from e
    declared: list[Declared] = []
    try:
        processor = processor_class.from_pretrained(location, **kwargs)
    except Exception:
        processor = None
    own = {"channels": getattr(net.config, "num_channels", None), "input_size": getattr(net.config, "image_size", None)}
    if any(v is not None for v in own.values()):
        declared.append((own, "HF model config"))
    if processor is not None:
        declared.append((processor_fields(processor), f"HF {type(processor).__name__}"))
    labels = getattr(net.config, "id2label", None) or {}
    names = [str(labels[i]) for i in range(len(labels))] if set(labels) == set(range(len(labels))) else None
    if names is not None and all(n == f"LABEL_{i}" for i, n in enumerate(names)):
        names = None
    extra = {"path": location if Path(location).is_dir() else None}
    return Built(net.eval(), declared, state_fingerprint(net), names, extra)
