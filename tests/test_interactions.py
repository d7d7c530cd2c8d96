"""Band interactions and band-limited views: hand games, brute force, shapiq, the run's passes."""

from __future__ import annotations

import json
from itertools import combinations
from math import factorial

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import tiny_cnn
from torch import nn

from iaside.bandlimited import band_limited, highpass_masks, lowpass_masks
from iaside.game import coalition_bits, exact_shapley
from iaside.interactions import (
    bootstrap_means_by_counts,
    interactions_sentence,
    interactions_table,
    mobius,
    shapley_interactions,
    strongest_pairs,
    summarize_interactions,
)
from iaside.summary import Estimate, bootstrap_means


def _mask(members) -> int:
    return sum(1 << int(i) for i in members)


def brute_interaction(v: np.ndarray, m: int, i: int, j: int) -> float:
    """Grabisch–Roubens by its definition: every S ⊆ N∖{i,j}, weight |S|!(M−|S|−2)!/(M−1)!."""
    others = [k for k in range(m) if k not in (i, j)]
    total = 0.0
    for size in range(len(others) + 1):
        w = factorial(size) * factorial(m - size - 2) / factorial(m - 1)
        for s in combinations(others, size):
            base = _mask(s)
            total += w * (v[base | (1 << i) | (1 << j)] - v[base | (1 << i)] - v[base | (1 << j)] + v[base])
    return total


def brute_mobius(v: np.ndarray, m: int, t: int) -> float:
    members = [k for k in range(m) if t >> k & 1]
    return sum(
        (-1) ** (len(members) - size) * v[_mask(s)]
        for size in range(len(members) + 1)
        for s in combinations(members, size)
    )


def test_additive_game_has_no_interaction():
    weights = np.array([0.3, -1.2, 2.0, 0.7, 5.0])
    v = coalition_bits(5) @ weights + 1.5  # v(S) = c + Σ_{i∈S} w_i
    assert np.abs(shapley_interactions(v)).max() < 1e-12
    m = mobius(v)
    sizes = coalition_bits(5).sum(axis=1)
    assert m[0] == pytest.approx(1.5)
    np.testing.assert_allclose(m[sizes == 1], weights, atol=1e-12)  # singletons in bit-mask order
    assert np.abs(m[sizes >= 2]).max() < 1e-12


def test_pure_pairwise_game_has_exactly_one_interaction():
    m_players, (i, j), c = 5, (1, 3), 2.5
    bits = coalition_bits(m_players)
    v = c * (bits[:, i] & bits[:, j])  # v(S) = c when both i and j are in S
    inter = shapley_interactions(v)
    expected = np.zeros((5, 5))
    expected[i, j] = expected[j, i] = c
    np.testing.assert_allclose(inter, expected, atol=1e-12)
    dividends = mobius(v)
    assert dividends[_mask((i, j))] == pytest.approx(c)
    assert np.count_nonzero(np.abs(dividends) > 1e-12) == 1
    np.testing.assert_allclose(exact_shapley(v), [0, c / 2, 0, c / 2, 0], atol=1e-12)  # split between i and j


def test_redundant_pair_is_negative():
    bits = coalition_bits(3)
    v = (bits[:, 0] | bits[:, 2]).astype(float)  # either band alone carries it: redundancy
    inter = shapley_interactions(v)
    assert inter[0, 2] == pytest.approx(-1.0) and inter[0, 1] == pytest.approx(0.0)
    best = strongest_pairs(Estimate(inter, inter - 0.1, inter + 0.1))
    assert best["synergy"] is None and best["redundancy"]["bands"] == [0, 2]


@pytest.mark.parametrize("m", [2, 3, 4, 5, 6])
def test_equals_brute_force_on_random_games(m):
    rng = np.random.default_rng(m)
    games = rng.normal(size=(3, 2**m)) * rng.uniform(0.1, 10, size=(3, 1))
    inter = shapley_interactions(games)
    dividends = mobius(games)
    for g, v in enumerate(games):
        for i, j in combinations(range(m), 2):
            want = brute_interaction(v, m, i, j)
            assert abs(inter[g, i, j] - want) < 1e-9 and abs(inter[g, j, i] - want) < 1e-9
        for t in range(2**m):
            assert abs(dividends[g, t] - brute_mobius(v, m, t)) < 1e-9
        assert np.all(np.diag(inter[g]) == 0)
        # Σ_{T ∋ i} m(T)/|T| = φ_i, and v(S) = Σ_{T ⊆ S} m(T)
        bits = coalition_bits(m)
        sizes = np.maximum(bits.sum(axis=1), 1)
        phi = np.array([(dividends[g] * bits[:, i] / sizes).sum() for i in range(m)])
        np.testing.assert_allclose(phi, exact_shapley(v), atol=1e-9)
        subset = (np.arange(2**m)[:, None] & np.arange(2**m)[None, :]) == np.arange(2**m)[None, :]
        np.testing.assert_allclose(subset @ dividends[g], v, atol=1e-9)


def test_count_bootstrap_uses_the_same_resamples_as_phi():
    x = np.random.default_rng(1).normal(size=(37, 5))
    np.testing.assert_allclose(bootstrap_means_by_counts(x, 130, seed=4), bootstrap_means(x, 130, seed=4), atol=1e-12)


def test_summary_intervals_cover_and_average():
    rng = np.random.default_rng(2)
    logp = rng.normal(size=(40, 16))
    s = summarize_interactions(logp, n_bootstrap=200, seed=0)
    np.testing.assert_allclose(s["index"].value, shapley_interactions(logp.mean(axis=0)), atol=1e-12)  # linear
    np.testing.assert_allclose(s["mobius"].value, mobius(logp.mean(axis=0)), atol=1e-12)
    assert s["per_image"].shape == (40, 4, 4)
    off = ~np.eye(4, dtype=bool)
    assert np.all(s["index"].low[off] < s["index"].value[off]) and np.all(s["index"].value[off] < s["index"].high[off])


def test_table_and_sentence_name_the_strongest_pairs():
    inter = np.zeros((3, 3))
    inter[0, 1] = inter[1, 0] = 0.4
    inter[1, 2] = inter[2, 1] = -0.25
    index = Estimate(inter, inter - 0.1, inter + 0.1)
    text = interactions_sentence(index)
    assert "strongest synergy is bands 0 and 1 (I = +0.400" in text
    assert "strongest redundancy is bands 1 and 2 (I = -0.250" in text and text.count("excludes 0") == 2
    table = interactions_table(index)
    assert "+0.4000*" in table and "-0.2500*" in table


def test_cutoff_masks():
    assert lowpass_masks(3).tolist() == [0b001, 0b011, 0b111]
    assert highpass_masks(3).tolist() == [0b111, 0b110, 0b100]


def test_band_limited_reads_the_cutoff_columns():
    rng = np.random.default_rng(3)
    logp = rng.normal(size=(30, 8))
    hits = rng.random((30, 8)) < 0.5
    curves = band_limited(logp, hits, fill="zero", n_bootstrap=100)
    np.testing.assert_allclose(curves["lowpass"]["v_nats"].value, logp[:, [1, 3, 7]].mean(axis=0))
    np.testing.assert_allclose(curves["highpass"]["accuracy"].value, hits[:, [7, 6, 4]].mean(axis=0))
    assert band_limited(logp, None, fill="zero", n_bootstrap=0)["lowpass"]["accuracy"] is None


# -- on real runs -------------------------------------------------------------------------------
class _Counting(nn.Module):
    """Counts the images the wrapped model sees."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model, self.images = model, 0

    def forward(self, x):
        self.images += x.shape[0]
        return self.model(x)


def _decisive_cnn() -> nn.Module:
    net = tiny_cnn(n_classes=3, seed=3)
    with torch.no_grad():
        net[-1].weight.mul_(60.0)  # spread-out logits: interactions of order 0.1 nats, not 1e-4
    return net


class _Spectral(nn.Module):
    """Class 0 for bright images, class 1 for busy ones (high-frequency energy), class 2 else:
    its top-1 changes from one low-/high-pass cut-off to the next."""

    def forward(self, x):
        mean = x.mean((1, 2, 3))
        busy = (x - F.avg_pool2d(x, 3, 1, 1, count_include_pad=False)).abs().mean((1, 2, 3))
        return torch.stack([12 * mean, 60 * busy, torch.full_like(mean, 3.0)], 1)


def _images(n=8, size=32, seed=0):
    """Smooth pictures of varied brightness plus varied pixel noise, and random labels of 3 classes."""
    g = torch.Generator().manual_seed(seed)
    small = torch.rand((n, 3, 6, 6), generator=g)
    x = F.interpolate(small, size=(size, size), mode="bicubic", align_corners=False)
    bright, noise = torch.rand((n, 1, 1, 1), generator=g) * 0.6, torch.rand((n, 1, 1, 1), generator=g) * 0.3
    x = (bright * x + noise * torch.rand(x.shape, generator=g)).clamp(0, 1)
    return x, torch.randint(0, 3, (n,), generator=g)


def test_views_cost_no_extra_forward_pass():
    import iaside

    x, y = _images()
    counts = {}
    results = {}
    for views in (False, True):
        model = _Counting(_decisive_cnn())
        results[views] = iaside.explain(
            model, (x, y), bands=4, fill="zero", n_bootstrap=20, batch_size=7, show_progress=False, views=views
        )
        counts[views] = model.images
    assert counts[True] == counts[False] > 0
    assert results[True].meta["forward_passes"] == results[False].meta["forward_passes"]
    assert results[False].interactions is None and results[False].band_limited is None
    assert results[True].interactions is not None and results[True].band_limited["n_images_top1"] == 8
    np.testing.assert_array_equal(results[True].per_image["logp_nats"], results[False].per_image["logp_nats"])


def test_recorded_top1_matches_ideal_filters_computed_here():
    """Zero fill: the low-/high-pass coalition images are FFT brick-wall filters; evaluate them
    here, without the engine, and compare arg-max and log p(y) with what the run recorded."""
    import iaside
    from iaside.spectral import band_masks

    x, y = _images(n=12, seed=5)
    model = _Spectral()
    r = iaside.explain(model, (x, y), bands=4, fill="zero", n_bootstrap=20, batch_size=5, show_progress=False)
    masks = band_masks(32, 32, 4, r.config["partition"]).double()  # (M, H, W)
    spectrum = torch.fft.fft2(x.double())
    for name, cut in (("lowpass", lowpass_masks(4)), ("highpass", highpass_masks(4))):
        hits, logps = [], []
        for mask in cut:
            keep = sum(masks[i] for i in range(4) if mask >> i & 1)
            filtered = torch.fft.ifft2(spectrum * keep).real.float()
            with torch.no_grad():
                logits = model(filtered)
            hits.append((logits.argmax(1) == y).numpy())
            logps.append(torch.log_softmax(logits, 1)[torch.arange(12), y].double().numpy())
        hits, logps = np.stack(hits, 1), np.stack(logps, 1)
        order = np.argsort(r.per_image["index"])
        np.testing.assert_array_equal(r.per_image["top1_hit"][order][:, cut], hits)
        np.testing.assert_allclose(r.band_limited[name]["accuracy"].value, hits.mean(0))
        np.testing.assert_allclose(r.band_limited[name]["v_nats"].value, logps.mean(0), atol=1e-4)
    high = r.band_limited["highpass"]["accuracy"].value
    assert high[0] != high[1]  # the model's answer changes with the cut-off: the test can tell columns apart


def test_interactions_match_shapiq_on_a_real_run(tmp_path):
    shapiq = pytest.importorskip("shapiq")
    import iaside
    from iaside.result import Result

    x, y = _images(n=6, seed=7)
    iaside.explain(
        _Spectral(), (x, y), bands=4, n_bootstrap=30, show_progress=False, out=tmp_path / "run", record=False
    )
    r = Result.load(tmp_path / "run")  # through result.json and per_image.npz
    logp = r.per_image["logp_nats"]
    mean_game = logp.mean(axis=0)

    def game(coalitions):  # (K, M) bool -> v
        return mean_game[(coalitions.astype(np.int64) << np.arange(4)).sum(axis=1)]

    computer = shapiq.ExactComputer(game, n_players=4)
    sii = computer(index="SII", order=2)
    dividends = computer.moebius_transform
    dividends = dividends() if callable(dividends) else dividends
    ours = r.interactions["index"].value
    assert np.abs(ours[np.triu_indices(4, 1)]).max() > 1e-2  # a test of 1e-6 that means something
    for i, j in combinations(range(4), 2):
        assert abs(ours[i, j] - sii[(i, j)]) < 1e-6
    for t in range(16):
        members = tuple(k for k in range(4) if t >> k & 1)
        assert abs(r.interactions["mobius"].value[t] - dividends[members]) < 1e-6
    per_image = r.per_image["interactions_per_image"]
    one = shapiq.ExactComputer(lambda c: logp[2][(c.astype(np.int64) << np.arange(4)).sum(axis=1)], n_players=4)
    sii_one = one(index="SII", order=2)
    for i, j in combinations(range(4), 2):
        assert abs(per_image[2, i, j] - sii_one[(i, j)]) < 1e-6


def test_show_prints_the_interactions_and_band_limited_tables(tmp_path, scripted, image_folder, capsys):
    from conftest import TINY_ARGS

    from iaside.cli import main

    out = tmp_path / "run"
    assert (
        main(["run", "--model", f"torchscript:{scripted}", "--data", str(image_folder), *TINY_ARGS, "--out", str(out)])
        == 0
    )
    capsys.readouterr()
    assert main(["show", str(out), "--interactions", "--band-limited"]) == 0
    shown = capsys.readouterr().out
    d = json.loads((out / "result.json").read_text())
    index = np.asarray(d["interactions"]["index"]["value"])
    assert index.shape == (3, 3) and f"{index[0, 1]:+.4f}" in shown and f"{index[1, 2]:+.4f}" in shown
    low = d["band_limited"]["lowpass"]
    assert f"{low['v_nats']['value'][0]:+7.3f}" in shown and f"{low['accuracy']['value'][1]:.3f}" in shown
    assert "strongest" in shown and "low-pass {0..k}" in shown


def test_a_state_without_the_top1_record_resumes(tmp_path):
    """A checkpoint written before top-1 was recorded: its finished images keep their values, the
    rest are run; accuracy covers only the images whose top-1 was recorded, and says so."""
    import iaside
    from iaside.engine import EngineState

    x, y = _images(n=8, seed=9)
    out = tmp_path / "run"
    full = iaside.explain(
        _Spectral(), (x, y), bands=3, fill="zero", n_bootstrap=20, show_progress=False, out=out, record=False
    )
    state = EngineState.load(out / "state.npz")
    state.done[:5] = 0
    state.clear_unfinished()
    old = {k: v for k, v in state.arrays().items() if k not in ("top1_hit", "top1_recorded")}
    np.savez(out / "state.npz", **old)  # as an older version wrote it
    (out / "result.json").unlink()
    resumed = iaside.explain(
        _Spectral(), (x, y), bands=3, fill="zero", n_bootstrap=20, show_progress=False, out=out, record=False
    )
    assert resumed.meta["images_this_session"] == 5
    np.testing.assert_allclose(resumed.interactions["index"].value, full.interactions["index"].value, atol=1e-12)
    curves = resumed.band_limited
    assert curves["n_images"] == 8 and curves["n_images_top1"] == 5
    hits = full.per_image["top1_hit"][np.isin(full.per_image["index"], np.arange(5))]
    np.testing.assert_allclose(curves["lowpass"]["accuracy"].value, hits[:, [1, 3, 7]].mean(axis=0))
