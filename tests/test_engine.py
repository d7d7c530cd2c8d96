"""The engine on real (tiny) networks: coalition images, packing, fills, axioms, resume, errors."""

import json

import numpy as np
import pytest
import torch
from conftest import tiny_cnn
from torch import nn

import iaside
from iaside.coalitions import CoalitionSynthesizer
from iaside.data.tensors import TensorImages
from iaside.engine import Engine, EngineState
from iaside.errors import IasideError
from iaside.fills import make_fill, partner_index
from iaside.game import coalition_bits
from iaside.result import Result
from iaside.spectral import band_energy, band_masks, square_band_masks_centred


def images(n=6, size=32, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 3, size, size, generator=g), torch.arange(n) % 5


def direct_coalition_image(x, b, masks, bits_row):
    """x_S = IDFT(mask_S · X + (1 − mask_S) · B): one FFT per coalition, the definition."""
    mask = masks[torch.from_numpy(bits_row)].any(0) if bits_row.any() else torch.zeros_like(masks[0])
    spec = torch.fft.fft2(x.double()) * mask + torch.fft.fft2(b.double()) * ~mask
    return torch.fft.ifft2(spec).real


@pytest.mark.parametrize("partition", ["linf", "l2"])
def test_render_equals_definition(partition):
    x, _ = images(2, 24)
    b = torch.rand_like(x)
    masks = band_masks(24, 24, 3, partition)
    synth = CoalitionSynthesizer(masks)
    prep = synth.prepare(x, b)
    bits = coalition_bits(3)
    rendered = synth.render(prep.base[1], prep.deltas[1], torch.from_numpy(bits).float())
    for s in range(8):
        assert torch.allclose(rendered[s].double(), direct_coalition_image(x[1], b[1], masks, bits[s]), atol=1e-5)
    assert torch.allclose(rendered[-1], x[1], atol=1e-5) and torch.allclose(rendered[0], b[1], atol=1e-5)


def authors_pipeline(x, fill_spectrum_centred, centred_masks, bits_row):
    """The paper preset by the authors' recipe, in NumPy: centred spectrum · mask + fill · (1 − mask),
    inverse shift, inverse FFT, abs, min–max over the image, clip."""
    if not bits_row.any():
        return np.zeros_like(x)
    mask = centred_masks[bits_row].any(0)
    spec = np.fft.fftshift(np.fft.fft2(x), axes=(-2, -1))
    mixed = spec * mask + fill_spectrum_centred * (1 - mask)
    img = np.abs(np.fft.ifft2(np.fft.ifftshift(mixed, axes=(-2, -1))))
    img = (img - img.min()) / (img.max() - img.min())
    return np.clip(img, 0, 1)


@pytest.mark.parametrize("fill", ["zero", "partner", "gaussian"])
def test_paper_preset_matches_authors_recipe(fill):
    d, m = 20, 4
    x, _ = images(2, d)
    masks = band_masks(d, d, m, "square")
    synth = CoalitionSynthesizer(masks, "paper")
    f = make_fill(fill, seed=3)
    fill_value = f(x, torch.tensor([0, 1]), x.flip(0))
    prep = synth.prepare(x, fill_value)
    fill_spec = fill_value if fill_value.is_complex() else torch.fft.fft2(fill_value)
    centred_fill = np.fft.fftshift(fill_spec[0].numpy().astype(np.complex128), axes=(-2, -1))
    bits = coalition_bits(m)
    rendered = synth.render(prep.base[0], prep.deltas[0], torch.from_numpy(bits).float())
    centred = square_band_masks_centred(d, m)
    for s in range(2**m):
        expect = authors_pipeline(x[0].numpy().astype(np.float64), centred_fill, centred, bits[s])
        assert np.allclose(rendered[s].numpy(), expect, atol=2e-5), s
    assert rendered[0].abs().max() == 0  # the empty coalition is all zero whatever the fill


def test_partner_pairing_is_seeded_derangement():
    p = partner_index(50, seed=4)
    assert np.all(p != np.arange(50)) and sorted(p) == list(range(50))
    assert np.array_equal(p, partner_index(50, seed=4)) and not np.array_equal(p, partner_index(50, seed=5))
    with pytest.raises(IasideError, match="at least 2"):
        partner_index(1, 0)


def test_mean_and_noise_fills_match_data_statistics():
    x, _ = images(8, 32)
    masks = band_masks(32, 32, 4, "linf")
    mean = make_fill("mean")
    mean.fit([x[:5], x[5:]], masks)
    assert torch.allclose(mean(x[:2], torch.tensor([0, 1])), x.mean(0).expand(2, -1, -1, -1), atol=1e-6)
    noise = make_fill("noise", seed=1)
    noise.fit([x], masks)
    b = noise(x[:3], torch.tensor([0, 1, 2]))
    target = band_energy(x, masks, per_channel=True).mean(0)
    assert torch.allclose(band_energy(b, masks, per_channel=True), target.expand(3, -1, -1).float().double(), rtol=1e-3)
    assert torch.equal(b[1], noise(x[:3], torch.tensor([5, 1, 9]))[1])  # seeded per image index, not position


def direct_logp(model, x, y, b, masks):
    """log p(y | x_S) for every image and coalition, one image and one FFT at a time."""
    bits = coalition_bits(masks.shape[0])
    out = np.zeros((x.shape[0], len(bits)))
    with torch.no_grad():
        for i in range(x.shape[0]):
            for s, row in enumerate(bits):
                img = direct_coalition_image(x[i], b[i], masks, row).float()[None]
                out[i, s] = torch.log_softmax(model(img), 1)[0, y[i]].item()
    return out


@pytest.mark.parametrize("batch_size", [1, 5, 8, 13, 100])
def test_engine_packing_is_exact(batch_size):
    x, y = images(5, 24)
    model = tiny_cnn()
    masks = band_masks(24, 24, 3, "linf")
    fill = make_fill("partner", seed=0)
    engine = Engine(model, CoalitionSynthesizer(masks), fill, batch_size=batch_size, show_progress=False)
    state, stats = engine.run(TensorImages(x, y))
    partner = partner_index(5, 0)
    expect = direct_logp(model, x, y, x[partner], masks)
    assert state.complete and stats.images == 5
    assert stats.passes + stats.reused == 5 * 8 and stats.reused >= 5  # the grand coalition is the clean pass
    assert np.allclose(state.logp_nats, expect, atol=1e-4)


@pytest.mark.parametrize("fill", ["partner", "zero", "noise"])
def test_every_recorder_sees_every_pass_reused_or_run(fill):
    """A recorder of every class's log-probabilities, beside the game, on fills that reuse the
    empty coalition from the partner's clean pass (partner), share it (zero) or reuse nothing
    but the grand coalition (noise): each coalition's row equals the coalition image through the
    model, computed here one image at a time, and it costs no pass more than the game alone."""
    from iaside.engine import LogSoftmaxRecorder

    x, y = images(5, 24)
    model = tiny_cnn()
    masks = band_masks(24, 24, 3, "linf")
    every_class = LogSoftmaxRecorder()
    runs = {}
    for extra in ([], [every_class]):
        engine = Engine(
            model,
            CoalitionSynthesizer(masks),
            make_fill(fill, seed=0),
            batch_size=7,
            show_progress=False,
            recorders=extra,
        )
        runs[len(extra)] = engine.run(TensorImages(x, y))
    (plain, plain_stats), (state, stats) = runs[0], runs[1]
    assert stats.passes == plain_stats.passes and stats.reused == plain_stats.reused
    assert stats.reused > 5 if fill != "noise" else stats.reused == 5  # empty coalitions reused as well
    fill_images = make_fill(fill, seed=0)
    if fill_images.needs_fit:
        fill_images.fit([x], masks)
    b = fill_images(x, torch.arange(5), x[partner_index(5, 0)])
    bits = coalition_bits(3)
    for i in range(5):
        rows = every_class.rows[i]  # (8, 5)
        assert rows.shape == (8, 5)
        for s, row in enumerate(bits):
            img = direct_coalition_image(x[i], b[i], masks, row).float()[None]
            with torch.no_grad():
                expect = torch.log_softmax(model(img), 1)[0].numpy()
            assert np.allclose(rows[s], expect, atol=1e-4), (i, s)
        assert np.allclose(rows[:, y[i]], state.logp_nats[i], atol=1e-5)
        assert np.array_equal(rows.argmax(1) == int(y[i]), state.top1_hit[i] == 1)
    assert np.array_equal(state.logp_nats, plain.logp_nats)


@pytest.mark.parametrize("fill", ["partner", "zero", "mean", "noise"])
def test_efficiency_per_image_and_global(fill):
    x, y = images(6, 32)
    r = iaside.explain(tiny_cnn(), (x, y), bands=4, fill=fill, show_progress=False, n_bootstrap=50)
    logp = r.per_image["logp_nats"]
    assert np.allclose(r.per_image["phi_per_image"].sum(1), logp[:, -1] - logp[:, 0], atol=1e-6)
    assert abs(r.phi.value.sum() - (r.v_nats[-1] - r.v_nats[0])) < 1e-6


class LowPass(nn.Module):
    """Keeps bands 0..k−1 with an ideal filter built from the same masks, then runs a CNN
    (logits ×50 so that the kept bands clearly matter)."""

    def __init__(self, net, masks, k):
        super().__init__()
        self.net, self.keep = net, masks[:k].any(0)

    def forward(self, x):
        return 50 * self.net(torch.fft.ifft2(torch.fft.fft2(x) * self.keep).real)


@pytest.mark.parametrize("fill,partition", [("partner", "linf"), ("zero", "l2"), ("noise", "linf")])
def test_removed_bands_are_dummy_players(fill, partition):
    m, k = 4, 2
    x, y = images(6, 32)
    model = LowPass(tiny_cnn(), band_masks(32, 32, m, partition), k)
    r = iaside.explain(model, (x, y), bands=m, partition=partition, fill=fill, show_progress=False, n_bootstrap=0)
    phi = r.per_image["phi_per_image"]
    assert np.abs(phi[:, k:]).max() < 1e-4
    assert np.abs(phi[:, :k]).max() > 1e-2


def test_result_round_trips(tmp_path):
    x, y = images(4, 32)
    r = iaside.explain(tiny_cnn(), (x, y), bands=3, show_progress=False, n_bootstrap=50, out=tmp_path / "run")
    back = Result.load(tmp_path / "run")
    assert back.to_json_dict() == json.loads(json.dumps(r.to_json_dict()))
    assert np.array_equal(back.per_image["logp_nats"], r.per_image["logp_nats"])
    assert (tmp_path / "run" / "sid.png").stat().st_size > 1000
    assert "score" in back.table() and "bands carry" in back.table()


def test_resume_skips_finished_images_and_refuses_changed_config(tmp_path):
    x, y = images(6, 32)
    out = tmp_path / "run"
    full = iaside.explain(tiny_cnn(), (x, y), bands=3, show_progress=False, n_bootstrap=50, out=out)
    state = EngineState.load(out / "state.npz")
    state.done[[1, 4]] = 0  # as if the run had stopped before these two images
    state.logp_nats[[1, 4]] = 123.0
    state.save(out / "state.npz")
    resumed = iaside.explain(tiny_cnn(), (x, y), bands=3, show_progress=False, n_bootstrap=50, out=out)
    assert resumed.meta["images_this_session"] == 2
    assert np.array_equal(resumed.per_image["logp_nats"], full.per_image["logp_nats"])
    with pytest.raises(IasideError, match="fill"):
        iaside.explain(tiny_cnn(), (x, y), bands=3, fill="zero", show_progress=False, out=out)


def test_state_merge_adds_disjoint_shards():
    x, y = images(6, 24)
    engine = Engine(tiny_cnn(), CoalitionSynthesizer(band_masks(24, 24, 3)), make_fill("partner"), show_progress=False)
    data = TensorImages(x, y)
    whole, _ = engine.run(data)
    a, _ = engine.run(data, indices=[0, 2, 4])
    b, _ = engine.run(data, indices=[1, 3, 5])
    merged = a.merge(b)
    assert merged.complete and np.allclose(merged.logp_nats, whole.logp_nats, atol=1e-6)
    with pytest.raises(IasideError, match="both"):
        merged.merge(a)


class NaNOnDark(nn.Module):
    """A CNN that returns NaN when the mean pixel is below 0.05 (no DC component)."""

    def __init__(self):
        super().__init__()
        self.net = tiny_cnn()

    def forward(self, x):
        return torch.where(x.mean(dim=(1, 2, 3))[:, None] < 0.05, torch.nan, self.net(x))


def test_errors_name_the_culprit():
    x, y = images(3, 32)
    with pytest.raises(IasideError, match=r"empty coalition \(shared by all images\)"):
        iaside.explain(NaNOnDark(), (x, y), bands=3, fill="zero", show_progress=False)
    # without the empty coalition, the first dark coalition image is {1} (no band 0, so no DC)
    synth = CoalitionSynthesizer(band_masks(32, 32, 3))
    engine = Engine(NaNOnDark(), synth, make_fill("zero"), coalitions=coalition_bits(3)[1:], show_progress=False)
    with pytest.raises(IasideError, match=r"image 'tensor\[\d\]', coalition \{1\}"):
        engine.run(TensorImages(x, y))
    x_black = x.clone()
    x_black[1] = 0
    with pytest.raises(IasideError, match=r"data\[1\].*clean image"):
        iaside.explain(NaNOnDark(), (x_black, y), bands=3, fill="partner", show_progress=False)
    with pytest.raises(IasideError, match=r"expected \(B, K\) logits"):
        iaside.explain(nn.Conv2d(3, 4, 3), (x, y), bands=3, show_progress=False)
    with pytest.raises(IasideError, match=r"data\[2\].*label 7.*5 classes"):
        iaside.explain(tiny_cnn(), (x, torch.tensor([0, 1, 7])), bands=3, show_progress=False)
    with pytest.raises(IasideError, match="too small"):
        iaside.explain(tiny_cnn(), (x[:, :, :10, :10], y), bands=8, show_progress=False)


def test_predicted_labels_and_bf16_path():
    x, _ = images(4, 32)
    model = tiny_cnn()
    r = iaside.explain(model, x, bands=3, show_progress=False, n_bootstrap=0)
    assert r.config["labels"] == "predicted" and r.clean_accuracy is None
    assert np.array_equal(r.per_image["label"], model(x).argmax(1).numpy())
    r16 = iaside.explain(model, x, bands=3, show_progress=False, n_bootstrap=0, precision="bf16")
    assert np.abs(r16.sid.value - r.sid.value).sum() < 0.2


def test_state_fields_declare_how_they_merge():
    """Shard merge, all-reduce and resume read one declaration: skips are known to every shard (max), the rest add."""
    assert EngineState.merge_rules() == {
        "logp_nats": "sum",
        "done": "sum",
        "skipped": "max",
        "label": "sum",
        "clean_top1": "sum",
        "clean_logp_nats": "sum",
        "top1_hit": "sum",
        "top1_recorded": "sum",
    }
    a, b = EngineState.empty(3, 2), EngineState.empty(3, 2)
    a.done[0], a.logp_nats[0], a.label[0] = 1, [-1.0, -2.0], 4
    b.done[1], b.logp_nats[1], b.label[1] = 1, [-3.0, -0.5], 2
    a.skipped[2] = b.skipped[2] = 1
    merged = a.merge(b)
    assert merged.skipped.tolist() == [0, 0, 1] and merged.label.tolist() == [4, 2, 0]
    assert merged.logp_nats.tolist() == [[-1.0, -2.0], [-3.0, -0.5], [0.0, 0.0]] and merged.complete
    merged.done[1] = 0
    merged.clear_unfinished()  # a row that is not done is zeroed; the skip stays
    assert merged.logp_nats[1].tolist() == [0.0, 0.0] and merged.label[1] == 0 and merged.skipped[2] == 1
