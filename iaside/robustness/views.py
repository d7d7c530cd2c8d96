"""What robustness and SNR results look like: their figures (the report's too), notebook views
(repr, HTML, DataFrames) and the PNG plots the commands write. The robustness package draws its
own results with the shared toolkit (``iaside.display``), so it never imports ``iaside.report``;
the report imports these. The figures that set models side by side are ``comparison_plots.py``
(re-exported here)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..display import _axes, _plt, escape, finite, img_tag, pandas, png, save_figure, tight, wrap
from ..errors import IasideError
from .comparison_plots import plot_score_vs, plot_sid_series, plot_sids
from .corruptions import family_of
from .snr import ring_centres

__all__ = [  # the comparison plots stay importable from here
    "FAMILY_COLOURS",
    "plot_score_vs",
    "plot_sid_series",
    "plot_sids",
    "plot_snr",
    "plot_snr_levels",
    "robustness_figure",
    "robustness_frame",
    "robustness_html",
    "robustness_repr",
    "snr_figure",
    "snr_frame",
    "snr_html",
    "snr_repr",
]

_STYLE = (
    "<style>.iaside td,.iaside th{padding:2px 8px;text-align:right;font-variant-numeric:tabular-nums}"
    ".iaside .bad{background:#fff5f5;border-left:4px solid #c53030;padding:4px 8px}"
    ".iaside .muted{color:#4a5568;font-size:0.9em}</style>"
)


def snr_figure(result, ax=None):
    """SNR (dB, mean over images) per band, one curve per perturbation family, with the fitted
    decay in the legend; without ``ax``, a second panel on the fine radial grid. Returns the Figure."""
    fams = result.families()
    if ax is None:
        fig, (left, right) = _plt().subplots(1, 2, figsize=(10, 4.4))
    else:
        fig, left, right = ax.figure, ax, None
    bands = np.arange(result.n_bands)
    for name, curve in fams.items():
        colour = FAMILY_COLOURS.get(name)
        fit = curve.fits["band"]
        left.plot(
            bands,
            finite(curve.band_db),
            "o-",
            color=colour,
            label=f"{name} ({fit['slope']:+.1f} dB/band, R² {fit['r2']:.2f})",
        )
        if right is not None:
            right.plot(ring_centres(result.n_rings), finite(curve.grid_db), "-", color=colour, label=name)
    for axis in (left, right):
        if axis is None:
            continue
        axis.axhline(0, color="black", linewidth=0.6, linestyle=":")
        axis.grid(alpha=0.3)
        axis.set_ylabel("SNR (dB, mean over images)")
    left.set_xlabel(f"band (0 = lowest of {result.n_bands}, {result.partition})")
    left.set_xticks(bands)
    if fams:
        left.legend(fontsize=7)
    if right is not None:
        right.set_xlabel(f"normalised radius ({result.n_rings} rings; Nyquist = 1)")
        right.set_xscale("log")
    n = result.curves[0].n_images if result.curves else 0
    title = (
        f"Spectral SNR of perturbations on {result.data.get('spec')} (N={n}); families averaged over members and levels"
    )
    if right is None:
        left.set_title(wrap(title, fig, 9), fontsize=9)
    else:
        fig.suptitle(wrap(title, fig, 9), fontsize=9)
    return fig


FAMILY_COLOURS = {
    "noise": "tab:red",
    "blur": "tab:blue",
    "weather": "tab:cyan",
    "digital": "tab:green",
    "pgd-linf": "tab:purple",
    "pgd-l2": "tab:orange",
}


def robustness_figure(report, ax=None, kind: str = "corruptions"):
    """kind 'corruptions': top-1 error per corruption (mean over severities, coloured by family)
    with the clean error; 'adversarial': accuracy against ε per attack norm. Returns the Figure."""
    if kind == "corruptions":
        names = list(report.corruptions)
        fig, ax = _axes(ax, (6.4, 1.4 + 0.24 * max(1, len(names))))
        errors = np.asarray(report.errors, dtype=np.float64).reshape(len(names), -1)
        y = np.arange(len(names))
        ax.barh(
            y,
            errors.mean(axis=1) if len(names) else [],
            color=[FAMILY_COLOURS.get(family_of(c), "grey") for c in names],
        )
        ax.axvline(
            report.clean_error,
            color="black",
            linestyle="--",
            linewidth=0.8,
            label=f"clean error {report.clean_error:.3f}",
        )
        ax.set_yticks(y)
        ax.set_yticklabels(names, fontsize=7)
        ax.invert_yaxis()
        ax.set_xlabel("top-1 error (mean over severities)")
        ax.set_title(f"Corruption errors of {report.name} (N={report.data.get('n_images')})", fontsize=9)
        ax.legend(fontsize=7, loc="lower right")
        ax.grid(axis="x", alpha=0.3)
        return fig
    if kind == "adversarial":
        fig, ax = _axes(ax, (5.0, 3.4))
        for norm in dict.fromkeys(a.get("norm") for a in report.adversarial):
            rows = sorted((float(a["eps"]), float(a["accuracy"])) for a in report.adversarial if a.get("norm") == norm)
            ax.plot(
                [e for e, _ in rows],
                [acc for _, acc in rows],
                "o-",
                label=f"PGD {norm}",
                color=FAMILY_COLOURS.get(f"pgd-{norm}"),
            )
        ax.set_xlabel("ε (pixel units)")
        ax.set_ylabel("top-1 accuracy under attack")
        ax.set_ylim(-0.02, 1.02)
        ax.set_title(f"Adversarial accuracy of {report.name}", fontsize=9)
        if report.adversarial:
            ax.legend(fontsize=7)
        ax.grid(alpha=0.3)
        return fig
    raise IasideError(f"plot kind {kind!r} is not one of corruptions, adversarial")


def robustness_repr(rep) -> str:
    mce = "no reference (CE/mCE need --reference)" if rep.mce is None else f"mCE {rep.mce:.3f}"
    return (
        f"<iaside.RobustnessReport model={rep.name} data={rep.data.get('spec')} N={rep.data.get('n_images')} "
        f"clean error {rep.clean_error:.3f}, mean corruption error {rep.mean_error:.3f}, {mce}, "
        f"{len(rep.adversarial)} attack(s)>"
    )


def robustness_frame(rep, kind: str = "corruptions"):
    """kind 'corruptions': one row per corruption (error per severity, their mean, CE or NaN);
    'adversarial': one row per attack (norm, eps, steps, accuracy)."""
    pd = pandas()
    if kind == "adversarial":
        return pd.DataFrame(
            [{k: a.get(k) for k in ("label", "norm", "eps", "steps", "accuracy")} for a in rep.adversarial],
            columns=["label", "norm", "eps", "steps", "accuracy"],
        )
    if kind != "corruptions":
        raise IasideError(f"kind {kind!r} is not one of corruptions, adversarial")
    errors = np.asarray(rep.errors, dtype=np.float64).reshape(len(rep.corruptions), len(rep.severities))
    frame = pd.DataFrame(errors, columns=[f"error_s{s}" for s in rep.severities])
    frame.insert(0, "family", [family_of(c) for c in rep.corruptions])
    frame.insert(0, "corruption", list(rep.corruptions))
    frame["mean_error"] = errors.mean(axis=1) if errors.size else []
    ce = rep.ce
    frame["ce"] = np.full(len(rep.corruptions), np.nan) if ce is None else ce
    return frame.set_index("corruption")


def robustness_html(rep) -> str:
    frame = robustness_frame(rep)
    note = (
        ""
        if rep.reference is not None
        else '<p class="muted">CE and mCE are blank: they are errors relative to a reference model, and none was '
        "given (iaside robustness --reference).</p>"
    )
    parts = [_STYLE, '<div class="iaside">', f"<p>{escape(robustness_repr(rep))}</p>", note]
    if len(frame):
        parts.append(img_tag(png(tight(robustness_figure(rep))), "corruption errors"))
        parts.append(frame.to_html(float_format=lambda v: f"{v:.3f}", na_rep="n/a"))
    if rep.adversarial:
        parts.append(robustness_frame(rep, "adversarial").to_html(index=False, float_format=lambda v: f"{v:.4g}"))
    return "".join(parts) + "</div>"


def snr_repr(res) -> str:
    n = res.curves[0].n_images if res.curves else 0
    return (
        f"<iaside.SnrResult data={res.data.get('spec')} N={n} M={res.n_bands} {res.partition} "
        f"{len(res.curves)} curves in {len(res.families())} families>"
    )


def snr_frame(res, rows: str = "name"):
    """One row per perturbation (mean over levels; rows='name'), per family ('family') or per
    perturbation and level ('level'): SNR (dB) per band and the fitted decay (dB/band, R²)."""
    pd = pandas()
    if rows not in ("name", "family", "level"):
        raise IasideError(f"rows {rows!r} is not one of name, family, level")
    curves = {
        "name": lambda: list(res.by_name().values()),
        "family": lambda: list(res.families().values()),
        "level": lambda: list(res.curves),
    }[rows]()
    records = []
    for c in curves:
        rec = {"perturbation": c.name, "family": c.family, "level": c.level, "n_images": c.n_images}
        rec.update({f"db_band{i}": float(v) for i, v in enumerate(c.band_db)})
        rec.update({"db_per_band": c.fits["band"]["slope"], "r2": c.fits["band"]["r2"]})
        records.append(rec)
    return pd.DataFrame(records)


def snr_html(res) -> str:
    return (
        f'{_STYLE}<div class="iaside"><p>{escape(snr_repr(res))}</p>'
        + img_tag(png(tight(snr_figure(res))), "SNR per band")
        + snr_frame(res, "family").to_html(index=False, float_format=lambda v: f"{v:.2f}")
        + "</div>"
    )


def plot_snr(result, path) -> Path:
    """One curve per perturbation family: SNR (dB) per band (left) and on the fine radial grid (right)."""
    fig = snr_figure(result)
    fig.set_dpi(120)
    return save_figure(fig, path)


def plot_snr_levels(result, path) -> Path:
    """Small multiples: one panel per perturbation, one curve per severity or ε."""
    plt = _plt()
    names = list(dict.fromkeys(c.name for c in result.curves))
    if not names:
        fig = plt.figure(figsize=(4, 2))
        fig.text(0.5, 0.5, "no perturbations measured", ha="center")
        return save_figure(fig, path)
    cols = min(5, len(names))
    rows = (len(names) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(2.6 * cols, 2.1 * rows), dpi=110, sharex=True, squeeze=False)
    bands = np.arange(result.n_bands)
    for ax, name in zip(axes.flat, names):
        members = [c for c in result.curves if c.name == name]
        colours = plt.cm.viridis(np.linspace(0.0, 0.9, len(members)))
        for colour, c in zip(colours, members):
            ax.plot(bands, finite(c.band_db), "-", color=colour, linewidth=1.2, label=c.level)
        ax.axhline(0, color="black", linewidth=0.5, linestyle=":")
        ax.set_title(name, fontsize=8)
        ax.tick_params(labelsize=7)
        ax.legend(fontsize=5, title_fontsize=5, loc="upper right", ncol=2)
    for ax in axes.flat[len(names) :]:
        ax.axis("off")
    fig.supxlabel("band", fontsize=8)
    fig.supylabel("SNR (dB)", fontsize=8)
    return save_figure(fig, path)
