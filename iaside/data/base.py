"""What a data source yields: preprocessed pixels, a label and a name to blame on errors."""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
from PIL import Image

PREDICTED = -1
"""Label value meaning 'use the model's own top-1 on the clean image'."""

Source = str | Image.Image
"""Where an image of a folder or sample set comes from: a file path or an in-memory PIL image."""
Items = list[tuple[Source | os.PathLike, int, str]]
"""(source, label, name) triples: what an ImageDataset reads."""


@dataclass
class ImageItem:
    """One image, ready for the band split.

    pixels: (C, H, W) float32 in [0, 1]; label: class index in the model's output, or
    PREDICTED; index: position in the data set (0..N-1); name: file or sample name.
    """

    pixels: torch.Tensor
    label: int
    index: int
    name: str
