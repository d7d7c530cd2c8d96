"""Notebook views: the gallery script (explain, HTML repr, plot, to_pandas) runs in the default
suite; the views show the result's own numbers; robustness and SNR results have the same views."""
import json
import re
import runpy
import sys
from pathlib import Path

import numpy as np
import pytest

import iaside
from iaside import display
from iaside.robustness.evaluate import RobustnessReport
from iaside.robustness.snr import SnrCurve, SnrResult

from conftest import tiny_cnn
from test_report import TINY, make_image_folder

GALLERY = Path(__file__).resolve().parents[1] / "docs" / "gallery.py"


@pytest.fixture(scope="module")
def result(tmp_path_factory):
    data = make_image_folder(tmp_path_factory.mktemp("views") / "imgs")
    return iaside.explain(tiny_cnn(n_classes=3, seed=2), str(data), bands=3, n_bootstrap=100, overrides=TINY,
                          show_progress=False)


def test_gallery_script_runs(tmp_path, monkeypatch, capsys):
    """The notebook-style script: explain on the bundled model (4 images, M = 3), the HTML view,
    every plot kind, the DataFrames, an uninformative model, robustness and SNR views."""
    monkeypatch.setattr(sys, "argv", [str(GALLERY), "--out", str(tmp_path), "--quick", "--no-browser"])
    space = runpy.run_path(str(GALLERY), run_name="__main__")
    printed = capsys.readouterr().out
    result, flat = space["result"], space["flat"]
    assert repr(result).startswith("<iaside.Result model=efficientnet-lite0") and "N=4 M=3" in repr(result)
    assert result.informative and result.clean_accuracy == 1.0  # a real model on real images is read
    view = space["view"]
    assert "<img" in view and "φ/Σφ" in view and result.interpretation["sentence"] in view.replace("&#x27;", "'")
    bands = space["bands"]
    assert list(bands.index) == [0, 1, 2] and np.allclose(bands["sid"], result.sid.value)
    assert len(space["images"]) == 4
    assert not flat.informative and "NOT INFORMATIVE" in printed
    md = (tmp_path / "gallery.md").read_text()
    for name in ("gallery_plot_sid.png", "gallery_plot_phi.png", "gallery_plot_coalitions.png",
                 "gallery_plot_per-class.png", "gallery_uninformative_sid.png", "gallery_robustness.png",
                 "gallery_snr.png"):
        assert f"(img/{name})" in md and (tmp_path / "img" / name).stat().st_size > 5000
    assert "<img" in (tmp_path / "gallery.html").read_text()


def test_repr_is_short_and_says_what_matters(result):
    text = repr(result)
    assert len(text) < 300 and "N=9" in text and "M=3" in text
    assert f"score={float(result.score.value):.4f} [{float(result.score.low):.4f}, {float(result.score.high):.4f}]" \
        in text
    assert ("NOT INFORMATIVE" in text) == (not result.informative)


def test_html_view_shows_the_bars_the_table_and_the_reading(result):
    view = result._repr_html_()
    assert view.count("<img") == 1 and view.count("<tr>") == 1 + result.n_bands
    assert all(f"{v:.4f}" in view for v in result.sid.value)
    assert all(f"{v:+.3f}" in view for v in result.shares.value)
    assert ("Not informative." in view) == (not result.informative)
    boxes = json.loads(re.search(r"data-text-boxes='([^']*)'", view).group(1).replace("&quot;", '"'))
    assert any(b["kind"] == "title" for b in boxes)


@pytest.mark.parametrize("kind", ["sid", "phi", "coalitions", "per-class"])
def test_plot_returns_the_reports_figure(result, kind):
    import matplotlib.figure

    fig = result.plot(kind)
    assert isinstance(fig, matplotlib.figure.Figure) and display.figure_problems(fig) == []
    plt = display._plt()
    own, ax = plt.subplots()
    assert result.plot(kind, ax=ax) is own and len(ax.patches) + len(ax.collections) + len(ax.images) > 0
    plt.close("all")


def test_plot_kind_is_checked(result):
    with pytest.raises(iaside.IasideError, match="not one of sid, phi, coalitions, per-class"):
        result.plot("bars")


def test_frames_hold_the_results_numbers(result):
    bands = result.to_pandas()
    assert np.allclose(bands["phi_nats"], result.phi.value) and np.allclose(bands["phi_nats_low"], result.phi.low)
    assert np.allclose(bands["share"], np.asarray(result.phi.value) / np.sum(result.phi.value))
    assert bands["min_shift"].sum() == 1 and bands.loc[bands["min_shift"], "sid"].item() == 0.0
    images = result.per_image_frame()
    phi = result.per_image["phi_per_image"]
    assert len(images) == 9 and np.allclose(images[[f"phi_{i}" for i in range(3)]], phi)
    assert np.allclose(images["phi_total_nats"], images["logp_full_nats"] - images["logp_empty_nats"])
    assert images["correct"].mean() == pytest.approx(result.clean_accuracy)


def robustness(reference: bool) -> RobustnessReport:
    rep = RobustnessReport(model={"name": "m"}, data={"spec": "imgs", "n_images": 4},
                           corruptions=["gaussian_noise", "defocus_blur"], severities=[1, 3],
                           errors=np.array([[0.25, 0.5], [0.0, 0.25]]), clean_error=0.0,
                           adversarial=[{"label": "pgd-linf 1/255", "norm": "linf", "eps": 1 / 255, "steps": 2,
                                         "accuracy": 0.5}])
    if reference:
        rep.reference = {"model": {"name": "ref"}, "errors": np.array([[0.5, 0.5], [0.25, 0.25]])}
    return rep


def test_robustness_views_and_the_ce_column():
    plain, with_ref = robustness(False), robustness(True)
    assert "no reference (CE/mCE need --reference)" in repr(plain)
    assert "CE" not in plain.table().splitlines()[2] and "pass --reference" in plain.table()
    assert "CE" in with_ref.table().splitlines()[2] and "pass --reference" not in with_ref.table()
    frame = with_ref.to_pandas()
    assert frame.loc["gaussian_noise", "ce"] == pytest.approx(0.75) and frame.loc["defocus_blur", "ce"] == 0.5
    assert frame["mean_error"].tolist() == [0.375, 0.125] and plain.to_pandas()["ce"].isna().all()
    assert plain.to_pandas("adversarial")["accuracy"].tolist() == [0.5]
    assert "CE and mCE are blank" in plain._repr_html_() and "CE and mCE are blank" not in with_ref._repr_html_()
    for kind in ("corruptions", "adversarial"):
        fig = plain.plot(kind)
        fig.tight_layout()
        assert display.figure_problems(fig) == []


def test_snr_views():
    rng = np.random.default_rng(0)
    curves = [SnrCurve.from_per_image(name, family, level, rng.normal(size=(3, 4)) - np.arange(4),
                                      rng.normal(size=(3, 8)), 4, 8)
              for name, family, level in (("gaussian_noise", "noise", "1"), ("gaussian_noise", "noise", "3"),
                                          ("defocus_blur", "blur", "3"))]
    res = SnrResult(4, "linf", 8, {"spec": "imgs " + "x" * 120, "n_images": 3}, None, 0, curves)
    assert "3 curves in 2 families" in repr(res)
    frame = res.to_pandas("level")
    assert len(frame) == 3 and np.allclose(frame[[f"db_band{i}" for i in range(4)]], [c.band_db for c in curves])
    assert len(res.to_pandas()) == 2 and len(res.to_pandas("family")) == 2
    fig = res.plot()
    fig.tight_layout()
    assert display.figure_problems(fig) == []  # a long data description wraps instead of running off
    assert "<img" in res._repr_html_()


def test_sid_png_and_the_per_image_picture_have_clean_layouts(result):
    import copy

    from iaside.report.local import explain_image, local_figure
    from iaside.report.plots import sid_plot_figure

    long_named = copy.deepcopy(result)
    long_named.data["spec"] = "/a/rather/long/folder/of/validation/images/for/the/model (9 images in 3 class folders)"
    assert display.figure_problems(sid_plot_figure(long_named)) == []
    import torch

    pixels = torch.rand(3, 32, 32, generator=torch.Generator().manual_seed(0))
    names = [f"a long class name number {k}" for k in range(3)]
    for m in (3, 6):
        exp = explain_image(tiny_cnn(n_classes=3), pixels, bands=m, class_names=names)
        fig = local_figure(exp, title="photo.png: torchscript:/some/long/path/to/the/model/file.pt, M = 6, fill image-mean")
        assert display.figure_problems(fig) == []
    display._plt().close("all")
