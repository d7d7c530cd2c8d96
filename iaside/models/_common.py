"""What every model source shares: the hand-over record, weight files, fingerprints."""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Mapping

import torch
from torch import nn

from ..config import DataConfig
from ..errors import IasideError

FINGERPRINT_CHARS = 16
CONFIG_FIELDS = tuple(f.name for f in fields(DataConfig))


@dataclass
class Built:
    """What a source loader hands the registry: the bare network (normalised input) and its defaults."""

    net: nn.Module
    data_config: DataConfig
    fingerprint: str
    class_names: list[str] | None = None
    extra: dict = field(default_factory=dict)


def existing_file(path: str | Path, what: str) -> Path:
    """``path`` as a Path, or an IasideError naming it when no such file exists."""
    p = Path(path).expanduser()
    if not p.is_file():
        raise IasideError(f"{what} {str(path)!r} does not exist or is not a file: check the path")
    return p


def reject_weights(weights: str | None, kind: str) -> None:
    """Refuse a separate weights file for a format that carries its own."""
    if weights is not None:
        raise IasideError(f"{kind} files carry their own weights; drop weights={weights!r} (--weights)")


def with_fields(config: DataConfig, changes: Mapping[str, Any] | None, culprit: str) -> DataConfig:
    """``config`` with DataConfig fields from ``changes`` replaced (None values ignored)."""
    unknown = sorted(set(changes or {}) - set(CONFIG_FIELDS))
    if unknown:
        raise IasideError(
            f"{culprit} has unknown data-config fields {unknown}; allowed: {', '.join(CONFIG_FIELDS)}"
        )
    return config.override(**(changes or {}))


def file_fingerprint(path: str | Path) -> str:
    """sha256 of a file's bytes, first 16 hex characters."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()[:FINGERPRINT_CHARS]


def state_fingerprint(net: nn.Module) -> str:
    """sha256 over the state_dict's keys and tensor bytes in key order, first 16 hex characters."""
    h = hashlib.sha256()
    for key, value in net.state_dict().items():
        if isinstance(value, torch.Tensor):
            h.update(key.encode())
            h.update(value.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()[:FINGERPRINT_CHARS]


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """A state_dict from a torch.save file: plain, or under a 'state_dict' / 'model' key."""
    p = existing_file(path, "weights file")
    try:
        obj = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as e:
        raise IasideError(
            f"weights file {str(p)!r} is not a torch state_dict ({e}); "
            "save one with torch.save(model.state_dict(), PATH)"
        ) from e
    for key in ("state_dict", "model"):
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            obj = obj[key]
    if not isinstance(obj, dict):
        raise IasideError(f"weights file {str(p)!r} holds a {type(obj).__name__}, not a state_dict")
    if obj and all(k.startswith("module.") for k in obj):
        obj = {k[len("module."):]: v for k, v in obj.items()}
    return obj


def load_weights(net: nn.Module, path: str | Path, what: str = "the model") -> None:
    """Load a state_dict file into ``net`` strictly; mismatches name the file and the first keys."""
    state = read_state_dict(path)
    own = net.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    shapes = [f"{k} {tuple(state[k].shape)} vs {tuple(own[k].shape)}" for k in own
              if k in state and hasattr(state[k], "shape") and state[k].shape != own[k].shape]
    if missing or unexpected or shapes:
        found = "; ".join(f"{name} {keys[:5]}" for name, keys in
                          (("missing", missing), ("unexpected", unexpected), ("wrong shape", shapes)) if keys)
        raise IasideError(
            f"weights file {str(path)!r} does not fit {what}: {found}; pass weights saved from this architecture"
        )
    net.load_state_dict(state)
