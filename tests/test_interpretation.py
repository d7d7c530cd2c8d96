"""The interpretation knows its limits: a random-weight model, a constant model, one band and one
class are flagged as not informative in result.json, in the printed table and in the report;
a model that does carry information (and the demo) is read."""

import json

import numpy as np
import pytest
import torch
from conftest import tiny_cnn
from torch import nn

import iaside
from iaside.cli import main
from iaside.report.html import build_report
from iaside.result import Result
from iaside.summary import Estimate, interpret, score_range, total_estimate

TINY = {"input_size": (32, 32), "resize_size": 32}


class Constant(nn.Module):
    """The same logits for every image: nothing in any band changes the output."""

    def __init__(self, n_classes: int = 3) -> None:
        super().__init__()
        self.logits = nn.Parameter(torch.linspace(-1.0, 1.0, n_classes))

    def forward(self, x):
        return self.logits.expand(x.shape[0], -1) + 0.0 * x.mean()


class Brightness(nn.Module):
    """Reads the mean colour (band 0) of the image: class k for a dominant channel k."""

    def forward(self, x):
        return 40.0 * (x.mean(dim=(2, 3)) - x.mean(dim=(1, 2, 3))[:, None])


def channel_images(n_per_class: int = 6, seed: int = 0):
    """Images whose dominant colour channel is their label: (3n, 3, 32, 32) in [0, 1], labels (3n,)."""
    g = torch.Generator().manual_seed(seed)
    images, labels = [], []
    for k in range(3):
        x = 0.3 + 0.2 * torch.rand(n_per_class, 3, 32, 32, generator=g)
        x[:, k] += 0.25
        images.append(x)
        labels += [k] * n_per_class
    return torch.cat(images), torch.tensor(labels)


def run(model, data, **kw):
    return iaside.explain(model, data, bands=kw.pop("bands", 3), n_bootstrap=200, show_progress=False, **kw)


def test_a_model_that_reads_the_image_is_informative(tmp_path):
    result = run(Brightness(), channel_images(), out=tmp_path / "run")
    assert result.clean_accuracy == 1.0
    reading = json.loads((tmp_path / "run" / "result.json").read_text())["interpretation"]
    assert reading["informative"] is True and reading["sentence"].startswith("The lowest 1 of 3 bands carry")
    assert "band 0 matters most" in reading["sentence"]
    assert "NOT INFORMATIVE" not in result.table() and reading["sentence"] in result.table()


def test_random_weights_at_chance_accuracy_are_not_interpreted(tmp_path, capsys):
    images, labels = channel_images()
    result = run(tiny_cnn(n_classes=3, seed=5), (images, labels), out=tmp_path / "run")
    chance = 1 / 3  # six images of each of three labels: always answering one of them scores 1/3
    assert result.chance_accuracy() == pytest.approx(chance)
    assert result.clean_accuracy <= chance  # the random CNN does not beat it on these images
    saved = json.loads((tmp_path / "run" / "result.json").read_text())["interpretation"]
    assert saved["informative"] is False and "at or below chance" in saved["why"]
    assert "leans on" not in saved["sentence"] and "Not informative" in saved["sentence"]
    assert main(["show", str(tmp_path / "run")]) == 0
    printed = capsys.readouterr().out
    assert "NOT INFORMATIVE: " in printed and "at or below chance (0.333" in printed and "leans on" not in printed
    page = build_report([tmp_path / "run"], max_images=0)
    assert "Not informative." in page and "leans on" not in page


def test_a_constant_model_has_nothing_to_share(tmp_path):
    images, _ = channel_images(4)
    result = run(Constant(), images)  # predicted labels: the constant's own answer
    total = result.total()
    assert float(total.value) == pytest.approx(0.0, abs=1e-6)
    assert not result.informative
    assert "resolution of the log-probabilities" in result.interpretation["why"]
    assert "all images carry one label" in result.interpretation["why"]  # it always answers the same class
    assert "NOT INFORMATIVE" in result.table()


def test_one_band_and_one_class_models_are_flagged():
    """A run refuses one band; a result with one band (saved by hand or by an older version) is flagged."""
    images, labels = channel_images(3)
    with pytest.raises(iaside.IasideError, match="--bands 1"):  # refused before any pass
        run(Brightness(), (images, labels), bands=1)
    one_band = interpret(
        phi=np.array([0.7]),
        sid=np.array([1.0]),
        total=Estimate(0.7, 0.5, 0.9),
        score_estimate=Estimate(np.nan, np.nan, np.nan),
        score_signed_estimate=Estimate(np.nan, np.nan, np.nan),
        clean_accuracy=1.0,
        chance_accuracy=1 / 3,
        n_classes_seen=3,
        n_classes_model=3,
    )
    assert not one_band["informative"] and "only 1 band" in one_band["why"]  # a result saved by an older run
    single = nn.Sequential(nn.Flatten(), nn.Linear(3 * 32 * 32, 1))
    one_class = run(single, images, labels="predicted")
    assert one_class.n_bands == 3 and float(one_class.total().value) == 0.0  # log p = 0 whatever the image
    assert not one_class.informative and "all images carry one label" in one_class.interpretation["why"]


def test_rules_by_hand():
    phi = np.array([0.5, 0.3, 0.2])
    sid = np.array([0.5, 0.3, 0.2])
    narrow = Estimate(0.2, 0.18, 0.22)
    signed = Estimate(0.4, 0.3, 0.5)
    common = dict(
        phi=phi, sid=sid, score_estimate=narrow, score_signed_estimate=signed, n_classes_seen=3, n_classes_model=10
    )
    ok = interpret(total=Estimate(1.0, 0.8, 1.2), clean_accuracy=0.8, chance_accuracy=0.1, **common)
    assert ok["informative"] and "leans on robust low-frequency" in ok["sentence"]
    straddle = interpret(total=Estimate(0.1, -0.05, 0.25), clean_accuracy=0.8, chance_accuracy=0.1, **common)
    assert not straddle["informative"] and "contains 0" in straddle["why"]
    no_interval = interpret(total=Estimate(1.0, np.nan, np.nan), clean_accuracy=None, chance_accuracy=None, **common)
    assert not no_interval["informative"] and "no bootstrap interval" in no_interval["why"]
    at_chance = interpret(total=Estimate(1.0, 0.8, 1.2), clean_accuracy=0.1, chance_accuracy=0.1, **common)
    assert not at_chance["informative"]
    top = score_range(3)
    wide = interpret(
        total=Estimate(1.0, 0.8, 1.2),
        clean_accuracy=0.8,
        chance_accuracy=0.1,
        **{**common, "score_estimate": Estimate(0.3, 0.0, 0.95 * top)},
    )
    assert not wide["informative"] and "of its range" in wide["why"]
    unsettled = interpret(
        total=Estimate(1.0, 0.8, 1.2),
        clean_accuracy=0.8,
        chance_accuracy=0.1,
        **{**common, "score_signed_estimate": Estimate(0.1, -0.1, 0.3)},
    )
    assert (
        unsettled["informative"] and "not settled" in unsettled["sentence"] and "leans on" not in unsettled["sentence"]
    )
    assert "relies more on low or high" in unsettled["sentence"]


def test_total_interval_is_the_sum_of_the_phi_resamples():
    rng = np.random.default_rng(1)
    phi = rng.normal(0.3, 1.0, size=(30, 4))
    from iaside.summary import bootstrap_means

    est = total_estimate(phi, n_bootstrap=300, confidence=0.9, seed=7)
    sums = bootstrap_means(phi, 300, 7).sum(axis=1)
    assert float(est.low) == pytest.approx(np.quantile(sums, 0.05)) and float(est.high) == pytest.approx(
        np.quantile(sums, 0.95)
    )
    assert float(est.value) == pytest.approx(phi.sum(axis=1).mean())


def test_old_result_folders_get_an_interpretation_on_load(tmp_path):
    images, labels = channel_images(3)
    result = run(Brightness(), (images, labels), out=tmp_path / "run")
    file = tmp_path / "run" / "result.json"
    doc = json.loads(file.read_text())
    doc.pop("interpretation")
    file.write_text(json.dumps(doc))
    assert Result.load(tmp_path / "run").interpretation == result.interpretation


def test_explain_restores_the_training_mode():
    model = tiny_cnn(n_classes=3)
    model.train()
    model[1].eval()  # a mix of modes is kept as it was
    images, labels = channel_images(2)
    run(model, (images, labels))
    assert model.training and not model[1].training and model[0].training
    model.eval()
    run(model, (images, labels))
    assert not any(m.training for m in model.modules())


@pytest.mark.slow
def test_the_demo_stays_informative_with_the_same_numbers():
    """`make demo`: EfficientNet-Lite0 on the 20 bundled ImageNet images, M = 8 (5120 passes)."""
    result = iaside.explain("efficientnet-lite0", "samples:imagenet", show_progress=False)
    assert (
        f"{float(result.score.value):.4f} [{float(result.score.low):.4f}, {float(result.score.high):.4f}]"
        == "0.2730 [0.2363, 0.3108]"
    )
    assert result.informative and "leans on robust low-frequency" in result.interpretation["sentence"]
