"""Which files of a folder are its images: scanning that cannot loop or hang (each real folder
read once, links followed), hidden files and run output folders left out."""

from __future__ import annotations

import os
from pathlib import Path

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".gif")
RUN_MARKER = "run.json"
"""A folder holding this file is a run's output folder: never part of a data set."""


def image_files(root: Path) -> tuple[list[str], set[str]]:
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
