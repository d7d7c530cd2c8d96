"""One check of what a run folder holds, before anything reads it.

``read_run_info`` (run.json), ``read_result_json`` (result.json), ``read_per_image``
(per_image.npz) and ``check_state_arrays`` (state.npz, through ``EngineState.load``) read
with size and depth limits and check types, shapes, the band count M and finiteness where a
number must be finite. Every failure is an ``IasideError`` naming the file and the field.
``content_checksum`` seals a result when it is saved; ``Result.load`` reports a result edited
since (``edited_note``). ``check_run_arguments`` refuses settings whose output would be
meaningless (one band, no bootstrap, negative seeds or worker counts).
"""

from __future__ import annotations

import hashlib
import json
import math
import zipfile
import zlib
from pathlib import Path
from typing import Any, Literal, overload

import numpy as np

from .errors import IasideError

MAX_JSON_BYTES = 128 * 2**20
"""Largest run.json or result.json read (a result of M = 16 bands over 21 000 classes is ~20 MB)."""
MAX_DEPTH = 16
"""Deepest nesting of lists and dicts accepted in a JSON file of a run (results need 5)."""
MAX_TEXT_CHARS = 4096
"""Longest model spec, data description or data source: every table and the store print them."""
MAX_STRING_CHARS = 65536
"""Longest string anywhere else in a run's JSON (skip reasons, versions, paths)."""
MAX_BANDS = 64
"""Most bands a saved result may claim (the sampling estimators reach M = 32 and more)."""

CHECKSUM_KEY = "checksum"


def _fail(path: Path | str, field: str, problem: str, fix: str = "rerun the analysis") -> IasideError:
    where = f"{path}: {field}" if field else str(path)
    return IasideError(f"{where} {problem}; {fix}")


def read_json_file(path: Path, what: str, fix: str) -> Any:
    """The parsed JSON of ``path``: a regular UTF-8 file of at most MAX_JSON_BYTES, nested at
    most MAX_DEPTH deep. ``what`` names the file's role in errors, ``fix`` says what to do."""
    path = Path(path)
    try:
        info = path.stat()
    except OSError as err:
        raise _fail(path, "", f"cannot be read ({err.strerror or err})", fix) from None
    if path.is_dir():
        raise _fail(path, "", f"is a folder, not the {what}", fix)
    if not path.is_file():
        raise _fail(path, "", f"is not a regular file (the {what} must be one)", fix)
    if info.st_size > MAX_JSON_BYTES:
        raise _fail(
            path,
            "",
            f"is {info.st_size / 2**20:.0f} MiB, over the {MAX_JSON_BYTES // 2**20} MiB a {what} can hold",
            fix,
        )
    try:
        text = path.read_bytes().decode("utf-8")
    except OSError as err:
        raise _fail(path, "", f"cannot be read ({err.strerror or err})", fix) from None
    except UnicodeDecodeError as err:
        raise _fail(path, "", f"is not UTF-8 text (byte {err.start})", fix) from None
    try:
        doc = json.loads(text)
    except RecursionError:
        raise _fail(path, "", f"is nested deeper than {MAX_DEPTH} levels", fix) from None
    except ValueError as err:
        raise _fail(path, "", f"is not valid JSON ({err})", fix) from None
    _check_depth_and_strings(doc, path)
    return doc


def _check_depth_and_strings(doc: Any, path: Path) -> None:
    """Iteratively: no container deeper than MAX_DEPTH, no string over MAX_STRING_CHARS."""
    stack = [(doc, 1, "")]
    while stack:
        node, depth, where = stack.pop()
        if isinstance(node, str):
            if len(node) > MAX_STRING_CHARS:
                raise _fail(
                    path, where or "(top level)", f"is a string of {len(node)} characters (at most {MAX_STRING_CHARS})"
                )
            continue
        if not isinstance(node, (dict, list)):
            continue
        if depth > MAX_DEPTH:
            raise _fail(path, where or "(top level)", f"is nested deeper than {MAX_DEPTH} levels")
        items = node.items() if isinstance(node, dict) else enumerate(node)
        for key, value in items:
            if isinstance(key, str) and len(key) > MAX_STRING_CHARS:
                raise _fail(path, where or "(top level)", f"has a key of {len(key)} characters")
            stack.append((value, depth + 1, f"{where}.{key}" if where else str(key)))


class _Fields:
    """Typed access to the fields of one JSON document, each failure naming file and field."""

    def __init__(self, path: Path, fix: str = "rerun the analysis") -> None:
        self.path, self.fix = path, fix

    def fail(self, field: str, problem: str) -> IasideError:
        return _fail(self.path, field, problem, self.fix)

    def get(self, d: dict, key: str, field: str, *, optional: bool = False) -> Any:
        if key not in d:
            if optional:
                return None
            raise self.fail(field, "is missing")
        return d[key]

    @overload
    def dict(self, d: dict, key: str, field: str, *, optional: Literal[False] = ...) -> dict: ...
    @overload
    def dict(self, d: dict, key: str, field: str, *, optional: bool) -> dict | None: ...
    def dict(self, d: dict, key: str, field: str, *, optional: bool = False) -> dict | None:
        value = self.get(d, key, field, optional=optional)
        if value is None and optional:
            return None
        if not isinstance(value, dict):
            raise self.fail(field, f"is {_kind(value)}, expected an object")
        return value

    def number(
        self,
        value: Any,
        field: str,
        *,
        finite: bool = True,
        null: bool = False,
        low: float | None = None,
        high: float | None = None,
    ) -> float | None:
        if value is None and null:
            return None
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise self.fail(field, f"is {_kind(value)}, expected a number")
        if finite and not math.isfinite(value):
            raise self.fail(field, f"is {value}, expected a finite number")
        if (low is not None and value < low) or (high is not None and value > high):
            raise self.fail(field, f"is {value}, outside [{low}, {high}]")
        return float(value)

    @overload
    def integer(
        self, value: Any, field: str, *, null: Literal[False] = ..., low: int | None = None, high: int | None = None
    ) -> int: ...
    @overload
    def integer(
        self, value: Any, field: str, *, null: bool, low: int | None = None, high: int | None = None
    ) -> int | None: ...
    def integer(
        self, value: Any, field: str, *, null: bool = False, low: int | None = None, high: int | None = None
    ) -> int | None:
        if value is None and null:
            return None
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.fail(field, f"is {_kind(value)}, expected an integer")
        if (low is not None and value < low) or (high is not None and value > high):
            raise self.fail(field, f"is {value}, outside [{low}, {'∞' if high is None else high}]")
        return value

    def text(self, value: Any, field: str, *, null: bool = False, limit: int = MAX_TEXT_CHARS) -> str | None:
        if value is None and null:
            return None
        if not isinstance(value, str):
            raise self.fail(field, f"is {_kind(value)}, expected a string")
        if len(value) > limit:
            raise self.fail(field, f"is {len(value)} characters long (at most {limit})")
        return value

    def source(self, value: Any, field: str) -> None:
        """Where the images came from: a structured record {kind, spec | path, relative_to_run,
        labels, samples, seed, type} (``api.source_record``), a string (run folders written
        before the record), or null."""
        if value is None or isinstance(value, str):
            self.text(value, field, null=True)
            return
        if not isinstance(value, dict):
            raise self.fail(field, f"is {_kind(value)}, expected an object or a string")
        if value.get("kind") not in ("samples", "folder", "in-memory"):
            raise self.fail(f"{field}.kind", "is not one of samples, folder, in-memory")
        for key in ("spec", "path", "relative_to_run", "labels", "type"):
            self.text(value.get(key), f"{field}.{key}", null=True)
        for key in ("samples", "seed"):
            self.integer(value.get(key), f"{field}.{key}", null=True)

    def vector(self, value: Any, field: str, length: int | None, *, finite: bool = True) -> list:
        if not isinstance(value, list):
            raise self.fail(field, f"is {_kind(value)}, expected a list of numbers")
        if length is not None and len(value) != length:
            raise self.fail(
                field,
                f"has {len(value)} entries, expected {length} (one per band: M = {length})"
                if field.split(".")[-1] in ("value", "low", "high", "phi", "sid")
                else f"has {len(value)} entries, expected {length}",
            )
        for k, x in enumerate(value):
            self.number(x, f"{field}[{k}]", finite=finite)
        return value


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    return {bool: "a boolean", str: "a string", list: "a list", dict: "an object"}.get(
        type(value), f"a {type(value).__name__}" if not isinstance(value, (int, float)) else f"the number {value}"
    )


_CONFIG_TEXT = ("partition", "fill", "synthesis", "labels", "estimator", "draws")


def check_config(f: _Fields, config: dict, field: str = "config") -> int:
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
        raise f.fail(f"{field}.clip", f"is {_kind(config['clip'])}, expected true or false")
    return m


_VECTORS = ("phi", "sid", "shares")
_SCALARS = ("score", "score_signed")


def check_result_dict(d: Any, path: Path) -> int:
    """Raise IasideError on the first field of a parsed result.json that ``Result`` cannot
    use; returns the band count M."""
    f = _Fields(path)
    if not isinstance(d, dict):
        raise f.fail("", f"holds {_kind(d)}, not a result object")
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
            raise f.fail("coalitions", f"is {_kind(coalitions)}, expected a list of coalition bit masks")
        for k, c in enumerate(coalitions):
            f.integer(c, f"coalitions[{k}]", low=0, high=2**m - 1)
    n_values = len(coalitions) if coalitions is not None else 2**m
    f.vector(f.get(d, "v_nats", "v_nats"), "v_nats", n_values)
    per_class = f.dict(d, "per_class", "per_class")
    for label, c in per_class.items():
        if not (label.isascii() and label.lstrip("-").isdigit()):
            raise f.fail(f"per_class.{label}", "is not keyed by a class index")
        if not isinstance(c, dict):
            raise f.fail(f"per_class.{label}", f"is {_kind(c)}, expected an object")
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
        raise _fail(path, "", f"is damaged ({type(err).__name__}: {err})", fix) from None


def read_per_image(path: Path, n_images: int, m: int) -> dict[str, np.ndarray]:
    """The arrays of a per_image.npz, checked against the result's N images and M bands."""
    fix = f"delete {path.name} and rerun the same command to rewrite it from the saved state"
    if path.is_dir():
        raise _fail(path, "", "is a folder, not the per-image arrays of the run", fix)
    if not path.is_file():
        raise _fail(path, "", "is not a regular file", fix)
    headers = _npz_headers(path, fix)
    for name, (kind, trailing, _) in _PER_IMAGE.items():
        if name not in headers:
            if name in _OPTIONAL_PER_IMAGE:
                continue
            raise _fail(path, name, "is missing", fix)
        dtype, shape = headers[name]
        if dtype.kind not in _KINDS[kind]:
            raise _fail(path, name, f"has dtype {dtype}, expected {_KIND_NAMES[kind]}", fix)
        if trailing is None:
            ok, expected = shape == (n_images,), "(N,)"
        elif trailing == "M":
            ok, expected = shape == (n_images, m), "(N, M)"
        else:
            ok, expected = len(shape) == 2 and shape[0] == n_images and shape[1] >= 2, "(N, K)"
        if not ok:
            raise _fail(
                path, name, f"has shape {shape}, expected {expected} with N = {n_images} images, M = {m} bands", fix
            )
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error) as err:
        raise _fail(path, "", f"is damaged ({type(err).__name__}: {err})", fix) from None
    for name, (_, _, finite) in _PER_IMAGE.items():
        if finite and name in arrays and not np.isfinite(arrays[name]).all():
            raise _fail(path, name, "holds NaN or infinite values", fix)
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
            raise _fail(path, name, "is missing: the file is damaged", fix)
        a = arrays[name]
        if a.dtype.kind not in (("i", "u") if integer else ("f",)):
            raise _fail(path, name, f"has dtype {a.dtype}, expected {'integer' if integer else 'float'}", fix)
        if a.ndim != (2 if two_d else 1):
            raise _fail(path, name, f"has shape {a.shape}, expected {'(N, K)' if two_d else '(N,)'}", fix)
    n = arrays["logp_nats"].shape[0]
    for name, a in arrays.items():
        if name in _STATE and a.shape[0] != n:
            raise _fail(path, name, f"has {a.shape[0]} rows, logp_nats has {n}", fix)
    for name in ("done", "skipped"):
        if name in arrays and not np.isin(arrays[name], (0, 1)).all():
            raise _fail(path, name, "holds values other than 0 and 1", fix)
    done = arrays["done"] == 1
    if not (np.isfinite(arrays["logp_nats"][done]).all() and np.isfinite(arrays["clean_logp_nats"][done]).all()):
        raise _fail(path, "logp_nats", "holds NaN or infinite values in finished rows", fix)


def read_run_info(path: Path) -> dict:
    """The checked content of a run.json: identity {config, model, data, ...}, model, data and
    the image names, one per image."""
    fix = f"delete {path.parent} (or the file) to start over"
    d = read_json_file(path, "description of a run", fix)
    f = _Fields(path, fix)
    if not isinstance(d, dict):
        raise f.fail("", f"holds {_kind(d)}, not a run description")
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


def check_run_arguments(
    *,
    bands: int | None = None,
    n_bootstrap: int | None = None,
    seed: int | None = None,
    workers: int | None = None,
    samples: int | None = None,
) -> None:
    """Refuse settings whose output would be meaningless, each with its reason."""
    if bands is not None and bands < 2:
        raise IasideError(
            f"--bands {bands}: I-ASIDE splits the spectrum into M >= 2 bands (with one band "
            "there is nothing to attribute: its SID is 1 and the score is undefined)"
        )
    if n_bootstrap is not None and n_bootstrap < 1:
        raise IasideError(
            f"--bootstrap {n_bootstrap}: the intervals need at least 1 bootstrap resample (1000 is the default)"
        )
    if seed is not None and seed < 0:
        raise IasideError(f"--seed {seed}: seeds are integers >= 0")
    if workers is not None and workers < 0:
        raise IasideError(
            f"--workers {workers}: the number of data-loader processes is >= 0 (0 = load in the main process)"
        )
    if samples is not None and samples < 1:
        raise IasideError(f"--samples {samples}: pass a positive number of images, or leave it out")


def check_command_arguments(args: Any) -> None:
    """``check_run_arguments`` over whichever of those options a parsed command line has."""
    check_run_arguments(
        **{
            name: getattr(args, attr)
            for name, attr in (
                ("bands", "bands"),
                ("n_bootstrap", "bootstrap"),
                ("seed", "seed"),
                ("workers", "workers"),
                ("samples", "samples"),
            )
            if getattr(args, attr, None) is not None
        }
    )


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
