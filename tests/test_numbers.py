"""Every number a user reads, against a value computed here independently, on data where the
plausible mistakes give a different answer (docs/proofs.md §6 lists the mutants these kill).

Each test says which mistake it is built to catch; where the data could hide it, a
precondition asserts that the mistake would change the answer.
"""

from __future__ import annotations

import csv
import html
import itertools
import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import tiny_cnn, write_image_folder
from PIL import Image
from scipy import stats

import iaside
from iaside import store
from iaside.cli import main
from iaside.config import DataConfig
from iaside.data import open_dataset
from iaside.engine import EngineState
from iaside.report.html import build_report
from iaside.result import Result
from iaside.robustness.compare import ModelEntry, compare_models
from iaside.robustness.correlation import correlate
from iaside.robustness.evaluate import RobustnessReport
from iaside.robustness.metrics import corruption_errors, mean_ce
from iaside.robustness.snr import SnrCurve, SnrResult
from iaside.spectral import radial_grid_masks
from iaside.summary import Estimate, bootstrap_means, summarize

LABELS = np.array([0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2])


# ---------------------------------------------------------------- independent formulas


def paper_sid(phi: np.ndarray) -> np.ndarray:
    """SID = ψ/Σψ, ψ = φ − min φ, (..., M), written out again here."""
    psi = phi - phi.min(axis=-1, keepdims=True)
    return psi / psi.sum(axis=-1, keepdims=True)


def paper_score(sid: np.ndarray, beta: float = 0.75) -> np.ndarray:
    """|b̂·SID − η| / |1 − η| with b_k = β^k, b̂ = b/‖b‖, η = Σb/(M‖b‖)."""
    m = sid.shape[-1]
    b = np.array([beta**k for k in range(m)])
    norm = np.sqrt(np.sum(b * b))
    eta = b.sum() / (m * norm)
    return np.abs(sid @ (b / norm) - eta) / abs(1 - eta)


def percentile_interval(samples: np.ndarray, confidence: float) -> tuple[np.ndarray, np.ndarray]:
    tail = 100 * (1 - confidence) / 2
    return np.percentile(samples, tail, axis=0), np.percentile(samples, 100 - tail, axis=0)


# ---------------------------------------------------------------- one real run, reused


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A finished run of a tiny CNN on 12 labelled 16×16 images, M = 8, 200 resamples, whose
    clean top-1 differs from the label on most images."""
    base = tmp_path_factory.mktemp("numbers")
    x = torch.rand(12, 3, 16, 16, generator=torch.Generator().manual_seed(3))
    model = tiny_cnn(n_classes=3, seed=2)
    out = base / "run"
    iaside.explain(
        model,
        (x, torch.as_tensor(LABELS)),
        bands=8,
        n_bootstrap=200,
        seed=5,
        show_progress=False,
        out=out,
        record=False,
    )
    with torch.no_grad():
        top1 = model(x).argmax(dim=1).numpy()
    return {"dir": out, "json": json.loads((out / "result.json").read_text()), "top1": top1, "result": Result.load(out)}


def test_bootstrap_interval_is_at_the_stated_level():
    """Mutant: the percentile interval at another level (e.g. 90 % when 95 % is stated)."""
    rng = np.random.default_rng(0)
    phi = rng.normal(size=(15, 4)) * [0.5, 0.4, 0.3, 0.2] + [1.0, 0.6, 0.3, 0.1]
    resampled = bootstrap_means(phi, 400, seed=7)
    assert resampled.shape == (400, 4)
    for confidence in (0.95, 0.8):
        got = summarize(phi, np.zeros(15, int), n_bootstrap=400, confidence=confidence, seed=7)
        for name, values in (
            ("phi", resampled),
            ("sid", paper_sid(resampled)),
            ("score", paper_score(paper_sid(resampled))),
        ):
            low, high = percentile_interval(values, confidence)
            np.testing.assert_allclose(got[name].low, low, rtol=1e-12, err_msg=f"{name} at {confidence}")
            np.testing.assert_allclose(got[name].high, high, rtol=1e-12, err_msg=f"{name} at {confidence}")
        np.testing.assert_allclose(got["score"].value, paper_score(paper_sid(phi.mean(axis=0))), rtol=1e-12)
    wide = summarize(phi, np.zeros(15, int), n_bootstrap=400, confidence=0.95, seed=7)["score"]
    narrow = summarize(phi, np.zeros(15, int), n_bootstrap=400, confidence=0.8, seed=7)["score"]
    assert wide.low < narrow.low < narrow.high < wide.high


def test_bootstrap_resamples_are_means_of_resampled_images():
    """Each resample is the mean of N images drawn with replacement: with two distinct rows
    every resample is (k·a + (N−k)·b)/N for a whole k, and k varies."""
    a, b = np.array([1.0, 0.0]), np.array([0.0, 1.0])
    means = bootstrap_means(np.stack([a, b, b, b]), 300, seed=1)
    k = means[:, 0] * 4
    np.testing.assert_allclose(k, np.round(k), atol=1e-12)
    np.testing.assert_allclose(means.sum(axis=1), 1.0)
    counts = np.bincount(np.round(k).astype(int), minlength=5) / 300
    np.testing.assert_allclose(counts, stats.binom.pmf(range(5), 4, 0.25), atol=0.08)


def test_a_run_reports_95_percent_intervals_of_its_own_resamples(run):
    """Mutant: a default confidence other than 0.95, or the interval not the one stated."""
    d = run["json"]
    assert d["config"]["confidence"] == 0.95 and d["config"]["n_bootstrap"] == 200
    phi = np.asarray(run["result"].per_image["phi_per_image"], np.float64)
    resampled = bootstrap_means(phi, 200, seed=d["config"]["seed"])
    low, high = np.percentile(paper_score(paper_sid(resampled)), [2.5, 97.5])
    assert d["score"]["low"] == pytest.approx(low, rel=1e-9) and d["score"]["high"] == pytest.approx(high, rel=1e-9)
    low90, high90 = np.percentile(paper_score(paper_sid(resampled)), [5, 95])
    assert abs(low90 - low) + abs(high90 - high) > 1e-4  # a 90 % interval would differ
    np.testing.assert_allclose(d["phi"]["low"], np.percentile(resampled, 2.5, axis=0), rtol=1e-9)
    np.testing.assert_allclose(d["phi"]["value"], phi.mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(d["sid"]["value"], paper_sid(phi.mean(axis=0)), rtol=1e-12)
    assert d["score"]["value"] == pytest.approx(float(paper_score(paper_sid(phi.mean(axis=0)))), rel=1e-12)


def test_per_class_views_group_by_the_label_not_the_top1(run):
    """Mutant: per-class SIDs grouped by the model's clean top-1 instead of the label."""
    top1, d = run["top1"], run["json"]
    assert (top1 != LABELS).sum() >= 4 and np.bincount(top1, minlength=3).tolist() != [4, 4, 4]
    np.testing.assert_array_equal(run["result"].per_image["clean_top1"], top1)
    assert d["clean_accuracy"] == pytest.approx(np.mean(top1 == LABELS))
    assert {k: c["n"] for k, c in d["per_class"].items()} == {"0": 4, "1": 4, "2": 4}
    phi = np.asarray(run["result"].per_image["phi_per_image"], np.float64)
    for label in range(3):
        mean = phi[label == LABELS].mean(axis=0)
        np.testing.assert_allclose(d["per_class"][str(label)]["phi"], mean, rtol=1e-12)
        np.testing.assert_allclose(d["per_class"][str(label)]["sid"], paper_sid(mean), rtol=1e-12)


# ---------------------------------------------------------------- the HTML report and `iaside show`


def _text(page: str) -> str:
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", page)).split())


NUMBER = r"[+\-−]?\d+\.\d+(?:e[+\-]\d+)?"


def _numbers(text: str) -> list[float]:
    return [float(v.replace("−", "-")) for v in re.findall(NUMBER, text)]


def test_every_number_of_the_html_report_is_result_json(run):
    """Mutants: the φ interval column showing the SID interval; the low-band share summed from
    the top bands; any key number taken from the wrong field."""
    d, m = run["json"], 8
    page = build_report([run["dir"]], max_images=0)
    per_band = next(t for t in re.findall(r"<table.*?</table>", page, re.S) if "φ/Σφ" in html.unescape(t))
    headers = [_text(h) for h in re.findall(r"<th[^>]*>(.*?)</th>", per_band, re.S)]
    rows = [r for r in re.findall(r"<tr>(.*?)</tr>", per_band, re.S) if "<td" in r]
    assert len(rows) == m and headers[0] == "band"
    for i, row in enumerate(rows):
        cells = [_text(c) for c in re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)]
        assert cells[0].split()[0] == str(i)
        # each column by its header; an interval column belongs to the column before it
        expected = {
            "SID": [d["sid"]["value"][i]],
            "φ (nats)": [d["phi"]["value"][i]],
            "φ/Σφ": [d["shares"]["value"][i]],
        }
        intervals = {
            "SID": [d["sid"]["low"][i], d["sid"]["high"][i]],
            "φ (nats)": [d["phi"]["low"][i], d["phi"]["high"][i]],
        }
        for k, (head, cell) in enumerate(zip(headers[1:], cells[1:]), 1):
            want = intervals[headers[k - 1]] if head.endswith("% CI") else expected[head]
            np.testing.assert_allclose(_numbers(cell), want, atol=6e-4, err_msg=f"band {i}, column {head!r}")
        assert {"SID", "φ (nats)", "φ/Σφ"} <= set(headers) and headers.count("95% CI") == 2
    # the SID and φ intervals differ here, so showing one for the other is seen
    assert abs(d["phi"]["low"][0] - d["sid"]["low"][0]) > 1e-2
    boxes = dict(
        (_text(a), _text(b))
        for a, b in re.findall(r"<div><span>(.*?)</span><b>(.*?)</b>", page.split('class="key"', 1)[1], re.S)[:5]
    )
    low_share = sum(d["sid"]["value"][:2])  # M = 8: the lowest quarter is bands 0 and 1
    assert abs(low_share - sum(d["sid"]["value"][-2:])) > 0.01
    assert _numbers(boxes["low-band share"]) == pytest.approx([low_share], abs=6e-4)
    assert _numbers(boxes["score"]) == pytest.approx([d["score"][k] for k in ("value", "low", "high")], abs=6e-4)
    assert _numbers(boxes["score_signed"]) == pytest.approx(
        [d["score_signed"][k] for k in ("value", "low", "high")], abs=6e-4
    )
    assert _numbers(boxes["clean top-1"]) == pytest.approx([d["clean_accuracy"]], abs=6e-4)
    gap = d["v_nats"][-1] - d["v_nats"][0]
    assert _numbers(boxes["v(N) − v(∅)"])[0] == pytest.approx(gap, abs=6e-4)
    assert gap == pytest.approx(sum(d["phi"]["value"]), abs=1e-6)
    summary = _text(page.split("id=summary", 1)[1].split("</table>", 1)[0])
    assert f"{low_share:.3f}" in summary and f"{d['score']['value']:.4f}" in summary


def test_every_number_of_show_is_result_json(run, capsys):
    """`iaside show`: each band's φ and SID with their intervals, the scores, v(N) − v(∅), the
    clean accuracy and the sentence's low-band percentage, against result.json."""
    d, m = run["json"], 8
    assert main(["show", str(run["dir"])]) == 0
    lines = capsys.readouterr().out.splitlines()
    header = next(ln for ln in lines if ln.split()[:1] == ["band"])
    columns = sorted(("phi", "φ/Σφ", "SID"), key=header.index)  # each band line follows the header's order
    band_lines = [ln for ln in lines if re.match(r"\s*\d+\s*\*?\s+[+\-]\d", ln)]
    assert len(band_lines) == m
    for i, line in enumerate(band_lines):
        values = {
            "phi": [d["phi"][k][i] for k in ("value", "low", "high")],
            "φ/Σφ": [d["shares"]["value"][i]],
            "SID": [d["sid"][k][i] for k in ("value", "low", "high")],
        }
        expected = [v for c in columns for v in values[c]]
        np.testing.assert_allclose(_numbers(line), expected, atol=6e-4, err_msg=line)
    text = "\n".join(lines)
    score = next(ln for ln in lines if ln.startswith("score "))
    signed = next(ln for ln in lines if ln.startswith("score_signed"))
    assert _numbers(score) == pytest.approx([d["score"][k] for k in ("value", "low", "high")], abs=6e-5)
    assert _numbers(signed) == pytest.approx([d["score_signed"][k] for k in ("value", "low", "high")], abs=6e-5)
    assert "95% CI" in score
    assert f"{d['clean_accuracy']:.3f}" in text
    assert f"{d['v_nats'][-1] - d['v_nats'][0]:+.4f}" in text
    if "NOT INFORMATIVE" not in text:  # the sentence, when the run is informative enough to have one
        assert f"carry {100 * sum(d['sid']['value'][:2]):.0f}%" in text
        assert f"band {int(np.argmax(d['sid']['value']))} matters most" in text


# ---------------------------------------------------------------- CE and mCE


def test_mce_is_relative_to_the_named_reference_not_the_first_model():
    """Mutant: every model's CE divided by the first model's errors instead of the reference's."""
    tables = {
        "a": [[0.1, 0.3, 0.5], [0.2, 0.2, 0.6], [0.1, 0.1, 0.1]],
        "b": [[0.2, 0.4, 0.8], [0.1, 0.3, 0.5], [0.2, 0.2, 0.3]],
        "c": [[0.3, 0.3, 0.3], [0.4, 0.5, 0.6], [0.0, 0.1, 0.2]],
    }
    reports = {
        n: RobustnessReport(
            model={"name": n, "spec": n, "fingerprint": n},
            data={"spec": "d", "n_images": 10, "source_fingerprint": "s"},
            corruptions=["fog", "snow", "contrast"],
            severities=[1, 3, 5],
            errors=np.array(t),
            clean_error=0.05,
            adversarial=[],
        )
        for n, t in tables.items()
    }

    class Scores:
        def __init__(self, s):
            self.score = Estimate(s, s, s)
            self.score_signed = Estimate(s, s, s)
            self.sid = Estimate(np.full(4, 0.25), np.full(4, 0.25), np.full(4, 0.25))
            self.data = {"n_images": 10}

    entries = [ModelEntry(n, Scores(s), reports[n]) for n, s in zip(tables, (0.3, 0.2, 0.1))]
    comparison = compare_models(entries, reference="b", n_bootstrap=0)
    ref_sums = np.sum(tables["b"], axis=1)  # 1.4, 0.9, 0.7
    expected = [np.mean(np.sum(tables[n], axis=1) / ref_sums) for n in tables]
    np.testing.assert_allclose(
        expected, [(0.9 / 1.4 + 1.0 / 0.9 + 0.3 / 0.7) / 3, 1.0, (0.9 / 1.4 + 1.5 / 0.9 + 0.3 / 0.7) / 3]
    )
    np.testing.assert_allclose(comparison.measures()["mCE"], expected, rtol=1e-12)
    first = [np.mean(np.sum(tables[n], axis=1) / np.sum(tables["a"], axis=1)) for n in tables]
    assert np.abs(np.subtract(first, expected)).min() > 0.05  # against "a" every value would differ


def test_compare_command_puts_every_model_on_the_named_reference(tmp_path, capsys):
    """`iaside compare --run ...` over saved runs whose error tables differ: the mCE column is
    each model's mean CE against the one named by --reference (not the first), worked out here."""
    x = torch.rand(6, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    y = torch.tensor([0, 1, 2, 0, 1, 2])
    tables = [
        [[0.2, 0.4, 0.6], [0.1, 0.3, 0.5]],
        [[0.1, 0.1, 0.4], [0.3, 0.3, 0.3]],
        [[0.5, 0.2, 0.2], [0.2, 0.4, 0.9]],
    ]
    dirs = []
    for k, table in enumerate(tables):
        out = tmp_path / f"m{k}"
        iaside.explain(
            tiny_cnn(n_classes=3, seed=k), (x, y), bands=3, n_bootstrap=20, show_progress=False, out=out, record=False
        )
        RobustnessReport(
            model={**Result.load(out).model, "name": f"m{k}"},
            data={"spec": "d", "n_images": 6, "source_fingerprint": "s"},
            corruptions=["fog", "snow"],
            severities=[1, 2, 3],
            errors=np.array(table),
            clean_error=0.0,
            adversarial=[],
        ).save(out)
        dirs.append(out)
    assert (
        main(
            [
                "compare",
                *(a for d in dirs for a in ("--run", str(d))),
                "--reference",
                "m1",
                "--bootstrap",
                "50",
                "--out",
                str(tmp_path / "cmp"),
            ]
        )
        == 0
    ), capsys.readouterr().err
    rows = list(csv.DictReader(Path(tmp_path / "cmp" / "compare.csv").read_text().splitlines()))
    ref = np.sum(tables[1], axis=1)
    assert [r["model"] for r in rows] == ["m0", "m1", "m2"]
    for row, table in zip(rows, tables):
        assert float(row["mCE"]) == pytest.approx(np.mean(np.sum(table, axis=1) / ref), rel=1e-3)
        assert float(row["mean corruption error"]) == pytest.approx(np.mean(table), rel=1e-3)
    assert [float(r["mCE"]) for r in rows] == pytest.approx(
        [(1.2 / 0.6 + 0.9 / 0.9) / 2, 1.0, (0.9 / 0.6 + 1.5 / 0.9) / 2], rel=1e-3
    )


def test_corruption_error_sums_every_severity():
    """Mutants: a severity dropped from the sums; the mean of per-severity ratios."""
    errors = np.array([[0.1, 0.2, 0.6], [0.3, 0.1, 0.5]])
    reference = np.array([[0.2, 0.4, 0.4], [0.1, 0.2, 0.3]])
    ce = corruption_errors(errors, reference)
    np.testing.assert_allclose(ce, [0.9 / 1.0, 0.9 / 0.6])
    assert abs(0.3 / 0.6 - ce[0]) > 0.1 and abs(np.mean(errors[0] / reference[0]) - ce[0]) > 0.05
    assert mean_ce(ce) == pytest.approx((0.9 + 1.5) / 2)
    assert mean_ce(np.array([0.5, np.nan, 1.5])) == pytest.approx(1.0)


# ---------------------------------------------------------------- correlations

X_TIED = np.array([1.0, 2.0, 2.0, 3.0, 5.0, 5.0])
Y_UP = np.array([0.3, 0.1, 0.4, 0.4, 0.9, 0.6])  # ties in both, positive
Y_DOWN = -np.array([0.3, 0.5, 0.2, 0.2, 0.9, 0.7])  # ties, negative


@pytest.mark.parametrize("y", [Y_UP, Y_DOWN], ids=["positive", "negative"])
@pytest.mark.parametrize(
    "method, fn", [("spearman", stats.spearmanr), ("kendall", stats.kendalltau), ("pearson", stats.pearsonr)]
)
def test_correlations_with_ties_and_both_signs(method, fn, y):
    """r is scipy's (τ-b, average ranks), the p-value the exact permutation test enumerated here,
    the interval the percentile interval of scipy's statistic over the same model resamples."""
    c = correlate(X_TIED, y, method, n_bootstrap=200, confidence=0.9, seed=4)
    r = float(fn(X_TIED, y)[0])
    assert np.sign(r) == np.sign(y[-1] - y[0]) and 0.3 < abs(r) < 1 and c.p_value < 1
    assert c.r == pytest.approx(r, abs=1e-12)
    null = np.array([float(fn(X_TIED, y[list(p)])[0]) for p in itertools.permutations(range(6))])
    two_sided = min(1.0, 2 * min(np.mean(null >= r - 1e-12), np.mean(null <= r + 1e-12)))
    assert c.p_value == pytest.approx(two_sided, rel=1e-9)
    rng = np.random.default_rng(np.random.SeedSequence([4, 0xC0FF]))
    rows = rng.integers(0, 6, size=(200, 6))
    boot = [float(fn(X_TIED[i], y[i])[0]) for i in rows if np.ptp(X_TIED[i]) > 0 and np.ptp(y[i]) > 0]
    assert c.n_valid == len(boot)
    assert (c.low, c.high) == pytest.approx(tuple(np.percentile(boot, [5, 95])), abs=1e-9)
    assert "90% CI" in c.line()


# ---------------------------------------------------------------- SNR pooling and fits


def test_ring_centres_are_the_middle_of_each_ring():
    """Every bin of ring k of the fine grid has normalised ℓ∞ radius in [k/R, (k+1)/R]: the
    centre the fits use is (k + 1/2)/R, the middle of that range."""
    h, w, n_rings = 24, 20, 8
    rings = radial_grid_masks(h, w, n_rings, "linf").numpy()
    fu = np.abs(np.fft.fftfreq(h) * h)[:, None] / (h / 2)
    fv = np.abs(np.fft.fftfreq(w) * w)[None, :] / (w / 2)
    radius = np.maximum(fu, fv)
    for k in range(n_rings):
        r = radius[rings[k]]
        assert k / n_rings - 1e-12 <= r.min() and (r.max() < (k + 1) / n_rings or k == n_rings - 1)
    snr = SnrResult(4, "linf", n_rings, {}, None, 0, [])
    assert snr.to_json_dict()["ring_centres"] == pytest.approx([(k + 0.5) / n_rings for k in range(n_rings)])


def _curve(name, family, level, offset, n_bands=4, n_rings=6):
    """Per-image dB that fall with the band and ring (3 images), shifted by ``offset``."""
    band = np.array([[20.0, 14.0, 9.0, 1.0], [18.0, 15.0, 7.0, 3.0], [22.0, 13.0, 8.0, 2.0]]) + offset
    grid = 30.0 - 4.0 * np.arange(n_rings) ** 1.3 + np.array([[0.0], [1.0], [-1.0]]) + 2 * offset
    return SnrCurve.from_per_image(name, family, level, band, grid, n_bands, n_rings)


def test_snr_families_pool_every_member_at_every_severity_and_refit():
    """Mutants: pooling only some severities or members; fits on the band index or the ring
    index instead of the ring centres; fits not redone on the pooled curve."""
    curves = [
        _curve(n, "noise", s, off)
        for n, offs in (("gaussian_noise", (0, -3, -7)), ("shot_noise", (1, -2, -9)))
        for s, off in zip((1, 3, 5), offs)
    ]
    curves += [_curve("fog", "weather", s, off) for s, off in zip((1, 3, 5), (5, 2, 0))]
    snr = SnrResult(4, "linf", 6, {}, None, 0, curves)
    noise = snr.families()["noise"]
    offsets = np.array([0, -3, -7, 1, -2, -9])
    base = np.array([20.0, 14.0, 8.0, 2.0])  # the mean over the three images of each band
    np.testing.assert_allclose(noise.band_db, base + offsets.mean())
    centres = (np.arange(6) + 0.5) / 6
    grid = 30.0 - 4.0 * np.arange(6) ** 1.3 + 2 * offsets.mean()
    np.testing.assert_allclose(noise.grid_db, grid)
    fit = stats.linregress(np.arange(4), noise.band_db)
    assert noise.fits["band"]["slope"] == pytest.approx(fit.slope) and noise.fits["band"]["r2"] == pytest.approx(
        fit.rvalue**2
    )
    for key, x in (("grid_exponential", centres), ("grid_power", np.log10(centres))):
        fit = stats.linregress(x, grid)
        assert noise.fits[key]["slope"] == pytest.approx(fit.slope, rel=1e-9), key
        assert noise.fits[key]["intercept"] == pytest.approx(fit.intercept, rel=1e-9), key
        assert noise.fits[key]["r2"] == pytest.approx(fit.rvalue**2, rel=1e-9), key
    one = curves[0]  # a single curve's fits use the same centres
    assert one.fits["grid_exponential"]["slope"] == pytest.approx(stats.linregress(centres, one.grid_db).slope)
    assert one.band_db_sd == pytest.approx(np.std([[20.0, 18, 22], [14, 15, 13], [9, 7, 8], [1, 3, 2]], axis=1))
    by_name = snr.by_name()
    np.testing.assert_allclose(by_name["shot_noise"].band_db, base + np.mean([1, -2, -9]))
    assert snr.families()["weather"].band_db == pytest.approx(base + np.mean([5, 2, 0]))
    assert snr.to_json_dict()["families"]["noise"]["band_db"] == pytest.approx(list(base + offsets.mean()))
    table = snr.table(rows="family")
    assert f"{base[0] + offsets.mean():.1f}" in table and f"{noise.fits['band']['slope']:+.2f}" in table


# ---------------------------------------------------------------- class folders, leaderboard, merge


def test_sorted_labels_order_folders_as_strings_like_imagefolder(tmp_path):
    """--labels sorted with folders 1, 2, 10: class i is folder i in string order (torchvision's
    ImageFolder), so 10 is class 1; without --labels the folder name is the class index."""
    for folder in ("1", "2", "10"):
        (tmp_path / folder).mkdir()
        Image.new("RGB", (8, 8), (10, 20, 30)).save(tmp_path / folder / f"img{folder}.png")
    small = DataConfig(input_size=(8, 8), resize_size=8)
    data = open_dataset(str(tmp_path), small, labels="sorted")
    assert data.class_names == ["1", "10", "2"]
    assert dict(zip(data.names, data.labels)) == {"1/img1.png": 0, "10/img10.png": 1, "2/img2.png": 2}
    given = open_dataset(str(tmp_path), small)
    assert dict(zip(given.names, given.labels)) == {"1/img1.png": 1, "10/img10.png": 10, "2/img2.png": 2}
    assert data.fingerprint() != given.fingerprint()


def test_leaderboard_order_for_every_by(tmp_path, monkeypatch, capsys, run):
    """Mutants: sorting ascending, by the other column, or not at all: the two columns order the
    models differently here, and neither order is the recording order."""
    monkeypatch.setenv(store.ENV, str(tmp_path / "store" / "runs.sqlite"))
    values = {"m-a": (0.30, -0.20), "m-b": (0.50, 0.10), "m-c": (0.10, 0.40), "m-d": (0.40, 0.00)}
    for spec, (score, signed) in values.items():
        r = Result.load(run["dir"])
        r.model = {**r.model, "spec": spec, "fingerprint": f"fp-{spec}"}
        r.score, r.score_signed = (
            Estimate(score, score - 0.05, score + 0.05),
            Estimate(signed, signed - 0.1, signed + 0.1),
        )
        store.record_run(r, tmp_path / spec, strict=True)
    expected = {by: sorted(values, key=lambda s: -values[s][k]) for k, by in enumerate(("score", "score_signed"))}
    assert expected["score"] == ["m-b", "m-d", "m-a", "m-c"] and expected["score_signed"] == [
        "m-c",
        "m-b",
        "m-d",
        "m-a",
    ]
    for by, order in expected.items():
        [board] = store.leaderboard(by=by)
        assert [row["model_spec"] for row in board["rows"]] == order, by
        assert main(["leaderboard", "--by", by]) == 0
        out = capsys.readouterr().out
        assert sorted(order, key=out.index) == order, out


def test_merge_keeps_the_skips_of_every_shard():
    """Mutants: the merged skips taken from one shard only, or added (2 for an image both know)."""
    a, b = EngineState.empty(5, 4), EngineState.empty(5, 4)
    a.done[[0, 1]], b.done[[2]] = 1, 1
    a.skipped[:] = [0, 0, 0, 1, 0]
    b.skipped[:] = [0, 0, 0, 1, 1]
    merged = a.merge(b)
    np.testing.assert_array_equal(merged.skipped, [0, 0, 0, 1, 1])
    np.testing.assert_array_equal(b.merge(a).skipped, [0, 0, 0, 1, 1])
    np.testing.assert_array_equal(merged.done, [1, 1, 1, 0, 0])
    assert merged.complete


def test_merged_shards_list_each_skipped_image_once(tmp_path, scripted, capsys):
    """Shards of a folder with two unreadable files, merged: the result names both, once."""
    root = write_image_folder(tmp_path / "imgs", 7)
    (root / "0" / "broken.png").write_bytes(b"not a png")
    (root / "2" / "empty.png").write_bytes(b"")
    base = [
        "run",
        "--model",
        f"torchscript:{scripted}",
        "--data",
        str(root),
        "--input-size",
        "32",
        "--resize-size",
        "32",
        "--bands",
        "3",
        "--bootstrap",
        "20",
        "--quiet",
        "--on-bad-image",
        "skip",
    ]
    for i in range(2):
        assert main(base + ["--shard", f"{i}/2", "--out", str(tmp_path / f"s{i}")]) == 0, capsys.readouterr().err
    assert main(["merge", str(tmp_path / "s0"), str(tmp_path / "s1"), "--out", str(tmp_path / "m")]) == 0
    d = json.loads((tmp_path / "m" / "result.json").read_text())
    assert sorted(s["name"] for s in d["data"]["skipped"]) == ["0/broken.png", "2/empty.png"]
    assert d["data"]["n_images"] == 7 and d["data"]["n_images_available"] == 9


def test_merged_shards_keep_why_each_image_was_skipped(tmp_path, scripted, capsys):
    root = write_image_folder(tmp_path / "imgs", 4)
    (root / "1" / "huge.png").write_bytes(_png_header(15000, 15000))
    base = [
        "run",
        "--model",
        f"torchscript:{scripted}",
        "--data",
        str(root),
        "--input-size",
        "32",
        "--resize-size",
        "32",
        "--bands",
        "2",
        "--bootstrap",
        "10",
        "--quiet",
        "--on-bad-image",
        "skip",
    ]
    assert main(base + ["--out", str(tmp_path / "whole")]) == 0
    for i in range(2):
        assert main(base + ["--shard", f"{i}/2", "--out", str(tmp_path / f"s{i}")]) == 0
    assert main(["merge", str(tmp_path / "s0"), str(tmp_path / "s1"), "--out", str(tmp_path / "m")]) == 0
    whole, merged = (json.loads((tmp_path / d / "result.json").read_text())["data"]["skipped"] for d in ("whole", "m"))
    assert "too large" in whole[0]["reason"]
    assert merged == whole


def _png_header(width: int, height: int) -> bytes:
    """A PNG that declares width × height pixels and holds almost none."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
        + chunk(b"IDAT", zlib.compress(b"\x00" * 16))
        + chunk(b"IEND", b"")
    )


def test_the_header_and_estimator_line_of_show_name_the_run(run):
    """`iaside show`'s first two lines: what was run on what, and how φ was estimated (each
    sampling estimator with its cost, draws and largest φ standard error)."""
    import dataclasses

    d, r = run["json"], run["result"]
    head, estimator = r.table().splitlines()[:2]
    assert head == (
        f"I-ASIDE  model={d['model']['spec']}  data={d['data']['spec']}  images=12  M=8  "
        f"fill={d['config']['fill']}  partition={d['config']['partition']}"
    )
    assert estimator == "estimator: exact Shapley values (all 256 coalitions per image)"
    assert dataclasses.replace(r, estimator=None).estimator_line() == estimator
    perm = {
        "name": "permutation",
        "passes_per_image": 58,
        "permutations": 8,
        "draws": "per-image",
        "phi_se": [0.002, None, 0.0123],
    }
    assert dataclasses.replace(r, estimator=perm).estimator_line() == (
        "estimator: permutation (58 coalition passes per image, 8 antithetic permutations, draws per-image, "
        "largest φ standard error 1.2e-02 nats)"
    )
    kernel = {"name": "kernel", "coalitions": 40, "draws": "shared", "phi_se": [None, None]}
    assert (
        dataclasses.replace(r, estimator=kernel).estimator_line() == "estimator: kernel (40 coalitions, draws shared)"
    )


def test_the_html_key_numbers_are_result_json(run):
    """The HTML report's key-number boxes, each against result.json: score and score_signed
    (signed) with their intervals at the stated level, clean top-1, the low-band share of the
    lowest quarter of the bands, v(N) − v(∅); intervals without finite bounds show none."""
    from iaside.report.markup import _interval, _numbers
    from iaside.report.run_section import _key_numbers

    d, r = run["json"], run["result"]
    boxes = re.findall(r"<div><span>(.*?)</span><b>(.*?)</b><span>(.*?)</span></div>", _key_numbers(r))
    s, ss = d["score"], d["score_signed"]
    sid = np.asarray(d["sid"]["value"])
    v = np.asarray(d["v_nats"])
    expected = [
        ("score", f"{s['value']:.4f} [{s['low']:.4f}, {s['high']:.4f}]", "paper formula, 95% CI"),
        ("score_signed", f"{ss['value']:+.4f} [{ss['low']:+.4f}, {ss['high']:+.4f}]", "1 = band 0 only, 0 = uniform"),
        ("clean top-1", f"{np.mean(run['top1'] == LABELS):.3f}", "accuracy on these images"),
        ("low-band share", f"{sid[:2].sum():.3f}", "SID on the lowest 2 band(s)"),
    ]
    assert [tuple(html.unescape(x) for x in b) for b in boxes[:4]] == expected
    assert html.unescape(boxes[4][0]) == "v(N) − v(∅)" and boxes[4][1] == f"{v[-1] - v[0]:+.3f} nats"
    assert _interval(Estimate(0.5, np.nan, 0.7)) == "0.5000" and _interval(Estimate(0.5, 0.1, np.inf)) == "0.5000"
    assert _interval(Estimate(0.25, -0.5, 1.0), signed=True, digits=2) == "+0.25 [-0.50, +1.00]"
    assert _numbers([]) == "-" and _numbers([1, 2.5, 1 / 3]) == "(1, 2.5, 0.3333)"


def test_the_html_key_numbers_and_band_table_at_another_level_and_band_count():
    """At confidence 0.90 and M = 4 the labels say 90 % and the lowest 1 band (the defaults, 95 %
    and M // 4 = 2 at M = 8, would hide a label read from the wrong place); every cell of the
    band table is result.json's value in its column, numeric columns marked, the min-shift band
    starred; interval edges print as written, signs included."""
    from iaside.report.markup import _interval, _numbers
    from iaside.report.run_section import _key_numbers, band_table_html

    g = torch.Generator().manual_seed(11)
    r = iaside.explain(
        tiny_cnn(),
        (torch.rand(8, 3, 24, 24, generator=g), torch.arange(8) % 3),
        bands=4,
        confidence=0.9,
        n_bootstrap=60,
        show_progress=False,
    )
    boxes = re.findall(r"<div><span>(.*?)</span><b>(.*?)</b><span>(.*?)</span></div>", _key_numbers(r))
    assert html.unescape(boxes[0][2]) == "paper formula, 90% CI"
    assert boxes[3] == ("low-band share", f"{r.sid.value[0]:.3f}", "SID on the lowest 1 band(s)")
    table = band_table_html(r)
    head = re.findall(r"<th>(.*?)</th>", table)
    assert [html.unescape(h) for h in head] == ["band", "SID", "90% CI", "φ/Σφ", "φ (nats)", "90% CI"]
    rows = re.findall(r"<tr>(.*?)</tr>", table.split("<tbody>")[1])
    shifted = int(np.argmin(r.phi.value))
    for i, row in enumerate(rows):
        cells = re.findall(r'<td( class="num")?>(.*?)</td>', row)
        assert [bool(c) for c, _ in cells] == [False, True, True, True, True, True]
        assert [v for _, v in cells] == [
            f"{i} *" if i == shifted else str(i),
            f"{r.sid.value[i]:.4f}",
            f"[{r.sid.low[i]:.4f}, {r.sid.high[i]:.4f}]",
            f"{r.shares.value[i]:+.3f}",
            f"{r.phi.value[i]:+.4f}",
            f"[{r.phi.low[i]:+.4f}, {r.phi.high[i]:+.4f}]",
        ]
    assert len(rows) == 4 and f"* band {shifted} has the smallest φ" in html.unescape(table)
    assert _interval(Estimate(0.25, 0.125, 0.5)) == "0.2500 [0.1250, 0.5000]"  # unsigned by default
    assert _interval(Estimate(0.25, 0.125, 0.5), digits=2) == "0.25 [0.12, 0.50]"
    assert _numbers([0.123456, 12345.6]) == "(0.1235, 1.235e+04)"
