"""``torchscript:PATH``: a model saved with ``torch.jit.save``."""
from __future__ import annotations

import torch

from ..config import DataConfig
from ..errors import IasideError
from ._common import Built, existing_file, file_fingerprint, reject_weights


def load_torchscript(
    path: str, *, weights: str | None, device: torch.device, num_classes: int | None
) -> Built:
    """A TorchScript archive loaded onto ``device``; ImageNet DataConfig unless overridden."""
    reject_weights(weights, "TorchScript")
    p = existing_file(path, "TorchScript file")
    try:
        net = torch.jit.load(str(p), map_location=device)
    except (RuntimeError, ValueError) as e:
        raise IasideError(
            f"{str(p)!r} is not a TorchScript archive ({e}); save one with torch.jit.save"
        ) from e
    return Built(net, DataConfig(), file_fingerprint(p), extra={"path": str(p)})
