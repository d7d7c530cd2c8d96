"""``Result`` (iaside/result.py) on hand-made results, no model and no run: every line `iaside
show` prints, result.json and per_image.npz written and read back field by field, and the
helpers (score_columns, low_band_share, chance_accuracy, total, interpret, estimator_line,
outside_interval_notes), each against values worked out here; and on the same results the
HTML report's key numbers, band table and interval formats (report/markup.py, run_section.py).

The numbers are chosen so that the plausible mistakes give a different answer: the band with
the smallest φ is neither the first nor the last, the stated level is 90 % (not the 95 %
default), β is 0.5 (not 0.75), the bootstrap has 50 resamples and seed 3 (not 1000 and 0).
"""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from iaside.errors import IasideError
from iaside.result import PER_IMAGE_NPZ, RESULT_JSON, Result, outside_interval_notes
from iaside.summary import Estimate, bootstrap_means

M, N = 4, 6
PHI_IMG = np.array(
    [
        [0.9, 0.2, -0.1, 0.3711],  # Σ 1.3711
        [0.3, 0.4, -0.2, 0.3293],  # Σ 0.8293
        [0.6, 0.1, 0.0, 0.5157],  # Σ 1.2157
        [0.2, 0.3, -0.3, 0.2402],  # Σ 0.4402
        [0.7, 0.2, 0.1, 0.5921],  # Σ 1.5921
        [0.3, 0.3, -0.25, 0.2016],  # Σ 0.5516
    ]
)
TOTALS = np.array([1.3711, 0.8293, 1.2157, 0.4402, 1.5921, 0.5516])  # the rows' sums (irregular: few tied resamples)
LABELS = np.array([0, 0, 0, 1, 1, 2])  # the most frequent label covers 3 of 6: chance 0.5
TOP1 = np.array([0, 0, 1, 1, 1, 2])  # 5 of 6 right
V_NATS = np.array(
    [-1.25, -0.75, -1.0, -0.5, -1.125, -0.625, -0.875, -0.375, -1.0625, -0.5625, -0.8125, -0.3125]
    + [-0.9375, -0.4375, -0.6875, -0.25]
)  # v(∅) = −1.25, v(N) = −0.25: v(N) − v(∅) = +1
CONFIG = {
    "bands": M,
    "partition": "linf",
    "fill": "partner",
    "synthesis": "sum",
    "clip": False,
    "preset": None,
    "labels": "given",
    "samples": None,
    "seed": 3,
    "estimator": "exact",
    "permutations": None,
    "coalitions": None,
    "draws": "shared",
    "n_bootstrap": 50,
    "confidence": 0.9,
    "beta": 0.5,
}
DATA_CONFIG = {
    "input_size": [32, 32],
    "resize_size": 36,
    "interpolation": "bilinear",
    "mean": [0.5, 0.5, 0.5],
    "std": [0.25, 0.25, 0.25],
    "channels": 3,
}
NOTE_TAIL = (
    "bootstrap percentile interval: a score is a nonlinear function of the mean φ (shifted by its minimum "
    "band, normalised), so its resampled values are biased away from the point estimate, most when the "
    "bands' φ are close relative to their noise; the interval shows the spread, the point is the estimate "
    "(docs/reliability.md)"
)


def est(value, low, high) -> Estimate:
    return Estimate(
        np.array(value, dtype=np.float64), np.array(low, dtype=np.float64), np.array(high, dtype=np.float64)
    )


def per_image() -> dict[str, np.ndarray]:
    return {
        "logp_nats": V_NATS[None, :] + np.arange(N)[:, None] * 0.125,
        "phi_per_image": PHI_IMG.copy(),
        "label": LABELS.copy(),
        "clean_top1": TOP1.copy(),
        "index": np.arange(10, 10 + N),
        "names": np.array([f"img{i}.png" for i in range(N)]),
    }


def make(**changes) -> Result:
    """The hand-made run: M = 4, N = 6, 90 % intervals, β = 0.5; φ smallest on band 2."""
    fields = dict(
        config=dict(CONFIG),
        model={"spec": "tiny.pt", "fingerprint": "f00d", "num_classes": 3},
        data={
            "spec": "imgs/",
            "source": None,
            "n_images": N,
            "data_config": DATA_CONFIG,
            "data_config_sources": {k: "sidecar tiny.pt.json" for k in DATA_CONFIG},
        },
        meta={"iaside_version": "0.1.0", "created": "2026-11-30T00:00:00+00:00"},
        v_nats=V_NATS.copy(),
        phi=est([0.5, 0.25, -0.125, 0.375], [0.375, 0.125, -0.25, 0.25], [0.625, 0.5, 0.0625, 0.5]),
        sid=est([5 / 12, 0.25, 0.0, 1 / 3], [0.3, 0.125, 0.0, 0.25], [0.5, 0.375, 0.0625, 0.4375]),
        shares=est([0.5, 0.25, -0.125, 0.375], [0.4, 0.2, -0.2, 0.3], [0.6, 0.3, -0.05, 0.45]),
        score=Estimate(0.3125, 0.25, 0.375),
        score_signed=Estimate(0.5, 0.375, 0.625),
        per_class={
            0: {"n": 3, "phi": np.array([0.6, 0.7 / 3, -0.1, 0.4]), "sid": np.array([0.4, 0.2, 0.0, 0.4])},
            1: {"n": 2, "phi": np.array([0.45, 0.25, -0.1, 0.4]), "sid": np.array([0.5, 0.2, 0.0, 0.3])},
            2: {"n": 1, "phi": np.array([0.3, 0.3, -0.25, 0.25]), "sid": np.array([0.5, 0.5, 0.0, 0.0])},
        },
        clean_accuracy=5 / 6,
        efficiency_gap=3.5e-16,
        per_image=per_image(),
    )
    fields.update(changes)
    return Result(**fields)


def paper_score_range(m: int, beta: float) -> float:
    """The score of all mass on band 0: |b̂₀ − η| / |1 − η|, b_k = β^k, b̂ = b/‖b‖, η = Σb/(M‖b‖)."""
    b = np.array([beta**k for k in range(m)])
    norm = np.sqrt(np.sum(b * b))
    eta = b.sum() / (m * norm)
    return abs(b[0] / norm - eta) / abs(1 - eta)


def total_interval(n_bootstrap: int, confidence: float, seed: int) -> tuple[float, float]:
    """The percentile interval of the mean of the image totals over the run's resamples."""
    means = bootstrap_means(TOTALS[:, None], n_bootstrap, seed)[:, 0]
    tail = (1 - confidence) / 2
    return float(np.quantile(means, tail)), float(np.quantile(means, 1 - tail))


# ---------------------------------------------------------------- what `iaside show` prints


def test_show_prints_every_number_of_the_result():
    """Every line of ``table()``, written out by hand from the numbers above."""
    r = make()
    lo, hi = total_interval(50, 0.9, 3)
    assert 0.4 < lo < hi < 1.6 and (lo, hi) != total_interval(1000, 0.95, 0)
    assert r.table().splitlines() == [
        "I-ASIDE  model=tiny.pt  data=imgs/  images=6  M=4  fill=partner  partition=linf",
        "estimator: exact Shapley values (all 16 coalitions per image)",
        "preprocessing: resize 36 bilinear → crop 32×32 → 3 channels → mean 0.5,0.5,0.5 std 0.25,0.25,0.25 "
        "[all: sidecar tiny.pt.json]",
        "clean top-1 accuracy: 0.833  (chance, the most frequent label: 0.500)",
        "band" + " " * 17 + "phi (nats)" + " " * 5 + "φ/Σφ" + " " * 19 + "SID",
        "   0     +0.5000 [+0.3750,+0.6250]   +0.500   0.417 [0.300,0.500]",
        "   1     +0.2500 [+0.1250,+0.5000]   +0.250   0.250 [0.125,0.375]",
        "   2     -0.1250 [-0.2500,+0.0625]   -0.125   0.000 [0.000,0.062]  *",
        "   3     +0.3750 [+0.2500,+0.5000]   +0.375   0.333 [0.250,0.438]",
        "* band 2 has the smallest φ: the paper's SID shifts every φ by it (ψ = φ − min φ), so its SID is 0 by "
        "construction; φ/Σφ is the signed share that keeps it.",
        "score        0.3125  (90% CI 0.2500 – 0.3750)",
        "score_signed +0.5000  (90% CI +0.3750 – +0.6250)",
        "v(N) − v(∅) = +1.0000 nats = Σφ (efficiency gap 3.5e-16)",
        "The lowest 1 of 4 bands carry 42% of the spectral importance (uniform would be 25%); band 0 matters "
        "most, so the model leans on robust low-frequency features (score_signed +0.50).",
    ]
    assert r.informative is True
    assert r.interpretation == {
        "informative": True,
        "why": f"Σφ = +1.0000 nats [{lo:+.4f}, {hi:+.4f}] is away from 0 and clean accuracy 0.833 is above "
        "chance (0.500)",
        "sentence": r.table().splitlines()[-1],
    }


def test_show_header_preset_level_and_lines_that_depend_on_the_run():
    """A preset is named in the header; without a stated confidence the level is 95 %; without
    a data config there is no preprocessing line; predicted labels (no clean accuracy) print
    no accuracy line, and a model without a class count no chance rate; the level rounds
    (0.57 is 57 %, not int()'s 56)."""
    config = {**CONFIG, "preset": "paper"}
    del config["confidence"]
    r = make(config=config, data={"spec": "imgs/", "n_images": N})
    lines = r.table().splitlines()
    assert lines[0] == "I-ASIDE  model=tiny.pt  data=imgs/  images=6  M=4  fill=partner  partition=linf  preset=paper"
    assert lines[2].startswith("clean top-1 accuracy") and not any(ln.startswith("preprocessing") for ln in lines)
    assert "score        0.3125  (95% CI 0.2500 – 0.3750)" in lines
    assert "score_signed +0.5000  (95% CI +0.3750 – +0.6250)" in lines

    no_chance = make(model={"spec": "tiny.pt"}, per_image={"phi_per_image": PHI_IMG})
    assert "clean top-1 accuracy: 0.833" in no_chance.table().splitlines()
    predicted = make(clean_accuracy=None, config={**CONFIG, "confidence": 0.57})
    lines = predicted.table().splitlines()
    assert not any("accuracy" in ln for ln in lines)
    assert "score        0.3125  (57% CI 0.2500 – 0.3750)" in lines
    # the sources of a data config: one source is named once at the end, several per step
    sources = {k: "sidecar tiny.pt.json" for k in DATA_CONFIG} | {"input_size": "given"}
    mixed = make(data={"spec": "imgs/", "n_images": N, "data_config": DATA_CONFIG, "data_config_sources": sources})
    assert mixed.table().splitlines()[2] == (
        "preprocessing: resize 36 bilinear [sidecar tiny.pt.json] → crop 32×32 [given] → 3 channels "
        "[sidecar tiny.pt.json] → mean 0.5,0.5,0.5 std 0.25,0.25,0.25 [sidecar tiny.pt.json]"
    )


def test_show_says_when_a_run_is_not_informative():
    """A score interval spanning ≥ 90 % of the score's range (at the run's β = 0.5, not 0.75)
    makes the run not informative: show says so, and why, instead of the reading."""
    top = paper_score_range(M, 0.5)
    assert abs(top - paper_score_range(M, 0.75)) > 0.3 and 0.9 * top <= 0.72
    r = make(score=Estimate(0.3, 0.0, 0.72))
    why = f"the score's interval [0.000, 0.720] spans {100 * 0.72 / top:.0f}% of its range [0, {top:.3f}]"
    assert why == "the score's interval [0.000, 0.720] spans 93% of its range [0, 0.777]"
    assert r.informative is False
    assert r.interpretation == {
        "informative": False,
        "why": why,
        "sentence": f"Not informative: {why}. The SID and scores of this run say nothing about the model.",
    }
    assert r.table().splitlines()[-2:] == [
        f"NOT INFORMATIVE: {why}.",
        "Nothing to interpret: the SID, φ and scores above are not evidence about this model.",
    ]
    config = dict(CONFIG)
    del config["beta"]  # the default β = 0.75
    top75 = paper_score_range(M, 0.75)
    assert make(score=Estimate(0.3, 0.0, 0.72), config=config).interpretation["why"] == (
        f"the score's interval [0.000, 0.720] spans {100 * 0.72 / top75:.0f}% of its range [0, {top75:.3f}]"
    )


def test_a_score_outside_its_interval_gets_one_note():
    """The note under the scores: one score outside its interval, both, or none (on an edge is
    inside; an interval without finite ends has nothing to be outside of)."""
    one = make(score=Estimate(0.2, 0.25, 0.375))
    assert outside_interval_notes(one) == ["note: score lies outside its " + NOTE_TAIL]
    lines = one.table().splitlines()
    assert lines[lines.index("score_signed +0.5000  (90% CI +0.3750 – +0.6250)") + 1] == (
        "note: score lies outside its " + NOTE_TAIL
    )
    assert outside_interval_notes(make(score_signed=Estimate(0.7, 0.375, 0.625))) == [
        "note: score_signed lies outside its " + NOTE_TAIL
    ]
    both = make(score=Estimate(0.4, 0.25, 0.375), score_signed=Estimate(0.3, 0.375, 0.625))
    assert outside_interval_notes(both) == ["note: score and score_signed lie outside their " + NOTE_TAIL]
    for score in (
        Estimate(0.25, 0.25, 0.375),
        Estimate(0.375, 0.25, 0.375),
        Estimate(0.2, np.nan, 0.375),
        Estimate(0.2, 0.25, np.nan),
        Estimate(0.5, -np.inf, 0.375),
        Estimate(0.1, 0.25, np.inf),
    ):
        assert outside_interval_notes(make(score=score)) == [], score
        assert outside_interval_notes(make(score_signed=score)) == [], score
    assert outside_interval_notes(make()) == []


def test_estimator_line_names_the_estimator_and_its_cost():
    """Exact: all 2**M coalitions (also for a record without a name, or none); a sampling
    estimator with its passes, permutations or coalitions, draws and largest φ standard error."""
    exact = "estimator: exact Shapley values (all 16 coalitions per image)"
    for record in ({"name": "exact"}, None, {}, {"coalitions": 5}):
        assert make(estimator=record).estimator_line() == exact, record
    assert make(**_bands(8)).estimator_line() == "estimator: exact Shapley values (all 256 coalitions per image)"
    perm = {"name": "permutation", "passes_per_image": 58, "permutations": 8, "draws": "per-image"}
    assert make(estimator={**perm, "phi_se": [0.002, None, 0.0123, 0.005]}).estimator_line() == (
        "estimator: permutation (58 coalition passes per image, 8 antithetic permutations, draws per-image, "
        "largest φ standard error 1.2e-02 nats)"
    )
    kernel = {"name": "kernel", "passes_per_image": 0, "coalitions": 40, "draws": "shared", "phi_se": [None, None]}
    assert make(estimator=kernel).estimator_line() == "estimator: kernel (40 coalitions, draws shared)"
    assert make(estimator={"name": "kernel", "phi_se": None}).estimator_line() == "estimator: kernel ()"


# ---------------------------------------------------------------- the helpers


def _bands(m: int) -> dict:
    """Fields of a run with m bands: SID k/Σk on band k (so every prefix has its own sum)."""
    sid = np.arange(1, m + 1) / (m * (m + 1) / 2)
    phi = np.arange(m, dtype=np.float64)
    return dict(
        sid=Estimate(sid, sid, sid),
        phi=Estimate(phi, phi, phi),
        shares=Estimate(sid, sid, sid),
        v_nats=np.linspace(-1.0, 0.0, 2**m),
        per_image={},
        per_class={},
        interpretation={"informative": False, "why": "-", "sentence": "-"},
    )


def test_low_band_share_is_the_sid_of_the_lowest_quarter():
    """Σ SID over the lowest max(1, M // 4) bands, or over the lowest n_low when given."""
    r = make()
    assert r.n_bands == 4 and r.low_band_share() == pytest.approx(5 / 12, rel=1e-12)
    assert r.low_band_share(3) == pytest.approx(5 / 12 + 1 / 4, rel=1e-12)
    assert make(**_bands(8)).low_band_share() == pytest.approx((1 + 2) / 36, rel=1e-12)
    assert make(**_bands(12)).low_band_share() == pytest.approx((1 + 2 + 3) / 78, rel=1e-12)
    assert make(**_bands(3)).low_band_share() == pytest.approx(1 / 6, rel=1e-12)
    assert make(**_bands(3)).n_bands == 3


def test_score_columns_min_shift_band_and_chance():
    r = make()
    assert r.score_columns() == {
        "score": 0.3125,
        "score_low": 0.25,
        "score_high": 0.375,
        "score_signed": 0.5,
        "score_signed_low": 0.375,
        "score_signed_high": 0.625,
    }
    assert all(type(v) is float for v in r.score_columns().values())
    assert r.min_shift_band() == 2 and make(**_bands(5)).min_shift_band() == 0
    # chance: the most frequent given label's rate; without labels 1/C; without either, or for
    # predicted labels (no clean accuracy), none
    assert r.chance_accuracy() == 0.5
    assert make(per_image={"label": np.array([4, 1, 4, 4, 7])}).chance_accuracy() == pytest.approx(3 / 5)
    assert make(per_image={}).chance_accuracy() == pytest.approx(1 / 3)
    assert make(per_image={"label": np.array([], dtype=np.int64)}).chance_accuracy() == pytest.approx(1 / 3)
    assert make(per_image={}, model={"spec": "x", "num_classes": None}).chance_accuracy() is None
    assert make(per_image={}, model={"spec": "x"}).chance_accuracy() is None
    assert make(clean_accuracy=None).chance_accuracy() is None


def test_total_is_the_bootstrap_of_the_image_totals_at_the_run_s_settings():
    """Σφ with its interval: the mean of the per-image totals, the run's resamples, level and
    seed (defaults 1000, 95 %, 0); no interval without per-image values."""
    t = make().total()
    assert t.value == pytest.approx(1.0, rel=1e-12)
    assert (t.low, t.high) == pytest.approx(total_interval(50, 0.9, 3), rel=1e-12)
    bare = {k: v for k, v in CONFIG.items() if k not in ("n_bootstrap", "confidence", "seed")}
    t = make(config=bare).total()
    assert (t.low, t.high) == pytest.approx(total_interval(1000, 0.95, 0), rel=1e-12)
    for other in ((1001, 0.95, 0), (1000, 0.95, 1), (1000, 0.9, 0)):  # each default matters here
        assert total_interval(*other) != pytest.approx(total_interval(1000, 0.95, 0), rel=1e-12), other
    f32 = make(per_image={"phi_per_image": PHI_IMG.astype(np.float32)}).total()
    sums64 = PHI_IMG.astype(np.float32).astype(np.float64).sum(axis=1)
    assert f32.value == pytest.approx(sums64.mean(), rel=1e-15, abs=0)
    for phi_img in ({}, {"phi_per_image": np.zeros((0, M))}):
        t = make(per_image=phi_img).total()
        assert t.value == pytest.approx(1.0, rel=1e-12) and np.isnan(t.low) and np.isnan(t.high)


def test_interpret_reads_the_classes_from_the_labels_the_model_and_the_run():
    """Which reasons a run gets: the classes seen come from the images' labels when there are
    any (else from per_class), the model's class count from the model record."""
    one_label = "all images carry one label, so the game cannot tell classes apart"
    same = make(per_image={"phi_per_image": PHI_IMG, "label": np.full(N, 1)})
    assert one_label in same.interpretation["why"] and not same.informative
    assert "clean top-1 accuracy 0.833 is at or below chance (1.000" in same.interpretation["why"]
    # no labels: the classes of per_class count (three here, one below)
    assert make(per_image={"phi_per_image": PHI_IMG}).informative
    one_class = {1: make().per_class[1]}
    assert one_label in make(per_image={"phi_per_image": PHI_IMG}, per_class=one_class).interpretation["why"]
    empty = {"phi_per_image": PHI_IMG, "label": np.array([], dtype=np.int64)}
    assert make(per_image=empty).informative
    assert one_label in make(per_image=empty, per_class=one_class).interpretation["why"]
    assert make(per_class=one_class).informative  # the labels say three classes
    model1 = make(model={"spec": "tiny.pt", "num_classes": 1})
    assert model1.interpretation["why"].startswith("the model has 1 class, so log p(y | x) is 0 whatever the image")
    assert make(model={"spec": "tiny.pt", "num_classes": 2}).informative
    # no per-image values: Σφ has no interval
    assert make(per_image={}).interpretation["why"] == (
        "Σφ = +1.0000 nats has no bootstrap interval (one image or no resamples), so it cannot be told from zero"
    )
    assert make(interpretation={"informative": True, "why": "w", "sentence": "s"}).interpretation["why"] == "w"


# ---------------------------------------------------------------- result.json and per_image.npz


def _views() -> dict:
    idx = np.array(
        [[0.0, 0.25, -0.5, 0.125], [0.25, 0.0, 0.0625, 0.0], [-0.5, 0.0625, 0.0, 0.0], [0.125, 0.0, 0.0, 0.0]]
    )
    mob = np.linspace(-1.0, 1.0, 16)
    return {
        "interactions": {"index": Estimate(idx, idx - 0.1, idx + 0.1), "mobius": Estimate(mob, mob - 0.5, mob + 0.5)},
        "band_limited": {
            "cutoff": np.arange(M),
            "fill": "partner",
            "n_images": N,
            "n_images_top1": N,
            "lowpass": {
                "mask": np.array([1, 3, 7, 15]),
                "v_nats": est([-1.0, -0.75, -0.5, -0.25], [-1.1, -0.8, -0.6, -0.3], [-0.9, -0.7, -0.4, -0.2]),
                "accuracy": est([0.5, 0.5, 2 / 3, 5 / 6], [0.25, 0.25, 0.5, 0.5], [0.75, 0.75, 1.0, 1.0]),
            },
            "highpass": {
                "mask": np.array([15, 14, 12, 8]),
                "v_nats": est([-0.25, -1.0, -1.2, -1.25], [-0.3, -1.1, -1.3, -1.4], [-0.2, -0.9, -1.1, -1.1]),
                "accuracy": None,
            },
        },
    }


def test_result_json_holds_every_field_and_reads_back(tmp_path):
    """result.json read directly: every field is the result's own value; per_image.npz holds
    every array; loading gives the same result back, from the folder or the file."""
    r = make(shares=est([0.5, 0.25, -0.125, 0.375], [np.nan] * 4, [np.nan] * 4), **_views())
    assert r.save(tmp_path / "run") == tmp_path / "run"
    d = json.loads((tmp_path / "run" / RESULT_JSON).read_text())
    assert set(d) == set(
        [
            "config",
            "model",
            "data",
            "meta",
            "v_nats",
            "phi",
            "sid",
            "shares",
            "score",
            "score_signed",
            "per_class",
            "clean_accuracy",
            "efficiency_gap",
            "coalitions",
            "estimator",
            "interpretation",
            "interactions",
            "band_limited",
            "checksum",
        ]
    )
    assert (d["config"], d["model"], d["data"], d["meta"]) == (r.config, r.model, r.data, r.meta)
    assert d["v_nats"] == V_NATS.tolist()
    assert d["phi"] == {
        "value": [0.5, 0.25, -0.125, 0.375],
        "low": [0.375, 0.125, -0.25, 0.25],
        "high": [0.625, 0.5, 0.0625, 0.5],
    }
    assert d["sid"]["value"] == [5 / 12, 0.25, 0.0, 1 / 3] and d["sid"]["high"] == [0.5, 0.375, 0.0625, 0.4375]
    assert d["shares"]["value"] == [0.5, 0.25, -0.125, 0.375] and all(np.isnan(d["shares"]["low"]))
    assert d["score"] == {"value": 0.3125, "low": 0.25, "high": 0.375}
    assert d["score_signed"] == {"value": 0.5, "low": 0.375, "high": 0.625}
    assert d["per_class"] == {
        "0": {"n": 3, "phi": [0.6, 0.7 / 3, -0.1, 0.4], "sid": [0.4, 0.2, 0.0, 0.4]},
        "1": {"n": 2, "phi": [0.45, 0.25, -0.1, 0.4], "sid": [0.5, 0.2, 0.0, 0.3]},
        "2": {"n": 1, "phi": [0.3, 0.3, -0.25, 0.25], "sid": [0.5, 0.5, 0.0, 0.0]},
    }
    assert d["clean_accuracy"] == 5 / 6 and d["efficiency_gap"] == 3.5e-16 and d["coalitions"] is None
    assert d["estimator"] == {"name": "exact"} and d["interpretation"] == r.interpretation
    assert d["interpretation"]["informative"] is True
    assert d["interactions"]["index"]["value"][0] == [0.0, 0.25, -0.5, 0.125]
    assert d["interactions"]["mobius"]["low"] == (np.linspace(-1.0, 1.0, 16) - 0.5).tolist()
    assert d["interactions"]["strongest"]["synergy"]["bands"] == [0, 1]
    assert d["interactions"]["strongest"]["redundancy"]["bands"] == [0, 2]
    bl = d["band_limited"]
    assert bl["cutoff"] == [0, 1, 2, 3] and bl["fill"] == "partner" and bl["n_images_top1"] == N
    assert bl["lowpass"]["mask"] == [1, 3, 7, 15] and bl["lowpass"]["accuracy"]["value"] == [0.5, 0.5, 2 / 3, 5 / 6]
    assert bl["highpass"]["v_nats"]["high"] == [-0.2, -0.9, -1.1, -1.1] and bl["highpass"]["accuracy"] is None
    with np.load(tmp_path / "run" / PER_IMAGE_NPZ) as z:
        assert sorted(z.files) == sorted(per_image())
        for k, a in per_image().items():
            np.testing.assert_array_equal(z[k], a, err_msg=k)

    for path in (tmp_path / "run", tmp_path / "run" / RESULT_JSON):
        back = Result.load(path)
        _assert_same(back, r)
        for k, a in per_image().items():
            np.testing.assert_array_equal(back.per_image[k], a, err_msg=k)
        assert back.per_image.keys() == per_image().keys()
        ix, bl2 = back.interactions, back.band_limited
        np.testing.assert_array_equal(ix["index"].high, r.interactions["index"].high)
        np.testing.assert_array_equal(ix["mobius"].value, np.linspace(-1.0, 1.0, 16))
        np.testing.assert_array_equal(bl2["cutoff"], np.arange(M))
        assert bl2["cutoff"].dtype == np.int64 and bl2["highpass"]["accuracy"] is None
        np.testing.assert_array_equal(bl2["lowpass"]["accuracy"].low, [0.25, 0.25, 0.5, 0.5])


def _assert_same(back: Result, r: Result) -> None:
    assert (back.config, back.model, back.data, back.meta) == (r.config, r.model, r.data, r.meta)
    assert back.v_nats.dtype == np.float64
    np.testing.assert_array_equal(back.v_nats, r.v_nats)
    for name in ("phi", "sid", "shares", "score", "score_signed"):
        for part in ("value", "low", "high"):
            np.testing.assert_array_equal(getattr(getattr(back, name), part), getattr(getattr(r, name), part))
    assert back.per_class.keys() == r.per_class.keys() and all(type(k) is int for k in back.per_class)
    for k, c in r.per_class.items():
        assert back.per_class[k]["n"] == c["n"]
        np.testing.assert_array_equal(back.per_class[k]["phi"], c["phi"])
        np.testing.assert_array_equal(back.per_class[k]["sid"], c["sid"])
        assert isinstance(back.per_class[k]["sid"], np.ndarray) and isinstance(back.per_class[k]["phi"], np.ndarray)
    assert back.clean_accuracy == r.clean_accuracy and back.efficiency_gap == r.efficiency_gap
    assert back.estimator == r.estimator and back.interpretation == r.interpretation
    assert back.table() == r.table()


def test_from_json_dict_fills_what_older_results_lack():
    """A record without estimator is an exact run, without coalitions all 2**M, without
    interpretation one worked out again; integer v(S) read as floats, coalitions as int64; a
    stored interpretation is kept as written."""
    d = make().to_json_dict()
    assert "interactions" not in d and "band_limited" not in d
    for key in ("estimator", "coalitions", "interpretation"):
        del d[key]
    d["v_nats"] = [-2] * 15 + [-1]
    r = Result.from_json_dict(d)
    assert r.estimator == {"name": "exact"} and r.coalitions is None and r.per_image == {}
    assert r.interactions is None and r.band_limited is None
    assert r.v_nats.dtype == np.float64 and r.v_nats[-1] - r.v_nats[0] == 1.0
    assert r.interpretation["why"].startswith("Σφ = +1.0000 nats has no bootstrap interval")  # no per-image values
    d.update(coalitions=[0, 5, 15], v_nats=[-1.5, -1.0, -0.5], interpretation={"informative": False, "why": "w"})
    r = Result.from_json_dict(d, per_image())
    assert r.coalitions.tolist() == [0, 5, 15] and r.coalitions.dtype == np.int64
    assert r.interpretation == {"informative": False, "why": "w"}
    assert r.to_json_dict()["coalitions"] == [0, 5, 15]
    assert r.table().splitlines()[-2] == "NOT INFORMATIVE: w."
    assert "v(N) − v(∅) = +1.0000 nats" in r.table()
    np.testing.assert_array_equal(r.per_image["label"], LABELS)
    kernel = {"name": "kernel", "coalitions": 40, "draws": "shared", "phi_se": [0.01, 0.02, None, 0.005]}
    r = Result.from_json_dict({**d, "estimator": kernel})
    assert r.estimator == kernel
    assert (
        r.estimator_line() == "estimator: kernel (40 coalitions, draws shared, largest φ standard error 2.0e-02 nats)"
    )


def test_load_refuses_a_missing_result_and_warns_about_edited_files(tmp_path, capsys):
    """No result.json: the message says what to check; a dangling link is read (and refused by
    the reader); a run without per-image values writes no npz; an edited file is loaded with a
    warning, naming which file changed."""
    with pytest.raises(IasideError) as err:
        Result.load(tmp_path / "none")
    assert str(err.value) == (
        f"{tmp_path / 'none' / RESULT_JSON} does not exist: is {tmp_path / 'none'} the --out folder of a finished run?"
    )
    (tmp_path / "link").mkdir()
    (tmp_path / "link" / RESULT_JSON).symlink_to(tmp_path / "nowhere.json")
    with pytest.raises(IasideError, match="cannot be read"):
        Result.load(tmp_path / "link")

    make(per_image={}).save(tmp_path / "bare")
    assert not (tmp_path / "bare" / PER_IMAGE_NPZ).exists()
    assert Result.load(tmp_path / "bare").per_image == {}

    folder = make().save(tmp_path / "run")
    capsys.readouterr()
    Result.load(folder)
    assert capsys.readouterr().err == ""
    np.savez_compressed(folder / PER_IMAGE_NPZ, **{**per_image(), "label": LABELS[::-1].copy()})
    Result.load(folder)
    edited = "was edited after the run wrote them (content checksum differs): these are not the run's own numbers"
    assert capsys.readouterr().err == f"iaside: warning: {folder}: per_image.npz {edited}\n"
    d = json.loads((folder / RESULT_JSON).read_text())
    d["score"]["value"] = 0.25
    (folder / RESULT_JSON).write_text(json.dumps(d))
    assert float(Result.load(folder).score.value) == 0.25
    assert capsys.readouterr().err == (
        f"iaside: warning: {folder}: result.json and per_image.npz were edited after the run wrote them "
        "(content checksum differs): these are not the run's own numbers\n"
    )


# ---------------------------------------------------------------- notebook views


def test_repr_and_frames_of_a_result():
    """The notebook's one-line repr, and the band and image tables."""
    pd = pytest.importorskip("pandas")
    r = make()
    assert repr(r) == "<iaside.Result model=tiny.pt data=imgs/ N=6 M=4 score=0.3125 [0.2500, 0.3750] (90% CI)>"
    frame = r.to_pandas()
    assert isinstance(frame, pd.DataFrame) and frame.index.tolist() == [0, 1, 2, 3]
    assert frame["sid"].tolist() == [5 / 12, 0.25, 0.0, 1 / 3] and frame["phi_nats_low"].tolist()[2] == -0.25
    assert frame["share_high"].tolist() == [0.6, 0.3, -0.05, 0.45]
    assert frame["min_shift"].tolist() == [False, False, True, False]
    images = r.per_image_frame()
    assert images["name"].tolist() == [f"img{i}.png" for i in range(N)]
    assert images["index"].tolist() == [10, 11, 12, 13, 14, 15]
    assert images["correct"].tolist() == [True, True, False, True, True, True]
    np.testing.assert_allclose(images["phi_total_nats"], TOTALS, rtol=1e-12)
    np.testing.assert_array_equal(images["logp_full_nats"] - images["logp_empty_nats"], np.full(N, 1.0))
    np.testing.assert_array_equal(images["phi_2"], PHI_IMG[:, 2])
    with pytest.raises(IasideError, match="no per-image values"):
        make(per_image={}).per_image_frame()


def test_plot_draws_the_kind_asked_into_the_axes_given():
    """``plot()`` is the SID figure, ``plot(kind, ax)`` draws that kind into ``ax``."""
    from iaside.display import _plt

    plt = _plt()  # the Agg backend, as the tool's own figures use
    r = make()
    fig = r.plot()
    assert fig.axes[0].get_title() == "SID with 90% bootstrap interval"
    plt.close(fig)
    fig, ax = plt.subplots()
    assert r.plot("phi", ax=ax) is fig and ax.get_title() == "Shapley value φ with 90% bootstrap interval"
    assert len(fig.axes) == 1
    plt.close(fig)
    with pytest.raises(IasideError, match="plot kind 'bars' is not one of sid, phi, coalitions, per-class"):
        r.plot("bars")


def test_notebook_html_view_names_the_run_and_its_scores(monkeypatch):
    """The notebook's HTML view: the run, its scores and the SID figure (not drawn here: time)."""
    from iaside.report import figures

    drawn = []
    monkeypatch.setattr(figures, "plot", lambda result, kind: drawn.append(kind) or "figure")
    monkeypatch.setattr(figures, "png", lambda fig: b"PNG")
    page = make()._repr_html_()
    assert "<b>I-ASIDE</b> tiny.pt on imgs/: N = 6, M = 4, fill partner, partition linf<br>" in page
    assert "score 0.3125 [0.2500, 0.3750], score_signed +0.5000 [+0.3750, +0.6250], clean top-1 0.833" in page
    assert "data:image/png;base64,UE5H" in page and drawn == ["sid"]  # base64 of b"PNG"


# ---------------------------------------------------------------- the HTML report's numbers


def _box(name: str, value: str, sub: str) -> str:
    return f"<div><span>{name}</span><b>{value}</b><span>{sub}</span></div>"


def test_html_key_numbers_of_a_hand_made_result():
    """The report's key-number boxes, whole: the level the run states (95 % when it states
    none), "-" for predicted labels (no clean accuracy), and the v(N) − v(∅) box only when
    both coalitions were evaluated."""
    from iaside.report.run_section import _key_numbers

    boxes = [
        _box("score", "0.3125 [0.2500, 0.3750]", "paper formula, 90% CI"),
        _box("score_signed", "+0.5000 [+0.3750, +0.6250]", "1 = band 0 only, 0 = uniform"),
        _box("clean top-1", "0.833", "accuracy on these images"),
        _box("low-band share", "0.417", "SID on the lowest 1 band(s)"),
    ]
    v_box = _box("v(N) − v(∅)", "+1.000 nats", "= Σφ (gap 3.5e-16)")
    assert _key_numbers(make()) == '<div class="key">' + "".join(boxes) + v_box + "</div>"
    config = dict(CONFIG)
    del config["confidence"]
    predicted = make(config=config, clean_accuracy=None)
    assert _key_numbers(predicted) == (
        '<div class="key">'
        + _box("score", "0.3125 [0.2500, 0.3750]", "paper formula, 95% CI")
        + boxes[1]
        + _box("clean top-1", "-", "accuracy on these images")
        + boxes[3]
        + v_box
        + "</div>"
    )
    for coalitions in ([0, 3, 5], [3, 5, 15]):  # v(N) or v(∅) not evaluated: no box
        r = make(coalitions=np.array(coalitions), v_nats=np.array([-1.25, -0.75, -0.25]))
        assert _key_numbers(r) == '<div class="key">' + "".join(boxes) + "</div>", coalitions
    eight = re.findall(r"<div><span>(.*?)</span><b>(.*?)</b><span>(.*?)</span></div>", _key_numbers(make(**_bands(8))))
    assert eight[3] == ("low-band share", f"{(1 + 2) / 36:.3f}", "SID on the lowest 2 band(s)")  # M // 4 = 2
    r = make(coalitions=np.array([15, 2, 0]), v_nats=np.array([-0.5, -0.75, -2.0]))
    assert _key_numbers(r).endswith(_box("v(N) − v(∅)", "+1.500 nats", "= Σφ (gap 3.5e-16)") + "</div>")


def test_html_band_table_of_a_hand_made_result():
    """The report's band table, whole: a row per band (the smallest φ starred), the level in
    the interval columns (95 % when the run states none), and the note under it."""
    from iaside.report.run_section import band_table_html

    def row(cells):
        return "<tr><td>" + cells[0] + "</td>" + "".join(f'<td class="num">{c}</td>' for c in cells[1:]) + "</tr>"

    rows = [
        ["0", "0.4167", "[0.3000, 0.5000]", "+0.500", "+0.5000", "[+0.3750, +0.6250]"],
        ["1", "0.2500", "[0.1250, 0.3750]", "+0.250", "+0.2500", "[+0.1250, +0.5000]"],
        ["2 *", "0.0000", "[0.0000, 0.0625]", "-0.125", "-0.1250", "[-0.2500, +0.0625]"],
        ["3", "0.3333", "[0.2500, 0.4375]", "+0.375", "+0.3750", "[+0.2500, +0.5000]"],
    ]
    note = (
        '<p class="muted">* band 2 has the smallest φ: the paper\'s SID shifts every φ by it (ψ = φ − min φ), '
        "so its SID is 0 by construction; φ/Σφ is the signed share, which keeps it.</p>"
    )

    def table(level):
        head = "".join(f"<th>{h}</th>" for h in ["band", "SID", level, "φ/Σφ", "φ (nats)", level])
        body = "".join(row(c) for c in rows)
        return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>" + note

    assert band_table_html(make()) == table("90% CI")
    config = dict(CONFIG)
    del config["confidence"]
    assert band_table_html(make(config=config)) == table("95% CI")


def test_the_reading_sums_a_float32_sid_in_float64():
    """The sentence's low-band percentage is the float64 sum of the SID whatever its dtype: for
    a float32 SID with 0.574 + 0.151 on the lowest 2 of 8 bands it reads 72 % (the float32 sum,
    0.72500002, would round to 73 %)."""
    low = np.array([0.574, 0.151], dtype=np.float32)
    assert f"{100 * float(low.sum()):.0f}" == "73" and f"{100 * float(low.astype(np.float64).sum()):.0f}" == "72"
    sid = np.array([0.574, 0.151, 0.1, 0.075, 0.05, 0.03, 0.02, 0.0], dtype=np.float32)
    phi = np.array([0.6, 0.2, 0.15, 0.1, 0.05, 0.0, -0.05, -0.1])
    r = make(
        sid=Estimate(sid, sid, sid),
        phi=Estimate(phi, phi, phi),
        shares=Estimate(phi, phi, phi),
        v_nats=np.linspace(-1.0, 0.0, 2**8),
        per_image={**per_image(), "phi_per_image": np.hstack([PHI_IMG, PHI_IMG])},
    )
    assert r.interpretation["sentence"] == (
        "The lowest 2 of 8 bands carry 72% of the spectral importance (uniform would be 25%); band 0 matters "
        "most, so the model leans on robust low-frequency features (score_signed +0.50)."
    )


def test_html_intervals_and_number_lists():
    """An estimate as the report prints it: 4 decimals unless told, a sign only when asked, the
    interval only when both ends are finite; a list of numbers to 4 significant digits, "-"
    for none."""
    from iaside.report.markup import _interval, _numbers

    assert _interval(Estimate(0.25, 0.125, 0.5)) == "0.2500 [0.1250, 0.5000]"
    assert _interval(Estimate(0.25, 0.125, 0.5), digits=2) == "0.25 [0.12, 0.50]"
    assert _interval(Estimate(0.25, -0.5, 1.0), signed=True, digits=2) == "+0.25 [-0.50, +1.00]"
    assert _interval(Estimate(np.float64(-0.03125), np.float64(-0.0625), np.float64(0.0)), signed=True) == (
        "-0.0312 [-0.0625, +0.0000]"
    )
    for low, high in ((np.nan, 0.7), (0.1, np.nan), (0.1, np.inf), (-np.inf, 0.7), (np.nan, np.nan)):
        assert _interval(Estimate(0.5, low, high)) == "0.5000", (low, high)
        assert _interval(Estimate(0.5, low, high), signed=True, digits=1) == "+0.5", (low, high)
    assert _numbers([]) == "-" and _numbers(None) == "-" and _numbers(()) == "-"
    assert _numbers([1, 2.5, 1 / 3]) == "(1, 2.5, 0.3333)"
    assert _numbers((0.123456, 12345.6)) == "(0.1235, 1.235e+04)" and _numbers([0.5]) == "(0.5)"


def test_a_result_claiming_more_bands_than_a_coalition_mask_holds_is_refused(tmp_path):
    """A coalition is an int64 bit mask, so 63 bands at most (the engine refuses --bands 64):
    a result.json claiming 64 bands, with the grand coalition 2**64 − 1, is refused by its
    band count first, in one line naming the field and the limit (a consistent 64-band file
    used to pass the check and then fail in a bare OverflowError when its masks were read)."""
    folder = make().save(tmp_path / "run")
    d = json.loads((folder / RESULT_JSON).read_text())
    d["config"]["bands"], d["coalitions"] = 64, [0, 2**64 - 1]
    (folder / RESULT_JSON).write_text(json.dumps(d))
    with pytest.raises(IasideError) as err:
        Result.load(folder)
    assert "config.bands" in str(err.value) and "63" in str(err.value)
