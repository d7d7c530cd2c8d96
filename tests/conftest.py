"""Shared fixtures: tiny real networks and tiny real image folders, all made here."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from iaside.runtime import apply_malloc_fix

apply_malloc_fix()
torch.set_num_threads(2)


@pytest.fixture(autouse=True)
def compile_cache_in_tmp(tmp_path_factory, monkeypatch):
    """Compiled models go to a temporary cache folder, never to the user's (~/.cache/iaside)."""
    monkeypatch.setenv("IASIDE_CACHE", str(tmp_path_factory.mktemp("iaside-cache")))


def tiny_cnn(n_classes: int = 5, seed: int = 0, channels: int = 3) -> nn.Module:
    """A small real CNN with fixed random weights, (B, C, H, W) -> (B, n_classes)."""
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(channels, 8, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(8, 8, 3, stride=2, padding=1),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(2),
        nn.Flatten(),
        nn.Linear(32, n_classes),
    ).eval()


@pytest.fixture
def cnn() -> nn.Module:
    return tiny_cnn()


TINY_ARGS = ["--input-size", "32", "--resize-size", "32", "--bands", "3", "--bootstrap", "50", "--quiet"]
"""``iaside run`` options for the tiny model and images: 32×32 pixels, 3 bands (8 coalitions)."""


def write_image_folder(root, n_images: int, n_classes: int = 3, seed: int = 0):
    """root/<k mod n_classes>/<k>.png: smooth random 40×36 pictures (a 5×5 grid, bicubic)."""
    rng = np.random.default_rng(seed)
    for k in range(n_images):
        (root / str(k % n_classes)).mkdir(parents=True, exist_ok=True)
        small = (rng.random((5, 5, 3)) * 255).astype(np.uint8)
        Image.fromarray(small).resize((40, 36), Image.BICUBIC).save(root / str(k % n_classes) / f"{k}.png")
    return root


@pytest.fixture
def image_folder(tmp_path):
    """tmp/imgs/<class index>/<k>.png: 9 images in 3 class folders."""
    return write_image_folder(tmp_path / "imgs", 9)


@pytest.fixture
def scripted(tmp_path):
    """A TorchScript file of the tiny CNN with 3 classes and its preprocessing declared in a
    sidecar tiny.pt.json (as a user would, so runs print no fallback warning)."""
    path = tmp_path / "tiny.pt"
    torch.jit.script(tiny_cnn(n_classes=3)).save(str(path))
    return declare_preprocessing(path)


def declare_preprocessing(model_file, **fields):
    """Write the sidecar ``<model_file>.json`` (SCRIPTED_DATA_CONFIG, updated by ``fields``); returns model_file."""
    with open(f"{model_file}.json", "w") as fh:
        json.dump({**SCRIPTED_DATA_CONFIG, **fields}, fh)
    return model_file


@pytest.fixture
def one_thread():
    """One intra-op thread (as in child processes; immune to a busy machine)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


SCRIPTED_DATA_CONFIG = {
    "input_size": 224,
    "resize_size": 256,
    "interpolation": "bilinear",
    "mean": [0.485, 0.456, 0.406],
    "std": [0.229, 0.224, 0.225],
    "channels": 3,
}
"""What the ``scripted`` fixture declares in its sidecar (the run's flags may override parts)."""
