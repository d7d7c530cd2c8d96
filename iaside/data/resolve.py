"""What ``explain`` accepts as data, opened as one data set: a spec or folder, or in-memory images."""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import torch

from ..config import DataConfig, ExplainConfig
from ..errors import IasideError


def resolve_data(data, cfg: DataConfig, config: ExplainConfig, labels_file: str | None, class_names):
    from .datasets import check_samples, open_dataset

    if isinstance(data, (str, os.PathLike)) and not os.path.isfile(data):
        labels = "predicted" if config.labels == "predicted" else labels_file
        return open_dataset(data, cfg, labels=labels, class_names=class_names, samples=config.samples, seed=config.seed)
    from .inputs import as_dataset

    check_samples(config.samples)
    if labels_file is not None:
        raise IasideError(
            f"labels={labels_file!r} labels the images of a folder; with in-memory data pass (images, labels) instead"
        )
    dataset: Any = as_dataset(data, cfg, predicted=config.labels == "predicted")
    if config.samples is not None and config.samples < len(dataset):
        dataset = dataset.subset(
            np.sort(np.random.default_rng(config.seed).choice(len(dataset), config.samples, replace=False))
        )
    return dataset


class _Probe(torch.utils.data.Dataset):
    """Decodes image i and reports (i, None) or (i, the reason it is unreadable)."""

    def __init__(self, dataset) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, i: int):
        try:
            self.dataset[i]
            return i, None
        except IasideError as err:
            return i, str(err)


def find_bad_images(dataset, num_workers: int = 0) -> dict[int, str]:
    """Decode every image once: {index: reason} for the unreadable ones (``--on-bad-image skip``)."""
    loader = torch.utils.data.DataLoader(_Probe(dataset), batch_size=None, num_workers=num_workers)
    bad = {int(i): reason for i, reason in loader if reason is not None}
    if len(bad) == len(dataset):
        raise IasideError(f"all {len(dataset)} images are unreadable; first: {next(iter(bad.values()))}")
    return bad
