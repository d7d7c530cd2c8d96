"""Data sources (folders, labels CSVs, bundled samples) yielding (C, H, W) pixels in [0, 1]."""

from .base import PREDICTED, ImageItem
from .datasets import ImageDataset, check_labels, open_dataset
from .transforms import load_image, preprocess

__all__ = [
    "PREDICTED",
    "ImageDataset",
    "ImageItem",
    "check_labels",
    "load_image",
    "open_dataset",
    "preprocess",
]
