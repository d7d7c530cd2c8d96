"""What the Python API takes as ``data``, turned into one data set of ``ImageItem``s.

Accepted: a PIL image or a list of PIL images / image paths (decoded and resized by the
model's DataConfig, like a folder); a numpy array or torch tensor of pixels ((N, C, H, W),
(N, H, W, C), (N, H, W) grayscale, or one image (C, H, W), (H, W, C), (H, W)), taken at its
size; a pair (images, labels) of any of these with (N,) integer labels; a map-style
``torch.utils.data.Dataset`` or a ``DataLoader`` yielding (image, label), images alone or
dicts with an image and a label; an ``IterableDataset``. Images without labels are scored
on the model's own top-1 (predicted labels).

Pixels: uint8 is read as ``/ 255``; floats must lie in [0, 1] (unnormalised: the model's
mean/std are applied inside, after the band split). Everything filled in (the /255, a
channels-last layout, predicted labels) is said once, in one line on stderr, and is part of
the data set's ``description``. Arrays are checked in ``arrays.py``; a user's Dataset or
DataLoader is read by ``user_data.py`` (``DatasetImages`` re-exported here).
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset, IterableDataset

from ..config import DataConfig
from ..errors import IasideError
from ..log import note
from .arrays import ARGUMENT, as_tensor, check_scale, class_indices, dtype_name, to_nchw
from .base import PREDICTED, ImageItem
from .datasets import ImageDataset
from .tensors import TensorImages
from .user_data import DatasetImages, materialise, read_loader

__all__ = ["DatasetImages", "as_dataset"]


def as_dataset(data: Any, cfg: DataConfig, *, predicted: bool = False) -> Dataset:
    """``data`` as a data set of ImageItems (see the module docstring for what is accepted).

    cfg: the model's DataConfig (resizes PIL images and paths). predicted: drop any given
    labels and score the model's own top-1. Bad input raises one IasideError naming ``data``.
    """
    if isinstance(data, Dataset) and not isinstance(data, IterableDataset) and _yields_items(data):
        return data
    if isinstance(data, (str, os.PathLike, Image.Image)):
        return _image_list([data], None, cfg, predicted)
    if isinstance(data, (torch.Tensor, np.ndarray)):
        return _arrays(data, None, predicted)
    if isinstance(data, DataLoader):
        return read_loader(data, cfg, predicted)
    if isinstance(data, IterableDataset):
        return materialise(data, f"IterableDataset {type(data).__name__}", predicted, batched=False, cfg=cfg)
    if isinstance(data, Dataset) or (
        hasattr(data, "__getitem__") and hasattr(data, "__len__") and not isinstance(data, (list, tuple, dict))
    ):
        return DatasetImages(data, cfg, predicted=predicted)
    if isinstance(data, (list, tuple)):
        if len(data) == 0:
            raise IasideError(f"{ARGUMENT} is empty: pass at least one image")
        if len(data) == 2 and _is_batch(data[0]) and _is_label_batch(data[1]):
            images, labels = data
            if isinstance(images, (torch.Tensor, np.ndarray)):
                return _arrays(images, labels, predicted)
            return _image_list(list(images), labels, cfg, predicted)
        return _image_list(list(data), None, cfg, predicted)
    raise IasideError(
        f"{ARGUMENT} of type {type(data).__name__} is not accepted; pass a folder or samples:NAME, PIL images or "
        "image paths, a numpy array or torch tensor of pixels, an (images, labels) pair, a Dataset or a DataLoader"
    )


# -- in-memory images --------------------------------------------------------------------------
def _arrays(images, labels, predicted: bool) -> TensorImages:
    """An array or tensor of pixels (and labels) as TensorImages, the layout and scale said once."""
    kind = "numpy array" if isinstance(images, np.ndarray) else "tensor"
    what = f"{ARGUMENT} ({kind} {tuple(images.shape)} {dtype_name(images)})"
    x, layout = to_nchw(as_tensor(images, what), what)
    said = [f"read as {layout}"] if layout != "N, C, H, W" else []
    said += check_scale(x, what)
    y = None if labels is None else class_indices(labels, x.shape[0])
    if predicted or y is None:
        y = None
        said.append(
            "labels predicted by the model (its top-1 on each clean image)"
            if labels is None
            else "given labels replaced by the model's top-1 (labels='predicted')"
        )
    description = f"{kind}{tuple(images.shape)} {dtype_name(images)}" + "".join(f", {s}" for s in said)
    if said:
        note(f"{ARGUMENT}: {kind} {tuple(images.shape)} {dtype_name(images)}: {'; '.join(said)}")
    return TensorImages(x, y, [f"{ARGUMENT}[{i}]" for i in range(x.shape[0])], description)


def _image_list(images: list, labels, cfg: DataConfig, predicted: bool) -> ImageDataset:
    """PIL images and/or paths, decoded and resized by ``cfg`` like a folder."""
    names = []
    for i, img in enumerate(images):
        if isinstance(img, (str, os.PathLike)):
            if not os.path.isfile(img):
                raise IasideError(f"{ARGUMENT}[{i}]: {os.fspath(img)} is not an image file")
            names.append(os.fspath(img))
        elif isinstance(img, Image.Image):
            names.append(f"{ARGUMENT}[{i}]")
        else:
            raise IasideError(
                f"{ARGUMENT}[{i}] is a {type(img).__name__}; a list holds PIL images or image paths "
                "(stack arrays or tensors into one (N, C, H, W) batch instead)"
            )
    y = [PREDICTED] * len(images)
    if labels is not None and not predicted:
        y = class_indices(labels, len(images)).tolist()
    else:
        note(
            f"{ARGUMENT}: {len(images)} image(s) without labels: labels predicted by the model"
            if labels is None
            else f"{ARGUMENT}: given labels replaced by the model's top-1 (labels='predicted')"
        )
    items = [(img, label, name) for img, label, name in zip(images, y, names)]
    return ImageDataset(items, cfg, description=f"{len(images)} image(s) given to explain()")


def _is_batch(obj) -> bool:
    return isinstance(obj, (torch.Tensor, np.ndarray)) or (
        isinstance(obj, (list, tuple)) and all(isinstance(v, (str, os.PathLike, Image.Image)) for v in obj)
    )


def _is_label_batch(obj) -> bool:
    """Class indices, or something meant as them (checked by ``arrays.class_indices``); not a second image."""
    return (isinstance(obj, (torch.Tensor, np.ndarray)) and obj.ndim <= 2) or (
        isinstance(obj, (list, tuple)) and not any(isinstance(v, (torch.Tensor, np.ndarray, Image.Image)) for v in obj)
    )


# -- data sets and loaders ---------------------------------------------------------------------
def _yields_items(dataset: Dataset) -> bool:
    """A data set of ours (or any that already yields ImageItems)."""
    if isinstance(dataset, (ImageDataset, TensorImages, DatasetImages)):
        return True
    try:
        return len(dataset) > 0 and isinstance(dataset[0], ImageItem)  # type: ignore[arg-type]
    except Exception:
        return False
