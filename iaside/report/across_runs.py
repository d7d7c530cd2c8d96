"""The report's sections across runs: the summary table (runs ranked by score), the SIDs and
scores side by side with a note where the runs differ, and the score against measured
robustness with Spearman, Kendall and Pearson correlations across models."""

from __future__ import annotations

import numpy as np

from . import figures
from .loading import RunView, short_data
from .markup import _anchor, _e, _figure, _interval, _table

MIN_RUNS_FOR_CORRELATION = 3


def _summary_section(runs: list[RunView]) -> str:
    order = sorted(range(len(runs)), key=lambda k: -float(runs[k].result.score.value))
    rows = []
    for rank, k in enumerate(order, 1):
        r = runs[k].result
        assert r.interpretation is not None  # set when a Result is made
        rows.append(
            (
                str(rank),
                f'<a href="#{_anchor(k)}">{_e(runs[k].name)}</a>',
                f'<span title="{_e(r.data.get("spec"))}">{_e(short_data(r.data.get("spec")))}</span>',
                _e(r.data.get("n_images")),
                _e(
                    f"M={r.config.get('bands')} {r.config.get('partition')} {r.config.get('fill')}"
                    + (f" preset={r.config['preset']}" if r.config.get("preset") else "")
                ),
                "-" if r.clean_accuracy is None else f"{r.clean_accuracy:.3f}",
                _e(_interval(r.score)),
                _e(_interval(r.score_signed, signed=True)),
                f"{r.low_band_share():.3f}",
                "yes" if r.informative else f'<b>no</b> <span class="muted">{_e(r.interpretation["why"])}</span>',
            )
        )
    return (
        "<h2 id=summary>Summary</h2><p>Runs ranked by the paper's robustness score (higher = more importance "
        "on low, robust frequencies). Intervals are bootstrap percentile intervals over images.</p>"
        + _table(
            [
                "#",
                "model",
                "data",
                "N",
                "configuration",
                "clean top-1",
                "score [CI]",
                "score_signed [CI]",
                "low-band share",
                "informative",
            ],
            rows,
            numeric=(3, 5, 6, 7, 8),
        )
    )


def _mismatch_note(runs: list[RunView]) -> str:
    keys = ("bands", "partition", "fill", "synthesis", "clip", "preset", "labels", "beta")
    differing = [k for k in keys if len({str(run.result.config.get(k)) for run in runs}) > 1]
    data = {str(run.result.data.get("spec")) for run in runs}
    if len(data) > 1:
        differing.append("data set")
    sizes = [run.result.data.get("n_images") for run in runs]
    if len(set(sizes)) > 1:
        differing.append("number of images (N = " + ", ".join(str(n) for n in sizes) + ")")
    names = {tuple(str(n) for n in run.result.per_image.get("names", [])) for run in runs}
    if len(names) > 1 and len(data) == 1 and len(set(sizes)) == 1:
        differing.append("images (the image names differ)")
    if not differing:
        return ""
    return (
        f'<p class="note">These runs differ in {", ".join(differing)}: their SIDs and scores are not measured '
        "on the same footing, so compare them with care.</p>"
    )


def _correlations(x: np.ndarray, y: np.ndarray) -> list[str]:
    """Spearman, Kendall and Pearson cells: 'r (p = …, 95% CI [low, high])', the interval a
    bootstrap over models (``iaside.robustness.correlation``), or without it when that is absent."""
    try:
        from ..robustness.correlation import correlate
    except ImportError:
        correlate = None  # type: ignore[assignment]
    cells = []
    for method in ("spearman", "kendall", "pearson"):
        if correlate is not None:
            c = correlate(x, y, method)
            r, p, interval = c.r, c.p_value, (c.low, c.high)
        else:
            from scipy import stats

            res = {"spearman": stats.spearmanr, "kendall": stats.kendalltau, "pearson": stats.pearsonr}[method](x, y)
            r, p, interval = float(res[0]), float(res[1]), (float("nan"), float("nan"))
        if not np.isfinite(r):
            cells.append("n/a")
            continue
        detail = f"p = {p:.3g}" + (
            f", 95% CI [{interval[0]:+.2f}, {interval[1]:+.2f}]" if np.all(np.isfinite(interval)) else ""
        )
        cells.append(f'<b>{r:+.3f}</b> <span class="muted">({detail})</span>')
    return cells


def _robustness_section(runs: list[RunView]) -> str:
    with_metrics = [run for run in runs if run.robustness]
    if not with_metrics:
        return ""
    metric_names = sorted({name for run in with_metrics for name in run.robustness})
    parts = [
        "<h2 id=robustness>Score against measured robustness</h2>",
        "<p>Measured robustness read from each run's robustness.json (or the files given with --robustness). "
        "A score that explains robustness rises with accuracy under attack and falls as the corruption error "
        "(mCE) rises: expect positive correlations with accuracies and negative ones with errors.</p>",
    ]
    sources = [
        (
            _e(run.name),
            _e(", ".join(run.robustness_sources))
            + "".join(f'<br><span class="note">{_e(m)}</span>' for m in run.robustness_mismatches),
        )
        for run in with_metrics
    ]
    parts.append(_table(["model", "robustness file"], sources))
    sizes = {run.name: run.result.data.get("n_images") for run in with_metrics}
    if len(set(sizes.values())) > 1 or any(run.robustness_mismatches for run in with_metrics):
        parts.append(
            '<p class="note">These numbers combine runs and robustness files measured on different images '
            f"(I-ASIDE N per model: {_e(', '.join(f'{k} {v}' for k, v in sizes.items()))}); the "
            "correlations below mix them.</p>"
        )
    values_rows = [
        [_e(run.name)] + [f"{run.robustness[m].value:.4g}" if m in run.robustness else "-" for m in metric_names]
        for run in runs
    ]
    parts.append(_table(["model", *metric_names], values_rows, numeric=tuple(range(1, len(metric_names) + 1))))
    corr_rows, plots, skipped = [], [], []
    for metric in metric_names:
        have = [run for run in runs if metric in run.robustness]
        higher = have[0].robustness[metric].higher_is_better
        values = np.array([run.robustness[metric].value for run in have])
        if len(have) < MIN_RUNS_FOR_CORRELATION or np.ptp(values) == 0:
            skipped.append(f"{metric} ({len(have)} model(s)" + (", all equal" if np.ptp(values) == 0 else "") + ")")
            continue
        plots.append(
            _figure(
                figures.score_vs_robustness(
                    [run.name for run in have], [run.result.score for run in have], values, metric, higher
                ),
                f"score against {metric}",
                f"I-ASIDE score (with its interval) against {_e(metric)} "
                f"({'higher' if higher else 'lower'} = more robust), one point per model.",
            )
        )
        for attr in ("score", "score_signed"):
            x = np.array([float(getattr(run.result, attr).value) for run in have])
            cells = _correlations(x, values) if np.ptp(x) > 0 else ["n/a (equal scores)"] * 3
            corr_rows.append((_e(metric), attr, str(len(have)), "higher" if higher else "lower", *cells))
    parts.append('<div class="cols">' + "".join(plots) + "</div>")
    if corr_rows:
        parts.append("<h3>Correlations across models</h3>")
        parts.append(
            _table(
                ["robustness number", "against", "models", "more robust is", "Spearman ρ", "Kendall τ", "Pearson r"],
                corr_rows,
                numeric=(2,),
            )
        )
    if skipped:
        parts.append(
            f'<p class="note">No scatter or correlation for {_e("; ".join(skipped))}: that needs at least '
            f"{MIN_RUNS_FOR_CORRELATION} models with different values.</p>"
        )
    parts.append(
        '<p class="muted">p-values: scipy\'s two-sided tests on these models; intervals: percentile '
        "bootstrap over models (resampled with replacement). A handful of models is an illustration, "
        "not evidence.</p>"
    )
    return "".join(parts)


def _comparison_section(runs: list[RunView]) -> str:
    if len(runs) < 2:
        return ""
    names = [run.name for run in runs]
    results = [run.result for run in runs]
    return (
        "<h2 id=comparison>Across runs</h2>"
        + _mismatch_note(runs)
        + _figure(
            figures.sid_comparison(names, results),
            "SIDs side by side",
            "SID of every run per band, with bootstrap intervals. Mass on the left (low bands) means reliance on "
            "features that survive perturbations.",
        )
        + _figure(
            figures.score_ranking(names, results),
            "scores ranked",
            "score and score_signed with bootstrap intervals, best score on top. Overlapping intervals mean the "
            "ranking is not settled by these images.",
        )
    )
