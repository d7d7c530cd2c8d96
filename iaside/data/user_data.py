"""A user's data set or loader read as ImageItems: a map-style ``Dataset`` item by item
(``DatasetImages``: (image, label), the image alone, or a dict), a ``DataLoader`` through its
data set when it yields exactly its items, otherwise (and an ``IterableDataset``) its batches
gathered in memory as ``TensorImages``."""

from __future__ import annotations

import hashlib
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
from .arrays import ARGUMENT, as_tensor, check_range, check_scale, class_indices, dtype_name, is_uint8, to_nchw
from .base import PREDICTED, ImageItem
from .tensors import TensorImages
from .transforms import load_image, preprocess

IMAGE_KEYS = ("image", "img", "pixel_values", "pixels")
LABEL_KEYS = ("label", "labels", "target", "y")


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
        self.uint8 = is_uint8(image)
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
        self.description = f"{self.what} ({len(self.indices)} items)" + "".join(f", {s}" for s in said_now)
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
        if is_uint8(image) != self.uint8:
            raise IasideError(
                f"{where} is {dtype_name(image)} but item 0 is {'uint8' if self.uint8 else 'float'}; "
                "give every image the same pixel type"
            )
        x = as_tensor(image, where)
        if x.dim() not in (2, 3):
            raise IasideError(f"{where}: one image is (C, H, W), (H, W, C) or (H, W); got shape {tuple(x.shape)}")
        x = to_nchw(x, where)[0][0]
        if self.uint8:
            x = x.to(torch.float32).div_(255.0)
        else:
            x = x.to(torch.float32)
            check_range(float(x.min()), float(x.max()), where)
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


def read_loader(loader: DataLoader, cfg: DataConfig, predicted: bool) -> Dataset:
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
        and loader.batch_sampler.sampler is loader.sampler  # not a batch sampler of the user's own
        and not loader.drop_last
    ):
        return DatasetImages(
            loader.dataset, cfg, predicted=predicted, what=f"DataLoader over {type(loader.dataset).__name__}"
        )
    return materialise(
        iter(loader),
        f"DataLoader over {type(loader.dataset).__name__}",
        predicted,
        batched=loader.batch_sampler is not None,  # batch_size is None under a user's batch_sampler
        cfg=cfg,
    )


def _decoded(image: Any, cfg: DataConfig, where: str) -> Image.Image:
    """A PIL image as it is, a path decoded at ``cfg.channels`` (its errors naming ``where``)."""
    if isinstance(image, Image.Image):
        return image
    try:
        return load_image(image, cfg.channels)
    except IasideError as err:
        raise IasideError(f"{where}: {err}") from None


def materialise(items, what: str, predicted: bool, *, batched: bool, cfg: DataConfig) -> TensorImages:
    """Every batch (or item) of an iterable, gathered as TensorImages."""
    images: list[torch.Tensor] = []
    labels: list[Any] = []
    for k, item in enumerate(items):
        where = f"{ARGUMENT} {'batch' if batched else 'item'} {k}"
        paths = isinstance(item, (list, tuple)) and bool(item) and all(isinstance(v, (str, os.PathLike)) for v in item)
        image, label = (item, None) if batched and paths else _split(item, where)  # default_collate keeps paths a list
        if isinstance(image, (Image.Image, str, os.PathLike)):
            image = preprocess(_decoded(image, cfg, where), cfg)
        elif (
            isinstance(image, (list, tuple))
            and image
            and all(isinstance(v, (Image.Image, str, os.PathLike)) for v in image)
        ):
            image = torch.stack([preprocess(_decoded(v, cfg, where), cfg) for v in image])
        elif not isinstance(image, (torch.Tensor, np.ndarray)):
            hint = (
                "a tensor or numpy array of images, or a list of PIL images or paths"
                if batched
                else "a tensor, a numpy array, a PIL image or a path"
            )
            raise IasideError(
                f"{where}: the image{'s are' if batched else ' is'} a {type(image).__name__}; yield {hint}"
            )
        x = as_tensor(image, where)
        if (not batched and x.dim() in (2, 3)) or x.dim() == 4:
            x = to_nchw(x, where)[0]
        else:
            raise IasideError(
                f"{where}: expected {'images (B, C, H, W)' if batched else 'one image (C, H, W)'}, "
                f"got shape {tuple(x.shape)}"
            )
        if images and (x.shape[1:] != images[0].shape[1:] or x.dtype != images[0].dtype):
            raise IasideError(
                f"{where} is {dtype_name(x)} {tuple(x.shape[1:])} per image but the first is "
                f"{dtype_name(images[0])} {tuple(images[0].shape[1:])}; give images of one size and type"
            )
        if k > 0 and (label is None) != (not labels):
            raise IasideError(
                f"{where}: some {'batches' if batched else 'items'} have labels and some not; label every image or none"
            )
        images.append(x)
        if label is not None:
            labels.append(class_indices(label if batched else [_label(label, where)], x.shape[0], f"{where} labels"))
    if not images:
        raise IasideError(f"{ARGUMENT}: {what} yielded nothing")
    x = torch.cat(images)
    what = f"{what} ({x.shape[0]} images)"
    said = check_scale(x, f"{ARGUMENT} ({what})")
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
