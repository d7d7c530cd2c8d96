"""robustness/snr.py against values computed here: the least-squares fits with scipy, the
per-band SNR with numpy's FFT on masks built from the band rule of docs/method.md §2, the
pooled curves and the Markdown table of `iaside snr` by hand, the files read back directly.
Small inputs only (8×12 images, 32×32 where imagecorruptions needs it): the mutation run of
this module (benchmarks/mutation.py snr) runs these for every mutant."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
import torch
from scipy import stats

from iaside.errors import IasideError
from iaside.robustness.attacks import Attack, pgd
from iaside.robustness.corruptions import corrupt_images
from iaside.robustness.snr import SnrCurve, SnrMeter, SnrResult, _db, fit_line, mean_db, measure_snr, ring_centres

try:  # imported once here: the mutation run collects the tests once, then forks per mutant
    import imagecorruptions  # noqa: F401
    import torchattacks  # noqa: F401
except ImportError:  # the tests that need them say so
    pass

# ---------------------------------------------------------------- references


def _band_index(h: int, w: int, m: int, partition: str) -> np.ndarray:
    """Band of every DFT bin: min(⌊M·r⌋, M − 1), r = 2|f| per axis (Nyquist = 1) combined by max
    (ℓ∞) or the Euclidean norm (ℓ2); a bin on an edge goes to the upper band (the 1e-9)."""
    fu, fv = np.abs(2 * np.fft.fftfreq(h))[:, None], np.abs(2 * np.fft.fftfreq(w))[None, :]
    r = np.maximum(fu, fv) if partition == "linf" else np.sqrt(fu**2 + fv**2)
    return np.minimum(np.floor(m * r + 1e-9), m - 1).astype(int)


def _snr(clean: np.ndarray, perturbed: np.ndarray, m: int, partition: str) -> np.ndarray:
    """10·log10(Σ|X|² / Σ|ΔX|²) per image over the channels and the bins of each band, (N, m)."""
    index = _band_index(*clean.shape[-2:], m, partition)
    delta = perturbed.astype(np.float64) - clean.astype(np.float64)
    power = [np.abs(np.fft.fft2(a.astype(np.float64))) ** 2 for a in (clean, delta)]
    signal, noise = (np.stack([p[..., index == k].sum(axis=(1, 2)) for k in range(m)], axis=1) for p in power)
    with np.errstate(divide="ignore"):
        return 10 * np.log10(signal) - 10 * np.log10(noise)


def _no_warnings():
    """Every NumPy warning an error: the code must silence the ones it expects itself."""
    context = warnings.catch_warnings()
    context.__enter__()
    warnings.simplefilter("error")
    return context


# ---------------------------------------------------------------- fit_line, mean_db, ring_centres


def test_fit_line_is_least_squares_over_the_finite_points_with_r2():
    """slope, intercept and R² of scipy's linregress over the points whose x and y are both
    finite; two points fit exactly (R² = 1); fewer give NaN with the number of points."""
    x = np.array([0.0, 1.0, 2.0, 3.0, np.nan, 5.0, 6.0])
    y = np.array([3.0, 1.0, np.inf, -2.0, 7.0, -4.5, -9.0])
    ref = stats.linregress([0.0, 1.0, 3.0, 5.0, 6.0], [3.0, 1.0, -2.0, -4.5, -9.0])
    fit = fit_line(x, y)
    assert fit["slope"] == pytest.approx(ref.slope, rel=1e-12)
    assert fit["intercept"] == pytest.approx(ref.intercept, rel=1e-12)
    assert fit["r2"] == pytest.approx(ref.rvalue**2, rel=1e-12) and fit["r2"] < 0.99
    assert fit["n_points"] == 5 and type(fit["n_points"]) is int
    # float32 points are fitted in float64: R² from a float32 mean of y would be off by ~1e-10
    x32 = np.array([0.1, 0.2, 0.3, 0.7, 1.3], np.float32)
    y32 = np.array([3.1, 1.7, -0.2, -2.9, -7.3], np.float32)
    ref = stats.linregress(x32.astype(np.float64), y32.astype(np.float64))
    assert abs(y32.mean() - y32.astype(np.float64).mean()) > 1e-8  # precondition: float32 rounds
    fit = fit_line(x32, y32)
    assert fit["slope"] == pytest.approx(ref.slope, rel=1e-13) and fit["r2"] == pytest.approx(ref.rvalue**2, rel=1e-14)
    # float32 x one float32 step apart: in float64 they are 5 distinct points on a steep line
    # (np.polyfit given float32 x cuts singular values at float32 precision: rank 1, slope ~1)
    x32 = (1 + np.arange(5) * 2.0**-23).astype(np.float32)
    y = np.array([0.0, 1.0, 2.5, 2.9, 4.0])
    ref = stats.linregress(x32.astype(np.float64), y)
    assert fit_line(x32, y)["slope"] == pytest.approx(ref.slope, rel=1e-6) and ref.slope > 8e6
    two = fit_line([1, 4], [2, 8])  # integer lists: (1, 2), (4, 8): slope 2, intercept 0
    assert two == pytest.approx({"slope": 2.0, "intercept": 0.0, "r2": 1.0, "n_points": 2}, abs=1e-12)
    for xs, ys, n in (([0.0, 1.0], [5.0, np.inf], 1), ([0.0], [np.nan], 0), ([], [], 0)):
        one = fit_line(np.array(xs), np.array(ys))
        assert one["n_points"] == n and np.isnan([one["slope"], one["intercept"], one["r2"]]).all()
    context = _no_warnings()  # a constant y has no variance to explain: R² is NaN, without 0/0
    try:
        flat = fit_line(np.arange(4.0), np.full(4, 2.5))
        # a small spread (total sum of squares 0.02 < 1) still gets its R²
        small = fit_line(np.arange(3.0), np.array([0.1, 0.2, 0.3 + 0.1 * np.sqrt(2)]))
    finally:
        context.__exit__(None, None, None)
    assert np.isnan(flat["r2"]) and flat["slope"] == pytest.approx(0.0, abs=1e-12)
    assert flat["intercept"] == pytest.approx(2.5) and flat["n_points"] == 4
    ref = stats.linregress(np.arange(3.0), [0.1, 0.2, 0.3 + 0.1 * np.sqrt(2)])
    assert small["r2"] == pytest.approx(ref.rvalue**2, rel=1e-9) and 0.5 < small["r2"] < 1


def test_mean_db_is_the_mean_over_images_and_inf_where_any_image_has_no_perturbation_energy():
    context = _no_warnings()
    try:
        got = mean_db([[10.0, np.inf, 3.0, np.inf], [20.0, 5.0, -1.0, -np.inf]])
    finally:
        context.__exit__(None, None, None)
    np.testing.assert_array_equal(got[:3], [15.0, np.inf, 1.0])
    assert np.isnan(got[3]) and got.shape == (4,) and got.dtype == np.float64
    np.testing.assert_array_equal(mean_db(np.array([[1, 2], [4, 8], [7, 5]])), [4.0, 5.0])
    per_image = np.array([[0.1, 0.7], [0.2, 0.9], [0.4, 1.3]], np.float32)  # averaged in float64
    got = mean_db(per_image)
    assert got.dtype == np.float64 and abs(per_image.mean(axis=0)[0] - got[0]) > 1e-9  # float32 would round
    np.testing.assert_array_equal(got, [np.float64(v).item() for v in per_image.astype(np.float64).sum(axis=0) / 3])


def test_ring_centres_for_four_rings():
    np.testing.assert_array_equal(ring_centres(4), [0.125, 0.375, 0.625, 0.875])
    np.testing.assert_array_equal(ring_centres(1), [0.5])


# ---------------------------------------------------------------- curves and their pooling


def test_a_curve_is_the_mean_and_sd_over_images_with_its_three_fits():
    band = np.array([[20.0, 12.0, 9.0], [16.0, 10.0, np.inf]])
    grid = np.array([[30.0, 24.0, 20.0, 17.0], [26.0, 22.0, 18.0, 17.0]])
    context = _no_warnings()  # the SD over an image with +inf is NaN, silently
    try:
        c = SnrCurve.from_per_image("fog", "weather", 3, band, grid, 3, 4)
    finally:
        context.__exit__(None, None, None)
    assert (c.name, c.family, c.level, c.n_images) == ("fog", "weather", "3", 2)
    np.testing.assert_array_equal(c.band_db, [18.0, 11.0, np.inf])
    np.testing.assert_array_equal(c.band_db_sd[:2], [2.0, 1.0])  # population SD: |a − b| / 2
    assert np.isnan(c.band_db_sd[2])
    np.testing.assert_array_equal(c.grid_db, [28.0, 23.0, 19.0, 17.0])
    ref = stats.linregress([0.0, 1.0], [18.0, 11.0])
    assert c.fits["band"] == pytest.approx({"slope": -7.0, "intercept": 18.0, "r2": 1.0, "n_points": 2})
    assert ref.slope == -7.0
    centres = np.array([1, 3, 5, 7]) / 8
    for key, x in (("grid_exponential", centres), ("grid_power", np.log10(centres))):
        ref = stats.linregress(x, [28.0, 23.0, 19.0, 17.0])
        assert c.fits[key]["slope"] == pytest.approx(ref.slope, rel=1e-9), key
        assert c.fits[key]["intercept"] == pytest.approx(ref.intercept, rel=1e-9), key
        assert c.fits[key]["r2"] == pytest.approx(ref.rvalue**2, rel=1e-9), key
        assert c.fits[key]["n_points"] == 4
    assert c.fits["grid_exponential"]["r2"] != pytest.approx(c.fits["grid_power"]["r2"], abs=1e-3)
    band32 = np.array([[0.1, 0.7], [0.2, 0.9], [0.4, 1.3]], np.float32)  # SD over images in float64 too
    c = SnrCurve.from_per_image("fog", "weather", 3, band32, grid[:, :2], 2, 2)
    sd = np.sqrt(((band32.astype(np.float64) - band32.astype(np.float64).mean(axis=0)) ** 2).mean(axis=0))
    assert c.band_db_sd.dtype == np.float64 and abs(band32.std(axis=0)[1] - sd[1]) > 1e-9
    np.testing.assert_allclose(c.band_db_sd, sd, rtol=1e-15)


def _curve(name, family, level, band, grid, n_rings=4):
    """A curve whose per-image band and ring dB are ``band`` and ``grid`` on both of 2 images."""
    band, grid = np.array([band, band], np.float64), np.array([grid, grid], np.float64)
    return SnrCurve.from_per_image(name, family, level, band, grid, band.shape[1], n_rings)


def _result(n_rings=4):
    """Two noises (gaussian at severities 1 and 3, shot at 2) and fog, in interleaved order."""
    curves = [
        _curve("gaussian_noise", "noise", 1, [30.0, 19.0, 10.0], [31.0, 25.0, 20.0, 18.0]),
        _curve("fog", "weather", 1, [1.0, 2.0, 4.0], [2.0, 3.0, 3.5, 7.0]),
        _curve("gaussian_noise", "noise", 3, [20.0, 9.0, 1.0], [21.0, 14.0, 12.0, 10.0]),
        _curve("shot_noise", "noise", 2, [12.34, np.inf, -3.06], [15.0, 11.0, 6.0, 5.5]),
    ]
    curves[1].band_db_sd = np.array([0.5, 1.0, 2.0])
    curves[0].band_db_sd = np.array([1.0, 2.0, 4.0])
    curves[1].n_images = 2
    return SnrResult(3, "linf", n_rings, {"spec": "imgs", "n_images": 2}, {"spec": "m"}, 4, curves)


def test_by_name_and_families_pool_every_level_and_member_and_refit():
    res = _result()
    names = res.by_name()
    assert list(names) == ["gaussian_noise", "fog", "shot_noise"]
    g = names["gaussian_noise"]
    assert (g.name, g.family, g.level, g.n_images) == ("gaussian_noise", "noise", "mean", 2)
    np.testing.assert_allclose(g.band_db, [25.0, 14.0, 5.5])
    np.testing.assert_allclose(g.grid_db, [26.0, 19.5, 16.0, 14.0])
    np.testing.assert_allclose(g.band_db_sd, [0.5, 1.0, 2.0])  # (sd of level 1 + 0 for level 3) / 2
    ref = stats.linregress([0, 1, 2], [25.0, 14.0, 5.5])
    assert g.fits["band"]["slope"] == pytest.approx(-9.75) and g.fits["band"]["r2"] == pytest.approx(ref.rvalue**2)
    centres = np.array([1, 3, 5, 7]) / 8
    for key, x in (("grid_exponential", centres), ("grid_power", np.log10(centres))):
        ref = stats.linregress(x, [26.0, 19.5, 16.0, 14.0])
        assert g.fits[key]["slope"] == pytest.approx(ref.slope, rel=1e-9), key
        assert g.fits[key]["r2"] == pytest.approx(ref.rvalue**2, rel=1e-9), key
    fog = names["fog"]  # one level: pooled onto itself, named by its perturbation
    assert (fog.name, fog.family, fog.level) == ("fog", "weather", "mean")
    np.testing.assert_array_equal(fog.band_db, [1.0, 2.0, 4.0])
    fams = res.families()
    assert list(fams) == ["noise", "weather"]
    noise = fams["noise"]
    assert (noise.name, noise.family, noise.level, noise.n_images) == ("noise", "noise", "all", 2)
    np.testing.assert_allclose(noise.band_db, [(30 + 20 + 12.34) / 3, np.inf, (10 + 1 - 3.06) / 3])
    np.testing.assert_allclose(noise.grid_db, [(31 + 21 + 15) / 3, 50 / 3, 38 / 3, 33.5 / 3])
    sd = noise.band_db_sd  # SDs (1, 2, 4), (0, 0, 0), (0, NaN, 0): the SD over images with +inf is NaN
    assert sd[0] == pytest.approx(1 / 3) and np.isnan(sd[1]) and sd[2] == pytest.approx(4 / 3)
    slope = ((10 + 1 - 3.06) / 3 - (30 + 20 + 12.34) / 3) / 2  # the two finite bands, 0 and 2
    assert noise.fits["band"] == pytest.approx(
        {"slope": slope, "intercept": (30 + 20 + 12.34) / 3, "r2": 1.0, "n_points": 2}
    )
    assert fams["weather"].level == "all" and fams["weather"].name == "weather"
    np.testing.assert_array_equal(fams["weather"].band_db_sd, [0.5, 1.0, 2.0])


# ---------------------------------------------------------------- the Markdown table of `iaside snr`


def _r2(x, y) -> str:
    return f"{stats.linregress(x, y).rvalue ** 2:.2f}"


def test_table_rows_are_perturbations_or_families_with_db_per_band_and_the_fits():
    """dB with one decimal (+inf as inf), the slope signed with two decimals, the R² with two;
    rows per perturbation (mean over its levels) by default, per family otherwise."""
    res = _result()
    head = "| perturbation | family | b0 | b1 | b2 | dB/band | R² | R² exp (grid) | R² power (grid) |"
    rule = "|---|---|---|---|---|---|---|---|---|"
    c = np.array([1, 3, 5, 7]) / 8
    lc = np.log10(c)
    g_grid, fog_grid, shot_grid = [26.0, 19.5, 16.0, 14.0], [2.0, 3.0, 3.5, 7.0], [15.0, 11.0, 6.0, 5.5]
    # gaussian_noise: [25, 14, 5.5]: slope −9.75, R² = 1 − 1.0417/191.17 = 0.9946
    # fog: [1, 2, 4]: slope +1.5, R² = 1 − 0.16667/4.6667 = 0.9643
    # shot_noise: 12.34, inf, −3.06 (two finite points): slope (−3.06 − 12.34)/2 = −7.70, R² 1
    expected = [
        head,
        rule,
        f"| gaussian_noise | noise | 25.0 | 14.0 | 5.5 | -9.75 | 0.99 | {_r2(c, g_grid)} | {_r2(lc, g_grid)} |",
        f"| fog | weather | 1.0 | 2.0 | 4.0 | +1.50 | 0.96 | {_r2(c, fog_grid)} | {_r2(lc, fog_grid)} |",
        f"| shot_noise | noise | 12.3 | inf | -3.1 | -7.70 | 1.00 | {_r2(c, shot_grid)} | {_r2(lc, shot_grid)} |",
    ]
    assert (_r2(c, g_grid), _r2(lc, g_grid), _r2(c, fog_grid), _r2(lc, fog_grid)) == ("0.94", "1.00", "0.85", "0.66")
    assert res.table() == "\n".join(expected) and res.table("name") == res.table()
    noise_grid = [67 / 3, 50 / 3, 38 / 3, 33.5 / 3]
    # noise: (30 + 20 + 12.34)/3 = 20.78, inf, (10 + 1 − 3.06)/3 = 2.65; slope (2.6467 − 20.78)/2
    expected = [
        head,
        rule,
        f"| noise | noise | 20.8 | inf | 2.6 | -9.07 | 1.00 | {_r2(c, noise_grid)} | {_r2(lc, noise_grid)} |",
        f"| weather | weather | 1.0 | 2.0 | 4.0 | +1.50 | 0.96 | {_r2(c, fog_grid)} | {_r2(lc, fog_grid)} |",
    ]
    assert res.table("family") == "\n".join(expected) and res.table(rows="level") == res.table("family")


def test_db_cells():
    cells = ["inf", "-inf", "12.3", "-3.1", "0.0", "-0.1"]
    assert [_db(v) for v in (np.inf, -np.inf, 12.34, -3.06, 0.04, -0.06)] == cells
    assert _db(np.float64(5)) == "5.0" and _db(np.nan) == "nan"


# ---------------------------------------------------------------- files, views


def test_snr_json_holds_every_curve_and_family_and_loads_back(tmp_path):
    res = _result()
    res.save(tmp_path)
    d = json.loads((tmp_path / "snr.json").read_text())
    assert set(d) == {"n_bands", "partition", "n_rings", "data", "model", "seed", "ring_centres", "curves", "families"}
    assert (d["n_bands"], d["partition"], d["n_rings"], d["data"], d["model"], d["seed"]) == (
        3,
        "linf",
        4,
        {"spec": "imgs", "n_images": 2},
        {"spec": "m"},
        4,
    )
    assert d["ring_centres"] == [0.125, 0.375, 0.625, 0.875]
    keys = {"name", "family", "level", "n_images", "band_db", "band_db_sd", "grid_db", "fits"}
    assert [set(c) for c in d["curves"]] == [keys] * 4 and [set(f) for f in d["families"].values()] == [keys] * 2
    shot = d["curves"][3]
    assert (shot["name"], shot["family"], shot["level"], shot["n_images"]) == ("shot_noise", "noise", "2", 2)
    assert shot["band_db"] == [12.34, None, -3.06] and shot["band_db_sd"] == [0.0, None, 0.0]
    assert shot["grid_db"] == [15.0, 11.0, 6.0, 5.5] and shot["fits"]["band"]["slope"] == pytest.approx(-7.7)
    noise = d["families"]["noise"]
    assert (noise["name"], noise["family"], noise["level"], noise["n_images"]) == ("noise", "noise", "all", 2)
    assert noise["band_db"][1] is None and noise["band_db"][0] == pytest.approx((30 + 20 + 12.34) / 3)
    assert noise["fits"]["band"]["slope"] == pytest.approx(((10 + 1 - 3.06) - (30 + 20 + 12.34)) / 6)
    assert list(d["families"]) == ["noise", "weather"] and d["families"]["weather"]["band_db"] == [1.0, 2.0, 4.0]
    for where in (tmp_path, tmp_path / "snr.json"):
        back = SnrResult.load(where)
        assert (back.n_bands, back.partition, back.n_rings, back.data, back.model, back.seed) == (
            3,
            "linf",
            4,
            {"spec": "imgs", "n_images": 2},
            {"spec": "m"},
            4,
        )
        assert [(c.name, c.family, c.level, c.n_images) for c in back.curves] == [
            ("gaussian_noise", "noise", "1", 2),
            ("fog", "weather", "1", 2),
            ("gaussian_noise", "noise", "3", 2),
            ("shot_noise", "noise", "2", 2),
        ]
        np.testing.assert_array_equal(back.curves[3].band_db, [12.34, np.inf, -3.06])  # null: no energy, +inf
        sd = back.curves[3].band_db_sd
        assert sd[0] == 0.0 and np.isnan(sd[1]) and sd.dtype == np.float64  # null SD: undefined, NaN
        np.testing.assert_array_equal(back.curves[3].grid_db, [15.0, 11.0, 6.0, 5.5])
        assert back.curves[1].fits == res.curves[1].fits
        assert back.table() == res.table()


def test_load_says_what_to_pass_and_what_is_wrong(tmp_path):
    missing = tmp_path / "nowhere"
    with pytest.raises(IasideError) as err:
        SnrResult.load(missing)
    assert str(err.value) == f"{missing} does not exist: pass the --out folder of `iaside snr`"
    with pytest.raises(IasideError) as err:
        SnrResult.load(tmp_path)
    assert str(err.value) == f"{tmp_path / 'snr.json'} does not exist: pass the --out folder of `iaside snr`"
    (tmp_path / "snr.json").write_text("{")
    with pytest.raises(IasideError) as err:
        SnrResult.load(tmp_path)
    assert str(err.value).startswith(f"{tmp_path / 'snr.json'} is not an snr.json written by `iaside snr` (")
    (tmp_path / "snr.json").write_text('{"n_bands": 3}')
    with pytest.raises(IasideError) as err:
        SnrResult.load(tmp_path / "snr.json")
    assert str(err.value) == f"{tmp_path / 'snr.json'} is not an snr.json written by `iaside snr` ('partition')"


def test_repr_and_the_views_of_this_result(monkeypatch):
    """repr: the data, N, M, partition, curves and families; the DataFrame, figure and notebook
    HTML are robustness.views' (tests/test_views.py checks those) of this result, with the
    rows and axis asked for."""
    from iaside.robustness import views

    res = _result()
    assert repr(res) == "<iaside.SnrResult data=imgs N=2 M=3 linf 4 curves in 2 families>"
    calls = []
    monkeypatch.setattr(views, "snr_frame", lambda r, rows: calls.append(("frame", r, rows)) or "frame")
    monkeypatch.setattr(views, "snr_figure", lambda r, ax: calls.append(("figure", r, ax)) or "figure")
    monkeypatch.setattr(views, "snr_html", lambda r: calls.append(("html", r)) or "<p>html</p>")
    axis = object()
    assert (res.to_pandas(), res.to_pandas("level"), res.plot(), res.plot(axis), res._repr_html_()) == (
        "frame",
        "frame",
        "figure",
        "figure",
        "<p>html</p>",
    )
    assert calls == [
        ("frame", res, "name"),
        ("frame", res, "level"),
        ("figure", res, None),
        ("figure", res, axis),
        ("html", res),
    ]
    assert all(c[1] is res for c in calls)


# ---------------------------------------------------------------- SnrMeter, measure_snr


@pytest.mark.parametrize("h, w, partition", [(8, 12, "linf"), (12, 8, "l2")])
def test_meter_is_the_fft_snr_per_band_and_per_ring(h, w, partition):
    """Image 0 gets broadband noise; image 1 only a constant offset (DC: band 0 and ring 0),
    so its other bands and rings are +inf. Perturbed in float32, clean in float64."""
    rng = np.random.default_rng(3)
    clean = rng.integers(0, 256, (2, 3, h, w)) / 256  # + 1/64: exact in float32
    delta = np.stack([rng.normal(0, 0.05, (3, h, w)), np.full((3, h, w), 1 / 64)])
    perturbed = (clean + delta).astype(np.float32)
    meter = SnrMeter(torch.from_numpy(clean), n_bands=3, partition=partition)
    assert meter.n_rings == 4 and type(meter.n_rings) is int  # min(32, min(H, W) // 2)
    band, ring = meter.measure(torch.from_numpy(perturbed))
    assert band.dtype == ring.dtype == np.float64 and band.shape == (2, 3) and ring.shape == (2, 4)
    np.testing.assert_allclose(band, _snr(clean, perturbed, 3, partition), rtol=1e-9)
    np.testing.assert_allclose(ring, _snr(clean, perturbed, 4, partition), rtol=1e-9)
    assert np.isposinf(band[1, 1:]).all() and np.isfinite(band[0]).all()
    two = SnrMeter(torch.from_numpy(clean), n_bands=2, partition=partition, n_rings=3)
    band, ring = two.measure(torch.from_numpy(perturbed))
    np.testing.assert_allclose(band, _snr(clean, perturbed, 2, partition), rtol=1e-9)
    np.testing.assert_allclose(ring, _snr(clean, perturbed, 3, partition), rtol=1e-9)
    # perturbed images are taken in the clean images' dtype (as spectral.snr_db does): a float64
    # change below float32's resolution of float32 clean images is no change, +inf everywhere
    clean32 = torch.from_numpy((0.5 + clean / 2).astype(np.float32))  # all pixels >= 1/2
    band, ring = SnrMeter(clean32, 2, partition).measure(clean32.double() + 1e-12 * torch.from_numpy(delta))
    assert np.isposinf(band).all() and np.isposinf(ring).all()


def test_meter_rings_default_to_32_and_must_each_hold_a_frequency():
    big = torch.zeros(1, 1, 66, 70)  # min(32, 33)
    assert SnrMeter(big, 2).n_rings == 32 and SnrMeter(big, 2, n_rings=0).n_rings == 32
    clean = torch.zeros(1, 1, 8, 12)
    assert SnrMeter(clean, 2, n_rings=4).n_rings == 4 and SnrMeter(clean, 2, n_rings=1).n_rings == 1
    for n in (5, -1):
        with pytest.raises(IasideError) as err:
            SnrMeter(clean, 2, n_rings=n)
        assert str(err.value) == (
            f"--rings must be between 1 and 4 for 8x12 images (every ring needs a frequency), got {n}"
        )
    with pytest.raises(IasideError) as err:
        SnrMeter(clean, 2, "square")
    assert str(err.value) == "SNR bands need a radial partition (linf or l2), got 'square'"


def _images() -> tuple[np.ndarray, np.ndarray]:
    """Two 32×32 RGB images, some pixels outside [0, 1], and their 8-bit float32 quantisation."""
    rng = np.random.default_rng(7)
    x = rng.uniform(-0.1, 1.1, (2, 3, 32, 32))
    q = np.round(np.clip(x.astype(np.float32), 0, 1) * np.float32(255)) / np.float32(255)
    return x, q.astype(np.float32)


def test_measure_snr_of_each_corruption_at_each_severity(capsys):
    """Images quantised to 8 bits first; curves in corruption-major order with the given
    severities' order; the seed reaches the corruptions; the band and ring dB are the FFT
    SNR of what the corruption changed, averaged over images."""
    x, q = _images()
    images = torch.from_numpy(x).requires_grad_(True)
    res = measure_snr(images, corruptions=["gaussian_noise", "contrast"], severities=[2, 1], n_bands=3, seed=5)
    assert capsys.readouterr().err == ""  # no progress bars unless asked
    assert [(c.name, c.family, c.level) for c in res.curves] == [
        ("gaussian_noise", "noise", "2"),
        ("gaussian_noise", "noise", "1"),
        ("contrast", "digital", "2"),
        ("contrast", "digital", "1"),
    ]
    assert (res.n_bands, res.partition, res.n_rings, res.seed, res.model) == (3, "linf", 16, 5, None)
    assert res.data == {"shape": [2, 3, 32, 32]}
    for c in res.curves:
        corrupted = corrupt_images(torch.from_numpy(q), c.name, int(c.level), seed=5).numpy()
        band, ring = _snr(q, corrupted, 3, "linf"), _snr(q, corrupted, 16, "linf")
        np.testing.assert_allclose(c.band_db, band.mean(axis=0), rtol=0, atol=1e-5)
        np.testing.assert_allclose(c.band_db_sd, band.std(axis=0), rtol=0, atol=1e-6)
        np.testing.assert_allclose(c.grid_db, ring.mean(axis=0), rtol=0, atol=1e-5)
        assert c.n_images == 2 and c.fits["band"]["n_points"] == 3
    assert '"n_rings": 16,' in json.dumps(res.to_json_dict())  # an integer, as --rings reads it


def test_measure_snr_options_and_refusals():
    _, q = _images()
    res = measure_snr(
        torch.from_numpy(q),
        corruptions=["contrast"],
        severities=[4],
        n_bands=2,
        partition="l2",
        n_rings=5,
        data={"spec": "given"},
        model_info={"spec": "m"},
    )
    assert (res.partition, res.n_rings, res.data, res.model, res.seed) == ("l2", 5, {"spec": "given"}, {"spec": "m"}, 0)
    corrupted = corrupt_images(torch.from_numpy(q), "contrast", 4).numpy()
    np.testing.assert_allclose(res.curves[0].band_db, _snr(q, corrupted, 2, "l2").mean(axis=0), rtol=0, atol=1e-5)
    np.testing.assert_allclose(res.curves[0].grid_db, _snr(q, corrupted, 5, "l2").mean(axis=0), rtol=0, atol=1e-5)
    none = measure_snr(torch.from_numpy(q), severities=[9], n_bands=2)  # severities unused without corruptions
    assert none.curves == [] and none.n_rings == 16
    with pytest.raises(IasideError, match=r"severities must be among 1, 2, 3, 4, 5; got \[9\]"):
        measure_snr(torch.from_numpy(q), corruptions=["contrast"], severities=[9])
    with pytest.raises(IasideError) as err:
        measure_snr(torch.from_numpy(q), attacks=[Attack("linf", 0.0)])
    assert str(err.value) == "adversarial SNR needs a model: pass --model, or --linf-eps none --l2-eps none"
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 32 * 32, 3))
    with pytest.raises(IasideError) as err:
        measure_snr(torch.from_numpy(q), attacks=[Attack("linf", 0.0)], model=model)
    assert str(err.value) == "adversarial SNR needs labels (or predicted labels) for the images"

    class NoParameters(torch.nn.Module):
        def forward(self, x):
            return x.flatten(1)[:, :3]

    with pytest.raises(IasideError, match="has no torch parameters"):
        measure_snr(torch.from_numpy(q), attacks=[Attack("linf", 1 / 255, 1)], model=NoParameters(), labels=[0, 1])


def test_measure_snr_of_pgd_is_the_snr_of_the_attack_with_its_seed_and_batch_size(capsys):
    """Each attack is one curve named by its norm, levelled by its ε; the images are float64
    (the attack sees the float32 quantised ones), labels int32. Progress bars when asked."""
    x, q = _images()
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 32 * 32, 3))
    attacks = [Attack("linf", 2 / 255, 1), Attack("l2", 0.5, 1)]
    labels = np.array([0, 2], np.int32)
    res = measure_snr(
        torch.from_numpy(x),
        corruptions=["contrast"],
        severities=[1],
        attacks=attacks,
        model=model,
        labels=labels,
        n_bands=2,
        n_rings=3,
        seed=3,
        batch_size=1,
        show_progress=True,
    )
    err = capsys.readouterr().err
    assert "corruptions: " in err and "attacks: " in err and "\n" not in err  # bars cleared when done
    assert [(c.name, c.family, c.level) for c in res.curves[1:]] == [
        ("pgd-linf", "pgd-linf", "2/255"),
        ("pgd-l2", "pgd-l2", "0.5"),
    ]
    target = torch.tensor([0, 2])
    one_batch = pgd(model, torch.from_numpy(q), target, attacks[1], seed=3, batch_size=2).numpy()
    other_seed = pgd(model, torch.from_numpy(q), target, attacks[1], seed=0, batch_size=1).numpy()
    for other in (one_batch, other_seed):  # precondition: the batch size and seed change the random starts
        assert not np.allclose(_snr(q, other, 2, "linf").mean(axis=0), res.curves[2].band_db, rtol=1e-5)
    for attack, c in zip(attacks, res.curves[1:]):
        adv = pgd(model, torch.from_numpy(q), target, attack, seed=3, batch_size=1).numpy()
        np.testing.assert_allclose(c.band_db, _snr(q, adv, 2, "linf").mean(axis=0), rtol=1e-8)
        np.testing.assert_allclose(c.grid_db, _snr(q, adv, 3, "linf").mean(axis=0), rtol=1e-8)


def test_measure_snr_attacks_64_images_at_a_time_by_default(capsys):
    """65 images: PGD's random starts are drawn per batch of 64 (pgd's default), so the 65th
    image gets another start than in one batch of 65; no progress bars unless asked."""
    g = torch.Generator().manual_seed(2)
    q = torch.round(torch.rand(65, 1, 8, 8, generator=g) * 255) / 255
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 2))
    attack = Attack("l2", 0.3, 1)
    labels = np.arange(65) % 2
    res = measure_snr(q, attacks=[attack], model=model, labels=labels, n_bands=2, n_rings=2)
    assert capsys.readouterr().err == ""
    target = torch.as_tensor(labels)
    adv = pgd(model, q, target, attack, batch_size=64).numpy()
    one_batch = pgd(model, q, target, attack, batch_size=65).numpy()
    expected = _snr(q.numpy(), adv, 2, "linf").mean(axis=0)
    assert not np.allclose(_snr(q.numpy(), one_batch, 2, "linf").mean(axis=0), expected, rtol=1e-5)  # precondition
    np.testing.assert_allclose(res.curves[0].band_db, expected, rtol=1e-8)


def test_snr_json_keeps_minus_infinity_and_nan_apart_from_plus_infinity(tmp_path):
    """A band where the clean image has no energy is −inf dB, one where neither image has any is
    NaN, and no perturbation energy is +inf: each reads back as itself (+inf was the only
    non-finite value a file could hold, so −inf and NaN came back as +inf, the opposite)."""
    per_image = np.array([[12.0, np.inf, -np.inf, np.nan], [13.0, np.inf, -np.inf, np.nan]])
    grid = np.array([[3.0, -np.inf], [4.0, -np.inf]])
    curve = SnrCurve.from_per_image("fog", "weather", 2, per_image, grid, 4, 2)
    np.testing.assert_array_equal(curve.band_db, [12.5, np.inf, -np.inf, np.nan])  # precondition
    SnrResult(4, "linf", 2, {"spec": "imgs"}, {"spec": "m"}, 0, [curve]).save(tmp_path)
    written = json.loads((tmp_path / "snr.json").read_text())["curves"][0]
    assert written["band_db"] == [12.5, None, "-inf", "nan"]
    assert written["band_db_sd"][1:] == [None, None, None]  # an SD with ±inf or NaN among the images: NaN
    assert written["grid_db"] == [3.5, "-inf"]
    back = SnrResult.load(tmp_path).curves[0]
    for field in ("band_db", "band_db_sd", "grid_db"):
        np.testing.assert_array_equal(getattr(back, field), getattr(curve, field))  # NaN == NaN here
    older = SnrCurve.from_dict({**written, "band_db": [12.5, None, None, None]})
    np.testing.assert_array_equal(older.band_db, [12.5, np.inf, np.inf, np.inf])  # files before: null is +inf
