"""Several models side by side: I-ASIDE score against measured robustness, with correlations (docs/method.md §8).

A ``ModelEntry`` pairs one model's I-ASIDE ``Result`` with its ``RobustnessReport``;
``compare_models`` puts every report on the same reference (mCE), builds the table and
correlates score and score_signed with every robustness measure across the models. Numbers the
user already has (``external.ExternalTable``: a CSV, RobustBench model_info) join by model
name as further measures (then a model needs no report), and every score–measure pair also
gets a partial correlation controlling for clean accuracy. What a comparison writes (JSON,
CSVs, figures) is ``comparison_files.py``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import IasideError
from ..result import Result
from .correlation import METHODS, PARTIAL_METHODS, Correlation, correlation_table, partial_correlate
from .external import ExternalTable, join
from .report import RobustnessReport

MEAN_ADVERSARIAL = "adversarial accuracy (mean)"


@dataclass
class ModelEntry:
    """One model: its name, I-ASIDE result, robustness report (None when its numbers come from an
    external table), and an optional group (data set) label."""

    name: str
    result: Result
    report: RobustnessReport | None
    group: str = ""


@dataclass
class Comparison:
    """The table and the correlations of a set of models measured on the same images."""

    entries: list[ModelEntry]
    reference: str
    attack_labels: list[str]
    correlations: list[Correlation]
    meta: dict[str, Any] = field(default_factory=dict)
    external: dict[str, np.ndarray] = field(default_factory=dict)  # joined columns, one value per entry
    partial: list[Correlation] = field(default_factory=list)  # controlling for clean accuracy

    def clean_accuracy(self) -> tuple[np.ndarray, str]:
        """Clean accuracy per model and where it comes from: the external table's clean column if
        it has one, else the robustness reports, else the I-ASIDE runs' own clean top-1."""
        column = self.meta.get("external_clean_metric")
        if column and column in self.external:
            return self.external[column], f"{column} (external table)"
        if all(e.report is not None for e in self.entries):
            return np.array(
                [e.report.clean_accuracy for e in self.entries if e.report is not None], np.float64
            ), "robustness reports"
        return (
            np.array(
                [np.nan if e.result.clean_accuracy is None else e.result.clean_accuracy for e in self.entries],
                np.float64,
            ),
            "the I-ASIDE runs' clean top-1",
        )

    def measures(self) -> dict[str, np.ndarray]:
        """Robustness measures, one value per model: mCE, mean corruption error, adversarial accuracies."""
        out: dict[str, np.ndarray] = {}
        reports = [e.report for e in self.entries if e.report is not None]
        if len(reports) < len(self.entries):
            return dict(self.external)
        if reports and reports[0].corruptions:
            out["mCE"] = np.array([r.mce for r in reports], np.float64)
            out["mean corruption error"] = np.array([r.mean_error for r in reports])
        for label in self.attack_labels:
            out[f"accuracy {label}"] = np.array([r.adversarial_accuracy(label) for r in reports])
        if len(self.attack_labels) > 1:
            out[MEAN_ADVERSARIAL] = np.mean([out[f"accuracy {a}"] for a in self.attack_labels], axis=0)
        return {**out, **self.external}

    def scores(self) -> dict[str, np.ndarray]:
        return {
            "score": np.array([float(e.result.score.value) for e in self.entries]),
            "score_signed": np.array([float(e.result.score_signed.value) for e in self.entries]),
        }

    def rows(self) -> list[dict[str, Any]]:
        """One dict per model: the columns of compare.csv."""
        measures = self.measures()
        clean, _ = self.clean_accuracy()
        rows = []
        for k, e in enumerate(self.entries):
            r, rep = e.result, e.report
            row = {
                "model": e.name,
                "group": e.group,
                "clean_accuracy": float(clean[k]),
                **r.score_columns(),
                "sid": " ".join(f"{v:.3f}" for v in np.asarray(r.sid.value)),
                "iaside_images": r.data.get("n_images"),
                "robustness_images": None if rep is None else rep.data.get("n_images"),
            }
            row.update({name: float(values[k]) for name, values in measures.items()})
            rows.append(row)
        return rows

    def table(self) -> str:
        """Markdown: one row per model, then the correlations."""
        measures = list(self.measures())
        short = {"mean corruption error": "mean err", MEAN_ADVERSARIAL: "adv acc (mean)"}
        head = ["model", "clean acc", "score [95% CI]", "score_signed [95% CI]", *[short.get(m, m) for m in measures]]
        lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for row in self.rows():
            cells = [
                row["model"],
                _num(row["clean_accuracy"]),
                f"{row['score']:.3f} [{row['score_low']:.3f}, {row['score_high']:.3f}]",
                f"{row['score_signed']:+.3f} [{row['score_signed_low']:+.3f}, {row['score_signed_high']:+.3f}]",
                *[_num(row[m]) for m in measures],
            ]
            lines.append("| " + " | ".join(cells) + " |")
        return "\n".join(lines)

    def correlation_table(self) -> str:
        head = ["score", "measure", *[f"{m} r [95% CI], p" for m in METHODS]]
        lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        pairs = dict.fromkeys((c.x, c.y) for c in self.correlations)
        for x, y in pairs:
            cells = [x, y]
            for method in METHODS:
                c = next(c for c in self.correlations if (c.x, c.y, c.method) == (x, y, method))
                cells.append(f"{c.r:+.2f} [{c.low:+.2f}, {c.high:+.2f}], p={c.p_value:.2g}")
            lines.append("| " + " | ".join(cells) + " |")
        return "\n".join(lines)

    def partial_table(self) -> str:
        """Markdown: the partial correlations controlling for clean accuracy."""
        _, source = self.clean_accuracy()
        head = ["score", "measure", *[f"partial {m} r [95% CI], p" for m in PARTIAL_METHODS]]
        lines = [
            f"controlling for clean accuracy from {source}:",
            "| " + " | ".join(head) + " |",
            "|" + "---|" * len(head),
        ]
        for x, y in dict.fromkeys((c.x, c.y) for c in self.partial):
            cells = [x, y]
            for c in (c for c in self.partial if (c.x, c.y) == (x, y)):
                cells.append(
                    f"{c.r:+.2f} [{c.low:+.2f}, {c.high:+.2f}], p={c.p_value:.2g}"
                    if np.isfinite(c.r)
                    else f"n/a ({c.p_method})"
                )
            lines.append("| " + " | ".join(cells) + " |")
        return "\n".join(lines)

    def save(self, out_dir: str | os.PathLike, plots: bool = True) -> Path:
        """compare.json, compare.csv, correlations.csv, partial_correlations.csv (with partial
        correlations) and (with plots) the figures of ``plot``; returns the folder."""
        from .comparison_files import save_comparison

        return save_comparison(self, out_dir, plots)

    def plot(self, out_dir: str | os.PathLike, prefix: str = "") -> list[Path]:
        """sids.png and, per measure, the score and score_signed against it (score_vs_*.png)."""
        from .comparison_files import plot_comparison

        return plot_comparison(self, out_dir, prefix)

    def to_json_dict(self) -> dict[str, Any]:
        return {
            "reference": self.reference,
            "attacks": self.attack_labels,
            "models": self.rows(),
            "partial_correlations": [c.to_dict() for c in self.partial],
            "sids": {
                e.name: {
                    "value": np.asarray(e.result.sid.value).tolist(),
                    "low": np.asarray(e.result.sid.low).tolist(),
                    "high": np.asarray(e.result.sid.high).tolist(),
                }
                for e in self.entries
            },
            "correlations": [c.to_dict() for c in self.correlations],
            "meta": self.meta,
        }


def _num(v: float) -> str:
    return "n/a" if v is None or not np.isfinite(v) else f"{v:.3f}"


def compare_models(
    entries: Sequence[ModelEntry],
    *,
    reference: str | None = None,
    external: ExternalTable | None = None,
    n_bootstrap: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
) -> Comparison:
    """Put every report on the same reference model and correlate the scores with the measures.

    reference: the name of one entry (default the first). Adversarial columns are the attacks
    every model was measured with. external: per-model numbers joined by model name (see
    ``external.join``); with it, entries may come without a report (then only the external
    measures are used). Every (score, measure) pair also gets partial Pearson and Spearman
    correlations controlling for clean accuracy (``Comparison.clean_accuracy`` says from where).
    """
    entries = list(entries)
    names = [e.name for e in entries]
    missing = _check_entries(entries, external)
    meta: dict[str, Any] = {"n_bootstrap": n_bootstrap, "confidence": confidence, "seed": seed}
    columns = _join_external(names, external, meta) if external is not None else {}
    common: list[str] = []
    if missing:
        reference = ""
    else:
        entries, reference, common = _on_reference(entries, reference or names[0])
    comparison = Comparison(entries, reference, common, [], meta=meta, external=columns)
    scores, measures = comparison.scores(), comparison.measures()
    comparison.correlations = correlation_table(
        scores, measures, n_bootstrap=n_bootstrap, confidence=confidence, seed=seed
    )
    clean, source = comparison.clean_accuracy()
    comparison.meta["clean_accuracy_source"] = source
    clean_column = meta.get("external_clean_metric")
    comparison.partial = [
        partial_correlate(
            sx,
            my,
            clean,
            method,
            x_name=xs,
            y_name=ym,
            z_name="clean accuracy",
            n_bootstrap=n_bootstrap,
            confidence=confidence,
            seed=seed,
        )
        for xs, sx in scores.items()
        for ym, my in measures.items()
        if ym != clean_column
        for method in PARTIAL_METHODS
    ]
    return comparison


def _check_entries(entries: list[ModelEntry], external: ExternalTable | None) -> list[str]:
    """Refuse fewer than two models, a name twice, or a model without numbers; returns the
    names of the models without a report (their numbers come from ``external``)."""
    if len(entries) < 2:
        raise IasideError(f"compare needs at least 2 models, got {len(entries)}")
    names = [e.name for e in entries]
    if len(set(names)) != len(names):
        raise IasideError(f"model names must be unique, got {names}; pass --name for each model")
    missing = [e.name for e in entries if e.report is None]
    if missing and external is None:
        raise IasideError(
            f"no robustness report for {', '.join(missing)}: run `iaside robustness` or give "
            "--external with their numbers"
        )
    return missing


def _join_external(names: list[str], external: ExternalTable, meta: dict[str, Any]) -> dict[str, np.ndarray]:
    """The external table's columns, one value per model (joined by name); what matched goes into ``meta``."""
    columns, unmatched, unused = join(names, external)
    if len(unmatched) == len(names):
        raise IasideError(
            f"no model name matches a row of {external.source} (models: {', '.join(names)}; "
            f"rows: {', '.join(list(external.values)[:8])}); name the models as the table does"
        )
    meta.update(
        external_source=external.source,
        external_clean_metric=external.clean_metric(),
        external_unmatched_models=unmatched,
        external_unused_rows=unused,
    )
    return columns


def _on_reference(entries: list[ModelEntry], reference: str) -> tuple[list[ModelEntry], str, list[str]]:
    """Every entry's report relative to the ``reference`` entry's, and the attacks all were measured with."""
    names = [e.name for e in entries]
    if reference not in names:
        raise IasideError(f"--reference {reference!r} is not one of the compared models: {', '.join(names)}")
    reports = [e.report for e in entries if e.report is not None]  # every entry has one: none is missing
    ref_report = reports[names.index(reference)]
    reports = [r.with_reference(ref_report) for r in reports]
    entries = [ModelEntry(e.name, e.result, r, e.group) for e, r in zip(entries, reports)]
    labels = [a["label"] for a in reports[0].adversarial]
    common = [a for a in labels if all(a in {r["label"] for r in rep.adversarial} for rep in reports)]
    return entries, reference, common
