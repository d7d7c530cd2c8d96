"""Figures of the HTML report, each returned as PNG bytes (matplotlib, Agg backend).

Every axis says what it shows and in which unit: SID is a fraction of the spectral
importance (sums to 1), φ and v(S) are in nats, the scores are dimensionless.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from ..display import _axes, _plt, png
from ..game import coalition_size

LOW_COLOUR, HIGH_COLOUR = "#2b6cb0", "#c05621"


def _band_colours(m: int):
    return _plt().cm.viridis(np.linspace(0.15, 0.85, m))


def _yerr(value, low, high) -> np.ndarray | None:
    """Error bar lengths (2, M) from an interval, or None when it is missing (NaN)."""
    value, low, high = (np.asarray(a, dtype=np.float64) for a in (value, low, high))
    err = np.vstack([value - low, high - value])
    return np.clip(err, 0, None) if np.all(np.isfinite(err)) else None


def _bars_with_interval(ax, est, colours) -> np.ndarray:
    value = np.asarray(est.value, dtype=np.float64)
    x = np.arange(len(value))
    ax.bar(x, value, color=colours, edgecolor="black", linewidth=0.5)
    err = _yerr(est.value, est.low, est.high)
    if err is not None:
        ax.errorbar(x, value, yerr=err, fmt="none", ecolor="black", capsize=3, linewidth=1)
    ax.axhline(0, color="black", linewidth=0.6)
    ax.set_xticks(x)
    ax.set_xlabel("spectral band (0 = lowest frequency)")
    ax.grid(axis="y", alpha=0.3)
    return value


def sid_figure(result, ax=None, title: str | None = None):
    """SID per band (fraction) with its bootstrap interval, a uniform SID dashed, and the band the
    min-shift sets to 0 marked. Draws into ``ax`` (else a new figure); returns the Figure."""
    fig, ax = _axes(ax, (5.6, 3.6))
    m = result.n_bands
    ci = int(round(100 * result.config.get("confidence", 0.95)))
    _bars_with_interval(ax, result.sid, _band_colours(m))
    ax.axhline(1.0 / m, color="grey", linestyle="--", linewidth=0.8, label=f"uniform (1/{m})")
    shifted = int(np.argmin(result.phi.value))
    ax.set_xticks(np.arange(m), [f"{i}*" if i == shifted else str(i) for i in range(m)])
    ax.set_xlabel("spectral band (0 = lowest frequency; * SID 0 by the min-shift)")
    ax.set_ylabel("SID (fraction of importance)")
    ax.set_title(title or f"SID with {ci}% bootstrap interval", fontsize=9)
    ax.legend(fontsize=8, loc="upper right")
    if not result.informative:
        _not_informative(ax)
    return fig


def phi_figure(result, ax=None):
    """Raw Shapley values φ per band (nats) with their bootstrap intervals; returns the Figure."""
    fig, ax = _axes(ax, (5.6, 3.6))
    ci = int(round(100 * result.config.get("confidence", 0.95)))
    _bars_with_interval(ax, result.phi, _band_colours(result.n_bands))
    ax.set_ylabel("φ (nats)")
    ax.set_title(f"Shapley value φ with {ci}% bootstrap interval", fontsize=9)
    if not result.informative:
        _not_informative(ax)
    return fig


def _not_informative(ax) -> None:
    ax.text(0.5, 0.5, "not informative\n(see the interpretation)", transform=ax.transAxes, ha="center",
            va="center", fontsize=11, color="#c53030", alpha=0.8,
            bbox={"facecolor": "white", "alpha": 0.7, "edgecolor": "#c53030"})


def sid_phi(result) -> bytes:
    """Two panels: SID per band (fraction) and raw φ per band (nats), bootstrap intervals."""
    fig, axes = _plt().subplots(1, 2, figsize=(9.0, 3.4))
    sid_figure(result, axes[0])
    phi_figure(result, axes[1])
    fig.tight_layout()
    return png(fig)


def coalition_masks(result) -> np.ndarray:
    """Bit masks of the coalitions ``result.v_nats`` is indexed by, (K,) int64 (all 2**M in order
    unless the run evaluated a subset)."""
    masks = getattr(result, "coalitions", None)
    return np.arange(2**result.n_bands, dtype=np.int64) if masks is None else np.asarray(masks, dtype=np.int64)


def value_of(result, mask: int) -> float | None:
    """v(S) of the coalition with bit mask ``mask`` (nats), or None if it was not evaluated."""
    hits = np.flatnonzero(coalition_masks(result) == mask)
    return float(result.v_nats[hits[0]]) if hits.size else None


def coalition_values(result) -> bytes:
    """PNG of ``coalition_figure``."""
    fig = coalition_figure(result)
    fig.tight_layout()
    return png(fig)


def coalition_figure(result, ax=None):
    """v(S) of every coalition against |S|, coloured by whether band 0 is in S, with the mean per
    size; returns the Figure."""
    m = result.n_bands
    v = np.asarray(result.v_nats, dtype=np.float64)
    masks = coalition_masks(result)
    size = coalition_size(m)[masks]
    has_low = (masks & 1).astype(bool)
    jitter = (np.random.default_rng(0).random(v.shape[0]) - 0.5) * 0.35
    fig, ax = _axes(ax, (6.4, 3.6))
    for mask, colour, label in ((has_low, LOW_COLOUR, "S contains band 0"),
                                (~has_low, HIGH_COLOUR, "S lacks band 0")):
        ax.scatter(size[mask] + jitter[mask], v[mask], s=9, alpha=0.6, color=colour, label=label, linewidths=0)
    sizes = np.unique(size)
    ax.plot(sizes, [v[size == k].mean() for k in sizes], color="black", marker="o", markersize=3,
            linewidth=1.2, label="mean over coalitions of that size")
    ax.set_xticks(np.arange(m + 1))
    ax.set_xlabel("coalition size |S| (bands kept from the image)")
    ax.set_ylabel("v(S) = mean log p(y | x_S) (nats)")
    empty, full = value_of(result, 0), value_of(result, 2**m - 1)
    ends = ", ".join(f"{name} = {val:.2f}" for name, val in (("v(∅)", empty), ("v(N)", full)) if val is not None)
    ax.set_title("Characteristic function" + (f": {ends} nats" if ends else ""), fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    return fig


def per_class_heatmap(result, class_names: Sequence[str] | None = None, max_rows: int = 30) -> tuple[bytes, int]:
    """PNG of ``per_class_figure`` and the number of classes left out beyond ``max_rows``."""
    fig = per_class_figure(result, class_names, max_rows)
    fig.tight_layout()
    return png(fig), max(0, len(result.per_class) - max_rows)


def per_class_figure(result, class_names: Sequence[str] | None = None, max_rows: int = 30, ax=None):
    """Per-class SIDs as a heat map (classes × bands), the largest ``max_rows`` classes first;
    returns the Figure."""
    m = result.n_bands
    items = sorted(result.per_class.items(), key=lambda kv: (-int(kv[1]["n"]), kv[0]))
    shown = items[:max_rows]
    grid = np.array([np.asarray(c["sid"], dtype=np.float64) for _, c in shown]).reshape(len(shown), m)

    def label(k: int, n: int) -> str:
        name = class_names[k] if class_names is not None and 0 <= k < len(class_names) else None
        return f"{k} {name[:22]} (n={n})" if name else f"class {k} (n={n})"

    fig, ax = _axes(ax, (6.4, 1.4 + 0.22 * len(shown)))
    im = ax.imshow(grid, aspect="auto", cmap="magma", vmin=0.0, vmax=max(float(grid.max(initial=0)), 1e-9))
    ax.set_xticks(np.arange(m))
    ax.set_yticks(np.arange(len(shown)))
    ax.set_yticklabels([label(k, int(c["n"])) for k, c in shown], fontsize=7)
    ax.set_xlabel("spectral band (0 = lowest frequency)")
    ax.set_title("SID per class (from the per-image φ of each class)", fontsize=9)
    fig.colorbar(im, ax=ax, label="SID (fraction)", fraction=0.04, pad=0.02)
    return fig


PLOTS = {"sid": sid_figure, "phi": phi_figure, "coalitions": coalition_figure, "per-class": per_class_figure}
"""``Result.plot`` kinds: SID, φ, v(S) against coalition size, per-class heat map."""


def plot(result, kind: str = "sid", ax=None):
    """One of ``PLOTS`` for ``result``, drawn into ``ax`` (else a new figure); returns the Figure."""
    from ..errors import IasideError

    if kind not in PLOTS:
        raise IasideError(f"plot kind {kind!r} is not one of {', '.join(PLOTS)}")
    fig = PLOTS[kind](result, ax=ax)
    if ax is None:
        fig.tight_layout()
    return fig


def stretch(band: np.ndarray, low: float = 1.0, high: float = 99.0) -> tuple[np.ndarray, float]:
    """A per-band contrast stretch of one band image (C, H, W): its luminance (channel mean),
    centred on its median and scaled so that its ``low``..``high`` percentiles fill black..white.
    Returns ((H, W) in [0, 1], the gain). Band images differ by orders of magnitude, so each is
    stretched on its own: brightness is not comparable across bands."""
    lum = np.asarray(band, dtype=np.float64).mean(axis=0)
    lo, hi = np.percentile(lum, [low, high])
    spread = max(hi - lo, 1e-12)
    gain = 1.0 / spread
    return np.clip((lum - lo) * gain, 0.0, 1.0), gain


def deviating_image(pixels: np.ndarray | None, bands: np.ndarray | None, sid_image: np.ndarray,
                    sid_global: np.ndarray) -> bytes:
    """PNG of ``deviating_figure``."""
    fig = deviating_figure(pixels, bands, sid_image, sid_global)
    fig.tight_layout()
    return png(fig)


def deviating_figure(pixels: np.ndarray | None, bands: np.ndarray | None, sid_image: np.ndarray,
                     sid_global: np.ndarray):
    """One image that deviates from the global SID: the image and its band images (when the
    pixels are available), then its own SID next to the global SID.

    pixels (C, H, W) and bands (M, C, H, W) in [0, 1] pixel units. Band 0 is shown as it is;
    the others with a per-band contrast stretch (``stretch``, its gain in the panel title). Two
    rows of panels, so that each is drawn at about its pixel size.
    """
    plt = _plt()
    m = len(sid_global)
    has_pixels = pixels is not None and bands is not None
    if has_pixels:
        n_cols = -(-(m + 2) // 2)
        fig, axes = plt.subplots(2, n_cols, figsize=(2.2 * n_cols, 4.9))
        axes = axes.ravel()
        panels = [("image", np.clip(pixels, 0, 1))]
        for i in range(m):
            if i == 0:
                panels.append(("band 0", np.clip(bands[0], 0, 1)))
                continue
            shown, gain = stretch(bands[i])
            panels.append((f"band {i}, stretched ×{gain:.0f}", shown[None]))
        for ax, (name, img) in zip(axes, panels):
            shown = np.transpose(img, (1, 2, 0))
            if shown.shape[-1] == 1:
                ax.imshow(shown[..., 0], cmap="gray", vmin=0, vmax=1)
            else:
                ax.imshow(shown)
            ax.set_title(name, fontsize=8)
            ax.set_xticks([])
            ax.set_yticks([])
        for ax in axes[len(panels):-1]:
            ax.axis("off")
        ax = axes[-1]
    else:
        fig, ax = plt.subplots(figsize=(4.4, 2.6))
    x = np.arange(m)
    ax.bar(x - 0.2, sid_global, width=0.4, color="#a0aec0", label="global SID")
    ax.bar(x + 0.2, sid_image, width=0.4, color=LOW_COLOUR, edgecolor="black", linewidth=0.4, label="this image")
    ax.set_xticks(x)
    ax.tick_params(labelsize=7)
    ax.set_xlabel("band (0 = lowest)", fontsize=8)
    ax.set_ylabel("SID (fraction)", fontsize=8)
    ax.legend(fontsize=7)
    return fig


def sid_comparison(names: Sequence[str], results: Sequence) -> bytes:
    """SIDs of several runs side by side: grouped bars per band with intervals."""
    plt = _plt()
    m = max(r.n_bands for r in results)
    width = 0.8 / len(results)
    colours = plt.cm.tab10(np.arange(len(results)) % 10)
    fig, ax = plt.subplots(figsize=(9.0, 3.6))
    for k, (name, r) in enumerate(zip(names, results)):
        x = np.arange(r.n_bands) - 0.4 + width * (k + 0.5)
        value = np.asarray(r.sid.value, dtype=np.float64)
        ax.bar(x, value, width=width, color=colours[k], label=name, edgecolor="black", linewidth=0.3)
        err = _yerr(r.sid.value, r.sid.low, r.sid.high)
        if err is not None:
            ax.errorbar(x, value, yerr=err, fmt="none", ecolor="black", capsize=2, linewidth=0.8)
    ax.set_xticks(np.arange(m))
    ax.set_xlabel("spectral band (0 = lowest frequency)")
    ax.set_ylabel("SID (fraction of spectral importance)")
    ax.set_title("SIDs side by side (bars: point estimate; whiskers: bootstrap interval)", fontsize=9)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return png(fig)


def score_ranking(names: Sequence[str], results: Sequence) -> bytes:
    """score and score_signed of every run with intervals, ranked by score (best on top)."""
    plt = _plt()
    order = sorted(range(len(results)), key=lambda k: float(results[k].score.value))
    y = np.arange(len(order))
    fig, axes = plt.subplots(1, 2, figsize=(9.0, 1.3 + 0.45 * len(order)), sharey=True)
    for ax, attr, xlabel in ((axes[0], "score", "score (paper formula, dimensionless)"),
                             (axes[1], "score_signed", "score_signed (1 = all on band 0, 0 = uniform)")):
        for row, k in enumerate(order):
            est = getattr(results[k], attr)
            value, low, high = float(est.value), float(est.low), float(est.high)
            if np.isfinite(low) and np.isfinite(high):
                ax.plot([low, high], [row, row], color="black", linewidth=1.5)
            ax.plot(value, row, "o", color=LOW_COLOUR if value >= 0 else HIGH_COLOUR, markersize=6)
            ax.annotate(f"{value:+.3f}" if attr == "score_signed" else f"{value:.3f}", (value, row),
                        textcoords="offset points", xytext=(0, 6), ha="center", fontsize=7)
        ax.set_xlabel(xlabel, fontsize=8)
        ax.grid(axis="x", alpha=0.3)
        ax.set_ylim(-0.7, len(order) - 0.3)
    axes[1].axvline(0, color="grey", linestyle="--", linewidth=0.8)
    axes[0].set_yticks(y)
    axes[0].set_yticklabels([names[k] for k in order], fontsize=8)
    fig.tight_layout()
    return png(fig)


def score_vs_robustness(names: Sequence[str], scores: Sequence, values: Sequence[float], metric: str,
                        higher_is_better: bool) -> bytes:
    """Scatter of the I-ASIDE score (with its interval) against one measured robustness number."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(4.6, 3.4))
    for name, est, value in zip(names, scores, values):
        low, high = float(est.low), float(est.high)
        if np.isfinite(low) and np.isfinite(high):
            ax.plot([low, high], [value, value], color="grey", linewidth=1)
        ax.plot(float(est.value), value, "o", color=LOW_COLOUR)
        ax.annotate(name, (float(est.value), value), textcoords="offset points", xytext=(4, 4), fontsize=7)
    ax.set_xlabel("I-ASIDE score (dimensionless)")
    ax.set_ylabel(metric, fontsize=8)
    ax.set_title(f"score vs {metric}\n({'higher' if higher_is_better else 'lower'} {metric} = more robust)", fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return png(fig)
