"""Image sources: class folders, a flat folder with a labels CSV, bundled sample images.

``ImageDataset`` decodes (source, label, name) triples lazily; ``open_dataset`` makes one from a
folder (files found by ``scan.py``, labels read by ``labels.py``) or ``samples:NAME``
(``samples.py``).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable
from pathlib import Path

import numpy as np
from PIL import Image
from torch.utils.data import Dataset

from ..config import DataConfig
from ..errors import IasideError
from .base import PREDICTED, ImageItem, Items, Source
from .labels import csv_items, first_names, folder_labels
from .samples import bundled
from .scan import IMAGE_EXTENSIONS, image_files
from .transforms import check_resized_size, load_image, preprocess


class ImageDataset(Dataset):
    """Map-style data set over (source, label, name) triples, decoded lazily in ``__getitem__``.

    A source is a file path or an in-memory PIL image; ``self[i]`` is an ImageItem with pixels
    (C, H, W) float32 in [0, 1] preprocessed by ``cfg``. ``labels`` may hold PREDICTED.
    """

    def __init__(
        self,
        items: Iterable[tuple[Source | os.PathLike, int, str]],
        cfg: DataConfig,
        *,
        class_names: list[str] | None = None,
        description: str = "",
    ) -> None:
        items = list(items)
        self.sources: list[Source] = [s if isinstance(s, Image.Image) else os.fspath(s) for s, _, _ in items]
        self.labels: list[int] = [int(label) for _, label, _ in items]
        self.names: list[str] = [name for _, _, name in items]
        self.cfg = cfg
        self.class_names = class_names
        self.description = description
        self.labels_kind = "predicted" if all(label == PREDICTED for label in self.labels) else "given"
        self.min_side = 1  # smallest source side accepted; the engine sets 2·M

    def __len__(self) -> int:
        return len(self.sources)

    def __getitem__(self, i: int) -> ImageItem:
        i = range(len(self))[i]
        source = self.sources[i]
        name = f"image {self.names[i]!r}"
        img = (
            source
            if isinstance(source, Image.Image)
            else load_image(source, self.cfg.channels, check_size=lambda w, h: check_resized_size(w, h, self.cfg, name))
        )
        if min(img.size) < self.min_side:
            raise IasideError(
                f"image {self.names[i]!r} is {img.size[0]}x{img.size[1]} pixels, smaller than {self.min_side} on a "
                f"side (2 per band); use fewer --bands or remove the image"
            )
        try:
            pixels = preprocess(img, self.cfg, name=name)
        except MemoryError:
            raise IasideError(
                f"image {self.names[i]!r} ({img.size[0]}x{img.size[1]} pixels) needs more memory "
                "to resize than is free; downscale it first"
            ) from None
        return ImageItem(pixels, self.labels[i], i, self.names[i])

    def __repr__(self) -> str:
        return f"ImageDataset({self.description!r}, n={len(self)}, labels_kind={self.labels_kind!r})"

    def fingerprint(self) -> str:
        """sha256 (16 hex digits) of the sorted (name, size, label) triples and the DataConfig;
        size is the file size in bytes, or a digest of an in-memory image's pixels."""
        triples = sorted(
            (name, _size_key(source), label) for source, label, name in zip(self.sources, self.labels, self.names)
        )
        payload = json.dumps({"items": triples, "cfg": self.cfg.to_dict()}, sort_keys=True)
        return hashlib.sha256(payload.encode()).hexdigest()[:16]

    def subset(self, indices: Iterable[int]) -> ImageDataset:
        """The images at ``indices`` (in that order), renumbered 0..len-1."""
        idx = [range(len(self))[int(i)] for i in indices]
        return ImageDataset(
            [(self.sources[i], self.labels[i], self.names[i]) for i in idx],
            self.cfg,
            class_names=self.class_names,
            description=f"{self.description} [{len(idx)} of {len(self)}]",
        )


def check_samples(samples: int | None) -> None:
    """Refuse a sample size below 1 (None: every image), for a folder and in-memory data alike."""
    if samples is not None and samples < 1:
        raise IasideError(f"samples={samples}: pass a positive number of images, or leave it out")


def open_dataset(
    spec: str | os.PathLike,
    cfg: DataConfig,
    *,
    labels: str | None = None,
    class_names: list[str] | None = None,
    samples: int | None = None,
    seed: int = 0,
) -> ImageDataset:
    """Open a folder or ``samples:NAME`` as an ImageDataset.

    labels: None (class sub-folders named by index, class name or ImageNet wnid), "sorted"
    (folder i in sorted order = class i), "predicted" (every label PREDICTED) or a CSV path
    of filename,label lines. class_names: the model's class names. samples: draw that many
    images without replacement (numpy default_rng(seed)), kept in data-set order.
    """
    spec = os.fspath(spec)
    check_samples(samples)
    if spec.startswith("samples:"):
        items, own_names, description = bundled(spec.removeprefix("samples:"), labels)
    else:
        items, own_names, description = _folder(spec, labels, class_names)
    if labels == "predicted":
        items = [(source, PREDICTED, name) for source, _, name in items]
    data = ImageDataset(items, cfg, class_names=class_names or own_names, description=description)
    if samples is None or samples >= len(data):
        return data
    data = data.subset(np.sort(np.random.default_rng(seed).choice(len(data), samples, replace=False)))
    data.description += f" (seed {seed})"
    return data


def check_labels(dataset: ImageDataset, num_classes: int) -> None:
    """Raise IasideError on the first label outside [0, num_classes) other than PREDICTED."""
    for name, label in zip(dataset.names, dataset.labels):
        if label != PREDICTED and not 0 <= label < num_classes:
            raise IasideError(
                f"image {name} has label {label}, but the model has {num_classes} classes"
                f" (0..{num_classes - 1}); fix the folder names or labels CSV, or pass --labels predicted"
            )


def _folder(spec: str, labels: str | None, class_names: list[str] | None) -> tuple[Items, list[str] | None, str]:
    """Items, class names (folder names for labels="sorted") and description of a folder."""
    root = Path(spec).expanduser()
    if not root.exists():
        raise IasideError(
            f"data path {spec} does not exist; pass a folder of images, samples:imagenet or samples:photos"
        )
    if not root.is_dir():
        raise IasideError(f"data path {spec} is a file; pass the folder that holds the images")
    files, walked = image_files(root)
    if not files:
        raise IasideError(f"no images ({', '.join(IMAGE_EXTENSIONS)}) under {root}")
    if labels == "predicted":
        items: Items = [(root / f, PREDICTED, f) for f in files]
        return items, None, f"{root} ({len(files)} images, labels predicted)"
    if labels not in (None, "sorted"):
        return csv_items(root, files, Path(labels).expanduser(), class_names)
    folders = sorted(walked)
    loose = [f for f in files if "/" not in f]
    if not folders:
        raise IasideError(
            f"{root} holds images but no class sub-folders; pass --labels FILE.csv"
            " (lines filename,label) or --labels predicted"
        )
    if loose:
        raise IasideError(
            f"{root} has class sub-folders but also loose images ({first_names(loose)});"
            " move them into a class folder, or pass --labels predicted"
        )
    if labels == "sorted":
        index, own_names = {c: i for i, c in enumerate(folders)}, folders
    else:
        index, own_names = folder_labels(root, folders, class_names), None
    items = [(root / f, index[f.split("/", 1)[0]], f) for f in files]
    return items, own_names, f"{root} ({len(files)} images in {len(folders)} class folders)"


def _size_key(source: Source) -> str:
    """File size in bytes, or a digest of an in-memory image's mode, size and pixels."""
    if isinstance(source, Image.Image):
        return hashlib.sha256(f"{source.mode}{source.size}".encode() + source.tobytes()).hexdigest()
    try:
        return str(os.path.getsize(source))
    except OSError:  # a broken link: refused when read, counted here as unreadable
        return "unreadable"
