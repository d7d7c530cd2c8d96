"""The drawing and display toolkit shared by every view: matplotlib on the Agg backend, figures as
PNG bytes that carry where their texts landed (for the layout check), HTML image tags, and
pandas loaded on demand. It imports nothing else of iaside but the error and install helpers."""

from __future__ import annotations

import base64
import html
import io
import json
from pathlib import Path
from typing import Any

import numpy as np

from .errors import IasideError

DPI = 110


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


class FigurePng(bytes):
    """PNG bytes of a figure, with ``text_boxes``: where its texts landed (see ``text_boxes``)."""

    text_boxes: list[dict]


def png(fig) -> FigurePng:
    """The figure as a 256-colour palette PNG (about a third of the size of a full-colour one),
    carrying the pixel boxes of its texts."""
    from PIL import Image

    boxes = text_boxes(fig, DPI)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI)
    _plt().close(fig)
    image = Image.open(io.BytesIO(buf.getvalue())).convert("RGB")
    out = io.BytesIO()
    palette = image.quantize(256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
    palette.save(out, format="png", optimize=True)
    picture = FigurePng(out.getvalue())
    picture.text_boxes = boxes
    return picture


HEADINGS = ("title", "suptitle", "axis label")


def text_boxes(fig, dpi: float | None = None) -> list[dict]:
    """Every visible, non-empty text of ``fig`` as {kind, text, box: [x0, y0, x1, y1], axes}, in
    pixels of the figure saved at ``dpi`` (default the figure's own), origin top left; plus one
    {kind: "axes", box} per visible axes. kind: title, suptitle, axis label, tick label, legend,
    annotation, axes. ``layout_problems`` reads them."""
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    scale = (dpi or fig.dpi) / fig.dpi
    height = fig.bbox.height

    def box(extent) -> list[float]:
        return [
            round(extent.x0 * scale, 1),
            round((height - extent.y1) * scale, 1),
            round(extent.x1 * scale, 1),
            round((height - extent.y0) * scale, 1),
        ]

    out = []

    def add(text, kind, axes):
        if text is None or not text.get_visible() or not text.get_text().strip():
            return
        out.append({"kind": kind, "text": text.get_text(), "box": box(text.get_window_extent(renderer)), "axes": axes})

    for text in fig.texts:
        add(text, "suptitle", None)
    for suptext in (
        getattr(fig, "_suptitle", None),
        getattr(fig, "_supxlabel", None),
        getattr(fig, "_supylabel", None),
    ):
        if suptext is not None and suptext not in fig.texts:
            add(suptext, "suptitle", None)
    for k, ax in enumerate(fig.axes):
        if not ax.get_visible() or (not ax.axison and not ax.get_title()):
            continue
        out.append({"kind": "axes", "text": "", "box": box(ax.get_window_extent(renderer)), "axes": k})
        for title in (ax.title, ax._left_title, ax._right_title):
            add(title, "title", k)
        if ax.axison:
            add(ax.xaxis.label, "axis label", k)
            add(ax.yaxis.label, "axis label", k)
            for axis in (ax.xaxis, ax.yaxis):
                low, high = sorted(axis.get_view_interval())
                slack = 1e-9 * max(1.0, abs(high - low))
                for tick in axis.get_major_ticks():
                    if low - slack <= tick.get_loc() <= high + slack and tick.label1.get_visible():
                        add(tick.label1, "tick label", k)
        legend = ax.get_legend()
        if legend is not None and legend.get_visible():
            for text in legend.get_texts():
                add(text, "legend", k)
        for text in ax.texts:
            add(text, "annotation", k)
    return out


def _overlap(a, b, slack: float = 1.0) -> bool:
    return a[0] < b[2] - slack and b[0] < a[2] - slack and a[1] < b[3] - slack and b[1] < a[3] - slack


def layout_problems(boxes: list[dict], width: float, height: float, slack: float = 1.0) -> list[str]:
    """What is wrong with a figure's texts (``text_boxes``) in a ``width`` × ``height`` picture: any
    text cut by the picture's edge; a title, suptitle or axis label overlapping another one, a
    tick label, or (titles) another axes. Empty when the layout is clean."""
    problems = []
    texts = [b for b in boxes if b["kind"] != "axes"]
    for b in texts:
        x0, y0, x1, y1 = b["box"]
        if x0 < -slack or y0 < -slack or x1 > width + slack or y1 > height + slack:
            problems.append(
                f"{b['kind']} {b['text']!r} is clipped ({x0:.0f}, {y0:.0f}, {x1:.0f}, {y1:.0f} "
                f"in a {width:.0f}×{height:.0f} picture)"
            )
    headings = [b for b in texts if b["kind"] in HEADINGS]
    for i, a in enumerate(headings):
        for b in headings[i + 1 :]:
            if _overlap(a["box"], b["box"], slack):
                problems.append(f"{a['kind']} {a['text']!r} overlaps {b['kind']} {b['text']!r}")
        for b in texts:
            if b["kind"] == "tick label" and _overlap(a["box"], b["box"], slack):
                problems.append(f"{a['kind']} {a['text']!r} overlaps tick label {b['text']!r}")
        if a["kind"] == "title":
            for b in boxes:
                if b["kind"] == "axes" and b["axes"] != a["axes"] and _overlap(a["box"], b["box"], slack):
                    problems.append(f"title {a['text']!r} runs into another panel")
    return problems


def figure_problems(fig, dpi: float | None = None) -> list[str]:
    """``layout_problems`` of a matplotlib figure as it would be saved at ``dpi``."""
    scale = (dpi or fig.dpi) / fig.dpi
    return layout_problems(text_boxes(fig, dpi), fig.bbox.width * scale, fig.bbox.height * scale)


def wrap(text: str, fig, fontsize: float, share: float = 0.95) -> str:
    """``text`` broken into lines that fit ``share`` of the figure's width at ``fontsize`` points."""
    import textwrap

    chars = max(20, int(share * fig.get_figwidth() * 72 / (0.6 * fontsize)))
    return "\n".join(textwrap.wrap(text, chars)) or text


def _axes(ax, figsize):
    """(figure, axes): a new figure of ``figsize`` inches when ``ax`` is None, else ``ax``'s."""
    if ax is None:
        fig, ax = _plt().subplots(figsize=figsize)
        return fig, ax
    return ax.figure, ax


def finite(values) -> np.ndarray:
    """+inf (no perturbation energy) is not drawn: as NaN."""
    v = np.asarray(values, np.float64).copy()
    v[~np.isfinite(v)] = np.nan
    return v


def escape(value: Any) -> str:
    return html.escape(str(value), quote=True)


def img_tag(png_bytes: bytes, alt: str) -> str:
    """An embedded PNG; a figure's text boxes (``text_boxes``) ride along in data-text-boxes, for
    the browser check that no title is clipped or overlapping."""
    boxes = getattr(png_bytes, "text_boxes", None)
    extra = f" data-text-boxes='{escape(json.dumps(boxes, ensure_ascii=True))}'" if boxes is not None else ""
    return f'<img src="data:image/png;base64,{base64.b64encode(png_bytes).decode()}" alt="{escape(alt)}"{extra}>'


def tight(fig):
    fig.tight_layout()
    return fig


def save_figure(fig, path) -> Path:
    """``fig`` laid out tightly, written to ``path`` (its folder made) and closed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path)
    _plt().close(fig)
    return path


def pandas():
    """The pandas module, or a clear error saying how to install it."""
    try:
        import pandas as pd
    except ImportError as err:
        from .install import pip_hint

        raise IasideError(f"DataFrames need pandas: {pip_hint('iaside[notebook]')}") from err
    return pd
