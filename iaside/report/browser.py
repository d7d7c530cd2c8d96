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
    text: document.body.innerText
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
