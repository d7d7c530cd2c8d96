"""Loading a run's images chunk by chunk, each with its partner's pixels for the partner fill."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from ..data.base import ImageItem
from ..errors import IasideError


class ChunkImages(Dataset):
    """Item b is a whole chunk: its images and, for the partner fill, their partners' pixels.

    Each image is decoded once per chunk, even when it is also another image's partner (with
    the processing order, an image's partner is the next image, so usually in the same chunk).
    """

    def __init__(self, dataset: Dataset, chunks: list[list[int]], partner: np.ndarray | None) -> None:
        self.dataset, self.chunks, self.partner = dataset, chunks, partner

    def __len__(self) -> int:
        return len(self.chunks)

    def _read(self, i: int) -> ImageItem:
        try:
            return self.dataset[i]
        except IasideError as err:
            raise IasideError(
                f"{err}; or rerun with --on-bad-image skip to leave it out (finished images are kept)"
            ) from err

    def __getitem__(self, b: int):
        wanted = self.chunks[b]
        items: dict[int, ImageItem] = {i: self._read(i) for i in wanted}
        partners = None
        if self.partner is not None:
            for p in (int(self.partner[i]) for i in wanted):
                if p not in items:
                    items[p] = self._read(p)
            partners = torch.stack([items[int(self.partner[i])].pixels for i in wanted])
        own = [items[i] for i in wanted]
        return (
            torch.stack([it.pixels for it in own]),
            torch.tensor([it.label for it in own], dtype=torch.int64),
            torch.tensor([it.index for it in own], dtype=torch.int64),
            [it.name for it in own],
            partners,
        )


def chunk_loader(
    dataset: Dataset,
    indices: Sequence[int],
    images_per_chunk: int,
    partner: np.ndarray | None,
    num_workers: int,
    pin_memory: bool,
) -> DataLoader:
    """Chunks of ``images_per_chunk`` images in the order of ``indices``, decoded by workers."""
    indices = [int(i) for i in indices]
    chunks = [indices[k : k + images_per_chunk] for k in range(0, len(indices), images_per_chunk)]
    return DataLoader(
        ChunkImages(dataset, chunks, partner),
        batch_size=None,
        shuffle=False,
        num_workers=num_workers,
        pin_memory=pin_memory,
    )
