"""Robustness measurements: spectral SNR, corruptions, PGD, CE/mCE, correlations, snr/robustness/compare."""

from __future__ import annotations

import csv
import faulthandler
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import tiny_cnn
from scipy import stats

from iaside.cli import main
from iaside.errors import IasideError
from iaside.models.base import Classifier
from iaside.robustness import zoo
from iaside.robustness.attacks import Attack, check_differentiable, parse_eps, pgd
from iaside.robustness.compare import ModelEntry, compare_models
from iaside.robustness.correlation import METHODS, correlate, statistic_rows
from iaside.robustness.corruptions import (
    COMMON,
    CORRUPTIONS,
    EXTRA,
    SEVERITIES,
    corrupt_images,
    corruption_names,
    image_seed,
    quantize,
)
from iaside.robustness.evaluate import RobustnessReport, evaluate_robustness
from iaside.robustness.metrics import corruption_errors, mean_ce, mean_corruption_error, top1_error
from iaside.robustness.snr import SnrMeter, fit_line, measure_snr
from iaside.spectral import band_energy, band_masks, snr_db, split_bands

HANG_GUARD_S = 900
"""A sweep still running after this long is a hang: dump every thread's stack and exit."""


def smooth_images(n: int, size: int, channels: int = 3, seed: int = 0) -> torch.Tensor:
    """1/f-like images in [0, 1]: low-resolution noise upsampled bicubically (natural-image-like spectra)."""
    g = torch.Generator().manual_seed(seed)
    base = torch.rand(n, channels, max(4, size // 8), max(4, size // 8), generator=g)
    up = torch.nn.functional.interpolate(base, size=(size, size), mode="bicubic", align_corners=False)
    detail = 0.05 * torch.rand(n, channels, size, size, generator=g)
    return (0.9 * up + detail).clamp(0, 1)


# ---------------------------------------------------------------- spectral SNR


def test_snr_of_a_perturbation_confined_to_one_band_is_infinite_elsewhere():
    x = smooth_images(3, 32)
    masks = band_masks(32, 32, 8)
    noise = 0.05 * torch.randn(3, 3, 32, 32, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    delta = split_bands(noise, masks)[:, 3].to(torch.float32)  # only band 3
    meter = SnrMeter(x.to(torch.float64), n_bands=8, n_rings=16)
    band_db, ring_db = meter.measure(x.to(torch.float64) + delta.to(torch.float64))
    others = np.delete(band_db, 3, axis=1)
    assert np.all(others > 100), others.min()  # float rounding only: > 100 dB or +inf
    expected = 10 * np.log10(band_energy(x, masks)[:, 3].numpy() / band_energy(delta, masks)[:, 3].numpy())
    np.testing.assert_allclose(band_db[:, 3], expected, rtol=1e-5)
    assert np.all(np.abs(band_db[:, 3]) < 60)
    # the same numbers as spectral.snr_db, and rings 6, 7 (band 3 of 8 = rings 6, 7 of 16) carry it
    np.testing.assert_allclose(band_db, snr_db(x.to(torch.float64), x.to(torch.float64) + delta, masks).numpy())
    assert np.all(np.delete(ring_db, [6, 7], axis=1) > 100) and np.all(ring_db[:, 6:8] < 60)


def test_fit_line_recovers_an_exponential_decay():
    bands = np.arange(8)
    db = 10 * np.log10(100.0 * 0.5**bands)  # SNR halves per band: −3.01 dB per band
    fit = fit_line(bands, db)
    assert fit["slope"] == pytest.approx(10 * np.log10(0.5)) and fit["r2"] == pytest.approx(1.0)
    fit = fit_line(bands, np.where(bands == 2, np.inf, db))  # +inf (no perturbation energy) is left out
    assert fit["n_points"] == 7 and fit["slope"] == pytest.approx(10 * np.log10(0.5))


def test_noise_snr_falls_with_frequency_on_natural_like_images():
    result = measure_snr(
        smooth_images(4, 64), corruptions=["gaussian_noise", "defocus_blur"], severities=[3], n_bands=8, n_rings=16
    )
    noise, _blur = result.curves
    assert noise.fits["band"]["slope"] < 0 and noise.band_db[0] > noise.band_db[-1] + 10
    assert noise.n_images == 4 and noise.grid_db.shape == (16,)
    assert set(result.families()) == {"noise", "blur"}
    again = type(result).from_json_dict(json.loads(json.dumps(result.to_json_dict())))
    np.testing.assert_allclose(again.curves[0].band_db, noise.band_db)


# ---------------------------------------------------------------- corruptions


def test_corruption_names_resolve():
    assert len(CORRUPTIONS) == 19 and len(COMMON) == 15 and len(EXTRA) == 4
    assert corruption_names("all") == CORRUPTIONS and corruption_names("none") == ()
    assert corruption_names("fog, snow") == ("fog", "snow")
    with pytest.raises(IasideError, match="unknown corruption"):
        corruption_names("fog,rain")


@pytest.mark.parametrize("size,channels", [(32, 3), (32, 1), (224, 3), pytest.param(512, 3, marks=pytest.mark.slow)])
def test_every_corruption_runs_at_every_severity(size, channels):
    x = smooth_images(1, size, channels, seed=size)
    faulthandler.dump_traceback_later(HANG_GUARD_S, exit=True)
    try:
        for name in CORRUPTIONS:
            for severity in SEVERITIES:
                out = corrupt_images(x, name, severity, seed=3)
                assert out.shape == x.shape and out.dtype == torch.float32, (name, severity)
                assert torch.isfinite(out).all() and out.min() >= 0 and out.max() <= 1, (name, severity)
                assert torch.equal(out, torch.round(out * 255) / 255), (name, severity)  # 8-bit grid
    finally:
        faulthandler.cancel_dump_traceback_later()


def test_corruptions_are_repeatable_per_image_and_seed():
    x = smooth_images(3, 32)
    for name in ("gaussian_noise", "glass_blur", "impulse_noise", "frost", "spatter"):
        a = corrupt_images(x, name, 3, seed=7)
        assert torch.equal(a, corrupt_images(x, name, 3, seed=7)), name
        # image 2 gets the same corruption alone as in a batch: its seed is its index
        assert torch.equal(a[2:], corrupt_images(x[2:], name, 3, seed=7, indices=[2])), name
    assert not torch.equal(
        corrupt_images(x, "gaussian_noise", 3, seed=7), corrupt_images(x, "gaussian_noise", 3, seed=8)
    )
    assert image_seed(0, "fog", 1, 0) != image_seed(0, "fog", 1, 1)


def test_corruption_errors_are_clear():
    with pytest.raises(IasideError, match="at least 32x32"):
        corrupt_images(torch.rand(1, 3, 28, 28), "fog", 1)
    with pytest.raises(IasideError, match="severities"):
        corrupt_images(torch.rand(1, 3, 32, 32), "fog", 6)
    with pytest.raises(IasideError, match="1 or 3"):
        corrupt_images(torch.rand(1, 2, 32, 32), "fog", 1)


def test_spatter_without_liquid_leaves_the_image_unchanged():
    """imagecorruptions divides by 0 when no liquid survives (NaN -> black image); we return the image."""
    x = quantize(smooth_images(50, 32, seed=11))
    out = corrupt_images(x, "spatter", 1, seed=0)
    assert (out.flatten(1).max(dim=1).values > 0).all()  # no image turned black
    unchanged = (out == x).flatten(1).all(dim=1)
    assert unchanged.sum() < 50  # and it still spatters the others


# ---------------------------------------------------------------- attacks


def test_torchattacks_runs_without_torchvision():
    code = "import sys, torchattacks; sys.exit(any(m.split('.')[0] == 'torchvision' for m in sys.modules))"
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


@pytest.mark.parametrize("norm,eps", [("linf", 8 / 255), ("l2", 0.5)])
def test_pgd_stays_in_the_ball_and_is_repeatable(norm, eps):
    model = Classifier(tiny_cnn(n_classes=3), (0.5,) * 3, (0.25,) * 3).eval()
    x = smooth_images(6, 32)
    y = torch.tensor([0, 1, 2, 0, 1, 2])
    state = torch.random.get_rng_state()
    adv = pgd(model, x, y, Attack(norm, eps, steps=5), seed=3, batch_size=4)
    assert torch.equal(state, torch.random.get_rng_state())  # the caller's RNG is untouched
    d = (adv - x).flatten(1)
    size = d.abs().max(dim=1).values if norm == "linf" else d.norm(dim=1)
    assert (size <= eps + 1e-5).all() and adv.min() >= 0 and adv.max() <= 1
    assert (size > 0.5 * eps).all()  # it moved
    assert torch.equal(adv, pgd(model, x, y, Attack(norm, eps, steps=5), seed=3, batch_size=4))
    loss = torch.nn.functional.cross_entropy
    with torch.no_grad():
        assert loss(model(adv), y) > loss(model(x), y)


def test_attack_arguments_and_undifferentiable_models():
    assert parse_eps("1/255, 0.5") == pytest.approx((1 / 255, 0.5)) and parse_eps("none") == ()
    assert Attack("linf", 2 / 255).label == "pgd-linf 2/255" and Attack("l2", 0.5).label == "pgd-l2 0.5"
    with pytest.raises(IasideError):
        parse_eps("1/0")
    with pytest.raises(IasideError, match="norm"):
        Attack("l1", 0.1)

    class NoParameters(torch.nn.Module):
        def forward(self, x):
            return x.flatten(1)[:, :3].detach()

    with pytest.raises(IasideError, match="differentiable"):
        check_differentiable(NoParameters(), torch.rand(1, 3, 8, 8))


# ---------------------------------------------------------------- CE, mCE


def test_ce_and_mce_on_a_hand_made_table():
    # every severity matters: dropping any one, or averaging per-severity ratios, changes each CE
    errors = np.array([[0.1, 0.2, 0.6], [0.4, 0.1, 0.5], [0.0, 0.1, 0.2]])
    reference = np.array([[0.2, 0.4, 0.4], [0.2, 0.3, 0.1], [0.0, 0.0, 0.0]])
    ce = corruption_errors(errors, reference)
    np.testing.assert_allclose(ce[:2], [0.9 / 1.0, 1.0 / 0.6])
    for s in range(3):
        kept = [k for k in range(3) if k != s]
        assert np.all(np.abs(errors[:2, kept].sum(1) / reference[:2, kept].sum(1) - ce[:2]) > 0.05)
    assert np.isnan(ce[2])  # the reference makes no error at all: CE undefined, left out of mCE
    assert mean_ce(ce) == pytest.approx((0.9 + 1.0 / 0.6) / 2)
    assert mean_corruption_error(errors) == pytest.approx(2.2 / 9)
    assert mean_ce(corruption_errors(reference[:2], reference[:2])) == pytest.approx(1.0)
    assert top1_error(np.array([1, 2, 3, 4]), np.array([1, 2, 0, 0])) == 0.5
    with pytest.raises(IasideError, match="same shape"):
        corruption_errors(errors, reference[:2])


def _report(name, errors, source="imgs", adversarial=(0.5,)):
    return RobustnessReport(
        model={"name": name, "spec": name, "fingerprint": name},
        data={"spec": "d", "n_images": 10, "source_fingerprint": source},
        corruptions=["fog", "snow", "contrast"],
        severities=[1, 2, 3],
        errors=np.asarray(errors, np.float64),
        clean_error=0.05,
        adversarial=[
            {"label": "pgd-linf 2/255", "norm": "linf", "eps": 2 / 255, "steps": 10, "alpha": 0.5 / 255, "accuracy": a}
            for a in adversarial
        ],
    )


def test_report_reference_round_trip_and_csv(tmp_path):
    model = _report("m", [[0.1, 0.2, 0.3], [0.4, 0.4, 0.4], [0.0, 0.1, 0.2]])
    ref = _report("r", [[0.2, 0.3, 0.5], [0.2, 0.2, 0.2], [0.0, 0.0, 0.0]])
    assert model.mce is None
    rel = model.with_reference(ref)
    assert rel.mce == pytest.approx(1.3) and rel.mean_error == pytest.approx(2.1 / 9)
    rel.save(tmp_path)
    back = RobustnessReport.load(tmp_path)
    assert back.mce == pytest.approx(1.3) and back.reference["model"]["name"] == "r"
    np.testing.assert_array_equal(back.errors, rel.errors)
    rows = list(csv.DictReader(Path(tmp_path / "corruption_ce.csv").read_text().splitlines()))
    assert [r["ce"] for r in rows] == ["0.600000", "2.000000", ""]
    assert len(list(csv.DictReader(Path(tmp_path / "corruption_errors.csv").read_text().splitlines()))) == 9
    with pytest.raises(IasideError, match="not measured like"):
        model.with_reference(_report("x", ref.errors, source="other images"))


def test_evaluate_shares_images_and_predicted_labels_give_zero_clean_error():
    a = Classifier(tiny_cnn(n_classes=3, seed=0), (0.5,) * 3, (0.25,) * 3).eval()
    b = Classifier(tiny_cnn(n_classes=3, seed=1), (0.5,) * 3, (0.25,) * 3).eval()
    x = smooth_images(5, 32)
    out = evaluate_robustness(
        {"a": a, "b": b},
        x,
        np.full(5, -1),
        corruptions=["gaussian_noise", "fog"],
        severities=[1, 5],
        attacks=[Attack("linf", 0.0)],
    )
    for r in out.values():
        assert r["clean_error"] == 0 and r["errors"].shape == (2, 2)
        assert r["adversarial"][0]["accuracy"] == 1.0  # eps 0 leaves the images as they are
    alone = evaluate_robustness({"b": b}, x, np.full(5, -1), corruptions=["gaussian_noise", "fog"], severities=[1, 5])
    np.testing.assert_array_equal(alone["b"]["errors"], out["b"]["errors"])


# ---------------------------------------------------------------- correlations


def test_correlations_match_scipy_on_known_data():
    x = np.arange(1.0, 13.0)
    y = x**3  # monotone, not linear
    for method in METHODS:
        c = correlate(x, y, method, n_bootstrap=500)
        ref = {"pearson": stats.pearsonr, "spearman": stats.spearmanr, "kendall": stats.kendalltau}[method](x, y)
        assert c.r == pytest.approx(ref.statistic) and c.p_value == pytest.approx(ref.pvalue)
        assert c.n == 12 and c.low <= c.r + 1e-12 and c.n_valid > 400
    assert correlate(x, y, "spearman").r == pytest.approx(1.0)
    assert correlate(x, y, "pearson").r < 0.95
    anti = correlate(x, -y, "kendall", n_bootstrap=500)
    assert anti.r == pytest.approx(-1.0) and anti.high == pytest.approx(-1.0)


def test_few_models_get_exact_permutation_p_values():
    # 3 models in the same order: 2 of the 3! pairings reach |r| = 1, so p = 1/3 (scipy's t-test says 0)
    for method in ("spearman", "kendall"):
        c = correlate([0.1, 0.2, 0.3], [1.0, 2.0, 10.0], method, n_bootstrap=0)
        assert c.r == pytest.approx(1.0) and c.p_value == pytest.approx(1 / 3) and "exact" in c.p_method
    # 8 models in the same order: p = 2/8!, as scipy's exact Kendall test says
    x = np.arange(8.0)
    c = correlate(x, x**3, "kendall", n_bootstrap=0)
    assert c.p_value == pytest.approx(2 / 40320) == stats.kendalltau(x, x**3, method="exact").pvalue


def test_bootstrap_statistics_equal_scipy_on_resamples_with_ties():
    rng = np.random.default_rng(0)
    x = rng.normal(size=7)
    y = np.round(x + rng.normal(scale=0.7, size=7), 1)
    rows = rng.integers(0, 7, size=(40, 7))
    for method, fn in (("pearson", stats.pearsonr), ("spearman", stats.spearmanr), ("kendall", stats.kendalltau)):
        ours = statistic_rows(method, x[rows], y[rows])
        for k, idx in enumerate(rows):
            if np.ptp(x[idx]) == 0 or np.ptp(y[idx]) == 0:
                assert np.isnan(ours[k])
            else:
                assert ours[k] == pytest.approx(fn(x[idx], y[idx]).statistic, abs=1e-12), (method, idx)


def test_correlation_with_too_few_models_is_undefined():
    c = correlate([1.0, 2.0], [3.0, 4.0], "spearman")
    assert c.n == 2 and np.isnan(c.r) and np.isnan(c.low)
    c = correlate([1.0, 2.0, np.nan, 4.0], [1.0, 3.0, 2.0, 2.0], "pearson", n_bootstrap=100)
    assert c.n == 3  # the model with a NaN is left out


# ---------------------------------------------------------------- command line

TINY = ["--input-size", "32", "--resize-size", "32", "--quiet", "--seed", "1"]
PERTURB = [
    "--corruptions",
    "gaussian_noise,defocus_blur,fog",
    "--severities",
    "1,5",
    "--linf-eps",
    "4/255",
    "--l2-eps",
    "0.5",
    "--steps",
    "3",
]


@pytest.fixture
def two_models(tmp_path):
    paths = []
    for seed in (0, 1):
        path = tmp_path / f"m{seed}.pt"
        torch.jit.script(tiny_cnn(n_classes=3, seed=seed)).save(str(path))
        paths.append(path)
    return paths


class AlwaysFirstClass(torch.nn.Module):
    """Predicts class 0 whatever the image (differentiable, so PGD runs): top-1 error 2/3 on
    balanced labels under every corruption."""

    def __init__(self):
        super().__init__()
        self.gain = torch.nn.Parameter(torch.tensor(1e-3))

    def forward(self, x):
        m = self.gain * x.mean(dim=(1, 2, 3))
        return torch.stack([1.0 + m, m, -m], dim=1)


class BrightestChannel(torch.nn.Module):
    """Predicts the channel with the largest mean: right on ``coloured_folder``'s clean images,
    wrong on some corrupted ones, so its error table differs from ``AlwaysFirstClass``'s."""

    def __init__(self):
        super().__init__()
        self.gain = torch.nn.Parameter(torch.tensor(10.0))

    def forward(self, x):
        return self.gain * x.mean(dim=(2, 3))


@pytest.fixture
def distinct_models(tmp_path):
    """[reference, model]: TorchScript files of two models with different error tables."""
    paths = []
    for name, module in (("first", AlwaysFirstClass()), ("brightest", BrightestChannel())):
        path = tmp_path / f"{name}.pt"
        torch.jit.script(module.eval()).save(str(path))
        paths.append(path)
    return paths


@pytest.fixture
def coloured_folder(tmp_path):
    """tmp/coloured/<k>/<i>.png: 9 textured 40×36 pictures, class k tinted towards channel k."""
    from PIL import Image

    rng = np.random.default_rng(0)
    for i in range(9):
        k = i % 3
        (tmp_path / "coloured" / str(k)).mkdir(parents=True, exist_ok=True)
        pixels = 0.35 + 0.3 * rng.random((36, 40, 3))
        pixels[..., k] += 0.15 + 0.05 * i / 9
        Image.fromarray((255 * pixels.clip(0, 1)).astype(np.uint8)).save(tmp_path / "coloured" / str(k) / f"{i}.png")
    return tmp_path / "coloured"


def run_cli(args, capsys):
    code = main([str(a) for a in args])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_robustness_command_with_a_reference_json(tmp_path, distinct_models, coloured_folder, capsys):
    ref_out, out = tmp_path / "ref", tmp_path / "rob"
    code, _, err = run_cli(
        [
            "robustness",
            "--model",
            f"torchscript:{distinct_models[0]}",
            "--data",
            coloured_folder,
            *TINY,
            *PERTURB,
            "--out",
            ref_out,
        ],
        capsys,
    )
    assert code == 0, err
    code, stdout, err = run_cli(
        [
            "robustness",
            "--model",
            f"torchscript:{distinct_models[1]}",
            "--data",
            coloured_folder,
            *TINY,
            *PERTURB,
            "--reference",
            ref_out / "robustness.json",
            "--out",
            out,
        ],
        capsys,
    )
    assert code == 0, err
    report, ref = RobustnessReport.load(out), RobustnessReport.load(ref_out)
    assert report.errors.shape == (3, 2) and report.data["n_images"] == 9
    # the two tables differ, so an mCE against anything but the reference (itself: 1) is seen
    np.testing.assert_allclose(ref.errors, 6 / 9)
    assert np.abs(report.errors.sum(axis=1) - ref.errors.sum(axis=1)).min() > 0.1 and report.errors.std() > 0
    assert report.mce == pytest.approx(np.mean(report.errors.sum(axis=1) / ref.errors.sum(axis=1)))
    assert report.mce == pytest.approx(mean_ce(corruption_errors(report.errors, ref.errors)))
    assert abs(report.mce - 1.0) > 0.1
    assert [a["label"] for a in report.adversarial] == ["pgd-linf 4/255", "pgd-l2 0.5"]
    assert "mean corruption error" in stdout
    for name in ("corruption_errors.csv", "corruption_ce.csv", "adversarial.csv"):
        assert (out / name).exists()
    code, _, err = run_cli(
        [
            "robustness",
            "--model",
            f"torchscript:{distinct_models[1]}",
            "--data",
            coloured_folder,
            *TINY,
            *PERTURB,
            "--severities",
            "1",
            "--reference",
            ref_out,
            "--out",
            out,
        ],
        capsys,
    )
    assert code == 2 and "not measured like" in err


def test_snr_command_end_to_end(tmp_path, two_models, image_folder, capsys):
    out = tmp_path / "snr"
    code, stdout, err = run_cli(
        [
            "snr",
            "--model",
            f"torchscript:{two_models[0]}",
            "--data",
            image_folder,
            *TINY,
            *PERTURB,
            "--bands",
            "4",
            "--rings",
            "8",
            "--out",
            out,
        ],
        capsys,
    )
    assert code == 0, err
    d = json.loads((out / "snr.json").read_text())
    assert {c["name"] for c in d["curves"]} == {"gaussian_noise", "defocus_blur", "fog", "pgd-linf", "pgd-l2"}
    assert all(len(c["band_db"]) == 4 and len(c["grid_db"]) == 8 for c in d["curves"])
    assert (out / "snr.png").exists() and (out / "snr_levels.png").exists() and (out / "snr.csv").exists()
    assert "dB/band" in stdout
    code, _, err = run_cli(
        ["snr", "--data", image_folder, *TINY, "--corruptions", "fog", "--bands", "4", "--out", tmp_path / "nomodel"],
        capsys,
    )
    assert code == 2 and "--model" in err  # attacks asked for (the default eps) without a model


def test_compare_end_to_end_on_two_tiny_models(tmp_path, distinct_models, coloured_folder, capsys):
    out = tmp_path / "cmp"
    args = [
        "compare",
        "--model",
        f"torchscript:{distinct_models[0]}",
        "--model",
        f"torchscript:{distinct_models[1]}",
        "--name",
        "first",
        "--name",
        "second",
        "--data",
        coloured_folder,
        *TINY,
        *PERTURB,
        "--bands",
        "3",
        "--bootstrap",
        "100",
        "--out",
        out,
    ]
    code, _stdout, err = run_cli(args, capsys)
    assert code == 0, err
    rows = list(csv.DictReader(Path(out / "compare.csv").read_text().splitlines()))
    assert [r["model"] for r in rows] == ["first", "second"]
    assert float(rows[0]["mCE"]) == pytest.approx(1.0)  # the reference itself
    for row, name in zip(rows, ("first", "second")):
        result = json.loads((out / name / "result.json").read_text())
        report = RobustnessReport.load(out / name)
        assert float(row["score"]) == pytest.approx(result["score"]["value"])
        assert float(row["mean corruption error"]) == pytest.approx(report.mean_error)
        assert float(row["accuracy pgd-linf 4/255"]) == pytest.approx(report.adversarial_accuracy("pgd-linf 4/255"))
    first, second = RobustnessReport.load(out / "first"), RobustnessReport.load(out / "second")
    assert (
        np.abs(second.errors.sum(axis=1) - first.errors.sum(axis=1)).min() > 0.1
    )  # different tables: mCE 1 only for the reference
    expected = np.mean(second.errors.sum(axis=1) / first.errors.sum(axis=1))
    assert float(rows[1]["mCE"]) == pytest.approx(expected, abs=1e-3) and abs(expected - 1.0) > 0.1
    correlations = list(csv.DictReader(Path(out / "correlations.csv").read_text().splitlines()))
    assert {r["method"] for r in correlations} == set(METHODS) and all(r["n"] == "2" for r in correlations)
    for png in ("sids.png", "score_vs_mce.png", "score_vs_adversarial.png", "score_signed_vs_mce.png"):
        assert (out / png).stat().st_size > 0
    # the same comparison from the finished run folders (robustness.json found next to result.json)
    code, _again, err = run_cli(
        ["compare", "--run", out / "first", "--run", out / "second", "--bootstrap", "100", "--out", tmp_path / "again"],
        capsys,
    )
    assert code == 0, err
    assert (
        list(csv.DictReader(Path(tmp_path / "again" / "compare.csv").read_text().splitlines()))[1]["score"]
        == rows[1]["score"]
    )


def test_compare_models_correlates_across_models():
    from iaside.summary import Estimate

    class FakeResult:
        def __init__(self, s):
            self.score = Estimate(s, s - 0.01, s + 0.01)
            self.score_signed = Estimate(2 * s - 0.5, 2 * s - 0.52, 2 * s - 0.48)
            self.sid = Estimate(np.full(4, 0.25), np.full(4, 0.2), np.full(4, 0.3))
            self.data = {"n_images": 10}

    scores = [0.1, 0.2, 0.3, 0.4, 0.5]
    entries = [
        ModelEntry(f"m{k}", FakeResult(s), _report(f"m{k}", np.full((3, 3), 0.6 - s), adversarial=(s,)))
        for k, s in enumerate(scores)
    ]
    comparison = compare_models(entries, reference="m0", n_bootstrap=200)
    by = {(c.x, c.y, c.method): c for c in comparison.correlations}
    assert by[("score", "mCE", "spearman")].r == pytest.approx(-1.0)
    assert by[("score", "accuracy pgd-linf 2/255", "kendall")].r == pytest.approx(1.0)
    assert comparison.measures()["mCE"][0] == pytest.approx(1.0)
    with pytest.raises(IasideError, match="reference"):
        compare_models(entries, reference="nobody")


# ---------------------------------------------------------------- zoo helpers


def test_zoo_helpers_do_what_they_say():
    x = smooth_images(6, 32, channels=1)
    masks = band_masks(32, 32, 8)
    swapped = zoo.swap_bands(x * 0.5 + 0.25, bands=(1, 6), seed=0)  # mid-grey: nothing clipped
    before, after = split_bands((x * 0.5 + 0.25).double(), masks), split_bands(swapped.double(), masks)
    keep = [b for b in range(8) if b not in (1, 6)]
    torch.testing.assert_close(after[:, keep], before[:, keep], atol=1e-5, rtol=0)
    assert not torch.allclose(after[:, 6], before[:, 6]) and not torch.allclose(after[:, 1], before[:, 1])
    # the swapped bands are other images' bands, the same permutation for both
    perm = [int(torch.argmin(((before[:, 6] - after[i, 6]) ** 2).flatten(1).sum(1))) for i in range(6)]
    assert sorted(perm) == list(range(6)) and perm != list(range(6))
    torch.testing.assert_close(after[:, 1], before[perm, 1], atol=1e-5, rtol=0)
    energy = band_energy(zoo.shortcut_patterns(), masks)
    assert torch.all(energy[:, -1] / energy.sum(dim=1) > 0.999)
    y = torch.arange(100) % 10
    noisy = zoo.noisy_labels(y, 0.2, 10, seed=0)
    assert int((noisy != y).sum()) == 20
    for arch in zoo.ARCHITECTURES:
        assert zoo.build(arch, 4)(torch.rand(2, 1, 32, 32)).shape == (2, 4)


def test_snr_without_a_model_resolves_and_says_its_preprocessing(tmp_path, image_folder, capsys):
    """Without --model the resize and crop come from the flags or --data-config, or are named as guessed (one line)."""
    args = [
        "snr",
        "--data",
        image_folder,
        "--quiet",
        "--corruptions",
        "fog",
        "--linf-eps",
        "none",
        "--l2-eps",
        "none",
        "--bands",
        "4",
    ]
    code, _, err = run_cli([*args, "--out", tmp_path / "guessed"], capsys)
    assert code == 0, err
    assert [line for line in err.splitlines() if "guessed" in line] == [
        line for line in err.splitlines() if line.startswith("iaside: warning: iaside snr without --model")
    ]
    assert "input_size [224, 224]" in err and "resize_size 256" in err
    cfg = tmp_path / "cfg.json"
    cfg.write_text(json.dumps({"input_size": 32, "resize_size": 32}))
    code, _, err = run_cli([*args, "--data-config", cfg, "--out", tmp_path / "declared"], capsys)
    assert code == 0, err
    assert "input_size" not in err and "resize_size" not in err
    assert json.loads((tmp_path / "declared" / "snr.json").read_text())["data"]["data_config"]["input_size"] == [32, 32]
