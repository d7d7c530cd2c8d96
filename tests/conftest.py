"""Shared fixtures: tiny real networks and tiny real image folders, all made here."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from iaside.runtime import apply_malloc_fix

apply_malloc_fix()
torch.set_num_threads(2)


def tiny_cnn(n_classes: int = 5, seed: int = 0, channels: int = 3) -> nn.Module:
    """A small real CNN with fixed random weights, (B, C, H, W) -> (B, n_classes)."""
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(channels, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 3, stride=2, padding=1), nn.ReLU(),
        nn.AdaptiveAvgPool2d(2), nn.Flatten(), nn.Linear(32, n_classes),
    ).eval()


@pytest.fixture
def cnn() -> nn.Module:
    return tiny_cnn()


@pytest.fixture
def image_folder(tmp_path):
    """tmp/imgs/<class index>/k.png: 3 classes × 3 images of 40×36 smooth random pictures."""
    rng = np.random.default_rng(0)
    root = tmp_path / "imgs"
    for label in range(3):
        (root / str(label)).mkdir(parents=True)
        for k in range(3):
            base = rng.random((5, 5, 3))
            img = Image.fromarray((base * 255).astype(np.uint8)).resize((40, 36), Image.BICUBIC)
            img.save(root / str(label) / f"{k}.png")
    return root
