"""``torchscript:PATH``: a model saved with ``torch.jit.save``."""

from __future__ import annotations

import json

import torch

from ..errors import IasideError
from ._common import Built, Declared, existing_file, file_fingerprint, reject_weights

EXTRA_FILE = "data_config.json"
"""The archive entry (``torch.jit.save(m, path, _extra_files={EXTRA_FILE: json})``) that declares the data config."""


def declared_attribute(net, where: str) -> list[Declared]:
    """A ``DATA_CONFIG`` attribute (a dict, or a JSON string for TorchScript) as a declared layer."""
    value = getattr(net, "DATA_CONFIG", None)
    if value is None:
        return []
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError as e:
            raise IasideError(f"{where}.DATA_CONFIG is not valid JSON ({e})") from e
    if not isinstance(value, dict):
        raise IasideError(f"{where}.DATA_CONFIG is a {type(value).__name__}; make it a dict of DataConfig fields")
    return [(value, f"{where}.DATA_CONFIG")]


def load_torchscript(path: str, *, weights: str | None, device: torch.device, num_classes: int | None) -> Built:
    """A TorchScript archive loaded onto ``device``. It declares its data config in an archive
    entry ``data_config.json`` or a ``DATA_CONFIG`` attribute (dict or JSON string)."""
    reject_weights(weights, "TorchScript")
    p = existing_file(path, "TorchScript file")
    files = {EXTRA_FILE: ""}
    try:
        net = torch.jit.load(str(p), map_location=device, _extra_files=files)
    except (RuntimeError, ValueError) as e:
        raise IasideError(f"{str(p)!r} is not a TorchScript archive ({e}); save one with torch.jit.save") from e
    declared = declared_attribute(net, p.name)
    if files[EXTRA_FILE]:
        try:
            declared.append((json.loads(files[EXTRA_FILE]), f"{p.name}:{EXTRA_FILE}"))
        except ValueError as e:
            raise IasideError(f"{p}:{EXTRA_FILE} is not valid JSON ({e})") from e
    return Built(net, declared, file_fingerprint(p), extra={"path": str(p)})
