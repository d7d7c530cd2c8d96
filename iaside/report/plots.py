"""The SID plot a run writes next to its result (sid.png): ``figures.sid_figure`` with the
model, data, N and the scores in its title."""
from __future__ import annotations

from pathlib import Path

from ..runs import atomic_write


def sid_plot_figure(result):
    """The Figure of sid.png: SID bars with intervals, titled with the run and its scores."""
    from ..display import _plt, wrap
    from .figures import sid_figure

    fig, ax = _plt().subplots(figsize=(6.4, 4.0), dpi=120)
    ci = int(round(100 * result.config.get("confidence", 0.95)))
    head = f"{result.model.get('spec')} on {result.data.get('spec')} (N={result.data.get('n_images')})"
    scores = (f"score {float(result.score.value):.3f} [{float(result.score.low):.3f}, {float(result.score.high):.3f}]"
              f"  score_signed {float(result.score_signed.value):+.3f}  ({ci}% CI)")
    sid_figure(result, ax, title=wrap(head, fig, 9) + "\n" + scores)
    fig.tight_layout()
    return fig


def plot_sid(result, path: str | Path) -> Path:
    """Write sid.png (``sid_plot_figure``) to ``path``."""
    from ..display import _plt

    fig = sid_plot_figure(result)
    path = atomic_write(path, lambda fh: fig.savefig(fh, format="png"))
    _plt().close(fig)
    return path
