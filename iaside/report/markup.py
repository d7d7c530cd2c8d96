"""The HTML pieces every report section is made of: the inline style sheet, tables, figures
with captions, estimates with their intervals, and the anchors of the run sections."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ..display import escape as _e
from ..display import img_tag as _img

__all__ = ["CSS", "_anchor", "_e", "_figure", "_img", "_interval", "_numbers", "_table"]

CSS = """
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
        "<tr>"
        + "".join(f'<td class="num">{c}</td>' if i in numeric else f"<td>{c}</td>" for i, c in enumerate(row))
        + "</tr>"
        for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _anchor(k: int) -> str:
    return f"run-{k + 1}"


def _numbers(values) -> str:
    return "(" + ", ".join(f"{float(v):.4g}" for v in values) + ")" if values else "-"
