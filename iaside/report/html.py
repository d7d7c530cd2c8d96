"""``iaside report``: one self-contained HTML file for one or more finished runs.

Pictures are embedded as base64 PNG, the style sheet is inline and there is no script, so the
file opens anywhere without network access. Per run: the configuration, the SID and φ with
intervals, score and score_signed with intervals, v(S) against coalition size, per-class SIDs,
and the images whose own SID deviates most from the global one, with their band images.
Across runs: SIDs side by side, the scores ranked, and, where robustness results exist, the
score against each robustness number with Spearman, Kendall and Pearson correlations.
"""
from __future__ import annotations

import datetime as _dt
import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from .. import __version__
from ..runs import atomic_write
from ..summary import sid_from_phi
from ..display import escape as _e
from ..display import img_tag as _img
from . import figures
from .loading import RunView, band_images, load_runs, reopen_images, short_data

MIN_RUNS_FOR_CORRELATION = 3

_CSS = """
:root { --ink: #1a202c; --muted: #4a5568; --line: #e2e8f0; --accent: #2b6cb0; }
* { box-sizing: border-box; }
body { font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: var(--ink);
       margin: 0; background: #f7fafc; }
main { max-width: 1180px; margin: 0 auto; padding: 16px 24px 48px; background: white; }
h1 { font-size: 1.6em; margin: 0.4em 0 0.2em; }
h2 { font-size: 1.3em; margin: 1.6em 0 0.4em; padding-top: 0.6em; border-top: 2px solid var(--line); }
h3 { font-size: 1.05em; margin: 1.2em 0 0.3em; }
p, li { max-width: 80ch; }
.muted { color: var(--muted); font-size: 0.9em; }
.note { background: #fffaf0; border-left: 4px solid #dd6b20; padding: 6px 10px; margin: 8px 0; }
.uninformative { background: #fff5f5; border-left: 4px solid #c53030; padding: 6px 10px; margin: 8px 0; }
tr.shifted td { background: #f7fafc; }
table { border-collapse: collapse; margin: 6px 0 12px; font-size: 0.9em; }
th, td { border-bottom: 1px solid var(--line); padding: 3px 10px 3px 0; text-align: left; vertical-align: top; }
th { color: var(--muted); font-weight: 600; }
td.num { font-variant-numeric: tabular-nums; text-align: right; white-space: nowrap; }
figure { margin: 8px 0 14px; }
figure img { max-width: 100%; height: auto; border: 1px solid var(--line); }
figcaption { color: var(--muted); font-size: 0.85em; max-width: 100ch; }
.cols { display: grid; grid-template-columns: repeat(auto-fit, minmax(420px, 1fr)); gap: 8px 24px; }
.key { display: flex; flex-wrap: wrap; gap: 8px; margin: 8px 0; }
.key div { border: 1px solid var(--line); border-radius: 6px; padding: 5px 10px; min-width: 130px; }
.key b { display: block; font-size: 1.1em; font-variant-numeric: tabular-nums; }
.key span { color: var(--muted); font-size: 0.8em; }
nav a { margin-right: 12px; }
a { color: var(--accent); }
"""


def _figure(png: bytes, alt: str, caption: str) -> str:
    return f"<figure>{_img(png, alt)}<figcaption>{caption}</figcaption></figure>"


def _interval(est, signed: bool = False, digits: int = 4) -> str:
    f = f"{{:{'+' if signed else ''}.{digits}f}}"
    text = f.format(float(est.value))
    low, high = float(est.low), float(est.high)
    if np.isfinite(low) and np.isfinite(high):
        text += f" [{f.format(low)}, {f.format(high)}]"
    return text


def _table(headers: Sequence[str], rows: Sequence[Sequence[Any]], numeric: Sequence[int] = ()) -> str:
    head = "".join(f"<th>{_e(h)}</th>" for h in headers)
    body = "".join(
        "<tr>" + "".join(f'<td class="num">{c}</td>' if i in numeric else f"<td>{c}</td>" for i, c in enumerate(row))
        + "</tr>"
        for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _anchor(k: int) -> str:
    return f"run-{k + 1}"


def _class_names(result) -> list[str] | None:
    """ImageNet class names for a 1000-class model, when the package that has them is installed."""
    if result.model.get("num_classes") != 1000:
        return None
    try:
        from ..models.lite import imagenet_class_names

        return imagenet_class_names()
    except ImportError:
        return None


def _numbers(values) -> str:
    return "(" + ", ".join(f"{float(v):.4g}" for v in values) + ")" if values else "-"


def _config_rows(run: RunView) -> list[tuple[str, str]]:
    r = run.result
    cfg, data, meta, model = r.config, r.data, r.meta, r.model
    dc = data.get("data_config") or {}
    timings = meta.get("timings_s") or {}
    rows = [
        ("run folder", _e(run.run_dir)),
        ("model", f"{_e(model.get('spec'))} <span class=muted>fingerprint {_e(model.get('fingerprint'))}, "
                  f"{_e(model.get('num_classes'))} classes</span>"),
        ("data", f"{_e(data.get('spec'))} <span class=muted>fingerprint {_e(data.get('fingerprint'))}</span>"),
        ("images", f"{_e(data.get('n_images'))} (labels {_e(cfg.get('labels'))})"),
        ("preprocessing", _e(f"resize {dc.get('resize_size')} ({dc.get('interpolation')}), crop "
                             f"{'x'.join(str(v) for v in dc.get('input_size', []))}, mean {_numbers(dc.get('mean'))}, "
                             f"std {_numbers(dc.get('std'))} (pixel units in [0, 1])")),
        ("bands", _e(f"M = {cfg.get('bands')}, partition {cfg.get('partition')}, synthesis {cfg.get('synthesis')}")),
        ("fill", _e(f"{cfg.get('fill')}" + (", clipped to [0, 1]" if cfg.get("clip") else ", no clipping"))),
        ("preset", _e(cfg.get("preset") or "none")),
        ("bootstrap", _e(f"{cfg.get('n_bootstrap')} resamples, {100 * cfg.get('confidence', 0.95):.0f}% "
                         f"percentile intervals, seed {cfg.get('seed')}")),
        ("score weights", _e(f"β = {cfg.get('beta')}")),
        ("cost", _e(f"{meta.get('forward_passes')} forward passes on {meta.get('device')} ({meta.get('precision')}, "
                    f"batch {meta.get('batch_size')}); wall {timings.get('wall', float('nan')):.1f} s")),
        ("versions", _e(f"iaside {meta.get('iaside_version')}, torch {meta.get('torch_version')}, numpy "
                        f"{meta.get('numpy_version')}, Python {meta.get('python')} ({meta.get('machine')})")),
        ("created", _e(meta.get("created"))),
    ]
    return rows


def _key_numbers(r) -> str:
    ci = int(round(100 * r.config.get("confidence", 0.95)))
    boxes = [
        ("score", _interval(r.score), f"paper formula, {ci}% CI"),
        ("score_signed", _interval(r.score_signed, signed=True), "1 = band 0 only, 0 = uniform"),
        ("clean top-1", "-" if r.clean_accuracy is None else f"{r.clean_accuracy:.3f}", "accuracy on these images"),
        ("low-band share", f"{r.low_band_share():.3f}", f"SID on the lowest {max(1, r.n_bands // 4)} band(s)"),
    ]
    empty, full = figures.value_of(r, 0), figures.value_of(r, 2**r.n_bands - 1)
    if empty is not None and full is not None:
        boxes.append(("v(N) − v(∅)", f"{full - empty:+.3f} nats", f"= Σφ (gap {r.efficiency_gap:.1e})"))
    return '<div class="key">' + "".join(
        f"<div><span>{_e(name)}</span><b>{_e(value)}</b><span>{_e(sub)}</span></div>" for name, value, sub in boxes
    ) + "</div>"


def _deviating_section(run: RunView, max_images: int, class_names, with_images: bool) -> str:
    r = run.result
    phi_img = r.per_image.get("phi_per_image")
    if phi_img is None or len(phi_img) == 0:
        return '<p class="note">per_image.npz is missing, so per-image SIDs cannot be shown.</p>'
    sid_img = sid_from_phi(np.asarray(phi_img, dtype=np.float64))
    sid_global = np.asarray(r.sid.value, dtype=np.float64)
    distance = 0.5 * np.abs(sid_img - sid_global).sum(axis=1)  # total variation, in [0, 1]
    order = np.argsort(-distance, kind="stable")[:max_images]
    names = [str(n) for n in r.per_image.get("names", [str(i) for i in range(len(phi_img))])]
    labels = r.per_image.get("label")
    top1 = r.per_image.get("clean_top1")
    pixels, note = ({}, None)
    if with_images:
        pixels, note = reopen_images(r, [names[i] for i in order], run.run_dir)
    else:
        note = "band images were switched off (--no-images)"
    parts = [
        f"<p>The {len(order)} of {len(names)} images whose own SID (from their own φ) is farthest from the global "
        "SID, by total-variation distance ½Σ|SID<sub>image</sub> − SID| (0 = same, 1 = disjoint). Band images: band 0 "
        "as it is; each of the others with its own contrast stretch (its luminance, 1st–99th percentile to "
        "black–white, gain shown), so their brightness is not comparable across bands. The band images sum to "
        "the image.</p>"
    ]
    if note:
        parts.append(f'<p class="note">{_e(note)}</p>')
    for i in order:
        name = names[i]
        label = int(labels[i]) if labels is not None else None

        def cls(k):
            if k is None:
                return "?"
            return f"{k} ({class_names[k]})" if class_names is not None and 0 <= k < len(class_names) else str(k)

        title = (f"{name}: label {cls(label)}, clean top-1 {cls(int(top1[i]) if top1 is not None else None)}, "
                 f"distance {distance[i]:.3f}")
        px = pixels.get(name)
        if px is not None:
            bands = band_images(px, r.n_bands, r.config.get("partition", "linf"))
            png = figures.deviating_image(px.numpy(), bands, sid_img[i], sid_global)
        else:
            png = figures.deviating_image(None, None, sid_img[i], sid_global)
        parts.append(f"<figure><figcaption><b>{_e(name)}</b>{_e(title.removeprefix(name))}</figcaption>"
                     f"{_img(png, f'band images and SID of {name}')}</figure>")
    return "".join(parts)


def interpretation_html(r) -> str:
    """The run's interpretation sentence, or a plain statement that there is nothing to interpret."""
    reading = r.interpretation
    if reading["informative"]:
        return f"<p>{_e(reading['sentence'])}</p>"
    return (f'<p class="uninformative"><b>Not informative.</b> {_e(reading["why"])}. Nothing in this run is '
            "evidence about the model: the SID, φ and scores below are shown for completeness only.</p>")


def band_table_html(r) -> str:
    """Per band: SID and φ with intervals and the signed share φ/Σφ; the band the min-shift sets
    to 0 marked, with a one-line note."""
    ci = int(round(100 * r.config.get("confidence", 0.95)))
    shifted = r.min_shift_band()
    rows = [
        (f"{i} *" if i == shifted else str(i), f"{r.sid.value[i]:.4f}", f"[{r.sid.low[i]:.4f}, {r.sid.high[i]:.4f}]",
         f"{r.shares.value[i]:+.3f}", f"{r.phi.value[i]:+.4f}", f"[{r.phi.low[i]:+.4f}, {r.phi.high[i]:+.4f}]")
        for i in range(r.n_bands)
    ]
    return (_table(["band", "SID", f"{ci}% CI", "φ/Σφ", "φ (nats)", f"{ci}% CI"], rows, numeric=(1, 2, 3, 4, 5))
            + f'<p class="muted">* band {shifted} has the smallest φ: the paper\'s SID shifts every φ by it '
            "(ψ = φ − min φ), so its SID is 0 by construction; φ/Σφ is the signed share, which keeps it.</p>")


def _run_section(k: int, run: RunView, max_images: int, with_images: bool) -> str:
    r = run.result
    class_names = _class_names(r)
    ci = int(round(100 * r.config.get("confidence", 0.95)))
    parts = [f'<h2 id="{_anchor(k)}">{k + 1}. {_e(run.name)}</h2>', interpretation_html(r), _key_numbers(r)]
    parts += [f'<p class="note">{_e(n)}</p>' for n in run.notes]
    parts.append('<div class="cols"><div><h3>Configuration</h3>'
                 + _table(["", ""], [(f"<b>{a}</b>", b) for a, b in _config_rows(run)]) + "</div>"
                 + "<div><h3>Per band</h3>" + band_table_html(r) + "</div></div>")
    parts.append("<h3>Spectral importance</h3>")
    parts.append(_figure(figures.sid_phi(r), f"SID and phi of {run.name}",
                         "Left: SID = ψ/Σψ with ψ = φ − min φ (the least important band gets 0, marked); the dashed "
                         "line is a "
                         "uniform SID. Right: the raw Shapley values φ in nats (Σφ = v(N) − v(∅)). Whiskers: "
                         f"{ci}% bootstrap percentile intervals over images."))
    parts.append('<div class="cols">')
    parts.append(_figure(figures.coalition_values(r), f"v(S) against coalition size for {run.name}",
                         "Every coalition evaluated on all images (all 2<sup>M</sup> for the exact estimator; only the "
                         "empty and full ones when each image draws its own permutations): v(S), the mean "
                         "log-probability of the label when only the bands in S are kept (the others replaced by the "
                         "fill), against |S|. Small horizontal jitter separates the points."))
    heat, left_out = figures.per_class_heatmap(r, class_names)
    parts.append(_figure(heat, f"per-class SIDs of {run.name}",
                         "SID of each class from the mean per-image φ of its images"
                         + (f"; {left_out} smaller classes not shown" if left_out else "") + "."))
    parts.append("</div>")
    from .views import views_section

    parts.append(views_section(r, run.name, run.run_dir))
    parts.append("<h3>Images that deviate most from the global SID</h3>")
    parts.append(_deviating_section(run, max_images, class_names, with_images))
    return "".join(parts)


def _summary_section(runs: list[RunView]) -> str:
    order = sorted(range(len(runs)), key=lambda k: -float(runs[k].result.score.value))
    rows = []
    for rank, k in enumerate(order, 1):
        r = runs[k].result
        rows.append((
            str(rank), f'<a href="#{_anchor(k)}">{_e(runs[k].name)}</a>',
            f'<span title="{_e(r.data.get("spec"))}">{_e(short_data(r.data.get("spec")))}</span>',
            _e(r.data.get("n_images")),
            _e(f"M={r.config.get('bands')} {r.config.get('partition')} {r.config.get('fill')}"
               + (f" preset={r.config['preset']}" if r.config.get("preset") else "")),
            "-" if r.clean_accuracy is None else f"{r.clean_accuracy:.3f}",
            _e(_interval(r.score)), _e(_interval(r.score_signed, signed=True)), f"{r.low_band_share():.3f}",
            "yes" if r.informative else f'<b>no</b> <span class="muted">{_e(r.interpretation["why"])}</span>',
        ))
    return ("<h2 id=summary>Summary</h2><p>Runs ranked by the paper's robustness score (higher = more importance "
            "on low, robust frequencies). Intervals are bootstrap percentile intervals over images.</p>"
            + _table(["#", "model", "data", "N", "configuration", "clean top-1", "score [CI]", "score_signed [CI]",
                      "low-band share", "informative"], rows, numeric=(3, 5, 6, 7, 8)))


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
    return (f'<p class="note">These runs differ in {", ".join(differing)}: their SIDs and scores are not measured '
            "on the same footing, so compare them with care.</p>")


def _correlations(x: np.ndarray, y: np.ndarray) -> list[str]:
    """Spearman, Kendall and Pearson cells: 'r (p = …, 95% CI [low, high])', the interval a
    bootstrap over models (``iaside.robustness.correlation``), or without it when that is absent."""
    try:
        from ..robustness.correlation import correlate
    except ImportError:
        correlate = None
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
        detail = f"p = {p:.3g}" + (f", 95% CI [{interval[0]:+.2f}, {interval[1]:+.2f}]"
                                   if np.all(np.isfinite(interval)) else "")
        cells.append(f'<b>{r:+.3f}</b> <span class="muted">({detail})</span>')
    return cells


def _robustness_section(runs: list[RunView]) -> str:
    with_metrics = [run for run in runs if run.robustness]
    if not with_metrics:
        return ""
    metric_names = sorted({name for run in with_metrics for name in run.robustness})
    parts = ["<h2 id=robustness>Score against measured robustness</h2>",
             "<p>Measured robustness read from each run's robustness.json (or the files given with --robustness). "
             "A score that explains robustness rises with accuracy under attack and falls as the corruption error "
             "(mCE) rises: expect positive correlations with accuracies and negative ones with errors.</p>"]
    sources = [(_e(run.name), _e(", ".join(run.robustness_sources))
                + "".join(f'<br><span class="note">{_e(m)}</span>' for m in run.robustness_mismatches))
               for run in with_metrics]
    parts.append(_table(["model", "robustness file"], sources))
    sizes = {run.name: run.result.data.get("n_images") for run in with_metrics}
    if len(set(sizes.values())) > 1 or any(run.robustness_mismatches for run in with_metrics):
        parts.append('<p class="note">These numbers combine runs and robustness files measured on different images '
                     f'(I-ASIDE N per model: {_e(", ".join(f"{k} {v}" for k, v in sizes.items()))}); the '
                     "correlations below mix them.</p>")
    values_rows = [[_e(run.name)] + [
        f"{run.robustness[m].value:.4g}" if m in run.robustness else "-" for m in metric_names] for run in runs]
    parts.append(_table(["model", *metric_names], values_rows, numeric=tuple(range(1, len(metric_names) + 1))))
    corr_rows, plots, skipped = [], [], []
    for metric in metric_names:
        have = [run for run in runs if metric in run.robustness]
        higher = have[0].robustness[metric].higher_is_better
        values = np.array([run.robustness[metric].value for run in have])
        if len(have) < MIN_RUNS_FOR_CORRELATION or np.ptp(values) == 0:
            skipped.append(f"{metric} ({len(have)} model(s)" + (", all equal" if np.ptp(values) == 0 else "") + ")")
            continue
        plots.append(_figure(
            figures.score_vs_robustness([run.name for run in have], [run.result.score for run in have], values,
                                        metric, higher),
            f"score against {metric}", f"I-ASIDE score (with its interval) against {_e(metric)} "
                                       f"({'higher' if higher else 'lower'} = more robust), one point per model."))
        for attr in ("score", "score_signed"):
            x = np.array([float(getattr(run.result, attr).value) for run in have])
            cells = _correlations(x, values) if np.ptp(x) > 0 else ["n/a (equal scores)"] * 3
            corr_rows.append((_e(metric), attr, str(len(have)), "higher" if higher else "lower", *cells))
    parts.append('<div class="cols">' + "".join(plots) + "</div>")
    if corr_rows:
        parts.append("<h3>Correlations across models</h3>")
        parts.append(_table(["robustness number", "against", "models", "more robust is", "Spearman ρ", "Kendall τ",
                             "Pearson r"], corr_rows, numeric=(2,)))
    if skipped:
        parts.append(f'<p class="note">No scatter or correlation for {_e("; ".join(skipped))}: that needs at least '
                     f"{MIN_RUNS_FOR_CORRELATION} models with different values.</p>")
    parts.append('<p class="muted">p-values: scipy\'s two-sided tests on these models; intervals: percentile '
                 "bootstrap over models (resampled with replacement). A handful of models is an illustration, "
                 "not evidence.</p>")
    return "".join(parts)


def _comparison_section(runs: list[RunView]) -> str:
    if len(runs) < 2:
        return ""
    names = [run.name for run in runs]
    results = [run.result for run in runs]
    return (
        "<h2 id=comparison>Across runs</h2>" + _mismatch_note(runs)
        + _figure(figures.sid_comparison(names, results), "SIDs side by side",
                  "SID of every run per band, with bootstrap intervals. Mass on the left (low bands) means reliance on "
                  "features that survive perturbations.")
        + _figure(figures.score_ranking(names, results), "scores ranked",
                  "score and score_signed with bootstrap intervals, best score on top. Overlapping intervals mean the "
                  "ranking is not settled by these images.")
    )


def build_report(run_dirs: Sequence[str | os.PathLike], *, robustness_files: Sequence[str | os.PathLike] = (),
                 max_images: int = 4, with_images: bool = True, title: str | None = None) -> str:
    """The report of ``run_dirs`` (``--out`` folders of finished runs) as one HTML string."""
    runs = load_runs(list(run_dirs), list(robustness_files))
    title = title or ("I-ASIDE report: " + ", ".join(run.name for run in runs))
    nav = " ".join(
        [f'<a href="#{_anchor(k)}">{_e(run.name)}</a>' for k, run in enumerate(runs)]
        + (['<a href="#comparison">across runs</a>'] if len(runs) > 1 else [])
        + (['<a href="#robustness">robustness</a>'] if any(run.robustness for run in runs) else [])
    )
    now = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
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
        f"<title>{_e(title)}</title><style>{_CSS}</style></head><body><main>"
        + "\n".join(part for part in body if part)
        + "</main></body></html>\n"
    )


def write_report(run_dirs: Sequence[str | os.PathLike], out: str | os.PathLike, **kwargs) -> Path:
    """Write ``build_report(run_dirs, **kwargs)`` to ``out`` (atomically); returns the path."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    text = build_report(run_dirs, **kwargs)
    return atomic_write(out, text)
