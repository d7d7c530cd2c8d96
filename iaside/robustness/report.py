"""One model's measured robustness: ``RobustnessReport`` (corruption errors (C, S), clean error,
adversarial accuracies, the reference CE and mCE are relative to), its files (``robustness.json``
and three CSVs) and ``build_report`` from what ``evaluate_robustness`` measured.
"""

from __future__ import annotations

import csv
import datetime as _dt
import io
import json
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import torch

from .. import __version__
from ..errors import IasideError
from ..runs import atomic_write
from .corruptions import family_of
from .metrics import corruption_errors, mean_ce, mean_corruption_error

ROBUSTNESS_JSON = "robustness.json"
ERRORS_CSV = "corruption_errors.csv"
CE_CSV = "corruption_ce.csv"
ADVERSARIAL_CSV = "adversarial.csv"

T = TypeVar("T")


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

    def with_reference(self, reference: RobustnessReport) -> RobustnessReport:
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
            "reference": None
            if self.reference is None
            else {"model": self.reference["model"], "errors": np.asarray(self.reference["errors"]).tolist()},
            "ce": None if ce is None else [None if not np.isfinite(v) else float(v) for v in ce],
            "mce": self.mce,
            "meta": self.meta,
        }

    @classmethod
    def from_json_dict(cls, d: dict[str, Any]) -> RobustnessReport:
        ref = d.get("reference")
        return cls(
            model=d["model"],
            data=d["data"],
            corruptions=list(d["corruptions"]),
            severities=list(d["severities"]),
            errors=np.asarray(d["errors"], np.float64).reshape(len(d["corruptions"]), len(d["severities"])),
            clean_error=float(d["clean_error"]),
            adversarial=list(d["adversarial"]),
            seed=int(d.get("seed", 0)),
            reference=None
            if ref is None
            else {
                "model": ref["model"],
                "errors": np.asarray(ref["errors"], np.float64).reshape(len(d["corruptions"]), len(d["severities"])),
            },
            meta=d.get("meta", {}),
        )

    def save(self, out_dir: str | os.PathLike) -> Path:
        """Write robustness.json, corruption_errors.csv, corruption_ce.csv and adversarial.csv."""
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        atomic_write(out / ROBUSTNESS_JSON, json.dumps(self.to_json_dict(), indent=1))
        ref = None if self.reference is None else np.asarray(self.reference["errors"])
        rows: list[list] = [["corruption", "family", "severity", "error", "reference_error"]]
        for i, c in enumerate(self.corruptions):
            for j, s in enumerate(self.severities):
                rows.append([c, family_of(c), s, f"{self.errors[i, j]:.6f}", "" if ref is None else f"{ref[i, j]:.6f}"])
        write_csv(out / ERRORS_CSV, rows)
        ce = self.ce
        rows = [["corruption", "family", "error_sum", "reference_error_sum", "ce"]]
        for i, c in enumerate(self.corruptions):
            rows.append(
                [
                    c,
                    family_of(c),
                    f"{self.errors[i].sum():.6f}",
                    "" if ref is None else f"{ref[i].sum():.6f}",
                    "" if ce is None or not np.isfinite(ce[i]) else f"{ce[i]:.6f}",
                ]
            )
        write_csv(out / CE_CSV, rows)
        rows = [["attack", "norm", "eps", "steps", "alpha", "accuracy"]]
        for a in self.adversarial:
            rows.append(
                [a["label"], a["norm"], f"{a['eps']:.6g}", a["steps"], f"{a['alpha']:.6g}", f"{a['accuracy']:.6f}"]
            )
        write_csv(out / ADVERSARIAL_CSV, rows)
        return out

    @classmethod
    def load(cls, path: str | os.PathLike) -> RobustnessReport:
        """Read robustness.json (or the folder holding it)."""
        return load_written(
            path,
            ROBUSTNESS_JSON,
            cls.from_json_dict,
            "pass a robustness.json written by `iaside robustness`",
            "a robustness.json written by `iaside robustness`",
        )

    def table(self) -> str:
        """Plain-text summary: clean error, mean error, mCE, per-corruption rows, adversarial rows."""
        ce = self.ce
        ref_name = None if self.reference is None else self.reference["model"].get("name")
        lines = [
            f"robustness  model={self.name}  data={self.data.get('spec')}  images={self.data.get('n_images')}"
            f"  labels={self.data.get('labels')}"
        ]
        lines.append(
            f"clean top-1 error {self.clean_error:.3f}   mean corruption error {self.mean_error:.3f}"
            + ("" if ce is None else f"   mCE {self.mce:.3f} (reference {ref_name})")
        )
        if self.corruptions:
            head = "".join(f"{'s' + str(s):>7}" for s in self.severities)
            lines.append(f"{'corruption':<18}{head}" + ("" if ce is None else f"{'CE':>8}"))
            for i, c in enumerate(self.corruptions):
                ce_text = "" if ce is None else ("     n/a" if not np.isfinite(ce[i]) else f"{ce[i]:>8.3f}")
                lines.append(f"{c:<18}" + "".join(f"{e:>7.3f}" for e in self.errors[i]) + ce_text)
            if ce is None:
                lines.append(
                    "no CE or mCE: they are errors relative to a reference model; pass --reference "
                    "(a robustness.json of another model on these images, or a model spec)"
                )
        for a in self.adversarial:
            lines.append(f"{a['label']:<18} accuracy {a['accuracy']:.3f}  ({a['steps']} steps)")
        return "\n".join(lines)


def load_written(path: str | os.PathLike, filename: str, parse: Callable[[dict], T], missing: str, what: str) -> T:
    """``parse`` of the JSON a command wrote: the file ``path``, or ``filename`` in the folder
    ``path``; an IasideError when it is not there (``missing``: what to pass) or not ``what``."""
    p = Path(path)
    file = p / filename if p.is_dir() else p
    if not file.exists():
        raise IasideError(f"{file} does not exist: {missing}")
    try:
        return parse(json.loads(file.read_text()))
    except (json.JSONDecodeError, KeyError) as err:
        raise IasideError(f"{file} is not {what} ({err})") from err


def write_csv(path: Path, rows: list[list]) -> None:
    """``rows`` (the header first) as a CSV file, written atomically."""
    text = io.StringIO(newline="")
    csv.writer(text).writerows(rows)
    atomic_write(path, text.getvalue())


def build_report(
    measured: Mapping[str, Any],
    *,
    model: dict,
    data: dict,
    corruptions,
    severities,
    seed: int,
    attacks=(),
) -> RobustnessReport:
    """A RobustnessReport from one entry of ``evaluate_robustness`` and the model/data descriptions."""
    return RobustnessReport(
        model=model,
        data=data,
        corruptions=list(corruptions),
        severities=list(severities),
        errors=np.asarray(measured["errors"], np.float64),
        clean_error=measured["clean_error"],
        adversarial=measured["adversarial"],
        seed=seed,
        meta={
            "iaside_version": __version__,
            "torch_version": torch.__version__,
            "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
            "timings_s": measured["seconds"],
            "attacks": [a.to_dict() for a in attacks],
        },
    )
