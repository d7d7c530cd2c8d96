"""``torchvision:NAME``: a torchvision classification model and its weights' transforms (optional extra)."""
from __future__ import annotations

import torch

from ..config import DataConfig
from ..errors import IasideError
from ._common import Built, file_fingerprint, load_weights, state_fingerprint
from ._shim import import_torchvision


def load_torchvision(
    name: str, *, weights: str | None, device: torch.device, num_classes: int | None
) -> Built:
    """``get_model(name)`` with the default weights (hub cache), or built empty and loaded from ``weights``.

    DataConfig and class names come from the default weights' transforms and meta.
    """
    tv = import_torchvision()
    if name not in tv.models.list_models(module=tv.models):
        raise IasideError(
            f"torchvision has no classification model {name!r}; see torchvision.models.list_models()"
        )
    default = tv.models.get_model_weights(name).DEFAULT
    if weights is not None:
        head = {} if num_classes is None else {"num_classes": num_classes}
        net = tv.models.get_model(name, weights=None, **head)
        load_weights(net, weights, f"torchvision:{name}")
        fingerprint = file_fingerprint(weights)
    else:
        try:
            net = tv.models.get_model(name, weights=default)
        except Exception as e:
            raise IasideError(
                f"could not fetch the {default} weights for torchvision:{name} ({e}); offline machines "
                "cannot reach the hub: download the file elsewhere and pass weights=PATH (--weights PATH)"
            ) from e
        fingerprint = state_fingerprint(net)
    t = default.transforms()
    config = DataConfig(
        input_size=(t.crop_size[0], t.crop_size[0]),
        resize_size=t.resize_size[0],
        interpolation=t.interpolation.value,
        mean=tuple(t.mean),
        std=tuple(t.std),
    )
    names = list(default.meta["categories"])
    return Built(net, config, fingerprint, names, {"weights": weights or str(default)})
