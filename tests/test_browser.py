"""The report in a real browser: headless Chromium loads it without network, every <img>
decodes (naturalWidth > 0), the key numbers are on the rendered page, and a screenshot is
saved under the test's tmp folder. Chromium missing: skipped on a developer machine, a failure
in CI (CI=true); scripts/install-chromium.sh installs it."""
import json
import os

import numpy as np
import pytest
from PIL import Image

import iaside
from iaside import display
from iaside.report.browser import check_page, find_chromium, layout_problems, screenshot
from iaside.report.html import write_report
from iaside.result import Result

from conftest import tiny_cnn
from test_report import TINY, make_image_folder

IN_CI = os.environ.get("CI", "").lower() == "true"


@pytest.fixture(scope="module")
def chromium():
    path = find_chromium()
    if path is None:
        message = "Chromium is not installed (run scripts/install-chromium.sh)"
        if IN_CI:
            pytest.fail(message + "; CI=true, so the browser test must run")
        pytest.skip(message)
    return path


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    base = tmp_path_factory.mktemp("browser")
    data = make_image_folder(base / "imgs")
    dirs = []
    for k in range(3):
        out = base / f"run{k}"
        iaside.explain(tiny_cnn(n_classes=3, seed=10 + k), str(data), bands=3, n_bootstrap=100, overrides=TINY,
                       show_progress=False, out=out)
        (out / "robustness.json").write_text(json.dumps({"mce": [0.9, 1.1, 1.0][k], "mean_error": 0.3}))
        dirs.append(out)
    from iaside.heatmap import run_heatmap

    heat = run_heatmap(tiny_cnn(n_classes=3, seed=10), str(data), stride=8, overrides=TINY, out=dirs[0],
                       show_progress=False, say=lambda _: None)
    path = write_report(dirs, base / "report.html", max_images=2)
    return {"path": path, "results": [Result.load(d) for d in dirs], "heatmap": heat}


def test_every_image_loads_and_the_numbers_are_on_the_page(chromium, report):
    seen = check_page(report["path"], width=1366, height=768)
    n_img = report["path"].read_text().count("<img ")
    # per run: 3 figures, 2 deviating images, the interaction heat map and the band-limited curves;
    # the first run also the Fourier heat map
    assert seen["images"] == n_img == 2 + 1 + 3 * (3 + 2 + 2) + 1  # mean_error is equal for all: no scatter
    assert seen["broken"] == []
    assert all(w > 100 for w in seen["widths"])
    text = seen["text"]
    for r in report["results"]:
        assert f"{float(r.score.value):.4f}" in text
        assert f"{float(r.score_signed.value):+.4f}" in text
        assert f"{r.sid.value[0]:.4f}" in text
    assert "Spearman" in text and "Across runs" in text
    from iaside.interactions import interactions_sentence

    assert text.count("Band interactions") == 3 and text.count("Band-limited views") == 3
    for r in report["results"]:  # the sentence on the strongest pair and the low-pass accuracy at k = 0
        assert interactions_sentence(r.interactions["index"]).split(" (")[0] in text
        assert f"{r.band_limited['lowpass']['v_nats'].value[0]:+.4f}" in text
    assert text.count("Fourier heat map") == 1 and f"{report['heatmap']['clean_error_rate']:.3f} (clean)" in text
    assert seen["width"] <= 1366  # no horizontal scrolling on a laptop-sized window


def test_no_title_is_clipped_or_overlapping(chromium, report):
    """Every figure's texts, at the size the browser drew it, and the page's headings and captions."""
    seen = check_page(report["path"], width=1366, height=768)
    assert len(seen["figures"]) == seen["images"]  # every figure carries its text boxes
    titles = [b for f in seen["figures"] for b in f["boxes"] if b["kind"] in ("title", "suptitle")]
    assert len(titles) >= 20 and len(seen["headings"]) > 20
    assert layout_problems(seen) == []


def test_a_clipped_title_is_caught(chromium, tmp_path):
    """The check can fail: a suptitle wider than its figure (what snr.png used to draw)."""
    plt = display._plt()
    fig, ax = plt.subplots(figsize=(4, 3))
    ax.plot([0, 1], [0, 1])
    ax.set_title("panel")
    fig.suptitle("Spectral SNR of perturbations on a data set with a long description (N=20); families averaged")
    fig.tight_layout()
    page = tmp_path / "clipped.html"
    from iaside.report.html import _img

    page.write_text(f"<!DOCTYPE html><html><body><h1>x</h1>{_img(display.png(fig), 'snr')}</body></html>")
    problems = layout_problems(check_page(page))
    assert any("suptitle" in p and "clipped" in p for p in problems)


def test_screenshot_covers_the_whole_report(chromium, report, tmp_path):
    seen = check_page(report["path"], width=1366)
    png = screenshot(report["path"], tmp_path / "report.png", width=1366)
    image = Image.open(png)
    assert image.width == 1366 and image.height >= seen["height"] > 1500  # the whole page, not one screen
    pixels = np.asarray(image.convert("L"), dtype=np.float64)
    assert pixels.std() > 10  # something was drawn
    drawn_rows = np.flatnonzero((pixels < 200).any(axis=1))
    assert drawn_rows[-1] > 0.97 * seen["height"] - 80  # the last section is in the picture, not cut off
    print(f"screenshot: {png}")


def test_a_page_with_a_broken_image_is_caught(chromium, tmp_path):
    """The check itself can fail: a PNG that does not decode is reported."""
    page = tmp_path / "broken.html"
    page.write_text('<!DOCTYPE html><html><body><p>x</p><img alt="bad" src="data:image/png;base64,iVBORw0KGgo=">'
                    "</body></html>")
    seen = check_page(page)
    assert seen["images"] == 1 and seen["broken"] == ["bad"]
