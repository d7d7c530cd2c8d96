"""The main views of iaside on the bundled model, as a notebook shows them.

Each ``# %%`` block is one notebook cell: paste them into Jupyter, or run the file as a script,
which also writes what the cells show into ``OUT/gallery.md`` and ``OUT/gallery.html`` with the
pictures in ``OUT/img/`` (and, with Chromium, pictures of the HTML views and of the gallery
page). ``docs/gallery.md`` and its pictures are this script's output:

    python docs/gallery.py --out docs            # EfficientNet-Lite0, the 20 bundled images, M = 8
    python docs/gallery.py --out /tmp/g --quick  # 4 images, M = 3: seconds (the test suite runs this)
"""

# %%
from __future__ import annotations

import argparse
import base64
import html
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch
from torch import nn

import iaside
from iaside.runtime import apply_malloc_fix

apply_malloc_fix()
parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--out", type=Path, default=Path("gallery"), help="where gallery.md, gallery.html and img/ go")
parser.add_argument("--quick", action="store_true", help="4 images and 3 bands instead of 20 and 8")
parser.add_argument("--no-browser", action="store_true", help="no Chromium pictures of the HTML views and page")
args = parser.parse_args(sys.argv[1:])
IMG = args.out / "img"
IMG.mkdir(parents=True, exist_ok=True)
SAMPLES, BANDS = (4, 3) if args.quick else (None, 8)
blocks: list[tuple[str, str]] = []  # (kind, content): "md" text, "code" output, "img" file name, "html" view


def say(kind: str, content: str) -> None:
    blocks.append((kind, content))
    if kind == "code":
        print(content)


def save(fig, name: str) -> None:
    fig.tight_layout()
    fig.savefig(IMG / name, dpi=100)
    import matplotlib.pyplot as plt

    plt.close(fig)
    say("img", name)


# %% [markdown]
# ## 1. Explain a model: `iaside.explain` returns a `Result`
# %%
run_dir = Path(tempfile.mkdtemp(prefix="iaside-gallery-"))
result = iaside.explain(
    "efficientnet-lite0",
    "samples:imagenet",
    samples=SAMPLES,
    bands=BANDS,
    out=run_dir,
    record=False,
    show_progress=False,
)
say(
    "md",
    '## 1. A result at a glance\n\n`iaside.explain("efficientnet-lite0", "samples:imagenet")` returns a '
    "`Result`. Its repr is one line: model, data, N, M and the score with its interval.",
)
say("code", f">>> result\n{result!r}")

# %% [markdown]
# ## 2. The notebook view: `_repr_html_` (what Jupyter shows for `result` in a cell)
# %%
view = result._repr_html_()
say(
    "md",
    "## 2. The notebook view\n\nIn Jupyter the last line `result` renders `result._repr_html_()`: the "
    "interpretation (or a plain *Not informative* box), the SID bars and the band table, which marks the band "
    "the paper's min-shift sets to 0 and shows the signed share φ/Σφ beside the SID.",
)
say("html", view)

# %% [markdown]
# ## 3. The figures: `result.plot(kind, ax=None)` returns a matplotlib Figure
# %%
say(
    "md",
    "## 3. Figures\n\n`result.plot(kind)` returns the report's own figures as matplotlib Figures; pass "
    "`ax=` to draw into your own axes.",
)
for kind in ("sid", "phi", "coalitions", "per-class"):
    say("code", f">>> result.plot({kind!r})")
    save(result.plot(kind), f"gallery_plot_{kind}.png")

# %% [markdown]
# ## 4. DataFrames: one row per band, one row per image
# %%
bands = result.to_pandas()
images = result.per_image_frame()
say(
    "md",
    "## 4. DataFrames\n\n`result.to_pandas()`: one row per band (SID, φ in nats and the share φ/Σφ, each "
    "with its interval; `min_shift` marks the band whose SID is 0 by construction). "
    "`result.per_image_frame()`: one row per image.",
)
with np.printoptions(precision=3):
    say(
        "code",
        ">>> result.to_pandas()[['sid', 'sid_low', 'sid_high', 'phi_nats', 'share', 'min_shift']]\n"
        + bands[["sid", "sid_low", "sid_high", "phi_nats", "share", "min_shift"]].round(4).to_string(),
    )
    say("code", ">>> result.per_image_frame().iloc[:, :9].head()\n" + images.iloc[:, :9].head().round(3).to_string())

# %% [markdown]
# ## 5. The terminal table (`iaside show`) and its interpretation
# %%
say("md", "## 5. The table `iaside run` and `iaside show` print")
say("code", result.table())


# %% [markdown]
# ## 6. When there is nothing to interpret
# %%
class Constant(nn.Module):
    """Ignores the image: the same logits for every input."""

    def forward(self, x):
        return torch.linspace(-1.0, 1.0, 1000).expand(x.shape[0], -1) + 0.0 * x.mean()


flat = iaside.explain(
    Constant(), "samples:imagenet", samples=SAMPLES or 8, bands=BANDS, labels="predicted", show_progress=False
)
say(
    "md",
    "## 6. When there is nothing to interpret\n\nA model that ignores its input has nothing to share among "
    "bands. The result says so instead of reading a SID out of noise (the same happens for random weights "
    "at chance accuracy, one band, or one class); `result.json` records it under `interpretation`.",
)
say("code", f">>> flat.interpretation\n{flat.interpretation}\n\n>>> print(flat.table())\n{flat.table()}")
save(flat.plot("sid"), "gallery_uninformative_sid.png")

# %% [markdown]
# ## 7. Robustness and SNR results have the same views
# %%
from iaside.data import open_dataset  # noqa: E402
from iaside.models import load_model  # noqa: E402
from iaside.robustness.evaluate import build_report, evaluate_robustness, stack_dataset  # noqa: E402
from iaside.robustness.snr import measure_snr  # noqa: E402

loaded = load_model("efficientnet-lite0")
dataset = open_dataset("samples:imagenet", loaded.data_config, samples=SAMPLES, seed=0)
pixels, labels, _ = stack_dataset(dataset)
corruptions, severities = ["gaussian_noise", "defocus_blur", "contrast"], [3]
measured = evaluate_robustness({"lite0": loaded.model}, pixels, labels, corruptions=corruptions, severities=severities)[
    "lite0"
]
robustness = build_report(
    measured,
    model={"name": "efficientnet-lite0", "spec": loaded.spec},
    data={"spec": dataset.description, "n_images": len(dataset)},
    corruptions=corruptions,
    severities=severities,
    seed=0,
)
snr = measure_snr(
    pixels,
    corruptions=corruptions,
    severities=[1, 3, 5],
    n_bands=BANDS,
    data={"spec": dataset.description, "n_images": len(dataset)},
)
say(
    "md",
    "## 7. Robustness and SNR results\n\n`RobustnessReport` and `SnrResult` have the same short repr, "
    "HTML view, `plot()` and `to_pandas()`. Without a reference model the CE column says why it is empty.",
)
say(
    "code",
    f">>> robustness\n{robustness!r}\n\n>>> robustness.to_pandas()\n{robustness.to_pandas().round(3).to_string()}",
)
save(robustness.plot(), "gallery_robustness.png")
say(
    "code",
    f">>> snr\n{snr!r}\n\n>>> snr.to_pandas('family').iloc[:, :8]\n"
    f"{snr.to_pandas('family').iloc[:, :8].round(1).to_string()}",
)
save(snr.plot(), "gallery_snr.png")


# %% [markdown]
# Writing the gallery page (script only)
# %%
def write_pages() -> None:
    """gallery.md (HTML views as pictures when Chromium is there) and a self-contained gallery.html."""
    from iaside.report.browser import find_chromium, screenshot

    chromium = find_chromium() is not None and not args.no_browser
    views = 0
    md, page = (
        [
            "# Gallery: what iaside shows\n",
            "Made by `python docs/gallery.py --out docs` (EfficientNet-Lite0 on the 20 bundled ImageNet images, "
            "M = 8): every picture and printout below is that script's output.\n",
        ],
        [],
    )
    for k, (kind, content) in enumerate(blocks):
        if kind == "md":
            md.append(content + "\n")
            head, _, rest = content.partition("\n\n")
            page.append(f"<h2>{html.escape(head.lstrip('# '))}</h2><p>{html.escape(rest)}</p>")
        elif kind == "code":
            md.append("```\n" + content + "\n```\n")
            page.append(f"<pre>{html.escape(content)}</pre>")
        elif kind == "img":
            md.append(f"![{content}](img/{content})\n")
            data = base64.b64encode((IMG / content).read_bytes()).decode()
            page.append(f'<img alt="{content}" src="data:image/png;base64,{data}">')
        else:
            page.append(f'<div class="view">{content}</div>')
            single = args.out / f".view{k}.html"
            single.write_text(f"<!DOCTYPE html><html><body style='margin:12px'>{content}</body></html>")
            if chromium:
                views += 1
                name = f"gallery_html_view{views if views > 1 else ''}.png"
                screenshot(single, IMG / name, width=1100)
                _palette(IMG / name)
                md.append(f"![the HTML view](img/{name})\n")
            single.unlink()
    style = (
        "body{font:15px/1.45 system-ui,sans-serif;max-width:1100px;margin:0 auto;padding:16px}"
        "pre{background:#f7fafc;padding:8px;overflow-x:auto;font-size:12px}img{max-width:100%}"
        ".view{border:1px solid #e2e8f0;padding:8px}"
    )
    (args.out / "gallery.md").write_text("\n".join(md))
    (args.out / "gallery.html").write_text(
        f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>iaside gallery"
        f"</title><style>{style}</style></head><body><h1>Gallery: what iaside "
        f"shows</h1>{''.join(page)}</body></html>"
    )
    if chromium:
        screenshot(args.out / "gallery.html", IMG / "gallery.png", width=1200)
        _palette(IMG / "gallery.png")


def _palette(path: Path) -> None:
    """Rewrite a screenshot as a 256-colour PNG (a third of the size)."""
    from PIL import Image

    Image.open(path).convert("RGB").quantize(256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE).save(
        path, optimize=True
    )


write_pages()
print(f"wrote {args.out / 'gallery.md'}, {args.out / 'gallery.html'} and {IMG}/")
