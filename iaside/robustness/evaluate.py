"""Measured robustness of models on one data set: corruption errors and adversarial accuracy (docs/method.md §8).

``evaluate_robustness`` streams the images in chunks: each chunk is corrupted once per
(corruption, severity) and every model given sees the same corrupted pixels, so a zoo of
models that share a data config pays for the corruptions once. ``RobustnessReport`` holds one
model's numbers, writes ``robustness.json`` and CSVs, and reads them back.
"""
from __future__ import annotations

import csv
import datetime as _dt
import io
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import torch
from torch import nn

from .. import __version__
from ..data.base import PREDICTED
from ..errors import IasideError
from ..runs import atomic_write
from .attacks import Attack, check_differentiable, pgd
from .corruptions import check_severities, corrupt_images, corruption_names, family_of, quantize
from .metrics import corruption_errors, mean_ce, mean_corruption_error

ROBUSTNESS_JSON = "robustness.json"
ERRORS_CSV = "corruption_errors.csv"
CE_CSV = "corruption_ce.csv"
ADVERSARIAL_CSV = "adversarial.csv"


@dataclass(repr=False)
class RobustnessReport:
    """One model's measured robustness on one data set.

    errors: (C, S) top-1 error under corruption c at severity s; clean_error: on the 8-bit
    clean images; adversarial: one dict per attack (norm, eps, steps, alpha, label, accuracy);
    reference: None or {model, errors (C, S)}: the model CE and mCE are relative to.
    """

    model: dict[str, Any]
    data: dict[str, Any]
    corruptions: list[str]
    severities: list[int]
    errors: np.ndarray
    clean_error: float
    adversarial: list[dict[str, Any]]
    seed: int = 0
    reference: dict[str, Any] | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return str(self.model.get("name") or self.model.get("spec"))

    def __repr__(self) -> str:
        from .views import robustness_repr

        return robustness_repr(self)

    def _repr_html_(self) -> str:
        from .views import robustness_html

        return robustness_html(self)

    def plot(self, kind: str = "corruptions", ax=None):
        """A matplotlib Figure: 'corruptions' (error per corruption) or 'adversarial' (accuracy against ε)."""
        from .views import robustness_figure

        return robustness_figure(self, ax, kind)

    def to_pandas(self, kind: str = "corruptions"):
        """One row per corruption (errors per severity, mean, CE) or, kind 'adversarial', per attack."""
        from .views import robustness_frame

        return robustness_frame(self, kind)

    @property
    def mean_error(self) -> float:
        """Unnormalised mean corruption error."""
        return mean_corruption_error(self.errors)

    @property
    def ce(self) -> np.ndarray | None:
        """(C,) CE_c against the reference, or None without one."""
        if self.reference is None:
            return None
        return corruption_errors(self.errors, np.asarray(self.reference["errors"]))

    @property
    def mce(self) -> float | None:
        ce = self.ce
        return None if ce is None else mean_ce(ce)

    @property
    def clean_accuracy(self) -> float:
        return 1.0 - self.clean_error

    def adversarial_accuracy(self, label: str) -> float:
        for row in self.adversarial:
            if row["label"] == label:
                return float(row["accuracy"])
        raise IasideError(f"{self.name} has no attack {label!r}; it has {[r['label'] for r in self.adversarial]}")

    def with_reference(self, reference: "RobustnessReport") -> "RobustnessReport":
        """A copy whose CE and mCE are relative to ``reference`` (same images, corruptions, severities)."""
        problems = []
        if list(reference.corruptions) != list(self.corruptions):
            problems.append("corruptions differ")
        if list(reference.severities) != list(self.severities):
            problems.append(f"severities {reference.severities} vs {self.severities}")
        if reference.data.get("source_fingerprint") != self.data.get("source_fingerprint"):
            problems.append(f"images {reference.data.get('spec')!r} vs {self.data.get('spec')!r}")
        if reference.seed != self.seed:
            problems.append(f"seed {reference.seed} vs {self.seed}")
        if problems:
            raise IasideError(
                f"reference {reference.name} was not measured like {self.name} ({'; '.join(problems)}): "
                "evaluate both with the same --data, --samples, --corruptions, --severities and --seed"
            )
        return RobustnessReport(
            **{**self.__dict__, "reference": {"model": reference.model, "errors": np.asarray(reference.errors)}}
        )

    def to_json_dict(self) -> dict[str, Any]:
        ce = self.ce
        return {
            "model": self.model,
            "data": self.data,
            "seed": self.seed,
            "corruptions": list(self.corruptions),
            "severities": list(self.severities),
            "errors": np.asarray(self.errors).tolist(),
            "clean_error": self.clean_error,
            "mean_error": self.mean_error,
            "adversarial": self.adversarial,
            "reference": None if self.reference is None else {
                "model": self.reference["model"], "errors": np.asarray(self.reference["errors"]).tolist()},
            "ce": None if ce is None else [None if not np.isfinite(v) else float(v) for v in ce],
            "mce": self.mce,
            "meta": self.meta,
        }

    @classmethod
    def from_json_dict(cls, d: dict[str, Any]) -> "RobustnessReport":
        ref = d.get("reference")
        return cls(
            model=d["model"], data=d["data"], corruptions=list(d["corruptions"]), severities=list(d["severities"]),
            errors=np.asarray(d["errors"], np.float64).reshape(len(d["corruptions"]), len(d["severities"])),
            clean_error=float(d["clean_error"]), adversarial=list(d["adversarial"]), seed=int(d.get("seed", 0)),
            reference=None if ref is None else {
                "model": ref["model"],
                "errors": np.asarray(ref["errors"], np.float64).reshape(len(d["corruptions"]), len(d["severities"]))},
            meta=d.get("meta", {}),
        )

    def save(self, out_dir: str | os.PathLike) -> Path:
        """Write robustness.json, corruption_errors.csv, corruption_ce.csv and adversarial.csv."""
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        atomic_write(out / ROBUSTNESS_JSON, json.dumps(self.to_json_dict(), indent=1))
        ref = None if self.reference is None else np.asarray(self.reference["errors"])
        rows = [["corruption", "family", "severity", "error", "reference_error"]]
        for i, c in enumerate(self.corruptions):
            for j, s in enumerate(self.severities):
                rows.append([c, family_of(c), s, f"{self.errors[i, j]:.6f}",
                             "" if ref is None else f"{ref[i, j]:.6f}"])
        _write_csv(out / ERRORS_CSV, rows)
        ce = self.ce
        rows = [["corruption", "family", "error_sum", "reference_error_sum", "ce"]]
        for i, c in enumerate(self.corruptions):
            rows.append([c, family_of(c), f"{self.errors[i].sum():.6f}",
                         "" if ref is None else f"{ref[i].sum():.6f}",
                         "" if ce is None or not np.isfinite(ce[i]) else f"{ce[i]:.6f}"])
        _write_csv(out / CE_CSV, rows)
        rows = [["attack", "norm", "eps", "steps", "alpha", "accuracy"]]
        for a in self.adversarial:
            rows.append([a["label"], a["norm"], f"{a['eps']:.6g}", a["steps"], f"{a['alpha']:.6g}",
                         f"{a['accuracy']:.6f}"])
        _write_csv(out / ADVERSARIAL_CSV, rows)
        return out

    @classmethod
    def load(cls, path: str | os.PathLike) -> "RobustnessReport":
        """Read robustness.json (or the folder holding it)."""
        p = Path(path)
        file = p / ROBUSTNESS_JSON if p.is_dir() else p
        if not file.exists():
            raise IasideError(f"{file} does not exist: pass a robustness.json written by `iaside robustness`")
        try:
            return cls.from_json_dict(json.loads(file.read_text()))
        except (json.JSONDecodeError, KeyError) as err:
            raise IasideError(f"{file} is not a robustness.json written by `iaside robustness` ({err})") from err

    def table(self) -> str:
        """Plain-text summary: clean error, mean error, mCE, per-corruption rows, adversarial rows."""
        ce = self.ce
        lines = [f"robustness  model={self.name}  data={self.data.get('spec')}  images={self.data.get('n_images')}"
                 f"  labels={self.data.get('labels')}"]
        lines.append(f"clean top-1 error {self.clean_error:.3f}   mean corruption error {self.mean_error:.3f}"
                     + ("" if ce is None else f"   mCE {self.mce:.3f} (reference {self.reference['model'].get('name')})"))
        if self.corruptions:
            head = "".join(f"{'s' + str(s):>7}" for s in self.severities)
            lines.append(f"{'corruption':<18}{head}" + ("" if ce is None else f"{'CE':>8}"))
            for i, c in enumerate(self.corruptions):
                ce_text = "" if ce is None else ("     n/a" if not np.isfinite(ce[i]) else f"{ce[i]:>8.3f}")
                lines.append(f"{c:<18}" + "".join(f"{e:>7.3f}" for e in self.errors[i]) + ce_text)
            if ce is None:
                lines.append("no CE or mCE: they are errors relative to a reference model; pass --reference "
                             "(a robustness.json of another model on these images, or a model spec)")
        for a in self.adversarial:
            lines.append(f"{a['label']:<18} accuracy {a['accuracy']:.3f}  ({a['steps']} steps)")
        return "\n".join(lines)


def _write_csv(path: Path, rows: list[list]) -> None:
    text = io.StringIO(newline="")
    csv.writer(text).writerows(rows)
    atomic_write(path, text.getvalue())


def images_fingerprint(images: torch.Tensor, labels: np.ndarray) -> str:
    """sha256 (16 hex) of the 8-bit pixels and labels: what makes two reports comparable."""
    import hashlib

    h = hashlib.sha256((quantize(images) * 255).round().to(torch.uint8).numpy().tobytes())
    h.update(np.asarray(labels, np.int64).tobytes())
    return h.hexdigest()[:16]


def source_fingerprint(names, labels) -> str:
    """sha256 (16 hex) of the image names and labels in order: the same images, whatever the model's
    resolution (models with different input sizes see the same files at their own size)."""
    import hashlib

    h = hashlib.sha256(json.dumps([list(map(str, names)), np.asarray(labels, np.int64).tolist()]).encode())
    return h.hexdigest()[:16]


def stack_dataset(dataset) -> tuple[torch.Tensor, np.ndarray, list[str]]:
    """All images of a data set of ImageItems: (N, C, H, W) float32, labels (N,) int64 (PREDICTED = −1), names."""
    items = [dataset[i] for i in range(len(dataset))]
    if not items:
        raise IasideError("the data set is empty")
    shapes = {tuple(it.pixels.shape) for it in items}
    if len(shapes) > 1:
        raise IasideError(f"images have different shapes {sorted(shapes)[:3]}; set --input-size so they match")
    return (torch.stack([it.pixels for it in items]), np.array([it.label for it in items], np.int64),
            [it.name for it in items])


@torch.no_grad()
def predict(model: nn.Module, images: torch.Tensor, batch_size: int = 64) -> np.ndarray:
    """Top-1 class of every image, (N, C, H, W) -> (N,) int64."""
    out = [model(images[i:i + batch_size]).argmax(dim=1).cpu() for i in range(0, images.shape[0], batch_size)]
    return torch.cat(out).numpy().astype(np.int64)


def evaluate_robustness(
    models: Mapping[str, nn.Module],
    images: torch.Tensor,
    labels: np.ndarray,
    *,
    corruptions: Sequence[str] = (),
    severities: Sequence[int] = (1, 2, 3, 4, 5),
    attacks: Sequence[Attack] = (),
    seed: int = 0,
    batch_size: int = 64,
    chunk: int = 256,
    show_progress: bool = False,
) -> dict[str, dict[str, Any]]:
    """Corruption errors and adversarial accuracies of several models on the same images.

    images: (N, C, H, W) in [0, 1] (quantised to 8 bits here, so clean and corrupted images
    are on the same grid); labels: (N,) int64, or all PREDICTED for each model's own clean
    top-1. Returns {name: {clean_error, errors (C, S), adversarial [...], labels (N,),
    seconds {clean, model (its passes on corrupted images), corruptions_shared (making the
    corrupted images, once for all models), one entry per attack}}}.
    """
    corruptions = corruption_names(list(corruptions))
    severities = check_severities(severities) if corruptions else tuple(severities)
    images = quantize(images.detach().to(torch.float32))
    n = images.shape[0]
    labels = np.asarray(labels, np.int64)
    if labels.shape != (n,):
        raise IasideError(f"{labels.shape[0]} labels for {n} images")
    predicted = bool((labels == PREDICTED).all())
    if (labels == PREDICTED).any() and not predicted:
        raise IasideError("some images have labels and some do not: label all of them or pass --labels predicted")
    device = images.device
    out: dict[str, dict[str, Any]] = {}
    for name, model in models.items():
        t0 = time.perf_counter()
        clean = predict(model, images, batch_size)
        own = clean if predicted else labels
        nc = getattr(model, "num_classes", None)
        if nc is not None and own.max(initial=0) >= nc:
            raise IasideError(f"labels go up to {own.max()} but {name} has {nc} classes; check the labels")
        out[name] = {"labels": own, "clean_error": float(np.mean(clean != own)),
                     "wrong": np.zeros((len(corruptions), len(severities)), np.int64),
                     "seconds": {"clean": time.perf_counter() - t0, "model": 0.0}}
    t_corrupt = 0.0
    steps = [(ci, si) for ci in range(len(corruptions)) for si in range(len(severities))]
    progress = _progress(len(steps) * ((n + chunk - 1) // chunk), "corruptions", show_progress)
    for start in range(0, n, chunk):
        stop = min(start + chunk, n)
        for ci, si in steps:
            t = time.perf_counter()
            corrupted = corrupt_images(images[start:stop], corruptions[ci], severities[si], seed=seed,
                                       indices=range(start, stop)).to(device)
            t_corrupt += time.perf_counter() - t
            for name, model in models.items():
                t = time.perf_counter()
                pred = predict(model, corrupted, batch_size)
                out[name]["wrong"][ci, si] += int(np.sum(pred != out[name]["labels"][start:stop]))
                out[name]["seconds"]["model"] += time.perf_counter() - t
            progress.update(1)
    progress.close()
    for name, model in models.items():
        r = out[name]
        r["errors"] = r.pop("wrong") / n
        r["seconds"]["corruptions_shared"] = t_corrupt
        r["adversarial"] = []
        if attacks:
            check_differentiable(model, images)
        own = torch.as_tensor(r["labels"], device=device)
        for attack in attacks:
            t = time.perf_counter()
            adv = pgd(model, images, own, attack, seed=seed, batch_size=batch_size)
            accuracy = float(np.mean(predict(model, adv, batch_size) == r["labels"]))
            r["adversarial"].append({**attack.to_dict(), "accuracy": accuracy})
            r["seconds"][attack.label] = time.perf_counter() - t
    return out


def build_report(
    measured: Mapping[str, Any], *, model: dict, data: dict, corruptions, severities, seed: int, attacks=(),
) -> RobustnessReport:
    """A RobustnessReport from one entry of ``evaluate_robustness`` and the model/data descriptions."""
    return RobustnessReport(
        model=model, data=data, corruptions=list(corruptions), severities=list(severities),
        errors=np.asarray(measured["errors"], np.float64), clean_error=measured["clean_error"],
        adversarial=measured["adversarial"], seed=seed,
        meta={
            "iaside_version": __version__, "torch_version": torch.__version__,
            "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "timings_s": measured["seconds"], "attacks": [a.to_dict() for a in attacks],
        },
    )


def _progress(total: int, what: str, show: bool):
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=what, disable=not show, leave=False)
