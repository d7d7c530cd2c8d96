"""What every model source shares: the hand-over record, weight files, head sizes, fingerprints."""

from __future__ import annotations

import difflib
import hashlib
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..errors import IasideError

FINGERPRINT_CHARS = 16
Declared = tuple[Mapping[str, Any], str]
"""Data-config fields a model declares about itself, and where they were read (e.g. 'timm pretrained_cfg')."""


@dataclass
class Built:
    """What a source loader hands the registry: the bare network (normalised input), the data-config
    fields the model declares (lowest priority first; none: the fallback applies), class names."""

    net: nn.Module
    declared: list[Declared]
    fingerprint: str
    class_names: list[str] | None = None
    extra: dict = field(default_factory=dict)


def hub_cache_dir() -> Path:
    """The Hugging Face hub cache, read from the environment at call time (HF_HUB_CACHE, HF_HOME)."""
    env = os.environ
    home = env.get("HF_HOME") or os.path.join(env.get("XDG_CACHE_HOME") or "~/.cache", "huggingface")
    return Path(env.get("HF_HUB_CACHE") or os.path.join(home, "hub")).expanduser()


def hub_offline() -> bool:
    """True when HF_HUB_OFFLINE asks for no network (read at call time)."""
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "on", "yes", "true")


def suggest(name: str, known: Iterable[str]) -> str:
    """' (did you mean a, b?)' for close matches of a misspelt ``name``, or ''."""
    close = difflib.get_close_matches(name, list(known), n=3, cutoff=0.6)
    return f" (did you mean {', '.join(close)}?)" if close else ""


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
    """A state_dict from a ``.safetensors`` file or a torch.save file (plain, or under a
    'state_dict' / 'model' key; a DataParallel 'module.' prefix is dropped)."""
    p = existing_file(path, "weights file")
    try:
        if p.suffix == ".safetensors":
            from safetensors.torch import load_file

            obj: Any = load_file(str(p), device="cpu")
        else:
            obj = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as e:
        raise IasideError(
            f"weights file {str(p)!r} is not a torch state_dict or safetensors file ({e}); "
            "save one with torch.save(model.state_dict(), PATH)"
        ) from e
    for key in ("state_dict", "model"):
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            obj = obj[key]
    if not isinstance(obj, dict):
        raise IasideError(f"weights file {str(p)!r} holds a {type(obj).__name__}, not a state_dict")
    if obj and all(k.startswith("module.") for k in obj):
        obj = {k[len("module.") :]: v for k, v in obj.items()}
    return obj


def head_size(state: Mapping[str, torch.Tensor], head_key: str | None) -> int | None:
    """Classes of the head whose weight is ``state[head_key]`` (its first dimension), if present."""
    value = state.get(head_key) if head_key else None
    return int(value.shape[0]) if isinstance(value, torch.Tensor) and value.dim() >= 1 else None


def last_linear_key(net: nn.Module) -> str | None:
    """The state_dict key of the weight of ``net``'s last nn.Linear (its classification head)."""
    names = [name for name, module in net.named_modules() if isinstance(module, nn.Linear)]
    return f"{names[-1]}.weight" if names else None


def load_weights(
    net: nn.Module, path: str | Path, what: str = "the model", state: Mapping[str, torch.Tensor] | None = None
) -> None:
    """Load a state_dict file (or its already read ``state``) into ``net`` strictly; mismatches
    name the file and the first keys."""
    state = read_state_dict(path) if state is None else state
    own = net.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    shapes = [
        f"{k} {tuple(state[k].shape)} vs {tuple(own[k].shape)}"
        for k in own
        if k in state and hasattr(state[k], "shape") and state[k].shape != own[k].shape
    ]
    if missing or unexpected or shapes:
        found = "; ".join(
            f"{name} {keys[:5]}"
            for name, keys in (("missing", missing), ("unexpected", unexpected), ("wrong shape", shapes))
            if keys
        )
        raise IasideError(
            f"weights file {str(path)!r} does not fit {what}: {found}; pass weights saved from this architecture"
        )
    net.load_state_dict(state)
