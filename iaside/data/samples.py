"""The bundled sample sets behind ``samples:NAME``: the labelled images shipped with foolbox
(imagenet, cifar10, cifar100, mnist, fashion-mnist; files PREFIX_INDEX_LABEL.ext) and the
unlabelled photos of scikit-image and scikit-learn (``samples:photos``)."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

from ..errors import IasideError
from ..install import pip_hint
from .base import PREDICTED, Items

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


def bundled(name: str, labels: str | None) -> tuple[Items, list[str] | None, str]:
    """Items, class names and description of the bundled sample set ``samples:name``."""
    if labels not in (None, "predicted"):
        raise IasideError(
            f"--labels {labels} does not apply to samples:{name}: its labels are built in"
            " (pass --labels predicted to use the model's own predictions instead)"
        )
    if name == "photos":
        return photos()
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


def photos() -> tuple[Items, None, str]:
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
