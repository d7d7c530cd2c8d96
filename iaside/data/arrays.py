"""Pixels and labels given as arrays or tensors, checked and brought to one form: images
(N, C, H, W) from any accepted layout ((N, H, W, C), (N, H, W), one image (C, H, W), (H, W, C),
(H, W)), uint8 or float pixels in [0, 1] (anything else refused with a hint), labels (N,) int64
class indices (one-hot or negative ones refused)."""

from __future__ import annotations

import math

import numpy as np
import torch

from ..errors import IasideError

ARGUMENT = "data"
RANGE_SLACK = 1e-6
"""Float pixels may exceed [0, 1] by this much (rounding) before they are refused."""


def as_tensor(images, what: str) -> torch.Tensor:
    x = torch.from_numpy(np.ascontiguousarray(images)) if isinstance(images, np.ndarray) else images.detach().cpu()
    if x.dtype == torch.uint8 or x.is_floating_point():
        return x
    raise IasideError(
        f"{what}: pixels must be uint8 (0-255) or float in [0, 1], not {dtype_name(images)}; "
        "convert them (e.g. x.astype('float32') / 65535 for 16-bit images)"
    )


def to_nchw(x: torch.Tensor, what: str) -> tuple[torch.Tensor, str]:
    """(N, C, H, W) and the layout the input was read as."""
    if x.dim() == 2:
        return x[None, None], "one image H, W"
    if x.dim() == 3:
        if x.shape[0] in (1, 3):
            return x[None], "one image C, H, W"
        if x.shape[2] in (1, 3):
            return x.permute(2, 0, 1)[None], "one image H, W, C"
        return x[:, None], "N, H, W (grayscale)"
    if x.dim() == 4:
        if x.shape[1] not in (1, 3) and x.shape[3] in (1, 3):
            return x.permute(0, 3, 1, 2), "N, H, W, C"
        return x, "N, C, H, W"
    raise IasideError(
        f"{what}: expected images (N, C, H, W), (N, H, W, C), (N, H, W) or one image "
        f"(C, H, W), (H, W, C), (H, W); got {x.dim()} dimensions"
    )


def check_scale(x: torch.Tensor, what: str) -> list[str]:
    """[] for float pixels in [0, 1]; the /255 note for uint8; IasideError otherwise."""
    if x.dtype == torch.uint8:
        return ["rescaled to [0, 1] (/ 255)"]
    if x.numel():
        check_range(float(x.min()), float(x.max()), what)
    return []


def check_range(lo: float, hi: float, what: str) -> None:
    if not (math.isfinite(lo) and math.isfinite(hi)):
        raise IasideError(f"{what} holds NaN or infinite pixel values; remove or repair those images")
    if lo >= -RANGE_SLACK and hi <= 1 + RANGE_SLACK:
        return
    if lo < 0:
        hint = (
            "they look normalised: pass the pixels before normalisation (x * std + mean) and give the "
            "model's mean/std as data_config=DataConfig(mean=..., std=...)"
        )
    elif hi <= 255:
        hint = "they look like 0-255 values: pass x / 255 (or the uint8 tensor itself)"
    else:
        hint = "scale them to [0, 1]"
    raise IasideError(f"{what}: float pixel values span [{lo:.4g}, {hi:.4g}], outside [0, 1]; {hint}")


def class_indices(labels, n: int, what: str = f"{ARGUMENT} labels") -> torch.Tensor:
    """(n,) int64 class indices, or IasideError."""
    y = labels.detach().cpu().numpy() if isinstance(labels, torch.Tensor) else np.asarray(labels)
    if y.ndim == 2 and y.shape[0] == n and y.shape[1] > 1:
        raise IasideError(
            f"{what} have shape {tuple(y.shape)} (one-hot or scores?); pass class indices, e.g. labels.argmax(1)"
        )
    if y.ndim != 1 or y.shape[0] != n:
        raise IasideError(f"{what}: expected {n} class indices (shape ({n},)), got shape {tuple(y.shape)}")
    if y.dtype.kind not in "iu":
        raise IasideError(f"{what} are {y.dtype}; pass integer class indices (0..K-1)")
    if n and y.min() < 0:
        k = int(np.flatnonzero(y < 0)[0])
        raise IasideError(f"{what}: label {int(y[k])} at {k} is negative; labels are class indices 0..K-1")
    return torch.from_numpy(y.astype(np.int64))


def is_uint8(image) -> bool:
    return isinstance(image, (torch.Tensor, np.ndarray)) and image.dtype in (torch.uint8, np.uint8)


def dtype_name(x) -> str:
    return str(x.dtype).removeprefix("torch.")
