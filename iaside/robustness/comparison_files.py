"""What a comparison of models writes: compare.json, compare.csv (one row per model), the
correlations and partial correlations as CSV (one row per score, measure and method), and its
figures (the SIDs side by side, each score against each robustness measure)."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .correlation import Correlation
from .report import write_csv

if TYPE_CHECKING:
    from .compare import Comparison

COMPARE_JSON = "compare.json"
PARTIAL_CSV = "partial_correlations.csv"
COMPARE_CSV = "compare.csv"
CORRELATIONS_CSV = "correlations.csv"


def save_comparison(comparison: Comparison, out_dir: str | os.PathLike, plots: bool = True) -> Path:
    """compare.json, compare.csv, correlations.csv, partial_correlations.csv (with partial
    correlations) and (with plots) sids.png, score_vs_mce.png, score_vs_adversarial.png and
    the same two for score_signed."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / COMPARE_JSON).write_text(json.dumps(_json_safe(comparison.to_json_dict()), indent=1))
    rows = comparison.rows()
    write_csv(out / COMPARE_CSV, [list(rows[0]), *[list(row.values()) for row in rows]])
    _write_correlations(out / CORRELATIONS_CSV, comparison.correlations)
    if comparison.partial:
        _write_correlations(out / PARTIAL_CSV, comparison.partial)
    if plots:
        plot_comparison(comparison, out)
    return out


def plot_comparison(comparison: Comparison, out_dir: str | os.PathLike, prefix: str = "") -> list[Path]:
    """sids.png and, per measure (mCE, adversarial accuracy, external columns), the score and
    score_signed against it with the Spearman correlation in the title."""
    from .compare import MEAN_ADVERSARIAL
    from .comparison_plots import plot_score_vs, plot_sids

    out = Path(out_dir)
    names = [e.name for e in comparison.entries]
    groups = [e.group for e in comparison.entries]
    scores = [e.result.score for e in comparison.entries]
    paths = [
        plot_sids(
            names,
            [e.result.sid for e in comparison.entries],
            [float(s.value) for s in scores],
            out / f"{prefix}sids.png",
            signed=[float(e.result.score_signed.value) for e in comparison.entries],
        )
    ]
    measures = comparison.measures()
    wanted = [("mCE", f"mCE (reference {comparison.reference}; lower = more robust)", "score_vs_mce.png")]
    adv = (
        MEAN_ADVERSARIAL
        if MEAN_ADVERSARIAL in measures
        else next((m for m in measures if m.startswith("accuracy ")), None)
    )
    if adv:
        wanted.append(
            (
                adv,
                adv + (f" over {', '.join(comparison.attack_labels)}" if adv == MEAN_ADVERSARIAL else ""),
                "score_vs_adversarial.png",
            )
        )
    for k, key in enumerate(comparison.external):
        wanted.append(
            (
                key,
                f"{key} ({comparison.meta.get('external_source', 'external table')})",
                f"score_vs_external{k + 1}.png",
            )
        )
    signed = [e.result.score_signed for e in comparison.entries]
    for key, label, file in wanted:
        if key not in measures:
            continue
        for x_name, x_values, x_file in (
            ("score", scores, file),
            ("score_signed", signed, file.replace("score_", "score_signed_")),
        ):
            corr = next((c for c in comparison.correlations if (c.x, c.y, c.method) == (x_name, key, "spearman")), None)
            paths.append(
                plot_score_vs(
                    names,
                    x_values,
                    measures[key],
                    label,
                    out / f"{prefix}{x_file}",
                    corr,
                    score_label=f"I-ASIDE {x_name}",
                    groups=groups if any(groups) else None,
                )
            )
    return paths


CORRELATION_COLUMNS = [
    "score",
    "measure",
    "method",
    "n",
    "r",
    "p_value",
    "ci_low",
    "ci_high",
    "n_bootstrap",
    "n_valid_resamples",
    "p_method",
]


def _write_correlations(path: Path, correlations: Sequence[Correlation]) -> None:
    """One CSV row per correlation (CORRELATION_COLUMNS)."""
    rows: list[list] = [CORRELATION_COLUMNS]
    for c in correlations:
        rows.append(
            [
                c.x,
                c.y,
                c.method,
                c.n,
                f"{c.r:.6f}",
                f"{c.p_value:.6g}",
                f"{c.low:.6f}",
                f"{c.high:.6f}",
                c.n_bootstrap,
                c.n_valid,
                c.p_method,
            ]
        )
    write_csv(path, rows)


def _json_safe(obj):
    if isinstance(obj, float):
        return obj if np.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_json_safe(v) for v in obj]
    return obj
