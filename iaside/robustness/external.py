"""Per-model robustness numbers the user already has, joined to I-ASIDE runs by model name.

Formats: a CSV whose first column is ``model`` and whose other columns are numbers (empty = not
known); a RobustBench ``model_info`` JSON file (the model is the file's name, its numeric fields
the metrics, prefixed by the threat model when the file sits in a Linf/L2/corruptions folder),
a folder of such files, or a JSON object {model: {metric: number}}.
"""

from __future__ import annotations

import csv
import json
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import IasideError

THREAT_FOLDERS = {"Linf", "L2", "corruptions", "corruptions_3d"}
NOT_METRICS = {"number_forward_passes", "eps", "additional_data", "unreliable"}
CLEAN_NAMES = ("clean_acc", "clean_accuracy", "clean accuracy", "clean")


@dataclass
class ExternalTable:
    """values[model][metric] = number; source: the file(s) read."""

    values: dict[str, dict[str, float]]
    source: str
    metrics: list[str] = field(default_factory=list)

    def clean_metric(self) -> str | None:
        """The column holding clean accuracy (clean_acc, clean_accuracy, ... with or without a
        threat-model prefix), or None."""
        for metric in self.metrics:
            if metric.split(" ")[-1].lower() in CLEAN_NAMES or metric.lower() in CLEAN_NAMES:
                return metric
        return None


def _number(text, where: str) -> float:
    if text is None or (isinstance(text, str) and text.strip() in ("", "-", "nan", "NaN", "n/a")):
        return float("nan")
    if isinstance(text, bool):
        raise IasideError(f"{where}: {text!r} is not a number")
    try:
        return float(text)
    except (TypeError, ValueError):
        raise IasideError(f"{where}: {text!r} is not a number") from None


def _read_csv(path: Path) -> dict[str, dict[str, float]]:
    with open(path, newline="") as fh:
        rows = list(csv.reader(fh))
    if not rows or not rows[0] or rows[0][0].strip().lower() != "model":
        raise IasideError(f"{path}: the first row must be a header starting with 'model' (model,<metric>,...)")
    header = [h.strip() for h in rows[0]]
    if len(header) < 2:
        raise IasideError(f"{path}: no metric column after 'model'")
    out: dict[str, dict[str, float]] = {}
    for line, row in enumerate(rows[1:], 2):
        if not row or not row[0].strip():
            continue
        if len(row) != len(header):
            raise IasideError(f"{path}:{line}: {len(row)} fields, the header has {len(header)}")
        name = row[0].strip()
        if name in out:
            raise IasideError(f"{path}:{line}: model {name!r} is listed twice")
        out[name] = {h: _number(v, f"{path}:{line} column {h!r}") for h, v in zip(header[1:], row[1:])}
    return out


def _model_info(path: Path, d: dict) -> dict[str, float]:
    prefix = f"{path.parent.name} " if path.parent.name in THREAT_FOLDERS else ""
    out = {}
    for key, value in d.items():
        if key in NOT_METRICS or isinstance(value, (bool, dict, list)) or value is None:
            continue
        try:
            number = float(value) if not (isinstance(value, str) and not value.strip()) else None
        except (TypeError, ValueError):
            continue  # text fields: link, name, authors, venue, architecture, footnote
        if number is not None:
            out[prefix + key] = number
    return out


def _read_json(path: Path) -> dict[str, dict[str, float]]:
    try:
        d = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise IasideError(f"{path} is not a readable JSON file ({err})") from err
    if not isinstance(d, dict):
        raise IasideError(f"{path}: expected a RobustBench model_info object or {{model: {{metric: number}}}}")
    if d and all(isinstance(v, dict) for v in d.values()):
        return {name: {k: _number(v, f"{path} {name}.{k}") for k, v in metrics.items()} for name, metrics in d.items()}
    return {path.stem: _model_info(path, d)}


def read_external(paths: str | Path | Sequence[str | os.PathLike]) -> ExternalTable:
    """Read one or more tables (CSV, model_info JSON, or a folder of model_info JSONs) into one;
    a model in several files gets the metrics of all of them."""
    files_given = [Path(p) for p in ([paths] if isinstance(paths, (str, Path)) else paths)]
    values: dict[str, dict[str, float]] = {}
    for path in files_given:
        if path.is_dir():
            files = sorted(path.rglob("*.json"))
            if not files:
                raise IasideError(f"{path} holds no .json file (expected RobustBench model_info files)")
        elif path.is_file():
            files = [path]
        else:
            raise IasideError(f"the external table {path} does not exist")
        for file in files:
            table = _read_csv(file) if file.suffix.lower() == ".csv" else _read_json(file)
            for name, row in table.items():
                values.setdefault(name, {}).update(row)
    metrics = list(dict.fromkeys(m for row in values.values() for m in row))
    if not metrics:
        raise IasideError(f"no numeric metric in {', '.join(map(str, files_given))}")
    return ExternalTable(values, ", ".join(map(str, files_given)), metrics)


def _key(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "", name.lower())


def join(names: Sequence[str], table: ExternalTable) -> tuple[dict[str, np.ndarray], list[str], list[str]]:
    """Columns of ``table`` aligned to ``names`` (NaN where a model has no row or no value):
    exact name first, then ignoring case and punctuation. Returns (columns, names with no row,
    table rows matched by no name). Two names matching one row, or one name two rows, is an error."""
    by_key: dict[str, list[str]] = {}
    for row in table.values:
        by_key.setdefault(_key(row), []).append(row)
    matched: dict[str, str] = {}
    for name in names:
        if name in table.values:
            matched[name] = name
        else:
            rows = by_key.get(_key(name), [])
            if len(rows) > 1:
                raise IasideError(f"model {name!r} matches several rows of {table.source}: {', '.join(rows)}")
            if rows:
                matched[name] = rows[0]
    used = list(matched.values())
    twice = sorted({r for r in used if used.count(r) > 1})
    if twice:
        raise IasideError(
            f"row(s) {', '.join(twice)} of {table.source} match several models; rename the models (--name) or the rows"
        )
    columns = {
        m: np.array([table.values[matched[n]].get(m, np.nan) if n in matched else np.nan for n in names])
        for m in table.metrics
    }
    return columns, [n for n in names if n not in matched], [r for r in table.values if r not in used]
