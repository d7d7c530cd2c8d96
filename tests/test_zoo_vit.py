"""The zoo's small vision transformers: shapes, position information, one training step, and the
study's model lists (the ViTs come after the earlier models, which stay as they were)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch

from iaside.errors import IasideError
from iaside.models.base import Classifier
from iaside.robustness import zoo


@pytest.mark.parametrize(("arch", "depth"), [("vit", 2), ("vit_deep", 4)])
def test_vit_shapes(arch, depth):
    torch.manual_seed(0)
    net = zoo.build(arch, 4)
    assert isinstance(net, zoo.ViT)
    assert len(net.blocks) == depth
    assert net.position.shape == (1, 64, 64)  # patch 4 on 32×32: 64 tokens of dim 64
    assert net(torch.rand(3, 1, 32, 32)).shape == (3, 4)
    assert zoo.mnist_vit()(torch.rand(2, 1, 32, 32)).shape == (2, zoo.MNIST_CLASSES)
    assert zoo.planted_vit_deep()(torch.rand(2, 1, 32, 32)).shape == (2, zoo.PLANTED_CLASSES)


def test_vit_sees_where_a_patch_is():
    """Swapping two patches changes the logits: the position embedding is added (without it, mean
    pooled tokens are invariant to any permutation of the patches)."""
    torch.manual_seed(0)
    net = zoo.build("vit", 10).eval()
    x = torch.rand(1, 1, 32, 32)
    swapped = x.clone()
    swapped[..., 0:4, 0:4], swapped[..., 28:32, 28:32] = x[..., 28:32, 28:32], x[..., 0:4, 0:4]
    with torch.no_grad():
        assert not torch.allclose(net(x), net(swapped), atol=1e-5)
        net.position.zero_()
        assert torch.allclose(net(x), net(swapped), atol=1e-5)


def test_vit_patch_must_divide_the_image():
    with pytest.raises(IasideError, match="patch 5"):
        zoo.ViT(10, patch=5)


def test_vit_trains_a_step_with_the_shared_loop():
    torch.manual_seed(0)
    x = torch.rand(16, 1, 32, 32)
    y = torch.arange(16) % 4
    net = Classifier(zoo.build("vit", 4), (0.5,), (0.5,), num_classes=4, name="vit")
    before = {k: v.clone() for k, v in net.state_dict().items()}
    cfg = zoo.TrainConfig(arch="vit", epochs=1, batch_size=16, noise_sigma=0.1)
    out = zoo.train(net, x, y, cfg, n_classes=4)
    assert out is net and not net.training
    after = net.state_dict()
    changed = [k for k in before if not torch.equal(before[k], after[k])]
    assert "net.position" in changed and "net.head.weight" in changed
    assert any(k.startswith("net.blocks.1.") for k in changed)  # gradients reach every block
    assert torch.isfinite(net(x)).all()


def _study():
    path = Path(__file__).resolve().parents[1] / "studies" / "zoo.py"
    spec = importlib.util.spec_from_file_location("zoo_study", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_study_adds_vits_after_the_earlier_models():
    study = _study()
    mnist, planted = list(study.MNIST_MODELS), list(study.PLANTED_MODELS)
    assert mnist[:14] == [
        "mlp",
        "mlp-noise",
        "cnn",
        "cnn-noise",
        "cnn-noise-strong",
        "cnn-blur",
        "cnn-fgsm-0.1",
        "cnn-fgsm-0.2",
        "cnn-shortcut",
        "cnn-no-low-bands",
        "cnn-label-noise-20",
        "cnn-label-noise-40",
        "wide-cnn",
        "resnet",
    ]
    assert planted[:8] == ["cnn", "cnn-low-cue", "cnn-high-cue", "cnn-noise", "cnn-blur", "cnn-fgsm", "mlp", "resnet"]
    for models, first_vit in ((study.MNIST_MODELS, 14), (study.PLANTED_MODELS, 8)):
        archs = [cfg.arch for cfg in models.values()]
        assert all(a.startswith("vit") for a in archs[first_vit:]) and len(archs) > first_vit
        assert not any(a.startswith("vit") for a in archs[:first_vit])
        for arch in archs:
            assert arch in zoo.ARCHITECTURES


def test_retest_table_one_row_per_predictor_one_column_per_scope_and_measure():
    study = _study()

    def corr(scope, x, y, n, r, kind="spearman"):
        return {"scope": scope, "kind": kind, "x": x, "y": y, "n": n, "r": r, "low": r - 0.1, "high": r + 0.1}

    claim = [
        corr("mnist", "score", "mCE", 19, 0.11),
        corr("mnist", "score", "adversarial accuracy (mean)", 19, -0.1),
        corr("mnist", "heatmap_error_mean", "mCE", 19, 0.96),
        corr("mnist", "heatmap_error_mean", "adversarial accuracy (mean)", 19, -0.91),
        corr("pooled", "score", "mCE", 31, 0.0),
        corr("pooled", "heatmap_error_mean", "mCE", 31, 0.3),
        corr("pooled", "score", "mCE", 31, 0.5, kind="partial"),
    ]
    lines = study.retest_table(claim).splitlines()
    assert lines[0] == "| predictor | mnist mCE (n=19) | mnist adv acc (n=19) | pooled mCE (n=31) |"
    assert lines[2] == "| score | +0.11 [+0.01, +0.21] | -0.10 [-0.20, +0.00] | +0.00 [-0.10, +0.10] |"
    assert lines[3].startswith("| heatmap_error_mean | +0.96 [+0.86, +1.06] | -0.91")
    assert len(lines) == 4
    partial = study.retest_table(claim, "partial").splitlines()
    assert partial[0] == "| predictor | pooled mCE (n=31) |" and partial[2] == "| score | +0.50 [+0.40, +0.60] |"


@pytest.mark.parametrize("arch", ["mlp", "cnn", "vit"])
def test_a_seeded_build_does_not_depend_on_what_ran_before(arch):
    """The zoo's initial weights come from the seed alone (a cached model earlier in the study
    must not change the next one's start), and building leaves torch's global stream alone."""
    first = zoo.build(arch, 4, seed=3).state_dict()
    torch.rand(1000)  # whatever ran before in the process
    state = torch.random.get_rng_state()
    again = zoo.build(arch, 4, seed=3).state_dict()
    assert torch.equal(torch.random.get_rng_state(), state)
    assert all(torch.equal(first[k], again[k]) for k in first)
    other = zoo.build(arch, 4, seed=4).state_dict()
    assert not all(torch.equal(first[k], other[k]) for k in first)
