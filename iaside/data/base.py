"""What a data source yields: preprocessed pixels, a label and a name to blame on errors."""

from __future__ import annotations

from dataclasses import dataclass

import torch

PREDICTED = -1
"""Label value meaning 'use the model's own top-1 on the clean image'."""


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
