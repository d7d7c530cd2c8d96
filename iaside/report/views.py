"""Report figures and section for the views of an exact run's table: the M×M band-interaction
heat map and the band-limited (low-pass / high-pass) curves."""

from __future__ import annotations

import numpy as np

from ..display import _plt
from ..display import png as _png
from .figures import HIGH_COLOUR, LOW_COLOUR


def interaction_heatmap(result) -> bytes:
    """M×M Shapley interaction index (nats), diverging colours centred on 0; '*' where the
    bootstrap interval excludes 0."""
    plt = _plt()
    index = result.interactions["index"]
    value, low, high = (np.asarray(a, np.float64) for a in (index.value, index.low, index.high))
    m = value.shape[0]
    span = max(float(np.abs(value).max(initial=0.0)), 1e-12)
    fig, ax = plt.subplots(figsize=(max(4.4, 2.4 + 0.55 * m), max(3.4, 1.6 + 0.5 * m)))
    im = ax.imshow(np.where(np.eye(m, dtype=bool), np.nan, value), cmap="RdBu_r", vmin=-span, vmax=span)
    for i in range(m):
        for j in range(m):
            if i != j and not (low[i, j] <= 0 <= high[i, j]):
                ax.text(j, i, "*", ha="center", va="center", fontsize=10)
    ax.set_xticks(np.arange(m))
    ax.set_yticks(np.arange(m))
    ax.set_xlabel("band j (0 = lowest frequency)")
    ax.set_ylabel("band i")
    ax.set_title("Shapley interaction index I_ij", fontsize=9)
    fig.colorbar(im, ax=ax, label="nats (red: synergy, blue: redundancy)", fraction=0.05, pad=0.04)
    fig.tight_layout()
    return _png(fig)


def band_limited_curves(result) -> bytes:
    """Two panels: top-1 accuracy and v (nats) against the cut-off k, low-pass {0…k} and
    high-pass {k…M−1}, with bootstrap intervals."""
    plt = _plt()
    curves = result.band_limited
    k = np.asarray(curves["cutoff"])
    panels = [("v_nats", "v = mean log p(y | x_S) (nats)")]
    if curves["lowpass"]["accuracy"] is not None:
        panels.insert(0, ("accuracy", "top-1 accuracy"))
    fig, axes = plt.subplots(1, len(panels), figsize=(4.6 * len(panels), 3.3), squeeze=False)
    for ax, (key, label) in zip(axes[0], panels):
        estimates = [(est.value, est.low, est.high) for est in (curves["lowpass"][key], curves["highpass"][key])]
        _pass_curves(ax, k, estimates, ("low-pass {0…k}", "high-pass {k…M−1}"), "cut-off band k", label)
        ax.set_xticks(k)
    fig.tight_layout()
    return _png(fig)


def _pass_curves(ax, x, estimates, texts: tuple[str, str], x_label: str, y_label: str) -> None:
    """One panel: the low-pass and high-pass curves against ``x``, each with its interval shaded
    where finite; ``estimates``: (value, low, high) of each, ``texts``: their legend labels."""
    for (value, low, high), colour, text in zip(estimates, (LOW_COLOUR, HIGH_COLOUR), texts):
        ax.plot(x, value, "o-", color=colour, label=text)
        if np.all(np.isfinite(np.asarray(low, float))):
            ax.fill_between(x, low, high, color=colour, alpha=0.18, linewidth=0)
    ax.set_xlabel(x_label)
    ax.set_ylabel(y_label)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)


def band_limited_sentence(result) -> str:
    """Where the accuracy (or v) holds up: the fewest low bands, and the most high bands removed,
    that keep half of the clean accuracy."""
    curves = result.band_limited
    low, high = curves["lowpass"], curves["highpass"]
    if low["accuracy"] is None:
        return "Top-1 correctness per coalition was not recorded for this run (an older run folder)."
    full = float(low["accuracy"].value[-1])
    if full <= 0:
        return "No image is classified correctly even with every band kept."
    low_k = next((int(k) for k in curves["cutoff"] if low["accuracy"].value[k] >= full / 2), None)
    high_k = max((int(k) for k in curves["cutoff"] if high["accuracy"].value[k] >= full / 2), default=None)
    text = f"With every band the accuracy is {full:.3f}; "
    text += (
        f"low-pass images keep at least half of it from k = {low_k} (bands 0…{low_k})"
        if low_k is not None
        else "no low-pass image keeps half of it"
    )
    text += (
        f", high-pass images up to k = {high_k} (bands {high_k}…{len(curves['cutoff']) - 1})."
        if high_k is not None
        else ", and no high-pass image does."
    )
    return text


def _read_view(run_dir, filename: str, draw, command: str) -> tuple[dict, bytes] | str:
    """(summary, PNG from ``draw(summary)``) of the view file ``filename`` that ``iaside command``
    wrote into the run folder; "" when there is none, a note when it cannot be read."""
    import json
    from pathlib import Path

    from .markup import _e

    file = Path(run_dir) / filename if run_dir is not None else None
    if file is None or not file.exists():
        return ""
    try:
        summary = json.loads(file.read_text())
        return summary, draw(summary)
    except (ValueError, KeyError, TypeError) as err:
        return f'<p class="note">{_e(file)} could not be read ({_e(err)}); rerun iaside {command}.</p>'


def heatmap_section(run_dir) -> str:
    """The "Fourier heat map" part, when ``iaside heatmap`` wrote heatmap.json into the run folder."""
    from ..heatmap import HEATMAP_JSON, heatmap_figure
    from .markup import _e, _figure

    read = _read_view(run_dir, HEATMAP_JSON, lambda summary: _png(heatmap_figure(summary)), "heatmap")
    if isinstance(read, str):
        return read
    summary, png = read
    err = np.asarray(summary["error_rate"], float)
    worst = int(np.argmax(err))
    u, v = summary["cells"][worst]
    text = (
        f"Over {summary['n_images']} images, one Fourier-basis perturbation of ℓ2 norm ε = {summary['eps']:g} "
        f"raises the error rate from {summary['clean_error_rate']:.3f} (clean) to {err.mean():.3f} on average over "
        f"the {len(err)} frequencies measured (stride {summary['stride']}); the worst is (u, v) = ({u}, {v}) "
        f"with {err[worst]:.3f}."
    )
    return (
        "<h3>Fourier heat map</h3>"
        + f"<p>{_e(text)}</p>"
        + _figure(
            png,
            "Fourier heat map",
            "Error rate (left) and mean change of log p(y) in nats (right) when "
            "ε·r·U<sub>u,v</sub> is added to each image (U: the real Fourier basis image of unit ℓ2 norm, r = ±1 "
            "per image and channel from the seed; clipped to [0, 1]). Frequency 0 in the centre; each "
            "cell also stands for its Hermitian partner; white: not measured (stride).",
        )
    )


def cutoffs_figure(summary) -> bytes:
    """Top-1 accuracy and v against the radial cut-off c, low-pass (r < c) and high-pass (r ≥ c)."""
    plt = _plt()
    c = np.asarray(summary["cutoffs"], float)
    fig, axes = plt.subplots(1, 2, figsize=(9.2, 3.3))
    x_label = f"cut-off c (normalised {summary.get('partition', 'linf')} radius, Nyquist = 1)"
    for ax, key, label in ((axes[0], "accuracy", "top-1 accuracy"), (axes[1], "v_nats", "v = mean log p(y) (nats)")):
        estimates = [(e["value"], e["low"], e["high"]) for e in (summary["lowpass"][key], summary["highpass"][key])]
        _pass_curves(ax, c, estimates, ("low-pass r < c", "high-pass r ≥ c"), x_label, label)
    fig.tight_layout()
    return _png(fig)


def cutoffs_section(run_dir) -> str:
    """The "Cut-off curves" part, when ``iaside cutoffs`` wrote cutoffs.json into the run folder."""
    from ..cutoffs import CUTOFFS_JSON
    from .markup import _figure

    read = _read_view(run_dir, CUTOFFS_JSON, cutoffs_figure, "cutoffs")
    if isinstance(read, str):
        return read
    summary, png = read
    return "<h3>Cut-off curves</h3>" + _figure(
        png,
        "cut-off curves",
        f"Ideal low-pass (r &lt; c) and high-pass (r ≥ c) images of the "
        f"{summary['n_images']} images at {len(summary['cutoffs'])} cut-offs (their own passes; clean "
        f"top-1 {summary['clean_accuracy']:.3f}). Shaded: bootstrap intervals over images.",
    )


def views_section(result, name: str, run_dir=None) -> str:
    """The run's "Band interactions", "Band-limited views" and "Fourier heat map" parts of the
    report ('' when absent)."""
    from ..interactions import interactions_sentence
    from .markup import _e, _figure, _table

    parts = []
    ci = int(round(100 * result.config.get("confidence", 0.95)))
    if result.interactions is not None:
        parts.append("<h3>Band interactions</h3>")
        parts.append(f"<p>{_e(interactions_sentence(result.interactions['index'], ci / 100))}</p>")
        parts.append(
            _figure(
                interaction_heatmap(result),
                f"band interactions of {name}",
                "Pairwise Shapley interaction index (Grabisch–Roubens) from each image's 2<sup>M</sup> "
                "coalition values, averaged over images: positive = synergy (the pair carries more "
                "together than apart), negative = redundancy. * marks pairs whose "
                f"{ci}% bootstrap interval over images excludes 0. No extra forward pass.",
            )
        )
    if result.band_limited is not None:
        curves = result.band_limited
        parts.append("<h3>Band-limited views</h3>")
        parts.append(f"<p>{_e(band_limited_sentence(result))}</p>")
        ideal = (
            "with the zero fill these are ideal (brick-wall) filters"
            if curves["fill"] == "zero"
            else f"the removed bands are replaced by the {curves['fill']} fill; the zero fill makes them ideal filters"
        )
        parts.append(
            _figure(
                band_limited_curves(result),
                f"band-limited curves of {name}",
                "Low-pass images keep bands {0…k}, high-pass images bands {k…M−1}; "
                + _e(ideal)
                + f". Shaded: {ci}% bootstrap intervals over images. Top-1 accuracy over "
                f"{curves['n_images_top1']} of {curves['n_images']} images; both come from the run's "
                "own passes.",
            )
        )
        rows = []
        for k in curves["cutoff"]:
            row = [str(int(k))]
            for side in ("lowpass", "highpass"):
                acc = curves[side]["accuracy"]
                row += [f"{curves[side]['v_nats'].value[k]:+.4f}", "n/a" if acc is None else f"{acc.value[k]:.3f}"]
            rows.append(row)
        parts.append(
            _table(
                ["k", "low-pass v (nats)", "low-pass top-1", "high-pass v (nats)", "high-pass top-1"],
                rows,
                numeric=(1, 2, 3, 4),
            )
        )
    return "".join(parts) + cutoffs_section(run_dir) + heatmap_section(run_dir)
