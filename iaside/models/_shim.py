"""Import torchvision / timm on CPU-only torch, where torchvision's CUDA build lacks ``torchvision::nms``."""
from __future__ import annotations

import importlib
import importlib.util
import sys
from types import ModuleType

import torch

from ..errors import IasideError

_NMS_ERROR = "torchvision::nms does not exist"
_NMS_SCHEMA = "(Tensor dets, Tensor scores, float iou_threshold) -> Tensor"
_torchvision_library: torch.library.Library | None = None  # kept alive: dropping it unregisters the ops


def _require(module: str, extra: str) -> None:
    """Raise an IasideError naming the pip extra when ``module`` is not installed."""
    if importlib.util.find_spec(module) is None:
        raise IasideError(f"{module} is not installed: pip install 'iaside[{extra}]'")


def import_torchvision() -> ModuleType:
    """``torchvision``, defining stub ``nms``/``qnms`` schemas when its compiled ops failed to load."""
    global _torchvision_library
    _require("torchvision", "torchvision")
    try:
        return importlib.import_module("torchvision")
    except RuntimeError as e:
        if _NMS_ERROR not in str(e) or _torchvision_library is not None:
            raise
    for name in [m for m in sys.modules if m == "torchvision" or m.startswith("torchvision.")]:
        del sys.modules[name]
    _torchvision_library = torch.library.Library("torchvision", "DEF")
    for op in ("nms", "qnms"):
        _torchvision_library.define(op + _NMS_SCHEMA)
    return importlib.import_module("torchvision")


def import_timm() -> ModuleType:
    """``timm``, imported after torchvision has been made importable."""
    _require("timm", "timm")
    import_torchvision()
    return importlib.import_module("timm")
