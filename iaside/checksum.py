"""The content checksum that seals a result when it is saved: sha256 of result.json's canonical
JSON (without the checksum itself) and of its per-image arrays; ``edited_note`` says when a
result loaded later differs from what its run wrote."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np

CHECKSUM_KEY = "checksum"


def _digest_arrays(arrays: dict[str, np.ndarray]) -> str:
    h = hashlib.sha256()
    for key in sorted(arrays):
        a = np.ascontiguousarray(arrays[key])
        h.update(f"{key}|{a.dtype.str}|{a.shape}|".encode())
        h.update(a.tobytes())
    return h.hexdigest()


def content_checksum(doc: dict, per_image: dict[str, np.ndarray] | None) -> dict[str, str | None]:
    """sha256 of a result's JSON content (canonical form, without the checksum itself) and of
    its per-image arrays (None when there are none)."""
    body = {k: v for k, v in doc.items() if k != CHECKSUM_KEY}
    canonical = json.dumps(
        json.loads(json.dumps(body, allow_nan=True)),
        sort_keys=True,
        allow_nan=True,
        separators=(",", ":"),
        ensure_ascii=True,
    )
    return {
        "json": hashlib.sha256(canonical.encode()).hexdigest(),
        "per_image": _digest_arrays(per_image) if per_image else None,
    }


def edited_note(doc: dict, per_image: dict[str, np.ndarray] | None, folder: Path | str) -> str | None:
    """A one-line note when the result in ``folder`` differs from what its run wrote (a result
    saved before checksums existed, having none, is taken as it is); None when it is intact."""
    saved = doc.get(CHECKSUM_KEY)
    if saved is None:
        return None
    now = content_checksum(doc, per_image)
    changed = []
    if not isinstance(saved, dict) or saved.get("json") != now["json"]:
        changed.append("result.json")
    if per_image and isinstance(saved, dict) and saved.get("per_image") not in (None, now["per_image"]):
        changed.append("per_image.npz")
    if not changed:
        return None
    return (
        f"{folder}: {' and '.join(changed)} {'was' if len(changed) == 1 else 'were'} edited after the run "
        "wrote them (content checksum differs): these are not the run's own numbers"
    )
