"""``timm:NAME``: a timm model with its pretrained data config (optional extra)."""
from __future__ import annotations

import math

import torch

from ..config import DataConfig
from ..errors import IasideError
from ._common import Built, existing_file, file_fingerprint, state_fingerprint
from ._shim import import_timm


def load_timm(name: str, *, weights: str | None, device: torch.device, num_classes: int | None) -> Built:
    """``timm.create_model(name, pretrained=True)``; ``weights`` is a local copy of timm's pretrained file.

    With ``num_classes`` different from the pretrained head, timm keeps the backbone and starts a new head.
    """
    timm = import_timm()
    if not name.startswith("hf-hub:") and not timm.is_model(name):
        raise IasideError(f"timm has no model {name!r}; list names with timm.list_models('*pattern*')")
    kwargs = {} if num_classes is None else {"num_classes": num_classes}
    if weights is not None:
        kwargs["pretrained_cfg_overlay"] = {"file": str(existing_file(weights, "weights file"))}
    try:
        net = timm.create_model(name, pretrained=True, **kwargs)
    except Exception as e:
        if weights is not None:
            raise IasideError(f"timm could not load weights file {weights!r} into {name}: {e}") from e
        raise IasideError(
            f"could not fetch pretrained weights for timm:{name} ({e}); offline machines cannot reach "
            "the hub: download the file elsewhere and pass weights=PATH (--weights PATH)"
        ) from e
    from timm.data import ImageNetInfo, infer_imagenet_subset, resolve_data_config

    d = resolve_data_config(model=net)
    channels, height, width = d["input_size"]
    config = DataConfig(
        input_size=(height, width),
        resize_size=int(math.floor(min(height, width) / d["crop_pct"])),
        interpolation=d["interpolation"],
        mean=tuple(d["mean"]),
        std=tuple(d["std"]),
        channels=channels,
    )
    subset = infer_imagenet_subset(net)
    names = ImageNetInfo(subset).label_descriptions() if subset else None
    fingerprint = file_fingerprint(weights) if weights is not None else state_fingerprint(net)
    return Built(net, config, fingerprint, names, {"weights": weights})
