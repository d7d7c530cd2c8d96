"""Reading one JSON document of a run folder safely, and typed access to its fields.

``read_json_file`` takes a regular UTF-8 file of at most ``MAX_JSON_BYTES``, nested at most
``MAX_DEPTH`` deep, with no string over ``MAX_STRING_CHARS``; ``Fields`` reads one field at a
time as an object, number, integer, text, data source or vector (of length M), each failure an
``IasideError`` naming the file and the field (``validate.py`` holds the schemas built on it).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Literal, overload

from .errors import IasideError

MAX_JSON_BYTES = 128 * 2**20
"""Largest run.json or result.json read (a result of M = 16 bands over 21 000 classes is ~20 MB)."""
MAX_DEPTH = 16
"""Deepest nesting of lists and dicts accepted in a JSON file of a run (results need 5)."""
MAX_TEXT_CHARS = 4096
"""Longest model spec, data description or data source: every table and the store print them."""
MAX_STRING_CHARS = 65536
"""Longest string anywhere else in a run's JSON (skip reasons, versions, paths)."""


def fail(path: Path | str, field: str, problem: str, fix: str = "rerun the analysis") -> IasideError:
    where = f"{path}: {field}" if field else str(path)
    return IasideError(f"{where} {problem}; {fix}")


def read_json_file(path: Path, what: str, fix: str) -> Any:
    """The parsed JSON of ``path``: a regular UTF-8 file of at most MAX_JSON_BYTES, nested at
    most MAX_DEPTH deep. ``what`` names the file's role in errors, ``fix`` says what to do."""
    path = Path(path)
    try:
        info = path.stat()
    except OSError as err:
        raise fail(path, "", f"cannot be read ({err.strerror or err})", fix) from None
    if path.is_dir():
        raise fail(path, "", f"is a folder, not the {what}", fix)
    if not path.is_file():
        raise fail(path, "", f"is not a regular file (the {what} must be one)", fix)
    if info.st_size > MAX_JSON_BYTES:
        raise fail(
            path,
            "",
            f"is {info.st_size / 2**20:.0f} MiB, over the {MAX_JSON_BYTES // 2**20} MiB a {what} can hold",
            fix,
        )
    try:
        text = path.read_bytes().decode("utf-8")
    except OSError as err:
        raise fail(path, "", f"cannot be read ({err.strerror or err})", fix) from None
    except UnicodeDecodeError as err:
        raise fail(path, "", f"is not UTF-8 text (byte {err.start})", fix) from None
    try:
        doc = json.loads(text)
    except RecursionError:
        raise fail(path, "", f"is nested deeper than {MAX_DEPTH} levels", fix) from None
    except ValueError as err:
        raise fail(path, "", f"is not valid JSON ({err})", fix) from None
    _check_depth_and_strings(doc, path)
    return doc


def _check_depth_and_strings(doc: Any, path: Path) -> None:
    """Iteratively: no container deeper than MAX_DEPTH, no string over MAX_STRING_CHARS."""
    stack = [(doc, 1, "")]
    while stack:
        node, depth, where = stack.pop()
        if isinstance(node, str):
            if len(node) > MAX_STRING_CHARS:
                raise fail(
                    path, where or "(top level)", f"is a string of {len(node)} characters (at most {MAX_STRING_CHARS})"
                )
            continue
        if not isinstance(node, (dict, list)):
            continue
        if depth > MAX_DEPTH:
            raise fail(path, where or "(top level)", f"is nested deeper than {MAX_DEPTH} levels")
        items = node.items() if isinstance(node, dict) else enumerate(node)
        for key, value in items:
            if isinstance(key, str) and len(key) > MAX_STRING_CHARS:
                raise fail(path, where or "(top level)", f"has a key of {len(key)} characters")
            stack.append((value, depth + 1, f"{where}.{key}" if where else str(key)))


class Fields:
    """Typed access to the fields of one JSON document, each failure naming file and field."""

    def __init__(self, path: Path, fix: str = "rerun the analysis") -> None:
        self.path, self.fix = path, fix

    def fail(self, field: str, problem: str) -> IasideError:
        return fail(self.path, field, problem, self.fix)

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
            raise self.fail(field, f"is {kind_of(value)}, expected an object")
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
            raise self.fail(field, f"is {kind_of(value)}, expected a number")
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
            raise self.fail(field, f"is {kind_of(value)}, expected an integer")
        if (low is not None and value < low) or (high is not None and value > high):
            raise self.fail(field, f"is {value}, outside [{low}, {'∞' if high is None else high}]")
        return value

    def text(self, value: Any, field: str, *, null: bool = False, limit: int = MAX_TEXT_CHARS) -> str | None:
        if value is None and null:
            return None
        if not isinstance(value, str):
            raise self.fail(field, f"is {kind_of(value)}, expected a string")
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
            raise self.fail(field, f"is {kind_of(value)}, expected an object or a string")
        if value.get("kind") not in ("samples", "folder", "in-memory"):
            raise self.fail(f"{field}.kind", "is not one of samples, folder, in-memory")
        for key in ("spec", "path", "relative_to_run", "labels", "type"):
            self.text(value.get(key), f"{field}.{key}", null=True)
        for key in ("samples", "seed"):
            self.integer(value.get(key), f"{field}.{key}", null=True)

    def vector(self, value: Any, field: str, length: int | None, *, finite: bool = True) -> list:
        if not isinstance(value, list):
            raise self.fail(field, f"is {kind_of(value)}, expected a list of numbers")
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


def kind_of(value: Any) -> str:
    if value is None:
        return "null"
    return {bool: "a boolean", str: "a string", list: "a list", dict: "an object"}.get(
        type(value), f"a {type(value).__name__}" if not isinstance(value, (int, float)) else f"the number {value}"
    )
