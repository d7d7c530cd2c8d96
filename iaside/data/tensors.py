"""In-memory images as a data set: for the Python API and tests."""

from __future__ import annotations

import hashlib

import torch
from torch.utils.data import Dataset

from ..errors import IasideError
from .base import PREDICTED, ImageItem

_HASH_CHUNK = 256
"""Images hashed at a time by ``fingerprint`` (bounds the float32 copy of a uint8 store)."""


class TensorImages(Dataset):
    """Images (N, C, H, W) with labels (N,) int, or None for predicted labels.

    Float images are taken as pixels in [0, 1]; uint8 images are kept as they are (a quarter of
    the memory) and each one is read as ``uint8 / 255`` in float32.
    """

    def __init__(
        self,
        images: torch.Tensor,
        labels: torch.Tensor | None = None,
        names: list[str] | None = None,
        description: str | None = None,
    ):
        if images.dim() != 4:
            raise IasideError(f"images must be (N, C, H, W), got shape {tuple(images.shape)}")
        images = images.detach().cpu()
        self.images = images if images.dtype == torch.uint8 else images.to(torch.float32)
        n = self.images.shape[0]
        if labels is not None and len(labels) != n:
            raise IasideError(f"{len(labels)} labels for {n} images")
        self.labels = [int(v) for v in labels] if labels is not None else [PREDICTED] * n
        self.labels_kind = "given" if labels is not None else "predicted"
        self.names = names or [f"tensor[{i}]" for i in range(n)]
        self.class_names = None
        self.description = description or f"tensor{tuple(self.images.shape)}"

    def __len__(self) -> int:
        return self.images.shape[0]

    @staticmethod
    def _pixels(images: torch.Tensor) -> torch.Tensor:
        return images.to(torch.float32).div_(255.0) if images.dtype == torch.uint8 else images

    def __getitem__(self, i: int) -> ImageItem:
        return ImageItem(self._pixels(self.images[i]), self.labels[i], i, self.names[i])

    def fingerprint(self) -> str:
        """sha256 (16 hex) of the float32 pixels and the labels: the same images given as uint8
        or as float ``/ 255`` have the same fingerprint."""
        h = hashlib.sha256()
        for k in range(0, len(self), _HASH_CHUNK):
            h.update(self._pixels(self.images[k : k + _HASH_CHUNK]).contiguous().numpy().tobytes())
        h.update(str(self.labels).encode())
        return h.hexdigest()[:16]

    def subset(self, indices) -> TensorImages:
        idx = torch.as_tensor(list(indices), dtype=torch.long)
        labels = None if self.labels_kind == "predicted" else torch.tensor(self.labels)[idx]
        return TensorImages(
            self.images[idx],
            labels,
            [self.names[i] for i in idx.tolist()],
            f"{self.description} [{len(idx)} of {len(self)}]",
        )
