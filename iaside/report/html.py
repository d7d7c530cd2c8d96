"""``iaside report``: one self-contained HTML file for one or more finished runs.

Pictures are embedded as base64 PNG, the style sheet is inline and there is no script, so the
file opens anywhere without network access. Per run: the configuration, the SID and φ with
intervals, score and score_signed with intervals, v(S) against coalition size, per-class SIDs,
and the images whose own SID deviates most from the global one, with their band images.
Across runs: SIDs side by side, the scores ranked, and, where robustness results exist, the
score against each robustness number with Spearman, Kendall and Pearson correlations.
The pieces: ``markup.py`` (style sheet, tables, figures), ``run_section.py`` (one run),
``across_runs.py`` (summary, comparison, robustness).
"""

from __future__ import annotations

import datetime as _dt
import os
from collections.abc import Sequence
from pathlib import Path

from .. import __version__
from ..runs import atomic_write
from .across_runs import MIN_RUNS_FOR_CORRELATION, _comparison_section, _robustness_section, _summary_section
from .loading import load_runs
from .markup import CSS, _anchor, _e, _figure, _img, _table
from .run_section import _run_section, band_table_html, interpretation_html

__all__ = [  # what the views, the notebook and the tests import from here
    "MIN_RUNS_FOR_CORRELATION",
    "_e",
    "_figure",
    "_img",
    "_table",
    "band_table_html",
    "build_report",
    "interpretation_html",
    "write_report",
]


def build_report(
    run_dirs: Sequence[str | os.PathLike],
    *,
    robustness_files: Sequence[str | os.PathLike] = (),
    max_images: int = 4,
    with_images: bool = True,
    title: str | None = None,
) -> str:
    """The report of ``run_dirs`` (``--out`` folders of finished runs) as one HTML string."""
    runs = load_runs(list(run_dirs), list(robustness_files))
    title = title or ("I-ASIDE report: " + ", ".join(run.name for run in runs))
    nav = " ".join(
        [f'<a href="#{_anchor(k)}">{_e(run.name)}</a>' for k, run in enumerate(runs)]
        + (['<a href="#comparison">across runs</a>'] if len(runs) > 1 else [])
        + (['<a href="#robustness">robustness</a>'] if any(run.robustness for run in runs) else [])
    )
    now = _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")
    body = [
        f"<h1>{_e(title)}</h1>",
        f'<p class="muted">Generated {now} by iaside {_e(__version__)}. I-ASIDE splits every image\'s spectrum into '
        "M bands and shares the predictive information, v(S) = mean log p(y | x<sub>S</sub>) in nats, among the "
        "bands with exact Shapley values; the SID is how that importance spreads from low to high frequency.</p>",
        f"<nav>{nav}</nav>",
        _summary_section(runs),
        _comparison_section(runs),
        _robustness_section(runs),
        *[_run_section(k, run, max_images, with_images) for k, run in enumerate(runs)],
    ]
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{_e(title)}</title><style>{CSS}</style></head><body><main>"
        + "\n".join(part for part in body if part)
        + "</main></body></html>\n"
    )


def write_report(run_dirs: Sequence[str | os.PathLike], out: str | os.PathLike, **kwargs) -> Path:
    """Write ``build_report(run_dirs, **kwargs)`` to ``out`` (atomically); returns the path."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    text = build_report(run_dirs, **kwargs)
    return atomic_write(out, text)
