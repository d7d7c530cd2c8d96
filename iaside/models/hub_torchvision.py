"""``torchvision:NAME``: a torchvision classification model and its weights' transforms (optional extra)."""

from __future__ import annotations

import torch

from ..compat import import_torchvision
from ..errors import IasideError
from ..log import note
from ._common import (
    Built,
    file_fingerprint,
    head_size,
    last_linear_key,
    load_weights,
    read_state_dict,
    state_fingerprint,
    suggest,
)

IMAGENET_CLASSES = 1000


def load_torchvision(name: str, *, weights: str | None, device: torch.device, num_classes: int | None) -> Built:
    """``get_model(name)`` with the default weights (torch hub cache), or built empty and loaded
    strictly from ``weights`` (.pth or .safetensors) with a head of ``num_classes`` classes, else
    the head size read from the weights (with a note when it is not 1000).

    Declared data config and class names: the default weights' transforms and meta.
    """
    tv = import_torchvision()
    known = tv.models.list_models(module=tv.models)
    if name not in known:
        raise IasideError(
            f"torchvision has no classification model {name!r}{suggest(name, known)}; "
            "see torchvision.models.list_models()"
        )
    default = tv.models.get_model_weights(name).DEFAULT
    if weights is not None:
        state = read_state_dict(weights)
        k = num_classes
        if k is None:
            k = head_size(state, last_linear_key(tv.models.get_model(name, weights=None))) or IMAGENET_CLASSES
            if k != IMAGENET_CLASSES:
                note(f"torchvision:{name} gets a {k}-class head, read from {weights} (--num-classes sets it)")
        net = tv.models.get_model(name, weights=None, num_classes=k)
        load_weights(net, weights, f"torchvision:{name} with {k} classes", state=state)
        fingerprint = file_fingerprint(weights)
    else:
        if num_classes not in (None, IMAGENET_CLASSES):
            raise IasideError(
                f"torchvision:{name} with num_classes={num_classes} needs weights trained for that "
                "head: pass weights=PATH (--weights)"
            )
        try:
            net = tv.models.get_model(name, weights=default)
        except Exception as e:
            raise IasideError(
                f"could not fetch the {default} weights for torchvision:{name} ({e}); offline machines "
                "cannot reach the hub: download the file elsewhere and pass weights=PATH (--weights PATH)"
            ) from e
        fingerprint = state_fingerprint(net)
    t = default.transforms()
    declared = {
        "input_size": (t.crop_size[0], t.crop_size[0]),
        "resize_size": t.resize_size[0],
        "interpolation": t.interpolation.value,
        "mean": tuple(t.mean),
        "std": tuple(t.std),
        "channels": 3,
    }
    names = list(default.meta["categories"])
    return Built(
        net, [(declared, f"torchvision {default} transforms")], fingerprint, names, {"weights": weights or str(default)}
    )
