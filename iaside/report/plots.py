"""Plots of one result (matplotlib, Agg backend: no display needed)."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..runs import atomic_write


def plot_sid(result, path: str | Path) -> Path:
    """Bar chart of the SID with its bootstrap interval; score and score_signed in the title."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sid = result.sid
    m = len(sid.value)
    x = np.arange(m)
    value = np.asarray(sid.value)
    err = np.vstack([value - np.asarray(sid.low), np.asarray(sid.high) - value])
    fig, ax = plt.subplots(figsize=(6.4, 3.8), dpi=120)
    ax.bar(x, value, color=plt.cm.viridis(np.linspace(0.15, 0.85, m)), edgecolor="black", linewidth=0.5)
    if np.all(np.isfinite(err)):
        ax.errorbar(x, value, yerr=np.clip(err, 0, None), fmt="none", ecolor="black", capsize=3, linewidth=1)
    ax.set_xticks(x)
    ax.set_xlabel("spectral band (0 = lowest frequency)")
    ax.set_ylabel("spectral importance (SID, fraction)")
    ci = int(round(100 * result.config.get("confidence", 0.95)))
    ax.set_title(
        f"{result.model.get('spec')} on {result.data.get('spec')} (N={result.data.get('n_images')})\n"
        f"score {float(result.score.value):.3f} [{float(result.score.low):.3f}, {float(result.score.high):.3f}]  "
        f"score_signed {float(result.score_signed.value):+.3f}  ({ci}% CI)",
        fontsize=9,
    )
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    path = atomic_write(path, lambda fh: fig.savefig(fh, format="png"))
    plt.close(fig)
    return path
