"""The model wrapper every source returns: pixels in [0, 1] in, logits out."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
from torch import nn

from ..config import DataConfig
from .outputs import OUTPUTS, as_log_probs, unpack_scores


class Classifier(nn.Module):
    """Wrap a network so it takes un-normalised pixels.

    forward: (B, C, H, W) float in [0, 1] -> (B, K) logits. Normalisation
    ``(x - mean) / std`` happens here, after the band split, never in the data pipeline; the
    normalised input takes the network's floating dtype (half-precision networks); the output is
    unpacked (tuple, dict, HF ``.logits``) and, with ``outputs='probs'``, turned into log-probabilities.
    """

    mean: torch.Tensor
    std: torch.Tensor

    def __init__(
        self,
        net: nn.Module,
        mean: Sequence[float],
        std: Sequence[float],
        num_classes: int | None = None,
        class_names: Sequence[str] | None = None,
        name: str = "model",
        outputs: str = "logits",
    ) -> None:
        super().__init__()
        self.net = net
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1))
        self.num_classes = num_classes
        self.class_names = list(class_names) if class_names is not None else None
        self.name = name
        if outputs not in OUTPUTS:
            from ..errors import IasideError

            raise IasideError(f"--outputs {outputs!r} is not one of {', '.join(OUTPUTS)}")
        self.outputs = outputs

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        x = (pixels - self.mean.to(pixels.dtype)) / self.std.to(pixels.dtype)
        dtype = next((p.dtype for p in self.net.parameters() if p.is_floating_point()), x.dtype)
        if dtype != x.dtype:
            x = x.to(dtype)
        scores = unpack_scores(self.net(x))
        return as_log_probs(scores) if self.outputs == "probs" else scores


@dataclass
class LoadedModel:
    """What the registry returns: the wrapped model and the data config it expects."""

    model: Classifier
    data_config: DataConfig
    spec: str
    fingerprint: str
    source: str = ""
    extra: dict = field(default_factory=dict)
