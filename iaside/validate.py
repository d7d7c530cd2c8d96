"""One check of what a run folder holds, before anything reads it.

``read_run_info`` (run.json), ``read_result_json`` (result.json), ``read_per_image``
(per_image.npz) and ``check_state_arrays`` (state.npz, through ``EngineState.load``) read
with size and depth limits (``json_fields.py``) and check types, shapes, the band count M and
finiteness where a number must be finite. Every failure is an ``IasideError`` naming the file
and the field. ``check_still_readable`` refuses to resume over data that changed. Re-exported
from here: the content checksum (``checksum.py``) and the refusal of meaningless settings
(``argument_checks.py``).
"""

from __future__ import annotations

import zipfile
import zlib
from pathlib import Path
from typing import Any

import numpy as np

from .argument_checks import check_command_arguments, check_run_arguments
from .checksum import CHECKSUM_KEY, content_checksum, edited_note
from .config import MAX_BANDS
from .errors import IasideError
from .json_fields import MAX_STRING_CHARS, Fields, fail, kind_of, read_json_file

__all__ = [  # the checksum and the argument checks stay importable from here
    "CHECKSUM_KEY",
    "check_command_arguments",
    "check_config",
    "check_result_dict",
    "check_run_arguments",
    "check_state_arrays",
    "check_still_readable",
    "content_checksum",
    "edited_note",
    "read_json_file",
    "read_per_image",
    "read_result_json",
    "read_run_info",
]

_CONFIG_TEXT = ("partition", "fill", "synthesis", "labels", "estimator", "draws")


def check_config(f: Fields, config: dict, field: str = "config") -> int:
    """The fields of an ExplainConfig dict that the tables and the store use; returns M."""
    m = f.integer(f.get(config, "bands", f"{field}.bands"), f"{field}.bands", low=1, high=MAX_BANDS)
    for key in _CONFIG_TEXT:
        if key in config:
            f.text(config[key], f"{field}.{key}", null=key == "draws")
    f.text(config.get("preset"), f"{field}.preset", null=True)
    for key in ("seed", "n_bootstrap"):
        if key in config:
            f.integer(config[key], f"{field}.{key}", low=0)
    for key in ("samples", "permutations", "coalitions"):
        f.integer(config.get(key), f"{field}.{key}", null=True, low=1)
    if "confidence" in config:
        f.number(config["confidence"], f"{field}.confidence", low=0.0, high=1.0)
    if "beta" in config:
        f.number(config["beta"], f"{field}.beta")
    if "clip" in config and not isinstance(config["clip"], bool):
        raise f.fail(f"{field}.clip", f"is {kind_of(config['clip'])}, expected true or false")
    return m


_VECTORS = ("phi", "sid", "shares")
_SCALARS = ("score", "score_signed")


def check_result_dict(d: Any, path: Path) -> int:
    """Raise IasideError on the first field of a parsed result.json that ``Result`` cannot
    use; returns the band count M."""
    f = Fields(path)
    if not isinstance(d, dict):
        raise f.fail("", f"holds {kind_of(d)}, not a result object")
    config = f.dict(d, "config", "config")
    model = f.dict(d, "model", "model")
    data = f.dict(d, "data", "data")
    f.dict(d, "meta", "meta")
    m = check_config(f, config)
    f.text(model.get("spec"), "model.spec", null=True)
    f.text(model.get("fingerprint"), "model.fingerprint", null=True)
    f.integer(model.get("num_classes"), "model.num_classes", null=True, low=1)
    f.text(data.get("spec"), "data.spec", null=True)
    f.source(data.get("source"), "data.source")
    f.integer(f.get(data, "n_images", "data.n_images"), "data.n_images", low=1)
    skipped = data.get("skipped", [])
    if not isinstance(skipped, list) or not all(isinstance(s, dict) for s in skipped):
        raise f.fail("data.skipped", "is not a list of {name, reason} objects")
    for k, s in enumerate(skipped):
        f.text(s.get("name"), f"data.skipped[{k}].name", limit=MAX_STRING_CHARS)
        f.text(s.get("reason"), f"data.skipped[{k}].reason", limit=MAX_STRING_CHARS)
    for key in _VECTORS:
        est = f.dict(d, key, key)
        for part in ("value", "low", "high"):
            # intervals are NaN without a bootstrap; shares are NaN where Σφ = 0
            finite = part == "value" and key != "shares"
            f.vector(f.get(est, part, f"{key}.{part}"), f"{key}.{part}", m, finite=finite)
    for key in _SCALARS:
        est = f.dict(d, key, key)
        for part in ("value", "low", "high"):
            f.number(f.get(est, part, f"{key}.{part}"), f"{key}.{part}", finite=part == "value")
    coalitions = d.get("coalitions")
    if coalitions is not None:
        if not isinstance(coalitions, list) or not coalitions:
            raise f.fail("coalitions", f"is {kind_of(coalitions)}, expected a list of coalition bit masks")
        for k, c in enumerate(coalitions):
            f.integer(c, f"coalitions[{k}]", low=0, high=2**m - 1)
    n_values = len(coalitions) if coalitions is not None else 2**m
    f.vector(f.get(d, "v_nats", "v_nats"), "v_nats", n_values)
    per_class = f.dict(d, "per_class", "per_class")
    for label, c in per_class.items():
        if not (label.isascii() and label.lstrip("-").isdigit()):
            raise f.fail(f"per_class.{label}", "is not keyed by a class index")
        if not isinstance(c, dict):
            raise f.fail(f"per_class.{label}", f"is {kind_of(c)}, expected an object")
        f.integer(f.get(c, "n", f"per_class.{label}.n"), f"per_class.{label}.n", low=1)
        f.vector(f.get(c, "phi", f"per_class.{label}.phi"), f"per_class.{label}.phi", m)
        f.vector(f.get(c, "sid", f"per_class.{label}.sid"), f"per_class.{label}.sid", m)
    f.number(f.get(d, "clean_accuracy", "clean_accuracy"), "clean_accuracy", null=True, low=0.0, high=1.0)
    f.number(f.get(d, "efficiency_gap", "efficiency_gap"), "efficiency_gap", finite=False)
    estimator = f.dict(d, "estimator", "estimator", optional=True)
    if estimator is not None:
        f.text(f.get(estimator, "name", "estimator.name"), "estimator.name")
    return m


def read_result_json(path: Path) -> tuple[dict, int]:
    """The checked content of a result.json and its band count M."""
    d = read_json_file(path, "result of a run", "rerun the analysis")
    return d, check_result_dict(d, path)


_PER_IMAGE = {  # name: (kind, trailing shape: "K" coalitions, "M" bands, or nothing; must be finite)
    "logp_nats": ("f", "K", True),
    "phi_per_image": ("f", "M", True),
    "label": ("i", None, False),
    "clean_top1": ("i", None, False),
    "clean_logp_nats": ("f", None, True),
    "index": ("i", None, False),
    "names": ("U", None, False),
}
_OPTIONAL_PER_IMAGE = ("clean_logp_nats",)
_KINDS = {"f": ("f",), "i": ("i", "u"), "U": ("U",)}
_KIND_NAMES = {"f": "float", "i": "integer", "U": "text"}


def _npz_headers(path: Path, fix: str) -> dict[str, tuple[np.dtype, tuple[int, ...]]]:
    """{array name: (dtype, shape)} read from the .npy headers inside an .npz (nothing decoded)."""
    try:
        with zipfile.ZipFile(path) as archive:
            headers = {}
            for member in archive.namelist():
                if not member.endswith(".npy"):
                    continue
                with archive.open(member) as fh:
                    version = np.lib.format.read_magic(fh)
                    read = (
                        np.lib.format.read_array_header_1_0
                        if version == (1, 0)
                        else np.lib.format.read_array_header_2_0
                    )
                    shape, _, dtype = read(fh)
                headers[member[:-4]] = (dtype, shape)
            return headers
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error) as err:
        raise fail(path, "", f"is damaged ({type(err).__name__}: {err})", fix) from None


def read_per_image(path: Path, n_images: int, m: int) -> dict[str, np.ndarray]:
    """The arrays of a per_image.npz, checked against the result's N images and M bands."""
    fix = f"delete {path.name} and rerun the same command to rewrite it from the saved state"
    if path.is_dir():
        raise fail(path, "", "is a folder, not the per-image arrays of the run", fix)
    if not path.is_file():
        raise fail(path, "", "is not a regular file", fix)
    headers = _npz_headers(path, fix)
    for name, (kind, trailing, _) in _PER_IMAGE.items():
        if name not in headers:
            if name in _OPTIONAL_PER_IMAGE:
                continue
            raise fail(path, name, "is missing", fix)
        dtype, shape = headers[name]
        if dtype.kind not in _KINDS[kind]:
            raise fail(path, name, f"has dtype {dtype}, expected {_KIND_NAMES[kind]}", fix)
        if trailing is None:
            ok, expected = shape == (n_images,), "(N,)"
        elif trailing == "M":
            ok, expected = shape == (n_images, m), "(N, M)"
        else:
            ok, expected = len(shape) == 2 and shape[0] == n_images and shape[1] >= 2, "(N, K)"
        if not ok:
            raise fail(
                path, name, f"has shape {shape}, expected {expected} with N = {n_images} images, M = {m} bands", fix
            )
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error) as err:
        raise fail(path, "", f"is damaged ({type(err).__name__}: {err})", fix) from None
    for name, (_, _, finite) in _PER_IMAGE.items():
        if finite and name in arrays and not np.isfinite(arrays[name]).all():
            raise fail(path, name, "holds NaN or infinite values", fix)
    return arrays


_STATE = {  # name: (integer?, 2-D?)
    "logp_nats": (False, True),
    "done": (True, False),
    "skipped": (True, False),
    "label": (True, False),
    "clean_top1": (True, False),
    "clean_logp_nats": (False, False),
}


def check_state_arrays(arrays: dict[str, np.ndarray], path: Path | str) -> None:
    """Raise IasideError unless ``arrays`` are a consistent EngineState: every field present
    (``skipped`` may be absent), (N, K) logp_nats, (N,) others, 0/1 flags, finite finished rows."""
    fix = "delete it to start the run over"
    for name, (integer, two_d) in _STATE.items():
        if name not in arrays:
            if name == "skipped":
                continue
            raise fail(path, name, "is missing: the file is damaged", fix)
        a = arrays[name]
        if a.dtype.kind not in (("i", "u") if integer else ("f",)):
            raise fail(path, name, f"has dtype {a.dtype}, expected {'integer' if integer else 'float'}", fix)
        if a.ndim != (2 if two_d else 1):
            raise fail(path, name, f"has shape {a.shape}, expected {'(N, K)' if two_d else '(N,)'}", fix)
    n = arrays["logp_nats"].shape[0]
    for name, a in arrays.items():
        if name in _STATE and a.shape[0] != n:
            raise fail(path, name, f"has {a.shape[0]} rows, logp_nats has {n}", fix)
    for name in ("done", "skipped"):
        if name in arrays and not np.isin(arrays[name], (0, 1)).all():
            raise fail(path, name, "holds values other than 0 and 1", fix)
    done = arrays["done"] == 1
    if not (np.isfinite(arrays["logp_nats"][done]).all() and np.isfinite(arrays["clean_logp_nats"][done]).all()):
        raise fail(path, "logp_nats", "holds NaN or infinite values in finished rows", fix)


def read_run_info(path: Path) -> dict:
    """The checked content of a run.json: identity {config, model, data, ...}, model, data and
    the image names, one per image."""
    fix = f"delete {path.parent} (or the file) to start over"
    d = read_json_file(path, "description of a run", fix)
    f = Fields(path, fix)
    if not isinstance(d, dict):
        raise f.fail("", f"holds {kind_of(d)}, not a run description")
    identity = f.dict(d, "identity", "identity")
    check_config(f, f.dict(identity, "config", "identity.config"), "identity.config")
    f.dict(identity, "model", "identity.model")
    ident_data = f.dict(identity, "data", "identity.data")
    n = f.integer(f.get(ident_data, "n_images", "identity.data.n_images"), "identity.data.n_images", low=1)
    model = f.dict(d, "model", "model")
    f.text(model.get("spec"), "model.spec", null=True)
    data = f.dict(d, "data", "data")
    f.text(data.get("spec"), "data.spec", null=True)
    f.source(data.get("source"), "data.source")
    names = f.get(d, "names", "names")
    if not isinstance(names, list) or len(names) != n or not all(isinstance(x, str) for x in names):
        raise f.fail("names", f"is not a list of {n} image names")
    return d


def check_still_readable(state: Any, bad: dict[int, str], names: list[str], folder: Path) -> None:
    """Refuse to resume a state whose finished images have since become unreadable: the data
    changed under the run (same name, same byte size), and its row would be both skipped and
    counted."""
    if state is None:
        return
    stale = [i for i in sorted(bad) if state.done[i] == 1]
    if stale:
        i = stale[0]
        more = f" (and {len(stale) - 1} more)" if len(stale) > 1 else ""
        raise IasideError(
            f"image {names[i]}{more} was analysed in {folder} but is now unreadable ({bad[i]}): the "
            "data changed since; restore it, or use another --out (or delete the folder) to start over"
        )
