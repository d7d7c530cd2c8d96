"""Measured robustness of models on one data set: corruption errors and adversarial accuracy (docs/method.md §8).

``evaluate_robustness`` streams the images in chunks: each chunk is corrupted once per
(corruption, severity) and every model given sees the same corrupted pixels, so a zoo of
models that share a data config pays for the corruptions once. One model's numbers become a
``RobustnessReport`` (``robustness/report.py``, re-exported here with ``build_report``).
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from ..data.base import PREDICTED
from ..errors import IasideError
from .attacks import Attack, check_differentiable, pgd
from .corruptions import check_severities, corrupt_images, corruption_names, quantize
from .report import ADVERSARIAL_CSV, CE_CSV, ERRORS_CSV, ROBUSTNESS_JSON, RobustnessReport, build_report

__all__ = [  # the report's names stay importable from here
    "ADVERSARIAL_CSV",
    "CE_CSV",
    "ERRORS_CSV",
    "ROBUSTNESS_JSON",
    "RobustnessReport",
    "build_report",
    "evaluate_robustness",
    "images_fingerprint",
    "predict",
    "source_fingerprint",
    "stack_dataset",
]


def images_fingerprint(images: torch.Tensor, labels: np.ndarray) -> str:
    """sha256 (16 hex) of the 8-bit pixels and labels: what makes two reports comparable."""
    import hashlib

    h = hashlib.sha256((quantize(images) * 255).round().to(torch.uint8).numpy().tobytes())
    h.update(np.asarray(labels, np.int64).tobytes())
    return h.hexdigest()[:16]


def source_fingerprint(names, labels) -> str:
    """sha256 (16 hex) of the image names and labels in order: the same images, whatever the model's
    resolution (models with different input sizes see the same files at their own size)."""
    import hashlib

    h = hashlib.sha256(json.dumps([list(map(str, names)), np.asarray(labels, np.int64).tolist()]).encode())
    return h.hexdigest()[:16]


def stack_dataset(dataset) -> tuple[torch.Tensor, np.ndarray, list[str]]:
    """All images of a data set of ImageItems: (N, C, H, W) float32, labels (N,) int64 (PREDICTED = −1), names."""
    items = [dataset[i] for i in range(len(dataset))]
    if not items:
        raise IasideError("the data set is empty")
    shapes = {tuple(it.pixels.shape) for it in items}
    if len(shapes) > 1:
        raise IasideError(f"images have different shapes {sorted(shapes)[:3]}; set --input-size so they match")
    return (
        torch.stack([it.pixels for it in items]),
        np.array([it.label for it in items], np.int64),
        [it.name for it in items],
    )


@torch.no_grad()
def predict(model: nn.Module, images: torch.Tensor, batch_size: int = 64) -> np.ndarray:
    """Top-1 class of every image, (N, C, H, W) -> (N,) int64."""
    out = [model(images[i : i + batch_size]).argmax(dim=1).cpu() for i in range(0, images.shape[0], batch_size)]
    return torch.cat(out).numpy().astype(np.int64)


def evaluate_robustness(
    models: Mapping[str, nn.Module],
    images: torch.Tensor,
    labels: np.ndarray,
    *,
    corruptions: Sequence[str] = (),
    severities: Sequence[int] = (1, 2, 3, 4, 5),
    attacks: Sequence[Attack] = (),
    seed: int = 0,
    batch_size: int = 64,
    chunk: int = 256,
    show_progress: bool = False,
) -> dict[str, dict[str, Any]]:
    """Corruption errors and adversarial accuracies of several models on the same images.

    images: (N, C, H, W) in [0, 1] (quantised to 8 bits here, so clean and corrupted images
    are on the same grid); labels: (N,) int64, or all PREDICTED for each model's own clean
    top-1. Returns {name: {clean_error, errors (C, S), adversarial [...], labels (N,),
    seconds {clean, model (its passes on corrupted images), corruptions_shared (making the
    corrupted images, once for all models), one entry per attack}}}.
    """
    corruptions = corruption_names(list(corruptions))
    severities = check_severities(severities) if corruptions else tuple(severities)
    images = quantize(images.detach().to(torch.float32))
    n = images.shape[0]
    labels = np.asarray(labels, np.int64)
    if labels.shape != (n,):
        raise IasideError(f"{labels.shape[0]} labels for {n} images")
    predicted = bool((labels == PREDICTED).all())
    if (labels == PREDICTED).any() and not predicted:
        raise IasideError("some images have labels and some do not: label all of them or pass --labels predicted")
    device = images.device
    out: dict[str, dict[str, Any]] = {}
    for name, model in models.items():
        t0 = time.perf_counter()
        clean = predict(model, images, batch_size)
        own = clean if predicted else labels
        nc = getattr(model, "num_classes", None)
        if nc is not None and own.max(initial=0) >= nc:
            raise IasideError(f"labels go up to {own.max()} but {name} has {nc} classes; check the labels")
        out[name] = {
            "labels": own,
            "clean_error": float(np.mean(clean != own)),
            "wrong": np.zeros((len(corruptions), len(severities)), np.int64),
            "seconds": {"clean": time.perf_counter() - t0, "model": 0.0},
        }
    t_corrupt = 0.0
    steps = [(ci, si) for ci in range(len(corruptions)) for si in range(len(severities))]
    progress = _progress(len(steps) * ((n + chunk - 1) // chunk), "corruptions", show_progress)
    for start in range(0, n, chunk):
        stop = min(start + chunk, n)
        for ci, si in steps:
            t = time.perf_counter()
            corrupted = corrupt_images(
                images[start:stop], corruptions[ci], severities[si], seed=seed, indices=range(start, stop)
            ).to(device)
            t_corrupt += time.perf_counter() - t
            for name, model in models.items():
                t = time.perf_counter()
                pred = predict(model, corrupted, batch_size)
                out[name]["wrong"][ci, si] += int(np.sum(pred != out[name]["labels"][start:stop]))
                out[name]["seconds"]["model"] += time.perf_counter() - t
            progress.update(1)
    progress.close()
    for name, model in models.items():
        r = out[name]
        r["errors"] = r.pop("wrong") / n
        r["seconds"]["corruptions_shared"] = t_corrupt
        r["adversarial"] = []
        if attacks:
            check_differentiable(model, images)
        target = torch.as_tensor(r["labels"], device=device)
        for attack in attacks:
            t = time.perf_counter()
            adv = pgd(model, images, target, attack, seed=seed, batch_size=batch_size)
            accuracy = float(np.mean(predict(model, adv, batch_size) == r["labels"]))
            r["adversarial"].append({**attack.to_dict(), "accuracy": accuracy})
            r["seconds"][attack.label] = time.perf_counter() - t
    return out


def _progress(total: int, what: str, show: bool):
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=what, disable=not show, leave=False)
