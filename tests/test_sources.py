"""Inputs you can trust: one data-configuration rule with sources, every model source fed as it
was trained (TorchScript, ONNX, module:, hf:, timm:, torchvision:), model output read in one place."""

from __future__ import annotations

import hashlib
import json
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import tiny_cnn
from torch import nn

from iaside.cli import main
from iaside.compat import import_timm, import_torchvision
from iaside.config import DataConfig, resolve_data_config
from iaside.errors import IasideError
from iaside.models import load_model
from iaside.models.outputs import check_scores, looks_like_probabilities, unpack_scores

pytestmark = [
    pytest.mark.filterwarnings("ignore:.*(jit|TorchScript).*:DeprecationWarning"),
    pytest.mark.filterwarnings("ignore:The feature will be removed:DeprecationWarning"),
]
FALLBACK_WARNING = "does not declare its preprocessing"
SMALL = ["--bands", "3", "--bootstrap", "20", "--quiet"]
DECLARED = {
    "input_size": 32,
    "resize_size": 32,
    "interpolation": "bicubic",
    "mean": [0.5, 0.4, 0.3],
    "std": [0.2, 0.25, 0.3],
    "channels": 3,
}


def cli(args, capsys) -> tuple[int, str, str]:
    code = main([str(a) for a in args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def result_of(out: Path) -> dict:
    return json.loads((out / "result.json").read_text())


# ---- the rule -----------------------------------------------------------------------------------


def test_layers_resolve_in_order_and_every_field_keeps_its_source():
    config = resolve_data_config(
        [
            ({"input_size": 224, "resize_size": 248, "interpolation": "bicubic", "mean": (0.5,) * 3}, "model"),
            ({"interpolation": "bilinear", "std": [0.25]}, "file"),
            ({"mean": None, "channels": None}, "given"),  # None: not given
        ]
    )
    assert (config.input_size, config.resize_size, config.interpolation) == ((224, 224), 248, "bilinear")
    assert config.mean == (0.5,) * 3 and config.std == (0.25,) * 3
    assert config.sources == {
        "input_size": "model",
        "resize_size": "model",
        "interpolation": "file",
        "mean": "model",
        "std": "file",
        "channels": "fallback",
    }
    assert config.guessed() == ["channels"]
    line = config.pipeline()
    assert "resize 248 bilinear [model, file] → crop 224×224 [model]" in line
    assert "std 0.25,0.25,0.25 [model, file]" in line


@pytest.mark.parametrize(
    ("model_own", "crop", "resize", "source"),
    [
        ({}, 32, 36, "crop fraction 0.875 of fallback"),  # timm's rule: floor(32 / (224/256))
        ({"input_size": 224, "resize_size": 248}, 32, 35, "crop fraction 0.903 of model"),
        ({"input_size": 224, "resize_size": 248}, 224, 248, "model"),  # the same crop keeps the model's resize
    ],
)
def test_input_size_alone_moves_the_resize_with_the_crop_fraction(model_own, crop, resize, source):
    config = resolve_data_config([(model_own, "model"), ({"input_size": crop}, "given")])
    assert (config.input_size, config.resize_size) == ((crop, crop), resize)
    assert config.sources["resize_size"] == source
    assert ("resize_size" in config.guessed()) == source.endswith("fallback")


def test_channel_change_and_unknown_fields():
    config = resolve_data_config(
        [({"mean": (0.2, 0.4, 0.6), "std": (0.1, 0.2, 0.3)}, "model"), ({"channels": 1}, "given")]
    )
    assert config.mean == pytest.approx((0.4,)) and config.std == pytest.approx((0.2,)) and config.channels == 1
    with pytest.raises(IasideError, match=r"sidecar x\.json has unknown data-config fields \['crop'\]"):
        resolve_data_config([({"crop": 3}, "sidecar x.json")])
    assert DataConfig(sources={"mean": "a"}) == DataConfig() and "sources" not in DataConfig().to_dict()


# ---- the same network as TorchScript, ONNX and module: -------------------------------------------


@pytest.fixture
def three_ways(tmp_path, monkeypatch):
    """One tiny 32×32 CNN saved as TorchScript, ONNX and a module: factory with a weights file."""
    net = tiny_cnn(n_classes=3, seed=4)
    torch.jit.script(net).save(str(tmp_path / "net.pt"))
    torch.onnx.export(
        net,
        (torch.rand(2, 3, 32, 32),),
        str(tmp_path / "net.onnx"),
        dynamo=False,
        input_names=["pixels"],
        dynamic_axes={"pixels": {0: "batch"}},
    )
    torch.save(net.state_dict(), tmp_path / "net.pth")
    (tmp_path / "threeways_factory.py").write_text(
        textwrap.dedent("""
        from conftest import tiny_cnn

        def build():
            return tiny_cnn(n_classes=3)
    """)
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    yield {
        "torchscript": [f"torchscript:{tmp_path / 'net.pt'}"],
        "onnx": [f"onnx:{tmp_path / 'net.onnx'}"],
        "module": ["module:threeways_factory:build", "--weights", tmp_path / "net.pth"],
    }
    sys.modules.pop("threeways_factory", None)


def test_one_network_three_formats_same_phi_once_declared_and_a_warning_otherwise(
    tmp_path, three_ways, image_folder, capsys
):
    config_file = tmp_path / "preprocessing.json"
    config_file.write_text(json.dumps(DECLARED))
    phi = {}
    for name, model in three_ways.items():
        out = tmp_path / f"declared-{name}"
        code, stdout, err = cli(
            [
                "run",
                "--model",
                *model,
                "--data",
                image_folder,
                "--data-config",
                config_file,
                "--samples",
                "4",
                *SMALL,
                "--out",
                out,
            ],
            capsys,
        )
        assert code == 0 and FALLBACK_WARNING not in err, err
        result = result_of(out)
        assert result["data"]["data_config"] == {**DECLARED, "input_size": [32, 32]}
        assert set(result["data"]["data_config_sources"].values()) == {f"--data-config {config_file}"}
        assert "preprocessing: resize 32 bicubic → crop 32×32" in stdout
        phi[name] = np.load(out / "per_image.npz")["phi_per_image"]
    assert np.abs(phi["onnx"] - phi["torchscript"]).max() < 1e-4
    assert np.abs(phi["module"] - phi["torchscript"]).max() < 1e-4
    for name, model in three_ways.items():
        code, _, err = cli(
            [
                "run",
                "--model",
                *model,
                "--data",
                image_folder,
                "--samples",
                "2",
                "--bands",
                "2",
                "--bootstrap",
                "20",
                "--quiet",
                "--out",
                tmp_path / f"bare-{name}",
            ],
            capsys,
        )
        warnings = [line for line in err.splitlines() if FALLBACK_WARNING in line]
        assert code == 0 and len(warnings) == 1, err
        assert "guessed" in warnings[0] and "--mean/--std" in warnings[0] and "--data-config FILE.json" in warnings[0]


def test_a_sidecar_declares_it_once_for_all_runs(tmp_path, three_ways, image_folder, capsys):
    onnx_file = Path(three_ways["onnx"][0].partition(":")[2])
    Path(f"{onnx_file}.json").write_text(json.dumps(DECLARED))
    out = tmp_path / "run"
    code, _, err = cli(
        [
            "run",
            "--model",
            *three_ways["onnx"],
            "--data",
            image_folder,
            "--samples",
            "2",
            "--mean",
            "0.5",
            *SMALL,
            "--out",
            out,
        ],
        capsys,
    )
    assert code == 0 and FALLBACK_WARNING not in err
    sources = result_of(out)["data"]["data_config_sources"]
    assert sources["mean"] == "given" and sources["std"] == "sidecar net.onnx.json"
    assert sources["input_size"] == "sidecar net.onnx.json"


class Declaring(nn.Module):
    """A network that carries its data config as a JSON string attribute (TorchScript keeps it)."""

    def __init__(self):
        super().__init__()
        self.net = tiny_cnn(n_classes=3)
        self.DATA_CONFIG = json.dumps({**DECLARED, "mean": [0.1, 0.1, 0.1]})

    def forward(self, x):
        return self.net(x)


def test_models_declare_their_own_config(tmp_path, capsys):
    """A TorchScript archive entry, a TorchScript DATA_CONFIG attribute, ONNX metadata_props."""
    import onnx

    net = tiny_cnn(n_classes=3)
    path = tmp_path / "entry.pt"
    torch.jit.save(torch.jit.script(net), str(path), _extra_files={"data_config.json": json.dumps(DECLARED)})
    assert load_model(f"torchscript:{path}").data_config == DataConfig.from_dict(DECLARED)

    torch.jit.script(Declaring()).save(str(tmp_path / "attr.pt"))
    loaded = load_model(f"torchscript:{tmp_path / 'attr.pt'}")
    assert loaded.data_config.mean == (0.1,) * 3 and loaded.data_config.sources["mean"] == "attr.pt.DATA_CONFIG"
    onnx_path = tmp_path / "meta.onnx"
    torch.onnx.export(net, (torch.rand(1, 3, 32, 32),), str(onnx_path), dynamo=False)
    graph = onnx.load(str(onnx_path))
    onnx.helper.set_model_props(
        graph,
        {
            "data_config": json.dumps({"mean": [0.5] * 3, "std": [0.5] * 3}),
            "resize_size": "40",
            "interpolation": '"bicubic"',
        },
    )
    onnx.save(graph, str(onnx_path))
    capsys.readouterr()
    loaded = load_model(f"onnx:{onnx_path}")
    cfg = loaded.data_config
    assert (cfg.input_size, cfg.resize_size, cfg.interpolation, cfg.mean) == ((32, 32), 40, "bicubic", (0.5,) * 3)
    assert cfg.sources["input_size"] == "ONNX graph input" and cfg.sources["std"] == "meta.onnx metadata_props"
    assert not cfg.guessed() and FALLBACK_WARNING not in capsys.readouterr().err


def test_input_size_alone_on_a_32px_torchscript_model_warns_about_the_guessed_resize(tmp_path, image_folder, capsys):
    path = tmp_path / "cifar.pt"
    torch.jit.script(tiny_cnn(n_classes=3)).save(str(path))
    out = tmp_path / "run"
    code, stdout, err = cli(
        [
            "run",
            "--model",
            f"torchscript:{path}",
            "--data",
            image_folder,
            "--input-size",
            "32",
            "--samples",
            "2",
            *SMALL,
            "--out",
            out,
        ],
        capsys,
    )
    assert code == 0
    config = result_of(out)["data"]["data_config"]
    assert config["input_size"] == [32, 32] and config["resize_size"] == 36  # never a 256 resize before a 32 crop
    (warning,) = [line for line in err.splitlines() if FALLBACK_WARNING in line]
    assert "resize_size 36" in warning and "--resize-size" in warning
    assert "resize 36 bilinear [crop fraction 0.875 of fallback, fallback] → crop 32×32 [given]" in stdout
    code, shown, _ = cli(["show", out], capsys)
    assert code == 0 and "preprocessing: resize 36 bilinear" in shown


def test_models_check_prints_classes_and_every_fields_source(tmp_path, capsys):
    path = tmp_path / "net.pt"
    torch.jit.script(tiny_cnn(n_classes=3)).save(str(path))
    Path(f"{path}.json").write_text(json.dumps({"mean": [0.5, 0.5, 0.5], "std": [0.25, 0.25, 0.25]}))
    code, out, err = cli(["models", "--check", "--model", f"torchscript:{path}", "--input-size", "32"], capsys)
    assert code == 0
    assert "classes: 3" in out
    rows = {line.split()[0]: line for line in out.splitlines() if line.startswith("  ")}
    assert rows["input_size"].endswith("from given") and rows["mean"].endswith("from sidecar net.pt.json")
    assert rows["resize_size"].endswith("from crop fraction 0.875 of fallback")
    assert "guessed resize_size 36, interpolation bilinear, channels 3" in err


# ---- model output in one place ------------------------------------------------------------------


class Returns(nn.Module):
    """tiny_cnn whose forward returns its logits as a tuple, a dict or softmax probabilities."""

    def __init__(self, kind: str):
        super().__init__()
        self.net, self.kind = tiny_cnn(n_classes=3), kind

    def forward(self, x):
        logits = self.net(x)
        return {
            "tuple": (logits, x),
            "dict": {"logits": logits, "features": x},
            "probs": torch.softmax(logits, 1),
            "plain": logits,
        }[self.kind]


def test_outputs_are_unpacked_checked_and_probabilities_noticed(capsys):
    import iaside

    x, y = torch.rand(3, 3, 32, 32), torch.tensor([0, 1, 2])
    plain = iaside.explain(Returns("plain"), (x, y), bands=3, n_bootstrap=20, show_progress=False)
    for kind in ("tuple", "dict"):
        got = iaside.explain(Returns(kind), (x, y), bands=3, n_bootstrap=20, show_progress=False)
        np.testing.assert_allclose(got.per_image["phi_per_image"], plain.per_image["phi_per_image"], atol=1e-6)
    capsys.readouterr()
    iaside.explain(Returns("probs"), (x, y), bands=3, n_bootstrap=20, show_progress=False)
    assert (
        "returns probabilities" in capsys.readouterr().err
        and "--outputs probs" in capsys.readouterr().err + "--outputs probs"
    )
    logged = iaside.explain(Returns("probs"), (x, y), bands=3, n_bootstrap=20, show_progress=False, outputs="probs")
    assert "returns probabilities" not in capsys.readouterr().err
    np.testing.assert_allclose(logged.per_image["phi_per_image"], plain.per_image["phi_per_image"], atol=1e-5)
    assert looks_like_probabilities(torch.softmax(torch.randn(4, 5), 1))
    assert not looks_like_probabilities(torch.randn(4, 5))
    with pytest.raises(IasideError, match=r"returned \(2, 3, 4\) for a batch of 2 images"):
        check_scores(unpack_scores((torch.zeros(2, 3, 4),)), 2)
    with pytest.raises(IasideError, match="'logits' entry"):
        unpack_scores({"a": torch.zeros(2, 3), "b": torch.zeros(2, 3)})


def test_half_precision_models_get_their_dtype_and_give_float32():
    net = tiny_cnn(n_classes=3).to(torch.bfloat16)
    loaded = load_model_from(net)
    scores = loaded.model(torch.rand(2, 3, 32, 32))
    assert scores.shape == (2, 3) and scores.dtype == torch.bfloat16
    assert check_scores(scores, 2).dtype == torch.float32


def load_model_from(net):
    from iaside.models.registry import wrap_module

    return wrap_module(net, fingerprint="x", data_config={"mean": [0.5], "std": [0.5]})


# ---- Hugging Face -------------------------------------------------------------------------------


def transformers():
    import importlib.util

    if importlib.util.find_spec("transformers") is None:
        pytest.skip("transformers is not installed")
    import_torchvision()
    import transformers as module

    return module


def save_tiny_vit(folder: Path) -> Path:
    """A 1-layer ViT for 32×32 images, 3 labels, random weights, with its image processor."""
    tf = transformers()
    torch.manual_seed(0)
    config = tf.ViTConfig(
        image_size=32,
        patch_size=8,
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=64,
        num_labels=3,
        id2label={0: "cat", 1: "dog", 2: "owl"},
        label2id={"cat": 0, "dog": 1, "owl": 2},
    )
    tf.ViTForImageClassification(config).eval().save_pretrained(folder)
    tf.ViTImageProcessor(
        size={"height": 32, "width": 32}, resample=3, image_mean=[0.3, 0.4, 0.5], image_std=[0.2, 0.25, 0.3]
    ).save_pretrained(folder)
    return folder


def test_hf_vit_from_a_folder_runs_from_the_cli_with_its_processor(tmp_path, image_folder, capsys):
    folder = save_tiny_vit(tmp_path / "tiny-vit")
    out = tmp_path / "run"
    code, stdout, err = cli(
        [
            "run",
            "--model",
            f"hf:{folder}",
            "--data",
            image_folder,
            "--labels",
            "predicted",
            "--samples",
            "2",
            "--bands",
            "2",
            "--bootstrap",
            "20",
            "--quiet",
            "--out",
            out,
        ],
        capsys,
    )
    assert code == 0 and FALLBACK_WARNING not in err, err
    result = result_of(out)
    config, sources = result["data"]["data_config"], result["data"]["data_config_sources"]
    assert config["input_size"] == [32, 32] and config["resize_size"] == 32 and config["interpolation"] == "bicubic"
    assert config["mean"] == pytest.approx([0.3, 0.4, 0.5]) and config["std"] == pytest.approx([0.2, 0.25, 0.3])
    assert sources["mean"] == sources["input_size"] == "HF ViTImageProcessor"
    assert result["model"]["num_classes"] == 3
    assert "preprocessing: resize 32 bicubic" in stdout
    loaded = load_model(f"hf:{folder}")
    assert loaded.model.class_names == ["cat", "dog", "owl"]
    pixels = torch.rand(2, 3, 32, 32)
    net = transformers().ViTForImageClassification.from_pretrained(folder).eval()
    with torch.no_grad():  # the processor's rescale + normalise, by hand on 0..255 values
        want = net(
            pixel_values=(pixels * 255 / 255 - torch.tensor([0.3, 0.4, 0.5]).view(1, 3, 1, 1))
            / torch.tensor([0.2, 0.25, 0.3]).view(1, 3, 1, 1)
        ).logits
        torch.testing.assert_close(loaded.model(pixels), want)


def test_hf_processor_rescale_and_normalise_fold_into_mean_std():
    from iaside.models.hub_hf import processor_fields

    class Processor:  # a processor that scales to [-1, 1] with rescale 1/127.5 and mean 1, std 1
        do_resize, size, resample = True, {"shortest_edge": 224}, 2
        do_center_crop, crop_size = True, {"height": 200, "width": 200}
        do_rescale, rescale_factor, do_normalize, image_mean, image_std = True, 1 / 127.5, True, [1.0] * 3, [1.0] * 3

    fields = processor_fields(Processor())
    assert fields["input_size"] == (200, 200) and fields["resize_size"] == 224 and fields["interpolation"] == "bilinear"
    p = torch.rand(5)  # (x/127.5 - 1) / 1 on x = 255 p  ==  (p - m) / s
    np.testing.assert_allclose(
        ((p - fields["mean"][0]) / fields["std"][0]).numpy(), (255 * p / 127.5 - 1).numpy(), atol=1e-6
    )


def test_hf_swin_from_the_local_hub_cache_offline(tmp_path, monkeypatch, capsys):
    """A hierarchical transformer by hub name, from a cache filled in the hub's layout, HF_HUB_OFFLINE=1."""
    import iaside

    tf = transformers()
    torch.manual_seed(0)
    config = tf.SwinConfig(
        image_size=32, patch_size=4, embed_dim=8, depths=[1, 1], num_heads=[1, 2], window_size=2, num_labels=3
    )
    saved = tmp_path / "saved"
    tf.SwinForImageClassification(config).eval().save_pretrained(saved)
    repo = tmp_path / "hub" / "models--tiny-org--tiny-swin"
    (repo / "snapshots" / "0a1b2c").mkdir(parents=True)
    for f in saved.iterdir():
        (repo / "snapshots" / "0a1b2c" / f.name).write_bytes(f.read_bytes())
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("0a1b2c")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    loaded = load_model("hf:tiny-org/tiny-swin", data_config={"resize_size": 32})
    err = capsys.readouterr().err
    assert loaded.model.num_classes == 3 and loaded.data_config.input_size == (32, 32)
    assert loaded.data_config.sources["input_size"] == "HF model config" and "guessed interpolation" in err
    x = torch.rand(2, 3, 32, 32)
    result = iaside.explain(loaded, (x, torch.tensor([0, 2])), bands=2, n_bootstrap=20, show_progress=False)
    assert abs(result.phi.value.sum() - (result.v_nats[-1] - result.v_nats[0])) < 1e-6
    with pytest.raises(IasideError, match="hub cache"):
        load_model("hf:tiny-org/not-there")


# ---- timm and torchvision -----------------------------------------------------------------------


def test_torchvision_resnet18_with_a_10_class_head(tmp_path, image_folder, capsys):
    tv = import_torchvision()
    torch.manual_seed(0)
    weights = tmp_path / "resnet18_10cls.pth"
    torch.save(tv.models.resnet18(num_classes=10).state_dict(), weights)
    out = tmp_path / "run"
    code, _, err = cli(
        [
            "run",
            "--model",
            "torchvision:resnet18",
            "--weights",
            weights,
            "--num-classes",
            "10",
            "--data",
            image_folder,
            "--labels",
            "predicted",
            "--input-size",
            "64",
            "--samples",
            "2",
            "--bands",
            "2",
            "--bootstrap",
            "20",
            "--quiet",
            "--out",
            out,
        ],
        capsys,
    )
    assert code == 0, err
    result = result_of(out)
    assert result["model"]["num_classes"] == 10 and result["data"]["data_config"]["resize_size"] == 73
    assert result["data"]["data_config_sources"]["mean"] == "torchvision ResNet18_Weights.IMAGENET1K_V1 transforms"
    from safetensors.torch import save_file

    save_file(torch.load(weights), str(tmp_path / "r.safetensors"))
    loaded = load_model("torchvision:resnet18", weights=str(tmp_path / "r.safetensors"))
    assert loaded.model.num_classes == 10 and "10-class head, read from" in capsys.readouterr().err
    with pytest.raises(IasideError, match=r"did you mean resnet18"):
        load_model("torchvision:resnet19")


@pytest.fixture(scope="module")
def vit_tiny_weights(tmp_path_factory):
    """vit_tiny_patch16_224 with random weights as a .safetensors file."""
    from safetensors.torch import save_file

    timm = import_timm()
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("timm") / "vit_tiny.safetensors"
    save_file(timm.create_model("vit_tiny_patch16_224", pretrained=False).state_dict(), str(path))
    return path


def test_timm_vit_tiny_runs_with_local_weights(tmp_path, vit_tiny_weights, image_folder, capsys):
    out = tmp_path / "run"
    code, stdout, err = cli(
        [
            "run",
            "--model",
            "timm:vit_tiny_patch16_224",
            "--weights",
            vit_tiny_weights,
            "--data",
            image_folder,
            "--labels",
            "predicted",
            "--samples",
            "2",
            "--bands",
            "2",
            "--bootstrap",
            "20",
            "--quiet",
            "--out",
            out,
        ],
        capsys,
    )
    assert code == 0 and FALLBACK_WARNING not in err, err
    result = result_of(out)
    assert result["model"]["num_classes"] == 1000
    assert result["data"]["data_config"] == {
        "input_size": [224, 224],
        "resize_size": 248,
        "interpolation": "bicubic",
        "mean": [0.5] * 3,
        "std": [0.5] * 3,
        "channels": 3,
    }
    assert "timm pretrained_cfg vit_tiny_patch16_224.augreg_in21k_ft_in1k" in stdout
    with pytest.raises(IasideError, match=r"did you mean vit_tiny_patch16_224"):
        load_model("timm:vit_tiny_patch16_22")


def test_timm_pretrained_comes_from_the_local_hub_cache(tmp_path, vit_tiny_weights, monkeypatch):
    repo = tmp_path / "hub" / "models--timm--vit_tiny_patch16_224.augreg_in21k_ft_in1k"
    (repo / "snapshots" / "9f8e7d").mkdir(parents=True)
    (repo / "snapshots" / "9f8e7d" / "model.safetensors").write_bytes(vit_tiny_weights.read_bytes())
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("9f8e7d")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    loaded = load_model("timm:vit_tiny_patch16_224")
    assert loaded.extra["weights"].startswith(str(repo)) and loaded.model.num_classes == 1000
    assert loaded.fingerprint == hashlib.sha256(vit_tiny_weights.read_bytes()).hexdigest()[:16]


def test_timm_head_size_is_read_from_fine_tuned_weights(tmp_path, capsys):
    timm = import_timm()
    torch.manual_seed(0)
    path = tmp_path / "resnet18_5cls.pth"
    torch.save(timm.create_model("resnet18", num_classes=5).state_dict(), path)
    loaded = load_model("timm:resnet18", weights=str(path))
    assert loaded.model.num_classes == 5 and "5-class head, read from" in capsys.readouterr().err
    with pytest.raises(IasideError, match=r"fc\.weight \(5, 512\) vs \(7, 512\)"):
        load_model("timm:resnet18", weights=str(path), num_classes=7)


def test_a_vision_transformer_under_bf16_and_compile(tmp_path):
    """The tiny HF ViT through --precision bf16 --optimize compile stays close to float32."""
    import iaside

    folder = save_tiny_vit(tmp_path / "tiny-vit")
    x, y = torch.rand(2, 3, 32, 32), torch.tensor([0, 2])
    plain = iaside.explain(f"hf:{folder}", (x, y), bands=2, n_bootstrap=20, show_progress=False)
    fast = iaside.explain(
        f"hf:{folder}",
        (x, y),
        bands=2,
        n_bootstrap=20,
        show_progress=False,
        precision="bf16",
        optimize="compile",
        batch_size=2,
        cache=False,
    )
    assert fast.meta["optimize"]["applied"] == "compile" and fast.meta["precision"] == "bf16"
    assert np.abs(fast.v_nats - plain.v_nats).max() < 0.05  # bf16 rounding of a 1-layer ViT's log-probabilities


def test_python_api_modules_follow_the_same_rule(tmp_path, capsys):
    import iaside

    x, y = torch.rand(2, 3, 32, 32), torch.tensor([0, 1])
    iaside.explain(tiny_cnn(n_classes=3), (x, y), bands=2, n_bootstrap=20, show_progress=False)
    (warning,) = capsys.readouterr().err.strip().splitlines()
    assert FALLBACK_WARNING in warning and "guessed mean [0.0, 0.0, 0.0], std [1.0, 1.0, 1.0]:" in warning
    net = tiny_cnn(n_classes=3)
    net.DATA_CONFIG = {"mean": [0.5] * 3, "std": [0.25] * 3}
    declared = iaside.explain(net, (x, y), bands=2, n_bootstrap=20, show_progress=False)
    assert FALLBACK_WARNING not in capsys.readouterr().err
    assert declared.data["data_config_sources"]["mean"] == "Sequential.DATA_CONFIG"
    path = tmp_path / "cfg.json"
    path.write_text(json.dumps({"mean": [0.5] * 3, "std": [0.25] * 3}))
    from_file = iaside.explain(
        tiny_cnn(n_classes=3), (x, y), bands=2, n_bootstrap=20, show_progress=False, data_config=path
    )
    np.testing.assert_allclose(from_file.per_image["phi_per_image"], declared.per_image["phi_per_image"], atol=1e-6)
    assert from_file.data["data_config_sources"]["std"] == f"--data-config {path}"


def test_store_and_leaderboard_separate_runs_fed_differently(tmp_path, scripted, image_folder, capsys, monkeypatch):
    from iaside.store import leaderboard

    store = tmp_path / "store.sqlite"
    monkeypatch.setenv("IASIDE_STORE", str(store))
    for resize in ("32", "40", "40"):
        code, _, err = cli(
            [
                "run",
                "--model",
                f"torchscript:{scripted}",
                "--data",
                image_folder,
                "--input-size",
                "32",
                "--resize-size",
                resize,
                *SMALL,
                "--out",
                tmp_path / resize,
            ],
            capsys,
        )
        assert code == 0, err
    boards = leaderboard(store)
    assert len(boards) == 2 and sorted(b["data_config"]["resize_size"] for b in boards) == [32, 40]
    code, out, _ = cli(["leaderboard", "--store", store], capsys)
    assert code == 0 and "preprocessing: resize 32 bilinear → crop 32×32" in out
    assert "preprocessing: resize 40 bilinear → crop 32×32" in out


def test_misspelt_specs_get_close_matches():
    with pytest.raises(IasideError, match=r"did you mean efficientnet-lite\d"):
        load_model("efficientnet-lite3")
    with pytest.raises(IasideError, match=r"did you mean timm:"):
        load_model("timn:resnet18")
