"""In-memory images as a data set: for the Python API and tests."""
from __future__ import annotations

import hashlib

import torch
from torch.utils.data import Dataset

from ..errors import IasideError
from .base import PREDICTED, ImageItem


class TensorImages(Dataset):
    """Images (N, C, H, W) float in [0, 1] with labels (N,) int, or None for predicted labels."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor | None = None, names: list[str] | None = None):
        if images.dim() != 4:
            raise IasideError(f"images must be (N, C, H, W), got shape {tuple(images.shape)}")
        self.images = images.detach().to(torch.float32).cpu()
        n = self.images.shape[0]
        if labels is not None and len(labels) != n:
            raise IasideError(f"{len(labels)} labels for {n} images")
        self.labels = [int(v) for v in labels] if labels is not None else [PREDICTED] * n
        self.labels_kind = "given" if labels is not None else "predicted"
        self.names = names or [f"tensor[{i}]" for i in range(n)]
        self.class_names = None
        self.description = f"tensor{tuple(self.images.shape)}"

    def __len__(self) -> int:
        return self.images.shape[0]

    def __getitem__(self, i: int) -> ImageItem:
        return ImageItem(self.images[i], self.labels[i], i, self.names[i])

    def fingerprint(self) -> str:
        h = hashlib.sha256(self.images.numpy().tobytes())
        h.update(str(self.labels).encode())
        return h.hexdigest()[:16]

    def subset(self, indices) -> "TensorImages":
        idx = torch.as_tensor(list(indices), dtype=torch.long)
        labels = None if self.labels_kind == "predicted" else torch.tensor(self.labels)[idx]
        return TensorImages(self.images[idx], labels, [self.names[i] for i in idx.tolist()])
