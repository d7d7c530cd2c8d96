"""``timm:NAME``: a timm model with its pretrained data config (optional extra)."""

from __future__ import annotations

import math
from typing import cast

import torch

from ..compat import import_timm
from ..errors import IasideError
from ..log import note
from ._common import (
    Built,
    file_fingerprint,
    head_size,
    hub_cache_dir,
    load_weights,
    read_state_dict,
    state_fingerprint,
    suggest,
)

HUB_FILES = ("model.safetensors", "pytorch_model.bin")


def cached_pretrained_file(pretrained_cfg: dict) -> str | None:
    """The model's pretrained file in the local Hugging Face hub cache, if it is there."""
    from huggingface_hub import try_to_load_from_cache

    repo = pretrained_cfg.get("hf_hub_id")
    if not repo:
        return None
    for filename in [pretrained_cfg["hf_hub_filename"]] if pretrained_cfg.get("hf_hub_filename") else HUB_FILES:
        found = try_to_load_from_cache(repo, filename, cache_dir=hub_cache_dir())
        if isinstance(found, str):
            return found
    return None


def load_timm(name: str, *, weights: str | None, device: torch.device, num_classes: int | None) -> Built:
    """timm model ``name`` (``arch`` or ``arch.tag``) with weights from, in order: ``weights``
    (.pth or .safetensors, loaded strictly), the local hub cache, the hub.

    The head size is ``num_classes``, else read from the weights' classifier (with a note when it
    is not the pretrained one). Declared data config: the model's pretrained_cfg.
    """
    timm = import_timm()
    if not name.startswith("hf-hub:") and not timm.is_model(name):
        raise IasideError(
            f"timm has no model {name!r}{suggest(name.split('.')[0], timm.list_models())}; "
            "list names with timm.list_models('*pattern*')"
        )
    kwargs = {} if num_classes is None else {"num_classes": num_classes}
    pretrained_cfg = {} if name.startswith("hf-hub:") else timm.models.get_pretrained_cfg(name).to_dict()
    path = weights or cached_pretrained_file(pretrained_cfg)
    if path is not None:
        state = read_state_dict(path)
        classifier = pretrained_cfg.get("classifier")
        classifier = classifier[0] if isinstance(classifier, (tuple, list)) else classifier
        found = head_size(state, f"{classifier}.weight" if classifier else None)
        if num_classes is None and found is not None:
            kwargs["num_classes"] = found
            if found != pretrained_cfg.get("num_classes"):
                note(f"timm:{name} gets a {found}-class head, read from {path} (--num-classes sets it)")
        net = timm.create_model(name, pretrained=False, **kwargs)
        load_weights(net, path, f"timm:{name}", state=state)
        fingerprint = file_fingerprint(path)
    else:
        try:
            net = timm.create_model(name, pretrained=True, **kwargs)
        except Exception as e:
            raise IasideError(
                f"could not fetch pretrained weights for timm:{name} ({e}); offline machines cannot reach "
                f"the hub: put the file in the hub cache ({hub_cache_dir()}) or pass weights=PATH (--weights PATH)"
            ) from e
        fingerprint = state_fingerprint(net)
    from timm.data import ImageNetInfo, infer_imagenet_subset, resolve_data_config

    d = resolve_data_config(model=net)
    channels, height, width = d["input_size"]
    declared = {
        "input_size": (height, width),
        "resize_size": int(math.floor(min(height, width) / d["crop_pct"])),
        "interpolation": d["interpolation"],
        "mean": tuple(d["mean"]),
        "std": tuple(d["std"]),
        "channels": channels,
    }
    tag = net.pretrained_cfg.get("tag")
    source = f"timm pretrained_cfg {net.pretrained_cfg.get('architecture', name)}" + (f".{tag}" if tag else "")
    subset = infer_imagenet_subset(net)
    names = cast(list[str], ImageNetInfo(subset).label_descriptions()) if subset else None  # as_dict=False: a list
    return Built(net, [(declared, source)], fingerprint, names, {"weights": path})
