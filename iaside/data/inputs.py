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
the data set's ``description``.
"""

from __future__ import annotations

import hashlib
import math
import os
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch.utils.data import BatchSampler, DataLoader, Dataset, IterableDataset, RandomSampler, SequentialSampler
from torch.utils.data._utils.collate import default_collate

from ..config import DataConfig
from ..errors import IasideError
from ..log import note
from .base import PREDICTED, ImageItem
from .datasets import ImageDataset
from .tensors import TensorImages
from .transforms import load_image, preprocess

ARGUMENT = "data"
RANGE_SLACK = 1e-6
"""Float pixels may exceed [0, 1] by this much (rounding) before they are refused."""
IMAGE_KEYS = ("image", "img", "pixel_values", "pixels")
LABEL_KEYS = ("label", "labels", "target", "y")


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
        return _loader(data, cfg, predicted)
    if isinstance(data, IterableDataset):
        return _materialise(data, f"IterableDataset {type(data).__name__}", predicted, batched=False, cfg=cfg)
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
    what = f"{ARGUMENT} ({kind} {tuple(images.shape)} {_dtype_name(images)})"
    x, layout = _to_nchw(_as_tensor(images, what), what)
    said = [f"read as {layout}"] if layout != "N, C, H, W" else []
    said += _check_scale(x, what)
    y = None if labels is None else _labels(labels, x.shape[0])
    if predicted or y is None:
        y = None
        said.append(
            "labels predicted by the model (its top-1 on each clean image)"
            if labels is None
            else "given labels replaced by the model's top-1 (labels='predicted')"
        )
    description = f"{kind}{tuple(images.shape)} {_dtype_name(images)}" + "".join(f", {s}" for s in said)
    if said:
        note(f"{ARGUMENT}: {kind} {tuple(images.shape)} {_dtype_name(images)}: {'; '.join(said)}")
    return TensorImages(x, y, [f"{ARGUMENT}[{i}]" for i in range(x.shape[0])], description)


def _as_tensor(images, what: str) -> torch.Tensor:
    x = torch.from_numpy(np.ascontiguousarray(images)) if isinstance(images, np.ndarray) else images.detach().cpu()
    if x.dtype == torch.uint8 or x.is_floating_point():
        return x
    raise IasideError(
        f"{what}: pixels must be uint8 (0-255) or float in [0, 1], not {_dtype_name(images)}; "
        "convert them (e.g. x.astype('float32') / 65535 for 16-bit images)"
    )


def _to_nchw(x: torch.Tensor, what: str) -> tuple[torch.Tensor, str]:
    """(N, C, H, W) and the layout the input was read as."""
    if x.dim() == 2:
        return x[None, None], "one image H, W"
    if x.dim() == 3:
        if x.shape[0] in (1, 3):
            return x[None], "one image C, H, W"
        if x.shape[2] in (1, 3):
            return x.permute(2, 0, 1)[None], "one image H, W, C"
        return x[:, None], "N, H, W (grayscale)"
    if x.dim() == 4:
        if x.shape[1] not in (1, 3) and x.shape[3] in (1, 3):
            return x.permute(0, 3, 1, 2), "N, H, W, C"
        return x, "N, C, H, W"
    raise IasideError(
        f"{what}: expected images (N, C, H, W), (N, H, W, C), (N, H, W) or one image "
        f"(C, H, W), (H, W, C), (H, W); got {x.dim()} dimensions"
    )


def _check_scale(x: torch.Tensor, what: str) -> list[str]:
    """[] for float pixels in [0, 1]; the /255 note for uint8; IasideError otherwise."""
    if x.dtype == torch.uint8:
        return ["rescaled to [0, 1] (/ 255)"]
    if x.numel():
        _check_range(float(x.min()), float(x.max()), what)
    return []


def _check_range(lo: float, hi: float, what: str) -> None:
    if not (math.isfinite(lo) and math.isfinite(hi)):
        raise IasideError(f"{what} holds NaN or infinite pixel values; remove or repair those images")
    if lo >= -RANGE_SLACK and hi <= 1 + RANGE_SLACK:
        return
    if lo < 0:
        hint = (
            "they look normalised: pass the pixels before normalisation (x * std + mean) and give the "
            "model's mean/std as data_config=DataConfig(mean=..., std=...)"
        )
    elif hi <= 255:
        hint = "they look like 0-255 values: pass x / 255 (or the uint8 tensor itself)"
    else:
        hint = "scale them to [0, 1]"
    raise IasideError(f"{what}: float pixel values span [{lo:.4g}, {hi:.4g}], outside [0, 1]; {hint}")


def _labels(labels, n: int, what: str = f"{ARGUMENT} labels") -> torch.Tensor:
    """(n,) int64 class indices, or IasideError."""
    y = labels.detach().cpu().numpy() if isinstance(labels, torch.Tensor) else np.asarray(labels)
    if y.ndim == 2 and y.shape[0] == n and y.shape[1] > 1:
        raise IasideError(
            f"{what} have shape {tuple(y.shape)} (one-hot or scores?); pass class indices, e.g. labels.argmax(1)"
        )
    if y.ndim != 1 or y.shape[0] != n:
        raise IasideError(f"{what}: expected {n} class indices (shape ({n},)), got shape {tuple(y.shape)}")
    if y.dtype.kind not in "iu":
        raise IasideError(f"{what} are {y.dtype}; pass integer class indices (0..K-1)")
    if n and y.min() < 0:
        k = int(np.flatnonzero(y < 0)[0])
        raise IasideError(f"{what}: label {int(y[k])} at {k} is negative; labels are class indices 0..K-1")
    return torch.from_numpy(y.astype(np.int64))


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
        y = _labels(labels, len(images)).tolist()
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
    """Class indices, or something meant as them (checked by ``_labels``); not a second image."""
    return (isinstance(obj, (torch.Tensor, np.ndarray)) and obj.ndim <= 2) or (
        isinstance(obj, (list, tuple)) and not any(isinstance(v, (torch.Tensor, np.ndarray, Image.Image)) for v in obj)
    )


def _dtype_name(x) -> str:
    return str(x.dtype).removeprefix("torch.")


# -- data sets and loaders ---------------------------------------------------------------------
def _yields_items(dataset: Dataset) -> bool:
    """A data set of ours (or any that already yields ImageItems)."""
    if isinstance(dataset, (ImageDataset, TensorImages, DatasetImages)):
        return True
    try:
        return len(dataset) > 0 and isinstance(dataset[0], ImageItem)  # type: ignore[arg-type]
    except Exception:
        return False


def _split(item: Any, where: str) -> tuple[Any, Any]:
    """(image, label or None) of one data-set item: (image, label), image alone, or a dict."""
    if isinstance(item, dict):
        image = next((item[k] for k in IMAGE_KEYS if k in item), None)
        if image is None:
            raise IasideError(
                f"{where} is a dict without an image ({', '.join(IMAGE_KEYS)}); it has {', '.join(map(str, item))}"
            )
        return image, next((item[k] for k in LABEL_KEYS if k in item), None)
    if isinstance(item, (tuple, list)):
        if len(item) == 2:
            return item[0], item[1]
        if len(item) == 1:
            return item[0], None
        raise IasideError(f"{where} has {len(item)} parts; yield (image, label) or the image alone")
    return item, None


def _label(value: Any, where: str) -> int:
    """One item's label as a class index, or IasideError."""
    if isinstance(value, torch.Tensor) and value.numel() == 1:
        value = value.item()
    elif isinstance(value, np.ndarray) and value.size == 1:
        value = value.reshape(()).item()
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise IasideError(f"{where}: label {value!r} is not an integer class index")
    if value < 0:
        raise IasideError(f"{where}: label {int(value)} is negative; labels are class indices 0..K-1")
    return int(value)


class DatasetImages(Dataset):
    """A user's map-style data set, read item by item: (image, label), the image alone, or a
    dict. Tensor and array images are taken at their size (all the size of item 0); PIL
    images and paths are decoded and resized by ``cfg``. The kind of item 0 (uint8 or float,
    labelled or not) holds for every item."""

    def __init__(
        self,
        dataset,
        cfg: DataConfig,
        *,
        predicted: bool = False,
        indices: Sequence[int] | None = None,
        what: str | None = None,
        said: bool = False,
    ) -> None:
        try:
            n = len(dataset)
        except TypeError as err:
            raise IasideError(
                f"{ARGUMENT}: {type(dataset).__name__} has no length ({err}); pass a map-style "
                "Dataset, or wrap it in a DataLoader"
            ) from None
        self.dataset, self.cfg, self.predicted = dataset, cfg, predicted
        self.indices = list(range(n)) if indices is None else [int(i) for i in indices]
        self.what = what or f"Dataset {type(dataset).__name__}"
        self.names = [f"{ARGUMENT}[{j}]" for j in self.indices]
        self.class_names = None
        self.min_side = 1
        self._fingerprint: str | None = None
        if not self.indices:
            raise IasideError(f"{ARGUMENT}: {self.what} is empty")
        try:
            first = self.dataset[self.indices[0]]
        except (KeyError, TypeError) as err:
            raise IasideError(
                f"{ARGUMENT}: {type(dataset).__name__} cannot be read by position ({ARGUMENT}[0] raised "
                f"{type(err).__name__}: {err}); pass a Dataset whose [i] is (image, label)"
            ) from None
        image, label = _split(first, self.names[0])
        self.uint8 = _is_uint8(image)
        self.labelled = label is not None and not predicted
        self.labels_kind = "given" if self.labelled else "predicted"
        self.shape: tuple[int, ...] | None = None
        if not isinstance(image, (Image.Image, str, os.PathLike)):
            self.shape = tuple(self[0].pixels.shape)
        said_now = ["uint8 rescaled to [0, 1] (/ 255)"] if self.uint8 else []
        if not self.labelled:
            said_now.append(
                "items without labels: labels predicted by the model"
                if label is None
                else "given labels replaced by the model's top-1 (labels='predicted')"
            )
        self.description = f"{self.what} ({n} items)" + "".join(f", {s}" for s in said_now)
        if said_now and not said:
            note(f"{ARGUMENT}: {self.what}: {'; '.join(said_now)}")

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int) -> ImageItem:
        i = range(len(self))[i]
        where = self.names[i]
        image, label = _split(self.dataset[self.indices[i]], where)
        if isinstance(image, (str, os.PathLike)):
            try:
                image = load_image(image, self.cfg.channels)
            except IasideError as err:
                raise IasideError(f"{where}: {err}") from None
        if isinstance(image, Image.Image):
            if min(image.size) < self.min_side:
                raise IasideError(
                    f"{where} is {image.size[0]}x{image.size[1]} pixels, smaller than {self.min_side} "
                    "on a side (2 per band); use fewer bands or leave the image out"
                )
            pixels = preprocess(image, self.cfg)
        elif isinstance(image, (torch.Tensor, np.ndarray)):
            pixels = self._pixels(image, where)
        else:
            raise IasideError(
                f"{where}: the image is a {type(image).__name__}; yield a tensor, a numpy array, a PIL image or a path"
            )
        if self.labelled:
            if label is None:
                raise IasideError(f"{where} has no label but item 0 has one; label every item or none")
            label = _label(label, where)
        return ImageItem(pixels, label if self.labelled else PREDICTED, i, where)

    def _pixels(self, image, where: str) -> torch.Tensor:
        if _is_uint8(image) != self.uint8:
            raise IasideError(
                f"{where} is {_dtype_name(image)} but item 0 is {'uint8' if self.uint8 else 'float'}; "
                "give every image the same pixel type"
            )
        x = _as_tensor(image, where)
        if x.dim() not in (2, 3):
            raise IasideError(f"{where}: one image is (C, H, W), (H, W, C) or (H, W); got shape {tuple(x.shape)}")
        x = _to_nchw(x, where)[0][0]
        if self.uint8:
            x = x.to(torch.float32).div_(255.0)
        else:
            x = x.to(torch.float32)
            _check_range(float(x.min()), float(x.max()), where)
        if self.shape is not None and tuple(x.shape) != self.shape:
            raise IasideError(
                f"{where} has shape {tuple(x.shape)} but item 0 has {self.shape}; give images of one size "
                "(resize them in the data set's transform)"
            )
        return x.contiguous()

    def fingerprint(self) -> str:
        """sha256 (16 hex) over every item's pixels and label (one pass over the data set; an
        unreadable item contributes its error, which the run itself reports)."""
        if self._fingerprint is None:
            h = hashlib.sha256(self.cfg.to_dict().__repr__().encode())
            for i in range(len(self)):
                try:
                    item = self[i]
                    h.update(item.pixels.numpy().tobytes())
                    h.update(str(item.label).encode())
                except IasideError as err:
                    h.update(str(err).encode())
            self._fingerprint = h.hexdigest()[:16]
        return self._fingerprint

    def subset(self, indices) -> DatasetImages:
        chosen = [self.indices[range(len(self))[int(i)]] for i in indices]
        return DatasetImages(
            self.dataset,
            self.cfg,
            predicted=self.predicted,
            indices=chosen,
            what=f"{self.what} [{len(chosen)} of {len(self)}]",
            said=True,
        )


def _is_uint8(image) -> bool:
    return isinstance(image, (torch.Tensor, np.ndarray)) and image.dtype in (torch.uint8, np.uint8)


def _loader(loader: DataLoader, cfg: DataConfig, predicted: bool) -> Dataset:
    """A DataLoader: its data set read item by item when the loader yields exactly its items
    (default collation, every item once); otherwise its batches, gathered in memory."""
    whole = isinstance(loader.sampler, SequentialSampler) or (
        isinstance(loader.sampler, RandomSampler)
        and not loader.sampler.replacement
        and loader.sampler.num_samples == len(loader.dataset)  # type: ignore[arg-type]
    )
    if (
        not isinstance(loader.dataset, IterableDataset)
        and whole
        and loader.collate_fn is default_collate
        and type(loader.batch_sampler) is BatchSampler
        and not loader.drop_last
    ):
        return DatasetImages(
            loader.dataset, cfg, predicted=predicted, what=f"DataLoader over {type(loader.dataset).__name__}"
        )
    return _materialise(
        iter(loader),
        f"DataLoader over {type(loader.dataset).__name__}",
        predicted,
        batched=loader.batch_size is not None,
        cfg=cfg,
    )


def _materialise(items, what: str, predicted: bool, *, batched: bool, cfg: DataConfig) -> TensorImages:
    """Every batch (or item) of an iterable, gathered as TensorImages."""
    images: list[torch.Tensor] = []
    labels: list[Any] = []
    for k, item in enumerate(items):
        where = f"{ARGUMENT} {'batch' if batched else 'item'} {k}"
        image, label = _split(item, where)
        if isinstance(image, Image.Image):
            image = preprocess(image, cfg)
        elif isinstance(image, (list, tuple)) and image and all(isinstance(v, Image.Image) for v in image):
            image = torch.stack([preprocess(v, cfg) for v in image])
        x = _as_tensor(image, where)
        if (not batched and x.dim() in (2, 3)) or x.dim() == 4:
            x = _to_nchw(x, where)[0]
        else:
            raise IasideError(
                f"{where}: expected {'images (B, C, H, W)' if batched else 'one image (C, H, W)'}, "
                f"got shape {tuple(x.shape)}"
            )
        if images and (x.shape[1:] != images[0].shape[1:] or x.dtype != images[0].dtype):
            raise IasideError(
                f"{where} is {_dtype_name(x)} {tuple(x.shape[1:])} per image but the first is "
                f"{_dtype_name(images[0])} {tuple(images[0].shape[1:])}; give images of one size and type"
            )
        if k > 0 and (label is None) != (not labels):
            raise IasideError(
                f"{where}: some {'batches' if batched else 'items'} have labels and some not; label every image or none"
            )
        images.append(x)
        if label is not None:
            labels.append(_labels(label if batched else [_label(label, where)], x.shape[0], f"{where} labels"))
    if not images:
        raise IasideError(f"{ARGUMENT}: {what} yielded nothing")
    x = torch.cat(images)
    what = f"{what} ({x.shape[0]} images)"
    said = _check_scale(x, f"{ARGUMENT} ({what})")
    y = torch.cat(labels) if labels and not predicted else None
    if y is None:
        said.append(
            "labels predicted by the model"
            if not labels
            else "given labels replaced by the model's top-1 (labels='predicted')"
        )
    if said:
        note(f"{ARGUMENT}: {what}: {'; '.join(said)}")
    return TensorImages(x, y, [f"{ARGUMENT}[{i}]" for i in range(x.shape[0])], what + "".join(f", {s}" for s in said))
