"""The HTML report: self-contained, every number and picture it promises, tolerant of missing
robustness results and of data that has gone away."""
import base64
import io
import json
import itertools
import re
import shutil

import numpy as np
import pytest
from PIL import Image
from scipy import stats

import iaside
from iaside import display
from iaside.cli import main
from iaside.report import figures
from iaside.report.html import build_report
from iaside.report.loading import band_images, data_source, load_runs, parse_robustness, reopen_images
from iaside.result import Result

from conftest import tiny_cnn

TINY = {"input_size": (32, 32), "resize_size": 32}


def make_image_folder(root, n_classes=3, per_class=3, seed=0):
    rng = np.random.default_rng(seed)
    for label in range(n_classes):
        (root / str(label)).mkdir(parents=True)
        for k in range(per_class):
            img = Image.fromarray((rng.random((5, 5, 3)) * 255).astype(np.uint8)).resize((40, 36), Image.BICUBIC)
            img.save(root / str(label) / f"{k}.png")
    return root


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Three finished runs of different tiny CNNs on one image folder (M = 3), with robustness
    files written the way ``iaside robustness`` writes them (mce, mean_error, adversarial)."""
    base = tmp_path_factory.mktemp("report")
    data = make_image_folder(base / "imgs")
    dirs = []
    for k in range(3):
        out = base / f"run{k}"
        iaside.explain(tiny_cnn(n_classes=3, seed=k), str(data), bands=3, n_bootstrap=100, overrides=TINY,
                       show_progress=False, out=out)
        (out / "robustness.json").write_text(json.dumps({
            "model": {"name": f"cnn{k}", "spec": "module:Sequential", "fingerprint": "x"},
            "mce": [1.0, 0.8, 1.3][k], "mean_error": [0.5, 0.4, 0.7][k], "clean_error": 0.1,
            "adversarial": [{"norm": "linf", "eps": 2 / 255, "label": "pgd-linf 2/255",
                             "accuracy": [0.2, 0.5, 0.1][k]}],
        }))
        dirs.append(out)
    return {"data": data, "dirs": dirs, "base": base}


@pytest.fixture(scope="module")
def page(runs):
    """The report of the three runs, two deviating images each."""
    return build_report(runs["dirs"], max_images=2)


def images_of(page: str) -> list[Image.Image]:
    found = re.findall(r'<img src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)
    return [Image.open(io.BytesIO(base64.b64decode(b))) for b in found]


def text_of(page: str) -> str:
    import html

    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", page)).split())


def test_report_shows_every_run_and_the_comparison(runs, page):
    text = text_of(page)
    results = [Result.load(d) for d in runs["dirs"]]
    for r, d in zip(results, runs["dirs"]):
        assert f"{float(r.score.value):.4f}" in text
        assert f"{float(r.score.low):.4f}" in text and f"{float(r.score.high):.4f}" in text
        assert f"{float(r.score_signed.value):+.4f}" in text
        assert all(f"{v:.4f}" in text for v in r.sid.value)
        assert str(d) in text
    # names are disambiguated by folder: all three are "module:Sequential"
    assert all(f"module:Sequential ({d.name})" in text for d in runs["dirs"])
    assert "Across runs" in text and "Score against measured robustness" in text
    assert "could not be opened" not in text and "cannot be found" not in text
    # summary, across runs (2), robustness (3 scatters), per run: SID/φ, v(S), per class, 2 images,
    # band interactions and band-limited curves
    shown = images_of(page)
    assert len(shown) == 2 + 3 + 3 * (3 + 2 + 2) == len(re.findall(r"<img ", page))
    assert all(img.format == "PNG" and img.width > 100 and img.height > 100 for img in shown)
    # self-contained: nothing to fetch
    assert not re.search(r'(src|href)="(?!data:|#)', page)
    assert "<script" not in page and "http://" not in page and "https://" not in page


def test_correlations_are_scipys(runs, page):
    text = text_of(page)
    scores = np.array([float(Result.load(d).score.value) for d in runs["dirs"]])
    mce = np.array([1.0, 0.8, 1.3])
    for fn in (stats.spearmanr, stats.kendalltau, stats.pearsonr):
        r = float(fn(scores, mce)[0])
        # 3 models: the p-value is the exact two-sided permutation test, enumerated here by hand
        null = np.array([float(fn(scores, mce[list(order)])[0]) for order in itertools.permutations(range(3))])
        p = min(1.0, 2 * min(np.mean(null >= r - 1e-12), np.mean(null <= r + 1e-12)))
        assert f"{r:+.3f} (p = {p:.3g}" in text
    assert "pgd-linf 2/255" in text and "mean corruption error" in text


def test_too_few_models_for_a_correlation(runs):
    page = build_report(runs["dirs"][:2], max_images=0)
    text = text_of(page)
    assert "Score against measured robustness" in text and "Correlations across models" not in text
    assert "needs at least 3 models" in text and "mCE (2 model(s))" in text
    assert len(images_of(page)) == 2 + 2 * (3 + 2)  # across runs, per run (with the two views); no scatter


def test_runs_are_ranked_by_score(runs, page):
    summary = page.split('id=summary')[1].split("</table>")[0]
    order = [int(m) for m in re.findall(r'href="#run-(\d+)"', summary)]
    scores = [float(Result.load(runs["dirs"][k - 1]).score.value) for k in order]
    assert scores == sorted(scores, reverse=True) and sorted(order) == [1, 2, 3]


def test_band_images_need_the_data_and_degrade_with_a_note(runs, tmp_path):
    one = runs["dirs"][0]
    result = Result.load(one)
    names = [str(n) for n in result.per_image["names"][:2]]
    pixels, note = reopen_images(result, names)
    assert note is None and set(pixels) == set(names)
    assert tuple(pixels[names[0]].shape) == (3, 32, 32)
    with_data = images_of(build_report([one], max_images=1))[-1]

    moved = runs["base"] / "imgs-moved"
    shutil.move(runs["data"], moved)
    try:
        page = build_report([one], max_images=1)
    finally:
        shutil.move(moved, runs["data"])
    assert "band images are not shown" in text_of(page)
    without_data = images_of(page)[-1]
    assert without_data.height < with_data.height  # the SID bars alone, no band panels


def test_one_run_without_robustness(runs, tmp_path):
    run = tmp_path / "plain"
    shutil.copytree(runs["dirs"][1], run)
    (run / "robustness.json").unlink()
    page = build_report([run], max_images=1)
    text = text_of(page)
    assert "Across runs" not in text and "Score against measured robustness" not in text
    assert len(images_of(page)) == 3 + 1 + 2  # with the interaction heat map and band-limited curves


def test_a_run_folder_from_before_the_views_still_reports(runs, tmp_path):
    """result.json without interactions and band-limited curves: the report leaves those parts out."""
    run = tmp_path / "old"
    shutil.copytree(runs["dirs"][1], run)
    (run / "robustness.json").unlink()
    d = json.loads((run / "result.json").read_text())
    del d["interactions"], d["band_limited"]
    (run / "result.json").write_text(json.dumps(d))
    page = build_report([run], max_images=1)
    text = text_of(page)
    assert "Band interactions" not in text and "Band-limited views" not in text
    assert len(images_of(page)) == 3 + 1


def test_a_broken_robustness_file_is_a_note(runs, tmp_path):
    run = tmp_path / "broken"
    shutil.copytree(runs["dirs"][0], run)
    (run / "robustness.json").write_text("{not json")
    text = text_of(build_report([run], max_images=0))
    assert "could not be read" in text and "Score against measured robustness" not in text


def test_robustness_file_given_elsewhere_is_matched_by_model(runs, tmp_path):
    run = tmp_path / "elsewhere"
    shutil.copytree(runs["dirs"][2], run)
    (run / "robustness.json").unlink()
    spec = Result.load(run).model
    outside = tmp_path / "rob.json"
    outside.write_text(json.dumps({"model": {"spec": "other", "fingerprint": spec["fingerprint"]}, "mce": 0.77}))
    [view] = load_runs([run], [outside])
    assert view.robustness["mCE"].value == 0.77 and not view.robustness["mCE"].higher_is_better


@pytest.mark.parametrize("doc, expected", [
    ({"mce": 0.9, "adversarial_accuracy": 0.3}, {"mCE": 0.9, "adversarial accuracy": 0.3}),
    ({"summary": {"mCE": 1.1}}, {"mCE": 1.1}),
    ({"adversarial_accuracy": {"0.0078": 0.4, "0.0157": 0.2}},
     {"adversarial accuracy (ε=0.0078)": 0.4, "adversarial accuracy (ε=0.0157)": 0.2}),
    ({"adversarial_accuracy": {"linf": {"0.01": 0.4}}}, {"adversarial accuracy (linf, ε=0.01)": 0.4}),
    ({"adversarial": [{"norm": "l2", "eps": 0.5, "accuracy": 0.6}]}, {"adversarial accuracy (l2, ε=0.5)": 0.6}),
    ({"mce": None, "mean_error": 0.45, "clean_error": 0.1}, {"mean corruption error": 0.45}),
    ({"mce": "high", "other": 3}, {}),
    ([1, 2], {}),
])
def test_parse_robustness_layouts(doc, expected):
    assert {k: m.value for k, m in parse_robustness(doc).items()} == expected


def test_data_source_from_descriptions(tmp_path):
    assert data_source({"spec": "samples:imagenet (20 labelled images shipped with foolbox)"}) == "samples:imagenet"
    assert data_source({"spec": "samples:imagenet (20 labelled images shipped with foolbox) [5 of 20] (seed 3)"}) \
        == "samples:imagenet"
    assert data_source({"spec": f"{tmp_path} (9 images in 3 class folders)"}) == str(tmp_path)
    assert data_source({"spec": f"{tmp_path} (9 images, labels predicted)"}) == str(tmp_path)
    assert data_source({"spec": f"{tmp_path}/gone (9 images in 3 class folders)"}) is None
    assert data_source({"spec": "tensor(6, 3, 16, 16)"}) is None
    assert data_source({"spec": "whatever", "source": "samples:photos"}) == "samples:photos"


def test_per_class_heatmap_caps_its_rows(runs):
    result = Result.load(runs["dirs"][0])
    png, left_out = figures.per_class_heatmap(result, max_rows=1)
    assert left_out == len(result.per_class) - 1 and Image.open(io.BytesIO(png)).height > 50


def test_coalition_values_use_the_recorded_bit_masks(runs):
    result = Result.load(runs["dirs"][0])
    assert figures.value_of(result, 0) == result.v_nats[0] and figures.value_of(result, 7) == result.v_nats[7]
    subset = Result.load(runs["dirs"][0])
    subset.coalitions = np.array([0, 3, 7])
    subset.v_nats = result.v_nats[[0, 3, 7]]
    assert figures.value_of(subset, 3) == result.v_nats[3] and figures.value_of(subset, 5) is None
    assert Image.open(io.BytesIO(figures.coalition_values(subset))).width > 100


def test_report_command(runs, tmp_path, capsys):
    out = tmp_path / "sub" / "report.html"
    assert main(["report", *map(str, runs["dirs"][:2]), "-o", str(out), "--images", "1", "--no-images",
                 "--title", "Two tiny CNNs"]) == 0
    assert "wrote" in capsys.readouterr().out
    page = out.read_text()
    assert "<title>Two tiny CNNs</title>" in page and "switched off" in page
    assert main(["report", str(tmp_path / "nothing-here"), "-o", str(out)]) == 2
    assert "the --out folder of a finished run" in capsys.readouterr().err


def test_paper_preset_run_with_predicted_labels(runs, tmp_path):
    """Square bands (not Hermitian: the band images are real parts) and no clean accuracy."""
    out = tmp_path / "paper"
    iaside.explain(tiny_cnn(n_classes=3), str(runs["data"]), bands=3, preset="paper", labels="predicted",
                   n_bootstrap=50, overrides=TINY, show_progress=False, out=out)
    page = build_report([out], max_images=1)
    text = text_of(page)
    assert "square" in text and "labels predicted" in text and "band images are not shown" not in text
    result = Result.load(out)
    pixels, note = reopen_images(result, [str(result.per_image["names"][0])])
    [image] = pixels.values()
    assert note is None and np.allclose(band_images(image, 3, "square").sum(axis=0), image.numpy(), atol=1e-5)


def test_data_source_is_structured_and_absolute(runs):
    run_json = json.loads((runs["dirs"][0] / "run.json").read_text())
    source = Result.load(runs["dirs"][0]).data["source"]
    assert source == run_json["data"]["source"]
    assert source["kind"] == "folder" and source["path"] == str(runs["data"].resolve())
    assert source["relative_to_run"] == "../imgs" and source["labels"] == "given"
    assert data_source({"source": {"kind": "samples", "spec": "samples:imagenet"}}) == "samples:imagenet"
    assert data_source({"source": {"kind": "in-memory", "type": "TensorImages"}}) is None


def test_moved_run_and_data_folders_still_find_the_images(runs, tmp_path):
    """Run and data moved together (a project folder copied elsewhere): the images are found
    relative to the run folder; moved apart, the report says so."""
    moved = tmp_path / "elsewhere"
    moved.mkdir()
    shutil.copytree(runs["dirs"][0], moved / "run0")
    shutil.copytree(runs["data"], moved / "imgs")
    original = runs["data"].with_name("imgs-away")
    shutil.move(runs["data"], original)
    try:
        found = build_report([moved / "run0"], max_images=1)
        shutil.rmtree(moved / "imgs")
        lost = build_report([moved / "run0"], max_images=1)
    finally:
        shutil.move(original, runs["data"])
    assert "band images are not shown" not in text_of(found) and "band images are not shown" in text_of(lost)
    assert images_of(found)[-1].height > images_of(lost)[-1].height  # band panels above the SID bars


def test_different_n_and_images_are_flagged_where_combined(runs, tmp_path):
    few = tmp_path / "few"
    iaside.explain(tiny_cnn(n_classes=3, seed=1), str(runs["data"]), bands=3, samples=4, n_bootstrap=50,
                   overrides=TINY, show_progress=False, out=few)
    text = text_of(build_report([runs["dirs"][0], few], max_images=0))
    assert "number of images (N = 9, 4)" in text
    rob = tmp_path / "rob2.json"
    rob.write_text(json.dumps({"model": {"spec": "module:Sequential", "fingerprint": "none"}, "mce": 0.9,
                               "data": {"spec": "samples:imagenet [2 of 20]", "n_images": 2}}))
    [view] = load_runs([few], [rob])
    assert any("N = 2 there, 4 here" in note for note in view.notes)
    page = text_of(build_report([few], robustness_files=[rob], max_images=0))
    assert "was not measured on this run's images (N = 2 there, 4 here)" in page
    assert "measured on different images" in page
    rob.write_text(json.dumps({"mce": None, "mean_error": 0.4, "data": {"n_images": 4}}))
    page = text_of(build_report([few], robustness_files=[rob], max_images=0))
    assert "has no mCE: CE and mCE are errors relative to a reference model" in page
    assert "was not measured on this run's images" not in page


def test_band_table_marks_the_min_shift_band(runs, page):
    result = Result.load(runs["dirs"][0])
    k = int(np.argmin(result.phi.value))
    assert result.sid.value[k] == 0.0 and result.min_shift_band() == k
    section = page.split('id="run-1"')[1].split('id="run-2"')[0]
    assert "module:Sequential (run0)" in text_of(section)
    assert re.findall(r"<tr><td>(\d) \*</td>", section) == [str(k)] and "shifts every φ by it" in text_of(section)
    assert all(f"{v:+.3f}" in text_of(section) for v in result.shares.value)


def test_band_images_are_stretched_per_band_and_the_legend_matches(runs):
    result = Result.load(runs["dirs"][0])
    pixels = np.random.default_rng(0).random((3, 32, 32))
    bands = band_images(__import__("torch").from_numpy(pixels), 3, "linf")
    fig = figures.deviating_figure(pixels, bands, np.array([0.2, 0.5, 0.3]), np.asarray(result.sid.value))
    titles = [b["text"] for b in display.text_boxes(fig) if b["kind"] == "title"]
    assert titles[:2] == ["image", "band 0"] and all(t.startswith(f"band {i}, stretched ×") for i, t in
                                                     zip((1, 2), titles[2:]))
    stretched, gain = figures.stretch(bands[2])
    assert stretched.min() == 0.0 and stretched.max() == 1.0 and gain > 1
    ax = fig.axes[-1]
    legend = ax.get_legend()
    for handle, container in zip(legend.legend_handles, ax.containers):
        assert {tuple(p.get_facecolor()) for p in container.patches} == {tuple(handle.get_facecolor())}
    assert display.figure_problems(fig) == []
