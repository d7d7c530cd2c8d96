"""Import torchvision, timm and transformers on a CPU-only torch.

torchvision's Linux wheels on PyPI are CUDA builds (0.28.0, the match for torch 2.13, has no
CPU build there). Beside a CPU-only torch their compiled operators do not load, and ``import
torchvision`` stops with ``operator torchvision::nms does not exist``; timm and transformers
import torchvision, so they stop too. In your own script or notebook::

    import iaside.compat
    iaside.compat.enable_torchvision()
    import torchvision, timm, transformers   # now they import

``enable_torchvision`` defines the schemas of the two missing operators (``nms``, ``qnms``) and
imports torchvision again; transforms, model constructors and weights' metadata then work.
``torchvision.ops.nms`` (and the detection models that call it) and ``torchvision.io``'s
decoders still do not: use PIL to read images. Where torchvision imports by itself (a build
that matches the installed torch, e.g. on a GPU machine) it changes nothing.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from types import ModuleType

import torch

from .errors import IasideError
from .install import pip_hint

_NMS_ERROR = "torchvision::nms does not exist"
_NMS_SCHEMA = "(Tensor dets, Tensor scores, float iou_threshold) -> Tensor"
_torchvision_library: torch.library.Library | None = None  # kept alive: dropping it unregisters the ops

__all__ = ["enable_torchvision", "import_timm", "import_torchvision", "import_transformers"]


def _require(module: str, extra: str) -> None:
    """Raise an IasideError with the safe install command when ``module`` is not installed."""
    if importlib.util.find_spec(module) is None:
        raise IasideError(f"{module} is not installed: {pip_hint(f'iaside[{extra}]')}")


def enable_torchvision() -> bool:
    """Make ``import torchvision`` (and so timm and transformers) work in this process.

    Returns True when the missing operators had to be defined, False when torchvision imported
    as it is. Calling it again is harmless. Raises IasideError when torchvision is not installed.
    """
    global _torchvision_library
    _require("torchvision", "torchvision")
    if _torchvision_library is not None:
        importlib.import_module("torchvision")
        return True
    try:
        importlib.import_module("torchvision")
        return False
    except RuntimeError as e:
        if _NMS_ERROR not in str(e):
            raise
    for name in [m for m in sys.modules if m == "torchvision" or m.startswith("torchvision.")]:
        del sys.modules[name]
    _torchvision_library = torch.library.Library("torchvision", "DEF")
    for op in ("nms", "qnms"):
        _torchvision_library.define(op + _NMS_SCHEMA)
    importlib.import_module("torchvision")
    return True


def import_torchvision() -> ModuleType:
    """``torchvision``, importable on a CPU-only torch (see ``enable_torchvision``)."""
    enable_torchvision()
    return importlib.import_module("torchvision")


def import_timm() -> ModuleType:
    """``timm``, imported after torchvision has been made importable (when it is installed)."""
    _require("timm", "timm")
    if importlib.util.find_spec("torchvision") is not None:
        enable_torchvision()
    return importlib.import_module("timm")


def import_transformers() -> ModuleType:
    """``transformers``, imported after torchvision has been made importable (when it is installed)."""
    _require("transformers", "hf")
    if importlib.util.find_spec("torchvision") is not None:
        enable_torchvision()
    return importlib.import_module("transformers")
