"""What the HTML report reads: run folders, optional robustness results, and the run's pixels.

Everything here is tolerant: a missing or odd robustness file, or data that cannot be found
again, becomes a note in the report, never an error.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..result import Result

if TYPE_CHECKING:
    import torch

ROBUSTNESS_JSON = "robustness.json"

# Known metric names (lower case, '-'/' ' as '_') -> (display name, higher_is_better).
_SCALAR_METRICS = {
    "mce": ("mCE", False),
    "relative_mce": ("relative mCE", False),
    "mean_corruption_error": ("mean corruption error", False),
    "mean_error": ("mean corruption error", False),
    "unnormalized_mce": ("mean corruption error", False),
    "unnormalised_mce": ("mean corruption error", False),
    "corruption_error": ("mean corruption error", False),
    "corruption_accuracy": ("corruption accuracy", True),
    "mean_corruption_accuracy": ("corruption accuracy", True),
    "adversarial_accuracy": ("adversarial accuracy", True),
    "adversarial": ("adversarial accuracy", True),
    "adv_accuracy": ("adversarial accuracy", True),
    "robust_accuracy": ("adversarial accuracy", True),
    "clean_accuracy": ("clean accuracy", True),
}
_NESTS = ("summary", "metrics", "results")
_MODEL_KEYS = ("model", "model_spec")


@dataclass
class Metric:
    """One robustness number of one model."""

    name: str
    value: float
    higher_is_better: bool


@dataclass
class RunView:
    """A finished run as the report shows it."""

    run_dir: Path
    result: Result
    name: str
    robustness: dict[str, Metric] = field(default_factory=dict)
    robustness_sources: list[str] = field(default_factory=list)
    robustness_mismatches: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def _key(text: str) -> str:
    return re.sub(r"[\s\-]+", "_", str(text).strip().lower())


def _as_float(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        v = float(value)
        return v if np.isfinite(v) else None
    if isinstance(value, dict):
        for k in ("value", "mean", "accuracy", "acc", "error"):
            if k in value:
                return _as_float(value[k])
    return None


def _eps_label(key: Any) -> str:
    text = str(key)
    try:
        return f"ε={float(text):g}"
    except ValueError:
        return text


def _metric_family(name: str, value: Any, higher: bool) -> dict[str, Metric]:
    """A scalar, a {eps: acc} mapping (optionally nested by norm), or a list of records."""
    scalar = _as_float(value)
    if scalar is not None:
        return {name: Metric(name, scalar, higher)}
    out: dict[str, Metric] = {}
    if isinstance(value, dict):
        for k, v in value.items():
            inner = _as_float(v)
            if inner is not None:
                out[f"{name} ({_eps_label(k)})"] = Metric(f"{name} ({_eps_label(k)})", inner, higher)
            elif isinstance(v, dict):
                for k2, v2 in v.items():
                    x = _as_float(v2)
                    if x is not None:
                        label = f"{name} ({k}, {_eps_label(k2)})"
                        out[label] = Metric(label, x, higher)
    elif isinstance(value, list):
        for rec in value:
            if not isinstance(rec, dict):
                continue
            x = _as_float({k: v for k, v in rec.items() if k in ("value", "accuracy", "acc")})
            if "label" in rec:
                parts = [str(rec["label"])]
            else:
                parts = [str(rec[k]) for k in ("attack", "norm") if k in rec]
                eps = next((rec[k] for k in ("eps", "epsilon", "ε") if k in rec), None)
                if eps is not None:
                    parts.append(_eps_label(eps))
            if x is not None and parts:
                label = f"{name} ({', '.join(parts)})"
                out[label] = Metric(label, x, higher)
    return out


def parse_robustness(doc: Any) -> dict[str, Metric]:
    """The robustness numbers a report can use from a robustness JSON of unknown exact layout.

    Reads the known metric names (mce, mean_error, adversarial_accuracy, ...) at the top level or
    under 'summary'/'metrics'/'results' (the layout ``iaside robustness`` writes: 'mce' (null
    without a reference model), 'mean_error', 'adversarial': [{label, norm, eps, accuracy}]);
    adversarial accuracy may be a number, an {eps: accuracy} mapping (optionally by norm) or a
    list of records. Anything else is ignored.
    """
    if not isinstance(doc, dict):
        return {}
    found: dict[str, Metric] = {}
    layers = [doc] + [doc[k] for k in _NESTS if isinstance(doc.get(k), dict)]
    for layer in layers:
        for key, value in layer.items():
            known = _SCALAR_METRICS.get(_key(key))
            if known is not None:
                for label, metric in _metric_family(known[0], value, known[1]).items():
                    found.setdefault(label, metric)
    return found


def robustness_model(doc: Any) -> tuple[str | None, str | None]:
    """(spec, fingerprint) of the model a robustness JSON is about, where it says so."""
    if not isinstance(doc, dict):
        return None, None
    for key in _MODEL_KEYS:
        value = doc.get(key)
        if isinstance(value, str):
            return value, doc.get("model_fingerprint") or doc.get("fingerprint")
        if isinstance(value, dict):
            return value.get("spec") or value.get("name"), value.get("fingerprint")
    return None, doc.get("model_fingerprint")


def _read_json(path: Path) -> tuple[Any, str | None]:
    try:
        return json.loads(path.read_text()), None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        return None, f"{path} could not be read ({err})"


def load_runs(
    run_dirs: Sequence[str | os.PathLike], robustness_files: Sequence[str | os.PathLike] = ()
) -> list[RunView]:
    """Load run folders (``Result.load``), with ``robustness.json`` from each folder and
    robustness files given elsewhere matched to runs by model fingerprint, then spec."""
    runs = []
    for run_dir in run_dirs:
        result = Result.load(run_dir)
        runs.append(RunView(Path(run_dir), result, str(result.model.get("spec") or Path(run_dir).name)))
    _disambiguate(runs)
    for run in runs:
        path = run.run_dir / ROBUSTNESS_JSON
        if path.exists():
            _attach(run, path)
    for file in robustness_files:
        path = Path(file)
        doc, error = _read_json(path)
        if error:
            for run in runs:
                run.notes.append(error)
            continue
        spec, fingerprint = robustness_model(doc)
        matches = [r for r in runs if fingerprint and r.result.model.get("fingerprint") == fingerprint]
        matches = matches or [r for r in runs if spec and r.result.model.get("spec") == spec]
        if not matches and len(runs) == 1:
            matches = runs
        for run in matches:
            _attach(run, path, doc)
    return runs


def _attach(run: RunView, path: Path, doc: Any = None) -> None:
    if doc is None:
        doc, error = _read_json(path)
        if error:
            run.notes.append(error)
            return
    metrics = parse_robustness(doc)
    if not metrics:
        run.notes.append(f"{path} holds no robustness number this report knows (mce, adversarial_accuracy, ...)")
        return
    for name, metric in metrics.items():
        run.robustness.setdefault(name, metric)
    run.robustness_sources.append(str(path))
    if isinstance(doc, dict) and "mce" in doc and doc["mce"] is None:
        run.notes.append(
            f"{path} has no mCE: CE and mCE are errors relative to a reference model and none was "
            "given (iaside robustness --reference); its unnormalised mean corruption error is shown"
        )
    mismatch = data_mismatch(run.result, doc.get("data") if isinstance(doc, dict) else None)
    if mismatch:
        note = (
            f"{path} was not measured on this run's images ({mismatch}): its robustness numbers and this "
            "run's score describe different images"
        )
        run.notes.append(note)
        run.robustness_mismatches.append(note)


def data_mismatch(result: Result, data: Any) -> str | None:
    """How the images a robustness file was measured on (its 'data' block) differ from the run's,
    or None when they agree or the file does not say."""
    if not isinstance(data, dict):
        return None
    problems = []
    n_run, n_file = result.data.get("n_images"), data.get("n_images")
    if isinstance(n_file, int) and n_run is not None and n_file != n_run:
        problems.append(f"N = {n_file} there, {n_run} here")
    names, labels = result.per_image.get("names"), result.per_image.get("label")
    wanted = data.get("source_fingerprint")
    compared = bool(wanted and names is not None and labels is not None and result.config.get("labels") == "given")
    if compared and not problems:
        from ..robustness.evaluate import source_fingerprint

        assert names is not None  # compared only with the names and labels
        if source_fingerprint([str(n) for n in names], labels) != wanted:
            problems.append("different images or labels (the image names and labels do not match)")
    if (
        not problems
        and not compared
        and data.get("spec")
        and short_data(data.get("spec")) != short_data(result.data.get("spec"))
    ):
        problems.append(f"data {short_data(data.get('spec'))!r} there, {short_data(result.data.get('spec'))!r} here")
    return "; ".join(problems) or None


def _disambiguate(runs: list[RunView]) -> None:
    """Give runs of the same model distinct names (the folder name added)."""
    seen: dict[str, int] = {}
    for run in runs:
        seen[run.name] = seen.get(run.name, 0) + 1
    for run in runs:
        if seen[run.name] > 1:
            run.name = f"{run.name} ({run.run_dir.name})"


def short_data(spec: str | None) -> str:
    """A data set description without its parenthesised details: 'samples:imagenet [5 of 20]'."""
    return re.sub(r" \([^)]*\)", "", spec or "-") or "-"


def data_source(
    data: dict[str, Any], run_dir: str | Path | None = None, written_in: str | Path | None = None
) -> str | None:
    """The data spec to reopen a run's images with, or None when they cannot be found.

    ``data['source']`` as runs record it ({kind, spec | path}; a data folder that has moved with
    its run folder is looked for where it sat relative to the folder the run was ``written_in``,
    now seen from ``run_dir``), as older runs recorded it (the spec as given), or parsed from the
    description (samples:NAME, or the folder path).
    """
    source = data.get("source")
    if isinstance(source, dict):
        if source.get("kind") == "samples":
            return str(source["spec"])
        if source.get("kind") == "folder":
            if Path(source["path"]).is_dir():
                return str(source["path"])
            if run_dir is not None and written_in is not None:
                moved = (Path(run_dir) / os.path.relpath(source["path"], written_in)).resolve()
                if moved.is_dir():
                    return str(moved)
        return None
    if source:
        return str(source)
    text = str(data.get("spec") or "")
    text = re.sub(r" \(seed \d+\)$", "", text)
    text = re.sub(r" \[\d+ of \d+\]$", "", text)
    match = re.match(r"^(samples:[\w-]+)(?: \(|$)", text)
    if match:
        return match.group(1)
    match = re.match(r"^(.+) \(\d+ images(?:, labels predicted| in \d+ class folders| labelled by .+)\)$", text)
    if match and Path(match.group(1)).is_dir():
        return match.group(1)
    return None


def reopen_images(
    result: Result, names: list[str], run_dir: str | Path | None = None
) -> tuple[dict[str, torch.Tensor], str | None]:
    """Pixels (C, H, W) in [0, 1] of the named images, preprocessed as in the run (``run_dir``: the
    run's folder, where a moved data folder is looked for relative to it).

    Returns ({name: pixels}, None), or ({}, a note saying why the images are not available).
    """
    from ..config import DataConfig
    from ..errors import IasideError

    source = data_source(result.data, run_dir, result.meta.get("run_dir"))
    if source is None:
        return {}, (
            f"the images of this run ({result.data.get('spec')}) cannot be found again "
            "(in-memory data or an unknown source), so band images are not shown"
        )
    try:
        from ..data import open_dataset
        from ..data.base import PREDICTED
        from ..data.datasets import ImageDataset

        cfg = DataConfig.from_dict(result.data.get("data_config") or {})
        if source.startswith("samples:"):
            dataset = open_dataset(source, cfg, labels="predicted")
        else:  # only the files the run recorded, never a walk of the whole source folder
            root = Path(source)
            dataset = ImageDataset([(root / n, PREDICTED, n) for n in names if _inside(root, n)], cfg)
        position = {name: i for i, name in enumerate(dataset.names)}
        missing = [
            n
            for n in names
            if n not in position
            or not (isinstance(dataset.sources[position[n]], str) and Path(dataset.sources[position[n]]).is_file())  # type: ignore[arg-type]
        ]
        if missing:
            return {}, f"{source} no longer holds {', '.join(missing[:3])}; band images are not shown"
        return {n: dataset[position[n]].pixels for n in names}, None
    except (IasideError, OSError, ImportError, ValueError) as err:
        return {}, f"the images in {source} could not be opened again ({err}); band images are not shown"


def _inside(root: Path, name: str) -> bool:
    """Whether the recorded image name ``name`` is a relative path that stays inside ``root``."""
    parts = Path(name).parts
    return bool(parts) and not Path(name).is_absolute() and ".." not in parts


def band_images(pixels: torch.Tensor, n_bands: int, partition: str) -> np.ndarray:
    """Band images of one image, (C, H, W) -> (M, C, H, W) float64; their sum is the image.

    The paper's squares are not Hermitian-symmetric: their band images are complex, and the
    real parts (which still sum to the image) are returned.
    """
    import torch

    from ..spectral import band_masks, split_bands, split_bands_complex

    h, w = pixels.shape[-2:]
    masks = band_masks(h, w, n_bands, partition)
    x = pixels[None].to(torch.float64)
    if partition == "square":
        bands = split_bands_complex(torch.fft.fft2(x), masks).real
    else:
        bands = split_bands(x, masks)
    return bands[0].numpy()
