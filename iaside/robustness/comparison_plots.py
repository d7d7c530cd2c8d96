"""The figures that set models side by side: their SIDs (grouped bars, or a heat map for many),
a score against a measured robustness (one labelled point per model, with intervals), and the
SID along a series (training steps, label-noise rates). Each is written as a PNG."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..display import _plt, save_figure


def plot_sids(
    names: Sequence[str],
    sids: Sequence,
    scores: Sequence[float],
    path,
    title: str = "",
    signed: Sequence[float] | None = None,
) -> Path:
    """SIDs side by side: grouped bars with intervals for up to 6 models, else a heatmap.

    sids: ``Estimate``s with value/low/high (M,); scores: one number per model, shown with the
    name; signed: score_signed per model, shown too, and the heatmap rows are sorted by it
    (else by score).
    """
    if signed is not None:
        names = [f"{n} ({s:+.2f})" for n, s in zip(names, signed)]
    plt = _plt()
    k = len(names)
    m = len(np.asarray(sids[0].value))
    if k <= 6:
        fig, ax = plt.subplots(figsize=(max(6.4, 1.1 * m + 0.6 * k), 3.8), dpi=120)
        width = 0.8 / k
        for i, (name, sid, s) in enumerate(zip(names, sids, scores)):
            value = np.asarray(sid.value)
            x = np.arange(m) + (i - (k - 1) / 2) * width
            err = np.vstack([value - np.asarray(sid.low), np.asarray(sid.high) - value])
            ax.bar(x, value, width, label=f"{name} (score {s:.3f})", edgecolor="black", linewidth=0.4)
            if np.all(np.isfinite(err)):
                ax.errorbar(x, value, yerr=np.clip(err, 0, None), fmt="none", ecolor="black", capsize=2, linewidth=0.8)
        ax.set_xticks(np.arange(m))
        ax.set_xlabel("spectral band (0 = lowest frequency)")
        ax.set_ylabel("SID (fraction)")
        ax.legend(fontsize=7)
        ax.grid(axis="y", alpha=0.3)
    else:
        order = np.argsort(signed if signed is not None else scores)[::-1]
        table = np.array([np.asarray(sids[i].value) for i in order])
        fig, ax = plt.subplots(figsize=(1.0 * m + 3.5, 0.32 * k + 1.4), dpi=120)
        im = ax.imshow(table, aspect="auto", cmap="viridis", vmin=0)
        for r, _ in enumerate(order):
            for b in range(m):
                ax.text(
                    b,
                    r,
                    f"{table[r, b]:.2f}",
                    ha="center",
                    va="center",
                    fontsize=6,
                    color="white" if table[r, b] < 0.6 * table.max() else "black",
                )
        ax.set_yticks(np.arange(k))
        ax.set_yticklabels([f"{names[i]} ({scores[i]:.3f})" for i in order], fontsize=7)
        ax.set_xticks(np.arange(m))
        ax.set_xlabel("spectral band (0 = lowest frequency)")
        fig.colorbar(im, ax=ax, label="SID")
    sorted_by = "score_signed" if signed is not None else "score"
    ax.set_title(
        title
        or (
            "spectral importance distributions"
            + (f" (sorted by {sorted_by})" if k > 6 else "")
            + ("; name (score_signed) (score)" if signed is not None else "")
        ),
        fontsize=9,
    )
    return save_figure(fig, path)


def plot_score_vs(
    names: Sequence[str],
    scores: Sequence,
    measure: Sequence[float] | np.ndarray,
    measure_label: str,
    path,
    correlation=None,
    score_label: str = "I-ASIDE score",
    groups: Sequence[str] | None = None,
) -> Path:
    """Scatter of the score (with its interval) against a measured robustness, one labelled point per model.

    scores: ``Estimate``s (value, low, high) or floats; correlation: a ``Correlation`` for the title.
    """
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6.4, 4.6), dpi=120)
    value = np.array([float(getattr(s, "value", s)) for s in scores])
    low = np.array([float(getattr(s, "low", np.nan)) for s in scores])
    high = np.array([float(getattr(s, "high", np.nan)) for s in scores])
    y = np.asarray(measure, np.float64)
    groups = list(groups) if groups is not None else [""] * len(names)
    palette = dict(zip(dict.fromkeys(groups), ["tab:blue", "tab:red", "tab:green", "tab:purple", "tab:orange"] * 4))
    for g in dict.fromkeys(groups):
        idx = [i for i, gi in enumerate(groups) if gi == g]
        err = np.vstack([value[idx] - low[idx], high[idx] - value[idx]])
        ax.errorbar(
            value[idx],
            y[idx],
            xerr=np.where(np.isfinite(err), np.clip(err, 0, None), 0),
            fmt="o",
            color=palette[g],
            ecolor=palette[g],
            elinewidth=0.8,
            capsize=2,
            label=g or None,
        )
    for i, name in enumerate(names):
        ax.annotate(name, (value[i], y[i]), textcoords="offset points", xytext=(4, 3), fontsize=6)
    ax.set_xlabel(f"{score_label} (95% bootstrap CI over images)")
    ax.set_ylabel(measure_label)
    ax.grid(alpha=0.3)
    if any(groups):
        ax.legend(fontsize=7)
    if correlation is not None and not np.isfinite(correlation.r):
        ax.set_title(f"{correlation.method} not defined for n={correlation.n} models", fontsize=9)
    elif correlation is not None:
        ax.set_title(
            f"Spearman {correlation.r:+.2f} (p={correlation.p_value:.2g}, 95% CI "
            f"{correlation.low:+.2f} – {correlation.high:+.2f}, n={correlation.n})",
            fontsize=9,
        )
    return save_figure(fig, path)


def plot_sid_series(
    x: Sequence[float] | np.ndarray,
    x_label: str,
    sids: np.ndarray,
    path,
    *,
    extras: dict | None = None,
    title: str = "",
    log_x: bool = False,
) -> Path:
    """How the SID changes along a series (training steps, label-noise rates).

    Top: the SID as stacked areas (band 0 at the bottom); bottom: ``extras`` {label: (K,) values}
    (score_signed, accuracies, ...). sids: (K, M).
    """
    plt = _plt()
    sids = np.asarray(sids, np.float64)
    x = np.asarray(x, np.float64)
    m = sids.shape[1]
    rows = 2 if extras else 1
    fig, axes = plt.subplots(rows, 1, figsize=(6.4, 3.2 * rows), dpi=120, sharex=True, squeeze=False)
    top = axes[0, 0]
    colours = plt.cm.viridis(np.linspace(0.0, 0.95, m))
    top.stackplot(x, sids.T, colors=colours, labels=[f"band {i}" for i in range(m)], alpha=0.9)
    top.set_ylim(0, 1)
    top.set_ylabel("SID (stacked)")
    top.legend(fontsize=6, loc="center left", bbox_to_anchor=(1.0, 0.5))
    top.set_title(title, fontsize=9)
    if extras:
        bottom = axes[1, 0]
        for label, values in extras.items():
            bottom.plot(x, np.asarray(values, np.float64), "o-", label=label, markersize=3)
        bottom.grid(alpha=0.3)
        bottom.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.0, 0.5))
    axes[-1, 0].set_xlabel(x_label)
    if log_x:
        axes[-1, 0].set_xscale("symlog", linthresh=max(1.0, float(np.min(x[x > 0])) if np.any(x > 0) else 1.0))
    return save_figure(fig, path)
