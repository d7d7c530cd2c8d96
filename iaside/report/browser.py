"""Headless Chromium for the report: check that a page renders, and take a screenshot.

No driver library: Chromium's own ``--dump-dom`` (after a small checker script, added to a
copy of the page, has written what it found into the DOM) and ``--screenshot``. Every run
gets a fresh ``--user-data-dir`` and the flags that keep Chromium off the network.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

from ..errors import IasideError

CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run",
         "--disable-component-update", "--disable-sync", "--hide-scrollbars", "--mute-audio")
CHECK_ID = "iaside-page-check"
_CHECKER = f"""<script>
window.addEventListener('load', function () {{
  var imgs = Array.prototype.slice.call(document.images);
  var found = {{
    images: imgs.length,
    broken: imgs.filter(function (i) {{ return !(i.complete && i.naturalWidth > 0); }})
                .map(function (i) {{ return i.alt; }}),
    widths: imgs.map(function (i) {{ return i.naturalWidth; }}),
    height: document.documentElement.scrollHeight,
    width: document.documentElement.scrollWidth,
    text: document.body.innerText,
    figures: imgs.filter(function (i) {{ return i.hasAttribute('data-text-boxes'); }}).map(function (i) {{
      var r = i.getBoundingClientRect(), sx = r.width / i.naturalWidth, sy = r.height / i.naturalHeight;
      return {{alt: i.alt, width: r.width, height: r.height,
               boxes: JSON.parse(i.getAttribute('data-text-boxes')).map(function (b) {{
                 return {{kind: b.kind, text: b.text, axes: b.axes,
                          box: [b.box[0] * sx, b.box[1] * sy, b.box[2] * sx, b.box[3] * sy]}}; }})}};
    }}),
    headings: Array.prototype.slice.call(document.querySelectorAll('h1, h2, h3, figcaption, th, nav a'))
      .map(function (e) {{
        var r = e.getBoundingClientRect();
        return {{tag: e.tagName.toLowerCase(), text: e.innerText.slice(0, 80),
                 box: [r.left + window.scrollX, r.top + window.scrollY, r.right + window.scrollX,
                       r.bottom + window.scrollY],
                 clipped: e.scrollWidth > e.clientWidth + 1 && getComputedStyle(e).overflowX !== 'visible'}};
      }})
  }};
  var pre = document.createElement('pre');
  pre.id = '{CHECK_ID}';
  pre.textContent = JSON.stringify(found);
  document.body.appendChild(pre);
}});
</script>"""


def find_chromium() -> str | None:
    """Path of a Chromium/Chrome binary ($CHROMIUM first), or None."""
    env = os.environ.get("CHROMIUM")
    if env and Path(env).is_file():
        return env
    for name in CANDIDATES:
        path = shutil.which(name)
        if path:
            return path
    return None


def _run(args: list[str], timeout: float) -> str:
    binary = find_chromium()
    if binary is None:
        raise IasideError("no Chromium found; install it (scripts/install-chromium.sh) or set $CHROMIUM")
    with tempfile.TemporaryDirectory(prefix="iaside-chromium-") as profile:
        proc = subprocess.run([binary, *FLAGS, f"--user-data-dir={profile}", *args], capture_output=True,
                              text=True, timeout=timeout)
    if proc.returncode != 0:
        raise IasideError(f"chromium failed ({proc.returncode}): {proc.stderr.strip()[-500:]}")
    return proc.stdout


def check_page(html_path: str | os.PathLike, *, width: int = 1400, height: int = 900, timeout: float = 120) -> dict:
    """Load ``html_path`` in headless Chromium and report what the browser saw.

    Returns {images: count, broken: [alt of each <img> that did not decode], widths: natural
    widths, height, width: the page's scroll size in CSS pixels, text: the rendered text}.
    """
    page = Path(html_path).resolve()
    text = page.read_text(encoding="utf-8")
    with tempfile.TemporaryDirectory(prefix="iaside-page-") as folder:
        probe = Path(folder) / page.name
        probe.write_text(text.replace("</body>", _CHECKER + "</body>", 1), encoding="utf-8")
        dom = _run([f"--window-size={width},{height}", "--virtual-time-budget=10000", "--dump-dom",
                    probe.as_uri()], timeout)
    match = re.search(rf'<pre id="{CHECK_ID}">(.*?)</pre>', dom, re.S)
    if match is None:
        raise IasideError(f"the page check did not run in Chromium (no #{CHECK_ID} in the DOM)")
    import html

    return json.loads(html.unescape(match.group(1)))


def layout_problems(seen: dict) -> list[str]:
    """Clipped or overlapping texts on a page ``check_page`` has seen: inside each embedded figure
    (its text boxes scaled to the size the browser drew it at; ``display.layout_problems``) and
    among the page's headings, captions and table headers. Empty when the layout is clean."""
    from ..display import _overlap, layout_problems as figure_layout

    problems = [f"{fig['alt']}: {p}" for fig in seen.get("figures", [])
                for p in figure_layout(fig["boxes"], fig["width"], fig["height"], slack=0.5)]
    heads = [h for h in seen.get("headings", []) if h["box"][2] > h["box"][0] and h["box"][3] > h["box"][1]]
    problems += [f"{h['tag']} {h['text']!r} is clipped" for h in heads if h["clipped"]]
    width = seen.get("width")
    problems += [f"{h['tag']} {h['text']!r} runs off the page" for h in heads if width and h["box"][2] > width + 1]
    for i, a in enumerate(heads):
        for b in heads[i + 1:]:
            if _overlap(a["box"], b["box"]):
                problems.append(f"{a['tag']} {a['text']!r} overlaps {b['tag']} {b['text']!r}")
    return problems


def screenshot(html_path: str | os.PathLike, png_path: str | os.PathLike, *, width: int = 1400,
               height: int | None = None, timeout: float = 120) -> Path:
    """Render ``html_path`` at ``width`` CSS pixels into ``png_path``; ``height`` None = the whole page."""
    page = Path(html_path).resolve()
    if height is None:
        height = int(check_page(page, width=width, timeout=timeout)["height"])
    out = Path(png_path).resolve()
    out.parent.mkdir(parents=True, exist_ok=True)
    _run([f"--window-size={width},{height}", "--virtual-time-budget=10000", f"--screenshot={out}", page.as_uri()],
         timeout)
    if not out.exists():
        raise IasideError(f"chromium did not write {out}")
    return out
